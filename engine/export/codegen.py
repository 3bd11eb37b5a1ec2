"""generate_code: a graph's network as a standalone, readable PyTorch script (one nn.Module class and `load`).

The script imports only torch (and safetensors inside `load`); its submodules are named by node id, so the
project's safetensors weights load with strict=True. Constructor arguments are read from the modules the engine
builds, so the script and the engine cannot disagree; defaults are left out.

A block becomes a class of its own (named after its definition: res_block → ResBlock), written once and used by
every instance built alike, nested blocks included, so the weights keep their names (res_block_1.conv2d_1.weight).
A custom layer's code is copied in as written (its imports of torch, nn, F and math joined to the script's); ruff's
complaints about that code are reported but do not stop the export.
"""
from __future__ import annotations

import inspect
import keyword
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report import ExportError

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

    from ..graph import Graph

RECURRENT = ("RNN", "LSTM", "GRU")
INLINE = ("Add", "Multiply", "Concat", "Reshape", "Permute", "Scale", "Pick")  # tensor expressions, no submodule
RESERVED = {"x", "self", "torch", "nn", "F", "math", "load", "model", "path", "device", "h", "_"}
# Arguments written by keyword even when PyTorch has no default for them (they read better that way).
BY_KEYWORD = {"kernel_size"}
# Arguments PyTorch expands to tuples (3 → (3, 3)); written back as one number when all entries agree.
TUPLES = {"kernel_size", "stride", "padding", "dilation", "output_padding", "output_size"}

_HELPER = '''class {kind}LastHidden(nn.{kind}):
    """nn.{kind} that returns only the final hidden state of its last layer: (N, hidden_size), or
    (N, 2 * hidden_size) when bidirectional (both directions side by side)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, {state} = super().forward(x)
        return torch.cat((h[-2], h[-1]), dim=-1) if self.bidirectional else h[-1]
'''


def class_name_for(name: str | None) -> str:
    """A CamelCase class name from a project name: cnn_mnist → CnnMnist."""
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", name or "") if p]
    cls = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    return cls if cls[0].isalpha() else f"Net{cls}"


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["N", *map(str, shape)]) + ")"


def _value(v: Any) -> str:
    if isinstance(v, tuple):
        return "(" + ", ".join(_value(e) for e in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, list):
        return "[" + ", ".join(_value(e) for e in v) + "]"
    return repr(v)


def _squeeze(v: Any) -> Any:
    return v[0] if isinstance(v, (tuple, list)) and v and all(e == v[0] for e in v) else v


def _arguments(module: "nn.Module", kind: str | None) -> str:
    """PyTorch constructor arguments that rebuild `module`, defaults left out."""
    import torch.nn as nn

    if kind is not None:  # recurrent: nn.RNNBase takes *args, so its arguments are listed here
        names = [("input_size", inspect.Parameter.empty), ("hidden_size", inspect.Parameter.empty),
                 ("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                 ("bidirectional", False)]
        if kind == "RNN":
            names.append(("nonlinearity", "tanh"))
    else:
        sig = inspect.signature(type(module).__init__)
        names = [(p.name, p.default) for p in list(sig.parameters.values())[1:]
                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("device", "dtype")
                 and not p.name.startswith("_")]
    pos, kw = [], []
    pool = isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd))
    for name, default in names:
        if name == "bias" and not isinstance(getattr(module, "bias", None), bool):
            value = getattr(module, "bias", None) is not None
        elif name == "nonlinearity":
            value = module.mode[4:].lower()  # RNN_TANH → tanh
        elif hasattr(module, name):
            value = getattr(module, name)
        else:
            raise ExportError(f"cannot write {type(module).__name__} as code: its argument {name!r} is not "
                              f"readable from the module")
        if name in TUPLES:
            value = _squeeze(value)
        if pool and name == "stride" and value == _squeeze(module.kernel_size):
            continue  # PyTorch's default stride for pooling is the kernel size
        if default is inspect.Parameter.empty:
            (kw if name in BY_KEYWORD else pos).append((name, value))
        elif not (type(value) is type(default) and value == default) and not (default is None and value is None):
            if isinstance(default, float) and isinstance(value, (int, float)) and float(value) == default:
                continue
            kw.append((name, value))
    return ", ".join([_value(v) for _, v in pos] + [f"{n}={_value(v)}" for n, v in kw])


