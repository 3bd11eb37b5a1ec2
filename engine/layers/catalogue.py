"""The layer catalogue: one LayerSpec per type, with PyTorch's names, a learner's explanation and a shape rule."""
from __future__ import annotations

import math

from ..catalog import Catalog
from ..errors import UnknownLayerError
from ..params import BOOL, CHOICE, FLOAT, INT, INT_TUPLE, INTS, PADDING, Param, as_tuple
from .base import FLOAT32, INT64, LayerSpec, TensorInfo, fail, fmt

LAYERS: Catalog[LayerSpec] = Catalog("layer type", UnknownLayerError, list_all=False,
                                     more=" See `layerloom layers` for the list.")
register = LAYERS.register


def _nn():
    import torch.nn as nn  # torch loads only when a model is built
    return nn


def _mods():
    from . import modules
    return modules


def _x(s: tuple[int, ...]) -> str:
    """Spatial sizes as people write them: 28×28."""
    return "×".join(str(v) for v in s)


# ----------------------------------------------------------------------------------------------------
# Input

def _input_infer(p, ins):
    return TensorInfo(tuple(p["shape"]), p["dtype"])


register(LayerSpec(
    type="Input", category="Input",
    summary="where data enters the network",
    doc="Declares the shape of one sample (without the batch dimension) and its type. Images are "
        "(channels, height, width), e.g. (1, 28, 28) for MNIST; tables are (features,); sequences are "
        "(steps, features), or (steps,) of int64 token ids for an Embedding. A network may have several "
        "Inputs: the model then takes one tensor per Input, in the order they were added.",
    formula="x ∈ ℝ^shape (float32) or ℕ^shape (int64 token ids)",
    params=(
        Param("shape", INTS, [1, 28, 28], "size of one sample, batch excluded", min=1, max=1_000_000,
              max_length=6, effect="every layer below re-infers its shape"),
        Param("dtype", CHOICE, FLOAT32, "float32 for measurements and pixels, int64 for token ids",
              choices=(FLOAT32, INT64),
              aliases=(("float", FLOAT32), ("torch.float32", FLOAT32), ("torch.float", FLOAT32),
                       ("long", INT64), ("int", INT64), ("torch.int64", INT64), ("torch.long", INT64))),
    ),
    infer=_input_infer, build=None, min_inputs=0, max_inputs=0, accepts="any", key_params=("shape",),
))


# ----------------------------------------------------------------------------------------------------
# Core

def _linear_infer(p, ins):
    s = ins[0].shape
    if len(s) > 2:
        flat = math.prod(s)
        raise fail(f"Linear needs a flat input (features) but gets {fmt(s)}",
                   f"insert a Flatten before it (it would give ({flat},))")
    return TensorInfo(s[:-1] + (p["out_features"],))


register(LayerSpec(
    type="Linear", category="Core",
    summary="a fully connected layer: every output is a weighted sum of every input",
    doc="Multiplies the input features by a learned weight matrix and adds a bias. The workhorse of "
        "classifiers and regressors: put one at the end with as many outputs as classes (or 1 for "
        "regression). It needs flat features, so add a Flatten after convolutions. On a sequence "
        "(steps, features) it is applied to every step.",
    formula="y = x·Wᵀ + b,  W ∈ ℝ^(out_features × in_features)",
    params=(
        Param("out_features", INT, 10, "number of outputs (neurons)", min=1, max=1_000_000,
              effect="more outputs = more capacity and more parameters"),
        Param("bias", BOOL, True, "learn an additive bias b"),
    ),
    infer=_linear_infer,
    build=lambda p, ins: _nn().Linear(ins[0].shape[-1], p["out_features"], bias=p["bias"]),
    count_params=lambda p, ins, out: ins[0].shape[-1] * p["out_features"] + (p["out_features"] if p["bias"] else 0),
    count_macs=lambda p, ins, out: ins[0].numel * p["out_features"],
    key_params=("out_features",),
))


def _dropout_infer(p, ins):
    return TensorInfo(ins[0].shape)


register(LayerSpec(
    type="Dropout", category="Core",
    summary="randomly zeroes inputs while training, to fight overfitting",
    doc="During training each value is set to zero with probability p and the rest are scaled by "
        "1/(1−p); at evaluation it does nothing. Use it when the validation loss rises while the "
        "training loss falls (overfitting), typically before the last Linear layers. 0.2–0.5 is usual.",
    formula="y = m ⊙ x / (1 − p),  m ~ Bernoulli(1 − p)",
    params=(Param("p", FLOAT, 0.5, "probability of zeroing each value", min=0.0, max=1.0,
                  effect="higher p = stronger regularisation, slower learning"),),
    infer=_dropout_infer, build=lambda p, ins: _nn().Dropout(p["p"]), key_params=("p",),
))


def _dropout2d_infer(p, ins):
    s = ins[0].shape
    if len(s) != 3:
        raise fail(f"Dropout2d works on feature maps (channels, height, width) but gets {fmt(s)}",
                   "use Dropout for flat or sequence data")
    return TensorInfo(s)


register(LayerSpec(
    type="Dropout2d", category="Core",
    summary="randomly drops whole feature maps while training",
    doc="Like Dropout, but zeroes entire channels of a convolutional feature map at once, which suits "
        "images where neighbouring pixels are strongly correlated. Only active during training.",
    formula="y[c] = m_c · x[c] / (1 − p),  m_c ~ Bernoulli(1 − p)",
    params=(Param("p", FLOAT, 0.5, "probability of dropping each channel", min=0.0, max=1.0),),
    infer=_dropout2d_infer, build=lambda p, ins: _nn().Dropout2d(p["p"]), key_params=("p",),
))


def _embedding_infer(p, ins):
    n, pad = p["num_embeddings"], p["padding_idx"]
    if pad is not None and pad >= n:
        raise fail(f"padding_idx {pad} is not an id of the vocabulary (0 … {n - 1})",
                   f"set padding_idx below num_embeddings {n}, or leave it empty")
    return TensorInfo(ins[0].shape + (p["embedding_dim"],))


