"""The "python" export: generated PyTorch code for every template passes ruff, imports no engine, runs in a fresh
process and matches the engine's model with the project's weights; its text reads as hand-written code."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import engine
from engine.export import SUFFIXES, ExportError, codegen, export_model, generate_code, make_sample, write_safetensors
from engine.export.codegen import check_style, class_name_for, run_generated
from engine.graph import Graph
from engine.templates import load_template, template_names

ROOT = Path(__file__).resolve().parents[2]


def _engine_model(graph, weights):
    model = engine.build_model(graph).train(False)
    model.load_state_dict(weights)
    return model


def _exec(code: str) -> dict:
    namespace: dict = {"__name__": "generated"}
    exec(compile(code, "generated.py", "exec"), namespace)
    return namespace


def _public(module: torch.nn.Module) -> dict:
    skip = {"training", "return_sequences"}
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k not in skip}


def _check_same_modules(code: str, model: torch.nn.Module, class_name: str) -> torch.nn.Module:
    """The generated class has the engine's submodules under the same names, built with the same arguments."""
    ns = _exec(code)
    generated = ns[class_name]()
    assert set(generated._modules) <= set(model._modules)
    for name, module in generated._modules.items():
        assert _public(module) == _public(model._modules[name]), name
    return generated


@pytest.mark.parametrize("name", template_names())
def test_every_template_exports_as_checked_python(name, tmp_path):
    project = load_template(name)
    weights = engine.build_model(project.graph, seed=7).state_dict()
    write_safetensors(weights, tmp_path / "weights.safetensors")
    out = tmp_path / f"{name}.py"
    report = export_model(project, tmp_path / "weights.safetensors", "python", out)
    assert report.check_passed and report.format == "python" and report.path == str(out)
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-6
    assert report.batch_sizes == [2, 5] and report.size_bytes == out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.py", "weights.safetensors"]  # nothing left over
    code = out.read_text()
    assert code == generate_code(project)
    assert check_style(out) is None
    imports = [line.strip() for line in code.splitlines() if line.strip().startswith(("import ", "from "))]
    assert imports == ["import torch", "from torch import nn", "from safetensors.torch import load_file"]
    # In this process too: same submodules with the same arguments, and strict loading gives the same outputs.
    model = _engine_model(project.graph, weights)
    generated = _check_same_modules(code, model, class_name_for(project.name))
    generated.load_state_dict(weights, strict=True)
    generated.eval()
    inputs = make_sample(project.graph, model, 3, seed=11)
    with torch.no_grad():
        assert torch.equal(generated(*inputs), model(*inputs))


def test_cnn_mnist_reads_like_hand_written_code():
    code = generate_code(load_template("cnn_mnist"))
    assert code.startswith('"""CnnMnist: ')
    for line in ("import torch", "from torch import nn", "class CnnMnist(nn.Module):",
                 "        self.conv2d_1 = nn.Conv2d(1, 32, kernel_size=3)",
                 "        self.maxpool2d_1 = nn.MaxPool2d(kernel_size=2)",
                 "        self.flatten_1 = nn.Flatten()",
                 "        self.linear_2 = nn.Linear(64, 10)",
                 "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
                 "        x = self.conv2d_1(x)  # (N, 32, 26, 26)",
                 "        x = self.flatten_1(x)  # (N, 1600)",
                 "        return x",
                 'def load(path: str, device: str = "cpu") -> CnnMnist:',
                 "    model.load_state_dict(load_file(path, device=device), strict=True)"):
        assert line in code.splitlines(), line
    assert generate_code(load_template("cnn_mnist"), class_name="Digits").count("class Digits(nn.Module):") == 1


def test_branches_are_named_after_their_nodes():
    code = generate_code(load_template("residual_block"))
    assert "        relu_1 = self.relu_1(x)  # (N, 16, 28, 28)" in code
    assert "        x = x + relu_1  # (N, 16, 28, 28)" in code
    code = generate_code(load_template("gru_two_branch"))
    for line in ("        self.gru_1 = GRULastHidden(4, 24, batch_first=True)",
                 "        gru_1 = self.gru_1(input_1)  # (N, 24)",
                 "        x = input_1.permute(0, 2, 1)  # (N, 4, 50)",
                 "        x = torch.cat((gru_1, x), dim=1)  # (N, 32)"):
        assert line in code.splitlines(), line
    code = generate_code(load_template("lstm_sentiment"))
    assert "        x, _ = self.lstm_1(x)  # (N, 100, 64)" in code.splitlines()


