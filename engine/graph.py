"""The network graph: nodes (layers with parameters and positions) and the edges between them.

Every edit is validated before it mutates, emits events (no Qt), and raises a typed GraphError
that leaves the graph unchanged when it is refused.
"""
from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import CycleError, GraphError, NodeNotFoundError, ParamError, PortError
from .events import Events
from .layers import get_spec

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_NUMBERED_RE = re.compile(r"(.*)_(\d+)")  # prefix_N; a default prefix holds no "_", so the last one splits
MAX_LR_FACTOR = 1000.0


@dataclass
class Node:
    """One layer. `frozen` keeps its weights fixed while training (and its BatchNorm statistics); `lr_factor`
    multiplies the optimizer's learning rate for its weights (e.g. 0.1 to fine-tune transferred layers gently)."""

    id: str
    type: str
    params: dict[str, Any]
    position: tuple[float, float] = (0.0, 0.0)
    frozen: bool = False
    lr_factor: float = 1.0

    @property
    def spec(self):
        return get_spec(self.type)


@dataclass(frozen=True)
class Edge:
    """A wire from `source`'s output into `target`'s input; its place among the target's inputs is its order."""

    source: str
    target: str


def check_training_flags(frozen: Any, lr_factor: Any) -> tuple[bool, float]:
    """`frozen` and `lr_factor` checked: a bool, and a finite number above 0. Raises ParamError saying what is
    allowed."""
    if not isinstance(frozen, bool):
        raise ParamError(f"frozen must be true or false, not {frozen!r}", "frozen")
    if isinstance(lr_factor, bool) or not isinstance(lr_factor, (int, float)):
        raise ParamError(f"lr_factor must be a number (1 = the optimizer's learning rate), not {lr_factor!r}",
                         "lr_factor")
    try:
        value = float(lr_factor)
    except OverflowError:  # an integer too large for a float
        value = math.inf
    if not math.isfinite(value) or value <= 0 or value > MAX_LR_FACTOR:
        raise ParamError(f"lr_factor = {value:g} must be above 0 and at most {MAX_LR_FACTOR:g} (1 = the "
                         f"optimizer's learning rate, 0.1 = ten times slower); to stop a layer learning, freeze "
                         f"it instead", "lr_factor")
    return frozen, value


# Shorter id prefixes for a few types: a block's ports read in_1, out_1 (not blockinput_1), attention attention_1.
PREFIXES = {"BlockInput": "in", "BlockOutput": "out", "MultiheadAttention": "attention"}


def default_prefix(layer_type: str) -> str:
    if layer_type in PREFIXES:
        return PREFIXES[layer_type]
    return re.sub(r"[^a-z0-9]+", "", layer_type.lower()) or "node"


def id_prefix(node_id: str) -> str:
    """The prefix of an id: conv2d for conv2d_3, res_block for res_block_1, the id itself when it has no number."""
    m = _NUMBERED_RE.fullmatch(node_id)
    return m.group(1) if m else node_id


