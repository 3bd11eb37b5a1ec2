"""ONNX import: every template exported by LayerLoom's own ONNX export and imported back gives the same outputs;
hand-made ONNX files cover the operators the templates do not emit; and every refusal (an unsupported operator, a
file that is not ONNX, external data outside the model's folder, an output that does not match, a file that would
be overwritten) says what is wrong, also through `layerloom import` and its exit status."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import engine
from engine.cli import main
from engine.export import export_model, load_weights, make_sample, read_safetensors
from engine.layout import ROW, layered_layout
from engine.onnx_import import EXISTS, MISMATCH, UNREADABLE, UNSUPPORTED, OnnxImportError, import_onnx
from engine.onnx_import.values import BATCH, LayoutError, View, reshape_step, stack
from engine.project import load_project
from engine.templates import load_template, template_names

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(0)
# Layers PyTorch's ONNX exporter folds away: BatchNorm after a convolution is merged into its weights.
FOLDED_BY_EXPORTER = {"BatchNorm1d", "BatchNorm2d", "Dropout", "Dropout2d", "Identity"}


def _outputs(value) -> list[torch.Tensor]:
    return [torch.as_tensor(v) for v in value] if isinstance(value, (tuple, list)) else [torch.as_tensor(value)]


def _close(got, want, tol: float = 1e-4) -> float:
    assert len(got) == len(want)
    diff, scale = 0.0, 0.0
    for g, w in zip(got, want):
        assert tuple(g.shape) == tuple(w.shape)
        diff = max(diff, float((g.double() - w.double()).abs().max()))
        scale = max(scale, float(w.double().abs().max()))
    assert diff <= tol * max(1.0, scale), f"outputs differ by {diff:.2e}"
    return diff


def _imported_model(result) -> torch.nn.Module:
    model = engine.build_model(result.project.graph).train(False)
    model.load_state_dict(result.state)
    return model


# PyTorch's ONNX exporter unrolls recurrent layers while tracing (~10 s for each of these on two cores): they are
# exported by other processes while this one exports the rest.
SLOW = ("gru_two_branch", "lstm_sentiment")
EXPORT = """
import sys
from pathlib import Path

import engine
from engine.export import export_model, write_safetensors
from engine.templates import load_template

