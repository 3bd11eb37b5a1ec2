"""Why did the network predict that? Explanations of single predictions and of whole features, as plain data.

For one sample (an image, a sequence, a row of a table):
  saliency              how strongly each input value moves the target's score (the gradient's magnitude)
  grad_cam              where a convolution layer saw evidence for the target (Grad-CAM), mapped onto the input
  integrated_gradients  each input value's share of the score's change from a baseline (zeros) to the sample;
                        the shares add up to f(sample) − f(baseline) (completeness)
All three come from Captum and return an `Explanation`: the heat map (the input's spatial size, float32 in
[0, 1]), the signed attributions shaped like the input, the predicted class and the probabilities. `overlay`
paints a heat map over an image as uint8 RGB, coloured in NumPy, ready to show.

For a table: `permutation_importance` shuffles one feature at a time across the samples and measures how much the
score drops (accuracy, R², or the loss); a feature the network relies on drops it a lot, a feature it ignores
not at all.

`explain_sample` and `explain_features` do the same from a project and its trained weights (the app's evaluation
view calls them). The network runs in evaluation mode (dropout off, batch norm on its running statistics) and is
left in the mode it had; its parameters' gradients are left as they were. Everything runs in float32.

Heat-map shapes: images (C, H, W) give (H, W) (channels combined); token ids (L,) give (L,) (one value per token,
through the Embedding layer); other inputs give the input's own shape (one value per feature, or per step and
feature). Grad-CAM maps the layer onto the input's positions: (H, W) for Conv2d, and for Conv1d the input axis that
the convolution slides along, (L,).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .data import BINARY, CLASSIFICATION, RECONSTRUCTION, REGRESSION
from .errors import DataError, LayerLoomError
from .evaluate import _project, _state, choose_split
from .project import Project

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch
    import torch.nn as nn

SALIENCY, GRADCAM, INTEGRATED_GRADIENTS = "saliency", "gradcam", "integrated_gradients"
METHODS = (SALIENCY, GRADCAM, INTEGRATED_GRADIENTS)
_METHOD_NAMES = {"saliency": SALIENCY, "gradient": SALIENCY, "gradcam": GRADCAM, "grad_cam": GRADCAM,
                 "grad-cam": GRADCAM, "integrated_gradients": INTEGRATED_GRADIENTS,
                 "integrated-gradients": INTEGRATED_GRADIENTS, "ig": INTEGRATED_GRADIENTS}

# What the network's output means: how to turn it into probabilities, and whether there are classes.
LOGITS, LOG_PROBS, PROBS, BINARY_LOGITS, BINARY_PROBS, NUMBERS = (
    "logits", "log_probs", "probs", "binary_logits", "binary_probs", "regression")
OUTPUTS = (LOGITS, LOG_PROBS, PROBS, BINARY_LOGITS, BINARY_PROBS, NUMBERS)
OUTPUT_OF_LOSS = {"CrossEntropy": LOGITS, "NLL": LOG_PROBS, "BCE": BINARY_PROBS, "BCEWithLogits": BINARY_LOGITS}
_TASK_OF_OUTPUT = {LOGITS: CLASSIFICATION, LOG_PROBS: CLASSIFICATION, PROBS: CLASSIFICATION,
                   BINARY_LOGITS: BINARY, BINARY_PROBS: BINARY, NUMBERS: REGRESSION}

ACCURACY, R2, LOSS = "accuracy", "r2", "loss"
METRICS = ("auto", ACCURACY, R2, LOSS)
MAX_STEPS = 10_000
IG_BATCH = 64  # interpolation steps per forward pass of integrated gradients


class ExplainError(LayerLoomError):
    """An explanation that cannot be made as asked (a class out of range, a layer that is not a convolution,
    a network whose output is not classes or numbers ...); says what to choose instead."""


@dataclass
class Explanation:
    """One sample's explanation, as plain data.

    method        saliency | gradcam | integrated_gradients
    target        the class (or output, for several numbers) explained; None for a single number
    predicted     the network's class (classification, binary), else None
    probs         float32 (classes,) probabilities (classification, binary), else None
    heat          float32 heat map in [0, 1] (see the module's notes for its shape)
    attributions  float32, shaped like the input sample: the signed gradient (saliency), the layer's map spread
                  over the input (Grad-CAM), or each value's share of the score's change (integrated gradients)
    layer         the convolution layer's node id (Grad-CAM), else None
    output        float32 the network's raw output for the sample
    task          classification | binary | regression
    delta         integrated gradients: sum(attributions) − (f(x) − f(baseline)) for the target's score, the
                  approximation's error; else None
    """

    method: str
    target: int | None
    predicted: int | None
    probs: Any
    heat: Any
    attributions: Any
    layer: str | None = None
    output: Any = None
    task: str = CLASSIFICATION
    delta: float | None = None

    def to_dict(self, lists: bool = False) -> dict[str, Any]:
        """The fields as a dict; arrays stay NumPy arrays, or become nested lists with `lists=True` (for JSON)."""
        def conv(v: Any) -> Any:
            return v.tolist() if lists and hasattr(v, "tolist") else v
        return {"method": self.method, "target": self.target, "predicted": self.predicted,
                "probs": conv(self.probs), "heat": conv(self.heat), "attributions": conv(self.attributions),
                "layer": self.layer, "output": conv(self.output), "task": self.task, "delta": self.delta}


# ----------------------------------------------------------------------------------------------------
# The network, its input and output

def _sample_spec(model: "nn.Module") -> tuple[tuple[int, ...] | None, str | None]:
    """The sample shape and dtype of a GraphModule's one Input (None, None for any other module)."""
    ids = getattr(model, "input_ids", None)
    if ids is None:
        return None, None
    if len(ids) != 1:
        raise ExplainError(f"explanations need a network with one Input; this one has {len(ids)} "
                           f"({', '.join(ids)})")
    return tuple(model.input_shapes[ids[0]]), model.input_dtypes[ids[0]]


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _as_sample(model: "nn.Module", x: Any) -> "torch.Tensor":
    """One sample as a batch of one, checked against the Input: float32, or int64 token ids."""
    import numpy as np
    import torch

    shape, dtype = _sample_spec(model)
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DataError(f"the sample must be an array of numbers, not {a.dtype} values")
    if shape is not None:
        if tuple(a.shape) == (1, *shape):
            a = a[0]
        if tuple(a.shape) != shape:
            raise DataError(f"the sample has shape {_fmt(tuple(a.shape))} but the network's Input takes "
                            f"{_fmt(shape)}: give one sample of the data the network was built for")
    if not np.all(np.isfinite(a.astype(np.float64))):
        raise DataError("the sample holds NaN or infinite values: explain a sample with finite numbers")
    if dtype == "int64" or (dtype is None and np.issubdtype(a.dtype, np.integer)):
        if not np.all(a == np.round(a)):
            raise DataError("this network reads whole-number ids (int64) but the sample holds fractions: give "
                            "the token ids of one sample")
        return torch.as_tensor(a.astype(np.int64))[None]
    return torch.as_tensor(a.astype(np.float32))[None]


def _first(out: Any) -> "torch.Tensor":
    return out[0] if isinstance(out, (tuple, list)) else out


def _last_module_type(model: "nn.Module") -> str | None:
    plan = getattr(model, "_plan", None)
    outputs = getattr(model, "output_ids", None)
    if plan and outputs:
        return type(model._modules[outputs[0]]).__name__
    children = list(model.children())
    return type(children[-1]).__name__ if children else None


def _output_kind(model: "nn.Module", out: "torch.Tensor", output: str) -> str:
    """What the output means. `auto`: a final Sigmoid is a probability of yes, a final Softmax probabilities,
    LogSoftmax log-probabilities; otherwise several outputs are class scores (logits), one output a number."""
    if output not in ("auto", *OUTPUTS):
        raise ExplainError(f"output must be auto or one of {', '.join(OUTPUTS)}, not {output!r}")
    if out.dim() != 2:
        shape = tuple(int(s) for s in out.shape[1:])
        raise ExplainError(f"explanations need a network that outputs classes or numbers for each sample; this "
                           f"one outputs {_fmt(shape)} per sample (an autoencoder or a map), which has no single "
                           f"score to explain")
    k = int(out.shape[1])
    if output == "auto":
        last = _last_module_type(model)
        if last == "Sigmoid" and k == 1:
            output = BINARY_PROBS
        elif last == "Softmax":
            output = PROBS
        elif last == "LogSoftmax":
            output = LOG_PROBS
        else:
            output = LOGITS if k > 1 else NUMBERS
    if output in (BINARY_LOGITS, BINARY_PROBS) and k != 1:
        raise ExplainError(f"a yes/no network has one output, but this one has {k}: treat it as classes "
                           f"(output='logits')")
    return output


def _scores(out: "torch.Tensor", kind: str) -> "torch.Tensor":
    """(N, K) scores with one column per class: a binary network's single output becomes (no, yes)."""
    import torch

    out = _first(out).float()
    out = out.reshape(out.shape[0], -1)
    if kind == BINARY_LOGITS:
        return torch.cat([-out, out], dim=1)
    if kind == BINARY_PROBS:
        return torch.cat([1 - out, out], dim=1)
    return out


def _probs(scores: "torch.Tensor", kind: str) -> "torch.Tensor | None":
    import torch

    if kind == LOGITS:
        return torch.softmax(scores, dim=1)
    if kind == LOG_PROBS:
        return scores.exp()
    if kind == PROBS:
        return scores
    if kind == BINARY_LOGITS:
        return torch.sigmoid(scores)  # sigmoid(-z), sigmoid(z)
    if kind == BINARY_PROBS:
        return scores.clamp(0, 1)
    return None


def _check_target(target: Any, kind: str, n_scores: int, predicted: int | None) -> int:
    """The score column to explain: the predicted class by default."""
    import numpy as np

    if target is not None and (isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer))):
        raise ExplainError(f"the target must be a class number (0, 1, ...), not {target!r}")
    if kind == NUMBERS:
        if target is None:
            return 0
        if n_scores == 1:
            raise ExplainError("this network predicts a number (regression), so it has no classes to explain: "
                               "leave the target empty to explain its output")
        if not 0 <= int(target) < n_scores:
            raise ExplainError(f"output {int(target)} does not exist: this network predicts {n_scores} numbers, "
                               f"choose 0 to {n_scores - 1}")
        return int(target)
    if target is None:
        return int(predicted)  # type: ignore[arg-type]
    if not 0 <= int(target) < n_scores:
        raise ExplainError(f"class {int(target)} is out of range: this network has {n_scores} classes, choose "
                           f"0 to {n_scores - 1}")
    return int(target)


