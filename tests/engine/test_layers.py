"""Every analytic rule of the layer catalogue checked against real PyTorch.

For each layer type, hypothesis draws valid parameters and input shapes; the pure-Python rule
(`engine.shapes.infer_node`) must then agree with the real module: same output shape and dtype, same
parameter count, and (for the layers with weights) the same multiply-accumulates as
"weights × positions" counted on the built module. Where the rule refuses, PyTorch must refuse too,
unless the refusal is one of the few deliberate LayerLoom rules listed in DELIBERATE below.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, currently_in_test_context, given, note, settings
from hypothesis import strategies as st

from engine.errors import ParamError
from engine.layers import CATEGORIES, FLOAT32, INT64, TensorInfo, all_specs, fmt, get_spec
from engine.params import Param, as_tuple
from engine.shapes import infer_node

BATCH = 2
LAYER_TYPES = [s.type for s in all_specs() if s.type != "Input"]
EXAMPLES = 100
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONV_POOL_1D = {"Conv1d", "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d"}
CONV_POOL_2D = {"Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"}
RECURRENT = {"RNN", "LSTM", "GRU"}

# Refusals where PyTorch would run but LayerLoom deliberately says no; each is recognised by the layer
# type and a phrase of its message (the message itself explains the rule to the user).
DELIBERATE: list[tuple[set[str] | None, str, str]] = [
    ({"Linear"}, "Linear needs a flat input (features)",
     "on (C, H, W) PyTorch would mix only the last dimension; LayerLoom asks for a Flatten"),
    ({"Softmax", "LogSoftmax"}, "would mix the samples of the batch", "dim 0 is the batch"),
    ({"Concat"}, "over dim 0 would join batches", "dim 0 is the batch"),
    ({"Flatten"}, "from dim 0 would merge the samples of the batch", "dim 0 is the batch"),
    ({"Permute"}, "would move the batch", "the batch must stay dimension 0"),
    ({"LayerNorm"}, "is more than the", "normalized_dims beyond the sample would reach into the batch"),
    ({"Add", "Multiply"}, "needs inputs of the same shape", "no silent broadcasting of branches"),
    ({"Concat"}, "Concat needs inputs of one type", "no silent int64 → float32 promotion"),
    (CONV_POOL_1D, "needs a sequence (channels, length)", "a 1-d layer needs (channels, length)"),
    (CONV_POOL_2D, "needs an image (channels, height, width)", "a 2-d layer needs an image"),
    ({"Dropout2d"}, "works on feature maps (channels, height, width)", "Dropout2d needs an image"),
    (RECURRENT, "needs a sequence (steps, features)", "PyTorch would read (N, F) as one unbatched sequence"),
    ({"MultiheadAttention"}, "needs sequences (steps, features)",
     "PyTorch would read (N, F) as one unbatched sequence"),
    ({"Scale"}, "which needs the second to have the same number of dimensions",
     "the second input only repeats along its size-1 dimensions; the output keeps the first's shape"),
    (None, "needs real numbers but gets int64 token ids", "ids are not measurements; embed them first"),
]


def deliberate_rule(layer_type: str, message: str) -> str | None:
    for types, phrase, why in DELIBERATE:
        if (types is None or layer_type in types) and phrase in message:
            return why
    return None


# ----------------------------------------------------------------------------------------------------
# Running the real PyTorch layer

def make_inputs(layer_type: str, params: dict, ins: list[TensorInfo]) -> list[torch.Tensor]:
    xs = []
    for t in ins:
        if t.dtype == INT64:
            high = params["num_embeddings"] if layer_type == "Embedding" else 10
            xs.append(torch.randint(0, high, (BATCH, *t.shape)))
        else:
            xs.append(torch.randn(BATCH, *t.shape))
    return xs


class _TorchPermute(nn.Module):
    """x.permute as a PyTorch user writes it: with the batch when dims name every dimension."""

    def __init__(self, dims, sample_rank):
        super().__init__()
        self.dims = list(dims) if len(dims) == sample_rank + 1 else [0] + [d + 1 for d in dims]

    def forward(self, x):
        return x.permute(*self.dims)


# How a PyTorch user would write the layer when LayerLoom refuses it (spec.build may assume valid input).
REFERENCE = {
    "Permute": lambda p, ins: _TorchPermute(p["dims"], len(ins[0].shape)),
}


def torch_refusal(layer_type: str, params: dict, ins: list[TensorInfo]) -> Exception | None:
    """Build and run the PyTorch layer; the exception PyTorch raises, or None when it works."""
    build = REFERENCE.get(layer_type, get_spec(layer_type).build)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = build(params, ins)
            with torch.no_grad():
                out = module(*make_inputs(layer_type, params, ins))
    except Exception as e:  # noqa: BLE001 - any refusal by PyTorch counts
        return e
    if out.numel() == 0:  # e.g. ConvTranspose2d with too much padding gives (N, C, 0, 0): nothing to use
        return ValueError(f"PyTorch gives an empty output {tuple(out.shape)}")
    return None


def weight_macs(layer_type: str, module: nn.Module, ins: list[TensorInfo], out: torch.Tensor) -> int | None:
    """Multiply-accumulates from the definitions, counted on the real module: weights × positions."""
    if layer_type == "Linear":
        return module.weight.numel() * math.prod(out.shape[1:-1])  # once per step of a sequence
    if layer_type in ("Conv1d", "Conv2d"):
        return module.weight.numel() * math.prod(out.shape[2:])  # every weight once per output position
    if layer_type == "ConvTranspose2d":
        return module.weight.numel() * math.prod(ins[0].shape[1:])  # every weight once per input position
    if layer_type in RECURRENT:
        weights = sum(w.numel() for name, w in module.named_parameters() if name.startswith("weight_"))
        return weights * ins[0].shape[0]  # every weight matrix once per step
    return None


def check_against_torch(layer_type: str, raw_params: dict, ins: list[TensorInfo]) -> str:
    """The heart of the file: the analytic rule must agree with PyTorch. Returns 'ok' or 'refused'."""
    spec = get_spec(layer_type)
    params = spec.validate_params(raw_params)  # every drawn value is valid: a ParamError is a test bug
    info = infer_node(layer_type, params, ins)
    if currently_in_test_context():
        note(f"{layer_type} {params} on {[(t.shape, t.dtype) for t in ins]} -> "
             f"{info.shape if info.ok else info.error}")
    if info.ok:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. RNN dropout with num_layers 1
            module = spec.build(params, ins)
            with torch.no_grad():
                out = module(*make_inputs(layer_type, params, ins))
        assert tuple(out.shape) == (BATCH, *info.shape), \
            f"{layer_type}: inferred {fmt(info.shape)} but PyTorch gives {tuple(out.shape)[1:]}"
        want_dtype = {FLOAT32: torch.float32, INT64: torch.int64}[info.dtype]
        assert out.dtype == want_dtype, f"{layer_type}: inferred {info.dtype} but PyTorch gives {out.dtype}"
        n_params = sum(p.numel() for p in module.parameters())
        assert n_params == info.params, f"{layer_type}: counted {info.params} parameters, PyTorch has {n_params}"
        assert info.memory == math.prod(info.shape) * (4 if info.dtype == FLOAT32 else 8)
        macs = weight_macs(layer_type, module, ins, out)
        if macs is not None:
            assert info.macs == macs, f"{layer_type}: counted {info.macs} MACs, weights × positions gives {macs}"
        return "ok"
    message = str(info.error)
    assert not info.error.reason.startswith("could not work out"), f"{layer_type}: the rule crashed: {message}"
    assert info.error.reason and info.error.hint, f"{layer_type}: an error needs a reason and a hint: {message}"
    if deliberate_rule(layer_type, message):
        return "refused"
    refusal = torch_refusal(layer_type, params, ins)
    assert refusal is not None, f"{layer_type} refuses ({message}) but PyTorch runs it with {params} on {ins}"
    return "refused"


# ----------------------------------------------------------------------------------------------------
# Strategies: valid parameters and (sometimes unsuitable) inputs for each layer type

def shape(min_rank: int = 1, max_rank: int = 4, max_side: int = 6):
    return st.lists(st.integers(1, max_side), min_size=min_rank, max_size=max_rank).map(tuple)


def int_tuple(lo: int, hi: int, n: int):
    """An int, or a list of n ints (the tuple form of kernel_size, stride, ...)."""
    return st.one_of(st.integers(lo, hi), st.lists(st.integers(lo, hi), min_size=n, max_size=n))


def rarely(draw, one_in: int = 10) -> bool:
    return draw(st.sampled_from([False] * (one_in - 1) + [True]))  # False is the simplest


def float_input(draw, s) -> list[TensorInfo]:
    """One input, float32 mostly, now and then int64 ids (which float layers must refuse)."""
    return [TensorInfo(s, INT64 if rarely(draw, 20) else FLOAT32)]


def spatial_input(draw, dims: int, max_channels: int = 8, max_side: int = 20) -> tuple[int, ...]:
    """(channels, *spatial) mostly; now and then another rank, which image/sequence layers refuse."""
    if rarely(draw):
        return draw(shape(1, 4, 8))
    return (draw(st.integers(1, max_channels)),) + tuple(draw(st.integers(1, max_side)) for _ in range(dims))


@st.composite
def linear_case(draw):
    s = draw(shape(1, 3 if rarely(draw, 4) else 2, 8))  # (C, H, W) now and then: refused
    return {"out_features": draw(st.integers(1, 8)), "bias": draw(st.booleans())}, float_input(draw, s)


@st.composite
def dropout_case(draw, two_d: bool = False):
    s = spatial_input(draw, 2, max_side=8) if two_d else draw(shape(1, 4))
    return {"p": draw(st.floats(0.0, 1.0))}, float_input(draw, s)


@st.composite
def embedding_case(draw):
    n = draw(st.integers(1, 20))
    p = {"num_embeddings": n, "embedding_dim": draw(st.integers(1, 8)),
         "padding_idx": draw(st.one_of(st.none(), st.integers(0, n + 3 if rarely(draw, 4) else n - 1)))}
    return p, [TensorInfo(draw(shape(1, 2, 12)), FLOAT32 if rarely(draw) else INT64)]


@st.composite
def identity_case(draw):
    return {}, [TensorInfo(draw(shape(1, 4)), draw(st.sampled_from([FLOAT32, INT64])))]


@st.composite
def conv_case(draw, dims: int, transposed: bool = False):
    s = spatial_input(draw, dims, max_side=20 if dims == 1 else (10 if transposed else 14))
    p = {
        "out_channels": draw(st.integers(1, 8)),
        "kernel_size": draw(int_tuple(1, 5, dims)),
        "stride": draw(int_tuple(1, 3, dims)),
        "dilation": draw(int_tuple(1, 3, dims)),
        "bias": draw(st.booleans()),
    }
    if rarely(draw, 5):
        p["groups"] = draw(st.integers(1, 4))  # may not divide the channels
    else:  # a common divisor of the input and output channels
        p["groups"] = draw(st.sampled_from([g for g in range(1, 5) if s[0] % g == 0 and p["out_channels"] % g == 0]))
    if transposed:
        p["padding"] = draw(int_tuple(0, 4, dims))
        if rarely(draw, 4):
            p["output_padding"] = draw(int_tuple(0, 2, dims))  # may be too large
        else:  # smaller than stride or dilation
            st_, di = as_tuple(p["stride"], dims), as_tuple(p["dilation"], dims)
            p["output_padding"] = [draw(st.integers(0, max(st_[i], di[i]) - 1)) for i in range(dims)]
    else:
        p["padding"] = draw(st.one_of(int_tuple(0, 4, dims), st.sampled_from(["same", "valid"])))
        p["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        if p["padding"] == "same" and not rarely(draw, 4):
            p["stride"] = 1  # 'same' needs stride 1: mostly draw the working case
    return p, float_input(draw, s)


@st.composite
def pool_case(draw, kind: str, dims: int):
    s = spatial_input(draw, dims, max_side=20 if dims == 1 else 14)
    k = draw(int_tuple(1, 5, dims))
    p = {"kernel_size": k,
         "stride": draw(st.one_of(st.none(), int_tuple(1, 3, dims))),
         "padding": draw(int_tuple(0, 2, dims)) if rarely(draw, 4) else  # may be more than half the kernel
         draw(int_tuple(0, min(as_tuple(k, dims)) // 2, dims)),
         "ceil_mode": draw(st.booleans())}
    if kind == "Max":
        p["dilation"] = draw(int_tuple(1, 3, dims))
    else:
        p["count_include_pad"] = draw(st.booleans())
    return p, float_input(draw, s)


@st.composite
def adaptive_case(draw, dims: int):
    s = spatial_input(draw, dims, max_side=12)
    return {"output_size": draw(int_tuple(1, 6, dims))}, float_input(draw, s)


@st.composite
def batchnorm_case(draw, dims: int):
    good = (draw(st.sampled_from([1, 2])) if dims == 1 else 3)
    s = draw(shape(good, good, 8)) if not rarely(draw) else draw(shape(1, 4, 5))
    p = {"eps": draw(st.floats(1e-6, 1e-2)), "momentum": draw(st.floats(0.0, 1.0)),
         "affine": draw(st.booleans()), "track_running_stats": draw(st.booleans())}
    return p, float_input(draw, s)


@st.composite
def layernorm_case(draw):
    s = draw(shape(1, 3, 6))
    p = {"normalized_dims": draw(st.integers(1, len(s) if not rarely(draw) else 6)),
         "eps": draw(st.floats(1e-6, 1e-2)), "elementwise_affine": draw(st.booleans()), "bias": draw(st.booleans())}
    return p, float_input(draw, s)


@st.composite
def recurrent_case(draw, kind: str):
    s = (draw(st.integers(1, 12)), draw(st.integers(1, 8))) if not rarely(draw) else draw(shape(1, 3, 6))
    p = {"hidden_size": draw(st.integers(1, 8)), "num_layers": draw(st.integers(1, 3)),
         "bidirectional": draw(st.booleans()), "return_sequences": draw(st.booleans()),
         "dropout": draw(st.sampled_from([0.0, 0.0, 0.3])), "bias": draw(st.booleans())}
    if kind == "RNN":
        p["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    return p, float_input(draw, s)


ACTIVATION_PARAMS = {
    "LeakyReLU": lambda: st.fixed_dictionaries({"negative_slope": st.floats(0.0, 1.0)}),
    "ELU": lambda: st.fixed_dictionaries({"alpha": st.floats(0.0, 100.0)}),
    "GELU": lambda: st.fixed_dictionaries({"approximate": st.sampled_from(["none", "tanh"])}),
}


@st.composite
def activation_case(draw, kind: str):
    p = draw(ACTIVATION_PARAMS[kind]()) if kind in ACTIVATION_PARAMS else {}
    s = draw(shape(1, 4))
    if kind in ("Softmax", "LogSoftmax"):  # batch is dim 0
        nd = len(s) + 1
        p["dim"] = draw(st.integers(-7, 6)) if rarely(draw, 4) else \
            draw(st.integers(1, nd - 1)) * draw(st.sampled_from([1, -1]))
    return p, float_input(draw, s)


@st.composite
def elementwise_case(draw):
    base = draw(shape(1, 3))
    shapes = [base] * draw(st.integers(2, 4))
    if rarely(draw, 4):  # one branch differs (sometimes only broadcastable, e.g. a size of 1)
        i = draw(st.integers(0, len(shapes) - 1))
        shapes[i] = draw(shape(1, 3))
    dtype = INT64 if rarely(draw, 20) else FLOAT32
    return {}, [TensorInfo(s, dtype) for s in shapes]


@st.composite
def concat_case(draw):
    base = draw(shape(1, 3))
    nd = len(base) + 1
    if rarely(draw, 5):  # any dim, including the batch (0, -nd) and ones that do not exist
        dim = draw(st.integers(-nd - 1, nd))
    else:
        dim = draw(st.integers(1, nd - 1)) * draw(st.sampled_from([1, -1]))
    axis = (dim if dim > 0 else dim + nd) - 1
    shapes = []
    for _ in range(draw(st.integers(2, 4))):
        s = list(base)
        if 0 <= axis < len(s):
            s[axis] = draw(st.integers(1, 6))
        shapes.append(tuple(s))
    if rarely(draw, 5):  # a mismatch in another dimension, or another rank
        shapes[draw(st.integers(0, len(shapes) - 1))] = draw(shape(1, 3))
    dtypes = draw(st.sampled_from(["float", "float", "float", "int", "mixed"]))
    ins = [TensorInfo(s, INT64 if dtypes == "int" or (dtypes == "mixed" and i % 2) else FLOAT32)
           for i, s in enumerate(shapes)]
    return {"dim": dim}, ins


@st.composite
def flatten_case(draw):
    s = draw(shape(1, 4))
    nd = len(s) + 1
    if rarely(draw, 4):
        p = {"start_dim": draw(st.integers(-7, 6)), "end_dim": draw(st.integers(-7, 6))}
    else:
        p = {"start_dim": draw(st.integers(1, nd - 1)) - draw(st.sampled_from([0, nd])),
             "end_dim": draw(st.integers(1, nd - 1)) - draw(st.sampled_from([0, nd]))}
    return p, [TensorInfo(s, draw(st.sampled_from([FLOAT32, INT64])))]


@st.composite
def reshape_case(draw):
    s = draw(shape(1, 4, 6))
    rest, target = math.prod(s), []
    for _ in range(draw(st.integers(0, 3))):
        f = draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
        target.append(f)
        rest //= f
    target.append(rest)
    target = draw(st.permutations(target))
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    if rarely(draw, 5):  # sizes that do not fit
        i = draw(st.integers(0, len(target) - 1))
        target[i] = draw(st.integers(1, 12))
    return {"shape": target}, [TensorInfo(s, draw(st.sampled_from([FLOAT32, INT64])))]


@st.composite
def permute_case(draw):
    s = draw(shape(1, 4))
    n = len(s)
    form = draw(st.sampled_from(["sample", "sample", "batch", "any"]))
    if form == "sample":
        dims = draw(st.permutations(range(n)))
    elif form == "batch":  # PyTorch's form, batch first
        dims = [0] + [d + 1 for d in draw(st.permutations(range(n)))]
    else:  # anything: a permutation moving the batch, a repeated or missing dim...
        dims = draw(st.one_of(st.permutations(range(n + 1)), st.lists(st.integers(0, 6), min_size=1, max_size=7)))
    return {"dims": list(dims)}, [TensorInfo(s, draw(st.sampled_from([FLOAT32, INT64])))]


@st.composite
def attention_case(draw):
    heads = draw(st.integers(1, 4))
    embed = draw(st.integers(1, 12)) if rarely(draw, 5) else heads * draw(st.integers(1, 4))  # may not divide
    ins = [TensorInfo((draw(st.integers(1, 6)), embed))]
    n = draw(st.integers(1, 3))
    if n > 1:  # a key (and a value) of their own sizes: kdim, vdim
        steps = draw(st.integers(1, 6))
        ins.append(TensorInfo((steps, draw(st.integers(1, 8)))))
        if n > 2:
            other = draw(st.integers(1, 6)) if rarely(draw, 5) else steps  # key and value steps may differ
            ins.append(TensorInfo((other, draw(st.integers(1, 8)))))
    if rarely(draw):  # not a sequence
        ins[draw(st.integers(0, n - 1))] = TensorInfo(draw(shape(1, 3, 5)))
    if rarely(draw, 20):
        ins[0] = TensorInfo(ins[0].shape, INT64)
    p = {"num_heads": heads, "dropout": draw(st.sampled_from([0.0, 0.0, 0.3])), "bias": draw(st.booleans())}
    return p, ins


@st.composite
def scale_case(draw):
    x = draw(shape(1, 3))
    s = tuple(d if draw(st.booleans()) else 1 for d in x)
    if rarely(draw, 4):  # another shape: may not repeat to x's, or have another rank
        s = draw(shape(1, 3))
    dtype = INT64 if rarely(draw, 20) else FLOAT32
    return {}, [TensorInfo(x, dtype), TensorInfo(s)]


STRATEGIES = {
    "MultiheadAttention": attention_case, "Scale": scale_case,
    "Linear": linear_case, "Dropout": dropout_case, "Dropout2d": lambda: dropout_case(True),
    "Embedding": embedding_case, "Identity": identity_case,
    "Conv1d": lambda: conv_case(1), "Conv2d": lambda: conv_case(2), "ConvTranspose2d": lambda: conv_case(2, True),
    "MaxPool1d": lambda: pool_case("Max", 1), "MaxPool2d": lambda: pool_case("Max", 2),
    "AvgPool1d": lambda: pool_case("Avg", 1), "AvgPool2d": lambda: pool_case("Avg", 2),
    "AdaptiveAvgPool1d": lambda: adaptive_case(1), "AdaptiveAvgPool2d": lambda: adaptive_case(2),
    "BatchNorm1d": lambda: batchnorm_case(1), "BatchNorm2d": lambda: batchnorm_case(2),
    "LayerNorm": layernorm_case,
    "RNN": lambda: recurrent_case("RNN"), "LSTM": lambda: recurrent_case("LSTM"), "GRU": lambda: recurrent_case("GRU"),
    **{k: (lambda k=k: activation_case(k)) for k in
       ("ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax")},
    "Add": elementwise_case, "Multiply": elementwise_case, "Concat": concat_case,
    "Flatten": flatten_case, "Reshape": reshape_case, "Permute": permute_case,
}


def test_every_layer_type_has_a_strategy():
    assert sorted(STRATEGIES) == sorted(LAYER_TYPES)


@pytest.mark.parametrize("layer_type", LAYER_TYPES)
def test_strategy_varies_every_parameter(layer_type):
    """No declared parameter is left at its default by the strategies (a new one must be drawn too)."""
    seen: set[str] = set()

    @settings(max_examples=10, deadline=None, database=None)
    @given(STRATEGIES[layer_type]())
    def collect(case):
        seen.update(case[0])

    collect()
    assert seen == {p.name for p in get_spec(layer_type).params}


@pytest.mark.parametrize("layer_type", LAYER_TYPES)
@SETTINGS
@given(data=st.data())
def test_rule_matches_pytorch(layer_type, data):
    params, ins = data.draw(STRATEGIES[layer_type](), label="params, inputs")
    check_against_torch(layer_type, params, ins)


# ----------------------------------------------------------------------------------------------------
# Chosen cases: each parameter form at least once, both outcomes, independent of hypothesis's luck

OK_CASES = [
    ("MultiheadAttention", {"num_heads": 2}, [(5, 8)]),
    ("MultiheadAttention", {"num_heads": 3, "dropout": 0.1, "bias": False}, [(4, 6), (7, 5), (7, 3)]),
    ("Scale", {}, [(4, 3, 3), (4, 1, 1)]),
    ("Scale", {}, [(6,), (6,)]),
    ("Linear", {"out_features": 5}, [(12,)]),
    ("Linear", {"out_features": 3, "bias": False}, [(7, 4)]),  # applied to every step
    ("Dropout", {"p": 1.0}, [(3, 4)]),
    ("Dropout2d", {"p": 0.3}, [(4, 5, 5)]),
    ("Embedding", {"num_embeddings": 12, "embedding_dim": 5, "padding_idx": 11}, [((7,), INT64)]),
    ("Embedding", {"num_embeddings": 12, "embedding_dim": 5}, [((3, 4), INT64)]),
    ("Identity", {}, [((5,), INT64)]),
    ("Conv1d", {"out_channels": 4, "kernel_size": 3, "padding": "same", "padding_mode": "reflect"}, [(2, 9)]),
    ("Conv1d", {"out_channels": 4, "kernel_size": 4, "padding": "same", "dilation": 3}, [(2, 9)]),
    ("Conv1d", {"out_channels": 6, "kernel_size": [5], "stride": [2], "padding": [2], "groups": 3}, [(3, 11)]),
    ("Conv1d", {"out_channels": 2, "kernel_size": 5, "padding": "valid", "padding_mode": "circular"}, [(1, 5)]),
    ("Conv2d", {"out_channels": 8, "kernel_size": [3, 5], "stride": [1, 2], "padding": [1, 2]}, [(3, 10, 11)]),
    ("Conv2d", {"out_channels": 4, "kernel_size": 2, "padding": "same", "dilation": [1, 2]}, [(2, 6, 7)]),
    ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 2, "padding_mode": "circular"}, [(4, 2, 3)]),
    ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1, "padding_mode": "replicate", "groups": 4},
     [(4, 6, 6)]),
    ("ConvTranspose2d", {"out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1},
     [(4, 7, 7)]),  # exactly doubles
    ("ConvTranspose2d", {"out_channels": 4, "kernel_size": [2, 3], "stride": [2, 1], "dilation": [1, 2],
                         "output_padding": [1, 1], "groups": 2, "bias": False}, [(2, 5, 4)]),
    ("MaxPool1d", {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}, [(3, 10)]),
    ("MaxPool2d", {"kernel_size": [2, 3], "stride": None, "ceil_mode": True}, [(2, 7, 8)]),
    ("AvgPool1d", {"kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True}, [(2, 10)]),
    ("AvgPool2d", {"kernel_size": 3, "stride": [2, 1], "padding": [1, 0], "count_include_pad": False}, [(1, 6, 6)]),
    ("AvgPool1d", {"kernel_size": 2, "ceil_mode": True}, [(1, 1)]),  # the window hangs over the end
    ("MaxPool2d", {"kernel_size": 3, "stride": 2, "ceil_mode": True}, [(1, 2, 2)]),
    ("MaxPool2d", {"kernel_size": 4, "padding": 2, "dilation": 2}, [(1, 5, 5)]),
    ("AdaptiveAvgPool1d", {"output_size": 7}, [(3, 4)]),
    ("AdaptiveAvgPool2d", {"output_size": [1, 3]}, [(5, 9, 9)]),
    ("BatchNorm1d", {}, [(6,)]),
    ("BatchNorm1d", {"affine": False}, [(3, 7)]),
    ("BatchNorm2d", {"track_running_stats": False}, [(3, 4, 4)]),
    ("LayerNorm", {"normalized_dims": 2}, [(3, 4, 5)]),
    ("LayerNorm", {"normalized_dims": 3, "bias": False}, [(3, 4, 5)]),
    ("LayerNorm", {"elementwise_affine": False}, [(6,)]),
    ("RNN", {"hidden_size": 5, "nonlinearity": "relu", "return_sequences": True}, [(6, 3)]),
    ("LSTM", {"hidden_size": 4, "num_layers": 2, "bidirectional": True, "dropout": 0.2}, [(5, 3)]),
    ("LSTM", {"hidden_size": 4, "num_layers": 3, "bidirectional": True, "return_sequences": True}, [(5, 3)]),
    ("GRU", {"hidden_size": 7, "num_layers": 2, "bias": False}, [(9, 2)]),
    ("Softmax", {"dim": 1}, [(3, 4)]),
    ("LogSoftmax", {"dim": -2}, [(3, 4)]),
    ("GELU", {"approximate": "tanh"}, [(5,)]),
    ("ReLU", {}, [(2, 3, 4)]),
    ("LeakyReLU", {"negative_slope": 0.2}, [(6,)]),
    ("ELU", {"alpha": 0.5}, [(3, 2)]),
    ("SiLU", {}, [(4, 4)]),
    ("Sigmoid", {}, [(1,)]),
    ("Tanh", {}, [(2, 2, 2, 2)]),
    ("Add", {}, [(3, 4), (3, 4), (3, 4)]),
    ("Multiply", {}, [(8,), (8,)]),
    ("Concat", {"dim": 1}, [(2, 5, 5), (3, 5, 5)]),
    ("Concat", {"dim": -1}, [((4, 2), INT64), ((4, 3), INT64)]),
    ("Flatten", {}, [(2, 3, 4)]),
    ("Flatten", {"start_dim": 2}, [(2, 3, 4)]),
    ("Flatten", {"start_dim": -2, "end_dim": -1}, [(2, 3, 4)]),
    ("Flatten", {"start_dim": 1, "end_dim": 2}, [(2, 3, 4)]),
    ("Reshape", {"shape": [1, 28, 28]}, [(784,)]),
    ("Reshape", {"shape": [4, -1]}, [(2, 3, 4)]),
    ("Permute", {"dims": [1, 0]}, [(5, 3)]),
    ("Permute", {"dims": [0, 2, 1]}, [(5, 3)]),  # PyTorch's form, with the batch
    ("Permute", {"dims": [2, 0, 1]}, [(2, 3, 4)]),
]

REFUSED_CASES = [
    ("MultiheadAttention", {"num_heads": 3}, [(5, 8)]),
    ("MultiheadAttention", {"num_heads": 2}, [(5, 8), (6, 4), (7, 4)]),
    ("Scale", {}, [(4, 3, 3), (2, 1, 1)]),
    ("Linear", {}, [(3, 4, 4)]),
    ("Embedding", {"num_embeddings": 5, "embedding_dim": 2, "padding_idx": 5}, [((4,), INT64)]),
    ("Conv1d", {"out_channels": 4, "kernel_size": 5, "padding": "same", "padding_mode": "reflect"}, [(2, 2)]),
    ("Conv1d", {"out_channels": 4, "kernel_size": 7, "padding": "same", "padding_mode": "circular"}, [(2, 2)]),
    ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 3, "padding_mode": "reflect"}, [(1, 3, 3)]),
    ("Conv2d", {"out_channels": 4, "padding": "same", "stride": 2}, [(1, 8, 8)]),
    ("Conv2d", {"out_channels": 4, "groups": 3}, [(4, 8, 8)]),
    ("Conv2d", {"kernel_size": 5}, [(8, 3, 3)]),
    ("ConvTranspose2d", {"stride": 2, "output_padding": 2}, [(1, 4, 4)]),
    ("ConvTranspose2d", {"kernel_size": 1, "padding": 3}, [(1, 4, 4)]),
    ("MaxPool1d", {"kernel_size": 3, "padding": 2, "dilation": 2}, [(3, 10)]),
    ("MaxPool2d", {"kernel_size": 2, "padding": 2}, [(1, 8, 8)]),
    ("MaxPool2d", {"kernel_size": 3, "padding": 2, "dilation": 2}, [(1, 9, 9)]),
    ("AvgPool1d", {"kernel_size": 3, "stride": 1, "ceil_mode": True}, [(1, 2)]),
    ("AvgPool2d", {"kernel_size": 5}, [(1, 4, 8)]),
    ("BatchNorm2d", {}, [(3, 4)]),
    ("LayerNorm", {"normalized_dims": 2}, [(4,)]),
    ("LSTM", {}, [(12,)]),
    ("Softmax", {"dim": 0}, [(3,)]),
    ("Softmax", {"dim": 3}, [(3,)]),
    ("Add", {}, [(3, 4), (3, 5)]),
    ("Concat", {"dim": 1}, [(2, 5, 5), (3, 5, 4)]),
    ("Concat", {"dim": 0}, [(2,), (3,)]),
    ("Flatten", {"start_dim": 0}, [(2, 3)]),
    ("Flatten", {"start_dim": 2, "end_dim": 1}, [(2, 3)]),
    ("Reshape", {"shape": [5, -1]}, [(2, 3)]),
    ("Reshape", {"shape": [2, 2]}, [(5,)]),
    ("Permute", {"dims": [1, 0, 2]}, [(2, 3)]),
    ("Permute", {"dims": [0, 0]}, [(2, 3)]),
    ("ReLU", {}, [((4,), INT64)]),
]


def _ins(spec_ins):
    return [TensorInfo(*s) if isinstance(s[0], tuple) else TensorInfo(s) for s in spec_ins]


@pytest.mark.parametrize("layer_type, params, ins", OK_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(OK_CASES)])
def test_chosen_case_works_like_pytorch(layer_type, params, ins):
    assert check_against_torch(layer_type, params, _ins(ins)) == "ok"


@pytest.mark.parametrize("layer_type, params, ins", REFUSED_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(REFUSED_CASES)])
def test_chosen_case_refused_like_pytorch(layer_type, params, ins):
    assert check_against_torch(layer_type, params, _ins(ins)) == "refused"


def test_chosen_cases_cover_every_layer_type():
    assert {c[0] for c in OK_CASES} == set(LAYER_TYPES)


# ----------------------------------------------------------------------------------------------------
# MACs against formulas written from the definitions

def _macs(layer_type, params, shape):
    spec = get_spec(layer_type)
    info = infer_node(layer_type, spec.validate_params(params), [TensorInfo(shape)])
    assert info.ok, info.error
    return info


@pytest.mark.parametrize("layer_type, params, shape, expected", [
    # Linear: in_features × out_features per position
    ("Linear", {"out_features": 7}, (20,), 20 * 7),
    ("Linear", {"out_features": 7}, (5, 20), 5 * 20 * 7),
    # Conv: out_channels × output positions × (in_channels / groups) × kernel area
    ("Conv1d", {"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1}, (3, 16), 4 * 8 * 3 * 3),
    ("Conv2d", {"out_channels": 6, "kernel_size": 3, "padding": 1, "groups": 2}, (4, 10, 10), 6 * 100 * 2 * 9),
    ("Conv2d", {"out_channels": 8, "kernel_size": [3, 5]}, (1, 28, 28), 8 * 26 * 24 * 1 * 15),
    # ConvTranspose: every input position × in_channels × (out_channels / groups) × kernel area
    ("ConvTranspose2d", {"out_channels": 6, "kernel_size": 3, "stride": 2}, (4, 5, 5), 25 * 4 * 6 * 9),
    ("ConvTranspose2d", {"out_channels": 6, "kernel_size": 3, "stride": 2, "groups": 2}, (4, 5, 5), 25 * 4 * 3 * 9),
    # Recurrent: steps × Σ_layers directions × gates × hidden × (layer input + hidden)
    ("RNN", {"hidden_size": 3}, (7, 5), 7 * 1 * 3 * (5 + 3)),
    ("GRU", {"hidden_size": 3, "return_sequences": True}, (7, 5), 7 * 3 * 3 * (5 + 3)),
    ("LSTM", {"hidden_size": 4, "num_layers": 2, "bidirectional": True}, (6, 5),
     6 * (2 * 4 * 4 * (5 + 4) + 2 * 4 * 4 * (8 + 4))),
])
def test_macs_match_the_definition(layer_type, params, shape, expected):
    assert _macs(layer_type, params, shape).macs == expected


@pytest.mark.parametrize("layer_type, params, shape", [
    ("Linear", {"out_features": 7}, (20,)),
    ("Linear", {"out_features": 3}, (6, 4)),
    ("Conv1d", {"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}, (3, 16)),
    ("Conv2d", {"out_channels": 6, "kernel_size": 3, "padding": "same", "groups": 2}, (4, 10, 10)),
    ("ConvTranspose2d", {"out_channels": 6, "kernel_size": 3, "stride": 2, "groups": 2}, (4, 5, 5)),
])
def test_macs_match_pytorch_flop_counter(layer_type, params, shape):
    """PyTorch's own FLOP counter (2 FLOPs per multiply-accumulate, bias not counted) agrees."""
    from torch.utils.flop_counter import FlopCounterMode

    spec = get_spec(layer_type)
    p = spec.validate_params(params)
    info = _macs(layer_type, params, shape)
    module = spec.build(p, [TensorInfo(shape)])
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.randn(BATCH, *shape))
    assert counter.get_total_flops() == 2 * BATCH * info.macs


