"""The int8 format: dynamic quantisation of a network's Linear, LSTM and GRU layers, written as TorchScript or as
ONNX, checked, then measured against the float network on the project's own data (size, and accuracy or MAE/R²).

Dynamic quantisation stores those layers' weights as 8-bit integers (one scale per tensor) and quantises their
inputs on the fly at run time; inputs and outputs stay float32 (or int64 token ids). The other layers
(convolutions, normalisation, embeddings, RNN) keep float32 weights: static quantisation, which would cover
convolutions, needs calibration data and is not offered.

The output's suffix chooses the container:

- ``.onnx``: the float network exported to ONNX exactly as the onnx format does, then quantised by onnxruntime
  (``onnxruntime.quantization.quantize_dynamic``: MatMul/Gemm from Linear layers, and LSTM). onnxruntime has no
  dynamic int8 GRU, so GRU layers stay float in this container. PyTorch itself cannot write dynamically quantised
  modules to ONNX (torch 2.13): the torch.export-based exporter fails on their packed weights
  (``LinearPackedParamsBase`` has no ``__obj_flatten__``) and the TorchScript-based one has no ONNX translation of
  ``quantized::linear_dynamic``. With no quantised PyTorch network to compare with, the file is checked against the
  float network with a loose limit (ONNX_LIMIT) that catches a broken file, not rounding.
- any other suffix (e.g. ``model.int8.ts``): ``torch.ao.quantization``'s dynamically quantised modules (Linear, LSTM,
  GRU), traced with torch.jit.trace; load it with ``torch.jit.load(path)``. The file must give the outputs of the
  quantised network in memory (limit TOLERANCE["int8"], as for TorchScript). torch.ao.quantization is deprecated in
  favour of torchao, which offers no dynamic quantisation of LSTM or GRU, nor a TorchScript file; torch.ao still
  works in torch 2.13, and its deprecation warnings are kept off the console (the report says so).

Imported by core.export_model only when exporting int8 (it imports torch).
"""
from __future__ import annotations

import copy
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.ao.nn.quantized import dynamic as nnqd

from ..errors import LayerLoomError
from ..layers.modules import _Recurrent
from .core import _Done, _export_onnx, _first_line, _outputs, onnx_runner
from .report import ExportError, ExportReport

# The ONNX operators onnxruntime quantises, and those it writes in their place (int8 weights).
ONNX_OPS = ("MatMul", "Gemm", "LSTM")
INT8_OPS = ("MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM")
# An ONNX int8 file's largest output difference from the float network, relative to the outputs' size (at least
# 1): rounding to 8 bits moves outputs by a few per cent; a quarter means a broken file.
ONNX_LIMIT = 0.25
EVAL_SAMPLES = 2000  # at most this many samples of the project's data are scored, float and int8
EVAL_BATCH = 256
DEPRECATED_AO = ("quantised with torch.ao.quantization.quantize_dynamic; PyTorch deprecates torch.ao.quantization "
                 "in favour of torchao (not installed, and without dynamic LSTM/GRU quantisation or TorchScript "
                 "output), but it still works in this torch; its deprecation warnings were kept off the console. "
                 "TorchScript is deprecated too: load the file with torch.jit.load(path)")


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".onnx"


class _QuantLSTM(_Recurrent, nnqd.LSTM):
    """A quantised LSTMLayer: PyTorch's dynamic int8 LSTM with the layer's choice of output (every step, or the
    final hidden state)."""


class _QuantGRU(_Recurrent, nnqd.GRU):
    """A quantised GRULayer, as _QuantLSTM."""


def _kind(layer: nn.Module) -> str | None:
    """Which quantisable kind a layer is (LSTM before RNN: LSTMLayer is no nn.RNN, but be exact anyway)."""
    if isinstance(layer, nn.Linear):
        return "Linear"
    if isinstance(layer, nn.LSTM):
        return "LSTM"
    if isinstance(layer, nn.GRU):
        return "GRU"
    return None


def layer_split(model: nn.Module, onnx: bool) -> tuple[list[str], list[str]]:
    """(the layers the container quantises, the other layers with weights, which stay float32), as node ids."""
    kinds = ("Linear", "LSTM") if onnx else ("Linear", "LSTM", "GRU")
    quantised, kept = [], []
    for nid, layer in model._modules.items():
        if _kind(layer) in kinds:
            quantised.append(nid)
        elif any(True for _ in layer.parameters()):
            kept.append(nid)
    return quantised, kept


def _layer_names(model: nn.Module, nids: list[str]) -> str:
    return ", ".join(f"{nid} ({_type_name(model._modules[nid])})" for nid in nids)


def _type_name(layer: nn.Module) -> str:
    return _kind(layer) or type(layer).__name__.removesuffix("Layer")