def generate_code(graph: Any, class_name: str | None = None) -> str:
    """The standalone Python source of the graph's network (a Graph or a Project). Raises ExportError when the
    graph cannot be built or a node id cannot be a Python name."""
    from .core import make_model

    return _generate(graph, make_model(getattr(graph, "graph", graph)), class_name)


def _doc_text(text: str, indent: str) -> list[str]:
    text = text.replace("\\", "/").replace('"""', "'''")
    return textwrap.wrap(text, 116 - len(indent)) if text.strip() else []


STANDARD_IMPORTS = {("torch", None): "torch", ("torch.nn", "nn"): "nn", ("torch.nn.functional", "F"): "F",
                    ("math", None): "math"}
STANDARD_FROM = {("torch", "nn", None): "nn", ("torch.nn", "functional", "F"): "F"}


class _Context:
    """What the classes of one script share: helper classes, block classes (one per definition and construction),
    and the class names taken."""

    def __init__(self, taken: set[str]):
        self.helpers: list[str] = []
        self.classes: list[str] = []
        self.by_key: dict[tuple, str] = {}
        self.taken = set(taken)

    def name(self, base: str) -> str:
        name, n = base, 2
        while name in self.taken:
            name, n = f"{base}{n}", n + 1
        self.taken.add(name)
        return name


def _custom_classes(g: "Graph", prefix: str = "") -> dict[str, tuple[str, str]]:
    """{class name: (code, node path)} of every Custom node, inside blocks too; ExportError for one class name
    defined by two different pieces of code."""
    from ..blocks import inner

    out: dict[str, tuple[str, str]] = {}
    for nid, node in g.nodes.items():
        found: dict[str, tuple[str, str]] = {}
        if node.type == "Custom":
            found = {node.params["class_name"]: (node.params["code"], prefix + nid)}
        elif node.type == "Block":
            found = _custom_classes(inner(node.params).graph, f"{prefix}{nid}.")
        for cls, (code, path) in found.items():
            if cls in out and out[cls][0] != code:
                raise ExportError(f"the custom layers {out[cls][1]} and {path} both define a class {cls} with "
                                  f"different code: rename the class in one of them", node_id=path.split(".")[0])
            out.setdefault(cls, (code, path))
    return out


def _strip_standard_imports(code: str) -> tuple[str, set[str]]:
    """The custom code without its top-level imports of torch, nn, F and math (the script imports them once at
    its top), and the names among torch, nn, F and math that it uses."""
    import ast

    tree = ast.parse(code)
    drop: set[int] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            ok = all(STANDARD_IMPORTS.get((a.name, a.asname)) for a in stmt.names)
        elif isinstance(stmt, ast.ImportFrom):
            ok = stmt.level == 0 and all(STANDARD_FROM.get((stmt.module, a.name, a.asname)) for a in stmt.names)
        else:
            ok = False
        if ok:
            drop.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in ("torch", "nn", "F", "math")}
    lines = [line for i, line in enumerate(code.splitlines(), 1) if i not in drop]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(line.rstrip() for line in lines), used


def _mha_arguments(module: "nn.Module") -> str:
    """nn.MultiheadAttention's arguments for a MultiheadAttentionLayer (batch first), defaults left out."""
    args = [str(module.embed_dim), str(module.num_heads)]
    if module.dropout:
        args.append(f"dropout={module.dropout!r}")
    if module.in_proj_bias is None:
        args.append("bias=False")
    if module.kdim != module.embed_dim:
        args.append(f"kdim={module.kdim}")
    if module.vdim != module.embed_dim:
        args.append(f"vdim={module.vdim}")
    args.append("batch_first=True")
    return ", ".join(args)


def _check_names(g: "Graph", prefix: str = "") -> None:
    from ..blocks import inner

    for nid, node in g.nodes.items():
        if not nid.isidentifier() or keyword.iskeyword(nid) or nid in RESERVED:
            raise ExportError(f"node id {prefix + nid!r} cannot be a Python name in the generated code; rename the "
                              f"node", node_id=(prefix + nid).split(".")[0])
        if node.type == "Block":
            _check_names(inner(node.params).graph, f"{prefix}{nid}.")


