"""The layer catalogue: look up a LayerSpec by type name, list them by category."""
from __future__ import annotations

from .base import CATEGORIES, FLOAT32, INT64, LayerSpec, TensorInfo, fmt
from .catalogue import LAYERS


def get_spec(layer_type: str) -> LayerSpec:
    """The spec of a layer type, in any case ("conv2d"). Raises UnknownLayerError with the nearest names."""
    return LAYERS.get(layer_type)


def all_specs() -> list[LayerSpec]:
    return LAYERS.all()


def by_category() -> dict[str, list[LayerSpec]]:
    out: dict[str, list[LayerSpec]] = {c: [] for c in CATEGORIES}
    for s in LAYERS.all():
        out[s.category].append(s)
    return out


__all__ = ["CATEGORIES", "FLOAT32", "INT64", "LayerSpec", "TensorInfo", "all_specs", "by_category", "fmt",
           "get_spec"]
