"""Data from files a user points at: CSV tables, NumPy .npz archives, MNIST's IDX files, image folders, text."""
from __future__ import annotations

import collections
import csv
import difflib
import gzip
import io
import math
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..params import BOOL, CHOICE, INT, Param
from .base import (
    BINARY,
    CLASSIFICATION,
    COLUMN,
    FILE,
    FLATTEN_PARAM,
    LENGTH_PARAM,
    PADDING_PARAM,
    PATH,
    REGRESSION,
    STANDARDIZE_PARAM,
    TARGET_PARAM,
    TEXT,
    Context,
    DataBundle,
    DataParam,
    DataParamError,
    SourceSpec,
    assemble,
    channels_check,
    check_finite,
    labels_to_classes,
    pad_ids,
    register,
    task_param,
    vocab_param,
)

# a numeric target of whole numbers is read as class labels when it has at most this many different values, each
# seen twice on average; otherwise it is regression
MAX_CLASSES_AUTO = 20
MAX_UNPACKED = 4 * 1024**3  # a gzipped IDX file never unpacks to more than this (a small "zip bomb" is refused)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError:
        raise DataError(f"cannot read {path}: permission denied; give yourself read access to it") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None


def _read_text(path: Path) -> str:
    raw = _read_bytes(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{path} is not UTF-8 text (line {line} has a byte it cannot read): save it as UTF-8 "
                        f"(in most editors: Save As, encoding UTF-8)") from None


def _number(cell: str) -> float | None:
    """The cell's value when it is a finite number, else None ("nan" and "inf" are not numbers here)."""
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------------------------------
# CSV

def _has_header(rows: list[list[str]]) -> bool:
    first, rest = rows[0], rows[1:51]
    if any(_number(c) is not None for c in first):
        return False  # a header holds names, not numbers
    if not rest:
        return True
    for j in range(len(first)):
        col = [r[j].strip() for r in rest if j < len(r) and r[j].strip()]
        if col and sum(_number(c) is not None for c in col) * 2 >= len(col):
            return True  # a name above a column of numbers
    # every column holds text: a header when its names never come back lower in their columns
    return all(cell not in {r[j] for r in rest if j < len(r)} for j, cell in enumerate(first))