register(LayerSpec(
    type="Embedding", category="Core",
    summary="turns token ids into learned vectors",
    doc="A lookup table: each integer id (a word, a character, a category) selects one learned row of "
        "embedding_dim numbers. The first layer of text models. Its input must be int64 ids in "
        "[0, num_embeddings), so set the Input's dtype to int64.",
    formula="y = E[x],  E ∈ ℝ^(num_embeddings × embedding_dim)",
    params=(
        Param("num_embeddings", INT, 10000, "vocabulary size (largest id + 1)", min=1, max=100_000_000),
        Param("embedding_dim", INT, 64, "length of each vector", min=1, max=100_000),
        Param("padding_idx", INT, None, "an id whose vector stays zero (padding)", min=0, optional=True),
    ),
    infer=_embedding_infer,
    build=lambda p, ins: _nn().Embedding(p["num_embeddings"], p["embedding_dim"], padding_idx=p["padding_idx"]),
    count_params=lambda p, ins, out: p["num_embeddings"] * p["embedding_dim"],
    accepts="int", key_params=("num_embeddings", "embedding_dim"),
))


register(LayerSpec(
    type="Identity", category="Core",
    summary="passes its input through unchanged",
    doc="Does nothing. Handy as a named junction point, or to keep a wire while trying variants.",
    formula="y = x",
    params=(),
    infer=lambda p, ins: ins[0], build=lambda p, ins: _nn().Identity(), accepts="any",
))


# ----------------------------------------------------------------------------------------------------
# Convolution

