"""What every data source shares: the bundle it gives, its spec, the settings schema, splits and standardisation."""
from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..catalog import Catalog, Described
from ..errors import DataError, ParamError
from ..layers.base import FLOAT32, INT64, fmt
from ..params import BOOL, CHOICE, FLOAT, INT, Param, validate_params

CLASSIFICATION, BINARY, REGRESSION, RECONSTRUCTION = "classification", "binary", "regression", "reconstruction"
TASKS = (CLASSIFICATION, BINARY, REGRESSION, RECONSTRUCTION)

# extra parameter kinds for data sources (engine.params knows numbers, flags and choices only)
PATH, TEXT, COLUMN = "path", "text", "column"

BUNDLED, GENERATED, FILE = "bundled", "generated", "file"


class DataParamError(DataError, ParamError):
    """A data setting that is unknown, of the wrong type or out of range.

    Both a DataError (everything `load_data` refuses is one) and a ParamError (like every refused parameter)."""


# ----------------------------------------------------------------------------------------------------
# Parameters

@dataclass(frozen=True)
class DataParam(Param):
    """A Param that may also be a path (kind "path"), a piece of text ("text") or a table column given by its
    name or its position from 0 ("column"; negative counts from the end)."""

    def describe_range(self) -> str:
        if self.kind == PATH:
            return "a path; a relative one starts at the project's folder"
        if self.kind == TEXT:
            return "text"
        if self.kind == COLUMN:
            return "a column name, or its position counting from 0 (-1 = the last)"
        return super().describe_range()

    def validate(self, owner: str, value: Any) -> Any:
        if self.kind not in (PATH, TEXT, COLUMN):
            return super().validate(owner, value)
        if value is None:
            if self.optional:
                return None
            raise ParamError(f"{owner}: {self.name} needs a value", self.name)
        if self.kind == PATH:
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str) or not value.strip():
                raise ParamError(f"{owner}: {self.name} must be the path of a file or folder, not {value!r}",
                                 self.name)
            return value
        if self.kind == TEXT:
            if not isinstance(value, str):
                raise ParamError(f"{owner}: {self.name} must be text, not {value!r}", self.name)
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ParamError(f"{owner}: {self.name} must be a column name or a column position, not {value!r}",
                             self.name)
        return value


def seed_param(what: str = "the generated samples") -> Param:
    return Param("seed", INT, 0, f"random seed of {what}: the same seed gives the same data", min=0,
                 max=2**32 - 1, effect="a different seed draws a different data set of the same kind")


def n_samples_param(default: int, lo: int = 10, hi: int = 200_000) -> Param:
    return Param("n_samples", INT, default, "how many samples to generate (all splits together)", min=lo, max=hi,
                 effect="more samples = slower epochs, less overfitting")


def noise_param(default: float, doc: str, hi: float = 5.0) -> Param:
    return Param("noise", FLOAT, default, doc, min=0.0, max=hi, effect="more noise = a harder task")


TARGET_PARAM = Param("target", CHOICE, "label", "what the network must predict: the image's label, or the image "
                     "itself (an autoencoder: y = x, task reconstruction)", choices=("label", "input"),
                     effect="'input' turns the data into a reconstruction task for autoencoders")
FLATTEN_PARAM = Param("flatten", BOOL, False, "give each image as one long vector (C·H·W,) instead of (C, H, W)",
                      effect="on for networks that start with Linear layers, off for convolutions")
STANDARDIZE_PARAM = Param("standardize", BOOL, True, "rescale every numeric feature to mean 0 and standard "
                          "deviation 1, with the mean and deviation of the training split only",
                          effect="off keeps the raw units (training is then slower and touchier)")


def task_param(choices: tuple[str, ...], default: str = "auto", doc: str = "") -> Param:
    return Param("task", CHOICE, default, doc or "auto: regression for many different numbers, binary for "
                 "two labels, classification for more", choices=choices,
                 effect="decides the targets: class indices (classification), 0/1 floats (binary) or numbers")


