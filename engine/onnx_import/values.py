"""What the importer knows about each ONNX tensor while it walks the graph.

* `Static`: a value known without running the network (an initializer, a Constant, or arithmetic on them and on
  input shapes). The batch size is the one unknown: a value computed from it is worked out twice, for two trial
  batch sizes (`WORLDS`), so that a Reshape target such as `Concat(Shape(x)[0], [-1])` can tell the batch apart
  from fixed sizes.
* `View`: a tensor that flows from an Input, as a *view* of one catalogue layer's output: the layer's dimensions
  (batch first) may be split into factors, reordered, merged, have size-1 axes added, or have one index picked.
  Transpose, Reshape, Squeeze, Unsqueeze and Gather on a view only change the view; a layer that needs the tensor
  gets it through `layout_steps()`, the Reshape / Permute / Flatten layers that produce it (often none). This is
  how the time-major transposes around ONNX LSTM/GRU nodes, or `Y_h[0]`, vanish again on import.
* `Pieces`: a Concat of views that could not be expressed as one view, kept until a consumer either picks one
  piece (Gather / Slice, as the exporter does for `h_n[-1]` of stacked LSTMs) or needs it whole (a Concat layer).
* `Padded`: the output of Pad, which only a following convolution can absorb (as its padding / padding_mode).
* `Missing`: an output that has no equivalent (an LSTM's cell state); using it is an error.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

BATCH = "N"  # the batch size, unknown until run time
WORLDS = (3, 5)  # the two trial batch sizes shape arithmetic is evaluated with

Entry = tuple[int, int, int] | None  # factors i..j-1 of layer dimension d, merged; None: an added size-1 axis


class LayoutError(Exception):
    """A view that no sequence of Reshape / Permute / Flatten layers can produce (message for the user)."""


@dataclass(frozen=True)
class Static:
    """A value known before running: `a` for the first trial batch size, `b` for the second when it differs."""

    a: np.ndarray
    b: np.ndarray | None = None
    sources: frozenset[str] = frozenset()  # the initializers it was computed from (to name layers after them)

    @property
    def batch_dependent(self) -> bool:
        return self.b is not None

    def world(self, i: int) -> np.ndarray:
        return self.a if i == 0 or self.b is None else self.b


@dataclass(frozen=True)
class Missing:
    reason: str


def _prod(sizes: Sequence[Any]) -> Any:
    if any(s == BATCH for s in sizes):
        rest = [s for s in sizes if s != BATCH]
        return BATCH if all(s == 1 for s in rest) and sizes.count(BATCH) == 1 else None
    return math.prod(sizes)


@dataclass(frozen=True)
class View:
    """Layer `node`'s output (batched dims 0…n-1; dim 0 is the batch) seen through a change of layout.

    `factors[d]` splits layer dim d into sizes whose product is its size (the batch is never split). `order` lists
    the view's axes: each merges consecutive factors i..j-1 of one layer dim, or is None (a size-1 axis). `fixed`
    holds factors picked at one index, `(d, i, index)`. Every factor of size > 1 is in exactly one axis or fixed.
    """

    node: str
    dtype: str
    factors: tuple[tuple[Any, ...], ...]
    order: tuple[Entry, ...]
    fixed: tuple[tuple[int, int, int], ...] = ()
    producer: int | None = field(default=None, compare=False)  # ONNX node index that made this view

    @staticmethod
    def of(node: str, shape: Sequence[int], dtype: str, producer: int | None = None) -> "View":
        """The plain view of a layer whose per-sample output shape is `shape`."""
        factors = ((BATCH,),) + tuple((int(s),) for s in shape)
        return View(node, dtype, factors, tuple((d, 0, 1) for d in range(len(factors))), (), producer)

    # ---- queries -------------------------------------------------------------------------------------------
    def size(self, entry: Entry) -> Any:
        if entry is None:
            return 1
        d, i, j = entry
        return _prod(list(self.factors[d][i:j]))

    @property
    def shape(self) -> tuple[Any, ...]:
        return tuple(self.size(e) for e in self.order)

    @property
    def rank(self) -> int:
        return len(self.order)

    def key(self) -> tuple:
        return (self.node, self.factors, self.order, self.fixed)

    def world_shape(self, world: int) -> list[int]:
        return [WORLDS[world] if s == BATCH else int(s) for s in self.shape]

    def _atoms(self) -> list[tuple[int, int]]:
        """The view's factors of size > 1 (and the batch), in the order the view lays them out."""
        return [(e[0], i) for e in self.order if e is not None for i in range(e[1], e[2])
                if self.factors[e[0]][i] != 1]

    def axis(self, axis: int) -> int:
        n = self.rank
        if not -n <= axis < n:
            raise IndexError(f"axis {axis} does not exist for a tensor of {n} dimensions")
        return axis % n

    # ---- layout changes --------------------------------------------------------------------------------------
    def transpose(self, perm: Sequence[int]) -> "View":
        if sorted(perm) != list(range(self.rank)):
            raise IndexError(f"perm {list(perm)} is not an ordering of the {self.rank} axes")
        return replace(self, order=tuple(self.order[p] for p in perm))

    def unsqueeze(self, axes: Sequence[int]) -> "View":
        n = self.rank + len(axes)
        where = sorted(a % n if -n <= a < n else -1 for a in axes)
        if -1 in where or len(set(where)) != len(where):
            raise IndexError(f"axes {list(axes)} do not fit a result of {n} dimensions")
        order = list(self.order)
        for a in where:
            order.insert(a, None)
        return replace(self, order=tuple(order))

    def squeeze(self, axes: Sequence[int] | None) -> "View":
        if axes is None:
            axes = [k for k, s in enumerate(self.shape) if s == 1]
        drop = {self.axis(a) for a in axes}
        for a in drop:
            if self.size(self.order[a]) != 1:
                raise IndexError(f"axis {a} has size {self.size(self.order[a])}, not 1")
        return replace(self, order=tuple(e for k, e in enumerate(self.order) if k not in drop))

    def select(self, axis: int, index: int) -> "View | None":
        """The view with one index of `axis` picked (the axis disappears); None when it is the batch."""
        a = self.axis(axis)
        entry = self.order[a]
        n = self.size(entry)
        if n == BATCH or n is None:
            return None
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for an axis of size {n}")
        index %= n
        order = self.order[:a] + self.order[a + 1:]
        fixed = list(self.fixed)
        if entry is not None:
            d, i, j = entry
            sizes = [int(s) for s in self.factors[d][i:j]]
            for k, pick in zip(range(i, j), np.unravel_index(index, sizes)):
                if self.factors[d][k] != 1:
                    fixed.append((d, k, int(pick)))
        return replace(self, order=order, fixed=tuple(sorted(fixed)))

    def _split(self, d: int, i: int, first: int) -> "View":
        """Factor i of layer dim d split into (first, size // first); references renumbered."""
        f = self.factors[d]
        factors = list(self.factors)
        factors[d] = f[:i] + (first, f[i] // first) + f[i + 1:]

        def shift(k: int) -> int:
            return k + 1 if k > i else k

        order = tuple(e if e is None or e[0] != d else (d, shift(e[1]), e[2] + 1 if e[2] > i else e[2])
                      for e in self.order)
        fixed = tuple((dd, shift(k) if dd == d else k, x) for dd, k, x in self.fixed)
        return replace(self, factors=tuple(factors), order=order, fixed=fixed)

    def reshape(self, target: Sequence[Any]) -> "View | None":
        """The view reshaped to `target` (sizes, BATCH for the batch), or None when that mixes values of
        different layer dimensions (then a Reshape / Flatten layer is needed)."""
        view = self
        for _ in range(64):
            got = view._reshape_once(target)
            if isinstance(got, tuple):
                view = view._split(*got)
                continue
            return got
        return None

    def _reshape_once(self, target: Sequence[Any]) -> "View | tuple[int, int, int] | None":
        atoms = self._atoms()
        p, order = 0, []
        for t in target:
            if t == 1:
                order.append(None)
                continue
            if t == BATCH:
                if p < len(atoms) and atoms[p] == (0, 0):
                    order.append((0, 0, 1))
                    p += 1
                    continue
                return None
            taken, rest = [], int(t)
            while rest > 1:
                if p >= len(atoms):
                    return None
                d, i = atoms[p]
                s = self.factors[d][i]
                if s == BATCH:
                    return None
                if rest % s == 0:
                    taken.append((d, i))
                    rest //= s
                    p += 1
                elif s % rest == 0:
                    return (d, i, rest)
                else:
                    return None
            d = taken[0][0]
            idx = [k for _, k in taken]
            if any(a[0] != d for a in taken) or any(x >= y for x, y in zip(idx, idx[1:])):
                return None  # values of different layer dimensions, or out of their order: not a view
            if any(self.factors[d][k] != 1 for k in range(idx[0], idx[-1] + 1) if k not in idx):
                return None
            order.append((d, idx[0], idx[-1] + 1))
        if p != len(atoms):
            return None
        return replace(self, order=tuple(order))

    # ---- realising the view with layers --------------------------------------------------------------------
    def layout_steps(self) -> list[tuple[str, dict[str, Any]]]:
        """The (layer type, params) to apply to `node` so that its output is this view; [] when it already is."""
        if self.fixed:
            d, i, k = self.fixed[0]
            raise LayoutError(f"it uses only part of a tensor (index {k} of a dimension of size "
                              f"{self.factors[d][i]}), and no catalogue layer picks part of a tensor")
        ll = [_prod(list(f)) for f in self.factors]
        atoms_ll = [(d, i) for d, f in enumerate(self.factors) for i in range(len(f)) if f[i] != 1]
        refined = [self.factors[d][i] for d, i in atoms_ll]
        perm = [atoms_ll.index(a) for a in self._atoms()]
        if not perm or perm[0] != 0:
            raise LayoutError("it moves the batch axis away from the front, and LayerLoom layers keep the batch "
                              "first")
        steps: list[tuple[str, dict[str, Any]]] = []
        cur = ll
        if perm != list(range(len(perm))):
            if refined != ll:
                steps.append(reshape_step(cur, refined))
                cur = refined
            steps.append(("Permute", {"dims": [p - 1 for p in perm[1:]]}))
            cur = [refined[p] for p in perm]
        final = list(self.shape)
        if final != cur:
            steps.append(reshape_step(cur, final))
        return steps


def reshape_step(cur: list[Any], final: list[Any]) -> tuple[str, dict[str, Any]]:
    """A Flatten when `final` joins one run of consecutive dimensions of `cur`, else a Reshape."""
    if len(final) < 2:
        raise LayoutError("it leaves one number per sample with no dimension of its own, which LayerLoom tensors "
                          "cannot be (they keep at least one dimension besides the batch)")
    for a in range(1, len(cur)):
        for b in range(a + 1, len(cur)):
            if final == cur[:a] + [math.prod(cur[a:b + 1])] + cur[b + 1:]:
                return ("Flatten", {"start_dim": a, "end_dim": -1 if b == len(cur) - 1 else b})
    return ("Reshape", {"shape": [int(s) for s in final[1:]]})


def stack(views: Sequence[View], axis: int) -> View | None:
    """Concat of views that pick indices 0, 1, … of one factor, along the axis that factor sits before: the
    un-picked view (how `torch.cat([h[0], h[1]], -1)` of a bidirectional state reads). None if not that."""
    first = views[0]
    if any(v.node != first.node or v.factors != first.factors or v.order != first.order for v in views):
        return None
    a = first.axis(axis)
    common = set.intersection(*(set(v.fixed) for v in views))
    own = [sorted(set(v.fixed) - common) for v in views]
    if any(len(o) != 1 for o in own):
        return None
    d, i = own[0][0][0], own[0][0][1]
    if len(views) != first.factors[d][i] or any(o[0] != (d, i, m) for m, o in enumerate(own)):
        return None
    entry = first.order[a]
    if entry is None:
        new: Entry = (d, i, i + 1)
    elif entry[0] == d and entry[1] == i + 1:
        new = (d, i, entry[2])
    else:
        return None
    order = first.order[:a] + (new,) + first.order[a + 1:]
    return replace(first, order=order, fixed=tuple(sorted(common)))


@dataclass(frozen=True)
class Pieces:
    """A Concat along `axis` kept apart until a consumer picks a piece or needs the whole."""

    parts: tuple[Any, ...]
    axis: int
    producer: int

    @property
    def shape(self) -> tuple[Any, ...]:
        shapes = [p.shape for p in self.parts]
        out = list(shapes[0])
        sizes = [s[self.axis] for s in shapes]
        out[self.axis] = BATCH if BATCH in sizes else sum(sizes)
        return tuple(out)

    @property
    def dtype(self) -> str:
        return self.parts[0].dtype


@dataclass(frozen=True)
class Padded:
    """Pad's output: `value` padded by `pads` (ONNX order: all begins, then all ends) in `mode`."""

    value: View
    pads: tuple[int, ...]
    mode: str
    constant: float
    producer: int

    @property
    def shape(self) -> tuple[Any, ...]:
        n = len(self.value.shape)
        return tuple(s if s == BATCH else s + self.pads[k] + self.pads[k + n] for k, s in enumerate(self.value.shape))

    @property
    def dtype(self) -> str:
        return self.value.dtype
