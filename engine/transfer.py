"""Transfer learning: start a network from weights trained elsewhere, and fine-tune it.

    from engine.transfer import load_weights_file, transfer_to_project, save_init_weights
    weights, report = transfer_to_project(project, "digits.layerloom", base_dir=folder)
    print(report.summary)            # "6 of 10 tensors loaded: 6 by name; 4 kept their initial values: ..."
    save_init_weights(project, project_path, weights, source="digits.layerloom", report=report)
    # project.extra["init"] now names PROJECT.init.safetensors; engine.runner.prepare starts from it

Sources (`load_weights_file`): a .safetensors file; a LayerLoom project (the weights its last training recorded in
`extra["trained"]`, else its newest run); a run folder of engine/runs.py (its final weights) or a checkpoint folder;
an ONNX file (imported with engine.onnx_import when its operators map to layers, so the names are node ids like
this project's, else its raw initializers); a PyTorch state dict (.pt / .pth / .bin / .ckpt) read with
`torch.load(weights_only=True)`, so a file that needs code to be run to read it is refused; a dict nested under
"state_dict" or "model" is taken, and a "module." prefix (DistributedDataParallel) is dropped.

Matching (`match_weights`) takes exact names first, then tensors of the same shape among those left, in order and
one-to-one (a tensor with the same last name part, "weight" or "bias", is preferred). The report is plain data.

Freezing and per-layer learning rates are node flags (`Node.frozen`, `Node.lr_factor`, see engine/graph.py) that
the builder and the runner honour; `replace_head` sets the number of outputs of the layer that decides them.

torch loads only when weights are read or a model is built; nothing here imports Qt.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError, GraphError, LayerLoomError, ProjectError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.nn as nn

    from .graph import Graph
    from .project import Project

TRAINED_KEY = "trained"   # project.extra["trained"] = {"weights": path relative to the project, ...} (the app's)
INIT_KEY = "init"         # project.extra["init"] = {"weights": path relative to the project, "source", "report"}
INIT_SUFFIX = ".init.safetensors"
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
NESTED_KEYS = ("state_dict", "model", "model_state_dict", "weights")
# Layer parameters that set how many values a layer outputs (per position), in the order they are looked for.
OUTPUT_PARAMS = ("out_features", "out_channels")


# ---- reading weights --------------------------------------------------------------------------------------

def load_weights_file(path: str | os.PathLike) -> dict[str, "torch.Tensor"]:
    """The tensors stored at `path`, by name, on the CPU. See the module's docstring for the kinds of source.
    Raises DataError naming the file and saying what to give instead when it cannot be read."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"there is no file or folder {p}: give a .safetensors, .pt/.pth, .onnx or .layerloom file, "
                        f"or a run folder")
    if p.is_dir():
        return _from_folder(p)
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return _read_safetensors(p)
    if suffix == ".layerloom":
        return _read_safetensors(project_weights_path(p))
    if suffix == ".onnx":
        return _from_onnx(p)
    if suffix in TORCH_SUFFIXES:
        return _from_torch(p)
    head = _head(p)
    if head[:2] == b"PK":  # a zip: PyTorch's format since 1.6
        return _from_torch(p)
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: an 8-byte header length, then a JSON header
        return _read_safetensors(p)
    raise DataError(f"{p.name} is not a weights file LayerLoom knows: give a .safetensors, .pt/.pth, .onnx or "
                    f".layerloom file, or a run folder")


def _head(p: Path) -> bytes:
    try:
        with open(p, "rb") as f:
            return f.read(16)
    except OSError as e:
        raise DataError(f"{p} cannot be read ({e.strerror or e})") from None


def _read_safetensors(p: Path) -> dict[str, "torch.Tensor"]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not p.is_file():
        raise DataError(f"the weights file {p} is missing: train the project again, or choose another source")
    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{p} is not a readable .safetensors file ({e})") from None


def _from_folder(p: Path) -> dict[str, "torch.Tensor"]:
    """A run folder (final, else best weights), a checkpoint folder (model.safetensors), or a project's folder or
    runs/ folder (its newest run with weights)."""
    from .runs import BEST, FINAL, list_runs

    for name in (FINAL, BEST, "model.safetensors"):
        if (p / name).is_file():
            return _read_safetensors(p / name)
    for run in list_runs(p):
        if run.weights or run.best_weights:
            return _read_safetensors(run.weights or run.best_weights)
    raise DataError(f"{p} holds no weights: give a run folder (with final.safetensors), a checkpoint folder (with "
                    f"model.safetensors) or a weights file")