def _nothing_to_quantise(model: nn.Module, onnx: bool) -> ExportError:
    layers = _layer_names(model, layer_split(model, onnx)[1]) or "none"
    if onnx and any(_kind(m) == "GRU" for m in model._modules.values()):
        return ExportError(f"an int8 ONNX file quantises Linear and LSTM layers, and this network has none: "
                           f"onnxruntime has no int8 GRU (layers with weights: {layers}). Write the int8 export "
                           f"as TorchScript instead (a name not ending in .onnx, e.g. model.int8.ts), which "
                           f"quantises GRU layers too")
    return ExportError(f"int8 dynamic quantisation covers Linear, LSTM and GRU layers, and this network has none "
                       f"(layers with weights: {layers}), so an int8 export would be the float network unchanged; "
                       f"export it as torchscript, onnx or pt2 instead")


def _quantise_recurrent(layer: nn.Module) -> nn.Module:
    plain = copy.deepcopy(layer)
    lstm = isinstance(layer, nn.LSTM)
    plain.__class__ = nn.LSTM if lstm else nn.GRU  # from_float accepts PyTorch's own classes only
    from torch.ao.quantization import default_dynamic_qconfig
    plain.qconfig = default_dynamic_qconfig
    quantised = (nnqd.LSTM if lstm else nnqd.GRU).from_float(plain)
    quantised.__class__ = _QuantLSTM if lstm else _QuantGRU  # the same module, with the layer's forward
    quantised.return_sequences = layer.return_sequences
    return quantised