name, folder = sys.argv[1], Path(sys.argv[2])
project = load_template(name)
weights = engine.build_model(project.graph, seed=7).state_dict()
write_safetensors(weights, folder / f"{name}.weights.safetensors")
export_model(project, weights, "onnx", folder / f"{name}.onnx")
"""


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """(original graph, its weights, the ONNX path, the import result) per template, made once for the module."""
    folder = tmp_path_factory.mktemp("round_trip")
    started = {name: subprocess.Popen([sys.executable, "-c", EXPORT, name, str(folder)], cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in SLOW}
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            project = load_template(name)
            path = folder / f"{name}.onnx"
            if name in started:
                out, err = started[name].communicate(timeout=600)
                assert started[name].returncode == 0, out + err
                weights = read_safetensors(folder / f"{name}.weights.safetensors")
            else:
                weights = engine.build_model(project.graph, seed=7).state_dict()
                export_model(project, weights, "onnx", path)
            result = import_onnx(path, folder / f"{name}.layerloom")
            cache[name] = (project.graph, weights, path, result)
        return cache[name]
    yield get
    for proc in started.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# ---------------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", template_names())
def test_every_template_round_trips_through_onnx(name, round_trip):
    graph, weights, path, result = round_trip(name)
    assert result.check_passed and result.max_abs_diff <= result.tolerance
    # The same outputs as the original network with the same weights, on a batch size the export never saw.
    original = engine.build_model(graph).train(False)
    original.load_state_dict(weights)
    imported = engine.build_model(load_project(result.project_path).graph).train(False)
    imported.load_state_dict(read_safetensors(result.weights_path))
    inputs = make_sample(graph, original, 3, seed=5)
    with torch.no_grad():
        _close(_outputs(imported(*inputs)), _outputs(original(*inputs)))
    # The same layers, under the same names, except those the exporter merges into others.
    want = Counter(n.type for n in graph.nodes.values() if n.type not in FOLDED_BY_EXPORTER)
    got = Counter(n.type for n in result.project.graph.nodes.values())
    assert got == want
    assert set(result.project.graph.nodes) <= set(graph.nodes)
    if not any(n.type in FOLDED_BY_EXPORTER for n in graph.nodes.values()):  # the very same wiring
        assert {nid: result.project.graph.inputs_of(nid) for nid in graph.nodes} == \
            {nid: graph.inputs_of(nid) for nid in graph.nodes}
    # Weights named as build_model names its submodules, so they load into the project as an export would.
    load_weights(result.project.graph, result.weights_path)
    assert set(result.state) == set(engine.build_model(result.project.graph).state_dict())


def test_round_trip_report_and_files(round_trip):
    graph, _, path, result = round_trip("lstm_sentiment")
    project = load_project(result.project_path)
    assert project.name == "lstm_sentiment" and "lstm_sentiment.onnx" in project.description
    assert Path(result.weights_path) == Path(result.project_path).with_suffix(".safetensors")
    assert read_safetensors(result.weights_path).keys() == result.state.keys()
    # The time-major transposes and h_n[-1] the exporter wraps around ONNX LSTM nodes leave no layers behind.
    assert [n.type for n in project.graph.nodes.values()] == ["Input", "Embedding", "LSTM", "LSTM", "Linear",
                                                               "Sigmoid"]
    assert project.graph.nodes["lstm_1"].params["return_sequences"] is True
    assert project.graph.nodes["lstm_2"].params["return_sequences"] is False
    summary = {op: what for op, _, what in result.op_summary()}
    assert summary["LSTM"] == "LSTM" and summary["Gemm"] == "Linear" and "Embedding" in summary["Gather"]
    text = "\n".join(result.lines())
    assert "check passed:   yes" in text and result.weights_path in text and "LSTM ×2" in text
    assert result.to_dict()["mapping"][0]["op_type"] == result.mapping[0].op_type


def test_imported_graph_is_laid_out_in_rows(round_trip):
    graph = round_trip("gru_two_branch")[3].project.graph
    spots = [n.position for n in graph.nodes.values()]
    assert len(set(spots)) == len(spots)  # no two nodes on one spot
    for e in graph.edges:  # data flows downwards
        assert graph.nodes[e.target].position[1] > graph.nodes[e.source].position[1]
    xs = {graph.nodes[n].position[0] for n in ("gru_1", "permute_1")}
    assert len(xs) == 2  # the two branches side by side


def test_layout_of_a_wide_graph_has_no_overlaps():
    g = engine.Graph()
    x = g.add_node("Input", shape=[4])
    branches = [g.add_node("Linear", out_features=4) for _ in range(5)]
    for b in branches:
        g.connect(x, b)
    cat = g.add_node("Concat", dim=1)
    for b in branches:
        g.connect(b, cat)
    pos = layered_layout(g)
    assert len(set(pos.values())) == len(pos)
    assert {pos[b][1] for b in branches} == {ROW}
    assert pos[cat][0] == pos[x][0]  # centred under its inputs


# ------------------------------------------------------------------------------------------ hand-made ONNX files


def _w(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32) * 0.5


def _save(tmp_path: Path, nodes, inputs, outputs, inits, name="model", opset=20, **kw) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *kw.pop("extra_opsets", [])],
                              ir_version=10, **kw)
    onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def _io(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def _check_against_ort(path: Path, result, batch: int = 4) -> None:
    """Independently of the importer's own check: onnxruntime and the imported network on another batch size."""
    model = _imported_model(result)
    inputs = make_sample(result.project.graph, model, batch, seed=3)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)})
    with torch.no_grad():
        _close(_outputs(model(*inputs)), _outputs(want))


