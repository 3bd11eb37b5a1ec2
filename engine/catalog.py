"""What layer, loss, optimizer and schedule specs share: parameter handling, the explanation text, and a
registry that finds a spec by any common spelling of its name and suggests the nearest when it cannot."""
from __future__ import annotations

import difflib
from typing import Any, Generic, TypeVar

from .errors import LayerLoomError
from .params import Param, validate_params


class Described:
    """Mixin for a frozen spec dataclass with `type`, `summary`, `doc`, `formula` and `params` fields, and
    optionally `check` (a rule tying several parameters together) and `torch_name`."""

    formula_label = "Formula"

    def owner(self) -> str:
        """How messages about its parameters name it."""
        return self.type  # type: ignore[attr-defined]

    def validate_params(self, values: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        """Merge `values` over `base` (or the defaults) and validate; raises ParamError saying how to fix it."""
        out = validate_params(self.owner(), self.params, values, base)  # type: ignore[attr-defined]
        check = getattr(self, "check", None)
        if check is not None:
            check(out)
        return out

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}  # type: ignore[attr-defined]

    def explain_extra(self) -> list[str]:
        """Lines a kind of spec adds after the formula (targets, when it steps, ...)."""
        return []

    def explain(self) -> str:
        """The full explanation shown in the palette, the inspector and `layerloom layers TYPE`."""
        lines = [f"{self.type} — {self.summary}", "", self.doc]  # type: ignore[attr-defined]
        if self.formula:  # type: ignore[attr-defined]
            lines += ["", f"{self.formula_label}: {self.formula}"]  # type: ignore[attr-defined]
        lines += self.explain_extra()
        torch_name = getattr(self, "torch_name", "")
        if torch_name:
            lines.append(f"PyTorch: torch.{torch_name}")
        params: tuple[Param, ...] = self.params  # type: ignore[attr-defined]
        if params:
            lines += ["", "Parameters:"]
            for p in params:
                rng = p.describe_range()
                lines.append(f"  {p.name} (default {p.default!r}{'; ' + rng if rng else ''}): {p.doc}")
        return "\n".join(lines)


S = TypeVar("S")


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


class Catalog(Generic[S]):
    """Specs by name: exact, any case, without - _ or spaces, or by PyTorch's class name."""

    def __init__(self, what: str, error: type[LayerLoomError], list_all: bool = True, more: str = "",
                 plural: str = ""):
        self.what, self.error, self.list_all, self.more = what, error, list_all, more
        self.plural = plural or what + "s"
        self._specs: list[S] = []
        self._by_key: dict[str, S] = {}

    def register(self, spec: S) -> S:
        self._specs.append(spec)
        self._by_key[_key(spec.type)] = spec  # type: ignore[attr-defined]
        torch_name = getattr(spec, "torch_name", "")
        if torch_name:
            self._by_key.setdefault(_key(torch_name.rsplit(".", 1)[-1]), spec)
        return spec

    def all(self) -> list[S]:
        return list(self._specs)

    def get(self, name: str) -> S:
        if isinstance(name, str) and _key(name) in self._by_key:
            return self._by_key[_key(name)]
        names = [s.type for s in self._specs]  # type: ignore[attr-defined]
        lower = {n.lower(): n for n in names}
        near = [lower[m] for m in difflib.get_close_matches(str(name).lower(), list(lower), n=3, cutoff=0.5)]
        hint = f"; did you mean {' or '.join(near)}?" if near else "."
        listing = f" The {self.plural} are: {', '.join(names)}" if self.list_all else self.more
        raise self.error(f"there is no {self.what} {name!r}{hint}{listing}")