def channels_check(source: str, colour: str):
    """A SourceSpec check: an image has 1 channel (grey) or 3 (`colour`); 2 lies inside the Param's range but is
    no kind of image."""
    def check(p: dict) -> None:
        if p["channels"] not in (1, 3):
            raise DataParamError(f"data source {source}: channels = {p['channels']} is not allowed; it must be 1 "
                                 f"(grey) or 3 ({colour})", "channels")
    return check


def pad_ids(ids: np.ndarray, length: int, padding: str) -> np.ndarray:
    """Cut to `length` ids and fill up with 0: "pre" keeps the last words and pads in front, "post" keeps the
    first words and pads at the end."""
    out = np.zeros(length, dtype=np.int64)
    if padding == "pre":
        ids = ids[-length:]
        out[length - len(ids):] = ids
    else:
        ids = ids[:length]
        out[:len(ids)] = ids
    return out


PADDING_PARAM = Param("padding", CHOICE, "pre", "pre: keep the last words and put the padding (0) in front, so a "
                      "recurrent network reads the words last; post: keep the first words, padding at the end",
                      choices=("pre", "post"))
LENGTH_PARAM = Param("length", INT, 100, "word ids per sample: longer texts are cut, shorter ones padded with 0",
                     min=1, max=10_000, effect="must match the Input shape (length,)")


def vocab_param(default: int) -> Param:
    return Param("vocab_size", INT, default, "how many different ids there are, including 0 (padding) and 1 "
                 "(unknown word); the Embedding's num_embeddings must be at least this", min=3, max=10_000_000,
                 effect="smaller = more words become 'unknown'")


# ----------------------------------------------------------------------------------------------------
# The bundle

@dataclass
class Split:
    """One part of the data: inputs x, targets y, and where each sample sits in the whole data set."""

    x: np.ndarray
    y: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class DataBundle:
    """Data ready for training: three splits of NumPy arrays and what they mean.

    x is float32 (measurements, pixels) or int64 (token ids); y is int64 class indices of shape (N,) for
    classification, float32 (N, 1) of 0/1 for binary, float32 (N, k) for regression, and y = x for
    reconstruction. `stats` holds the standardisation fitted on the training split: x_mean, x_std (per
    feature) and y_mean, y_std when the regression targets were standardised (prediction · y_std + y_mean
    gives the original units).
    """

    train: Split
    val: Split
    test: Split
    sample_shape: tuple[int, ...]
    dtype: str
    task: str
    target_shape: tuple[int, ...]
    num_classes: int | None
    class_names: tuple[str, ...] | None
    name: str
    description: str
    feature_names: tuple[str, ...] | None = None
    vocabulary: tuple[str, ...] | None = None
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def target_dtype(self) -> str:
        return INT64 if self.task == CLASSIFICATION else FLOAT32

    @property
    def num_samples(self) -> int:
        return len(self.train) + len(self.val) + len(self.test)

    @property
    def is_image(self) -> bool:
        """True for (C, H, W) float images, the data augmentation works on."""
        return len(self.sample_shape) == 3 and self.dtype == FLOAT32

    def summary(self) -> str:
        """One line for the user: name, sizes, shapes and task."""
        what = {CLASSIFICATION: f"{self.num_classes} classes", BINARY: "yes/no targets",
                REGRESSION: f"number targets {fmt(self.target_shape)}",
                RECONSTRUCTION: "reconstruct the input"}[self.task]
        return (f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test samples of "
                f"{fmt(self.sample_shape)} {self.dtype}, {what}")


# ----------------------------------------------------------------------------------------------------
# The source spec

