"""export_model: a graph's network with its weights written as safetensors, ONNX, a torch.export program,
TorchScript, a PyTorch script or an int8 (dynamically quantised) network, then read back and run against PyTorch
before it is reported done."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BuildError, LayerLoomError
from .capture import capture_output
from .report import FORMATS, ExportError, ExportReport
from .weights import check_state_dict, read_safetensors, write_safetensors

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.nn as nn

    from ..graph import Graph

# Largest difference allowed between the exported model and PyTorch, for outputs of size up to 1 (larger
# outputs get the same relative allowance: float32 has ~7 significant digits whatever the magnitude).
# int8: a TorchScript file against the quantised network in memory (an ONNX one has its own limit, int8.py).
TOLERANCE = {"safetensors": 1e-6, "onnx": 1e-4, "pt2": 1e-5, "torchscript": 1e-5, "python": 1e-6, "int8": 1e-5}
# Every format export_model writes: FORMATS plus the generated PyTorch script (codegen.py), whose limit is absolute,
# and the int8 network (int8.py), measured against the float one on the project's data.
ALL_FORMATS = (*FORMATS, "python", "int8")
ALTERNATIVES = {"onnx": "pt2 (torch.export) or safetensors", "pt2": "onnx or safetensors",
                "torchscript": "pt2 (torch.export) or safetensors"}
UNTRAINED = "no weights were given: the exported model has freshly initialised, untrained weights"
DEPRECATED_TS = ("TorchScript is deprecated in PyTorch in favour of torch.export: prefer the pt2 format for new "
                 "work (torch.export.load), or ONNX to run outside PyTorch")


def _graph_of(graph: Any) -> "Graph":
    return getattr(graph, "graph", graph)  # a Project works too


def make_model(graph: "Graph", seed: int = 0) -> "nn.Module":
    """The graph's network (evaluation mode); ExportError naming the nodes when it cannot be built."""
    from ..builder import build_model
    from ..shapes import analyze

    g = _graph_of(graph)
    errors = analyze(g).errors if g.nodes else []
    if errors:
        nodes = "; ".join(f"{e.node_id} ({e.type}): {e.error}" for e in errors)
        raise ExportError(f"the graph has errors, so it cannot be exported; fix "
                          f"{'this node' if len(errors) == 1 else 'these nodes'} first: {nodes}",
                          node_id=errors[0].node_id)
    try:
        model = build_model(g, seed=seed)
    except BuildError as e:
        raise ExportError(" ".join(line.strip() for line in str(e).split("\n") if line.strip())) from None
    return model.train(False)


def _id_range(graph: "Graph", model: "nn.Module", input_id: str) -> int:
    """Token ids for an int64 Input must be below the num_embeddings of every Embedding they reach."""
    import torch.nn as nn

    limits, seen, todo = [], set(), [input_id]
    while todo:
        nid = todo.pop()
        for nxt in graph.outputs_of(nid):
            if nxt in seen:
                continue
            seen.add(nxt)
            module = model._modules.get(nxt)
            if isinstance(module, nn.Embedding):
                limits.append(module.num_embeddings)
            elif graph.nodes[nxt].spec.accepts == "any":  # shape layers pass the ids on unchanged
                todo.append(nxt)
    return min(limits) if limits else 2