# ----------------------------------------------------------------------------------------------------
# Error messages the product promises

def _error(layer_type, params, *ins):
    spec = get_spec(layer_type)
    info = infer_node(layer_type, spec.validate_params(params), [TensorInfo(*s) for s in ins])
    assert not info.ok, f"{layer_type} should refuse {ins}"
    return str(info.error)


def test_linear_after_feature_maps_asks_for_flatten():
    msg = _error("Linear", {}, ((32, 13, 13),))
    assert "Linear needs a flat input (features) but gets (32, 13, 13)" in msg
    assert "insert a Flatten before it" in msg
    assert "(5408,)" in msg


def test_conv_kernel_larger_than_input():
    msg = _error("Conv2d", {"kernel_size": 5}, ((8, 3, 3),))
    assert "kernel 5 is larger than the 3×3 input" in msg
    assert "lower kernel_size or remove a pooling layer above" in msg


def test_add_mismatch_names_both_shapes():
    msg = _error("Add", {}, ((16, 8, 8),), ((32, 8, 8),))
    assert "(16, 8, 8)" in msg and "(32, 8, 8)" in msg


def test_multiply_mismatch_names_both_shapes():
    msg = _error("Multiply", {}, ((10,),), ((10,),), ((12,),))
    assert "(10,)" in msg and "(12,)" in msg