def _network(g: "Graph", analysis: Any, model: "nn.Module", inputs: list[str], sinks: list[str], ctx: _Context,
             comments: bool = True) -> tuple[dict[str, str], list[str], list[str], str]:
    """The code of one network (the model, or one block): the names of its values, the __init__ lines, the
    forward lines and the returned expression."""
    steps = [nid for nid in analysis.order if g.nodes[nid].type not in ("Input", "BlockInput", "BlockOutput")]
    last_use: dict[str, int] = {}
    uses: dict[str, int] = {}
    for i, nid in enumerate(steps):
        for s in g.inputs_of(nid):
            last_use[s] = i
            uses[s] = uses.get(s, 0) + 1
    for s in sinks:
        last_use[s] = len(steps)
        uses[s] = uses.get(s, 0) + 1

    names: dict[str, str] = {}
    holder = None  # the node whose value the variable x holds
    if len(inputs) == 1 and uses.get(inputs[0], 0) == 1:
        names[inputs[0]], holder = "x", inputs[0]
    else:
        names.update({nid: nid for nid in inputs})

    def note(nid: str) -> str:
        if not comments:
            return ""
        info = analysis.nodes[nid]
        if info.outputs is not None and len(info.outputs) > 1:
            return "  # " + ", ".join(_shape(t.shape) for t in info.outputs)
        return f"  # {_shape(info.shape)}"

    init: list[str] = []
    body: list[str] = []
    for i, nid in enumerate(steps):
        node = g.nodes[nid]
        kind = node.type
        args = [names[s] for s in g.inputs_of(nid)]
        module = model._modules[nid]
        free = holder is None or last_use.get(holder, -1) <= i
        # x carries a chain: a value used once, by the very next line; values kept for later get their node id.
        if uses.get(nid, 0) == 1 and free and last_use[nid] == i + 1:
            out, holder = "x", nid
        else:
            out = nid
        names[nid] = out
        if kind in ("Add", "Multiply", "Scale"):
            expr = (" + " if kind == "Add" else " * ").join(args)
        elif kind == "Concat":
            expr = f"torch.cat(({', '.join(args)}), dim={module.dim})"
        elif kind == "Reshape":
            expr = f"{args[0]}.reshape({args[0]}.shape[0], {', '.join(map(str, module.shape))})"
        elif kind == "Permute":
            expr = f"{args[0]}.permute({', '.join(map(str, module.dims))})"
        elif kind == "Pick":
            expr = f"{args[0]}[{module.index}]"
        elif kind == "MultiheadAttention":
            q = args[0]
            k = args[1] if len(args) > 1 else q
            v = args[2] if len(args) > 2 else k
            init.append(f"self.{nid} = nn.MultiheadAttention({_mha_arguments(module)})")
            body.append(f"{out}, _ = self.{nid}({q}, {k}, {v}, need_weights=False){note(nid)}")
            continue
        elif kind in RECURRENT:
            if module.return_sequences:
                ctor = f"nn.{kind}"
                out_target = f"{out}, _"
            else:
                ctor = f"{kind}LastHidden"
                out_target = out
                if ctor not in "".join(ctx.helpers):
                    state = "(h, _)" if kind == "LSTM" else "h"
                    ctx.helpers.append(_HELPER.format(kind=kind, state=state))
            init.append(f"self.{nid} = {ctor}({_arguments(module, kind)})")
            body.append(f"{out_target} = self.{nid}({args[0]}){note(nid)}")
            continue
        elif kind == "Block":
            cls = _block_class(node, module, analysis.nodes[nid].inner, ctx)
            init.append(f"self.{nid} = {cls}()")
            expr = f"self.{nid}({', '.join(args)})"
        elif kind == "Custom":
            from ..custom import _kwargs
            from ..layers import TensorInfo
            ins = [TensorInfo(analysis.nodes[s].shape, analysis.nodes[s].dtype) for s in g.inputs_of(nid)]
            kwargs = _kwargs(type(module), node.params["arguments"], ins)
            init.append(f"self.{nid} = {node.params['class_name']}("
                        f"{', '.join(f'{k}={_value(v)}' for k, v in kwargs.items())})")
            expr = f"self.{nid}({', '.join(args)})"
        else:
            init.append(f"self.{nid} = nn.{type(module).__name__}({_arguments(module, None)})")
            expr = f"self.{nid}({', '.join(args)})"
        body.append(f"{out} = {expr}{note(nid)}")
    return names, init, body, ", ".join(names[s] for s in sinks)