def _conv_geometry(layer: str, p: dict, spatial: tuple[int, ...], transposed: bool = False) -> tuple[int, ...]:
    n = len(spatial)
    k = as_tuple(p["kernel_size"], n)
    s = as_tuple(p["stride"], n)
    d = as_tuple(p["dilation"], n)
    pad = p["padding"]
    if transposed:
        pd = as_tuple(pad, n)
        op = as_tuple(p["output_padding"], n)
        for i in range(n):
            if op[i] >= max(s[i], d[i]):
                raise fail(f"output_padding {op[i]} must be smaller than stride ({s[i]}) or dilation ({d[i]})",
                           "lower output_padding or raise stride")
        out = tuple((spatial[i] - 1) * s[i] - 2 * pd[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(n))
        if min(out) < 1:
            raise fail(f"padding {pad} is too large for the {_x(spatial)} input of {layer}: the output would be "
                       f"{_x(out)}", "lower padding")
        return out
    if pad == "same":
        if any(v != 1 for v in s):
            raise fail(f"padding 'same' works only with stride 1, but stride is {p['stride']}",
                       "set stride to 1 or give padding as a number")
        return spatial
    pd = (0,) * n if pad == "valid" else as_tuple(pad, n)
    span = tuple(d[i] * (k[i] - 1) + 1 for i in range(n))
    if any(span[i] > spatial[i] + 2 * pd[i] for i in range(n)):
        ks = _x(k) if len(set(k)) > 1 else str(k[0])
        padded = "" if not any(pd) else f" (with padding {_x(pd) if len(set(pd)) > 1 else pd[0]})"
        what = "kernel" if all(v == 1 for v in d) else "dilated kernel"
        raise fail(f"{what} {ks} is larger than the {_x(spatial)} input{padded}",
                   "lower kernel_size or remove a pooling layer above")
    return tuple((spatial[i] + 2 * pd[i] - span[i]) // s[i] + 1 for i in range(n))


def _image_hint(shape: tuple[int, ...], dims: int) -> str:
    if len(shape) == dims and dims >= 1:
        return f"add a Reshape to {fmt((1,) + shape)} (one channel) before it"
    if len(shape) == 1 and dims == 2:
        side = int(round(math.sqrt(shape[0])))
        if side * side == shape[0]:
            return f"set the Input shape to (1, {side}, {side}) or add a Reshape to (1, {side}, {side})"
    return "set the Input shape or add a Reshape before it"


def _needs(layer: str, shape: tuple[int, ...], dims: int) -> None:
    want = {1: "(channels, length)", 2: "(channels, height, width)"}[dims]
    if len(shape) != dims + 1:
        kind = "a sequence" if dims == 1 else "an image"
        raise fail(f"{layer} needs {kind} {want} but gets {fmt(shape)}", _image_hint(shape, dims))


def _conv_infer(dims: int, transposed: bool = False):
    def infer(p, ins):
        layer = ("ConvTranspose" if transposed else "Conv") + f"{dims}d"
        s = ins[0].shape
        _needs(layer, s, dims)
        c, g = s[0], p["groups"]
        if c % g or p["out_channels"] % g:
            raise fail(f"groups {g} must divide both the {c} input channels and out_channels {p['out_channels']}",
                       "set groups to a common divisor (1 always works)")
        mode = None if transposed else p["padding_mode"]
        if mode in ("reflect", "circular") and p["padding"] != "valid":
            if p["padding"] == "same":  # PyTorch pads d·(k−1) in all, the larger half after the input
                k, d = as_tuple(p["kernel_size"], dims), as_tuple(p["dilation"], dims)
                pd = tuple(d[i] * (k[i] - 1) - d[i] * (k[i] - 1) // 2 for i in range(dims))
            else:
                pd = as_tuple(p["padding"], dims)
            # reflect mirrors inside the input, circular wraps around it: both need that much input.
            if any(pd[i] >= s[1 + i] if mode == "reflect" else pd[i] > s[1 + i] for i in range(dims)):
                raise fail(f"padding {p['padding']!r} with padding_mode {mode!r} needs an input larger than "
                           f"{_x(s[1:])}", ("lower kernel_size or dilation" if p["padding"] == "same" else
                                            "lower padding") + " or use padding_mode 'zeros'")
        return TensorInfo((p["out_channels"],) + _conv_geometry(layer, p, s[1:], transposed))
    return infer


def _conv_params(dims: int, transposed: bool = False):
    def count(p, ins, out):
        k = math.prod(as_tuple(p["kernel_size"], dims))
        cin, cout, g = ins[0].shape[0], p["out_channels"], p["groups"]
        return cin * (cout // g) * k + (cout if p["bias"] else 0) if transposed else \
            cout * (cin // g) * k + (cout if p["bias"] else 0)
    return count


def _conv_macs(dims: int, transposed: bool = False):
    def count(p, ins, out):
        k = math.prod(as_tuple(p["kernel_size"], dims))
        cin, cout, g = ins[0].shape[0], p["out_channels"], p["groups"]
        if transposed:
            return math.prod(ins[0].shape[1:]) * cin * (cout // g) * k
        return out.numel * (cin // g) * k
    return count


def _conv_param_list(dims: int, transposed: bool) -> tuple[Param, ...]:
    ps = [
        Param("out_channels", INT, 32 if not transposed else 16, "number of filters (output channels)",
              min=1, max=65536, effect="more filters = more patterns detected, more parameters"),
        Param("kernel_size", INT_TUPLE, 3, "size of each filter", min=1, max=1024, length=dims,
              effect="larger kernels see more context and shrink the output more"),
        Param("stride", INT_TUPLE, 1, "step between filter positions", min=1, max=1024, length=dims,
              effect="stride 2 halves the output size"),
    ]
    if transposed:
        ps += [Param("padding", INT_TUPLE, 0, "zeros removed from each border of the output", min=0, max=1024,
                     length=dims),
               Param("output_padding", INT_TUPLE, 0, "extra size added to one side of the output", min=0,
                     max=1024, length=dims, effect="set to 1 with stride 2 to exactly double the size")]
    else:
        ps += [Param("padding", PADDING, 0, "zeros added around the input: a number, 'same' or 'valid'",
                     min=0, max=1024, length=dims, effect="padding (k−1)/2 keeps the size at stride 1")]
    ps += [
        Param("dilation", INT_TUPLE, 1, "spacing between kernel elements", min=1, max=1024, length=dims),
        Param("groups", INT, 1, "split channels into independent groups", min=1, max=65536),
        Param("bias", BOOL, True, "learn one additive bias per filter"),
    ]
    if not transposed:
        ps.append(Param("padding_mode", CHOICE, "zeros", "how the border is filled",
                        choices=("zeros", "reflect", "replicate", "circular")))
    return tuple(ps)


def _conv_build(dims: int, transposed: bool = False):
    def build(p, ins):
        nn = _nn()
        cls = getattr(nn, ("ConvTranspose" if transposed else "Conv") + f"{dims}d")
        kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"],
                  bias=p["bias"])
        if transposed:
            kw["output_padding"] = p["output_padding"]
        else:
            kw["padding_mode"] = p["padding_mode"]
        return cls(ins[0].shape[0], p["out_channels"], p["kernel_size"], **kw)
    return build


for _dims in (1, 2):
    register(LayerSpec(
        type=f"Conv{_dims}d", category="Convolution",
        summary=("slides learned filters along a sequence" if _dims == 1 else
                 "slides learned filters over an image to detect local patterns"),
        doc=("Each filter is a small window of weights that moves along the input and responds to a "
             "local pattern; out_channels filters give out_channels output maps. " +
             ("Use on sequences laid out as (channels, length), e.g. sensor signals or text embeddings "
              "after a Permute." if _dims == 1 else
              "The building block of image networks: early layers find edges, later ones shapes. "
              "Follow with ReLU, and shrink with MaxPool2d or stride 2.") +
             " Output size: ⌊(L + 2·padding − dilation·(kernel_size − 1) − 1) / stride⌋ + 1."),
        formula=("y[o, t] = b[o] + Σ_c Σ_k W[o, c, k] · x[c, stride·t + dilation·k − padding]" if _dims == 1 else
                 "y[o, i, j] = b[o] + Σ_c Σ_u Σ_v W[o, c, u, v] · x[c, s·i + u, s·j + v]"),
        params=_conv_param_list(_dims, False),
        infer=_conv_infer(_dims), build=_conv_build(_dims),
        count_params=_conv_params(_dims), count_macs=_conv_macs(_dims),
        key_params=("out_channels", "kernel_size", "stride", "padding"),
    ))

register(LayerSpec(
    type="ConvTranspose2d", category="Convolution",
    summary="a learned upsampling: the reverse geometry of Conv2d",
    doc="Spreads each input pixel over a kernel-sized patch of the output, so the image grows. Used in "
        "decoders of autoencoders and segmentation networks: stride 2 with kernel 3, padding 1 and "
        "output_padding 1 exactly doubles height and width. Output size: "
        "(H − 1)·stride − 2·padding + dilation·(kernel_size − 1) + output_padding + 1.",
    formula="y[o, s·i + u, s·j + v] += W[c, o, u, v] · x[c, i, j]  (then + b[o])",
    params=_conv_param_list(2, True),
    infer=_conv_infer(2, True), build=_conv_build(2, True),
    count_params=_conv_params(2, True), count_macs=_conv_macs(2, True),
    key_params=("out_channels", "kernel_size", "stride"),
))


# ----------------------------------------------------------------------------------------------------
# Pooling

def _pool_out(layer: str, p: dict, spatial: tuple[int, ...], dilation: bool) -> tuple[int, ...]:
    n = len(spatial)
    k = as_tuple(p["kernel_size"], n)
    s = as_tuple(p["stride"] if p["stride"] is not None else p["kernel_size"], n)
    pd = as_tuple(p["padding"], n)
    d = as_tuple(p["dilation"], n) if dilation else (1,) * n
    out = []
    for i in range(n):
        span = d[i] * (k[i] - 1) + 1
        if 2 * pd[i] > k[i]:  # PyTorch compares with the kernel size itself, dilation or not
            raise fail(f"padding {pd[i]} is more than half the kernel size {k[i]}",
                       f"use padding at most {k[i] // 2}")
        num = spatial[i] + 2 * pd[i] - span
        o = (-(-num // s[i]) if p["ceil_mode"] else num // s[i]) + 1
        if p["ceil_mode"] and (o - 1) * s[i] >= spatial[i] + pd[i]:
            o -= 1  # PyTorch: the last window must start inside the input or its left padding
        if o < 1:  # with ceil_mode a window may hang over the end, so compare the output, not the window
            ks = _x(k) if len(set(k)) > 1 else str(k[0])
            raise fail(f"pooling window {ks} is larger than the {_x(spatial)} input",
                       "lower kernel_size or remove a pooling layer above")
        out.append(o)
    return tuple(out)


def _pool_infer(kind: str, dims: int):
    def infer(p, ins):
        layer = f"{kind}Pool{dims}d"
        s = ins[0].shape
        _needs(layer, s, dims)
        return TensorInfo((s[0],) + _pool_out(layer, p, s[1:], kind == "Max"))
    return infer


def _pool_params(kind: str, dims: int) -> tuple[Param, ...]:
    ps = [
        Param("kernel_size", INT_TUPLE, 2, "size of the pooling window", min=1, max=1024, length=dims,
              effect="2 halves each side"),
        Param("stride", INT_TUPLE, None, "step between windows (empty = kernel_size)", min=1, max=1024,
              length=dims, optional=True),
        Param("padding", INT_TUPLE, 0, "padding on each border (at most half the kernel)", min=0, max=512,
              length=dims),
    ]
    if kind == "Max":
        ps.append(Param("dilation", INT_TUPLE, 1, "spacing between window elements", min=1, max=1024, length=dims))
    ps.append(Param("ceil_mode", BOOL, False, "round the output size up instead of down"))
    if kind == "Avg":
        ps.append(Param("count_include_pad", BOOL, True, "count padding zeros in the average"))
    return tuple(ps)


def _pool_build(kind: str, dims: int):
    def build(p, ins):
        cls = getattr(_nn(), f"{kind}Pool{dims}d")
        kw = {k: v for k, v in p.items() if k != "kernel_size"}
        return cls(p["kernel_size"], **kw)
    return build


for _kind in ("Max", "Avg"):
    for _dims in (1, 2):
        register(LayerSpec(
            type=f"{_kind}Pool{_dims}d", category="Pooling",
            summary=(f"keeps the largest value of each window ({'along a sequence' if _dims == 1 else 'of an image'})"
                     if _kind == "Max" else
                     f"averages each window ({'along a sequence' if _dims == 1 else 'of an image'})"),
            doc=("Shrinks feature maps by summarising each window, which cuts computation and makes the "
                 "network tolerate small shifts. " +
                 ("Max pooling keeps the strongest response: the usual choice after Conv + ReLU."
                  if _kind == "Max" else "Average pooling keeps the mean response; smoother than max.") +
                 " Output size: ⌊(L + 2·padding − kernel_size) / stride⌋ + 1, stride defaulting to kernel_size."),
            formula=("y[c, i] = max over the window of x[c, stride·i + k]" if _kind == "Max" else
                     "y[c, i] = (1/|window|) Σ over the window of x[c, stride·i + k]"),
            params=_pool_params(_kind, _dims),
            infer=_pool_infer(_kind, _dims), build=_pool_build(_kind, _dims),
            key_params=("kernel_size", "stride"),
        ))


def _adaptive_infer(dims: int):
    def infer(p, ins):
        s = ins[0].shape
        _needs(f"AdaptiveAvgPool{dims}d", s, dims)
        return TensorInfo((s[0],) + as_tuple(p["output_size"], dims))
    return infer


for _dims in (1, 2):
    register(LayerSpec(
        type=f"AdaptiveAvgPool{_dims}d", category="Pooling",
        summary="averages down to a fixed output size, whatever the input size",
        doc="Chooses its windows so that the output has exactly output_size positions. With output_size 1 "
            "it is global average pooling: one number per channel, a common way to end a CNN before "
            "Flatten and the final Linear, independent of the image size.",
        formula="y[c, i] = mean of x[c] over window i, windows ⌊i·L/out⌋ … ⌈(i+1)·L/out⌉",
        params=(Param("output_size", INT_TUPLE, 1, "size of the output", min=1, max=4096, length=_dims),),
        infer=_adaptive_infer(_dims),
        build=(lambda d: lambda p, ins: getattr(_nn(), f"AdaptiveAvgPool{d}d")(p["output_size"]))(_dims),
        key_params=("output_size",),
    ))


# ----------------------------------------------------------------------------------------------------
# Normalisation

def _bn_infer(dims: int):
    def infer(p, ins):
        s = ins[0].shape
        ok = len(s) in (1, 2) if dims == 1 else len(s) == 3
        if not ok:
            want = "(features,) or (channels, length)" if dims == 1 else "(channels, height, width)"
            alt = "BatchNorm2d" if len(s) == 3 else "BatchNorm1d"
            raise fail(f"BatchNorm{dims}d needs {want} but gets {fmt(s)}", f"use {alt} for this shape")
        return TensorInfo(s)
    return infer


for _dims in (1, 2):
    register(LayerSpec(
        type=f"BatchNorm{_dims}d", category="Normalisation",
        summary="normalises each channel over the batch, then rescales it",
        doc="During training it standardises every channel with the mean and variance of the current "
            "batch, and keeps running averages to use at evaluation. It makes deep networks train faster "
            "and with higher learning rates. Place it after a convolution (or Linear) and before the "
            "activation. Needs batches of more than one sample while training.",
        formula="y = γ · (x − μ_B) / √(σ²_B + eps) + β",
        params=(
            Param("eps", FLOAT, 1e-5, "added to the variance for numerical safety", min=0.0, exclusive_min=True),
            Param("momentum", FLOAT, 0.1, "weight of the newest batch in the running averages", min=0.0, max=1.0),
            Param("affine", BOOL, True, "learn the scale γ and shift β"),
            Param("track_running_stats", BOOL, True, "keep running averages for evaluation"),
        ),
        infer=_bn_infer(_dims),
        build=(lambda d: lambda p, ins: getattr(_nn(), f"BatchNorm{d}d")(ins[0].shape[0], **p))(_dims),
        count_params=lambda p, ins, out: 2 * ins[0].shape[0] if p["affine"] else 0,
        count_macs=lambda p, ins, out: out.numel,
    ))


def _layernorm_infer(p, ins):
    s = ins[0].shape
    if p["normalized_dims"] > len(s):
        raise fail(f"normalized_dims {p['normalized_dims']} is more than the {len(s)} dimensions of {fmt(s)}",
                   f"set normalized_dims to at most {len(s)}")
    return TensorInfo(s)


def _layernorm_build(p, ins):
    shape = ins[0].shape[len(ins[0].shape) - p["normalized_dims"]:]
    return _nn().LayerNorm(list(shape), eps=p["eps"], elementwise_affine=p["elementwise_affine"], bias=p["bias"])


def _layernorm_params(p, ins, out):
    if not p["elementwise_affine"]:
        return 0
    n = math.prod(ins[0].shape[len(ins[0].shape) - p["normalized_dims"]:])
    return n * (2 if p["bias"] else 1)


register(LayerSpec(
    type="LayerNorm", category="Normalisation",
    summary="normalises each sample over its last dimensions",
    doc="Standardises the values of each sample (not across the batch) over its last normalized_dims "
        "dimensions, then rescales. Works with any batch size, so it is the choice for sequences and "
        "transformers. PyTorch's normalized_shape is taken from the input's trailing sizes.",
    formula="y = γ · (x − mean(x)) / √(var(x) + eps) + β",
    params=(
        Param("normalized_dims", INT, 1, "how many trailing dimensions to normalise over", min=1, max=6),
        Param("eps", FLOAT, 1e-5, "added to the variance for numerical safety", min=0.0, exclusive_min=True),
        Param("elementwise_affine", BOOL, True, "learn a scale γ (and shift β) per element"),
        Param("bias", BOOL, True, "learn the shift β"),
    ),
    infer=_layernorm_infer, build=_layernorm_build, count_params=_layernorm_params,
    count_macs=lambda p, ins, out: out.numel,
))


# ----------------------------------------------------------------------------------------------------
# Recurrent

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _rnn_infer(kind: str):
    def infer(p, ins):
        s = ins[0].shape
        if len(s) != 2:
            hint = (f"add a Reshape to ({s[0]}, 1) to read it as {s[0]} steps of one feature" if len(s) == 1
                    else "add a Reshape or Flatten to get (steps, features)")
            raise fail(f"{kind} needs a sequence (steps, features) but gets {fmt(s)}", hint)
        h = p["hidden_size"] * (2 if p["bidirectional"] else 1)
        return TensorInfo((s[0], h) if p["return_sequences"] else (h,))
    return infer


def _rnn_count(kind: str):
    def count(p, ins, out):
        g, h, dirs = _GATES[kind], p["hidden_size"], 2 if p["bidirectional"] else 1
        total, feat = 0, ins[0].shape[1]
        for layer in range(p["num_layers"]):
            i = feat if layer == 0 else h * dirs
            total += dirs * g * (h * (i + h) + (2 * h if p["bias"] else 0))
        return total
    return count


def _rnn_macs(kind: str):
    def count(p, ins, out):
        g, h, dirs = _GATES[kind], p["hidden_size"], 2 if p["bidirectional"] else 1
        steps, feat = ins[0].shape
        total = 0
        for layer in range(p["num_layers"]):
            i = feat if layer == 0 else h * dirs
            total += dirs * g * h * (i + h)
        return total * steps
    return count


def _rnn_build(kind: str):
    def build(p, ins):
        cls = getattr(_mods(), f"{kind}Layer")
        kw = dict(hidden_size=p["hidden_size"], num_layers=p["num_layers"], bias=p["bias"],
                  dropout=p["dropout"], bidirectional=p["bidirectional"])
        if kind == "RNN":
            kw["nonlinearity"] = p["nonlinearity"]
        return cls(ins[0].shape[1], return_sequences=p["return_sequences"], **kw)
    return build


_RNN_DOCS = {
    "RNN": ("a simple recurrent layer: a memory updated at every step",
            "Reads a sequence step by step, mixing each input with its previous hidden state. Simple but "
            "forgets quickly (vanishing gradients); prefer LSTM or GRU for sequences longer than a few dozen steps.",
            "hₜ = tanh(W_ih·xₜ + b_ih + W_hh·hₜ₋₁ + b_hh)"),
    "LSTM": ("a recurrent layer with gates that remember over long sequences",
             "Long Short-Term Memory: input, forget and output gates decide what to store in a cell state "
             "and what to read out, so information survives many steps. The standard choice for text and "
             "time series.",
             "cₜ = fₜ⊙cₜ₋₁ + iₜ⊙tanh(W_c·[hₜ₋₁, xₜ]),  hₜ = oₜ⊙tanh(cₜ),  i, f, o = σ(W·[hₜ₋₁, xₜ] + b)"),
    "GRU": ("a gated recurrent layer, lighter than LSTM",
            "Gated Recurrent Unit: an update and a reset gate control a single hidden state. Often as good "
            "as LSTM with fewer parameters and faster.",
            "hₜ = (1 − zₜ)⊙nₜ + zₜ⊙hₜ₋₁,  nₜ = tanh(W_n·xₜ + rₜ⊙(U_n·hₜ₋₁)),  z, r = σ(W·xₜ + U·hₜ₋₁)"),
}

for _kind in ("RNN", "LSTM", "GRU"):
    _summary, _doc, _formula = _RNN_DOCS[_kind]
    _ps = [
        Param("hidden_size", INT, 64, "size of the hidden state (memory) per direction", min=1, max=65536),
        Param("num_layers", INT, 1, "recurrent layers stacked inside", min=1, max=64),
        Param("bidirectional", BOOL, False, "also read the sequence backwards (doubles the output size)"),
        Param("return_sequences", BOOL, False,
              "give the output of every step (steps, hidden) instead of the last state (hidden,)",
              effect="turn on to stack another recurrent layer after this one"),
        Param("dropout", FLOAT, 0.0, "dropout between stacked layers (needs num_layers > 1)", min=0.0, max=1.0),
        Param("bias", BOOL, True, "learn bias terms"),
    ]
    if _kind == "RNN":
        _ps.append(Param("nonlinearity", CHOICE, "tanh", "activation of the hidden state", choices=("tanh", "relu")))
    register(LayerSpec(
        type=_kind, category="Recurrent", summary=_summary,
        doc=_doc + " Input is (steps, features) with the batch first. With return_sequences off it gives "
                   "the final hidden state (both directions' finals when bidirectional).",
        formula=_formula, params=tuple(_ps),
        infer=_rnn_infer(_kind), build=_rnn_build(_kind),
        count_params=_rnn_count(_kind), count_macs=_rnn_macs(_kind),
        key_params=("hidden_size", "return_sequences"),
    ))


# ----------------------------------------------------------------------------------------------------
# Attention

def _mha_infer(p, ins):
    names = ("query", "key", "value")
    for i, t in enumerate(ins):
        if len(t.shape) != 2:
            s = t.shape
            hint = (f"add a Reshape to ({s[0]}, 1) to read it as {s[0]} steps of one feature" if len(s) == 1
                    else "add a Reshape or Flatten to get (steps, features)")
            raise fail(f"MultiheadAttention needs sequences (steps, features) but its {names[i]} is {fmt(s)}", hint)
    steps, embed = ins[0].shape
    heads = p["num_heads"]
    if embed % heads:
        near = sorted(sorted((d for d in range(1, embed + 1) if embed % d == 0), key=lambda d: abs(d - heads))[:3])
        raise fail(f"the {embed} features of the query cannot be split evenly into num_heads {heads} heads",
                   f"choose num_heads that divides {embed}, e.g. {', '.join(map(str, near[:-1]))} or {near[-1]}"
                   if len(near) > 1 else "set num_heads to 1 or change the features")
    if len(ins) == 3 and ins[1].shape[0] != ins[2].shape[0]:
        raise fail(f"the key has {ins[1].shape[0]} steps but the value has {ins[2].shape[0]}",
                   "give key and value sequences of the same length (each value belongs to one key)")
    return TensorInfo((steps, embed))


def _mha_dims(ins):
    embed = ins[0].shape[1]
    kdim = ins[1].shape[1] if len(ins) > 1 else embed
    vdim = ins[2].shape[1] if len(ins) > 2 else kdim
    return embed, kdim, vdim


def _mha_count(p, ins, out):
    e, k, v = _mha_dims(ins)
    bias = 4 * e if p["bias"] else 0
    return e * e + e * k + e * v + e * e + bias


def _mha_macs(p, ins, out):
    e, k, v = _mha_dims(ins)
    lq = ins[0].shape[0]
    lk = ins[1].shape[0] if len(ins) > 1 else lq
    return lq * e * e + lk * e * (k + v) + 2 * lq * lk * e + lq * e * e


def _mha_build(p, ins):
    e, k, v = _mha_dims(ins)
    return _mods().MultiheadAttentionLayer(e, p["num_heads"], dropout=p["dropout"], bias=p["bias"],
                                           kdim=None if k == e else k, vdim=None if v == e else v)


register(LayerSpec(
    type="MultiheadAttention", category="Core",
    summary="lets every step of a sequence look at every other step (the core of transformers)",
    doc="Each step asks a question (its query), every step offers a key and a value; a step's output is the "
        "average of the values weighted by how well its query matches each key. num_heads heads do this in "
        "parallel on slices of the features, each free to attend to something else. With one input it is "
        "self-attention (query = key = value = the sequence); a second input gives the keys (and values), a third "
        "the values, e.g. a decoder attending to an encoder. Input is (steps, features) with the batch first; the "
        "features must divide evenly into the heads. The output has the query's shape.",
    formula="Attention(Q, K, V) = softmax(QKᵀ/√d)·V,  Q = x·W_Q, K = x·W_K, V = x·W_V, d = features/num_heads; "
            "heads joined and mixed by W_O",
    params=(
        Param("num_heads", INT, 4, "parallel attention heads (must divide the features)", min=1, max=1024,
              effect="more heads = several kinds of relation at once, each on fewer features"),
        Param("dropout", FLOAT, 0.0, "dropout on the attention weights while training", min=0.0, max=1.0),
        Param("bias", BOOL, True, "learn biases in the input and output projections"),
    ),
    infer=_mha_infer, build=_mha_build, count_params=_mha_count, count_macs=_mha_macs,
    min_inputs=1, max_inputs=3, key_params=("num_heads",),
))


# ----------------------------------------------------------------------------------------------------
# Activations

def _same(p, ins):
    return TensorInfo(ins[0].shape)


def _dim_infer(layer: str):
    def infer(p, ins):
        s, d = ins[0].shape, p["dim"]
        nd = len(s) + 1  # with the batch
        if d == 0 or d == -nd:
            raise fail(f"{layer} over dim {d} would mix the samples of the batch",
                       "use dim -1 (the last) or 1 (the first after the batch)")
        if not -nd <= d < nd:
            raise fail(f"{layer} dim {d} does not exist for batched input {fmt(('N',) + s)}",  # type: ignore
                       f"use a dim between 1 and {nd - 1}, or -1")
        return TensorInfo(s)
    return infer


def _activation(type_: str, summary: str, doc: str, formula: str, params=(), build=None, infer=_same):
    register(LayerSpec(
        type=type_, category="Activation", summary=summary, doc=doc, formula=formula, params=tuple(params),
        infer=infer, build=build or (lambda p, ins: getattr(_nn(), type_)(**p)),
        count_macs=lambda p, ins, out: 0, key_params=tuple(q.name for q in params),
    ))


_activation("ReLU", "keeps positive values, zeroes negative ones",
            "The default non-linearity of deep networks: cheap and does not saturate for positive inputs. "
            "Without a non-linearity between them, stacked Linear layers collapse into one.",
            "y = max(0, x)")
_activation("LeakyReLU", "like ReLU, but lets a small slope through for negative values",
            "Avoids 'dead' units that never activate again, which plain ReLU can suffer from.",
            "y = x if x > 0 else negative_slope · x",
            (Param("negative_slope", FLOAT, 0.01, "slope for negative inputs", min=0.0, max=1.0),))
_activation("ELU", "smooth ReLU with negative outputs that saturate at −alpha",
            "Pushes mean activations towards zero, which can speed up learning.",
            "y = x if x > 0 else alpha · (eˣ − 1)",
            (Param("alpha", FLOAT, 1.0, "value the negative side tends to", min=0.0, max=100.0),))
_activation("GELU", "smooth, probabilistic ReLU used in transformers",
            "Weights each input by how likely a standard normal variable is below it.",
            "y = x · Φ(x)",
            (Param("approximate", CHOICE, "none", "exact, or the faster tanh approximation",
                   choices=("none", "tanh")),))
_activation("SiLU", "x times its sigmoid (also called Swish)",
            "Smooth and non-monotonic; often a little better than ReLU in deep CNNs.",
            "y = x · σ(x)")
_activation("Sigmoid", "squashes values into (0, 1)",
            "Use at the output for a probability of one class (binary classification with BCE loss). "
            "Deep inside networks it saturates and slows learning.",
            "y = 1 / (1 + e⁻ˣ)")
_activation("Tanh", "squashes values into (−1, 1)",
            "Zero-centred cousin of Sigmoid; the classic activation of recurrent layers.",
            "y = (eˣ − e⁻ˣ) / (eˣ + e⁻ˣ)")
for _name, _summary, _formula in (
        ("Softmax", "turns scores into probabilities that sum to 1", "yᵢ = e^xᵢ / Σⱼ e^xⱼ"),
        ("LogSoftmax", "the logarithm of Softmax, numerically stable", "yᵢ = xᵢ − log Σⱼ e^xⱼ")):
    _activation(_name, _summary,
                ("Use at the output of a classifier to read probabilities. Do not put it before "
                 "CrossEntropy loss, which applies log-softmax itself." if _name == "Softmax" else
                 "Pair it with NLL loss; LogSoftmax + NLL equals CrossEntropy on raw scores.") +
                " dim counts the batch as dimension 0, as in PyTorch; -1 is the last.",
                _formula, (Param("dim", INT, -1, "dimension that sums to 1 (batch is dim 0)", min=-7, max=6),),
                infer=_dim_infer(_name))


# ----------------------------------------------------------------------------------------------------
# Merge

def _input_name(ins: list[TensorInfo], i: int) -> str:
    """How an error names input i: its source node when known ('input 2 (relu_1)')."""
    return f"input {i + 1} ({ins[i].source})" if ins[i].source else f"input {i + 1}"


def _same_shapes(layer: str):
    def infer(p, ins):
        first = ins[0].shape
        for i, t in enumerate(ins[1:], 1):
            if t.shape != first:
                raise fail(f"{layer} needs inputs of the same shape but {_input_name(ins, 0)} gives {fmt(first)} and "
                           f"{_input_name(ins, i)} gives {fmt(t.shape)}", "change a layer above so that both match")
        return TensorInfo(first)
    return infer


for _name, _summary, _doc, _formula in (
        ("Add", "adds its inputs element by element",
         "Joins branches of equal shape by summing them: the skip connection of residual networks "
         "(x + F(x)), which lets very deep networks train.", "y = x₁ + x₂ + …"),
        ("Multiply", "multiplies its inputs element by element",
         "Joins branches of equal shape by product: gating and attention-like weighting.", "y = x₁ ⊙ x₂ ⊙ …")):
    register(LayerSpec(
        type=_name, category="Merge", summary=_summary, doc=_doc + " Inputs keep the order they were connected.",
        formula=_formula, params=(), infer=_same_shapes(_name),
        build=(lambda n: lambda p, ins: getattr(_mods(), n + "Layer")())(_name),
        count_macs=lambda p, ins, out: out.numel * (len(ins) - 1),
        min_inputs=2, max_inputs=None,
    ))


def _concat_infer(p, ins):
    first = ins[0].shape
    nd = len(first) + 1
    d = p["dim"]
    if d == 0 or d == -nd:
        raise fail("Concat over dim 0 would join batches, not features", "use dim 1 (channels or features) or -1")
    if not -nd <= d < nd:
        raise fail(f"Concat dim {d} does not exist for inputs of {fmt(first)} (dim 1 to {nd - 1}, batch is 0)",
                   f"use a dim between 1 and {nd - 1}, or -1")
    axis = (d if d > 0 else d + nd) - 1
    total = 0
    for i, t in enumerate(ins):
        s = t.shape
        if len(s) != len(first) or any(a != b for j, (a, b) in enumerate(zip(s, first)) if j != axis):
            raise fail(f"Concat along dim {d} needs inputs equal in every other dimension but {_input_name(ins, 0)} "
                       f"gives {fmt(first)} and {_input_name(ins, i)} gives {fmt(s)}",
                       "reshape or pool one branch so the other sizes match, or change dim")
        if t.dtype != ins[0].dtype:
            raise fail(f"Concat needs inputs of one type but gets {ins[0].dtype} and {t.dtype}",
                       "embed the token ids first")
        total += s[axis]
    out = list(first)
    out[axis] = total
    return TensorInfo(tuple(out), ins[0].dtype)


register(LayerSpec(
    type="Concat", category="Merge",
    summary="joins its inputs side by side along one dimension",
    doc="Stacks branches along dim (1 = channels for images, features for flat data; the batch is dim 0 "
        "as in PyTorch): the other sizes must agree. Used by inception modules, U-Nets and multi-branch "
        "networks. Inputs are joined in the order they were connected.",
    formula="y = [x₁ ‖ x₂ ‖ …] along dim",
    params=(Param("dim", INT, 1, "dimension to join along (batch is 0)", min=-7, max=6),),
    infer=_concat_infer, build=lambda p, ins: _mods().ConcatLayer(p["dim"]),
    min_inputs=2, max_inputs=None, accepts="any", key_params=("dim",),
))


def _scale_infer(p, ins):
    x, s = ins[0].shape, ins[1].shape
    if len(s) != len(x) or any(b not in (a, 1) for a, b in zip(x, s)):
        raise fail(f"Scale multiplies {_input_name(ins, 0)} {fmt(x)} by {_input_name(ins, 1)} {fmt(s)}, which needs "
                   f"the second to have the same number of dimensions, each equal to the first's or 1",
                   f"give the second input a shape such as {fmt((x[0],) + (1,) * (len(x) - 1))} (one factor per "
                   f"channel) or {fmt(x)}")
    return TensorInfo(x)


register(LayerSpec(
    type="Scale", category="Merge",
    summary="multiplies its first input by its second, repeated where the second has size 1",
    doc="Rescales x (the first input) by s (the second): s may have size 1 along any dimension where x is "
        "larger, and is then repeated along it (PyTorch's broadcasting), e.g. one factor per channel (C, 1, 1) "
        "over a feature map (C, H, W). This is how squeeze-and-excitation and other channel attention re-weight "
        "feature maps. Use Multiply for inputs of equal shape.",
    formula="y = x ⊙ s,  s repeated along its size-1 dimensions",
    params=(), infer=_scale_infer, build=lambda p, ins: _mods().ScaleLayer(),
    count_macs=lambda p, ins, out: out.numel, min_inputs=2, max_inputs=2,
))


# ----------------------------------------------------------------------------------------------------
# Shape

def _flatten_infer(p, ins):
    s = ins[0].shape
    nd = len(s) + 1
    a, b = p["start_dim"], p["end_dim"]
    a2, b2 = (a if a >= 0 else a + nd), (b if b >= 0 else b + nd)
    if not (0 <= a2 < nd and 0 <= b2 < nd):
        raise fail(f"Flatten dims {a}…{b} do not exist for batched input with {nd} dimensions",
                   "keep start_dim 1 and end_dim -1")
    if a2 == 0:
        raise fail("Flatten from dim 0 would merge the samples of the batch", "set start_dim to 1")
    if a2 > b2:
        raise fail(f"Flatten start_dim {a} comes after end_dim {b}", "keep start_dim 1 and end_dim -1")
    i, j = a2 - 1, b2 - 1
    return TensorInfo(s[:i] + (math.prod(s[i:j + 1]),) + s[j + 1:], ins[0].dtype)


register(LayerSpec(
    type="Flatten", category="Shape",
    summary="turns a feature map into a flat vector",
    doc="Joins dimensions start_dim … end_dim into one (PyTorch numbering: the batch is dim 0, so the "
        "default 1 … -1 flattens each sample). Put it between the convolutional part and the Linear layers.",
    formula="(N, C, H, W) → (N, C·H·W)",
    params=(Param("start_dim", INT, 1, "first dimension to join (batch is 0)", min=-7, max=6),
            Param("end_dim", INT, -1, "last dimension to join (-1 = the last)", min=-7, max=6)),
    infer=_flatten_infer, build=lambda p, ins: _nn().Flatten(p["start_dim"], p["end_dim"]), accepts="any",
))


def _reshape_infer(p, ins):
    s, want = ins[0].shape, list(p["shape"])
    n = math.prod(s)
    known = math.prod(v for v in want if v != -1)
    if -1 in want:
        if n % known:
            raise fail(f"Reshape to {fmt(tuple(want))} cannot divide the {n} values of {fmt(s)} evenly",
                       f"choose sizes whose product divides {n}")
        want[want.index(-1)] = n // known
    elif known != n:
        raise fail(f"Reshape to {fmt(tuple(want))} needs {known} values per sample but gets {fmt(s)} = {n}",
                   f"choose sizes whose product is {n}, or use -1 for one of them")
    return TensorInfo(tuple(want), ins[0].dtype)


register(LayerSpec(
    type="Reshape", category="Shape",
    summary="rearranges the values of each sample into a new shape",
    doc="Keeps the values and their order but changes the shape of each sample (batch excluded), e.g. "
        "(784,) → (1, 28, 28) to feed flat pixels to a convolution. One size may be -1: it is worked out "
        "from the others.",
    formula="(N, *in) → (N, *shape), with ∏in = ∏shape",
    params=(Param("shape", INTS, [-1], "new shape of one sample (batch excluded); one value may be -1",
                  min=1, max=100_000_000, max_length=6, allow_minus_one=True),),
    infer=_reshape_infer, build=lambda p, ins: _mods().ReshapeLayer(p["shape"]), accepts="any",
    key_params=("shape",),
))


def _permute_dims(p, s):
    dims = list(p["dims"])
    if len(dims) == len(s) + 1 and dims[0] == 0:
        dims = [d - 1 for d in dims[1:]]  # written with the batch, PyTorch style
    return dims


def _permute_infer(p, ins):
    s = ins[0].shape
    dims = _permute_dims(p, s)
    if len(dims) == len(s) + 1 and sorted(dims) == list(range(len(s) + 1)):  # batch form, 0 not first
        raise fail(f"Permute dims {fmt(tuple(p['dims']))} would move the batch (dimension 0) away from the front",
                   f"keep 0 first, or list only the sample dimensions 0 … {len(s) - 1}")
    if sorted(dims) != list(range(len(s))):
        raise fail(f"Permute dims {fmt(tuple(p['dims']))} are not an ordering of the {len(s)} dimensions of "
                   f"{fmt(s)}", f"list each of 0 … {len(s) - 1} once, e.g. {fmt(tuple(reversed(range(len(s)))))}")
    return TensorInfo(tuple(s[d] for d in dims), ins[0].dtype)


register(LayerSpec(
    type="Permute", category="Shape",
    summary="reorders the dimensions of each sample",
    doc="Swaps dimensions, e.g. a sequence (steps, features) into (features, steps) = (channels, length) "
        "for Conv1d. dims lists the sample dimensions from 0, batch excluded; PyTorch's form with the "
        "batch first (0, 2, 1) is accepted too.",
    formula="y[n, i₍d₀₎, i₍d₁₎, …] = x[n, i₀, i₁, …]",
    params=(Param("dims", INTS, [1, 0], "new order of the sample dimensions", min=0, max=6, max_length=7),),
    infer=_permute_infer,
    build=lambda p, ins: _mods().PermuteLayer([0] + [d + 1 for d in _permute_dims(p, ins[0].shape)]),
    accepts="any", key_params=("dims",),
))
