"""int8 export: dynamic quantisation of Linear, LSTM and GRU layers as TorchScript (and ONNX for a .onnx name), the
file read back and run here again, size and accuracy before and after on the project's validation data, the stated
accuracy bound on a trained network, the refusals, and `layerloom export --format int8`."""
from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import pytest
import torch
from torch.ao.nn.quantized import dynamic as nnqd

import engine
from engine.cli import main
from engine.export import ExportError, export_model, make_sample
from engine.export import core as export_core
from engine.export.int8 import ONNX_LIMIT, quantise
from engine.project import Project, save_project
from engine.runner import prepare
from engine.templates import load_template, template_names
from engine.train_cli import save_weights

# The stated bound: dynamic int8 quantisation of a trained network costs at most this much validation accuracy
# (2 percentage points); for regression, at most this much R².
ACCURACY_BOUND = 0.02
R2_BOUND = 0.01
QUANTISED_TYPES = ("Linear", "LSTM", "GRU")


def _load_ts(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's own notice
        return torch.jit.load(str(path))


def _outputs(value) -> list[torch.Tensor]:
    return [torch.as_tensor(v) for v in value] if isinstance(value, (tuple, list)) else [torch.as_tensor(value)]


def _max_diff(got, want) -> float:
    assert len(got) == len(want)
    assert all(g.shape == w.shape for g, w in zip(got, want))
    return max(float((g.double() - w.double()).abs().max()) for g, w in zip(got, want))


def _model(graph, weights) -> torch.nn.Module:
    model = engine.build_model(graph).train(False)
    model.load_state_dict(weights)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """mlp_784_64_10 trained for 2 epochs on its digits: (project, weights file, run)."""
    folder = tmp_path_factory.mktemp("trained")
    project = load_template("mlp_784_64_10")
    run = prepare(project, {"epochs": 2, "device": "cpu", "seed": 0})
    assert run.trainer.fit(run.data).ok
    weights = folder / "final.safetensors"
    save_weights(run.trainer.model, weights)  # what `layerloom train` writes
    return project, weights, run


# The first test, so that first-use chatter (torch.ao's deprecation warnings, tracing warnings) falls into it.
def test_int8_export_prints_nothing(tmp_path, capfd):
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    loggers = [logging.getLogger(), logging.getLogger("torch")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = export_model(load_template("gru_two_branch"), None, "int8", tmp_path / "m.int8.ts")
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    assert report.check_passed
    assert capfd.readouterr() == ("", "")
    assert console.getvalue() == "" and [str(w.message) for w in caught] == []
    assert "deprecation warnings were kept off the console" in report.message


@pytest.mark.parametrize("name", template_names())
def test_every_template_exports_int8_or_says_why_not(name, tmp_path):
    project = load_template(name)
    graph = project.graph
    weights = engine.build_model(graph, seed=7).state_dict()
    out = tmp_path / f"{name}.int8.ts"
    expected = [nid for nid in graph.nodes if graph.nodes[nid].type in QUANTISED_TYPES]
    if not expected:  # conv_autoencoder: nothing to quantise is refused, naming the alternatives
        with pytest.raises(ExportError) as info:
            export_model(project, weights, "int8", out)
        msg = str(info.value)
        assert "covers Linear, LSTM and GRU layers, and this network has none" in msg and "\n" not in msg
        assert "conv2d_1 (Conv2d)" in msg and "export it as torchscript, onnx or pt2 instead" in msg
        assert list(tmp_path.iterdir()) == []
        return
    report = export_model(project, weights, "int8", out)
    assert report.check_passed and report.format == "int8" and report.path == str(out)
    assert report.batch_sizes == [2, 5] and report.max_abs_diff <= 1e-5 and report.tolerance == 1e-5
    assert report.size_bytes == out.stat().st_size > 0 and report.float_size_bytes > 0
    assert sorted(report.quantized_layers) == sorted(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no staging, no float copy left
    # scored on the project's validation split, float and int8
    data = engine.data.load_data(project.data)
    assert report.eval_split == "validation" and report.eval_samples == min(len(data.val.x), 2000)
    metric = {"MSE": "mae"}.get(project.loss["type"], "accuracy")
    assert metric in report.metrics_float and metric in report.metrics_int8
    text = "\n".join(report.lines())
    assert "int8 (dynamic quantisation), TorchScript" in text and "validation samples" in text
    assert "from float:" in text and "the float network in the same container" in text
    # Independently of the exporter: the file, loaded as a user would, gives the quantised network's outputs on a
    # third batch size, and stays near the float network.
    model = _model(graph, weights)
    inputs = make_sample(graph, model, 3, seed=11)
    with torch.no_grad():
        got = _outputs(_load_ts(out)(*inputs))
        assert _max_diff(got, _outputs(quantise(model)(*inputs))) <= 1e-5
        want = _outputs(model(*inputs))
    scale = max(1.0, max(float(w.abs().max()) for w in want))
    assert 0 < _max_diff(got, want) < 0.05 * scale


def test_lstm_and_gru_layers_are_quantised_keeping_their_outputs(tmp_path):
    g = engine.Graph()
    x = g.add_node("Input", shape=[7, 3])
    lstm = g.add_node("LSTM", hidden_size=5, bidirectional=True, return_sequences=True, num_layers=2)
    gru = g.add_node("GRU", hidden_size=4)
    rnn = g.add_node("RNN", hidden_size=3)
    cat = g.add_node("Concat")
    head = g.add_node("Linear", out_features=2)
    g.connect(x, lstm)
    g.connect(lstm, gru)
    g.connect(x, rnn)
    g.connect(gru, cat)
    g.connect(rnn, cat)
    g.connect(cat, head)
    model = engine.build_model(g, seed=0).train(False)  # the network export_model builds without weights
    q = quantise(model)
    assert isinstance(q._modules[lstm], nnqd.LSTM) and isinstance(q._modules[gru], nnqd.GRU)
    assert isinstance(q._modules[head], nnqd.Linear)
    assert type(q._modules[rnn]) is type(model._modules[rnn])  # PyTorch has no dynamic int8 RNN
    assert type(model._modules[lstm]).__name__ == "LSTMLayer"  # the network itself is left float
    report = export_model(g, None, "int8", tmp_path / "rnn.int8.ts")
    assert report.check_passed and report.max_abs_diff <= 1e-5
    assert report.quantized_layers == [lstm, gru, head] and report.float_layers == [rnn]
    assert f"float32 weights kept in {rnn} (RNN)" in report.message
    inputs = make_sample(g, model, 4, seed=3)
    with torch.no_grad():
        got, want = _outputs(_load_ts(tmp_path / "rnn.int8.ts")(*inputs)), _outputs(model(*inputs))
    assert got[0].shape == (4, 2) and 0 < _max_diff(got, want) < 0.05


def test_a_graph_alone_reports_size_but_no_accuracy(tmp_path):
    report = export_model(load_template("mlp_784_64_10").graph, None, "int8", tmp_path / "m.int8.ts")
    assert report.check_passed and report.metrics_float == {} and report.eval_split == ""
    assert "accuracy was not measured: a graph alone has no data" in report.message
    assert "measured on a random batch" in report.message and "untrained" in report.message
    assert report.float_size_bytes / report.size_bytes > 3  # 784×64 and 64×10 weights: 4 bytes → 1
    assert not any(line.startswith("accuracy:") for line in report.lines())


# ---------------------------------------------------------------------------------------- trained: the bound


def test_trained_network_keeps_its_accuracy_within_the_bound(trained, tmp_path):
    project, weights, run = trained
    out = tmp_path / "digits.int8.ts"
    report = export_model(project, weights, "int8", out)
    before, after = report.metrics_float["accuracy"], report.metrics_int8["accuracy"]
    assert before > 0.8, "the network did not train"
    assert abs(after - before) <= ACCURACY_BOUND
    assert report.eval_split == "validation" and report.eval_samples == len(run.bundle.val.x)
    assert report.float_size_bytes / report.size_bytes > 3
    assert "untrained" not in report.message
    # the figure is the written file's: scored here again on the validation split
    x = torch.as_tensor(run.bundle.val.x)
    with torch.no_grad():
        pred = _load_ts(out)(x).argmax(1)
    assert float((pred == torch.as_tensor(run.bundle.val.y)).double().mean()) == pytest.approx(after)
    line = next(line for line in report.lines() if line.startswith("accuracy:"))
    assert f"{before:.2%} float → {after:.2%} int8" in line and f"on {len(x)} validation samples" in line


def test_trained_network_as_int8_onnx_runs_in_onnxruntime(trained, tmp_path):
    import onnx
    import onnxruntime as ort

    project, weights, run = trained
    out = tmp_path / "digits.int8.onnx"
    report = export_model(project, weights, "int8", out, data=run.bundle)
    assert report.check_passed and report.tolerance == ONNX_LIMIT and report.batch_sizes == [2, 5]
    assert report.max_abs_diff == report.float_max_abs_diff < 0.2  # no in-memory int8 twin: against float
    assert abs(report.metrics_int8["accuracy"] - report.metrics_float["accuracy"]) <= ACCURACY_BOUND
    assert report.float_size_bytes / report.size_bytes > 3
    assert "int8 (dynamic quantisation), ONNX" in "\n".join(report.lines())
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("MatMulInteger") == 2 and "Gemm" not in ops
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = run.bundle.val.x[:7]
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    model = _model(project.graph, engine.export.load_weights(project.graph, weights))
    with torch.no_grad():
        assert _max_diff([torch.as_tensor(got)], [model(torch.as_tensor(x))]) < 0.05


def test_int8_onnx_quantises_lstm_weights_too(tmp_path):
    """The exporter reshuffles LSTM weights through Slice/Concat; they are folded first so that onnxruntime's
    quantiser sees them (without that, LSTM layers would silently stay float)."""
    import onnx

    g = engine.Graph()
    x = g.add_node("Input", shape=[6, 2])
    lstm = g.add_node("LSTM", hidden_size=3)
    head = g.add_node("Linear", out_features=1)
    g.connect(x, lstm)
    g.connect(lstm, head)
    out = tmp_path / "lstm.int8.onnx"
    report = export_model(g, None, "int8", out)
    assert report.check_passed and report.quantized_layers == [lstm, head]
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("DynamicQuantizeLSTM") == 1 and "LSTM" not in ops and ops.count("MatMulInteger") == 1
    assert "1 MatMulInteger, 1 DynamicQuantizeLSTM" in report.message


def test_regression_keeps_its_r2_within_the_bound_scoring_a_csv_beside_the_project(tmp_path):
    """A project whose data is a CSV named relative to the project file: base_dir (the CLI: the project's
    folder) is where it is found."""
    rows = [(i / 50 - 1.0, 2 * (i / 50 - 1.0) + 0.5 + 0.01 * ((i * 7) % 5 - 2)) for i in range(100)]
    (tmp_path / "line.csv").write_text("x,y\n" + "".join(f"{a:.4f},{b:.4f}\n" for a, b in rows))
    g = engine.Graph()
    g.connect(g.add_node("Input", shape=[1]), g.add_node("Linear", out_features=1))
    project = Project(graph=g, name="line", data={"source": "csv", "params": {"path": "line.csv", "target": "y"}},
                      loss={"type": "MSE", "params": {}}, optimizer={"type": "Adam", "params": {"lr": 0.05}})
    run = prepare(project, {"epochs": 40, "device": "cpu", "seed": 0}, base_dir=tmp_path)
    assert run.trainer.fit(run.data).ok
    weights = run.trainer.model.state_dict()
    missing = export_model(project, weights, "int8", tmp_path / "nodata.int8.ts", base_dir=tmp_path / "elsewhere")
    assert missing.check_passed and missing.metrics_float == {}
    assert "accuracy was not measured: the project's data cannot be loaded" in missing.message
    report = export_model(project, weights, "int8", tmp_path / "line.int8.ts", base_dir=tmp_path)
    assert report.metrics_float["r2"] > 0.95, "the network did not train"
    assert report.metrics_float["r2"] - report.metrics_int8["r2"] <= R2_BOUND
    assert set(report.metrics_int8) == {"mae", "r2"} and report.eval_split == "validation"
    assert any(line.startswith("R²:") for line in report.lines())
    assert any(line.startswith("MAE:") for line in report.lines())
    # no validation split: the test split is scored, and the report says which
    project.data["split"] = {"val": 0.0, "test": 0.2}
    report = export_model(project, weights, "int8", tmp_path / "line.int8.ts", base_dir=tmp_path)
    assert report.eval_split == "test" and report.eval_samples == 20
    # no data chosen at all
    project.data = None
    report = export_model(project, weights, "int8", tmp_path / "line.int8.ts")
    assert "accuracy was not measured: the project has no data chosen" in report.message


# ------------------------------------------------------------------------------------------------- refusals


def test_onnx_cannot_carry_a_gru_only_network_and_names_torchscript(tmp_path):
    g = engine.Graph()
    g.connect(g.add_node("Input", shape=[5, 2]), g.add_node("GRU", hidden_size=3))
    with pytest.raises(ExportError, match=r"onnxruntime has no int8 GRU .*as TorchScript instead"):
        export_model(g, None, "int8", tmp_path / "gru.int8.onnx")
    assert list(tmp_path.iterdir()) == []
    assert export_model(g, None, "int8", tmp_path / "gru.int8.ts").quantized_layers == ["gru_1"]


def test_an_int8_file_that_does_not_match_is_not_written(tmp_path, monkeypatch):
    monkeypatch.setitem(export_core.TOLERANCE, "int8", -1.0)
    (tmp_path / "m.int8.ts").write_bytes(b"an older export")
    with pytest.raises(ExportError, match="the int8 export does not match the PyTorch model") as info:
        export_model(load_template("mlp_784_64_10").graph, None, "int8", tmp_path / "m.int8.ts")
    assert info.value.report is not None and info.value.report.check_passed is False
    assert [p.name for p in tmp_path.iterdir()] == ["m.int8.ts"]
    assert (tmp_path / "m.int8.ts").read_bytes() == b"an older export"


def test_weights_that_do_not_fit_are_refused_as_for_every_format(tmp_path):
    other = engine.build_model(load_template("mlp_mnist_128").graph).state_dict()
    with pytest.raises(ExportError, match=r"linear_1.weight is 128×784 in the weights but 64×784"):
        export_model(load_template("mlp_784_64_10"), other, "int8", tmp_path / "m.int8.ts")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_int8_prints_size_and_accuracy_before_and_after(trained, tmp_path, capsys):
    project, weights, _ = trained
    path = save_project(tmp_path / "digits.layerloom", project)
    out = tmp_path / "digits.int8.ts"
    assert main(["export", str(path), "--weights", str(weights), "--format", "int8", "-o", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert stderr == "" and out.exists()
    assert "format:         int8 (dynamic quantisation), TorchScript" in stdout
    assert "smaller than the float network in the same container" in stdout
    assert "float →" in stdout and "int8 (" in stdout and "validation samples" in stdout
    assert "check passed:   yes on batches of 2 and 5" in stdout


def test_cli_int8_refusals_are_one_clear_line(tmp_path, capsys):
    assert main(["export", "conv_autoencoder", "--format", "int8", "-o", str(tmp_path / "ae.int8.ts")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert "cannot export: int8 dynamic quantisation covers Linear, LSTM and GRU layers" in err
    assert main(["export", "mlp_784_64_10", "-o", str(tmp_path / "m.int8")]) == 1
    assert "give --format (safetensors, onnx, pt2, torchscript, python or int8)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
