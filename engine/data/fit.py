"""Whether loaded data fits a network's Input, its output and its loss, in words that say what to change."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from ..layers.base import FLOAT32, INT64, fmt
from ..losses import get_loss
from .base import BINARY, CLASSIFICATION, RECONSTRUCTION, REGRESSION, SOURCES, DataBundle

_DTYPES = {"float32": FLOAT32, "float": FLOAT32, "torch.float32": FLOAT32, "torch.float": FLOAT32,
           "int64": INT64, "long": INT64, "int": INT64, "torch.int64": INT64, "torch.long": INT64}


def _spec(bundle: DataBundle):
    try:
        return SOURCES.get(bundle.source) if bundle.source else None
    except DataError:
        return None


def _has_param(bundle: DataBundle, name: str) -> bool:
    spec = _spec(bundle)
    return spec is not None and any(p.name == name for p in spec.params)


def _task_choice(bundle: DataBundle, task: str) -> bool:
    spec = _spec(bundle)
    return spec is not None and any(p.name == "task" and task in p.choices for p in spec.params)


def _y_range(bundle: DataBundle) -> tuple[float, float]:
    ys = [s.y for s in (bundle.train, bundle.val, bundle.test) if len(s)]
    return min(float(np.min(y)) for y in ys), max(float(np.max(y)) for y in ys)


def _out_fix(tgt: tuple[int, ...], out: tuple[int, ...]) -> str:
    if tgt and len(tgt) == len(out) and tgt[:-1] == out[:-1]:
        return f"set out_features to {tgt[-1]}"
    return f"change the last layers so that the output is {fmt(tgt)}"


def _input_problems(bundle: DataBundle, inp: tuple[int, ...], dtype: str) -> list[str]:
    msgs = []
    data = bundle.sample_shape
    if inp != data:
        msg = f"Input expects {fmt(inp)} but the data gives {fmt(data)}: set the Input shape to {fmt(data)}"
        if math.prod(inp) == math.prod(data):
            msg += f" or add a Reshape to {fmt(inp)} after the Input"
        spec = _spec(bundle)
        extra = spec.suggest(bundle.settings.get("params", {}), inp) if spec is not None and spec.suggest else ""
        if not extra and len(inp) == 1 and _has_param(bundle, "length") and bundle.dtype == INT64:
            extra = f"or set the data's length to {inp[0]}"
        msgs.append(f"{msg}, {extra}" if extra else msg)
    if dtype != bundle.dtype:
        if bundle.dtype == INT64:
            msgs.append(f"the data gives int64 word ids but the Input expects {dtype} numbers: set the Input dtype "
                        f"to int64 and feed it to an Embedding")
        else:
            msgs.append(f"the Input expects int64 word ids but the data gives {bundle.dtype} numbers: set the "
                        f"Input dtype to float32 (an Embedding takes word ids only, so this data needs a network "
                        f"without one at the start)")
    return msgs


def _loss_problems(bundle: DataBundle, loss_type: str, out: tuple[int, ...] | None) -> list[str]:
    t = get_loss(loss_type).type
    task, tgt, c = bundle.task, tuple(bundle.target_shape), bundle.num_classes
    what = {BINARY: "binary (0/1 targets)", REGRESSION: "regression (numbers to predict)",
            RECONSTRUCTION: "reconstruction (the target is the input itself)", CLASSIFICATION: "classification"}[task]
    if t in ("CrossEntropy", "NLL"):
        if task != CLASSIFICATION:
            cure = {BINARY: "use BCEWithLogits with one output" + (
                        ", or set the data's task to classification" if _task_choice(bundle, CLASSIFICATION)
                        else ""),
                    REGRESSION: "use MSE, L1 or Huber",
                    RECONSTRUCTION: "use MSE (or BCE after a Sigmoid, for images in [0, 1])"}[task]
            return [f"{t} needs classification data (class indices), but this data is {what}: {cure}"]
        if out is not None:
            if len(out) != 1:
                return [f"the data has one class label per sample, so for {t} the last layer must give one score "
                        f"per class, ({c},), not {fmt(out)}: add a Flatten before the last Linear and set its "
                        f"out_features to {c}"]
            if out[0] != c:
                return [f"{c} classes but the last layer gives {out[0]}: set out_features to {c}"]
        return []
    if t in ("BCE", "BCEWithLogits"):
        if task == CLASSIFICATION:
            if c == 2:
                cure = ("set the data's task to binary (0/1 targets of shape (1,), one output)"
                        if _task_choice(bundle, BINARY) else "")
                cure = f"{cure}, or use CrossEntropy with out_features = 2" if cure else \
                    "use CrossEntropy with out_features = 2"
                return [f"{t} needs binary 0/1 targets of the output's shape, but this data gives class indices "
                        f"of 2 classes: {cure}"]
            return [f"{t} needs binary 0/1 targets of the output's shape, but this data has {c} classes: use "
                    f"CrossEntropy with out_features = {c}"]
        if task in (REGRESSION, RECONSTRUCTION):
            lo, hi = _y_range(bundle)
            if lo < 0.0 or hi > 1.0:
                return [f"{t} needs binary 0/1 targets (or probabilities in [0, 1]) of the output's shape, but "
                        f"this data's targets go from {lo:.3g} to {hi:.3g}: use MSE, L1 or Huber"]
        if out is not None and out != tgt:
            return [f"{t} needs binary 0/1 targets of the output's shape, but the targets are {fmt(tgt)} and the "
                    f"last layer gives {fmt(out)}: {_out_fix(tgt, out)}"]
        return []
    # MSE, L1, Huber
    if task == CLASSIFICATION:
        return [f"{t} needs number targets of the output's shape, but this data gives class indices ({c} "
                f"classes): use CrossEntropy with out_features = {c}"]
    if out is not None and out != tgt:
        return [f"{t} needs targets of the output's shape, but the targets are {fmt(tgt)} and the last layer gives "
                f"{fmt(out)}: {_out_fix(tgt, out)}"]
    return []


def fit_problems(bundle: DataBundle, input_shape: Sequence[int] | None, input_dtype: str | None = FLOAT32,
                 output_shape: Sequence[int] | None = None, loss_type: str | None = None) -> list[str]:
    """Every way the data does not fit the network and its loss, each with its fix; [] when it fits.

    Shapes are per sample (batch excluded), as shape inference gives them; None skips that check.
    Raises SpecError for an unknown loss."""
    msgs: list[str] = []
    if input_shape is not None:
        dtype = _DTYPES.get(str(input_dtype).lower(), str(input_dtype)) if input_dtype is not None else bundle.dtype
        msgs += _input_problems(bundle, tuple(int(s) for s in input_shape), dtype)
    if loss_type is not None:
        msgs += _loss_problems(bundle, loss_type, tuple(int(s) for s in output_shape)
                               if output_shape is not None else None)
    return msgs


def check_fit(bundle: DataBundle, input_shape: Sequence[int] | None, input_dtype: str | None = FLOAT32,
              output_shape: Sequence[int] | None = None, loss_type: str | None = None) -> None:
    """Raise DataError with the first problem of `fit_problems` (the rest follow on their own lines)."""
    msgs = fit_problems(bundle, input_shape, input_dtype, output_shape, loss_type)
    if msgs:
        raise DataError("\n".join(msgs))
