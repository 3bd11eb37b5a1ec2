"""Custom layers: untrusted code never runs (a marker file proves it), trusted code gives its output shape through a
meta-device run, errors (syntax, __init__, forward, wrong output) name the line, the next node reports a shape that
does not fit, building, training and exports (the PyTorch script carries the class), and --trust-custom-code."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import BuildError, Graph, ParamError, analyze, build_model
from engine import custom as custom_layers
from engine.blocks import group_into_block
from engine.cli import main
from engine.custom import UNTRUSTED, code_hash, is_trusted, trust, untrust, untrusted_code
from engine.export import ExportError, export_model, generate_code
from engine.project import Project, save_project
from engine.templates import load_template

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = ("this project holds custom code that has not been trusted: open it in the app and press Trust, or pass "
           "--trust-custom-code")

GATE = '''import math

import torch
from torch import nn


class Gate(nn.Module):
    """x · w · scale + offset, w learned per feature."""

    def __init__(self, in_shape, scale: float = 1.0, offset: int = 0):
        super().__init__()
        self.scale, self.offset = scale, offset
        self.w = nn.Parameter(torch.linspace(0.5, 1.5, in_shape[-1]))

    def forward(self, x):
        return F.relu(x) * self.w * self.scale + self.offset + 0 * math.pi
'''


def marking(marker: Path) -> str:
    """Code that writes the marker file when the module runs, when the class is built and when forward runs."""
    return f'''from pathlib import Path

Path({str(marker)!r}).write_text("module")


class Marked(nn.Module):
    def __init__(self):
        super().__init__()
        Path({str(marker)!r}).write_text("init")

    def forward(self, x):
        Path({str(marker)!r}).write_text("forward")
        return x * 2
'''


@pytest.fixture(autouse=True)
def trust_file(tmp_path, monkeypatch):
    path = tmp_path / "config" / "trusted.json"
    monkeypatch.setenv("LAYERLOOM_TRUST_FILE", str(path))
    custom_layers.set_trust_all(False)
    yield path
    custom_layers.set_trust_all(False)


def one_custom(code: str, class_name: str, arguments: dict | None = None, shape=(6,), head: bool = True) -> Graph:
    g = Graph()
    i = g.add_node("Input", {"shape": list(shape)})
    c = g.add_node("Custom", {"code": code, "class_name": class_name, "arguments": arguments or {}})
    g.connect(i, c)
    if head:
        g.connect(c, g.add_node("Linear", {"out_features": 2}))
    return g


# ---- trust ---------------------------------------------------------------------------------------------------------

def test_untrusted_code_runs_nowhere_and_says_how_to_trust_it(tmp_path):
    marker = tmp_path / "MARKER"
    g = one_custom(marking(marker), "Marked")
    info = analyze(g).nodes["custom_1"]
    assert str(info.error) == MESSAGE and info.error.reason == UNTRUSTED
    assert analyze(g).nodes["linear_1"].error.waiting_on == "custom_1"
    with pytest.raises(BuildError, match="has not been trusted"):
        build_model(g)
    with pytest.raises(ExportError, match="has not been trusted"):
        export_model(g, None, "python", tmp_path / "x.py")
    with pytest.raises(ExportError, match="has not been trusted"):
        generate_code(g)
    inside = Graph.from_dict(g.to_dict())
    bid, _ = group_into_block(inside, ["custom_1"], name="wrapper")
    assert str(analyze(inside).nodes[bid].error) == f"inside {bid}: custom_1: {MESSAGE}"
    assert untrusted_code(inside) == [(f"{bid}.custom_1", code_hash(marking(marker)))]
    assert not marker.exists()


def test_trusted_code_runs_and_the_trust_is_remembered(tmp_path, trust_file):
    marker = tmp_path / "MARKER"
    code = marking(marker)
    h = code_hash(code)
    assert len(h) == 64 and not is_trusted(h)
    trust(h)
    assert is_trusted(h) and json.loads(trust_file.read_text())["trusted"] == [h]
    g = one_custom(code, "Marked")
    info = analyze(g).nodes["custom_1"]
    assert info.ok and info.shape == (6,) and info.params == 0
    assert marker.read_text() == "forward"  # the module, __init__ and forward ran (forward on the meta device)
    untrust(h)
    assert not is_trusted(h) and str(analyze(g).nodes["custom_1"].error) == MESSAGE
    custom_layers.set_trust_all(True)
    assert is_trusted(h) and analyze(g).ok


# ---- shapes and errors -----------------------------------------------------------------------------------------------

def test_output_shape_comes_from_a_meta_device_run():
    code = '''class Huge(nn.Module):
    def __init__(self, in_shape, keep: int = 3):
        super().__init__()
        self.keep = keep
        self.table = nn.Parameter(torch.zeros(50_000, 50_000))  # 10 GB if it were real

    def forward(self, x):
        big = torch.zeros(x.shape[0], 100_000, 100_000)  # 40 GB per sample if it were real
        return x[:, : self.keep] + big[:, 0, : self.keep] * in_shape_sum(x)


def in_shape_sum(x):
    return x.shape[1]
'''
    trust(code_hash(code))
    info = analyze(one_custom(code, "Huge", {"keep": 4})).nodes["custom_1"]
    assert info.ok and info.shape == (4,) and info.params == 50_000 * 50_000 and info.memory == 16


@pytest.mark.parametrize("code, words", [
    ("class Bad(nn.Module):\n    def forward(self, x)\n        return x\n",
     "the code has a syntax error on line 2: expected ':'"),
    ("class Bad(nn.Module):\n    def __init__(self):\n        super().__init__()\n        raise ValueError('no')\n\n"
     "    def forward(self, x):\n        return x\n", "Bad(…) failed on line 4: ValueError: no"),
    ("class Bad(nn.Module):\n    def forward(self, x):\n        y = x * 2\n        return y.reshape(3, 7, -1)\n",
     "Bad.forward failed on line 4: RuntimeError: shape '[3, 7, -1]' is invalid"),
    ("class Bad(nn.Module):\n    def forward(self, x):\n        return x, x\n",
     "Bad.forward must return one tensor, but it returned tuple"),
    ("class Bad(nn.Module):\n    def forward(self, x):\n        return x.sum()\n",
     "Bad.forward must keep the batch as the first dimension"),
    ("class Bad(nn.Module):\n    def forward(self, x):\n        return x.double()\n", "returned float64 values"),
    ("class Bad(nn.Module):\n    def forward(self, x):\n        return x * float(x.sum().item())\n",
     "Bad.forward failed on line 3: RuntimeError: Tensor.item() cannot be called on meta tensors"),
    ("class Other(nn.Module):\n    pass\n", "the code defines no class 'Bad' (it defines Other)"),
    ("x = 1 / 0\n", "running the code failed on line 1: ZeroDivisionError"),
])
def test_errors_in_the_code_are_the_nodes_shape_error_with_the_line(code, words):
    trust(code_hash(code))
    info = analyze(one_custom(code, "Bad")).nodes["custom_1"]
    assert not info.ok and words in str(info.error), str(info.error)
    assert info.error.hint and info.error.node_id == "custom_1"
    if "line" in words:
        assert f"fix line {words.split('line ')[1][0]}" in info.error.hint


def test_a_shape_that_does_not_fit_is_the_next_nodes_error():
    code = "class Grid(nn.Module):\n    def forward(self, x):\n        return x.reshape(x.shape[0], 2, 3, 1)\n"
    trust(code_hash(code))
    a = analyze(one_custom(code, "Grid"))
    assert a.nodes["custom_1"].ok and a.nodes["custom_1"].shape == (2, 3, 1)
    assert a.nodes["linear_1"].error.waiting_on is None
    assert "Linear needs a flat input (features) but gets (2, 3, 1)" in str(a.nodes["linear_1"].error)


def test_arguments_are_parameters_checked_by_type_and_undone_exactly():
    g = one_custom(GATE, "Gate", {"scale": 2.0, "offset": 1})
    before = g.to_dict()
    old = g.set_params("custom_1", scale=3)  # a whole number for a number: stored as a number
    assert g.nodes["custom_1"].params["arguments"] == {"scale": 3.0, "offset": 1} and set(old) == {"arguments"}
    g.set_params("custom_1", old)
    assert g.to_dict() == before
    with pytest.raises(ParamError, match="offset must be a whole number"):
        g.set_params("custom_1", offset=1.5)
    with pytest.raises(ParamError, match="has no parameter 'bias'"):
        g.set_params("custom_1", bias=True)
    with pytest.raises(ParamError, match="cannot be an argument name"):
        g.set_params("custom_1", arguments={"in_shape": 3})
    with pytest.raises(ParamError, match="class_name"):
        g.set_params("custom_1", class_name="not a name")
    assert g.to_dict() == before


# ---- building, training and exporting --------------------------------------------------------------------------------

def test_a_trusted_custom_layer_builds_trains_and_exports(tmp_path):
    trust(code_hash(GATE))
    g = one_custom(GATE, "Gate", {"scale": 2.0, "offset": 1})
    a = analyze(g)
    assert a.ok and a.nodes["custom_1"].params == 6
    model = build_model(g, seed=0)
    assert list(model.state_dict()) == ["custom_1.w", "linear_1.weight", "linear_1.bias"]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.custom_1.w.detach().clone()
    model(torch.randn(8, 6)).pow(2).mean().backward()
    optimizer.step()
    assert not torch.equal(before, model.custom_1.w)
    state = model.state_dict()
    for fmt, suffix in [("onnx", ".onnx"), ("python", ".py")]:
        report = export_model(g, state, fmt, tmp_path / f"gate{suffix}")
        assert report.check_passed, fmt
    code = (tmp_path / "gate.py").read_text(encoding="utf-8")
    assert "class Gate(nn.Module):" in code and "self.custom_1 = Gate(scale=2.0, offset=1, in_shape=(6,))" in code
    assert code.count("import torch\n") == 1 and "import math\n" in code and "import torch.nn.functional as F" in code
    spec = importlib.util.spec_from_file_location("generated_gate", tmp_path / "gate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.Model()
    generated.load_state_dict(state, strict=True)
    x = torch.randn(3, 6)
    with torch.no_grad():
        assert torch.equal(generated.train(False)(x), model.train(False)(x))


def test_onnx_refuses_a_custom_layer_it_cannot_carry_and_says_why(tmp_path):
    code = "class Bessel(nn.Module):\n    def forward(self, x):\n        return torch.special.bessel_j0(x)\n"
    trust(code_hash(code))
    g = one_custom(code, "Bessel", head=False)
    with pytest.raises(ExportError) as e:
        export_model(g, None, "onnx", tmp_path / "b.onnx")
    assert "onnx cannot carry the custom layer custom_1: its code uses prims.bessel_j0" in str(e.value)
    assert e.value.node_id == "custom_1" and not (tmp_path / "b.onnx").exists()


# ---- the command line ------------------------------------------------------------------------------------------------

def custom_project(tmp_path: Path, marker: Path) -> Path:
    """The linear_regression template with a custom layer (which writes the marker) before its Linear."""
    project = load_template("linear_regression")
    g = project.graph
    g.disconnect("input_1", "linear_1")
    c = g.add_node("Custom", {"code": marking(marker), "class_name": "Marked", "arguments": {}})
    g.connect("input_1", c)
    g.connect(c, "linear_1")
    project.training = {"epochs": 1, "batch_size": 64}
    return save_project(tmp_path / "custom.layerloom", Project(graph=g, name="custom", data=project.data,
                                                               loss=project.loss, optimizer=project.optimizer,
                                                               training=project.training))


def test_cli_runs_custom_code_only_with_trust_custom_code(tmp_path, trust_file, capsys):
    marker = tmp_path / "MARKER"
    path = custom_project(tmp_path, marker)
    env = {**os.environ, "LAYERLOOM_TRUST_FILE": str(trust_file), "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-m", "engine.cli", "summary", str(path)]
    refused = subprocess.run(run, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert refused.returncode == 1 and MESSAGE in refused.stderr and "Traceback" not in refused.stderr
    assert not marker.exists()
    allowed = subprocess.run([*run, "--trust-custom-code"], capture_output=True, text=True, env=env, cwd=tmp_path,
                             timeout=120)
    assert allowed.returncode == 0 and "custom_1" in allowed.stdout and marker.read_text() == "forward"
    assert not trust_file.exists()  # the flag trusts for this run only: nothing is recorded
    marker.unlink()
    # export and train, in this process
    assert main(["export", str(path), "-o", str(tmp_path / "m.onnx")]) == 1 and not marker.exists()
    assert "has not been trusted" in capsys.readouterr().err
    assert main(["export", str(path), "-o", str(tmp_path / "m.onnx"), "--trust-custom-code"]) == 0
    assert (tmp_path / "m.onnx").is_file() and marker.exists()
    custom_layers.set_trust_all(False)
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--quiet"]) == 1
    assert not (out / "final.safetensors").exists()
    assert main(["train", str(path), "--out", str(out), "--quiet", "--trust-custom-code"]) == 0
    assert (out / "final.safetensors").is_file()
