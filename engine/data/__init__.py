"""The training engine's data: bundled, generated and file sources, described by plain settings.

The project file's "data" section is a plain dict::

    {"source": "digits", "params": {"size": 28},
     "split": {"val": 0.15, "test": 0.15, "seed": 0, "stratify": true},
     "augment": {"flip": false, "shift": 0, "rotate": 0.0}}

`load_data(settings)` turns it into a `DataBundle` of NumPy arrays (train, val, test), or raises DataError
saying what to change. `sources()` lists the sources with their explanations and parameters; `check_fit` says
whether the data suits a network's Input, output and loss; `augment_batch` changes a batch of training images.

`import engine.data` loads NumPy but neither torch, scikit-learn nor Pillow: each loads when it is needed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError

# isort: off
from . import bundled, generated, files  # noqa: F401  (each registers its sources, in the order they are listed)
# isort: on
from .augment import augment_batch
from .base import (
    AUGMENT_PARAMS,
    BINARY,
    BUNDLED,
    CLASSIFICATION,
    FILE,
    GENERATED,
    RECONSTRUCTION,
    REGRESSION,
    SOURCES,
    SPLIT_PARAMS,
    TASKS,
    Context,
    DataBundle,
    DataParam,
    DataParamError,
    SourceSpec,
    Split,
    augment_on,
    normalize_settings,
    split_indices,
)
from .fit import check_fit, fit_problems


def sources() -> list[SourceSpec]:
    """Every data source, bundled sets first, then generated ones, then files."""
    return SOURCES.all()


def get_source(name: str) -> SourceSpec:
    """A source by any common spelling of its name; DataError with the nearest names when there is none."""
    return SOURCES.get(name)


def default_settings(source: str = "digits") -> dict[str, Any]:
    """Complete settings for a source with every default filled in."""
    return normalize_settings({"source": source})


def load_data(settings: dict[str, Any], *, base_dir: str | os.PathLike | None = None) -> DataBundle:
    """Load the data the settings describe: the same settings always give the same arrays.

    base_dir is where relative paths start (the project file's folder). Raises DataError (DataParamError for
    an unknown or out-of-range setting) with what to change."""
    s = normalize_settings(settings)
    spec = SOURCES.get(s["source"])
    split = s["split"]
    ctx = Context(source=spec.type, params=s["params"], val=split["val"], test=split["test"], seed=split["seed"],
                  stratify=split["stratify"], base_dir=Path(base_dir) if base_dir is not None else None)
    bundle = spec.load(s["params"], ctx)
    if augment_on(s["augment"]) and not bundle.is_image:
        shape = "(" + ", ".join(map(str, bundle.sample_shape)) + ("," if len(bundle.sample_shape) == 1 else "") + ")"
        fix = (" or set flatten off (and flatten inside the network)" if s["params"].get("flatten") else "")
        raise DataError(f"augmentation (flip, shift, rotate) works on images (channels, height, width), but "
                        f"{spec.type} gives {shape} {bundle.dtype}: turn it off in the data settings{fix}")
    bundle.settings = s
    return bundle


__all__ = [
    "AUGMENT_PARAMS", "BINARY", "BUNDLED", "CLASSIFICATION", "FILE", "GENERATED", "RECONSTRUCTION", "REGRESSION",
    "SPLIT_PARAMS", "TASKS", "DataBundle", "DataError", "DataParam", "DataParamError", "SourceSpec", "Split",
    "augment_batch", "check_fit", "default_settings", "fit_problems", "get_source", "load_data",
    "normalize_settings", "sources", "split_indices",
]
