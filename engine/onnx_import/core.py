"""import_onnx: read, convert, lay out, check against onnxruntime, then write the project and its weights."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LayerLoomError
from ..graph import Graph, default_prefix
from ..layout import layered_layout
from ..project import SUFFIX, Project, save_project
from .report import EXISTS, MISMATCH, UNREADABLE, ImportResult, OnnxImportError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .convert import Converter

TOLERANCE = 1e-4  # as the ONNX export allows: for outputs up to 1, relative beyond


def output_paths(out: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """(project file, weights file beside it) for `out`; a name without a suffix gets .layerloom. Refuses a
    missing folder, another suffix, and existing files unless `overwrite`."""
    p = Path(out)
    if p.suffix == "":
        p = p.with_name(p.name + SUFFIX)
    if p.suffix != SUFFIX:
        raise OnnxImportError(f"the project file must end in {SUFFIX}, not {p.suffix} (e.g. {p.with_suffix(SUFFIX)})",
                              kind=EXISTS)
    weights = p.with_suffix(".safetensors")
    if p.is_dir():
        raise OnnxImportError(f"cannot write {p}: it is a folder", kind=EXISTS)
    if not p.parent.is_dir():
        raise OnnxImportError(f"cannot write {p}: the folder {p.parent} does not exist; create it first", kind=EXISTS)
    if not overwrite:
        there = [str(q) for q in (p, weights) if q.exists()]
        if there:
            raise OnnxImportError(f"{' and '.join(there)} already {'exists' if len(there) == 1 else 'exist'}; "
                                  f"choose another name or allow replacing (--force)", kind=EXISTS)
    return p, weights


def _finish_graph(conv: "Converter") -> tuple[Graph, list[str]]:
    """The graph with only what the outputs need, Inputs first in the model's order, and the outputs last in the
    model's order (build_model returns its sinks in node order); an Identity marks an output that also feeds
    other layers, is an Input, or is given twice."""
    g = conv.g
    outs = list(conv.output_ids)
    live: set[str] = set(conv.input_ids)
    todo = list(outs)
    while todo:
        nid = todo.pop()
        if nid not in live:
            live.add(nid)
            todo.extend(g.inputs_of(nid))
    final = []
    for nid in outs:
        fed = any(c in live for c in g.outputs_of(nid))
        if fed or outs.count(nid) > 1 or g.nodes[nid].type == "Input":
            ident = conv.add_layer(None, "Identity", {}, [nid]).node
            live.add(ident)
            final.append(ident)
        else:
            final.append(nid)
    order = conv.input_ids + [n for n in g.nodes if n in live and n not in conv.input_ids and n not in final] + final
    # Numbered ids again from 1 in order, now that layers nothing used are gone (no gaps like lstm_1, lstm_3).
    rename = {nid: nid for nid in order if nid in conv.named}
    used = set(rename)
    for nid in order:
        if nid not in rename:
            prefix, n = default_prefix(g.nodes[nid].type), 1
            while f"{prefix}_{n}" in used:
                n += 1
            rename[nid] = f"{prefix}_{n}"
            used.add(rename[nid])
    new = Graph()
    with new.events.blocked():
        for nid in order:
            node = g.nodes[nid]
            new.add_node(node.type, node.params, node_id=rename[nid])
        for nid in order:
            for src in g.inputs_of(nid):
                new.connect(rename[src], rename[nid])
    final = [rename[n] for n in final]
    if new.sink_nodes() != final:  # pragma: no cover - a guard on the ordering above
        raise OnnxImportError(f"internal error: the outputs {new.sink_nodes()} are not {final}", kind=MISMATCH)
    conv.weights = {f"{rename[k.split('.', 1)[0]]}.{k.split('.', 1)[1]}": v for k, v in conv.weights.items()
                    if k.split(".", 1)[0] in rename}
    for m in conv.mapping:
        m.layers = [rename[n] for n in m.layers if n in rename]
        if not m.layers and m.how == "layer":
            m.how = "unused"
    conv.input_ids = [rename[n] for n in conv.input_ids]
    return new, final


def _to_torch(weights: dict[str, Any], live: Graph) -> dict[str, "torch.Tensor"]:
    import numpy as np
    import torch

    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in weights.items() if k.split(".", 1)[0] in live}


def check_outputs(path: Path, graph: Graph, state: dict[str, "torch.Tensor"], input_names: list[str],
                  batch: int) -> tuple[float, float]:
    """(max abs difference, max abs reference) between onnxruntime on the file and the imported network, on one
    random batch (token ids within the Embeddings' vocabulary)."""
    import onnxruntime as ort
    import torch

    from ..builder import build_model
    from ..export.core import make_sample

    model = build_model(graph).train(False)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # pragma: no cover - the converter names every tensor it makes
        raise OnnxImportError(f"internal error: the weights do not fit the imported network ({e})",
                              kind=MISMATCH) from None
    sample = make_sample(graph, model, batch)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        want = session.run(None, {n: t.numpy() for n, t in zip(input_names, sample)})
    except Exception as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise OnnxImportError(f"onnxruntime cannot run {path.name} to check the import against: {first}",
                              kind=MISMATCH) from None
    with torch.no_grad():
        got = model(*sample)
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    diff, scale = 0.0, 0.0
    for k, (g, w) in enumerate(zip(got, want)):
        w = torch.as_tensor(w)
        if tuple(g.shape) != tuple(w.shape):
            raise OnnxImportError(f"output {k + 1} of the imported network has shape {tuple(g.shape)} where "
                                  f"onnxruntime gives {tuple(w.shape)}", kind=MISMATCH)
        if w.numel():
            diff = max(diff, float((g.double() - w.double()).abs().max()))
            scale = max(scale, float(w.double().abs().max()))
    return diff, scale


def import_onnx(path: str | os.PathLike, out: str | os.PathLike | None = None, *, overwrite: bool = False,
                name: str | None = None) -> ImportResult:
    """Import the ONNX model at `path` as a LayerLoom project.

    Each operator becomes catalogue layers (see the package docstring for the table) with its weights; the graph
    is laid out in rows; the imported network is run against onnxruntime on a random batch and must match to
    1e-4 (relative for outputs beyond 1). With `out` (PROJECT.layerloom) the project is written there and the
    weights beside it as PROJECT.safetensors, only after the check passed; existing files are kept unless
    `overwrite`. Raises OnnxImportError naming the operator and node it cannot map, or why the file is refused."""
    from .convert import Converter
    from .reader import read_model

    t0 = time.perf_counter()
    src = Path(path)
    targets = output_paths(out, overwrite) if out is not None else None
    model = read_model(src)
    conv = Converter(model)
    conv.run()
    graph, _ = _finish_graph(conv)
    for nid, (x, y) in layered_layout(graph).items():  # the app's Tidy layout
        graph.move(nid, x, y)
    state = _to_torch(conv.weights, graph)
    batch = conv.static_batch or 2
    diff, scale = check_outputs(src, graph, state, conv.input_names, batch)
    limit = TOLERANCE * max(1.0, scale)
    notes = list(conv.notes)
    if any(m.op_type == "Gather" and m.layers for m in conv.mapping):
        notes.append("Embedding padding_idx is not stored in ONNX: set it again if the model used one")
    stem = targets[0].stem if targets else src.stem
    producer = " ".join(x for x in (model.producer_name, model.producer_version) if x)
    description = f"Imported from {src.name}" + (f" ({producer})" if producer else "")
    if targets:
        description += f"; weights in {targets[1].name}"
    project = Project(graph=graph, name=name or stem, description=description)
    result = ImportResult(project=project, state=state, mapping=conv.mapping, source=str(src), opset=conv.opset,
                          max_abs_diff=diff, tolerance=limit, batch_size=batch, notes=notes)
    if diff > limit:
        result.seconds = time.perf_counter() - t0
        raise OnnxImportError(f"the imported network does not match onnxruntime: its outputs differ by up to "
                              f"{diff:.2e} (allowed {limit:.0e}); nothing was written", kind=MISMATCH)
    result.check_passed = True
    if targets:
        _write(result, targets[0], targets[1], src)
    result.seconds = time.perf_counter() - t0
    return result


def _write(result: ImportResult, project_path: Path, weights_path: Path, src: Path) -> None:
    from .. import __version__
    from ..export.weights import write_safetensors

    folder = project_path.parent if str(project_path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{weights_path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            write_safetensors(result.state, tmp, metadata={"format": "layerloom-weights", "layerloom": __version__,
                                                           "source": src.name})
            os.replace(tmp, weights_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as e:
        raise OnnxImportError(f"cannot write {weights_path}: {e.strerror or e}", kind=UNREADABLE) from None
    try:
        save_project(project_path, result.project)
    except LayerLoomError as e:
        raise OnnxImportError(str(e), kind=UNREADABLE) from None
    result.project_path = str(project_path)
    result.weights_path = str(weights_path)