def project_weights_path(project_path: str | os.PathLike) -> Path:
    """The trained weights of the project at `project_path`: the file its last training recorded
    (`extra["trained"]["weights"]`, relative to the project), else the newest of its runs with weights. DataError
    when it has none."""
    from .project import load_project
    from .runs import list_runs

    p = Path(project_path)
    try:
        project = load_project(p)
    except ProjectError as e:
        raise DataError(f"cannot read the source project: {e}") from None
    trained = project.extra.get(TRAINED_KEY)
    recorded = trained.get("weights") if isinstance(trained, dict) else None
    if isinstance(recorded, str) and recorded:
        w = Path(recorded)
        w = w if w.is_absolute() else p.parent / w
        if w.is_file():
            return w
    for run in list_runs(p):
        if run.weights or run.best_weights:
            return run.weights or run.best_weights
    if isinstance(recorded, str) and recorded:
        raise DataError(f"the project {p.name} records trained weights in {recorded}, but that file is missing and "
                        f"it has no runs: train it again")
    raise DataError(f"the project {p.name} has no trained weights yet: train it first (or give its weights file)")


def _from_onnx(p: Path) -> dict[str, "torch.Tensor"]:
    """Weights under LayerLoom's node-id names when the ONNX model imports as a graph; else the raw initializers."""
    import numpy as np
    import torch

    from .onnx_import import OnnxImportError, import_onnx
    from .onnx_import.reader import read_model

    try:
        return {k: v.detach().clone() for k, v in import_onnx(p).state.items()}
    except OnnxImportError:
        pass  # operators without a layer: fall back to the stored tensors under their own names
    from onnx import numpy_helper

    try:
        model = read_model(p)
    except OnnxImportError as e:
        raise DataError(f"cannot read weights from {p.name}: {e}") from None
    out = {}
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype.kind in "fiub" and init.name:
            out[init.name] = torch.from_numpy(np.array(arr, copy=True))
    if not out:
        raise DataError(f"{p.name} stores no weights (no initializers)")
    return out


def _from_torch(p: Path) -> dict[str, "torch.Tensor"]:
    import torch

    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types; the message tells a refused object from a broken file
        text = str(e)
        if "Weights only load failed" in text or "weights_only" in text:
            raise DataError(f"{p.name} holds Python objects (a whole model or a custom class) that could only be "
                            f"read by running code from the file, which LayerLoom never does. Save the weights "
                            f"alone instead, e.g. torch.save(model.state_dict(), 'weights.pt') or as "
                            f".safetensors") from None
        raise DataError(f"{p.name} is not a readable PyTorch weights file ({text.splitlines()[0] if text else e})") \
            from None
    state = _state_dict_of(data)
    if not state:
        raise DataError(f"{p.name} holds no tensors by name: save a state dict, e.g. "
                        f"torch.save(model.state_dict(), 'weights.pt')")
    return state


def _state_dict_of(data: Any) -> dict[str, "torch.Tensor"]:
    """The tensors of a loaded state dict, also when nested under "state_dict" / "model"; "module." dropped."""
    import torch

    if not isinstance(data, Mapping):
        return {}
    for key in NESTED_KEYS:
        inner = data.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            data = inner
            break
    state = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _as_state(source: "Mapping[str, torch.Tensor] | str | os.PathLike") -> tuple[dict[str, "torch.Tensor"], str]:
    if isinstance(source, (str, os.PathLike)):
        return load_weights_file(source), Path(source).name
    return dict(source), ""


# ---- matching ---------------------------------------------------------------------------------------------

def _shape_text(shape: Iterable[int]) -> str:
    return "×".join(str(int(s)) for s in shape) or "a scalar"