def _sniff(text: str) -> str:
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _find_column(names: list[str], target, path: Path) -> int:
    if target is None:
        return len(names) - 1
    if isinstance(target, int):
        if -len(names) <= target < len(names):
            return target % len(names)
        raise DataError(f"{path.name} has {len(names)} columns, so there is no column at position {target}: "
                        f"count from 0 (0 to {len(names) - 1}), or -1 for the last; the columns are: "
                        f"{', '.join(names)}")
    if target in names:
        return names.index(target)
    folded = [n.strip().lower() for n in names]
    if target.strip().lower() in folded:
        return folded.index(target.strip().lower())
    if re.fullmatch(r"-?\d+", target.strip()) and target.strip() not in names:
        return _find_column(names, int(target.strip()), path)
    near = difflib.get_close_matches(target, names, n=2, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
    raise DataError(f"{path.name} has no column {target!r}: {hint}set params.target to one of its columns: "
                    f"{', '.join(names)}")


def _csv(p: dict, ctx: Context) -> DataBundle:
    path = ctx.path("path")
    text = _read_text(path)
    delimiter = p["delimiter"].replace("\\t", "\t") if p["delimiter"] else _sniff(text)
    if len(delimiter) != 1:
        raise DataParamError(f"data source csv: delimiter must be one character, not {p['delimiter']!r}",
                             "delimiter")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not row or all(not c.strip() for c in row):
                continue
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"{path.name}, line {reader.line_num}: {e}; check the quotes on that line") from None
    if not rows:
        raise DataError(f"{path.name} is empty: it needs a header line and one line per sample")
    header = {"auto": None, "yes": True, "no": False}[p["header"]]
    if header is None:
        header = _has_header(rows)
    if header:
        names = [c.strip() or f"column {j}" for j, c in enumerate(rows[0])]
        rows, lines = rows[1:], lines[1:]
    else:
        names = [f"column {j}" for j in range(len(rows[0]))]
    seen: dict[str, int] = {}
    for j, n in enumerate(names):  # duplicate names get a suffix so every column can be named
        if n in seen:
            seen[n] += 1
            names[j] = f"{n} ({seen[n]})"
        else:
            seen[n] = 1
    if not rows:
        raise DataError(f"{path.name} has a header but no samples: add one line per sample below it")
    for row, line in zip(rows, lines):
        if len(row) != len(names):
            first = "header" if header else "first line"
            raise DataError(f"{path.name}, line {line} has {len(row)} values but the {first} "
                            f"has {len(names)} columns: give every line the same number of values (delimiter "
                            f"{delimiter!r})")
    if len(names) < 2:
        raise DataError(f"{path.name} has a single column ({names[0]!r}): it needs feature columns and a target "
                        f"column, separated by {delimiter!r} (set params.delimiter if the file uses another one)")
    t = _find_column(names, p["target"], path)
    ignored = [s.strip() for s in p["ignore"].split(",") if s.strip()] if p["ignore"] else []
    for name in ignored:
        if name not in names:
            raise DataError(f"{path.name} has no column {name!r} to ignore (params.ignore): the columns are: "
                            f"{', '.join(names)}")
    if names[t] in ignored:
        raise DataError(f"the target column {names[t]!r} is also in params.ignore: remove it from there")
    columns = [[r[j].strip() for r in rows] for j in range(len(names))]

    def numeric(j: int) -> bool:
        filled = [c for c in columns[j] if c]
        return bool(filled) and sum(_number(c) is not None for c in filled) * 2 >= len(filled)

    def numbers(j: int) -> np.ndarray:
        out = np.empty(len(rows))
        for i, cell in enumerate(columns[j]):
            v = _number(cell)
            if v is None:
                if not cell:
                    raise DataError(f"{path.name}, line {lines[i]}, column {names[j]!r} is empty: fill it in or "
                                    f"remove the line")
                raise DataError(f"{path.name}, line {lines[i]}, column {names[j]!r}: {cell!r} is not a number: "
                                f"correct it or remove the line")
            out[i] = v
        return out

    def texts(j: int) -> list[str]:
        for i, cell in enumerate(columns[j]):
            if not cell:
                raise DataError(f"{path.name}, line {lines[i]}, column {names[j]!r} is empty: fill it in or "
                                f"remove the line")
        return columns[j]

    # the target
    task = p["task"]
    if numeric(t):
        values = numbers(t)
        whole = np.all(values == np.round(values))
        if task == "auto":
            distinct = len(np.unique(values))
            labels_like = whole and distinct <= MAX_CLASSES_AUTO and distinct * 2 <= len(values)
            task = CLASSIFICATION if labels_like else REGRESSION
            task = BINARY if task == CLASSIFICATION and distinct == 2 else task
        labels = list(values)
    else:
        if task == REGRESSION:
            numbers(t)  # names the first cell that is not a number
        labels = texts(t)
        if task == "auto":
            task = BINARY if len(set(labels)) == 2 else CLASSIFICATION
    class_names = None
    if task == REGRESSION:
        y = np.asarray(labels, dtype=np.float64).reshape(-1, 1)
    else:
        y, class_names = labels_to_classes(labels)
        if len(class_names) < 2:
            raise DataError(f"the target column {names[t]!r} holds a single value ({class_names[0]!r}): a "
                            f"classifier needs at least two classes; pick another target or add samples")
        if task == BINARY and len(class_names) != 2:
            raise DataError(f"task binary needs exactly two different values in the target column {names[t]!r}, "
                            f"but it has {len(class_names)} ({', '.join(class_names[:6])}"
                            f"{', ...' if len(class_names) > 6 else ''}): set params.task to classification")

    # the features
    feats: list[np.ndarray] = []
    feature_names: list[str] = []
    scale: list[bool] = []
    for j, name in enumerate(names):
        if j == t or name in ignored:
            continue
        if numeric(j):
            feats.append(numbers(j)[:, None])
            feature_names.append(name)
            scale.append(True)
            continue
        cats, cat_names = labels_to_classes(texts(j))
        if len(cat_names) > 100 and len(cat_names) * 2 > len(rows):
            raise DataError(f"column {name!r} of {path.name} holds {len(cat_names)} different texts, too many to "
                            f"be categories (names or ids?): add it to params.ignore, or correct its values")
        if p["categorical"] == "index":
            feats.append(cats[:, None].astype(np.float64))
            feature_names.append(name)
            scale.append(False)
        else:
            feats.append(np.eye(len(cat_names))[cats])
            feature_names += [f"{name}={c}" for c in cat_names]
            scale += [False] * len(cat_names)
    if not feats:
        raise DataError(f"{path.name} has no feature columns left besides the target {names[t]!r}: remove "
                        f"columns from params.ignore")
    x = np.concatenate(feats, axis=1)
    mask = np.asarray(scale) if p["standardize"] else False
    kw = dict(name=path.stem, feature_names=feature_names, standardize=mask,
              description=f"{len(rows)} rows of {path.name}: {len(feature_names)} features, target "
                          f"{names[t]!r} ({task}).")
    if task == REGRESSION:
        return assemble(ctx, x, y, task=REGRESSION, standardize_target=p["standardize_target"], **kw)
    if task == BINARY:
        return assemble(ctx, x, y.astype(np.float32), task=BINARY, class_names=class_names, **kw)
    return assemble(ctx, x, y, task=CLASSIFICATION, num_classes=len(class_names), class_names=class_names, **kw)