def _types(result) -> list[str]:
    return [n.type for n in result.project.graph.nodes.values()]


def test_conv_transpose_pools_gemm_transb0_and_softmax(tmp_path):
    nodes = [
        helper.make_node("ConvTranspose", ["x", "wt", "bt"], ["a0"], strides=[2, 2], pads=[1, 1, 1, 1],
                         output_padding=[1, 1], name="up"),
        helper.make_node("Dropout", ["a0"], ["a1"], name="drop"),
        helper.make_node("Identity", ["a1"], ["a"], name="same"),
        helper.make_node("Sin", ["a"], ["unused"], name="dead_branch"),  # feeds no output: ignored
        helper.make_node("AveragePool", ["a"], ["b"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=0, name="avg"),
        helper.make_node("GlobalAveragePool", ["b"], ["c"], name="gap"),
        helper.make_node("Flatten", ["c"], ["d"], axis=1, name="flat"),
        helper.make_node("Gemm", ["d", "wg", "bg"], ["e"], transB=0, alpha=0.5, beta=2.0, name="fc"),
        helper.make_node("Softmax", ["e"], ["y"], axis=1, name="probs"),
    ]
    inits = {"wt": _w(3, 4, 3, 3), "bt": _w(4), "wg": _w(4, 5), "bg": _w(1, 5)}
    path = _save(tmp_path, nodes, [_io("x", ["n", 3, 6, 6])], [_io("y", ["n", 5])], inits)
    result = import_onnx(path)
    assert _types(result) == ["Input", "ConvTranspose2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Linear",
                              "Softmax"]
    params = {n.type: n.params for n in result.project.graph.nodes.values()}
    assert params["ConvTranspose2d"]["out_channels"] == 4 and params["ConvTranspose2d"]["output_padding"] == 1
    assert params["AvgPool2d"]["count_include_pad"] is False and params["AvgPool2d"]["stride"] == 2
    assert params["Softmax"]["dim"] == 1
    how = {m.name: m.how for m in result.mapping}
    assert how["drop"].startswith("dropped") and how["same"] == "dropped" and how["dead_branch"] == "unused"
    _check_against_ort(path, result)


def test_views_follow_layout_changes_and_realise_them_with_few_layers():
    """The view algebra on its own: a layer output (batch, 6, 4) split, transposed, picked and joined back."""
    v = View.of("conv", (6, 4), "float32")
    split = v.reshape([BATCH, 2, 3, 4])
    assert split is not None and split.shape == (BATCH, 2, 3, 4) and split.layout_steps() == [
        ("Reshape", {"shape": [2, 3, 4]})]
    assert split.reshape([BATCH, 6, 4]).layout_steps() == []  # merged back: the layer itself
    swapped = split.transpose([0, 2, 1, 3])
    assert swapped.layout_steps() == [("Reshape", {"shape": [2, 3, 4]}), ("Permute", {"dims": [1, 0, 2]})]
    assert swapped.reshape([BATCH, 3, 8]) is None  # mixes two layer dimensions: needs a Reshape layer
    assert v.reshape([BATCH, 24]) is None  # joining the two dimensions takes a layer: a Flatten
    assert reshape_step([BATCH, 6, 4], [BATCH, 24]) == ("Flatten", {"start_dim": 1, "end_dim": -1})
    assert reshape_step([BATCH, 6, 4], [BATCH, 4, 6]) == ("Reshape", {"shape": [4, 6]})
    assert v.transpose([1, 0, 2]).transpose([1, 0, 2]).layout_steps() == []
    with pytest.raises(LayoutError, match="batch"):
        v.transpose([1, 0, 2]).layout_steps()
    halves = [split.select(1, k) for k in range(2)]  # x[:, 0] and x[:, 1] ...
    with pytest.raises(LayoutError, match="part of a tensor"):
        halves[0].layout_steps()
    joined = stack(halves, 1)  # ... joined again along the axis after the picked one: x itself, as (batch, 6, 4)
    assert joined is not None and joined.shape == (BATCH, 6, 4) and joined.layout_steps() == []
    assert stack(halves[::-1], 1) is None  # in the other order it is not x


def test_matmul_add_transpose_concat_mul_and_silu(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="proj"),
        helper.make_node("Add", ["m", "b"], ["h"], name="proj_bias"),
        helper.make_node("Sigmoid", ["h"], ["s"], name="gate"),
        helper.make_node("Mul", ["h", "s"], ["silu"], name="swish"),
        helper.make_node("Transpose", ["silu"], ["t"], perm=[0, 2, 1], name="swap"),
        helper.make_node("Tanh", ["t"], ["u"], name="squash"),
        helper.make_node("Mul", ["u", "t"], ["v"], name="product"),
        helper.make_node("Concat", ["v", "t"], ["y"], axis=1, name="join"),
    ]
    inits = {"w": _w(4, 6), "b": _w(6)}
    path = _save(tmp_path, nodes, [_io("x", ["n", 5, 4])], [_io("y", ["n", 12, 5])], inits)
    result = import_onnx(path)
    assert _types(result) == ["Input", "Linear", "SiLU", "Permute", "Tanh", "Multiply", "Concat"]
    linear = next(n for n in result.project.graph.nodes.values() if n.type == "Linear")
    assert linear.params == {"out_features": 6, "bias": True}
    how = {m.name: m.how for m in result.mapping}
    assert how["proj_bias"] == f"folded into {linear.id}" and how["gate"].startswith("folded into the SiLU")
    assert how["swap"] == "layout"
    _check_against_ort(path, result)