@dataclass
class Graph:
    """Nodes in insertion order (which is also the order of the Input nodes) and ordered edges."""

    nodes: dict[str, Node] = field(default_factory=dict)
    events: Events = field(default_factory=lambda: Events(
        "node_added", "node_removed", "edge_added", "edge_removed", "node_moved", "params_changed", "changed"),
        repr=False, compare=False)

    def __post_init__(self) -> None:
        self._in: dict[str, list[str]] = {nid: [] for nid in self.nodes}
        self._out: dict[str, list[str]] = {nid: [] for nid in self.nodes}
        self.revision = 0
        # new_id's index: the numbers taken per prefix and, per prefix, a number below which all are taken.
        # Kept up to date by add_node and remove_node, so that building a 5,000-node graph does not rescan
        # every id on each add; rebuilt when `nodes` grew or shrank behind the graph's back.
        self._numbers: dict[str, set[int]] | None = None
        self._lowest_free: dict[str, int] = {}
        self._indexed_count = 0

    # ---- queries -------------------------------------------------------------------------------
    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, node_id: str) -> Node:
        try:
            return self.nodes[node_id]
        except (KeyError, TypeError):
            raise NodeNotFoundError(f"there is no node {node_id!r} in the graph") from None

    @property
    def edges(self) -> list[Edge]:
        """All edges, grouped by target in node order, each target's inputs in their order."""
        return [Edge(s, t) for t in self.nodes for s in self._in[t]]

    def inputs_of(self, node_id: str) -> list[str]:
        self.node(node_id)
        return list(self._in[node_id])

    def outputs_of(self, node_id: str) -> list[str]:
        self.node(node_id)
        return list(self._out[node_id])

    def input_nodes(self) -> list[str]:
        return [nid for nid, n in self.nodes.items() if n.type == "Input"]

    def sink_nodes(self) -> list[str]:
        """Nodes whose output nobody uses, in node order: the model's outputs."""
        sinks = [nid for nid, n in self.nodes.items() if not self._out[nid] and n.type != "Input"]
        if not sinks:
            sinks = [nid for nid in self.nodes if not self._out[nid]]
        return sinks

    def topological_order(self) -> list[str]:
        """Node ids so that every node comes after all of its inputs; ties keep node order."""
        indeg = {nid: len(self._in[nid]) for nid in self.nodes}
        pos = {nid: i for i, nid in enumerate(self.nodes)}
        ready = sorted((nid for nid, d in indeg.items() if d == 0), key=pos.__getitem__, reverse=True)
        order: list[str] = []
        while ready:
            nid = ready.pop()
            order.append(nid)
            added = False
            for t in self._out[nid]:
                indeg[t] -= 1
                if indeg[t] == 0:
                    ready.append(t)
                    added = True
            if added:
                ready.sort(key=pos.__getitem__, reverse=True)
        return order

    def _reaches(self, start: str, goal: str) -> bool:
        """Whether a path leads from `start` down to `goal`. Searched from both ends at once (down from `start`,
        up from `goal`), one node each in turn, so the answer costs about the smaller side: an undo that re-adds
        a 5,000-node chain from its end, wiring each node above the rest, stops at once instead of walking the
        whole chain below every time."""
        if start == goal:
            return True
        down, up = [start], [goal]
        below, above = {start}, {goal}
        while down and up:
            for nid in self._out[down.pop()]:
                if nid in above:
                    return True
                if nid not in below:
                    below.add(nid)
                    down.append(nid)
            for nid in self._in[up.pop()]:
                if nid in below:
                    return True
                if nid not in above:
                    above.add(nid)
                    up.append(nid)
        return False

    def new_id(self, layer_type: str) -> str:
        """`prefix_N` with the lowest N ≥ 1 that no node id uses (`conv2d_1`, then `conv2d_2`, ...)."""
        return self.free_id(default_prefix(layer_type))

    def free_id(self, prefix: str) -> str:
        """`prefix_N` with the lowest N ≥ 1 that no node id uses (`res_block_1`, ...)."""
        used = self._id_numbers().get(prefix, ())
        n = self._lowest_free.get(prefix, 1)
        while n in used:
            n += 1
        self._lowest_free[prefix] = n
        return f"{prefix}_{n}"

    def _id_numbers(self) -> dict[str, set[int]]:
        if self._numbers is None or self._indexed_count != len(self.nodes):
            self._numbers, self._lowest_free = {}, {}
            self._indexed_count = 0
            for nid in self.nodes:
                self._index_id(nid, True)
        return self._numbers

    def _index_id(self, node_id: str, added: bool) -> None:
        if self._numbers is None:
            return  # not built yet: the first new_id builds it from `nodes`
        self._indexed_count += 1 if added else -1
        m = _NUMBERED_RE.fullmatch(node_id)
        if m is None:
            return
        prefix, n = m.group(1), int(m.group(2))
        if added:
            self._numbers.setdefault(prefix, set()).add(n)
        else:
            self._numbers.get(prefix, set()).discard(n)
            if n < self._lowest_free.get(prefix, 1):
                self._lowest_free[prefix] = max(n, 1)

    # ---- edits ---------------------------------------------------------------------------------
    def _touch(self) -> None:
        self.revision += 1
        self.events.emit("changed")

    def add_node(self, layer_type: str, params: dict[str, Any] | None = None, *, node_id: str | None = None,
                 position: Iterable[float] | None = None, index: int | None = None, frozen: bool = False,
                 lr_factor: float = 1.0, **kw: Any) -> str:
        """Add a layer and return its id (`conv2d_1`, ...). Parameters are PyTorch's names; missing ones
        take their defaults. `index` puts the node at that place in node order (used by undo); `frozen` and
        `lr_factor` are its training flags (see Node)."""
        spec = get_spec(layer_type)
        values = dict(params or {})
        values.update(kw)
        checked = spec.validate_params(values)
        frozen, lr_factor = check_training_flags(frozen, lr_factor)
        if node_id is None:
            node_id = self.new_id(spec.type)
        elif not isinstance(node_id, str) or not _ID_RE.match(node_id):
            raise GraphError(f"node id {node_id!r} must start with a letter and hold only letters, digits "
                             f"and _ (at most 64)")
        elif node_id in self.nodes:
            raise GraphError(f"there is already a node {node_id!r}")
        pos = _position(position)
        node = Node(node_id, spec.type, checked, pos, frozen, lr_factor)
        if index is None or index >= len(self.nodes):
            self.nodes[node_id] = node
        else:
            self._insert_node(node, max(0, index))
        self._in[node_id] = []
        self._out[node_id] = []
        self._index_id(node_id, True)
        self.events.emit("node_added", node)
        self._touch()
        return node_id

    def _insert_node(self, node: Node, index: int) -> None:
        """Put a new node at `index` in node order. An undo of a large delete re-adds nodes one by one near the
        front, so this must not rebuild the dict item by item: the part before `index` is copied and the rest
        follows by one C-level update (its keys already there keep their places), or, near the end, the few
        nodes after `index` are moved behind the new one."""
        tail = len(self.nodes) - index
        if index <= tail:
            nodes = dict(itertools.islice(self.nodes.items(), index))
            nodes[node.id] = node
            nodes.update(self.nodes)
            self.nodes = nodes
        else:
            after = list(itertools.islice(reversed(self.nodes), tail))
            self.nodes[node.id] = node
            for nid in reversed(after):
                self.nodes[nid] = self.nodes.pop(nid)

    def remove_node(self, node_id: str) -> tuple[Node, list[tuple[Edge, int]]]:
        """Remove a node and its edges; returns the node and each removed edge with its input index,
        so that an undo can put everything back exactly."""
        node = self.node(node_id)
        removed = []
        for src in list(self._in[node_id]):
            removed.append((Edge(src, node_id), self._in[node_id].index(src)))
            self.disconnect(src, node_id)
        for dst in list(self._out[node_id]):
            removed.append((Edge(node_id, dst), self._in[dst].index(node_id)))
            self.disconnect(node_id, dst)
        del self.nodes[node_id]
        del self._in[node_id]
        del self._out[node_id]
        self._index_id(node_id, False)
        self.events.emit("node_removed", node)
        self._touch()
        return node, removed

    def check_connect(self, source: str, target: str) -> None:
        """Raise the error connect() would raise, without changing anything."""
        self.node(source)  # raises NodeNotFoundError
        dst = self.node(target)
        if source == target:
            raise CycleError(f"{source} cannot feed itself")
        if source in self._in[target]:
            raise PortError(f"{source} is already connected to {target}")
        max_inputs = max_inputs_of(dst)
        have = self._in[target]
        if max_inputs == 0:
            raise PortError(f"{target} is an {dst.type} node: it takes no input, data flows out of it")
        if max_inputs is not None and len(have) >= max_inputs:
            taken = ", ".join(have)
            raise PortError(f"{target} ({dst.type}) takes {_count(max_inputs)} and already has "
                            f"{'it' if max_inputs == 1 else 'them'} from {taken}: disconnect that first")
        if self._reaches(target, source):
            raise CycleError(f"connecting {source} → {target} would make a loop: {target} already feeds "
                             f"{source}. Networks here must flow one way")

    def connect(self, source: str, target: str, index: int | None = None) -> Edge:
        """Wire `source`'s output into `target`. Inputs are ordered by connect() calls, or by `index`."""
        self.check_connect(source, target)
        ins = self._in[target]
        if index is None or index >= len(ins):
            ins.append(source)
        else:
            ins.insert(max(0, index), source)
        self._out[source].append(target)
        edge = Edge(source, target)
        self.events.emit("edge_added", edge)
        self._touch()
        return edge

    def disconnect(self, source: str, target: str) -> int:
        """Remove the edge source → target; returns the input index it had."""
        self.node(source), self.node(target)
        if source not in self._in[target]:
            raise GraphError(f"{source} is not connected to {target}")
        index = self._in[target].index(source)
        self._in[target].remove(source)
        self._out[source].remove(target)
        self.events.emit("edge_removed", Edge(source, target))
        self._touch()
        return index

    def move(self, node_id: str, x: float, y: float) -> None:
        node = self.node(node_id)
        node.position = _position((x, y))
        self.events.emit("node_moved", node)
        self.events.emit("changed")  # a move changes no shape, so it does not bump the revision

    def set_params(self, node_id: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """Change some parameters (validated first); returns the previous values of those changed, so
        `set_params(node_id, old)` undoes it. A Block's exposed parameter (or a Custom layer's argument) is a
        virtual name: the previous value returned for it is the whole "graph" (or "arguments") that holds it."""
        node = self.node(node_id)
        values = dict(params or {})
        values.update(kw)
        spec = node.spec
        checked = spec.validate_params(values, base=node.params)
        old: dict[str, Any] = {}
        for k in values:
            if k in node.params:
                old[k] = node.params[k]
            else:  # a virtual parameter (a block's exposed one, a custom layer's argument): keep what holds it
                owner = spec.virtual_owner(k)  # type: ignore[attr-defined]
                old[owner] = node.params[owner]
        node.params = checked
        self.events.emit("params_changed", node)
        self._touch()
        return old

    def set_training_flags(self, node_id: str, *, frozen: bool | None = None,
                           lr_factor: float | None = None) -> dict[str, Any]:
        """Freeze or unfreeze a node, or change its learning-rate factor (None leaves a flag as it is); checked
        first (ParamError, nothing changed). Returns the previous values of the flags given, so
        `set_training_flags(node_id, **old)` undoes it. Emits params_changed and changed; the revision stays,
        since no shape changes."""
        node = self.node(node_id)
        new_frozen = node.frozen if frozen is None else frozen
        new_factor = node.lr_factor if lr_factor is None else lr_factor
        new_frozen, new_factor = check_training_flags(new_frozen, new_factor)
        old: dict[str, Any] = {}
        if frozen is not None:
            old["frozen"] = node.frozen
        if lr_factor is not None:
            old["lr_factor"] = node.lr_factor
        node.frozen, node.lr_factor = new_frozen, new_factor
        self.events.emit("params_changed", node)
        self.events.emit("changed")
        return old

    def frozen_nodes(self) -> list[str]:
        """The ids of the frozen nodes, in node order."""
        return [nid for nid, n in self.nodes.items() if n.frozen]

    def clear(self) -> None:
        for nid in list(reversed(self.nodes)):
            self.remove_node(nid)

    # ---- plain data ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data; a node's `frozen` and `lr_factor` appear only when they differ from the defaults."""
        return {
            "nodes": [_node_dict(n) for n in self.nodes.values()],
            "edges": [{"source": e.source, "target": e.target} for e in self.edges],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Graph":
        """Rebuild a graph from to_dict() output; raises GraphError on anything wrong."""
        g = cls()
        for node in data["nodes"]:
            g.add_node(node["type"], node.get("params", {}), node_id=node["id"], position=node.get("position"),
                       frozen=node.get("frozen", False), lr_factor=node.get("lr_factor", 1.0))
        for edge in data["edges"]:
            g.connect(edge["source"], edge["target"])
        return g

    def copy(self) -> "Graph":
        return Graph.from_dict(self.to_dict())


def max_inputs_of(node: Node) -> int | None:
    """How many inputs the node takes at most (a Block: as many as its inner graph has BlockInput ports)."""
    spec = node.spec
    ports = getattr(spec, "ports", None)
    return ports(node.params)[1] if ports is not None else spec.max_inputs


def node_dict(n: Node) -> dict[str, Any]:
    """A node as plain data (a deep copy), as in to_dict()."""
    return _node_dict(n)


def _node_dict(n: Node) -> dict[str, Any]:
    d: dict[str, Any] = {"id": n.id, "type": n.type, "params": _plain(n.params), "position": list(n.position)}
    if n.frozen:
        d["frozen"] = True
    if n.lr_factor != 1.0:
        d["lr_factor"] = n.lr_factor
    return d


def _count(n: int) -> str:
    return "one input" if n == 1 else f"{n} inputs"


def _position(position: Iterable[float] | None) -> tuple[float, float]:
    if position is None:
        return (0.0, 0.0)
    try:
        x, y = position
        x, y = float(x), float(y)
    except (TypeError, ValueError, OverflowError):
        raise GraphError(f"a position is two numbers (x, y), not {position!r}") from None
    if x != x or y != y or abs(x) > 1e9 or abs(y) > 1e9:
        raise GraphError(f"a position must be two finite numbers, not {position!r}")
    return (x, y)


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) for k, v in params.items()}


def _copy(value: Any) -> Any:
    """Tuples as lists, and nested containers (a Block's inner graph) copied, so to_dict() shares nothing."""
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value