class _Session:
    """The network in evaluation mode with its gradients kept aside; restores both when done."""

    def __init__(self, model: "nn.Module"):
        self.model = model

    def __enter__(self) -> "_Session":
        import torch

        self.modes = [(m, m.training) for m in self.model.modules()]
        self.grads = [(p, p.grad) for p in self.model.parameters()]
        for p, _ in self.grads:
            p.grad = None
        self.model.train(False)
        self.grad_ctx = torch.enable_grad()
        self.grad_ctx.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.grad_ctx.__exit__(*exc)
        for p, g in self.grads:
            p.grad = g
        for m, mode in self.modes:  # each submodule as it was (one may have been frozen in evaluation mode)
            m.training = mode


def _device(model: "nn.Module") -> "torch.device":
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _normalise(a: "np.ndarray") -> "np.ndarray":
    """Non-negative values scaled by their maximum into [0, 1] (all zeros stay zeros)."""
    import numpy as np

    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    a = np.maximum(a, 0.0)
    top = float(a.max()) if a.size else 0.0
    out = a / top if top > 0 else np.zeros_like(a)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _check_image_shape(image_shape: Any, sample_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    import math

    if image_shape is None:
        return None
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or math.prod(shape) != math.prod(sample_shape):
        raise ExplainError(f"image_shape {_fmt(shape)} does not hold the sample's {math.prod(sample_shape)} "
                           f"values: give (channels, height, width) of the flattened image, or leave it empty")
    return shape  # type: ignore[return-value]


def _heat_of(attr: "np.ndarray", sample_shape: tuple[int, ...], is_tokens: bool, reduce: str,
             image_shape: tuple[int, int, int] | None) -> "np.ndarray":
    """The heat map of per-value attributions: channels combined for images (max of |a| or |Σ a|)."""
    import numpy as np

    a = attr
    if image_shape is not None and len(sample_shape) == 1:
        a = a.reshape(image_shape)
    if a.ndim == 3 and not is_tokens:
        a = np.abs(a).max(axis=0) if reduce == "max" else np.abs(a.sum(axis=0))
    return _normalise(np.abs(a))


def _embedding(model: "nn.Module") -> "nn.Module":
    """The Embedding layer that reads the token ids (right after the Input)."""
    import torch.nn as nn

    plan = getattr(model, "_plan", None)
    if plan:
        first = model.input_ids[0]
        for nid, srcs, _ in plan:
            if first in srcs and isinstance(model._modules[nid], nn.Embedding):
                return model._modules[nid]
    else:
        for m in model.modules():
            if isinstance(m, nn.Embedding):
                return m
    raise ExplainError("this network reads whole-number ids (int64) without an Embedding layer right after the "
                       "Input, so there is no gradient to follow: add an Embedding after the Input, or use "
                       "permutation importance")


def _prepare(model: "nn.Module", x: Any, target: Any, output: str):
    """The batch of one, the score function, the output's meaning, and the prediction."""
    import torch

    xb = _as_sample(model, x).to(_device(model))
    with torch.no_grad():
        raw = _first(model(xb))
    kind = _output_kind(model, raw, output)
    scores = _scores(raw, kind)
    probs = _probs(scores, kind)
    predicted = int(probs.argmax(dim=1)[0]) if probs is not None else None
    t = _check_target(target, kind, int(scores.shape[1]), predicted)

    def forward(inp: "torch.Tensor") -> "torch.Tensor":
        return _scores(model(inp), kind)

    info = {"kind": kind, "task": _TASK_OF_OUTPUT[kind], "predicted": predicted,
            "probs": None if probs is None else probs[0].detach().cpu().numpy().astype("float32"),
            "output": raw[0].detach().cpu().float().numpy(), "target": None if kind == NUMBERS and
            int(scores.shape[1]) == 1 else t}
    return xb, forward, t, info


def _np(t: "torch.Tensor") -> "np.ndarray":
    return t.detach().cpu().float().numpy()


# ----------------------------------------------------------------------------------------------------
# The three methods

def saliency(model: "nn.Module", x: Any, target: int | None = None, *, output: str = "auto",
             image_shape: tuple[int, int, int] | None = None) -> Explanation:
    """Saliency: |∂ score[target] / ∂ x| for one sample `x` (its sample shape, without the batch).

    The heat is the gradient's magnitude (the largest over an image's channels); `attributions` the signed
    gradient. Token ids are explained through the Embedding layer: one value per token (the norm of the gradient
    over the embedding). `target` defaults to the predicted class; `output` says what the network outputs (auto,
    logits, log_probs, probs, binary_logits, binary_probs, regression); `image_shape` (C, H, W) lets a flattened
    image's heat come out as (H, W)."""
    from captum.attr import LayerGradientXActivation, Saliency

    with _Session(model):
        xb, forward, t, info = _prepare(model, x, target, output)
        shape = tuple(xb.shape[1:])
        img = _check_image_shape(image_shape, shape)
        if xb.dtype.is_floating_point:
            grad = _np(Saliency(forward).attribute(xb.clone().requires_grad_(True), target=t, abs=False))[0]
            heat = _heat_of(grad, shape, False, "max", img)
            attributions = grad
        else:
            emb = _embedding(model)
            g = LayerGradientXActivation(forward, emb, multiply_by_inputs=False).attribute(xb, target=t)
            g = _np(g)[0]
            attributions = (g ** 2).sum(axis=-1) ** 0.5
            heat = _normalise(attributions)
    return Explanation(SALIENCY, info["target"], info["predicted"], info["probs"], heat,
                       attributions.astype("float32"), None, info["output"], info["task"])


def integrated_gradients(model: "nn.Module", x: Any, target: int | None = None, *, baseline: Any = None,
                         n_steps: int = 50, output: str = "auto",
                         image_shape: tuple[int, int, int] | None = None) -> Explanation:
    """Integrated gradients from `baseline` (zeros by default, or an array of the sample's shape, or one number)
    to the sample `x`, over `n_steps` points (Gauss-Legendre): each value's share of score[target](x) −
    score[target](baseline). The heat is the shares' magnitude (|sum over channels| for images); `delta` says how
    far the shares' sum is from that difference. Token ids are integrated along their embeddings from the ids in
    `baseline` (0, the padding id, by default): one share per token."""
    import numpy as np
    import torch
    from captum.attr import IntegratedGradients, LayerIntegratedGradients

    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or not 1 <= n_steps <= MAX_STEPS:
        raise ExplainError(f"n_steps must be a whole number from 1 to {MAX_STEPS}, not {n_steps!r} (50 is usual; "
                           f"more steps give a closer sum)")
    with _Session(model):
        xb, forward, t, info = _prepare(model, x, target, output)
        shape = tuple(xb.shape[1:])
        img = _check_image_shape(image_shape, shape)
        if baseline is None:
            base = torch.zeros_like(xb)
        else:
            b = np.asarray(baseline.detach().cpu() if isinstance(baseline, torch.Tensor) else baseline)
            if b.ndim == 0:
                b = np.full(shape, b.item())
            if tuple(b.shape) == (1, *shape):
                b = b[0]
            if tuple(b.shape) != shape:
                raise DataError(f"the baseline has shape {_fmt(tuple(b.shape))} but the sample has {_fmt(shape)}: "
                                f"give one array of the sample's shape, one number, or nothing (zeros)")
            if not np.all(np.isfinite(b.astype(np.float64))):
                raise DataError("the baseline holds NaN or infinite values: give finite numbers")
            base = torch.as_tensor(b.astype(np.float32 if xb.dtype.is_floating_point else np.int64),
                                   device=xb.device)[None]
        steps = int(n_steps)
        if xb.dtype.is_floating_point:
            ig = IntegratedGradients(forward, multiply_by_inputs=True)
            attr, delta = ig.attribute(xb, baselines=base, target=t, n_steps=steps, internal_batch_size=IG_BATCH,
                                       return_convergence_delta=True)
            attributions = _np(attr)[0]
            heat = _heat_of(attributions, shape, False, "sum", img)
        else:
            lig = LayerIntegratedGradients(forward, _embedding(model), multiply_by_inputs=True)
            attr, delta = lig.attribute(xb, baselines=base, target=t, n_steps=steps, internal_batch_size=IG_BATCH,
                                        return_convergence_delta=True)
            attributions = _np(attr)[0].sum(axis=-1)
            heat = _normalise(np.abs(attributions))
    return Explanation(INTEGRATED_GRADIENTS, info["target"], info["predicted"], info["probs"], heat,
                       attributions.astype(np.float32), None, info["output"], info["task"],
                       delta=float(delta.reshape(-1)[0]))


def conv_layers(model: "nn.Module") -> list[str]:
    """The names (node ids) of the model's Conv1d / Conv2d layers, in the order the network runs them."""
    from torch.nn.modules.conv import _ConvNd

    return [name for name, m in model.named_modules()
            if name and isinstance(m, _ConvNd) and m.weight.dim() - 2 in (1, 2)]


def _conv_layer(model: "nn.Module", layer: str | None) -> tuple[str, "nn.Module"]:
    convs = conv_layers(model)
    modules = dict(model.named_modules())
    if layer is None:
        if not convs:
            raise ExplainError("Grad-CAM needs a convolution layer (Conv1d or Conv2d) and this network has none: "
                               "use saliency or integrated gradients instead")
        return convs[-1], modules[convs[-1]]
    if not isinstance(layer, str) or layer not in modules or not layer:
        have = f"its convolution layers are {', '.join(convs)}" if convs else \
            "it has no convolution layer, so use saliency or integrated gradients instead"
        raise ExplainError(f"the network has no layer {layer!r} for Grad-CAM: {have}")
    if layer not in convs:
        kind = type(modules[layer]).__name__.removesuffix("Layer")
        have = f"choose one of {', '.join(convs)}" if convs else \
            "this network has none, so use saliency or integrated gradients instead"
        raise ExplainError(f"{layer} is a {kind} layer, not a convolution: Grad-CAM needs a Conv1d or Conv2d "
                           f"layer; {have}")
    return layer, modules[layer]


def _gradcam_axis(sample: tuple[int, ...], conv_in: tuple[int, ...]) -> int:
    """The input axis a Conv1d slides along: the one whose length the convolution's input has."""
    if len(sample) == 1:
        return 0
    channels, length = conv_in[0], conv_in[-1]
    if sample[-1] == length:
        return len(sample) - 1
    if sample[0] == length:
        return 0
    if sample[-1] == channels:  # (steps, features), permuted to (features, steps) before the convolution
        return 0
    return len(sample) - 1


def grad_cam(model: "nn.Module", x: Any, target: int | None = None, *, layer: str | None = None,
             output: str = "auto", image_shape: tuple[int, int, int] | None = None) -> Explanation:
    """Grad-CAM on a convolution layer (its node id; by default the last one, nearest the head): the layer's
    feature maps weighed by the mean gradient of score[target] over each map, summed over the maps, kept where
    positive, and stretched (bilinear, or linear for Conv1d) onto the input's positions. The heat is (H, W) for
    a Conv2d over an image (also a flattened one, given `image_shape`), (L,) for a Conv1d over a sequence;
    `attributions` is the stretched map before the positive part, repeated over the input's channels."""
    import numpy as np
    from captum.attr import LayerAttribution, LayerGradCam

    name, module = _conv_layer(model, layer)
    with _Session(model):
        xb, forward, t, info = _prepare(model, x, target, output)
        shape = tuple(xb.shape[1:])
        img = _check_image_shape(image_shape, shape)
        seen: dict[str, tuple[int, ...]] = {}

        def note_input(m: Any, args: Any, out: Any) -> None:  # returns None: the layer's output stays as it is
            seen.setdefault("in", tuple(int(s) for s in args[0].shape[1:]))
        hook = module.register_forward_hook(note_input)
        try:
            cam = LayerGradCam(forward, module).attribute(xb, target=t, relu_attributions=False)
        finally:
            hook.remove()
        dims = module.weight.dim() - 2
        if dims == 2:
            if len(shape) == 3:
                size, full = shape[1:], shape
            elif img is not None:
                size, full = img[1:], img
            else:
                raise ExplainError(f"Grad-CAM maps {name} onto the image, but this network's Input is "
                                   f"{_fmt(shape)}, not an image (channels, height, width): give image_shape for "
                                   f"a flattened image, or use saliency")
            up = _np(LayerAttribution.interpolate(cam, tuple(size), interpolate_mode="bilinear"))[0, 0]
            attributions = np.broadcast_to(up, full).reshape(shape)
        else:
            if len(shape) > 2:
                raise ExplainError(f"Grad-CAM cannot place the Conv1d {name} on an Input of shape {_fmt(shape)}: "
                                   f"use saliency or integrated gradients")
            axis = _gradcam_axis(shape, seen.get("in", (1, shape[-1])))
            up = _np(LayerAttribution.interpolate(cam, (shape[axis],), interpolate_mode="linear"))[0, 0]
            attributions = np.broadcast_to(up[:, None] if axis == 0 and len(shape) == 2 else up, shape)
        heat = _normalise(np.maximum(up, 0.0))
    return Explanation(GRADCAM, info["target"], info["predicted"], info["probs"], heat,
                       np.ascontiguousarray(attributions, dtype=np.float32), name, info["output"], info["task"])


def explain(model: "nn.Module", x: Any, *, method: str = SALIENCY, target: int | None = None,
            layer: str | None = None, baseline: Any = None, n_steps: int = 50, output: str = "auto",
            image_shape: tuple[int, int, int] | None = None) -> Explanation:
    """One of the three methods by name (saliency, gradcam, integrated_gradients; a few spellings accepted)."""
    m = _METHOD_NAMES.get(str(method).strip().lower().replace(" ", "_"))
    if m is None:
        raise ExplainError(f"unknown explanation method {method!r}: choose saliency, gradcam or "
                           f"integrated_gradients")
    if layer is not None and m != GRADCAM:
        raise ExplainError(f"a layer is only chosen for Grad-CAM; {m} explains the input itself: leave layer empty")
    if baseline is not None and m != INTEGRATED_GRADIENTS:
        raise ExplainError(f"a baseline is only used by integrated gradients, not {m}: leave baseline empty")
    if m == SALIENCY:
        return saliency(model, x, target, output=output, image_shape=image_shape)
    if m == GRADCAM:
        return grad_cam(model, x, target, layer=layer, output=output, image_shape=image_shape)
    return integrated_gradients(model, x, target, baseline=baseline, n_steps=n_steps, output=output,
                                image_shape=image_shape)


# ----------------------------------------------------------------------------------------------------
# Heat maps for people

# matplotlib's "jet" as control points: blue (cold) over cyan, yellow to red (hot)
_JET = (((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
        ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
        ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)))


def colormap(heat: Any) -> "np.ndarray":
    """Heat values in [0, 1] (clipped) as uint8 RGB, shape heat.shape + (3,): blue for 0, red for 1."""
    import numpy as np

    h = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float64)), 0.0, 1.0)
    rgb = np.stack([np.interp(h, [p for p, _ in c], [v for _, v in c]) for c in _JET], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def overlay(image: Any, heat: Any, alpha: float = 0.5) -> "np.ndarray":
    """The heat map painted over an image: uint8 RGB (H, W, 3) = (1 − alpha)·image + alpha·colour(heat).

    `image` is (C, H, W) with 1 or 3 channels (other counts are averaged to grey) or (H, W), in any range (it is
    stretched to its own minimum and maximum); `heat` is (H, W) in [0, 1]."""
    import numpy as np

    img = np.asarray(image, dtype=np.float64)
    h = np.asarray(heat, dtype=np.float64)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0.0 <= alpha <= 1.0:
        raise ExplainError(f"alpha must be a number from 0 (only the image) to 1 (only the heat map), not {alpha!r}")
    if img.ndim == 3:
        if img.shape[0] == 3:
            rgb = img.transpose(1, 2, 0)
        else:
            rgb = np.repeat(img.mean(axis=0)[..., None], 3, axis=-1)
    elif img.ndim == 2:
        rgb = np.repeat(img[..., None], 3, axis=-1)
    else:
        raise ExplainError(f"overlay needs an image of shape (channels, height, width) or (height, width), not "
                           f"{_fmt(tuple(img.shape))}")
    if h.shape != rgb.shape[:2]:
        raise ExplainError(f"the heat map is {_fmt(tuple(h.shape))} but the image is {_fmt(rgb.shape[:2])}: "
                           f"use the heat map made for this image")
    rgb = np.nan_to_num(rgb)
    lo, hi = float(rgb.min()), float(rgb.max())
    rgb = (rgb - lo) / (hi - lo) if hi > lo else np.zeros_like(rgb)
    out = (1.0 - alpha) * rgb + alpha * (colormap(h) / 255.0)
    return np.round(np.clip(out, 0.0, 1.0) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# Permutation importance

def _predict(model: "nn.Module", x: "torch.Tensor", batch_size: int) -> "torch.Tensor":
    import torch

    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = _first(model(x[i:i + batch_size])).float()
            outs.append(out.reshape(out.shape[0], -1).cpu())
    return torch.cat(outs)


def _default_loss(kind: str) -> Callable:
    import torch.nn.functional as F

    if kind == LOGITS:
        return lambda out, y: F.cross_entropy(out, y, reduction="none")
    if kind == LOG_PROBS:
        return lambda out, y: F.nll_loss(out, y, reduction="none")
    if kind == PROBS:
        return lambda out, y: F.nll_loss(out.clamp_min(1e-12).log(), y, reduction="none")
    if kind == BINARY_LOGITS:
        return lambda out, y: F.binary_cross_entropy_with_logits(out, y, reduction="none")
    if kind == BINARY_PROBS:
        return lambda out, y: F.binary_cross_entropy(out.clamp(0, 1), y, reduction="none")
    return lambda out, y: F.mse_loss(out, y, reduction="none")


def _scorer(kind: str, metric: Any, loss_fn: Callable | None) -> tuple[str, Callable]:
    """(name, score(out (R, N, K), y) -> (R,) higher is better)."""
    import torch

    task = _TASK_OF_OUTPUT[kind]
    if callable(metric):
        return getattr(metric, "__name__", "metric"), lambda out, y: torch.stack([
            torch.as_tensor(float(metric(o, y))) for o in out])
    if metric not in METRICS:
        raise ExplainError(f"unknown metric {metric!r}: choose auto, accuracy, r2 or loss (or give a function of "
                           f"(outputs, targets) that returns a score, higher is better)")
    if metric == "auto":
        metric = R2 if task == REGRESSION else ACCURACY
    if metric == ACCURACY:
        if task == REGRESSION:
            raise ExplainError("accuracy counts right classes, but this network predicts numbers: use r2 or loss")
        if task == BINARY:
            cut = 0.0 if kind == BINARY_LOGITS else 0.5
            return ACCURACY, lambda out, y: ((out[..., 0] > cut) == (y.reshape(-1) > 0.5)).float().mean(dim=1)
        return ACCURACY, lambda out, y: (out.argmax(dim=-1) == y.reshape(-1)).float().mean(dim=1)
    if metric == R2:
        if task != REGRESSION:
            raise ExplainError("R² measures predicted numbers, but this network predicts classes: use accuracy or "
                               "loss")

        def r2(out: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
            target = y.reshape(1, y.shape[0], -1)
            total = float((target - target.mean()).pow(2).sum())
            sse = (out - target).pow(2).sum(dim=(1, 2))
            return 1.0 - sse / total if total > 1e-12 else torch.zeros(out.shape[0])
        return R2, r2
    fn = loss_fn or _default_loss(kind)

    def neg_loss(out: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        r, n = out.shape[0], out.shape[1]
        flat = out.reshape(r * n, *out.shape[2:])
        if task == CLASSIFICATION:
            yy = y.reshape(-1).repeat(r)
        else:
            yy = y.reshape(n, -1).repeat(r, 1).reshape(flat.shape)
        per = fn(flat, yy)
        return -per.reshape(r, n, -1).mean(dim=(1, 2))
    return LOSS, neg_loss


def permutation_importance(model: "nn.Module", x: Any, y: Any, *, metric: Any = "auto", repeats: int = 5,
                           seed: int = 0, feature_names: Any = None, batch_size: int = 1024, output: str = "auto",
                           loss_fn: Callable | None = None) -> list[dict[str, Any]]:
    """How much the network's score drops when one feature is shuffled across the samples, for every feature.

    x is (N, features) (for more dimensions the features are the last axis, each shuffled whole); y the targets
    (class indices, 0/1 for a yes/no network, or numbers). `metric`: auto (accuracy for classes, R² for numbers),
    accuracy, r2, loss (the increase of `loss_fn`, by default the loss that suits the output), or a function
    f(outputs, targets) -> score, higher is better. Each feature is shuffled `repeats` times (seeded by `seed`),
    all repeats in one batched pass. Returns, most important first:
        {"name", "index", "importance" (mean drop), "std" (over the repeats), "baseline" (unshuffled score),
         "metric"}."""
    import numpy as np
    import torch

    for what, v, lo in (("repeats", repeats, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ExplainError(f"{what} must be a whole number of at least {lo}, not {v!r}")
    device = _device(model)
    xt = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    xt = (xt.long() if not xt.is_floating_point() else xt.float()).to(device)
    if xt.dim() < 2 or len(xt) < 2:
        raise DataError(f"permutation importance needs at least two samples of one or more features, x of shape "
                        f"(samples, features), not {_fmt(tuple(xt.shape))}")
    n, f = int(xt.shape[0]), int(xt.shape[-1])
    yn = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if len(yn) != n:
        raise DataError(f"x holds {n} samples but y {len(yn)}: give one target per sample")
    if feature_names is None:
        names = [f"feature {j}" for j in range(f)]
    else:
        names = [str(s) for s in feature_names]
        if len(names) != f:
            raise ExplainError(f"{len(names)} feature names for {f} features: give one name per feature")
    shape, _ = _sample_spec(model)
    if shape is not None and tuple(xt.shape[1:]) != shape:
        raise DataError(f"the samples have shape {_fmt(tuple(xt.shape[1:]))} but the network's Input takes "
                        f"{_fmt(shape)}: give the data the network was built for")
    with _Session(model):
        base_out = _predict(model, xt, int(batch_size))
        kind = _output_kind(model, base_out, output)
        task = _TASK_OF_OUTPUT[kind]
        if task == CLASSIFICATION:
            yt = torch.as_tensor(yn.astype(np.int64)).reshape(-1)
            k = int(base_out.shape[1])
            if int(yt.min()) < 0 or int(yt.max()) >= k:
                raise DataError(f"the targets hold class {int(yt.max()) if int(yt.max()) >= k else int(yt.min())}"
                                f" but the network has {k} classes (0 to {k - 1}): give class indices")
        else:
            yt = torch.as_tensor(yn.astype(np.float32)).reshape(n, -1)
            if task == BINARY and yt.shape[1] != 1:
                raise DataError("a yes/no network needs one 0/1 target per sample")
            if task == REGRESSION and yt.shape[1] != base_out.shape[1]:
                raise DataError(f"the network predicts {int(base_out.shape[1])} numbers per sample but the targets "
                                f"have {int(yt.shape[1])}: give targets that fit the output")
        metric_name, score = _scorer(kind, metric, loss_fn)
        baseline = float(score(base_out[None], yt)[0])
        rng = np.random.default_rng(int(seed))
        rows = []
        for j in range(f):
            perms = torch.as_tensor(rng.permuted(np.tile(np.arange(n), (int(repeats), 1)), axis=1), device=device)
            shuffled = xt.unsqueeze(0).repeat(int(repeats), *([1] * xt.dim()))
            shuffled[..., j] = xt[..., j][perms]
            out = _predict(model, shuffled.reshape(-1, *xt.shape[1:]), int(batch_size))
            scores = score(out.reshape(int(repeats), n, -1), yt).double().numpy()
            drops = baseline - scores
            rows.append({"name": names[j], "index": j, "importance": float(drops.mean()),
                         "std": float(drops.std()), "baseline": baseline, "metric": metric_name})
    rows.sort(key=lambda r: -r["importance"])
    return rows


# ----------------------------------------------------------------------------------------------------
# From a project

def _model(project: Project, weights: Any) -> "nn.Module":
    from .builder import build_model

    model = build_model(project.graph)
    model.load_state_dict(_state(weights, model))
    model.float()
    return model


def _output_of(project: Project) -> str:
    if not project.loss:
        return "auto"
    return OUTPUT_OF_LOSS.get(project.loss.get("type"), NUMBERS)


def explain_sample(project: Project | dict[str, Any], weights: Any, x_sample: Any, *, method: str = SALIENCY,
                   target: int | None = None, layer: str | None = None, baseline: Any = None, n_steps: int = 50,
                   image_shape: tuple[int, int, int] | None = None) -> Explanation:
    """Explain the project's network (built from its graph, with `weights`: a state dict or a .safetensors path)
    on one sample of its data, shaped like the Input (a batch of one is accepted too).

    method: saliency | gradcam | integrated_gradients; target: the class to explain (default the predicted one;
    must be empty for a network that predicts one number); layer: Grad-CAM's convolution (node id, default the
    last); baseline, n_steps: integrated gradients' start and steps; image_shape: (C, H, W) of a flattened image
    (the evaluation's `image_shape`) so its heat map comes out as (H, W). The project's loss says what the output
    means (CrossEntropy: class scores, BCE: a probability, MSE: numbers ...)."""
    project = _project(project)
    model = _model(project, weights)
    return explain(model, x_sample, method=method, target=target, layer=layer, baseline=baseline, n_steps=n_steps,
                   output=_output_of(project), image_shape=image_shape)


def explain_features(project: Project | dict[str, Any], weights: Any, bundle: Any = None, split: str = "val", *,
                     base_dir: str | os.PathLike | None = None, metric: Any = "auto", repeats: int = 5,
                     seed: int = 0, max_samples: int = 5000, batch_size: int = 1024,
                     feature_names: Any = None) -> list[dict[str, Any]]:
    """Permutation importance of every feature of the project's tabular data (see `permutation_importance`), on
    a split of `bundle` (a DataBundle; by default the project's data is loaded, relative paths from `base_dir`):
    `split` (val by default) when it has samples, else test, val or train, at most `max_samples` of it. `bundle`
    may also be one Split, used as it is. Feature names come from the data (CSV columns, the iris or wine
    measurements) unless `feature_names` is given. The loss metric uses the project's loss."""
    from .data import Split, load_data
    from .losses import get_loss

    project = _project(project)
    names = feature_names
    if isinstance(bundle, Split):
        part = bundle
    else:
        if bundle is None:
            if not project.data:
                raise DataError("choose a data set before explaining features (a bundled set, a generated one or "
                                "a file)")
            bundle = load_data(project.data, base_dir=base_dir)
        if bundle.task == RECONSTRUCTION:
            raise ExplainError("permutation importance measures how a prediction suffers without a feature; an "
                               "autoencoder predicts its own input, so explain a classifier or a regression instead")
        if bundle.is_image:
            raise ExplainError("permutation importance is for tables of features; for images, explain single "
                               "samples with saliency, Grad-CAM or integrated gradients")
        part = getattr(bundle, choose_split(bundle, split))
        if names is None and bundle.feature_names is not None and len(bundle.feature_names) == \
                bundle.sample_shape[-1]:
            names = list(bundle.feature_names)
    n = min(len(part), max(2, int(max_samples)))
    model = _model(project, weights)
    loss_fn = None
    if project.loss:
        spec = get_loss(project.loss["type"])
        module = spec.build(spec.validate_params(project.loss.get("params", {})))
        module.reduction = "none"
        loss_fn = module
    return permutation_importance(model, part.x[:n], part.y[:n], metric=metric, repeats=repeats, seed=seed,
                                  feature_names=names, batch_size=batch_size, output=_output_of(project),
                                  loss_fn=loss_fn)


__all__ = [
    "ExplainError", "Explanation", "METHODS", "colormap", "conv_layers", "explain", "explain_features",
    "explain_sample", "grad_cam", "integrated_gradients", "overlay", "permutation_importance", "saliency",
]