register(SourceSpec(
    type="csv",
    category=FILE,
    summary="a table in a CSV file: one sample per line, one column is the target",
    doc="Reads a comma-separated (or ; tab |) file. A header line is detected (names above numbers) or can be "
        "forced. One column is the target (the last by default); the others are the features. Columns of "
        "numbers become features as they are; columns of text are categories, given as one 0/1 feature per "
        "category (one-hot) or as one category index. The task follows the target: text, or a few whole "
        "numbers, are class labels (two of them: binary, 0/1 targets for BCE), other numbers are regression. "
        "Number features are standardised with the training split's statistics only, and so is a regression "
        "target with standardize_target on (the bundle's stats y_mean and y_std turn predictions back). An "
        "empty cell or a word in a column of numbers is refused with its line and column.",
    params=(DataParam("path", PATH, None, "the CSV file"),
            DataParam("target", COLUMN, None, "the column to predict: its name, or its position from 0; empty = "
                      "the last column", optional=True),
            task_param(("auto", CLASSIFICATION, BINARY, REGRESSION)),
            Param("header", CHOICE, "auto", "whether the first line holds column names", choices=("auto", "yes",
                                                                                                 "no")),
            DataParam("delimiter", TEXT, "", "the character between values; empty = detect it (, ; tab |)"),
            Param("categorical", CHOICE, "onehot", "how text columns become numbers: one 0/1 feature per "
                  "category (onehot) or the category's index (index)", choices=("onehot", "index")),
            DataParam("ignore", TEXT, "", "columns to leave out, separated by commas (e.g. ids or names)"),
            STANDARDIZE_PARAM,
            Param("standardize_target", BOOL, True, "for regression: rescale the target to mean 0 and "
                  "standard deviation 1 (training statistics)")),
    load=_csv,
    gives="(features,) float32; class indices, 0/1 targets (1,) or numbers (1,)",
))


# ----------------------------------------------------------------------------------------------------
# NPZ