def _block_class(node: Any, module: "nn.Module", analysis: Any, ctx: _Context) -> str:
    """The class of a block instance: one per definition, shared by the instances built alike (another number of
    channels makes a second class, ResBlock2)."""
    from ..blocks import inner

    g = inner(node.params).graph
    inputs, outputs = list(module.input_ids), list(module.output_sources)
    names, init, body, returns = _network(g, analysis, module, inputs, outputs, ctx, comments=False)
    in_args = ", ".join(f"{names[n]}: torch.Tensor" for n in inputs)
    ret_type = "torch.Tensor" if len(outputs) == 1 else f"tuple[{', '.join(['torch.Tensor'] * len(outputs))}]"
    key = (node.params["block"], tuple(init), tuple(body), in_args, returns)
    if key in ctx.by_key:
        return ctx.by_key[key]
    cls = ctx.name(class_name_for(node.params["block"]))
    ctx.by_key[key] = cls
    description = node.params.get("description") or f"The {node.params['block']} block."
    doc = _doc_text(description, "    ")
    lines = [f"class {cls}(nn.Module):"]
    if len(doc) == 1 and len(doc[0]) <= 110:
        lines.append(f'    """{doc[0]}"""')
    else:
        lines += ['    """' + doc[0], *[f"    {line}" for line in doc[1:]], '    """']
    lines += ["", "    def __init__(self) -> None:", "        super().__init__()", *[f"        {x}" for x in init], "",
              f"    def forward(self, {in_args}) -> {ret_type}:", *[f"        {x}" for x in body],
              f"        return {returns}"]
    ctx.classes.append("\n".join(lines) + "\n")
    return cls


CUSTOM_START = "# The custom layer {name} ({path}): its own code, as written."
CUSTOM_END = "# (the end of the custom layer {name})"


def custom_code_lines(code: str) -> list[range]:
    """The line numbers (from 1) of a generated script that hold custom layers' own code."""
    out, start = [], None
    for i, line in enumerate(code.split("\n"), 1):
        if line.startswith("# The custom layer ") and line.endswith(": its own code, as written."):
            start = i + 1
        elif start is not None and line.startswith("# (the end of the custom layer "):
            out.append(range(start, i))
            start = None
    return out


