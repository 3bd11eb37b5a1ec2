"""The layer catalogue: look up a LayerSpec by type name, list them by category.

`all_specs()` and `by_category()` list the layers of the palette; `get_spec` also finds the structural node types
of structure.py (Block, BlockInput, BlockOutput, Pick, Custom), which `structural_specs()` lists.
"""
from __future__ import annotations

from .base import CATEGORIES, FLOAT32, INT64, LayerSpec, TensorInfo, fmt
from .catalogue import LAYERS
from .structure import StructuralSpec, find_structural, structural_specs


def get_spec(layer_type: str) -> LayerSpec:
    """The spec of a layer type, in any case ("conv2d"). Raises UnknownLayerError with the nearest names."""
    special = find_structural(layer_type)
    if special is not None:
        return special
    return LAYERS.get(layer_type)


def all_specs() -> list[LayerSpec]:
    return LAYERS.all()


def by_category() -> dict[str, list[LayerSpec]]:
    out: dict[str, list[LayerSpec]] = {c: [] for c in CATEGORIES}
    for s in LAYERS.all():
        out[s.category].append(s)
    return out


__all__ = ["CATEGORIES", "FLOAT32", "INT64", "LayerSpec", "StructuralSpec", "TensorInfo", "all_specs", "by_category",
           "fmt", "get_spec", "structural_specs"]