def test_bidirectional_lstm_with_sequence_and_state_outputs(tmp_path):
    """Y (steps, dirs, batch, hidden) and Y_h (dirs, batch, hidden) turned batch-first by Transpose and Reshape,
    as PyTorch writes them: both become LSTM layers (return_sequences on and off) and no layout layer."""
    h, f = 3, 4
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="time_major"),
        helper.make_node("LSTM", ["xt", "W", "R", "B"], ["Y", "Y_h"], hidden_size=h, direction="bidirectional",
                         name="lstm"),
        helper.make_node("Transpose", ["Y"], ["Yt"], perm=[0, 2, 1, 3], name="dirs_last"),
        helper.make_node("Reshape", ["Yt", "seq_shape"], ["Ym"], name="merge_dirs"),
        helper.make_node("Transpose", ["Ym"], ["seq"], perm=[1, 0, 2], name="batch_first"),
        helper.make_node("Gather", ["Y_h", "zero"], ["fwd"], axis=0, name="forward_state"),
        helper.make_node("Gather", ["Y_h", "one"], ["bwd"], axis=0, name="backward_state"),
        helper.make_node("Concat", ["fwd", "bwd"], ["last"], axis=-1, name="both_states"),
    ]
    inits = {"W": _w(2, 4 * h, f), "R": _w(2, 4 * h, h), "B": _w(2, 8 * h),
             "seq_shape": np.array([0, 0, -1], dtype=np.int64), "zero": np.array(0, dtype=np.int64),
             "one": np.array(1, dtype=np.int64)}
    path = _save(tmp_path, nodes, [_io("x", ["n", 6, f])], [_io("seq", ["n", 6, 2 * h]), _io("last", ["n", 2 * h])],
                 inits)
    result = import_onnx(path)
    g = result.project.graph
    assert _types(result) == ["Input", "LSTM", "LSTM"]
    assert [g.nodes[n].params["return_sequences"] for n in g.sink_nodes()] == [True, False]
    assert all(g.nodes[n].params["bidirectional"] for n in g.sink_nodes())
    _check_against_ort(path, result)