def _x_array(x: np.ndarray, how: str, path: Path, key: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataError(f"array {key!r} of {path.name} holds {x.dtype} values, not numbers: save numbers "
                        f"(float32 for measurements and pixels, int64 for token ids)")
    if how == "auto":
        how = "scaled" if x.dtype == np.uint8 else "int64" if x.dtype.kind in "iu" else "float32"
    if how == "int64":
        if x.dtype.kind == "f" and not np.all(x == np.round(x)):
            raise DataError(f"array {key!r} of {path.name} holds fractions, but token ids are whole numbers: set "
                            f"params.x_dtype to float32")
        x = x.astype(np.int64)
        if x.size and x.min() < 0:
            raise DataError(f"array {key!r} of {path.name} holds negative token ids: ids start at 0 (padding)")
        return x
    if how == "scaled":
        return x.astype(np.float32) / np.float32(255)
    return x.astype(np.float32)


def _npz(p: dict, ctx: Context) -> DataBundle:
    path = ctx.path("path")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz file ({e}): save it with numpy.savez(path, x=..., "
                        f"y=...)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array, not named arrays: save it with numpy.savez(path, x=..., "
                        f"y=...)")
    with archive:
        keys = list(archive.files)

        def get(key: str, param: str) -> np.ndarray:
            if key not in keys:
                raise DataError(f"{path.name} has no array {key!r}: set params.{param} to one of the arrays in "
                                f"it: {', '.join(keys) or '(none)'}")
            try:
                return archive[key]
            except ValueError as e:
                raise DataError(f"array {key!r} of {path.name} cannot be read without running code ({e}): save "
                                f"plain numeric arrays") from None

        x = _x_array(get(p["x_key"], "x_key"), p["x_dtype"], path, p["x_key"])
        if x.ndim == 0 or len(x) == 0:
            raise DataError(f"array {p['x_key']!r} of {path.name} holds no samples: its first dimension counts them")
        if x.ndim == 1:
            x = x[:, None]
        check_finite(x, f"array {p['x_key']!r} of {path.name}", "replace or remove those samples")
        if p["standardize"] and x.dtype.kind in "iu":
            raise DataParamError(f"array {p['x_key']!r} of {path.name} is read as word ids, which cannot be "
                                 f"standardised: turn standardize off, or set x_dtype to float32", "standardize")
        reconstruct = p["target"] == "input"
        y = None if reconstruct else get(p["y_key"], "y_key")
        names = None
        if "class_names" in keys and archive["class_names"].dtype.kind in "US":
            names = [str(s) for s in archive["class_names"].reshape(-1)]
    kw = dict(name=path.stem, description=f"arrays {p['x_key']!r} and {p['y_key']!r} of {path.name}.",
              standardize=p["standardize"])
    if reconstruct:
        return assemble(ctx, x, None, task=REGRESSION, **kw)
    assert y is not None
    if len(y) != len(x):
        raise DataError(f"{path.name}: {p['x_key']!r} has {len(x)} samples but {p['y_key']!r} has {len(y)}: "
                        f"they must match one to one")
    if y.dtype.kind not in "biuf":
        raise DataError(f"array {p['y_key']!r} of {path.name} holds {y.dtype} values: save numbers (class indices "
                        f"or targets)")
    task = p["task"]
    whole = y.dtype.kind in "biu"
    zero_one = bool(np.isin(y, (0, 1)).all())
    if task == "auto":
        if y.dtype.kind == "b" or (whole and zero_one and (y.ndim > 1 or len(np.unique(y)) == 2)):
            task = BINARY
        elif whole and (y.ndim == 1 or y.shape[1:] == (1,)):
            task = CLASSIFICATION
        else:
            task = REGRESSION
    check_finite(y.reshape(len(y), -1).astype(np.float64), f"array {p['y_key']!r} of {path.name}",
                 "replace or remove those samples")
    if task == CLASSIFICATION:
        if y.ndim > 1 and y.shape[1:] != (1,):
            raise DataError(f"class labels are one whole number per sample, shape (N,), but {p['y_key']!r} has shape "
                            f"{y.shape}: set params.task to regression or binary for several targets per sample")
        y = y.reshape(len(y))
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            raise DataError(f"{p['y_key']!r} of {path.name} holds fractions, but class labels are whole numbers: "
                            f"set params.task to regression")
        if y.min() >= 0 and (names is None or len(names) >= int(y.max()) + 1):
            num = max(int(y.max()) + 1, len(names or ()))
            labels, class_names = y.astype(np.int64), names or [str(i) for i in range(num)]
        else:
            labels, class_names = labels_to_classes(y.tolist())
            num = len(class_names)
        return assemble(ctx, x, labels, task=CLASSIFICATION, num_classes=num, class_names=class_names, **kw)
    if task == BINARY:
        if not zero_one:
            raise DataError(f"task binary needs targets that are 0 or 1, but {p['y_key']!r} of {path.name} holds "
                            f"other values: set params.task to classification or regression")
        y = y.astype(np.float32)
        return assemble(ctx, x, y if y.ndim > 1 else y[:, None], task=BINARY,
                        class_names=names if names and len(names) == 2 else None, **kw)
    y = y.astype(np.float32)
    return assemble(ctx, x, y if y.ndim > 1 else y[:, None], task=REGRESSION,
                    standardize_target=p["standardize_target"], **kw)


register(SourceSpec(
    type="npz",
    category=FILE,
    summary="named NumPy arrays in an .npz file (numpy.savez): inputs x and targets y",
    doc="Reads the arrays saved with numpy.savez(path, x=inputs, y=targets); x_key and y_key name them. The "
        "first dimension counts the samples; the rest is one sample's shape, e.g. (N, 1, 28, 28) for images. "
        "x of 8-bit integers (uint8 pixels) is scaled to [0, 1]; other whole numbers are token ids (int64); "
        "x_dtype overrides that. The task follows y: whole numbers are class labels (only 0 and 1: binary), "
        "fractions are regression targets. An array named class_names gives the classes' names. Only plain "
        "arrays are read (Python objects are refused), so opening a file never runs code.",
    params=(DataParam("path", PATH, None, "the .npz file"),
            DataParam("x_key", TEXT, "x", "name of the inputs' array"),
            DataParam("y_key", TEXT, "y", "name of the targets' array"),
            task_param(("auto", CLASSIFICATION, BINARY, REGRESSION),
                       doc="auto: whole numbers are class labels (binary when only 0 and 1), fractions numbers"),
            Param("x_dtype", CHOICE, "auto", "float32 (measurements, pixels) or int64 (token ids); auto: uint8 "
                  "is scaled to [0, 1], other whole numbers are ids, fractions float32",
                  choices=("auto", "float32", "int64")),
            Param("standardize", BOOL, False, "rescale every input feature to mean 0 and standard deviation 1 "
                  "(training statistics)"),
            Param("standardize_target", BOOL, False, "for regression: rescale the targets the same way"),
            TARGET_PARAM),
    load=_npz,
    gives="x's shape per sample; y as class indices, 0/1 targets or numbers",
))


# ----------------------------------------------------------------------------------------------------
# IDX (MNIST's format)

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file (MNIST's format), raw or gzipped; DataError when it is not one."""
    raw = _read_bytes(path)
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
                raw = f.read(MAX_UNPACKED + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path} is a broken gzip file ({e}): download or unpack it again") from None
        if len(raw) > MAX_UNPACKED:
            raise DataError(f"{path} unpacks to more than {MAX_UNPACKED // 1024**3} GB, far more than an IDX data "
                            f"set holds: it is not one") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (MNIST's format, raw or .gz): such a file starts with two zero "
                        f"bytes, a type byte and the number of dimensions")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{path} is cut short inside its header: download or unpack it again")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    count = math.prod(dims)
    if len(raw) != head + count * dtype.itemsize:
        raise DataError(f"{path} should hold {' × '.join(map(str, dims))} values ({head + count * dtype.itemsize} "
                        f"bytes) but has {len(raw)} bytes: it is cut short or not an IDX file; download or unpack "
                        f"it again")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=head).reshape(dims)


def _idx(p: dict, ctx: Context) -> DataBundle:
    images_path = ctx.path("images")
    images = read_idx(images_path)
    if images.ndim != 3:
        raise DataError(f"{images_path.name} holds an array of {images.ndim} dimensions, {images.shape}; an IDX "
                        f"images file holds (N, height, width): is it the labels file? (params.images)")
    x = (images.astype(np.float32) / np.float32(255)) if images.dtype == np.uint8 else images.astype(np.float32)
    x = x[:, None]
    check_finite(x, images_path.name, "it is not an image file")
    if p["flatten"]:
        x = x.reshape(len(x), -1)
    n, h, w = images.shape
    description = f"{n} images of {h}×{w} pixels from {images_path.name}"
    if p["target"] == "input":
        return assemble(ctx, x, None, task=REGRESSION, name=images_path.stem, description=description + ".")
    if not p["labels"]:
        raise DataError("idx needs the labels file too (params.labels), or params.target = 'input' to train an "
                        "autoencoder on the images alone")
    labels_path = ctx.path("labels")
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise DataError(f"{labels_path.name} holds an array of shape {labels.shape}; an IDX labels file holds one "
                        f"number per image: is it the images file? (params.labels)")
    if len(labels) != n:
        raise DataError(f"{images_path.name} has {n} images but {labels_path.name} has {len(labels)} labels: pick "
                        f"the two files of the same set (train with train, test with test)")
    if labels.dtype.kind == "f" or (len(labels) and labels.min() < 0):
        raise DataError(f"{labels_path.name} holds labels that are not whole numbers from 0: it is not a labels "
                        f"file")
    num = int(labels.max()) + 1 if n else 0
    return assemble(ctx, x, labels.astype(np.int64), task=CLASSIFICATION, num_classes=num,
                    class_names=[str(i) for i in range(num)], name=images_path.stem,
                    description=description + f", labels from {labels_path.name}.")


register(SourceSpec(
    type="idx",
    category=FILE,
    summary="images and labels in MNIST's IDX format (raw or .gz), e.g. MNIST or Fashion-MNIST",
    doc="Reads the two files MNIST comes as: an images file (train-images-idx3-ubyte, raw or gzipped) and a "
        "labels file (train-labels-idx1-ubyte). Pixels (0–255) are scaled to [0, 1] and each image becomes "
        "(1, height, width); the labels are class indices. The train and test files of MNIST are separate sets: "
        "point at one pair and the split below divides it.",
    params=(DataParam("images", PATH, None, "the IDX images file (…-images-idx3-ubyte or .gz)"),
            DataParam("labels", PATH, None, "the IDX labels file (…-labels-idx1-ubyte or .gz); not needed when "
                      "target is 'input'", optional=True),
            FLATTEN_PARAM, TARGET_PARAM),
    load=_idx,
    gives="(1, H, W) float32 in [0, 1] ((H·W,) when flattened), class indices",
    image=True,
))


# ----------------------------------------------------------------------------------------------------
# image folder

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a broken or looping link
        return False


def _image_folder(p: dict, ctx: Context) -> DataBundle:
    from PIL import Image, UnidentifiedImageError  # Pillow loads only when an image folder is read
    root = ctx.path("path", folder=True).resolve()
    classes = sorted(d.name for d in root.iterdir()
                     if not d.name.startswith(".") and d.is_dir() and _inside(d, root))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise DataError(f"{root} needs one sub-folder per class, at least two (e.g. cats/ and dogs/), each holding "
                        f"that class's images; found {found}")
    size, channels = p["size"], p["channels"]
    mode = "L" if channels == 1 else "RGB"
    images: list[np.ndarray] = []
    labels: list[int] = []
    skipped = 0
    for label, name in enumerate(classes):
        folder = root / name
        files: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if f.startswith(".") or not f.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                fp = Path(dirpath) / f
                if not _inside(fp, root):
                    skipped += 1  # a link that leads out of the folder is never followed
                    continue
                files.append(fp)
        if not files:
            raise DataError(f"the class folder {name!r} in {root} has no images "
                            f"({', '.join(e[1:] for e in IMAGE_EXTENSIONS[:5])}, ...): add some or remove the folder")
        for fp in files:
            try:
                with Image.open(fp.resolve()) as im:
                    im = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                    images.append(np.asarray(im, dtype=np.float32).reshape(size, size, channels))
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
                raise DataError(f"cannot read the image {fp.relative_to(root)}: {e}; remove it or save it again as "
                                f"PNG or JPEG") from None
            labels.append(label)
    x = np.stack(images).transpose(0, 3, 1, 2) / np.float32(255)
    if p["flatten"]:
        x = x.reshape(len(x), -1)
    note = f" ({skipped} links leading outside the folder skipped)" if skipped else ""
    return assemble(ctx, x.astype(np.float32), np.asarray(labels), task=CLASSIFICATION, num_classes=len(classes),
                    class_names=classes, name=root.name,
                    description=f"{len(labels)} images in {len(classes)} classes from {root}, resized to "
                                f"{size}×{size}, {'grey' if channels == 1 else 'RGB'}{note}.")


register(SourceSpec(
    type="image_folder",
    category=FILE,
    summary="your own images, one sub-folder per class (cats/, dogs/, ...)",
    doc="Reads every image (PNG, JPEG, BMP, GIF, TIFF, WebP) below each sub-folder of the folder; the "
        "sub-folder's name is the class. Each image is converted to grey (1 channel) or RGB (3), resized to "
        "size × size (stretched if it is not square) and scaled to [0, 1]. Hidden files, other files and links "
        "that lead outside the folder are skipped.",
    params=(DataParam("path", PATH, None, "the folder that holds one sub-folder per class"),
            Param("size", INT, 28, "side of the square images the network gets, in pixels", min=4, max=1024),
            Param("channels", INT, 1, "1 for grey images, 3 for RGB colour", min=1, max=3),
            FLATTEN_PARAM, TARGET_PARAM),
    load=_image_folder,
    check=channels_check("image_folder", "RGB"),
    gives="(channels, size, size) float32 in [0, 1], one class per sub-folder",
    image=True,
))


# ----------------------------------------------------------------------------------------------------
# text

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-case words: runs of letters and digits, keeping inner apostrophes (don't, it's)."""
    return _WORD.findall(text.lower())


def build_vocabulary(texts: list[list[str]], size: int) -> tuple[str, ...]:
    """The words by id: 0 padding, 1 unknown, then the most frequent words (ties alphabetical), size in all."""
    counts = collections.Counter(w for words in texts for w in words)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max(0, size - 2)]
    return ("<pad>", "<unk>") + tuple(w for w, _ in ranked)


def _text(p: dict, ctx: Context) -> DataBundle:
    path = ctx.path("path")
    text = _read_text(path)
    sep = p["separator"].replace("\\t", "\t") or "\t"
    sep_name = "tab" if sep == "\t" else repr(sep)
    labels: list[str] = []
    docs: list[list[str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if sep not in line:
            raise DataError(f"{path.name}, line {lineno} has no {sep_name} between the label and the text: write "
                            f"each line as label{'<TAB>' if sep == chr(9) else sep}text (or set params.separator)")
        label, body = line.split(sep, 1)
        if not label.strip():
            raise DataError(f"{path.name}, line {lineno} has no label before the {sep_name}: put the class "
                            f"first, e.g. pos{'<TAB>' if sep == chr(9) else sep}a great film")
        labels.append(label.strip())
        docs.append(tokenize(body))
    if not labels:
        raise DataError(f"{path.name} holds no samples: write one per line as label<TAB>text")
    y, class_names = labels_to_classes(labels)
    if len(class_names) < 2:
        raise DataError(f"every line of {path.name} has the label {class_names[0]!r}: a classifier needs at least "
                        f"two classes")
    task = p["task"]
    if task == "auto":
        task = BINARY if len(class_names) == 2 else CLASSIFICATION
    if task == BINARY and len(class_names) != 2:
        raise DataError(f"task binary needs exactly two labels, but {path.name} has {len(class_names)} "
                        f"({', '.join(class_names[:6])}{', ...' if len(class_names) > 6 else ''}): set params.task "
                        f"to classification")
    parts = ctx.split(len(labels), y)
    vocab = build_vocabulary([docs[i] for i in parts[0]], p["vocab_size"])  # the training split's words only
    index = {w: i for i, w in enumerate(vocab)}
    x = np.stack([pad_ids(np.asarray([index.get(w, 1) for w in words], dtype=np.int64), p["length"], p["padding"])
                  for words in docs])
    kw = dict(name=path.stem, vocabulary=vocab, parts=parts, class_names=class_names,
              description=f"{len(labels)} texts of {path.name} as {p['length']} word ids (vocabulary "
                          f"{len(vocab)} from the training split), labels {', '.join(class_names[:6])}"
                          f"{', ...' if len(class_names) > 6 else ''}.")
    if task == BINARY:
        return assemble(ctx, x, y.astype(np.float32), task=BINARY, **kw)
    return assemble(ctx, x, y, task=CLASSIFICATION, num_classes=len(class_names), **kw)


register(SourceSpec(
    type="text",
    category=FILE,
    summary="labelled texts, one per line (label<TAB>text), as word ids for an Embedding",
    doc="Each line is a label, a tab (or the separator you set) and the text. The text is lower-cased and cut "
        "into words; the vocabulary is the most frequent words of the training split (0 = padding, 1 = any "
        "word not in it), and each text becomes `length` word ids, cut or padded with 0. Two different labels "
        "give a binary task (0/1 targets of shape (1,) for BCE, the labels in sorted order), more give "
        "classification.",
    params=(DataParam("path", PATH, None, "the text file (UTF-8)"),
            DataParam("separator", TEXT, "\t", "what separates the label from the text; \\t is a tab"),
            vocab_param(10_000), LENGTH_PARAM, PADDING_PARAM,
            task_param(("auto", CLASSIFICATION, BINARY), doc="auto: binary for two labels, classification for "
                       "more")),
    load=_text,
    gives="(length,) int64 word ids; 0/1 targets (1,) or class indices",
))