def _by_layer(names: list[str]) -> str:
    """`conv2d_1 (weight, bias), linear_2 (weight)`: tensor names grouped by their layer."""
    layers: dict[str, list[str]] = {}
    for name in names:
        layer, _, tensor = name.rpartition(".")
        layers.setdefault(layer or tensor, []).append(tensor if layer else "")
    return ", ".join(f"{layer} ({', '.join(t for t in ts if t)})" if any(ts) else layer for layer, ts in layers.items())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class TransferReport:
    """What a transfer did, as plain data. `matched`: (target name, source name, "name" or "shape");
    `shape_mismatches`: (target, source, target shape, source shape) for names found with another shape; `kept`:
    target tensors left as initialised (the mismatched ones among them); `unused`: source tensors not loaded."""

    matched: list[tuple[str, str, str]] = field(default_factory=list)
    shape_mismatches: list[tuple[str, str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def total(self) -> int:
        """Tensors in the target network."""
        return len(self.matched) + len(self.kept)

    @property
    def loaded(self) -> int:
        return len(self.matched)

    @property
    def summary(self) -> str:
        """One paragraph for a person: how many tensors were loaded and how, which kept their initial values,
        which names had another shape, how many source tensors were not used."""
        by_name = sum(1 for m in self.matched if m[2] == "name")
        by_shape = len(self.matched) - by_name
        hows = [f"{by_name} by name" if by_name else "", f"{by_shape} by shape" if by_shape else ""]
        how = ", ".join(h for h in hows if h)
        text = f"{self.loaded} of {_plural(self.total, 'tensor')} loaded" + (f": {how}" if how else "")
        if self.source:
            text += f" from {self.source}"
        if self.kept:
            text += f"; {len(self.kept)} kept {'its' if len(self.kept) == 1 else 'their'} initial " \
                    f"value{'' if len(self.kept) == 1 else 's'}: {_by_layer(self.kept)}"
        text += "."
        if self.shape_mismatches:
            text += " Different shapes: " + "; ".join(
                f"{t} is {_shape_text(ts)} here but {_shape_text(ss)} in the source"
                for t, _s, ts, ss in self.shape_mismatches) + "."
        if self.unused:
            text += f" {_plural(len(self.unused), 'source tensor')} not used."
        if not self.matched:
            text += " Nothing fits: the source was trained for a different network (check the layers' sizes)."
        return text

    def lines(self) -> list[str]:
        """The report as a table: one line per target tensor, then the unused source tensors."""
        out = [self.summary, ""]
        width = max([len(t) for t, _s, _h in self.matched] + [len(k) for k in self.kept] + [6])
        mismatch = {t: (s, ts, ss) for t, s, ts, ss in self.shape_mismatches}
        for t, s, how in self.matched:
            out.append(f"  {t.ljust(width)}  ← {s}" + (f"  (by {how})" if how != "name" else ""))
        for k in self.kept:
            if k in mismatch:
                s, ts, ss = mismatch[k]
                out.append(f"  {k.ljust(width)}  kept: {_shape_text(ts)} here, {_shape_text(ss)} in {s}")
            else:
                out.append(f"  {k.ljust(width)}  kept")
        if self.unused:
            out.append(f"  not used: {_by_layer(self.unused)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"matched": [list(m) for m in self.matched],
                "shape_mismatches": [[t, s, list(ts), list(ss)] for t, s, ts, ss in self.shape_mismatches],
                "kept": list(self.kept), "unused": list(self.unused), "source": self.source,
                "summary": self.summary}


def _kind(t: "torch.Tensor") -> str:
    return "float" if t.is_floating_point() else "complex" if t.is_complex() else str(t.dtype)


def _last(name: str) -> str:
    return name.rpartition(".")[2]


def _layer_of(name: str) -> str:
    return name.split(".", 1)[0]


def match_weights(target_state: Mapping[str, "torch.Tensor"], source: Mapping[str, "torch.Tensor"], *,
                  layers: Iterable[str] | None = None, by_shape: bool = True, source_name: str = "") -> TransferReport:
    """Pair the target's tensors with the source's: exact names first (the same shape loads; another shape is a
    mismatch, kept), then, with `by_shape`, the remaining targets in order each take the first remaining source
    tensor of the same shape and kind (float or integer), preferring one whose last name part (weight, bias,
    running_mean ...) is the same; one-to-one. `layers` limits the targets to those node ids (or name prefixes);
    the others are kept. Nothing is loaded here."""
    wanted = None if layers is None else {str(x) for x in layers}
    report = TransferReport(source=source_name)

    def included(name: str) -> bool:
        return wanted is None or _layer_of(name) in wanted or any(name.startswith(w + ".") or name == w
                                                                  for w in wanted)

    targets = [k for k in target_state if included(k)]
    free = dict.fromkeys(source)  # insertion-ordered set of the source tensors not taken yet
    by_target: dict[str, tuple[str, str]] = {}
    left: list[str] = []
    for t in targets:
        if t in free:
            ts, ss = tuple(target_state[t].shape), tuple(source[t].shape)
            del free[t]
            if ts == ss:
                by_target[t] = (t, "name")
            else:
                report.shape_mismatches.append((t, t, ts, ss))
        else:
            left.append(t)
    if by_shape:
        for t in left:
            tt = target_state[t]
            shape, kind = tuple(tt.shape), _kind(tt)
            fits = [s for s in free if tuple(source[s].shape) == shape and _kind(source[s]) == kind]
            if not fits:
                continue
            same = [s for s in fits if _last(s) == _last(t)]
            s = (same or fits)[0]
            del free[s]
            by_target[t] = (s, "shape")
    for t in target_state:  # report in the target's order
        if t in by_target:
            s, how = by_target[t]
            report.matched.append((t, s, how))
        else:
            report.kept.append(t)
    report.unused = list(free)
    return report


def matched_weights(report: TransferReport, target_state: Mapping[str, "torch.Tensor"],
                    source: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """The matched source tensors under the target's names, in the target's dtype, contiguous, on the CPU."""
    return {t: source[s].detach().to(device="cpu", dtype=target_state[t].dtype).contiguous().clone()
            for t, s, _how in report.matched}


def transfer_into(model: "nn.Module", source: "Mapping[str, torch.Tensor] | str | os.PathLike", *,
                  layers: Iterable[str] | None = None, by_shape: bool = True) -> TransferReport:
    """Load the tensors of `source` (a state dict, or a path for load_weights_file) that match `model`'s
    (see match_weights) into it; the others keep their values. Returns the report."""
    import torch

    state, name = _as_state(source)
    target = model.state_dict()
    report = match_weights(target, state, layers=layers, by_shape=by_shape, source_name=name)
    with torch.no_grad():
        for t, s, _how in report.matched:
            target[t].copy_(state[s])  # state_dict tensors share storage with the module's
    return report


# ---- projects ---------------------------------------------------------------------------------------------

def _seed(project: "Project") -> int:
    seed = (project.training or {}).get("seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else 0


def transfer_to_project(project: "Project", source_path: str | os.PathLike, *,
                        base_dir: str | os.PathLike | None = None, layers: Iterable[str] | None = None,
                        by_shape: bool = True) -> tuple[dict[str, "torch.Tensor"], TransferReport]:
    """Build the project's network (seeded like training), match the weights at `source_path` (relative paths
    start at `base_dir`) against it, and return the matched tensors under the network's names, to start training
    from, with the report. Nothing is changed; save_init_weights stores the result in the project."""
    from .builder import build_model

    src = Path(source_path)
    if not src.is_absolute() and base_dir is not None:
        src = Path(base_dir) / src
    state = load_weights_file(src)
    model = build_model(project.graph, seed=_seed(project))
    target = model.state_dict()
    report = match_weights(target, state, layers=layers, by_shape=by_shape, source_name=src.name)
    return matched_weights(report, target, state), report


def init_weights_path(project_path: str | os.PathLike) -> Path:
    """Where save_init_weights writes: PROJECT.init.safetensors beside the project file."""
    p = Path(project_path)
    return p.with_name(p.stem + INIT_SUFFIX)


def save_init_weights(project: "Project", project_path: str | os.PathLike, weights: Mapping[str, "torch.Tensor"],
                      *, source: str | os.PathLike | None = None, report: TransferReport | None = None) -> Path:
    """Write `weights` as PROJECT.init.safetensors beside the project file (atomically) and set
    project.extra["init"] to it (relative path), with the source and the report's summary, so that training
    starts from them. The project file itself is not written: save the project afterwards. Returns the path."""
    from .runs import save_weights

    path = init_weights_path(project_path)
    try:
        save_weights(dict(weights), path)
    except OSError as e:
        raise ProjectError(f"the starting weights cannot be written ({e.strerror or e})", path=str(path)) from None
    entry: dict[str, Any] = {"weights": path.name, "tensors": len(weights)}
    if source is not None:
        entry["source"] = str(source)
    if report is not None:
        entry["report"] = report.summary
    project.extra[INIT_KEY] = entry
    return path


def clear_init_weights(project: "Project") -> dict[str, Any] | None:
    """Stop starting from transferred weights; returns the previous setting (to put back for an undo). The file
    stays on disk."""
    return project.extra.pop(INIT_KEY, None)


def init_setting(project: "Project", base_dir: str | os.PathLike | None = None) -> Path | None:
    """The file of the project's starting weights (project.extra["init"]["weights"], relative to `base_dir`), or
    None when it has none. DataError for a malformed setting."""
    entry = project.extra.get(INIT_KEY)
    if not entry:
        return None
    weights = entry.get("weights") if isinstance(entry, dict) else None
    if not isinstance(weights, str) or not weights:
        raise DataError(f"the project's starting weights setting ({INIT_KEY!r}) must name a .safetensors file under "
                        f"\"weights\", not {entry!r}: transfer weights again, or remove the setting")
    p = Path(weights)
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return p


def load_init_weights(project: "Project", model: "nn.Module", *, base_dir: str | os.PathLike | None = None) -> str:
    """Load the project's starting weights into `model` (freshly built): only the tensors whose name and shape
    fit; returns a note saying how many. DataError naming the file when it is missing or unreadable."""
    import torch

    path = init_setting(project, base_dir)
    if path is None:
        return ""
    if not path.is_file():
        raise DataError(f"the starting weights {path} (set by a transfer into this project) are missing: put the "
                        f"file back beside the project, transfer the weights again, or remove the starting weights")
    state = _read_safetensors(path)
    target = model.state_dict()
    fits = [k for k, v in state.items() if k in target and tuple(v.shape) == tuple(target[k].shape)]
    with torch.no_grad():
        for k in fits:
            target[k].copy_(state[k])
    note = f"started from {len(fits)} of {_plural(len(target), 'tensor')} in {path.name}"
    skipped = len(state) - len(fits)
    if skipped:
        note += f" ({skipped} no longer fit this network and were left out)"
    return note


# ---- the head ---------------------------------------------------------------------------------------------

def replace_head(graph: "Graph", num_classes: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Give the network `num_classes` outputs: from each output node, walk back through single-input layers
    without an output size (activations, Softmax, Dropout, Flatten, pooling ...) to the first Linear or
    convolution, and set its out_features / out_channels. MUTATES `graph` (through set_params, so its events
    fire) and returns [(node_id, old params, new params)], only the parameters changed, so an app can record it
    as one undoable edit (set_params(node_id, old) undoes each); [] when the count is already right. Raises
    GraphError when no such layer decides the outputs, or when the new size would break a later layer (then the
    graph is left as it was)."""
    from .shapes import analyze

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise GraphError(f"the number of classes must be a whole number from 1, not {num_classes!r}")
    sinks = graph.sink_nodes()
    if not sinks or all(graph.nodes[s].type == "Input" for s in sinks):
        raise GraphError("the network has no output layer: add a Linear (or a convolution) after the Input")
    heads: list[tuple[str, str]] = []
    for sink in sinks:
        nid = sink
        while True:
            node = graph.nodes[nid]
            param = next((k for k in OUTPUT_PARAMS if k in node.params), None)
            if param is not None:
                break
            ins = graph.inputs_of(nid)
            if node.type == "Input" or len(ins) != 1:
                why = "the Input" if node.type == "Input" else f"{nid} ({node.type}), which merges several inputs" \
                    if ins else f"{nid} ({node.type})"
                raise GraphError(f"no Linear or convolution decides the number of outputs of {sink}: walking back "
                                 f"from it reaches {why} first. Add a Linear with the number of classes as the "
                                 f"last layer")
            nid = ins[0]
        if (nid, param) not in heads:
            heads.append((nid, param))
    changes: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for nid, param in heads:
        if graph.nodes[nid].params[param] != num_classes:
            old = graph.set_params(nid, {param: num_classes})
            changes.append((nid, old, {param: num_classes}))
    broken = analyze(graph).errors if changes else []
    if broken:
        for nid, old, _new in reversed(changes):
            graph.set_params(nid, old)
        first = broken[0]
        raise GraphError(f"{num_classes} outputs from {', '.join(n for n, _p in heads)} would break {first.node_id} "
                         f"({first.type}): {first.error}. Change that layer first")
    return changes


# ---- the command line (wired into engine/cli.py) ---------------------------------------------------------

def add_transfer_parser(subparsers: Any) -> argparse.ArgumentParser:
    """`layerloom transfer PROJECT SOURCE`: match SOURCE's weights to the project's network, write them beside the
    project as its starting weights and record them in the project."""
    p = subparsers.add_parser(
        "transfer", help="start a project's training from weights trained elsewhere (transfer learning)",
        description="Match the weights of SOURCE (a .safetensors, .pt/.pth state dict, .onnx or .layerloom file, or "
                    "a run folder) to the project's network: by name, then by shape. Prints what was loaded and what "
                    "kept its initial values, writes PROJECT.init.safetensors beside the project and records it in "
                    "the project, so training starts from it. --freeze and --lr-factor set the layers' training "
                    "flags; --classes sets the number of outputs of the last layer first. Exit status 0 when at "
                    "least one tensor was loaded, 1 when none fits, 2 when a file cannot be read.")
    p.add_argument("project", help="the .layerloom project to start from the weights (it is rewritten)")
    p.add_argument("source", help="where the weights come from")
    p.add_argument("--layers", help="only these layers (node ids, comma-separated) take weights")
    p.add_argument("--name-only", action="store_true", help="match by name only, never by shape")
    p.add_argument("--freeze", help="freeze these layers (node ids, comma-separated; 'loaded' = every layer that "
                                    "took weights)")
    p.add_argument("--lr-factor", action="append", default=[], metavar="NODE=FACTOR",
                   help="multiply a layer's learning rate (e.g. conv2d_1=0.1; 'loaded=0.1' for every layer that "
                        "took weights); may be repeated")
    p.add_argument("--classes", type=int, help="set the number of outputs of the last Linear/convolution first")
    p.add_argument("--dry-run", action="store_true", help="print the report only; write nothing")
    p.set_defaults(func=cmd_transfer)
    return p


def _ids(text: str | None, loaded: list[str]) -> list[str]:
    out: list[str] = []
    for part in (text or "").split(","):
        part = part.strip()
        if part == "loaded":
            out += [x for x in loaded if x not in out]
        elif part and part not in out:
            out.append(part)
    return out


def cmd_transfer(args: argparse.Namespace) -> int:
    from .project import load_project, save_project

    project_path = Path(args.project)
    try:
        project = load_project(project_path)
        if args.classes is not None:
            for nid, old, new in replace_head(project.graph, args.classes):
                print(f"{nid}: {', '.join(f'{k} {old[k]} → {v}' for k, v in new.items())}")
        layers = _ids(args.layers, []) or None
        weights, report = transfer_to_project(project, args.source, base_dir=Path.cwd(), layers=layers,
                                              by_shape=not args.name_only)
    except (DataError, ProjectError) as e:
        print(f"layerloom: cannot transfer: {e}", file=sys.stderr)
        return 2
    except LayerLoomError as e:
        print(f"layerloom: cannot transfer: {e}", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line)
    if not report.matched:
        return 1
    loaded = list(dict.fromkeys(_layer_of(t) for t, _s, _h in report.matched))
    try:
        for nid in _ids(args.freeze, loaded):
            project.graph.set_training_flags(nid, frozen=True)
        for item in args.lr_factor:
            nids, _, factor = item.partition("=")
            try:
                value = float(factor)
            except ValueError:
                raise GraphError(f"--lr-factor takes NODE=FACTOR, e.g. conv2d_1=0.1, not {item!r}") from None
            for nid in _ids(nids, loaded):
                project.graph.set_training_flags(nid, lr_factor=value)
    except GraphError as e:
        print(f"layerloom: cannot transfer: {e}", file=sys.stderr)
        return 1
    if args.dry_run:
        return 0
    try:
        path = save_init_weights(project, project_path, weights, source=args.source, report=report)
        save_project(project_path, project)
    except LayerLoomError as e:
        print(f"layerloom: cannot transfer: {e}", file=sys.stderr)
        return 2
    print(f"starting weights: {path}; training {project_path.name} now starts from them")
    frozen = project.graph.frozen_nodes()
    if frozen:
        print(f"frozen: {', '.join(frozen)}")
    return 0


__all__ = ["INIT_KEY", "TRAINED_KEY", "TransferReport", "add_transfer_parser", "clear_init_weights", "cmd_transfer",
           "init_setting", "init_weights_path", "load_init_weights", "load_weights_file", "match_weights",
           "matched_weights", "project_weights_path", "replace_head", "save_init_weights", "transfer_into",
           "transfer_to_project"]