def test_concat_mismatch_names_both_shapes():
    msg = _error("Concat", {"dim": 1}, ((16, 8, 8),), ((32, 4, 4),))
    assert "(16, 8, 8)" in msg and "(32, 4, 4)" in msg


def test_embedding_fed_floats_asks_for_int64_ids():
    msg = _error("Embedding", {}, ((12,), FLOAT32))
    assert "int64" in msg and "token ids" in msg
    assert "float32" in msg


def test_conv2d_fed_flat_pixels_suggests_the_reshape():
    msg = _error("Conv2d", {}, ((784,),))
    assert "(784,)" in msg
    assert "Reshape to (1, 28, 28)" in msg


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_recurrent_fed_a_flat_vector_explains_steps_features(kind):
    msg = _error(kind, {}, ((12,),))
    assert f"{kind} needs a sequence (steps, features) but gets (12,)" in msg
    assert "Reshape to (12, 1)" in msg


# ----------------------------------------------------------------------------------------------------
# Documentation and defaults of every spec

@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.type)
def test_spec_is_documented(spec):
    assert spec.summary.strip() and spec.doc.strip() and spec.formula.strip()
    assert spec.category in CATEGORIES
    for p in spec.params:
        assert isinstance(p, Param) and p.doc.strip(), f"{spec.type}.{p.name} has no doc"
    names = [p.name for p in spec.params]
    assert len(set(names)) == len(names)
    assert set(spec.key_params) <= set(names)
    assert spec.type in spec.explain() and all(n in spec.explain() for n in names)


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.type)
def test_defaults_validate(spec):
    defaults = spec.defaults()
    assert spec.validate_params({}) == defaults
    assert spec.validate_params(dict(defaults)) == defaults


def test_validation_refuses_unknown_and_out_of_range_values():
    with pytest.raises(ParamError, match="no parameter 'kernel'"):
        get_spec("Conv2d").validate_params({"kernel": 3})
    with pytest.raises(ParamError, match="out of range"):
        get_spec("Dropout").validate_params({"p": 1.5})
    with pytest.raises(ParamError):
        get_spec("Conv2d").validate_params({"padding": "full"})


def test_specs_are_unique_and_cover_the_categories():
    types = [s.type for s in all_specs()]
    assert len(types) == len(set(types))
    assert {s.category for s in all_specs()} == set(CATEGORIES)