def _generate(graph: Any, model: "nn.Module", class_name: str | None = None) -> str:
    """The script (see generate_code)."""
    from ..shapes import analyze

    project_name = getattr(graph, "name", None)
    description = getattr(graph, "description", None) or ""
    g: Graph = getattr(graph, "graph", graph)
    analysis = analyze(g)
    _check_names(g)
    customs = _custom_classes(g)
    cls = class_name or class_name_for(project_name)
    if not cls.isidentifier() or keyword.iskeyword(cls):
        raise ExportError(f"{cls!r} cannot be a Python class name")
    if cls in customs:
        cls = f"{cls}Model"
    ctx = _Context({cls, *customs, *(f"{k}LastHidden" for k in RECURRENT)})

    inputs, sinks = list(model.input_ids), list(model.output_ids)
    names, init, body, returns = _network(g, analysis, model, inputs, sinks, ctx)

    in_args = ", ".join(f"{names[n]}: torch.Tensor" for n in inputs)
    in_shapes = ", ".join(f"{names[n]} {_shape(model.input_shapes[n])}"
                          + (" int64 token ids" if model.input_dtypes[n] == "int64" else "") for n in inputs)
    out_shapes = ", ".join(_shape(model.output_shapes[s]) for s in sinks)
    ret_type = "torch.Tensor" if len(sinks) == 1 else f"tuple[{', '.join(['torch.Tensor'] * len(sinks))}]"
    project = f'the LayerLoom project "{project_name}"' if project_name else "a LayerLoom graph"
    example = ", ".join(f"torch.randn{_shape(model.input_shapes[n]).replace('N', '2')}"
                        if model.input_dtypes[n] != "int64"
                        else f"torch.zeros({_shape(model.input_shapes[n]).replace('N', '2')}, dtype=torch.long)"
                        for n in inputs)

    sources: list[tuple[str, str, str]] = []  # (class, node path, code)
    used: set[str] = set()
    for name, (code, path) in customs.items():
        text, names_used = _strip_standard_imports(code)
        used |= names_used
        sources.append((name, path, text))

    lines = textwrap.wrap(f'"""{cls}: the network of {project}, written out as plain PyTorch by LayerLoom.', 116)
    lines.append("")
    if description:
        lines += _doc_text(description, "") + [""]
    lines += [
        "Needs only torch (and safetensors to read weights). Submodules are named by node id, so the project's",
        "weights (a .safetensors file from LayerLoom) load with strict=True:",
        "",
        "    model = load(\"weights.safetensors\")",
        f"    y = model({example})",
    ]
    if sources:
        lines += ["", "The custom layers' classes are the project's own code, as written in LayerLoom."]
    lines.append('"""')
    if "math" in used:
        lines += ["import math", ""]
    lines.append("import torch")
    if "F" in used:
        lines.append("import torch.nn.functional as F")
    lines += ["from torch import nn", ""]
    for h in ctx.helpers:
        lines += ["", *h.rstrip("\n").split("\n"), ""]
    for name, path, text in sources:
        lines += ["", CUSTOM_START.format(name=name, path=path), *text.split("\n"), CUSTOM_END.format(name=name), ""]
    for c in ctx.classes:
        lines += ["", *c.rstrip("\n").split("\n"), ""]
    lines += [
        "",
        f"class {cls}(nn.Module):",
        f'    """forward({", ".join(names[n] for n in inputs)}): {in_shapes} → {out_shapes}."""',
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *[f"        {line}" for line in init],
        "",
        f"    def forward(self, {in_args}) -> {ret_type}:",
        *[f"        {line}" for line in body],
        f"        return {returns}",
        "",
        "",
        f'def load(path: str, device: str = "cpu") -> {cls}:',
        f'    """{cls} with the weights of a LayerLoom safetensors file, in evaluation mode."""',
        "    from safetensors.torch import load_file",
        "",
        f"    model = {cls}()",
        "    model.load_state_dict(load_file(path, device=device), strict=True)",
        "    return model.to(device).train(False)  # evaluation mode: dropout off, BatchNorm frozen",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ the check

# Run in a fresh interpreter (-I: no PYTHONPATH, no current folder; -B: no __pycache__ next to the script): loads
# the generated file by path, builds the model with its load(), runs the batches, writes the outputs.
_RUNNER = """
import importlib.util
import sys

import torch
from safetensors.torch import load_file, save_file

code, weights, batches, out, n_batches, n_inputs = sys.argv[1:7]
spec = importlib.util.spec_from_file_location("layerloom_generated", code)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.load(weights)
data = load_file(batches)
outputs = {}
with torch.no_grad():
    for j in range(int(n_batches)):
        y = model(*[data[f"{j}_{k}"] for k in range(int(n_inputs))])
        for k, t in enumerate(y if isinstance(y, tuple) else (y,)):
            outputs[f"{j}_{k}"] = t.contiguous()
save_file(outputs, out)
engine = sorted(m for m in sys.modules if m == "engine" or m.startswith("engine."))
if engine:
    sys.exit("the generated code imported the LayerLoom engine: " + ", ".join(engine[:3]))
"""

RUFF_RULES = ("--select", "E,F,W,I", "--line-length", "120")


def ruff_path() -> str | None:
    """The ruff next to this interpreter (the project's virtual environment), else one on PATH."""
    here = Path(sys.executable).parent / ("ruff.exe" if sys.platform == "win32" else "ruff")
    return str(here) if here.is_file() else shutil.which("ruff")


def check_style(path: str | Path) -> str | None:
    """None when ruff passes the file (rules E, F, W, I; lines up to 120), else ruff's report. ExportError when
    ruff cannot be found."""
    ruff = ruff_path()
    if ruff is None:
        raise ExportError("ruff was not found next to the Python interpreter or on PATH, so the generated code "
                          "could not be checked; install ruff (pip install ruff)")
    done = subprocess.run([ruff, "check", "--no-cache", "--isolated", *RUFF_RULES, str(path)],
                          capture_output=True, text=True, timeout=120)
    return None if done.returncode == 0 else (done.stdout + done.stderr).strip()


def run_generated(path: str | Path, state: dict, batches: list[tuple], timeout: float = 300) -> list[list]:
    """Runs the generated file in a fresh Python process with `state` as its weights on each batch (a tuple of
    tensors, one per Input); its outputs per batch. ExportError when the process fails."""
    from safetensors.torch import load_file

    from .weights import write_safetensors

    n_inputs = len(batches[0])
    with tempfile.TemporaryDirectory(prefix="layerloom-codegen-") as tmp:
        folder = Path(tmp)
        write_safetensors(state, folder / "weights.safetensors")
        write_safetensors({f"{j}_{k}": t for j, b in enumerate(batches) for k, t in enumerate(b)},
                          folder / "batches.safetensors")
        (folder / "runner.py").write_text(_RUNNER, encoding="utf-8")
        args = [sys.executable, "-I", "-B", str(folder / "runner.py"), str(Path(path).resolve()),
                str(folder / "weights.safetensors"), str(folder / "batches.safetensors"),
                str(folder / "outputs.safetensors"), str(len(batches)), str(n_inputs)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise ExportError(f"the generated code did not finish within {timeout:.0f} s") from None
        if done.returncode != 0:
            text = (done.stderr or done.stdout).strip()
            print(text, file=sys.stderr)  # kept by the export's capture, shown with --verbose
            last = text.splitlines()[-1] if text else f"exit status {done.returncode}"
            raise ExportError(f"the generated code failed when run in a fresh Python process: {last[:300]}")
        outs = load_file(str(folder / "outputs.safetensors"))
    return [[outs[f"{j}_{k}"] for k in range(sum(1 for key in outs if key.startswith(f"{j}_")))]
            for j in range(len(batches))]


class PythonExport:
    """A written script: `run_many(batches)` runs it on all batches in one fresh process; `notes` for the report."""

    def __init__(self, path: Path, state: dict, class_name: str, style: str | None, custom_style: str = ""):
        self.path, self.state = path, state
        self.notes = [f"a standalone PyTorch script: class {class_name} (submodules named by node id) and "
                      f"load(path) for the project's .safetensors weights; it imports only torch and safetensors. "
                      f"Checked by running it in a fresh Python process" + (" and with ruff" if style else "")]
        if custom_style:
            self.notes.append(f"ruff finds style problems in the custom layers' own code (left as written): "
                              f"{custom_style}")

    def run(self, inputs: tuple) -> list:
        return self.run_many([inputs])[0]

    def run_many(self, batches: list[tuple]) -> list[list]:
        return run_generated(self.path, self.state, batches)


def export_python(graph: Any, model: "nn.Module", path: Path, class_name: str | None = None) -> PythonExport:
    """Writes the generated code for `graph` to `path` and checks its style with ruff (ExportError if it fails);
    the returned object runs it against the weights of `model`."""
    code = _generate(graph, model, class_name)
    custom_lines = custom_code_lines(code)
    path.write_text(code, encoding="utf-8")
    problems = check_style(path)
    custom_style = ""
    if problems is not None:
        print(problems, file=sys.stderr)
        found = [(int(m.group(1)), m.group(0)) for m in re.finditer(r":(\d+):\d+: [A-Z]+\d+[^\n]*", problems)]
        ours = [text for line, text in found if not any(line in r for r in custom_lines)]
        if ours or not found:
            first = next((line for line in problems.splitlines() if line.strip()), "")
            raise ExportError(f"the generated code does not pass ruff (E, F, W, I; lines up to 120): "
                              f"{(ours[0].lstrip(':') if ours else first)[:300]}")
        custom_style = "; ".join(text.lstrip(":") for _, text in found[:3]) + (" …" if len(found) > 3 else "")
    cls = re.search(r"^class (\w+)\(nn\.Module\):\n    \"\"\"forward\(", code, re.M)
    return PythonExport(path, model.state_dict(), cls.group(1) if cls else "Model", "ruff", custom_style)