def make_sample(graph: "Graph", model: "nn.Module", batch_size: int, seed: int = 0) -> tuple["torch.Tensor", ...]:
    """A random batch of the Input shapes: normal floats, or int64 ids valid for the Embeddings they feed."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = []
    for nid in model.input_ids:
        shape = (batch_size, *model.input_shapes[nid])
        if model.input_dtypes[nid] == "int64":
            out.append(torch.randint(0, _id_range(graph, model, nid), shape, generator=gen))
        else:
            out.append(torch.randn(shape, generator=gen))
    return tuple(out)


def _outputs(value: Any) -> list["torch.Tensor"]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _max_diff(got: Sequence[Any], want: Sequence["torch.Tensor"]) -> tuple[float, float]:
    """(largest absolute difference, largest absolute reference value) over all outputs."""
    import torch

    if len(got) != len(want):
        raise ExportError(f"the exported model gives {len(got)} outputs where PyTorch gives {len(want)}")
    diff, scale = 0.0, 0.0
    for g, w in zip(got, want):
        g = torch.as_tensor(g)
        if tuple(g.shape) != tuple(w.shape):
            raise ExportError(f"the exported model gives an output of shape {tuple(g.shape)} where PyTorch gives "
                              f"{tuple(w.shape)}")
        if w.numel():
            diff = max(diff, float((g.double() - w.double()).abs().max()))
            scale = max(scale, float(w.double().abs().max()))
    return diff, scale


def _check_out_path(out: Path) -> None:
    if out.is_dir():
        raise ExportError(f"cannot write {out}: it is a folder; give a file name such as {out / 'model.onnx'}")
    parent = out.parent
    if not parent.exists():
        raise ExportError(f"cannot write {out}: the folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise ExportError(f"cannot write {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ExportError(f"cannot write {out}: no permission to write in {parent}")


def _stage(out: Path) -> Path:
    """A private folder next to the target: the export is written and checked there, then moved into place."""
    try:
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".export", dir=out.parent))
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror or e}") from None


def export_model(graph: Any, weights: Any, fmt: str, out_path: str | os.PathLike, *,
                 sample: Any = None, batch_size: int = 2, base_dir: str | os.PathLike | None = None,
                 data: Any = None) -> ExportReport:
    """Write the graph's network with `weights` (a state dict, a path to a .safetensors file, or None for the
    freshly initialised network) as `fmt` ("safetensors", "onnx", "pt2", "torchscript", "python": a standalone
    PyTorch script, run in a fresh Python process and checked with ruff, or "int8": its Linear, LSTM and GRU layers
    dynamically quantised, as ONNX for a .onnx name and TorchScript otherwise; see int8.py) to `out_path`.

    For int8, `graph` should be the Project: the float network and the int8 file are then scored on its data
    (`data`, a loaded engine.data DataBundle, or its data section loaded with relative paths starting at
    `base_dir`, the project file's folder) and the report gives both sizes and both scores.

    The written file is read back and run on `sample` (a tensor or a tuple, one per Input; by default a random
    batch of `batch_size`) and, for the model formats, on a batch of another size to prove the batch axis is
    dynamic; its outputs are compared with PyTorch's. Only a file that passes is left at `out_path`. Raises
    ExportError (one line; `details` has the exporter's own output) for an unknown format, a path that cannot be
    written, a graph with errors, weights that do not fit, or an export that fails or does not match."""
    t0 = time.perf_counter()
    fmt = str(fmt).lower().lstrip(".")
    if fmt not in ALL_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(ALL_FORMATS)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ExportError(f"batch_size must be a whole number of at least 1, not {batch_size!r}")
    out = Path(out_path)
    _check_out_path(out)
    g = _graph_of(graph)
    model = make_model(g)
    notes = []
    if weights is None:
        notes.append(UNTRAINED)
    else:
        if isinstance(weights, (str, os.PathLike)):
            state, source = read_safetensors(weights), f"the weights in {Path(weights).name}"
        elif isinstance(weights, dict):
            state, source = weights, "the weights"
        else:
            raise ExportError(f"weights must be a state dict or a path to a .safetensors file, not "
                              f"{type(weights).__name__}")
        check_state_dict(model, state, source)
        model.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
    sample = _sample(g, model, sample, batch_size)

    import torch

    with torch.no_grad():
        reference = _outputs(model(*sample))
        other = make_sample(g, model, sample[0].shape[0] + 3, seed=1)
        reference_other = _outputs(model(*other))
    # Tracing with a batch of 1 would fix the batch axis at 1 (PyTorch treats sizes 0 and 1 as special).
    trace_inputs = sample if sample[0].shape[0] > 1 else other
    stage = _stage(out)
    staged = stage / out.name
    report = ExportReport(path=str(out), format=fmt, tolerance=TOLERANCE[fmt])
    try:
        with capture_output() as captured:
            try:
                if fmt == "python":
                    from .codegen import export_python
                    done = export_python(graph, model, staged)
                else:
                    done = _EXPORTERS[fmt](model, trace_inputs, staged)
                batches = [(sample, reference)] + ([] if fmt == "safetensors" else [(other, reference_other)])
                run_many = getattr(done, "run_many", None)  # one process for all batches (python)
                got = run_many([inp for inp, _ in batches]) if run_many else [done.run(inp) for inp, _ in batches]
                diff, scale, float_diff = 0.0, 0.0, 0.0
                reference_of = getattr(done, "reference", None)  # int8: the quantised network in memory
                for (inp, want), outs in zip(batches, got):
                    d, s = _max_diff(outs, want)
                    float_diff = max(float_diff, d)
                    if reference_of is not None:
                        d = _max_diff(outs, reference_of(inp))[0]
                    diff, scale = max(diff, d), max(scale, s)
                error = None
            except LayerLoomError as e:
                error = e
            except Exception as e:  # the exporters raise anything; the user gets it in words below
                error = _diagnose(fmt, model, g, e)
        report.size_bytes = sum(f.stat().st_size for f in stage.iterdir() if f.is_file())
        report.seconds = time.perf_counter() - t0
        if error is not None:
            report.message = f"{error}\n\nexporter output:\n{captured.text}" if captured.text else str(error)
            raise ExportError(str(error), details=captured.text, report=report,
                              node_id=getattr(error, "node_id", None)) from None
        report.tolerance = getattr(done, "tolerance", None) or TOLERANCE[fmt]  # int8 ONNX: its own limit
        limit = report.tolerance * (1.0 if fmt == "python" else max(1.0, scale))
        report.max_abs_diff = diff
        report.float_max_abs_diff = float_diff if fmt == "int8" else None
        report.batch_sizes = [int(inp[0].shape[0]) for inp, _ in batches]
        if diff > limit:
            report.message = (f"the exported model differs from PyTorch by up to {diff:.2e}, more than the "
                              f"allowed {limit:.0e}")
            if captured.text:
                report.message += f"\n\nexporter output:\n{captured.text}"
            raise ExportError(f"the {fmt} export does not match the PyTorch model: its outputs differ by up to "
                              f"{diff:.2e} (allowed {limit:.0e}); nothing was written", details=captured.text,
                              report=report)
        if fmt == "int8":  # scored on the project's data before the file is put in place
            from .int8 import measure
            with capture_output():
                notes += measure(report, graph if graph is not g else None, model, done, base_dir=base_dir,
                                 data=data)
        try:
            for f in stage.iterdir():
                os.replace(f, out.parent / f.name)
        except OSError as e:
            raise ExportError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    report.check_passed = True
    report.seconds = time.perf_counter() - t0
    report.message = "\n".join(notes + done.notes + ([DEPRECATED_TS] if fmt == "torchscript" else []))
    return report


def _sample(graph: "Graph", model: "nn.Module", sample: Any, batch_size: int) -> tuple["torch.Tensor", ...]:
    import torch

    if sample is None:
        return make_sample(graph, model, batch_size)
    sample = tuple(sample) if isinstance(sample, (tuple, list)) else (sample,)
    if len(sample) != len(model.input_ids) or not all(isinstance(s, torch.Tensor) for s in sample):
        raise ExportError(f"the sample must be {len(model.input_ids)} tensor(s), one per Input "
                          f"({', '.join(model.input_ids)})")
    for nid, s in zip(model.input_ids, sample):
        want = tuple(model.input_shapes[nid])
        if s.dim() != len(want) + 1 or tuple(s.shape[1:]) != want:
            raise ExportError(f"the sample for {nid} has shape {tuple(s.shape)}; it must be (batch, "
                              f"{', '.join(map(str, want))})")
    return tuple(s.detach().cpu() for s in sample)


class _Done:
    """A written export: `run(inputs)` gives its outputs as tensors; `notes` describe it for the report."""

    def __init__(self, run: Callable[[tuple], list], notes: list[str]):
        self.run = run
        self.notes = notes


# ---------------------------------------------------------------------------------------------------- formats


def _export_safetensors(model: "nn.Module", sample: tuple, path: Path) -> _Done:
    import copy

    from .. import __version__

    state = model.state_dict()
    write_safetensors(state, path, metadata={"format": "layerloom-weights", "layerloom": __version__})
    back = read_safetensors(path)
    check_state_dict(model, back, source="the written weights")
    changed = [k for k, v in state.items() if not (back[k].dtype == v.dtype and bool((back[k] == v).all()))]
    if changed:
        raise ExportError(f"the weights read back differ from those written: {', '.join(changed)}")
    fresh = copy.deepcopy(model)
    fresh.load_state_dict(back)

    def run(inputs):
        import torch
        with torch.no_grad():
            return _outputs(fresh(*inputs))
    return _Done(run, [f"{len(back)} tensors named by layer ({_names(back)}); read back: names, shapes and "
                       f"values identical, and a network loaded from the file gives the same outputs"])


def _names(state: dict) -> str:
    keys = list(state)
    return ", ".join(keys[:3]) + (", …" if len(keys) > 3 else "")


def _dynamic(sample: tuple):
    import torch

    batch = torch.export.Dim("batch")
    return (tuple({0: batch} for _ in sample),)  # forward(*inputs): one spec for the tuple of inputs


def _export_onnx(model: "nn.Module", sample: tuple, path: Path) -> _Done:
    import onnx
    import torch

    inputs = getattr(model, "input_ids", None) or [f"input_{i + 1}" for i in range(len(sample))]
    names = {"input_names": list(inputs), "output_names": list(getattr(model, "output_ids", None) or ["output"])}
    try:
        program = torch.onnx.export(model, sample, dynamo=True, dynamic_shapes=_dynamic(sample), verbose=False,
                                    **names)
        _unclash(program)
        program.save(str(path))
        exporter = "the torch.export-based exporter (dynamo=True)"
    except Exception as first:
        for f in path.parent.iterdir():  # the staging folder: whatever the failed attempt left
            if f.is_file():
                f.unlink()
        try:
            axes = {n: {0: "batch"} for n in names["input_names"] + names["output_names"]}
            torch.onnx.export(model, sample, str(path), dynamo=False, dynamic_axes=axes, opset_version=18,
                              **names)
        except Exception:
            raise first from None
        reason = _first_line(first)
        exporter = f"the legacy TorchScript-based exporter (the torch.export-based one failed: {reason})"
    proto = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    del proto
    onnx.checker.check_model(str(path))
    run, input_names = onnx_runner(path, "the exported model")
    return _Done(run, [f"ONNX opset {opset}, written by {exporter}; inputs {', '.join(input_names)} and outputs "
                       f"{', '.join(names['output_names'])} with a dynamic batch axis; checked in onnxruntime "
                       f"against PyTorch"])


def _unclash(program: Any) -> None:
    """The exporter names the graph's inputs and outputs after the nodes (linear_1) without looking at the names it
    gave inside, which follow the operators (linear, linear_1, … : a block or attention holds several), so one name
    could be given twice and the file refused by the ONNX checker. Inner values that clash get another name."""
    graph = getattr(getattr(program, "model", None), "graph", None)
    if graph is None:
        return
    ports = {id(v) for v in [*graph.inputs, *graph.outputs]}
    names = {v.name for v in [*graph.inputs, *graph.outputs]}
    values = [v for node in graph for v in node.outputs]
    taken = {v.name for v in values} | names
    for v in values:
        if v.name in names and id(v) not in ports:
            new, n = f"{v.name}_inner", 2
            while new in taken:
                new, n = f"{v.name}_inner{n}", n + 1
            v.name = new
            taken.add(new)


def onnx_runner(path: Path, what: str) -> tuple[Callable[[tuple], list], list[str]]:
    """An onnxruntime session on the CPU for a written ONNX file: `run(inputs)` gives its outputs as a list, and
    an ExportError naming `what` when onnxruntime cannot run it; also the session's input names."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]

    def run(inputs):
        try:
            return _outputs(session.run(None, {n: t.numpy() for n, t in zip(input_names, inputs)}))
        except Exception as e:
            raise ExportError(f"onnxruntime cannot run {what} on a batch of {inputs[0].shape[0]}: "
                              f"{str(e).strip().splitlines()[0][:300]}") from None
    return run, input_names


def _export_pt2(model: "nn.Module", sample: tuple, path: Path) -> _Done:
    import torch

    program = torch.export.export(model, sample, dynamic_shapes=_dynamic(sample))
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()

    def run(inputs):
        with torch.no_grad():
            return _outputs(loaded(*inputs))
    return _Done(run, ["a torch.export program with a dynamic batch axis; load it with "
                       "torch.export.load(path).module(); checked after loading it back"])


def _export_torchscript(model: "nn.Module", sample: tuple, path: Path) -> _Done:
    import torch

    traced = torch.jit.trace(model, sample, check_trace=False)
    torch.jit.save(traced, str(path))
    loaded = torch.jit.load(str(path), map_location="cpu")

    def run(inputs):
        with torch.no_grad():
            return _outputs(loaded(*inputs))
    return _Done(run, ["traced with torch.jit.trace and saved with torch.jit.save; load it with "
                       "torch.jit.load(path); checked after loading it back, also on another batch size"])


def _export_int8(model: "nn.Module", sample: tuple, path: Path) -> _Done:
    from .int8 import export_int8  # imports torch.ao and onnxruntime's quantiser only when asked for
    return export_int8(model, sample, path)


_EXPORTERS: dict[str, Callable[[Any, tuple, Path], _Done]] = {
    "safetensors": _export_safetensors, "onnx": _export_onnx, "pt2": _export_pt2,
    "torchscript": _export_torchscript, "int8": _export_int8}


# ------------------------------------------------------------------------------------------------- diagnosis


def _first_line(e: BaseException) -> str:
    """The telling line of an exporter's error: PyTorch's own summary when it gives one, without colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1]
    for line in text.split("\n"):
        line = re.sub(r"^<class '(?:[\w.]+\.)?(\w+)'>: ", r"\1: ", line.strip())
        if line:
            return line[:300] if re.match(r"^\w+: ", line) else f"{type(e).__name__}: {line[:300]}"
    return type(e).__name__


def _diagnose(fmt: str, model: "nn.Module", graph: "Graph", error: Exception) -> ExportError:
    """Which layer the format cannot carry: each layer is exported on its own until one fails."""
    if fmt not in ALTERNATIVES:
        return ExportError(f"the {fmt} export failed: {_first_line(error)}")
    try:
        culprit = _failing_layer(fmt, model, graph)
    except Exception:  # a diagnosis that itself fails must not hide the original error
        culprit = None
    if culprit is not None:
        path, kind, layer_error = culprit
        top = path.split(".")[0]
        if kind == "Custom":
            reason = _first_line(layer_error)
            op = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)'", reason)
            if op:
                return ExportError(f"{fmt} cannot carry the custom layer {path}: its code uses {op.group(1)}, which "
                                   f"ONNX has no operator for. Write its forward with other tensor operations, or "
                                   f"export this network as {ALTERNATIVES[fmt]} instead", node_id=top)
            return ExportError(f"{fmt} cannot carry the custom layer {path}: its code cannot be traced ({reason}). "
                               f"Write its forward with tensor operations only (no Python if or for on tensor values, "
                               f"no .item() or .tolist()), or export this network as {ALTERNATIVES[fmt]} instead",
                               node_id=top)
        return ExportError(f"{fmt} cannot carry layer {path} ({kind}): {_first_line(layer_error)}. "
                           f"Export this network as {ALTERNATIVES[fmt]} instead, or replace the layer",
                           node_id=top)
    return ExportError(f"the {fmt} export failed: {_first_line(error)}. Try exporting as {ALTERNATIVES[fmt]}")


def _failing_layer(fmt: str, model: "nn.Module", graph: "Graph", analysis: Any = None,
                   prefix: str = "") -> tuple[str, str, Exception] | None:
    """(dotted path, type, error) of the first layer the format cannot carry on its own; inside a block that fails,
    the inner layer that does."""
    import torch
    import torch.nn as nn

    from ..shapes import analyze

    analysis = analysis if analysis is not None else analyze(graph)

    class One(nn.Module):
        def __init__(self, layer: nn.Module):
            super().__init__()
            self.layer = layer

        def forward(self, *xs):
            return self.layer(*xs)

    with tempfile.TemporaryDirectory() as tmp:
        for nid, srcs, _ in model._plan:
            ins = []
            for s in srcs:
                info = analysis.nodes[s]
                shape = (2, *info.shape)
                ins.append(torch.randint(0, 2, shape) if info.dtype == "int64" else torch.randn(shape))
            one = One(model._modules[nid]).train(False)
            folder = Path(tmp) / nid
            folder.mkdir()
            try:
                _EXPORTERS[fmt](one, tuple(ins), folder / f"layer.{fmt}").run(tuple(ins))
            except Exception as e:
                node = graph.nodes[nid]
                if node.type == "Block":
                    from ..blocks import inner
                    deeper = _failing_layer(fmt, model._modules[nid], inner(node.params).graph,
                                            analysis.nodes[nid].inner, f"{prefix}{nid}.")
                    if deeper is not None:
                        return deeper
                return prefix + nid, node.type, e
    return None