def _two_inputs() -> Graph:
    g = Graph()
    a = g.add_node("Input", shape=[6])
    b = g.add_node("Input", shape=[12])
    la = g.add_node("Linear", out_features=12)
    g.connect(a, la)
    ln = g.add_node("LayerNorm", eps=1e-3)
    g.connect(b, ln)
    mul = g.add_node("Multiply")
    g.connect(la, mul)
    g.connect(ln, mul)
    add = g.add_node("Add")
    g.connect(mul, add)
    g.connect(b, add)
    rs = g.add_node("Reshape", shape=[3, 4])
    g.connect(add, rs)
    rnn = g.add_node("LSTM", hidden_size=5, num_layers=2, bidirectional=True)
    g.connect(rs, rnn)
    bn = g.add_node("BatchNorm1d", momentum=0.2)
    g.connect(rnn, bn)
    drop = g.add_node("Dropout", p=0.25)
    g.connect(bn, drop)
    cat = g.add_node("Concat", dim=1)
    g.connect(drop, cat)
    g.connect(a, cat)
    head = g.add_node("Linear", out_features=3, bias=False)
    g.connect(cat, head)
    side = g.add_node("Permute", dims=[1, 0])
    g.connect(rs, side)
    return g


def test_two_inputs_and_two_outputs(tmp_path):
    g = _two_inputs()
    code = generate_code(g)
    assert "class Model(nn.Module):" in code
    assert "    def forward(self, input_1: torch.Tensor, input_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:" \
        in code
    for text in ("x = linear_1 * x  # (N, 12)", "x = x + input_2  # (N, 12)", "return linear_2, x",
                 "reshape_1 = x.reshape(x.shape[0], 3, 4)  # (N, 3, 4)", "x = reshape_1.permute(0, 2, 1)",
                 "torch.cat((", "LSTMLastHidden(4, 5, num_layers=2, batch_first=True, "
                 "bidirectional=True)", "nn.BatchNorm1d(10, momentum=0.2)", "nn.Dropout(p=0.25)",
                 "nn.LayerNorm((12,), eps=0.001)", "nn.Linear(16, 3, bias=False)"):
        assert text in code, text
    weights = engine.build_model(g, seed=3).state_dict()
    for key in [k for k in weights if k.endswith("running_var")]:
        weights[key] = torch.rand_like(weights[key]) + 0.5  # not the identity statistics
    report = export_model(g, weights, "python", tmp_path / "two.py")
    assert report.check_passed and report.max_abs_diff <= 1e-6
    model = _engine_model(g, weights)
    _check_same_modules(code, model, "Model")
    inputs = make_sample(g, model, 4, seed=5)
    with torch.no_grad():
        want = model(*inputs)
    got = run_generated(tmp_path / "two.py", weights, [inputs])[0]
    assert len(got) == 2 and all(torch.equal(x, y) for x, y in zip(got, want))


def test_a_failing_check_writes_nothing(tmp_path, monkeypatch):
    g = load_template("mlp_784_64_10").graph
    real = codegen._generate
    monkeypatch.setattr(codegen, "_generate", lambda *a, **k: real(*a, **k) + "import os\n")
    with pytest.raises(ExportError, match="ruff"):
        export_model(g, None, "python", tmp_path / "bad.py")
    monkeypatch.setattr(codegen, "_generate", lambda *a, **k: real(*a, **k).replace(
        "return x\n", "return x + 1\n"))
    with pytest.raises(ExportError, match="differ"):
        export_model(g, None, "python", tmp_path / "bad.py")
    assert list(tmp_path.iterdir()) == []


def test_names_and_suffix():
    assert SUFFIXES[".py"] == "python"
    assert class_name_for("cnn_mnist") == "CnnMnist" and class_name_for("3 layers") == "Net3Layers"
    assert class_name_for(None) == "Model"


def test_cli_exports_python(tmp_path):
    out = tmp_path / "OUT.py"
    done = subprocess.run([sys.executable, "-m", "engine.cli", "export", "cnn_mnist", "--format", "python", "-o",
                           str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "check passed:   yes" in done.stdout and "untrained" in done.stdout
    assert "class CnnMnist(nn.Module):" in out.read_text()