def test_gru_and_rnn_operators_time_major(tmp_path):
    h, f = 5, 3
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="time_major"),
        helper.make_node("GRU", ["xt", "Wg", "Rg", "Bg"], ["Yg"], hidden_size=h, linear_before_reset=1, name="gru"),
        helper.make_node("Squeeze", ["Yg", "one"], ["ys"], name="drop_dirs"),
        helper.make_node("RNN", ["ys", "Wr", "Rr"], ["", "Hr"], hidden_size=h, activations=["Relu"], name="rnn"),
        helper.make_node("Squeeze", ["Hr", "zero"], ["y"], name="last"),
    ]
    inits = {"Wg": _w(1, 3 * h, f), "Rg": _w(1, 3 * h, h), "Bg": _w(1, 6 * h), "Wr": _w(1, h, h),
             "Rr": _w(1, h, h), "one": np.array([1], dtype=np.int64), "zero": np.array([0], dtype=np.int64)}
    path = _save(tmp_path, nodes, [_io("x", ["n", 7, f])], [_io("y", ["n", h])], inits)
    result = import_onnx(path)
    g = result.project.graph
    assert _types(result) == ["Input", "GRU", "RNN"]
    rnn = g.nodes[g.sink_nodes()[0]]
    assert rnn.params["nonlinearity"] == "relu" and rnn.params["bias"] is False
    _check_against_ort(path, result)


