"""Typed parameter declarations shared by layers, losses, optimizers and schedules, with validation."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import ParamError

# kinds of parameter values
INT, FLOAT, BOOL, CHOICE, INTS, INT_TUPLE, PADDING, FLOATS = (
    "int", "float", "bool", "choice", "ints", "int_tuple", "padding", "floats",
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


@dataclass(frozen=True)
class Param:
    """One parameter: its name (PyTorch's), kind, default, allowed range or choices, and a line of help.

    kinds: int, float, bool, choice, ints (a list such as a shape), int_tuple (an int or a list of
    `length` ints, like kernel_size), padding (an int_tuple or "same"/"valid"), floats (a list of floats).
    `optional` allows None (PyTorch's "not set", e.g. a pooling stride that defaults to the kernel).
    """

    name: str
    kind: str
    default: Any
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None          # for int_tuple / padding: the tuple length; for ints/floats: exact length
    min_length: int = 1                # for ints / floats
    max_length: int = 8
    optional: bool = False
    allow_minus_one: bool = False       # for ints: one -1 allowed (Reshape)
    exclusive_min: bool = False
    effect: str = ""                    # "what this changes", for the inspector
    aliases: tuple[tuple[str, str], ...] = ()  # for choice: other spellings accepted, e.g. ("long", "int64")

    def describe_range(self) -> str:
        if self.kind == CHOICE:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo = "" if self.min is None else (f"> {self.min:g}" if self.exclusive_min else f"≥ {self.min:g}")
        hi = "" if self.max is None else f"≤ {self.max:g}"
        return " and ".join(p for p in (lo, hi) if p)

    def _range_error(self, owner: str, value: Any) -> ParamError:
        return ParamError(f"{owner}: {self.name} = {value!r} is out of range; it must be {self.describe_range()}",
                          self.name)

    def _check_number(self, owner: str, v: float) -> None:
        if self.min is not None and (v < self.min or (self.exclusive_min and v == self.min)):
            raise self._range_error(owner, v)
        if self.max is not None and v > self.max:
            raise self._range_error(owner, v)

    def _check_int(self, owner: str, v: Any, what: str | None = None) -> int:
        if not _is_int(v):
            raise ParamError(f"{owner}: {what or self.name} must be a whole number, not {v!r}", self.name)
        self._check_number(owner, v)
        return v

    def validate(self, owner: str, value: Any) -> Any:
        """Return the value in its canonical form, or raise ParamError saying what is allowed."""
        if value is None:
            if self.optional:
                return None
            raise ParamError(f"{owner}: {self.name} needs a value", self.name)
        k = self.kind
        if k == INT:
            return self._check_int(owner, value)
        if k == FLOAT:
            if not _is_number(value):
                raise ParamError(f"{owner}: {self.name} must be a number, not {value!r}", self.name)
            value = float(value)
            self._check_number(owner, value)
            return value
        if k == BOOL:
            if not isinstance(value, bool):
                raise ParamError(f"{owner}: {self.name} must be true or false, not {value!r}", self.name)
            return value
        if k == CHOICE:
            aliases = dict(self.aliases)
            key = value if isinstance(value, str) else str(value)  # e.g. torch.int64 → "torch.int64"
            aliases.update((c.lower(), c) for c in self.choices)  # "Zeros" or "INT64" as well
            value = aliases.get(key, aliases.get(key.lower(), value))
            if value not in self.choices:
                raise ParamError(f"{owner}: {self.name} = {value!r} is not allowed; it must be "
                                 f"{self.describe_range()}", self.name)
            return value
        if k == PADDING and isinstance(value, str):
            if value not in ("same", "valid"):
                raise ParamError(f"{owner}: {self.name} must be a whole number, a list of "
                                 f"{self.length}, 'same' or 'valid', not {value!r}", self.name)
            return value
        if k in (INT_TUPLE, PADDING):
            if _is_int(value):
                return self._check_int(owner, value)
            if isinstance(value, (list, tuple)) and len(value) == self.length:
                items = [self._check_int(owner, v, f"each value of {self.name}") for v in value]
                return items[0] if len(set(items)) == 1 else items
            raise ParamError(f"{owner}: {self.name} must be a whole number or a list of {self.length}, "
                             f"not {value!r}", self.name)
        if k in (INTS, FLOATS):
            if not isinstance(value, (list, tuple)):
                raise ParamError(f"{owner}: {self.name} must be a list, not {value!r}", self.name)
            n = len(value)
            if self.length is not None and n != self.length:
                raise ParamError(f"{owner}: {self.name} must have {self.length} values, not {n}", self.name)
            if not self.min_length <= n <= self.max_length:
                raise ParamError(f"{owner}: {self.name} must have between {self.min_length} and "
                                 f"{self.max_length} values, not {n}", self.name)
            if k == FLOATS:
                out = []
                for v in value:
                    if not _is_number(v):
                        raise ParamError(f"{owner}: each value of {self.name} must be a number, not {v!r}",
                                         self.name)
                    self._check_number(owner, float(v))
                    out.append(float(v))
                return out
            out = []
            for v in value:
                if self.allow_minus_one and v == -1 and _is_int(v):
                    out.append(-1)
                    continue
                out.append(self._check_int(owner, v, f"each value of {self.name}"))
            if self.allow_minus_one and out.count(-1) > 1:
                raise ParamError(f"{owner}: only one value of {self.name} may be -1 (the size worked out "
                                 f"from the others)", self.name)
            return out
        raise AssertionError(f"unknown parameter kind {k}")  # a catalogue bug, not a user error


def validate_params(owner: str, declared: tuple[Param, ...], values: dict[str, Any],
                    base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge `values` over `base` (or the defaults) and validate each; unknown names are refused."""
    if not isinstance(values, dict):
        raise ParamError(f"{owner}: parameters must be a mapping of names to values, not {values!r}")
    by_name = {p.name: p for p in declared}
    unknown = [k for k in values if k not in by_name]
    if unknown:
        known = ", ".join(by_name) or "none"
        raise ParamError(f"{owner} has no parameter {unknown[0]!r}; its parameters are: {known}", unknown[0])
    out = dict(base) if base is not None else {p.name: p.default for p in declared}
    for name, value in values.items():
        out[name] = by_name[name].validate(owner, value)
    return out


def as_tuple(value: Any, n: int) -> tuple[int, ...]:
    """An int_tuple value as a tuple of n ints."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * n
