"""The loss catalogue: one LossSpec per loss, with PyTorch's names, a learner's explanation and what labels it wants.

`import engine.losses` does not load torch; a loss module is built (and torch imported) by `LossSpec.build`.
`check_loss_fit` gives advice, in words a learner can act on, when the end of a network does not suit its loss.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .catalog import Catalog, Described
from .errors import SpecError
from .layers.base import FLOAT32, INT64, fmt
from .params import FLOAT, INT, Param

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

CLASS_INDICES = ("class indices: int64 of shape (N,), each a whole number in [0, C) where C is the number of "
                 "classes (for outputs of shape (N, C, d₁, …) the targets are (N, d₁, …))")
SAME_SHAPE_FLOAT = "same shape as the output, float"
PROBABILITIES = ("same shape as the output, float probabilities in [0, 1] (1 = yes, 0 = no); the network's "
                 "output must be probabilities too, so the last layer must be a Sigmoid")
ZERO_ONE_FLOAT = "same shape as the output, float in [0, 1] (1 = yes, 0 = no); the output is raw scores (logits)"


@dataclass(frozen=True)
class LossSpec(Described):
    """One loss of the catalogue.

    `target` says, in words, what labels the loss expects; `target_dtype` is their dtype ("int64" or "float32").
    build(params) -> nn.Module imports torch only when called; `params` is a dict from `validate_params`.
    `torch_name` is the PyTorch class, e.g. "nn.CrossEntropyLoss".
    """

    type: str
    summary: str
    doc: str
    formula: str
    params: tuple[Param, ...]
    target: str
    build: Callable[[dict], "nn.Module"]
    target_dtype: str = FLOAT32
    torch_name: str = ""

    def explain_extra(self) -> list[str]:
        return ["", f"Targets: {self.target}"]


LOSSES: Catalog[LossSpec] = Catalog("loss", SpecError, plural="losses")
register = LOSSES.register


def _nn():
    import torch.nn as nn  # torch loads only when a loss is built
    return nn


def _ignore(p: dict) -> int:
    return -100 if p.get("ignore_index") is None else p["ignore_index"]  # -100 is PyTorch's "not set"


def _bce_with_logits(p: dict):
    import torch
    w = p.get("pos_weight")
    return _nn().BCEWithLogitsLoss(pos_weight=None if w is None else torch.tensor([float(w)]))


_IGNORE = Param("ignore_index", INT, None, "a target value to skip (e.g. a padding label); none when unset",
                optional=True)

register(LossSpec(
    type="MSE",
    summary="mean squared error, for predicting numbers (regression)",
    doc="Averages the squared difference between prediction and target. The standard loss for regression "
        "(prices, temperatures, coordinates). Squaring punishes big mistakes much more than small ones, so a "
        "few outliers in the data can dominate training; if they do, try L1 or Huber. Leave the last layer "
        "without an activation so it can give any number.",
    formula="ℓ = mean((ŷ − y)²)",
    params=(),
    target=SAME_SHAPE_FLOAT,
    build=lambda p: _nn().MSELoss(),
    torch_name="nn.MSELoss",
))

register(LossSpec(
    type="L1",
    summary="mean absolute error, for regression that shrugs off outliers",
    doc="Averages the absolute difference between prediction and target. Every unit of error costs the "
        "same, so outliers pull much less than with MSE; it predicts the median rather than the mean. Its "
        "gradient does not shrink near the answer, so training can jitter at the end (lower the learning "
        "rate, or use Huber).",
    formula="ℓ = mean(|ŷ − y|)",
    params=(),
    target=SAME_SHAPE_FLOAT,
    build=lambda p: _nn().L1Loss(),
    torch_name="nn.L1Loss",
))

register(LossSpec(
    type="Huber",
    summary="squared error for small mistakes, absolute error for big ones",
    doc="Behaves like MSE when the error is below delta (smooth, precise near the answer) and like L1 "
        "above it (robust to outliers). A good default for regression on noisy data. Choose delta around "
        "the size of error you consider 'normal' in the units of your targets.",
    formula="ℓᵢ = ½(ŷᵢ − yᵢ)² if |ŷᵢ − yᵢ| < δ, else δ·(|ŷᵢ − yᵢ| − ½δ);  ℓ = mean(ℓᵢ)",
    params=(Param("delta", FLOAT, 1.0, "error size where squared turns into absolute", min=0.0,
                  exclusive_min=True, effect="smaller delta = more like L1, larger = more like MSE"),),
    target=SAME_SHAPE_FLOAT,
    build=lambda p: _nn().HuberLoss(delta=p["delta"]),
    torch_name="nn.HuberLoss",
))

register(LossSpec(
    type="CrossEntropy",
    summary="the loss for choosing one class out of several (classification)",
    doc="Turns the network's raw scores (logits) into probabilities with softmax and measures how little "
        "probability the correct class got. The standard loss for classification (digits, objects, words). "
        "The last layer must give one score per class, e.g. a Linear with out_features = number of "
        "classes, and no Softmax after it: the loss applies log-softmax itself. Label smoothing gives a "
        "little probability to the wrong classes in the target, which stops the network from becoming "
        "over-confident (0.1 is common). Targets may also be class probabilities of the output's shape.",
    formula="ℓ = −(1/N) Σₙ log softmax(zₙ)[yₙ],  softmax(z)ᵢ = e^zᵢ / Σⱼ e^zⱼ;  "
            "with smoothing ε the target is (1 − ε)·one-hot(y) + ε/C",
    params=(Param("label_smoothing", FLOAT, 0.0, "share of the target spread over all classes", min=0.0, max=1.0,
                  effect="higher = less confident predictions, often better generalisation"),
            _IGNORE),
    target=CLASS_INDICES,
    build=lambda p: _nn().CrossEntropyLoss(label_smoothing=p["label_smoothing"], ignore_index=_ignore(p)),
    target_dtype=INT64,
    torch_name="nn.CrossEntropyLoss",
))

register(LossSpec(
    type="NLL",
    summary="negative log-likelihood: CrossEntropy for networks that end in LogSoftmax",
    doc="Takes log-probabilities and averages minus the one of the correct class. It needs a LogSoftmax as "
        "the last layer; LogSoftmax + NLL is exactly CrossEntropy on raw scores, so most people use "
        "CrossEntropy instead. Useful when you also want the log-probabilities out of the model.",
    formula="ℓ = −(1/N) Σₙ xₙ[yₙ]   (x = log-probabilities from LogSoftmax)",
    params=(_IGNORE,),
    target=CLASS_INDICES,
    build=lambda p: _nn().NLLLoss(ignore_index=_ignore(p)),
    target_dtype=INT64,
    torch_name="nn.NLLLoss",
))

register(LossSpec(
    type="BCE",
    summary="binary cross-entropy on probabilities, for yes/no answers",
    doc="Measures how far predicted probabilities are from 0/1 targets. For binary classification (one "
        "output) or multi-label tasks (one independent yes/no per output). The network must output "
        "probabilities, so the last layer must be a Sigmoid. BCEWithLogits does the same on raw scores and "
        "is numerically safer; prefer it.",
    formula="ℓ = −mean( y·log p + (1 − y)·log(1 − p) ),  p = network output in [0, 1]",
    params=(),
    target=PROBABILITIES,
    build=lambda p: _nn().BCELoss(),
    torch_name="nn.BCELoss",
))

register(LossSpec(
    type="BCEWithLogits",
    summary="binary cross-entropy on raw scores, with the sigmoid built in",
    doc="A Sigmoid followed by BCE in one numerically stable step. The recommended loss for binary and "
        "multi-label classification: end the network with a Linear (no Sigmoid) giving one score per "
        "yes/no question. When positives are rare, pos_weight > 1 makes each positive count more (set it to "
        "about negatives ÷ positives).",
    formula="ℓ = −mean( w₊·y·log σ(z) + (1 − y)·log(1 − σ(z)) ),  σ(z) = 1 / (1 + e⁻ᶻ)",
    params=(Param("pos_weight", FLOAT, None, "weight of the positive examples (none = 1)", min=0.0,
                  exclusive_min=True, optional=True, effect="higher = fewer missed positives, more false alarms"),),
    target=ZERO_ONE_FLOAT,
    build=_bce_with_logits,
    torch_name="nn.BCEWithLogitsLoss",
))


# ----------------------------------------------------------------------------------------------------
# Registry

def get_loss(name: str) -> LossSpec:
    """The spec of a loss; any case, or PyTorch's class name ("CrossEntropyLoss"). Raises SpecError with the
    nearest names."""
    return LOSSES.get(name)


def all_losses() -> list[LossSpec]:
    return LOSSES.all()


# ----------------------------------------------------------------------------------------------------
# Advice on the end of the network

def _is(layer: str | None, name: str) -> bool:
    return isinstance(layer, str) and layer.lower() == name.lower()


def check_loss_fit(loss_type: str, output_shape: Sequence[int] | None, last_layer_type: str | None,
                   num_classes: int | None = None, *, target_shape: Sequence[int] | None = None) -> list[str]:
    """Advice when the network's end does not suit the loss; an empty list when it does.

    output_shape and target_shape are for one sample (batch excluded), as shape inference reports them; None
    when unknown. last_layer_type is the type of the layer that feeds the loss (None when unknown).
    num_classes is the number of classes in the data, when known. Raises SpecError for an unknown loss.
    """
    spec = get_loss(loss_type)
    t, last = spec.type, last_layer_type
    out = tuple(output_shape) if output_shape is not None else None
    msgs: list[str] = []

    if t == "CrossEntropy":
        if _is(last, "Softmax"):
            msgs.append("CrossEntropy applies log-softmax itself: remove the Softmax before it, so that the last "
                        "layer gives raw scores (Softmax twice squashes the scores and slows learning)")
        elif _is(last, "LogSoftmax"):
            msgs.append("CrossEntropy applies log-softmax itself, so the LogSoftmax before it is redundant: "
                        "remove it, or switch the loss to NLL")
        elif _is(last, "Sigmoid"):
            msgs.append("CrossEntropy expects raw scores, but the Sigmoid before it squashes them into (0, 1) "
                        "and slows learning: remove the Sigmoid")
    elif t == "NLL":
        if _is(last, "Softmax"):
            msgs.append("NLL expects log-probabilities but the Softmax gives probabilities: replace the Softmax "
                        "with a LogSoftmax (or switch the loss to CrossEntropy and remove the Softmax)")
        elif not _is(last, "LogSoftmax"):
            what = f"the last layer is {last}" if last else "there is no LogSoftmax at the end"
            msgs.append(f"NLL expects log-probabilities, but {what}: add a LogSoftmax as the last layer, or "
                        f"switch the loss to CrossEntropy, which applies log-softmax itself")
    elif t == "BCE":
        if not _is(last, "Sigmoid"):
            what = f"the last layer is {last}, not a Sigmoid" if last else "there is no Sigmoid at the end"
            msgs.append(f"BCE expects probabilities in [0, 1], but {what}: add a Sigmoid as the last layer, or "
                        f"(more stable) switch the loss to BCEWithLogits")
    elif t == "BCEWithLogits":
        if _is(last, "Sigmoid"):
            msgs.append("BCEWithLogits applies the sigmoid itself: remove the Sigmoid before it (or switch the "
                        "loss to BCE)")
        elif _is(last, "Softmax") or _is(last, "LogSoftmax"):
            msgs.append(f"BCEWithLogits expects raw scores, one per yes/no question: remove the {last} before it")

    if out is not None and t in ("CrossEntropy", "NLL"):
        if len(out) == 0:
            msgs.append(f"{t} needs one score per class, but the last layer gives a single number per sample: "
                        f"end with a Linear whose out_features is the number of classes")
        else:
            c = out[0]  # PyTorch reads the classes from dimension 1 of (N, C, d₁, …): the first per sample
            if num_classes is not None and c != num_classes:
                if len(out) > 1 and out[-1] == num_classes:
                    order = [len(out) - 1] + list(range(len(out) - 1))
                    msgs.append(f"{t} expects the {num_classes} class scores first, (C, …), but the last layer "
                                f"gives {fmt(out)} with the classes last: add a Permute with dims {order} "
                                f"before the loss")
                else:
                    msgs.append(f"{num_classes} classes but the last layer gives {c}: set out_features of the "
                                f"last Linear to {num_classes}")
            elif num_classes is None and c == 1 and len(out) == 1:
                msgs.append(f"{t} with a single output can only ever predict one class: give the last layer one "
                            f"output per class (2 or more), or, for a yes/no task, use BCEWithLogits")

    if out is not None and target_shape is not None and t in ("MSE", "L1", "Huber", "BCE", "BCEWithLogits"):
        tgt = tuple(target_shape)
        if tgt != out:
            fix = (f"set out_features of the last Linear to {tgt[-1]}"
                   if len(tgt) == len(out) and tgt[:-1] == out[:-1] and tgt
                   else f"change the last layers so that the output is {fmt(tgt)}")
            msgs.append(f"the targets have shape {fmt(tgt)} but the last layer gives {fmt(out)}, and {t} compares "
                        f"them value by value (PyTorch would silently broadcast and learn the wrong thing): {fix}")
    return msgs


__all__ = ["CLASS_INDICES", "LossSpec", "SAME_SHAPE_FLOAT", "all_losses", "check_loss_fit", "get_loss"]