def test_batchnorm_activations_and_padded_convolutions(tmp_path):
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect", name="mirror"),
        helper.make_node("Conv", ["p", "wc"], ["c"], kernel_shape=[3, 3], name="conv_reflect"),
        helper.make_node("Add", ["c", "bc"], ["cb"], name="conv_bias"),
        helper.make_node("BatchNormalization", ["cb", "s", "o", "mu", "var"], ["bn"], epsilon=1e-3, name="bn"),
        helper.make_node("LeakyRelu", ["bn"], ["lr"], alpha=0.1, name="leaky"),
        helper.make_node("Conv", ["lr", "wc2", "bc2"], ["c2"], kernel_shape=[3, 3], auto_pad="SAME_UPPER",
                         name="conv_same"),
        helper.make_node("Elu", ["c2"], ["e"], alpha=0.5, name="elu"),
        helper.make_node("MaxPool", ["e"], ["mp"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("ReduceMean", ["mp", "axes"], ["gm"], keepdims=0, name="global_mean"),
        helper.make_node("LayerNormalization", ["gm", "ln_s", "ln_b"], ["y"], axis=-1, name="norm"),
    ]
    inits = {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "wc": _w(4, 2, 3, 3),
             "bc": _w(4, 1, 1), "s": _w(4) + 1, "o": _w(4), "mu": _w(4), "var": np.abs(_w(4)) + 0.5,
             "wc2": _w(4, 4, 3, 3), "bc2": _w(4), "axes": np.array([2, 3], dtype=np.int64),
             "ln_s": _w(4), "ln_b": _w(4)}
    path = _save(tmp_path, nodes, [_io("x", ["n", 2, 8, 8])], [_io("y", ["n", 4])], inits)
    result = import_onnx(path)
    assert _types(result) == ["Input", "Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d", "ELU", "MaxPool2d",
                              "AdaptiveAvgPool2d", "Flatten", "LayerNorm"]
    convs = [n.params for n in result.project.graph.nodes.values() if n.type == "Conv2d"]
    assert convs[0]["padding_mode"] == "reflect" and convs[0]["padding"] == 1 and convs[0]["bias"] is True
    assert convs[1]["padding"] == 1
    how = {m.name: m.how for m in result.mapping}
    assert how["mirror"].startswith("folded into the convolution") and how["conv_bias"].startswith("folded into")
    _check_against_ort(path, result)


def test_fixed_batch_legacy_reshape_and_outputs_used_inside(tmp_path):
    """A file exported with batch size 1 and view(1, -1); an output that also feeds another layer; and the same
    value given as two outputs (each gets an Identity, so the network returns them in the model's order)."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["flat"], name="view"),
        helper.make_node("Gemm", ["flat", "w", "b"], ["y"], transB=1, name="fc"),
        helper.make_node("Sigmoid", ["y"], ["p"], name="prob"),
    ]
    inits = {"shape": np.array([1, -1], dtype=np.int64), "w": _w(3, 8), "b": _w(3)}
    path = _save(tmp_path, nodes, [_io("x", [1, 2, 4])], [_io("p", [1, 3]), _io("y", [1, 3]), _io("p", [1, 3])],
                 inits)
    result = import_onnx(path)
    g = result.project.graph
    assert result.batch_size == 1
    assert [g.nodes[n].type for n in g.sink_nodes()] == ["Identity", "Identity", "Identity"]
    model = _imported_model(result)
    x = torch.randn(1, 2, 4)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    with torch.no_grad():
        _close(_outputs(model(x)), _outputs(want))
        assert model(torch.randn(5, 2, 4))[0].shape == (5, 3)  # the imported network takes any batch


def test_model_local_functions_are_inlined(tmp_path):
    body = [helper.make_node("Sigmoid", ["a"], ["s"]), helper.make_node("Mul", ["a", "s"], ["out"])]
    swish = helper.make_function("custom", "Swish", ["a"], ["out"], body, [helper.make_opsetid("", 20)])
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], transB=1, name="fc"),
             helper.make_node("Swish", ["h"], ["y"], domain="custom", name="act")]
    path = _save(tmp_path, nodes, [_io("x", ["n", 3])], [_io("y", ["n", 2])], {"w": _w(2, 3)},
                 extra_opsets=[helper.make_opsetid("custom", 1)], functions=[swish])
    result = import_onnx(path)
    assert _types(result) == ["Input", "Linear", "SiLU"]
    _check_against_ort(path, result)


# ------------------------------------------------------------------------------------------------- refusals


def _unsupported(tmp_path, nodes, inits, out_shape, in_shape=("n", 4), **kw) -> OnnxImportError:
    path = _save(tmp_path, nodes, [_io("x", list(in_shape))], [_io("y", list(out_shape))], inits, **kw)
    with pytest.raises(OnnxImportError) as info:
        import_onnx(path)
    assert info.value.kind == UNSUPPORTED
    return info.value


def test_unsupported_operator_is_named_with_its_node(tmp_path):
    e = _unsupported(tmp_path, [helper.make_node("Relu", ["x"], ["r"], name="ok"),
                                helper.make_node("Sin", ["r"], ["y"], name="wave_7")], {}, ["n", 4])
    assert e.op_type == "Sin" and e.node == "wave_7"
    assert "unsupported operator Sin at node 'wave_7'" in str(e) and "Supported:" in str(e)


def test_custom_domain_operator_is_named(tmp_path):
    e = _unsupported(tmp_path, [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example", name="frob")],
                     {}, ["n", 4], extra_opsets=[helper.make_opsetid("com.example", 1)])
    assert e.op_type == "Frobnicate" and e.node == "frob" and "com.example.Frobnicate" in str(e)


def test_non_max_suppression_is_named(tmp_path):
    nodes = [helper.make_node("NonMaxSuppression", ["x", "scores"], ["y"], name="nms")]
    path = _save(tmp_path, nodes, [_io("x", ["n", 6, 4])], [_io("y", ["k", 3], TensorProto.INT64)],
                 {"scores": _w(1, 1, 6)})
    with pytest.raises(OnnxImportError) as info:
        import_onnx(path)
    assert info.value.op_type == "NonMaxSuppression" and info.value.node == "nms"
    assert "NonMaxSuppression" in str(info.value) and "'nms'" in str(info.value)


@pytest.mark.parametrize("case", ["gru_reset_before", "lstm_cell_state", "asymmetric_pads", "constant_add",
                                  "matmul_of_tensors", "dynamic_steps"])
def test_layouts_no_layer_can_express_are_refused_with_the_node(tmp_path, case):
    h = 2
    if case == "gru_reset_before":
        nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
                 helper.make_node("GRU", ["t", "W", "R"], ["", "y"], hidden_size=h, name="gru0")]
        e = _unsupported(tmp_path, nodes, {"W": _w(1, 3 * h, 4), "R": _w(1, 3 * h, h)}, [1, "n", h],
                         in_shape=("n", 3, 4))
        assert e.node == "gru0" and "linear_before_reset" in str(e)
    elif case == "lstm_cell_state":
        nodes = [helper.make_node("LSTM", ["x", "W", "R"], ["", "", "c"], hidden_size=h, layout=1, name="lstm0"),
                 helper.make_node("Relu", ["c"], ["y"], name="use_c")]
        e = _unsupported(tmp_path, nodes, {"W": _w(1, 4 * h, 4), "R": _w(1, 4 * h, h)}, ["n", 1, h],
                         in_shape=("n", 3, 4))
        assert e.node == "use_c" and "cell state" in str(e) and "lstm0" in str(e)
    elif case == "asymmetric_pads":
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3], pads=[0, 2], name="c0")]
        e = _unsupported(tmp_path, nodes, {"w": _w(2, 1, 3)}, ["n", 2, 6], in_shape=("n", 1, 6))
        assert e.node == "c0" and "unevenly" in str(e)
    elif case == "constant_add":
        nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "k"], ["y"], name="shift")]
        e = _unsupported(tmp_path, nodes, {"k": _w(4)}, ["n", 4])
        assert e.node == "shift" and e.op_type == "Add" and "constant" in str(e)
    elif case == "matmul_of_tensors":
        nodes = [helper.make_node("MatMul", ["x", "x"], ["y"], name="square")]
        e = _unsupported(tmp_path, nodes, {}, ["n", 4, 4], in_shape=("n", 4, 4))
        assert e.node == "square" and "two tensors" in str(e)
    else:
        path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [_io("x", ["n", "steps", 4])],
                     [_io("y", ["n", "steps", 4])], {})
        with pytest.raises(OnnxImportError, match="dynamic size 'steps' in dimension 1"):
            import_onnx(path)


@pytest.mark.parametrize("kind", ["random", "text", "zip", "empty", "folder", "missing", "truncated"])
def test_files_that_are_not_onnx_are_refused(tmp_path, kind):
    path = tmp_path / "model.onnx"
    if kind == "random":
        path.write_bytes(RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("This is a README, not a model.\n" * 20)
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", b"\x80\x04N.")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    elif kind == "truncated":
        good = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [_io("x", ["n", 4])], [_io("y", ["n", 4])],
                     {"unused": _w(64, 64)}, name="good")
        path.write_bytes(good.read_bytes()[:-300])
    with pytest.raises(OnnxImportError) as info:
        import_onnx(path)
    e = info.value
    assert e.kind == UNREADABLE
    expected = {"folder": "is a folder", "missing": "there is no file"}.get(kind, "is not an ONNX model")
    assert expected in str(e) and str(path) in str(e)
    if kind == "zip":
        assert "zip archive" in str(e)


def _external_model(folder: Path) -> Path:
    """A real model whose weights live in weights.bin beside it."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "ext", [_io("x", ["n", 32])], [_io("y", ["n", 16])],
                              [numpy_helper.from_array(_w(16, 32), "w"), numpy_helper.from_array(_w(16), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    path = folder / "ext.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
                    size_threshold=0)
    return path


def _relocate(path: Path, location: str) -> None:
    model = onnx.load(path, load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save_model(model, path)


def test_external_data_inside_the_folder_is_read(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = _external_model(folder)
    assert (folder / "weights.bin").stat().st_size > 0
    result = import_onnx(path)
    assert result.check_passed and _types(result) == ["Input", "Linear"]


@pytest.mark.parametrize("how", ["parent", "absolute", "symlink", "missing"])
def test_external_data_outside_its_folder_is_refused(tmp_path, how):
    folder = tmp_path / "model"
    folder.mkdir()
    path = _external_model(folder)
    outside = tmp_path / "outside.bin"
    os.replace(folder / "weights.bin", outside)  # a real file: refused for where it is, not for being absent
    location = {"parent": "../outside.bin", "absolute": str(outside), "symlink": "link.bin",
                "missing": "gone.bin"}[how]
    if how == "symlink":
        (folder / "link.bin").symlink_to(outside)
    _relocate(path, location)
    with pytest.raises(OnnxImportError) as info:
        import_onnx(path, tmp_path / "out.layerloom")
    e = info.value
    assert e.kind == UNREADABLE
    if how == "missing":
        assert "gone.bin" in str(e) and "missing" in str(e)
    else:
        assert f"refers to external data outside its folder: {location}" in str(e)
    assert not (tmp_path / "out.layerloom").exists()


def test_a_mismatch_writes_nothing(tmp_path, monkeypatch):
    from engine.onnx_import import convert

    path = _save(tmp_path, [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")],
                 [_io("x", ["n", 3])], [_io("y", ["n", 2])], {"w": _w(2, 3)})
    real = convert.Converter.float_weights
    monkeypatch.setattr(convert.Converter, "float_weights", lambda self, a: real(self, a) + 0.5)
    with pytest.raises(OnnxImportError) as info:
        import_onnx(path, tmp_path / "m.layerloom")
    assert info.value.kind == MISMATCH and "does not match onnxruntime" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_existing_files_are_kept_unless_forced(tmp_path):
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], [_io("x", ["n", 4])], [_io("y", ["n", 4])], {})
    out = tmp_path / "net.layerloom"
    first = import_onnx(path, out)
    assert first.project_path == str(out) and Path(first.weights_path).name == "net.safetensors"
    with pytest.raises(OnnxImportError, match="already exist") as info:
        import_onnx(path, out)
    assert info.value.kind == EXISTS
    assert import_onnx(path, out, overwrite=True).check_passed
    assert import_onnx(path, tmp_path / "plain").project_path == str(tmp_path / "plain.layerloom")
    with pytest.raises(OnnxImportError, match="must end in .layerloom"):
        import_onnx(path, tmp_path / "net.onnx")


# ------------------------------------------------------------------------------------------------------- CLI


def test_cli_import_prints_mapping_weights_and_check(tmp_path, capsys, round_trip):
    onnx_path = round_trip("cnn_mnist")[2]
    out = tmp_path / "mnist.layerloom"
    assert main(["import", str(onnx_path), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Conv ×2" in text and "→ Conv2d" in text and "Gemm ×2" in text and "→ Linear" in text
    assert f"weights:        {tmp_path / 'mnist.safetensors'}" in text and "check passed:   yes" in text
    assert main(["summary", str(out)]) == 0
    # again: refused (exit 1) without --force, replaced with it
    assert main(["import", str(onnx_path), "-o", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["import", str(onnx_path), "-o", str(out), "--force", "--name", "digits"]) == 0
    assert load_project(out).name == "digits"


def test_cli_import_exit_statuses(tmp_path, capsys):
    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model")
    assert main(["import", str(bad), "-o", str(tmp_path / "a.layerloom")]) == 2
    assert "is not an ONNX model" in capsys.readouterr().err
    sin = _save(tmp_path, [helper.make_node("Sin", ["x"], ["y"], name="wave")], [_io("x", ["n", 4])],
                [_io("y", ["n", 4])], {})
    assert main(["import", str(sin), "-o", str(tmp_path / "b.layerloom")]) == 1
    err = capsys.readouterr().err
    assert "Sin" in err and "'wave'" in err
    folder = tmp_path / "ext"
    folder.mkdir()
    ext = _external_model(folder)
    _relocate(ext, "../outside.bin")
    assert main(["import", str(ext), "-o", str(tmp_path / "c.layerloom")]) == 2
    assert "outside its folder: ../outside.bin" in capsys.readouterr().err
    assert not any(p.suffix in (".layerloom", ".safetensors") for p in tmp_path.iterdir())
