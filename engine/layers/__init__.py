"""The layer catalogue: look up a LayerSpec by type name, list them by category."""
from __future__ import annotations

import difflib

from ..errors import UnknownLayerError
from .base import CATEGORIES, FLOAT32, INT64, LayerSpec, TensorInfo, fmt
from .catalogue import SPECS

_BY_TYPE: dict[str, LayerSpec] = {s.type: s for s in SPECS}
_BY_LOWER: dict[str, LayerSpec] = {s.type.lower(): s for s in SPECS}


def get_spec(layer_type: str) -> LayerSpec:
    """The spec of a layer type; case-insensitive. Raises UnknownLayerError with the nearest names."""
    if isinstance(layer_type, str):
        spec = _BY_TYPE.get(layer_type) or _BY_LOWER.get(layer_type.lower())
        if spec is not None:
            return spec
    near = difflib.get_close_matches(str(layer_type), list(_BY_TYPE), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(near)}?" if near else "; see `layerloom layers` for the list"
    raise UnknownLayerError(f"there is no layer type {layer_type!r}{hint}")


def all_specs() -> list[LayerSpec]:
    return list(SPECS)


def by_category() -> dict[str, list[LayerSpec]]:
    out: dict[str, list[LayerSpec]] = {c: [] for c in CATEGORIES}
    for s in SPECS:
        out[s.category].append(s)
    return out


__all__ = ["CATEGORIES", "FLOAT32", "INT64", "LayerSpec", "TensorInfo", "all_specs", "by_category", "fmt",
           "get_spec"]