@dataclass(frozen=True)
class SourceSpec(Described):
    """One data source: a bundled set, a generator, or a kind of file.

    load(params, ctx) -> DataBundle, with `params` validated and `ctx` the split settings and path resolver.
    `gives` says in words what comes out; `image` is True when it gives (C, H, W) images (augmentation and
    target = "input" apply); `suggest(params, input_shape)` may name the params that would give input_shape.
    """

    type: str
    category: str
    summary: str
    doc: str
    params: tuple[Param, ...]
    load: Callable[[dict, "Context"], DataBundle]
    gives: str = ""
    formula: str = ""
    image: bool = False
    check: Callable[[dict], None] | None = None
    suggest: Callable[[dict, tuple[int, ...]], str] | None = None

    def owner(self) -> str:
        return f"data source {self.type}"

    def explain_extra(self) -> list[str]:
        return ["", f"Gives: {self.gives}"] if self.gives else []

    def validate_params(self, values: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return super().validate_params(values, base)
        except DataParamError:
            raise
        except ParamError as e:
            raise DataParamError(str(e), e.param) from None


SOURCES: Catalog[SourceSpec] = Catalog("data source", DataError)
register = SOURCES.register


# ----------------------------------------------------------------------------------------------------
# Settings

SPLIT_PARAMS = (
    Param("val", FLOAT, 0.15, "share of the samples kept aside to watch for overfitting while training",
          min=0.0, max=0.9),
    Param("test", FLOAT, 0.15, "share of the samples kept for the final test, never seen while training",
          min=0.0, max=0.9),
    Param("seed", INT, 0, "random seed of the split", min=0, max=2**32 - 1),
    Param("stratify", BOOL, True, "keep each class's share the same in every split (classification only)"),
)
AUGMENT_PARAMS = (
    Param("flip", BOOL, False, "mirror half of the training images left to right", effect="only for images "
          "whose meaning survives a mirror (not digits or letters)"),
    Param("shift", INT, 0, "move each training image by up to this many pixels in x and y (zeros fill in)",
          min=0, max=64),
    Param("rotate", FLOAT, 0.0, "turn each training image by up to this many degrees either way", min=0.0,
          max=180.0),
)
SETTINGS_KEYS = ("source", "params", "split", "augment")


def validate_section(owner: str, declared: tuple[Param, ...], values: Any) -> dict[str, Any]:
    if values is None:
        values = {}
    try:
        return validate_params(owner, declared, values)
    except ParamError as e:
        raise DataParamError(str(e), e.param) from None


def normalize_settings(settings: Any) -> dict[str, Any]:
    """The settings with every default filled in and every value checked (nothing is loaded).

    Raises DataError: an unknown source (with the nearest names), or DataParamError for a setting."""
    if settings is None:
        raise DataError("no data chosen: pick a data source (e.g. digits) in the data settings")
    if not isinstance(settings, dict):
        raise DataError(f"the data settings must be a mapping with source, params, split and augment, not "
                        f"{settings!r}")
    unknown = [k for k in settings if k not in SETTINGS_KEYS]
    if unknown:
        near = difflib.get_close_matches(str(unknown[0]), SETTINGS_KEYS, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        raise DataParamError(f"the data settings have no key {unknown[0]!r}: {hint}the keys are "
                             f"{', '.join(SETTINGS_KEYS)}", str(unknown[0]))
    source = settings.get("source")
    if not isinstance(source, str) or not source:
        raise DataError(f"the data settings need a source, the name of a data source such as 'digits', not "
                        f"{source!r}. The data sources are: {', '.join(s.type for s in SOURCES.all())}")
    spec = SOURCES.get(source)
    params = spec.validate_params(settings.get("params") or {})
    split = validate_section("data split", SPLIT_PARAMS, settings.get("split"))
    if split["val"] + split["test"] >= 1.0:
        raise DataParamError(f"data split: val {split['val']:g} + test {split['test']:g} leaves nothing to train "
                             f"on: keep their sum below 1 (0.15 each is usual)", "val")
    augment = validate_section("data augmentation", AUGMENT_PARAMS, settings.get("augment"))
    return {"source": spec.type, "params": params, "split": split, "augment": augment}


def augment_on(augment: dict[str, Any]) -> bool:
    return bool(augment.get("flip")) or bool(augment.get("shift")) or bool(augment.get("rotate"))


# ----------------------------------------------------------------------------------------------------
# The context a loader works in

@dataclass(frozen=True)
class Context:
    """What a loader needs besides its params: the split, and where relative paths start."""

    source: str
    params: dict[str, Any]
    val: float = 0.15
    test: float = 0.15
    seed: int = 0
    stratify: bool = True
    base_dir: Path | None = None

    def path(self, name: str, *, folder: bool = False) -> Path:
        """The file (or folder) named by params[name], resolved; DataError when it is not set or not there."""
        value = self.params.get(name)
        if not value:
            what = "folder" if folder else "file"
            raise DataError(f"{self.source} needs a {what}: set params.{name} to its path")
        p = Path(os.path.expanduser(value))
        if not p.is_absolute() and self.base_dir is not None:
            p = Path(self.base_dir) / p
        if not p.exists():
            raise DataError(f"no such {'folder' if folder else 'file'}: {p} (params.{name}); check the path, or "
                            f"give it relative to the project's folder")
        if folder and not p.is_dir():
            raise DataError(f"{p} is a file, not a folder (params.{name}): give the folder that holds one "
                            f"sub-folder per class")
        if not folder and p.is_dir():
            raise DataError(f"{p} is a folder, not a file (params.{name}): give the path of the file itself")
        return p

    def split(self, n: int, strata: Sequence | np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Indices of the train, val and test samples, each sorted; stratified by `strata` when given."""
        return split_indices(n, self.val, self.test, self.seed, strata if self.stratify else None)


def _count(n: int, frac: float) -> int:
    k = int(math.floor(n * frac + 0.5))
    if frac > 0 and k == 0 and n >= 3:
        k = 1  # a split the user asked for is never silently empty
    return k


def split_indices(n: int, val: float, test: float, seed: int,
                  strata: Sequence | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint train, val and test indices covering range(n), each sorted.

    With strata (one label per sample) each class is spread evenly along a random order before it is cut, so
    every split keeps the classes' shares to within one sample, and the split sizes are exactly those asked."""
    if n == 0:
        raise DataError("the data has no samples: check the file, or pick another source")
    n_test, n_val = _count(n, test), _count(n, val)
    if n - n_test - n_val < 1:
        raise DataError(f"only {n} samples: after {n_val} for validation and {n_test} for the test none are left to "
                        f"train on; lower the split's val and test, or add data")
    rng = np.random.default_rng([seed, 0x5E1F])  # its own stream: a source's seed and the split seed are apart
    if strata is None:
        order = rng.permutation(n)
    else:
        labels = np.asarray(strata).reshape(n, -1)[:, 0]
        _, inverse = np.unique(labels, return_inverse=True)
        jitter = rng.random(n)
        key = np.empty(n)
        for c in range(int(inverse.max()) + 1):
            idx = np.flatnonzero(inverse == c)
            idx = idx[rng.permutation(len(idx))]
            key[idx] = (np.arange(len(idx)) + jitter[idx]) / len(idx)
        order = np.argsort(key, kind="stable")
    test_idx = np.sort(order[:n_test])
    val_idx = np.sort(order[n_test:n_test + n_val])
    train_idx = np.sort(order[n_test + n_val:])
    return train_idx.astype(np.int64), val_idx.astype(np.int64), test_idx.astype(np.int64)


# ----------------------------------------------------------------------------------------------------
# Putting a bundle together

def _fit_standardizer(train: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per feature over the training rows (float64); constant features get std 1,
    features outside `mask` get mean 0 and std 1 (left as they are)."""
    t = train.astype(np.float64).reshape(len(train), -1)
    mean = t.mean(axis=0) if len(t) else np.zeros(t.shape[1])
    std = t.std(axis=0) if len(t) else np.ones(t.shape[1])
    std = np.where(std < 1e-12, 1.0, std)
    if mask is not None:
        mean = np.where(mask, mean, 0.0)
        std = np.where(mask, std, 1.0)
    shape = train.shape[1:]
    return mean.reshape(shape), std.reshape(shape)


def _apply(a: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((a.astype(np.float64) - mean) / std).astype(np.float32)


def check_finite(x: np.ndarray, what: str, fix: str) -> None:
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
        raise DataError(f"{what} holds NaN or infinite values (the first in sample {bad}): {fix}")


def assemble(ctx: Context, x: np.ndarray, y: np.ndarray | None, *, task: str, name: str, description: str,
             num_classes: int | None = None, class_names: Sequence[str] | None = None,
             feature_names: Sequence[str] | None = None, vocabulary: Sequence[str] | None = None,
             standardize: bool | np.ndarray = False, standardize_target: bool = False,
             parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> DataBundle:
    """Split x and y (stratified for labels), standardise with training statistics, and wrap them up.

    `standardize` is True (every feature), False, or a boolean mask over the features of one sample.
    `parts` gives the split indices when the loader had to split first (text builds its vocabulary on train).
    `ctx.params["target"] == "input"` turns any image source into reconstruction: y = x."""
    x = np.ascontiguousarray(x)
    n = int(x.shape[0])
    if n == 0:
        raise DataError(f"{name} has no samples: check the file, or pick another source")
    if ctx.params.get("target") == "input":
        task, y, num_classes, class_names = RECONSTRUCTION, None, None, None
    if task not in TASKS:
        raise AssertionError(f"unknown task {task}")  # a loader bug, not a user error
    if task == CLASSIFICATION:
        y = np.asarray(y).astype(np.int64).reshape(n)
        if num_classes is None:
            num_classes = int(y.max()) + 1 if n else 0
        if class_names is None:
            class_names = [str(i) for i in range(num_classes)]
    elif task in (BINARY, REGRESSION):
        y = np.asarray(y, dtype=np.float32).reshape(n, -1)
        num_classes = None
    if parts is None:
        strata = y if task in (CLASSIFICATION, BINARY) else None
        parts = ctx.split(n, strata)
    train_i, val_i, test_i = parts
    stats: dict[str, np.ndarray] = {}
    mask = None if isinstance(standardize, bool) else np.asarray(standardize, dtype=bool)
    xs = [x[i] for i in parts]
    if (mask is not None and mask.any()) or standardize is True:
        mean, std = _fit_standardizer(xs[0], None if mask is None else mask.reshape(-1))
        xs = [_apply(a, mean, std) for a in xs]
        stats["x_mean"], stats["x_std"] = mean.astype(np.float32), std.astype(np.float32)
    if task == RECONSTRUCTION:
        ys = xs
    else:
        ys = [y[i] for i in parts]  # type: ignore[index]
        if task == REGRESSION and standardize_target:
            mean, std = _fit_standardizer(ys[0])
            ys = [_apply(a, mean, std) for a in ys]
            stats["y_mean"], stats["y_std"] = mean.astype(np.float32), std.astype(np.float32)
    sample_shape = tuple(int(s) for s in x.shape[1:])
    target_shape = sample_shape if task == RECONSTRUCTION else tuple(int(s) for s in ys[0].shape[1:])
    dtype = INT64 if x.dtype.kind in "iu" else FLOAT32
    xs = [a.astype(np.int64 if dtype == INT64 else np.float32, copy=False) for a in xs]
    if task == RECONSTRUCTION:
        ys = xs
    splits = [Split(a, b, i) for a, b, i in zip(xs, ys, (train_i, val_i, test_i))]
    return DataBundle(
        train=splits[0], val=splits[1], test=splits[2], sample_shape=sample_shape, dtype=dtype, task=task,
        target_shape=target_shape, num_classes=num_classes if task == CLASSIFICATION else None,
        class_names=tuple(class_names) if class_names is not None and task in (CLASSIFICATION, BINARY) else None,
        name=name, description=description, feature_names=tuple(feature_names) if feature_names else None,
        vocabulary=tuple(vocabulary) if vocabulary is not None else None, stats=stats, source=ctx.source)


def labels_to_classes(values: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Class indices for arbitrary labels, in sorted order (numbers by value, else by text), and their names."""
    arr = list(values)
    try:
        keys = sorted(set(arr), key=float)
    except (TypeError, ValueError):
        keys = sorted(set(arr), key=str)
    index = {k: i for i, k in enumerate(keys)}
    return np.array([index[v] for v in arr], dtype=np.int64), [_label_name(k) for k in keys]


def _label_name(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def resize_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (N, H, W) images with bilinear interpolation (pixel centres aligned, as PyTorch's
    interpolate(mode="bilinear", align_corners=False)); values stay within the input's range."""
    def matrix(n_in: int, n_out: int) -> np.ndarray:
        src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        i0 = np.floor(src).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w1 = src - i0
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), i0), 1 - w1)
        np.add.at(m, (np.arange(n_out), i1), w1)
        return m
    ry, rx = matrix(images.shape[-2], height), matrix(images.shape[-1], width)
    return ry @ images.astype(np.float64) @ rx.T


def describe_shape(shape: Sequence[int]) -> str:
    return fmt(tuple(shape))
