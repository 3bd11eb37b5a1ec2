"""Export: every template in every format, each written file read back and run here against PyTorch again
(onnxruntime for ONNX, on a third batch size), the dynamic batch axis, the refusals, and `layerloom export`."""
from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import engine
from engine.cli import main
from engine.export import (
    FORMATS,
    ExportError,
    ExportReport,
    export_model,
    load_weights,
    make_sample,
    write_safetensors,
)
from engine.export import core as export_core
from engine.templates import load_template, template_names
from engine.train_cli import save_weights

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = {"safetensors": ".safetensors", "onnx": ".onnx", "pt2": ".pt2", "torchscript": ".ts"}
TOLERANCE = {"safetensors": 0.0, "onnx": 1e-4, "pt2": 1e-5, "torchscript": 1e-5}


def _weights(graph, seed: int = 7) -> dict[str, torch.Tensor]:
    return engine.build_model(graph, seed=seed).state_dict()


def _model(graph, weights) -> torch.nn.Module:
    model = engine.build_model(graph).train(False)
    model.load_state_dict(weights)
    return model


def _outputs(value) -> list[torch.Tensor]:
    return [torch.as_tensor(v) for v in value] if isinstance(value, (tuple, list)) else [torch.as_tensor(value)]


def _run_file(fmt: str, path: Path, graph, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """Runs an exported file the way a user would, independently of the exporter's own check."""
    if fmt == "onnx":
        import onnxruntime as ort
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return _outputs(session.run(None, {n: t.numpy() for n, t in zip(names, inputs)}))
    if fmt == "pt2":
        return _outputs(torch.export.load(str(path)).module()(*inputs))
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load's own notice
            return _outputs(torch.jit.load(str(path))(*inputs))
    return _outputs(_model(graph, load_weights(graph, path))(*inputs))


def _max_diff(got, want) -> float:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
    return max(float((g.double() - w.double()).abs().max()) for g, w in zip(got, want))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(graph, weights, report, path) per (template, format), exported once for the whole module."""
    folder = tmp_path_factory.mktemp("exports")
    cache: dict = {}

    def get(name: str, fmt: str):
        if (name, fmt) not in cache:
            graph = load_template(name).graph
            weights = _weights(graph)
            path = folder / f"{name}{SUFFIX[fmt]}"
            cache[name, fmt] = (graph, weights, export_model(graph, weights, fmt, path), path)
        return cache[name, fmt]
    return get


# The first test, so that the exporters' first-use chatter (onnxscript registration, deprecation warnings) falls
# into it: nothing of it may reach the console.
def test_exporters_print_nothing_on_success(tmp_path, capfd):
    g = engine.Graph()
    x = g.add_node("Input", shape=[6, 3])
    lstm = g.add_node("LSTM", hidden_size=4)
    g.connect(x, lstm)
    # A log handler bound to a console stream of earlier (as PyTorch's are, made when torch was imported).
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    loggers = [logging.getLogger(), logging.getLogger("torch"), logging.getLogger("torch.onnx")]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for fmt in FORMATS:
                report = export_model(g, None, fmt, tmp_path / f"small{SUFFIX[fmt]}")
                assert report.check_passed
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    out, err = capfd.readouterr()
    assert out == "" and err == "", f"exporter chatter reached the console:\n{out}{err}"
    assert console.getvalue() == ""
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", template_names())
def test_every_template_exports_and_runs_back(name, fmt, exported):
    graph, weights, report, path = exported(name, fmt)
    assert isinstance(report, ExportReport)
    assert report.check_passed and report.format == fmt and report.path == str(path)
    assert report.size_bytes == path.stat().st_size > 0
    assert report.max_abs_diff is not None and report.max_abs_diff <= TOLERANCE[fmt]
    assert report.seconds > 0
    assert json.loads(json.dumps(report.to_dict()))["check_passed"] is True
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []  # no staging left
    assert "untrained" not in report.message
    if fmt != "safetensors":
        assert report.batch_sizes == [2, 5]
    # Independently of the exporter's own check: the file run as a user would, on a third batch size, matches a
    # PyTorch model holding the same weights.
    model = _model(graph, weights)
    inputs = make_sample(graph, model, 3, seed=11)
    with torch.no_grad():
        diff = _max_diff(_run_file(fmt, path, graph, inputs), _outputs(model(*inputs)))
    assert diff <= max(TOLERANCE[fmt], 1e-7)


def test_lstm_sentiment_takes_token_ids_within_the_vocabulary(exported):
    graph, weights, report, path = exported("lstm_sentiment", "onnx")
    model = _model(graph, weights)
    ids = make_sample(graph, model, 4)[0]
    assert ids.dtype == torch.int64 and int(ids.max()) < 10000 and int(ids.max()) > 100
    assert "opset" in report.message


@pytest.mark.parametrize("name", ["gru_two_branch", "lstm_sentiment", "cnn_mnist"])
def test_onnx_batch_axis_is_dynamic(name, exported):
    import onnx
    graph, _, report, path = exported(name, "onnx")
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 18
    for value in list(proto.graph.input) + list(proto.graph.output):
        first = value.type.tensor_type.shape.dim[0]
        assert first.dim_param and not first.dim_value, f"{value.name}: batch axis is fixed"
    assert [i.name for i in proto.graph.input] == graph.input_nodes()
    assert [o.name for o in proto.graph.output] == graph.sink_nodes()
    assert "dynamic batch axis" in report.message and "torch.export-based" in report.message


def test_torchscript_report_says_it_is_deprecated(exported):
    *_, report, _ = exported("mlp_784_64_10", "torchscript")
    assert "deprecated" in report.message and "torch.export" in report.message


def test_safetensors_keep_the_layer_names(exported):
    graph, weights, report, path = exported("residual_block", "safetensors")
    from safetensors.torch import load_file
    back = load_file(str(path))
    assert set(back) == set(weights) and "batchnorm2d_1.running_mean" in back and "conv2d_3.weight" in back
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    assert report.max_abs_diff == 0.0


# ------------------------------------------------------------------------------------------------- refusals


def test_weights_that_do_not_fit_name_the_layers(tmp_path):
    graph = load_template("cnn_mnist").graph
    weights = _weights(graph)
    del weights["linear_2.weight"], weights["linear_2.bias"]
    weights["conv2d_9.weight"] = torch.zeros(3)
    weights["linear_1.weight"] = torch.zeros(64, 10)
    with pytest.raises(ExportError) as info:
        export_model(graph, weights, "onnx", tmp_path / "m.onnx")
    msg = str(info.value)
    assert "missing: linear_2 (weight, bias)" in msg
    assert "not in this network: conv2d_9 (weight)" in msg
    assert "linear_1.weight is 64×10 in the weights but 64×1600 in the network" in msg
    assert "\n" not in msg
    assert info.value.missing == ["linear_2.weight", "linear_2.bias"]
    assert info.value.unexpected == ["conv2d_9.weight"] and info.value.wrong_shape == ["linear_1.weight"]
    assert list(tmp_path.iterdir()) == []


def test_load_weights_checks_a_safetensors_file(tmp_path):
    graph = load_template("mlp_784_64_10").graph
    good = tmp_path / "good.safetensors"
    write_safetensors(_weights(graph), good)
    assert set(load_weights(graph, good)) == {"linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"}
    other = tmp_path / "other.safetensors"
    write_safetensors(_weights(load_template("mlp_mnist_128").graph), other)
    with pytest.raises(engine.LayerLoomError, match=r"linear_1.weight is 128×784 in the weights but 64×784"):
        load_weights(graph, other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ExportError, match="not a readable .safetensors file"):
        load_weights(graph, junk)
    with pytest.raises(ExportError, match="there is no weights file"):
        load_weights(graph, tmp_path / "absent.safetensors")


def test_a_graph_with_shape_errors_is_refused_naming_the_node(tmp_path):
    graph = load_template("cnn_mnist").graph
    graph.set_params("input_1", shape=[1, 4, 4])
    with pytest.raises(ExportError) as info:
        export_model(graph, None, "pt2", tmp_path / "m.pt2")
    assert "conv2d_2 (Conv2d)" in str(info.value) and "fix this node first" in str(info.value)
    assert info.value.node_id == "conv2d_2"
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_and_unwritable_paths_are_refused(tmp_path):
    graph = load_template("linear_regression").graph
    with pytest.raises(ExportError, match="unknown export format 'tflite': choose one of safetensors, onnx, pt2"):
        export_model(graph, None, "tflite", tmp_path / "m.tflite")
    with pytest.raises(ExportError, match="the folder .*missing does not exist; create it first"):
        export_model(graph, None, "onnx", tmp_path / "missing" / "m.onnx")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExportError, match="afile is a file, not a folder"):
        export_model(graph, None, "onnx", tmp_path / "afile" / "m.onnx")
    with pytest.raises(ExportError, match="it is a folder; give a file name"):
        export_model(graph, None, "onnx", tmp_path)


def test_a_read_only_folder_is_refused():
    """Root may write anywhere, so when the tests run as root the export runs in a child process that has
    dropped to the unprivileged user 'nobody'."""
    import shutil
    import subprocess
    import sys
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="layerloom-ro-"))
    try:
        os.chmod(base, 0o755)
        folder = base / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        code = ("import sys\nfrom engine.export import ExportError, export_model\n"
                "from engine.templates import load_template\n"
                "try:\n    export_model(load_template('linear_regression').graph, None, 'pt2', sys.argv[1])\n"
                "except ExportError as e:\n    print(e)\n")
        drop = (lambda: os.setuid(65534)) if os.geteuid() == 0 else None
        out = subprocess.run([sys.executable, "-c", code, str(folder / "m.pt2")], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2], preexec_fn=drop, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "no permission to write" in out.stdout
        assert not (folder / "m.pt2").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


class _Digamma(torch.nn.Module):
    """An op that neither ONNX exporter can translate (but torch.export and TorchScript can)."""

    def forward(self, x):
        return torch.digamma(x.abs() + 1)


def test_a_layer_onnx_cannot_carry_is_named_with_the_alternative(tmp_path, monkeypatch, capfd):
    g = engine.Graph()
    x = g.add_node("Input", shape=[4])
    lin = g.add_node("Linear", out_features=3)
    act = g.add_node("ReLU")
    g.connect(x, lin)
    g.connect(lin, act)
    real = export_core.make_model

    def patched(graph, seed=0):
        model = real(graph, seed)
        model.relu_1 = _Digamma()
        return model
    monkeypatch.setattr(export_core, "make_model", patched)
    (tmp_path / "m.onnx").write_bytes(b"an older export")
    with pytest.raises(ExportError) as info:
        export_model(g, None, "onnx", tmp_path / "m.onnx")
    msg = str(info.value)
    assert msg.startswith("onnx cannot carry layer relu_1 (ReLU)") and "digamma" in msg
    assert "Export this network as pt2 (torch.export) or safetensors instead" in msg
    assert info.value.node_id == "relu_1"
    assert info.value.details and info.value.report is not None and not info.value.report.check_passed
    assert "exporter output" in info.value.report.message
    assert (tmp_path / "m.onnx").read_bytes() == b"an older export"  # a failed export replaces nothing
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert export_model(g, None, "pt2", tmp_path / "m.pt2").check_passed  # the alternative works
    assert capfd.readouterr() == ("", "")


def test_an_export_that_does_not_match_is_not_written(tmp_path, monkeypatch):
    monkeypatch.setitem(export_core.TOLERANCE, "torchscript", -1.0)
    with pytest.raises(ExportError, match="does not match the PyTorch model") as info:
        export_model(load_template("mlp_784_64_10").graph, None, "torchscript", tmp_path / "m.ts")
    assert info.value.report is not None and info.value.report.check_passed is False
    assert list(tmp_path.iterdir()) == []


def test_onnx_falls_back_to_the_legacy_exporter_and_says_so(tmp_path, monkeypatch):
    real = torch.onnx.export

    def no_dynamo(*args, dynamo=True, **kw):
        if dynamo:
            raise RuntimeError("pretend a layer needs the legacy exporter")
        return real(*args, dynamo=False, **kw)
    monkeypatch.setattr(torch.onnx, "export", no_dynamo)
    graph = load_template("gru_two_branch").graph
    report = export_model(graph, None, "onnx", tmp_path / "m.onnx")
    assert report.check_passed and report.batch_sizes == [2, 5] and report.max_abs_diff < 1e-4
    assert "legacy TorchScript-based exporter" in report.message
    assert "pretend a layer needs the legacy exporter" in report.message


def test_a_check_batch_of_one_keeps_the_batch_axis_dynamic(tmp_path):
    report = export_model(load_template("mlp_784_64_10").graph, None, "pt2", tmp_path / "m.pt2", batch_size=1)
    assert report.check_passed and report.batch_sizes == [1, 4]


def test_the_sample_decides_the_check_batch(tmp_path):
    graph = load_template("linear_regression").graph
    report = export_model(graph, None, "onnx", tmp_path / "m.onnx", sample=torch.linspace(-1, 1, 7)[:, None])
    assert report.batch_sizes == [7, 10] and report.check_passed
    assert "untrained" in report.message
    with pytest.raises(ExportError, match=r"the sample for input_1 has shape \(7, 2\); it must be \(batch, 1\)"):
        export_model(graph, None, "onnx", tmp_path / "m.onnx", sample=torch.zeros(7, 2))


# ------------------------------------------------------------------------------------------------------ CLI


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "engine.cli", "export", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_exports_trained_weights_and_prints_the_report(tmp_path):
    graph = load_template("cnn_mnist").graph
    trained = engine.build_model(graph, seed=3)
    save_weights(trained, tmp_path / "final.safetensors")  # what `layerloom train` writes
    out = tmp_path / "cnn.onnx"
    proc = _cli("cnn_mnist", "--weights", str(tmp_path / "final.safetensors"), "--format", "onnx", "-o", str(out),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert f"path:           {out}" in proc.stdout and "check passed:   yes on batches of 2 and 5" in proc.stdout
    assert "size:" in proc.stdout and "max difference:" in proc.stdout and "time:" in proc.stdout
    assert "untrained" not in proc.stdout
    assert not any(word in proc.stdout for word in ("[torch.onnx]", "Warning", "torchvision"))
    model = trained.train(False)
    inputs = make_sample(graph, model, 3)
    with torch.no_grad():
        assert _max_diff(_run_file("onnx", out, graph, inputs), _outputs(model(*inputs))) < 1e-4


def test_cli_without_weights_notes_they_are_untrained(tmp_path, capsys):
    assert main(["export", "linear_regression", "-o", str(tmp_path / "lr.pt2")]) == 0
    out, err = capsys.readouterr()
    assert "untrained" in out and "check passed:   yes" in out and err == ""


def test_cli_error_exits_are_one_clear_line(tmp_path):
    other = tmp_path / "other.safetensors"
    write_safetensors(_weights(load_template("mlp_784_64_10").graph), other)
    cases = [
        (["cnn_mnist", "--weights", str(other), "-o", "m.onnx"], 1, "do not fit this network: missing: conv2d_1"),
        (["cnn_mnist", "--weights", "absent.safetensors", "-o", "m.onnx"], 1, "there is no weights file"),
        (["cnn_mnist", "--format", "tflite", "-o", "m.tflite"], 1, "unknown export format 'tflite'"),
        (["cnn_mnist", "-o", "m.bin"], 1, "give --format"),
        (["cnn_mnist", "-o", str(tmp_path / "nope" / "m.onnx")], 1, "does not exist; create it first"),
        (["no_such_project.layerloom", "-o", "m.onnx"], 2, "cannot open the project"),
    ]
    for args, code, text in cases:
        proc = _cli(*args, cwd=tmp_path)
        assert proc.returncode == code, (args, proc.stderr)
        assert text in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.safetensors"]