def quantise(model: nn.Module) -> nn.Module:
    """A copy of the network with its Linear, LSTM and GRU layers dynamically quantised to int8 (evaluation
    mode). The network itself is left unchanged."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated", category=Warning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions", category=Warning)
        q = copy.deepcopy(model)
        for nid, layer in list(q._modules.items()):
            if _kind(layer) in ("LSTM", "GRU"):
                setattr(q, nid, _quantise_recurrent(layer))
        q = quantize_dynamic(q, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return q.train(False)


def export_int8(model: nn.Module, sample: tuple, path: Path) -> _Done:
    """Write the int8 network to `path` (ONNX for a .onnx name, TorchScript otherwise) inside the staging folder;
    the float network goes into a scratch folder beside it, measured and removed."""
    onnx = is_onnx(path)
    quantised, kept = layer_split(model, onnx)
    if not quantised:
        raise _nothing_to_quantise(model, onnx)
    scratch = path.parent / ".float"
    scratch.mkdir()
    try:
        done = (_export_onnx_int8 if onnx else _export_torchscript_int8)(model, sample, path, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    done.quantised, done.kept = quantised, kept
    return done


def _export_torchscript_int8(model: nn.Module, sample: tuple, path: Path, scratch: Path) -> _Done:
    q = quantise(model)
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, sample, check_trace=False), str(scratch / "float.ts"))
        torch.jit.save(torch.jit.trace(q, sample, check_trace=False), str(path))
    loaded = torch.jit.load(str(path), map_location="cpu")

    def run(inputs):
        with torch.no_grad():
            return _outputs(loaded(*inputs))

    def reference(inputs):
        with torch.no_grad():
            return _outputs(q(*inputs))
    done = _Done(run, [f"TorchScript traced with torch.jit.trace from the dynamically quantised network "
                       f"({torch.backends.quantized.engine} kernels); checked after loading it back against the "
                       f"quantised network in memory, also on another batch size", DEPRECATED_AO])
    done.reference = reference
    done.float_size = (scratch / "float.ts").stat().st_size
    return done


def _export_onnx_int8(model: nn.Module, sample: tuple, path: Path, scratch: Path) -> _Done:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_path = scratch / "float.onnx"
    float_done = _export_onnx(model, sample, float_path)
    float_size = sum(f.stat().st_size for f in scratch.iterdir() if f.is_file())  # with any external data
    prepared = scratch / "prepared.onnx"
    # Folds the constant reshuffling the exporter puts in front of LSTM weights, so that onnxruntime sees them.
    quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
    quantize_dynamic(str(prepared), str(path), weight_type=QuantType.QInt8, op_types_to_quantize=list(ONNX_OPS))
    proto = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in proto.graph.node]
    del proto
    int8 = {op: ops.count(op) for op in INT8_OPS if op in ops}
    if not int8:
        raise ExportError("onnxruntime quantised none of the network's Linear or LSTM layers; export the int8 "
                          "network as TorchScript instead (a name not ending in .onnx, e.g. model.int8.ts)")
    onnx.checker.check_model(str(path))
    run, _ = onnx_runner(path, "the int8 model")
    counts = ", ".join(f"{n} {op}" for op, n in int8.items())
    done = _Done(run, [f"the float ONNX export ({float_done.notes[0]}), quantised by onnxruntime "
                       f"(quantize_dynamic, int8 weights: {counts}); GRU layers, if any, stay float in ONNX "
                       f"(onnxruntime has no int8 GRU). Checked in onnxruntime against the float network, within "
                       f"{ONNX_LIMIT:g} of the outputs' size (rounding to 8 bits, not a broken file)"])
    done.tolerance = ONNX_LIMIT
    done.float_size = float_size
    return done


# ------------------------------------------------------------------------------------------------- measuring


def measure(report: ExportReport, project: Any, model: nn.Module, done: _Done, *, base_dir: Any = None,
            data: Any = None, limit: int = EVAL_SAMPLES) -> list[str]:
    """Fill in the report's sizes and layers, and score the float network and the written int8 file on the
    project's data (validation split; else test, else training; at most `limit` samples). Returns notes; data that
    is missing or does not fit gives a note saying that accuracy was not measured, not an error."""
    report.float_size_bytes = done.float_size
    report.quantized_layers = list(done.quantised)
    report.float_layers = list(done.kept)
    notes = [f"int8 layers: {_layer_names(model, done.quantised)}"
             + (f"; float32 weights kept in {_layer_names(model, done.kept)}" if done.kept else "")]
    try:
        split, x, y, kind = _scoring(project, model, base_dir, data)
    except LayerLoomError as e:
        notes.append(f"accuracy was not measured: {' '.join(str(e).split())}; the size and the outputs' "
                     f"difference from the float network were measured on a random batch")
        return notes
    x, y = x[:limit], y[:limit]
    try:
        with torch.no_grad():
            report.metrics_float = _score([_outputs(model(x[i:i + EVAL_BATCH]))[0] for i in _starts(x)], y, kind)
            report.metrics_int8 = _score([done.run((x[i:i + EVAL_BATCH],))[0] for i in _starts(x)], y, kind)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"the int8 model cannot be scored on the project's {split} data: {_first_line(e)}") from None
    report.eval_split, report.eval_samples = split, len(x)
    return notes


def _starts(x: "torch.Tensor") -> range:
    return range(0, len(x), EVAL_BATCH)


def _scoring(project: Any, model: nn.Module, base_dir: Any, data: Any):
    """(split name, x, y, metric kind) of the project's data, or a LayerLoomError saying why there is none."""
    from ..data import check_fit, load_data
    from ..data.base import BINARY, CLASSIFICATION
    from ..runner import METRIC_OF_LOSS
    from ..shapes import analyze
    from ..training import ACCURACY, BINARY_LOGIT, BINARY_PROB, REGRESSION

    graph = getattr(project, "graph", None)
    if graph is None:
        raise LayerLoomError("a graph alone has no data; export the project (with its data section) to measure it")
    if data is None:
        if not project.data:
            raise LayerLoomError("the project has no data chosen")
        try:
            data = load_data(project.data, base_dir=base_dir)
        except LayerLoomError as e:
            raise LayerLoomError(f"the project's data cannot be loaded: {e}") from None
    if len(model.input_ids) != 1 or len(model.output_ids) != 1:
        raise LayerLoomError(f"the network has {len(model.input_ids)} Input(s) and {len(model.output_ids)} "
                             f"output(s); scoring needs one of each, as training does")
    loss = (project.loss or {}).get("type")
    analysis = analyze(graph)
    x_info, y_info = analysis.nodes[model.input_ids[0]], analysis.nodes[model.output_ids[0]]
    try:
        check_fit(data, x_info.shape, x_info.dtype, y_info.shape, loss)
    except LayerLoomError as e:
        raise LayerLoomError(f"the project's data does not fit the network: {' '.join(str(e).split())}") from None
    if loss:
        from ..losses import get_loss
        spec = get_loss(loss)
        kind, y_dtype = METRIC_OF_LOSS.get(spec.type, REGRESSION), spec.target_dtype
    elif data.task == CLASSIFICATION:
        kind, y_dtype = ACCURACY, "int64"
    elif data.task == BINARY:
        kind, y_dtype = (BINARY_PROB if graph.nodes[model.output_ids[0]].type == "Sigmoid" else BINARY_LOGIT), "float32"
    else:
        kind, y_dtype = REGRESSION, "float32"
    for name, split in (("validation", data.val), ("test", data.test), ("training", data.train)):
        if split is not None and len(split.x):
            x = torch.as_tensor(split.x, dtype=torch.int64 if data.dtype == "int64" else torch.float32)
            y = torch.as_tensor(split.y, dtype=torch.int64 if y_dtype == "int64" else torch.float32)
            return name, x, y, kind
    raise LayerLoomError("the project's data has no samples")


def _score(outs: list, y: "torch.Tensor", kind: str) -> dict[str, float]:
    from ..training import ACCURACY, BINARY_PROB, REGRESSION

    out = torch.cat([torch.as_tensor(o) for o in outs]).double()
    if kind == REGRESSION:
        diff = out - y.double().reshape(out.shape)
        yf = y.double()
        total = float(((yf - yf.mean()) ** 2).sum())
        return {"mae": float(diff.abs().mean()),
                "r2": 1.0 - float((diff * diff).sum()) / total if total > 1e-12 else 0.0}
    if kind == ACCURACY:
        pred, truth = out.argmax(1), y
    else:  # binary: a probability above 0.5, or a logit above 0, means "yes"
        pred, truth = out > (0.5 if kind == BINARY_PROB else 0.0), y.reshape(out.shape) > 0.5
    return {"accuracy": float((pred == truth).double().mean())}
