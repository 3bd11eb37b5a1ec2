"""Transfer learning on real torch and real files: weights read from every kind of source (and a .pt that would
need code to run refused), name/shape matching and its report, frozen layers and per-layer learning rates in the
optimizer (schedules and exact resume included), the flags in the project file, training that starts from
transferred weights, and a replaced head that trains on a new number of classes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers.graphs import chain
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import load_file, save_file

import engine
from engine.builder import build_model
from engine.callbacks import Callback
from engine.errors import DataError, GraphError, ParamError, ProjectError, TrainingError
from engine.project import load_project, save_project
from engine.runner import prepare
from engine.runs import save_run
from engine.transfer import (
    INIT_KEY,
    TransferReport,
    load_weights_file,
    match_weights,
    replace_head,
    save_init_weights,
    transfer_into,
    transfer_to_project,
)


def mlp(inputs=2, hidden=16, classes=2, *extra):
    return chain([inputs], ("Linear", {"out_features": hidden}), ("ReLU", {}),
                 ("Linear", {"out_features": classes}), *extra)


def moons_project(graph=None, **training):
    return engine.Project(graph=graph or mlp(), name="moons",
                          data={"source": "moons", "params": {"n_samples": 240, "noise": 0.2},
                                "split": {"val": 0.2, "test": 0.0}},
                          loss={"type": "CrossEntropy", "params": {}},
                          optimizer={"type": "Adam", "params": {"lr": 0.02}},
                          training={"epochs": 2, "batch_size": 32, "device": "cpu", **training})


def state_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---- sources ----------------------------------------------------------------------------------------------

def test_safetensors_file(tmp_path):
    state = state_of(build_model(mlp(), seed=1))
    save_file(state, str(tmp_path / "w.safetensors"))
    got = load_weights_file(tmp_path / "w.safetensors")
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)


def test_project_trained_weights_then_newest_run_then_a_clear_error(tmp_path):
    project = moons_project()
    path = tmp_path / "src.layerloom"
    save_project(path, project)
    with pytest.raises(DataError, match="no trained weights yet: train it first"):
        load_weights_file(path)
    run_state = state_of(build_model(project.graph, seed=3))
    save_run(tmp_path / "runs" / "src-1", {}, {"epochs": []}, run_state)
    assert torch.equal(load_weights_file(path)["linear_1.weight"], run_state["linear_1.weight"])
    trained = state_of(build_model(project.graph, seed=4))  # what the app records wins over the runs
    save_file(trained, str(tmp_path / "trained.safetensors"))
    project.extra["trained"] = {"weights": "trained.safetensors", "status": "finished"}
    save_project(path, project)
    assert torch.equal(load_weights_file(path)["linear_1.weight"], trained["linear_1.weight"])


def test_run_folder_gives_its_final_weights(tmp_path):
    state = state_of(build_model(mlp(), seed=5))
    folder = save_run(tmp_path / "run", {}, {"epochs": [{"epoch": 1, "loss": 0.5}]}, state,
                      best_weights=state_of(build_model(mlp(), seed=6)))
    got = load_weights_file(folder)
    assert all(torch.equal(got[k], state[k]) for k in state)
    with pytest.raises(DataError, match="holds no weights"):
        load_weights_file(tmp_path)


def _onnx_mlp(path, op_after_relu=None):
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    w2, b2 = rng.normal(size=(3, 8)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "onnx::W1"), (b1, "onnx::B1"),
                                                         (w2, "onnx::W2"), (b2, "onnx::B2"))]
    nodes = [helper.make_node("Gemm", ["x", "onnx::W1", "onnx::B1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"])]
    last = "r"
    if op_after_relu:
        nodes.append(helper.make_node(op_after_relu, ["r"], ["s"]))
        last = "s"
    nodes.append(helper.make_node("Gemm", [last, "onnx::W2", "onnx::B2"], ["y"], transB=1))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return {"W1": w1, "B1": b1, "W2": w2, "B2": b2}


def test_onnx_file_imports_under_node_ids_and_falls_back_to_raw_names(tmp_path):
    arrays = _onnx_mlp(tmp_path / "m.onnx")
    got = load_weights_file(tmp_path / "m.onnx")  # imported as a graph: the names its layers get
    assert sorted(got) == ["linear_1.bias", "linear_1.weight", "linear_2.bias", "linear_2.weight"]
    model = build_model(mlp(4, 8, 3), seed=0)
    report = transfer_into(model, tmp_path / "m.onnx")
    assert report.loaded == 4 and not report.kept and {m[2] for m in report.matched} == {"name"}
    assert np.array_equal(model.linear_1.weight.detach().numpy(), arrays["W1"])
    assert np.array_equal(model.linear_2.bias.detach().numpy(), arrays["B2"])
    # an operator with no layer: the file does not import, its initializers still give weights by shape
    _onnx_mlp(tmp_path / "odd.onnx", op_after_relu="Hardmax")
    raw = load_weights_file(tmp_path / "odd.onnx")
    assert sorted(raw) == ["onnx::B1", "onnx::B2", "onnx::W1", "onnx::W2"]
    model = build_model(mlp(4, 8, 3), seed=0)
    report = transfer_into(model, raw)
    assert [(t, s, how) for t, s, how in report.matched] == [
        ("linear_1.weight", "onnx::W1", "shape"), ("linear_1.bias", "onnx::B1", "shape"),
        ("linear_2.weight", "onnx::W2", "shape"), ("linear_2.bias", "onnx::B2", "shape")]
    assert np.array_equal(model.linear_1.weight.detach().numpy(), arrays["W1"])


def test_pt_state_dict_plain_nested_and_ddp_prefixed(tmp_path):
    state = state_of(build_model(mlp(), seed=7))
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}, "lr": 0.1},
               tmp_path / "ckpt.pth")
    for name in ("plain.pt", "ckpt.pth"):
        got = load_weights_file(tmp_path / name)
        assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
    torch.save({"epoch": 1, "note": "no tensors"}, tmp_path / "empty.pt")
    with pytest.raises(DataError, match="holds no tensors"):
        load_weights_file(tmp_path / "empty.pt")


def _leave_marker(path):  # what reading the refused file would run, were it read by running its code
    Path(path).write_text("ran")
    return {}


class Opaque:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_leave_marker, (self.marker,))


def test_pt_that_needs_code_to_run_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "RAN"
    torch.save({"w": torch.zeros(2), "extra": Opaque(str(marker))}, tmp_path / "model.pt")
    with pytest.raises(DataError, match="could only be read by running code") as info:
        load_weights_file(tmp_path / "model.pt")
    assert "state_dict()" in str(info.value)
    assert not marker.exists()


def test_missing_and_unknown_files_are_clear(tmp_path):
    with pytest.raises(DataError, match="there is no file or folder"):
        load_weights_file(tmp_path / "nope.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a weights file LayerLoom knows"):
        load_weights_file(tmp_path / "notes.txt")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(DataError, match="not a readable .safetensors"):
        load_weights_file(tmp_path / "bad.safetensors")


# ---- matching and its report ------------------------------------------------------------------------------

def test_match_by_name_then_shape_with_mismatches_kept_and_unused():
    t = {"a.weight": torch.zeros(4, 3), "a.bias": torch.zeros(4), "b.weight": torch.zeros(5, 4),
         "b.bias": torch.zeros(5), "c.weight": torch.zeros(2, 5), "c.bias": torch.zeros(2),
         "n.num_batches_tracked": torch.zeros((), dtype=torch.int64)}
    s = {"a.weight": torch.ones(4, 3), "a.bias": torch.ones(4),              # same names and shapes
         "c.weight": torch.ones(7, 5), "c.bias": torch.ones(7),              # same names, other shapes
         "x.bias": torch.full((5,), 2.0), "x.weight": torch.full((5, 4), 2.0),  # other names, same shapes
         "y.weight": torch.ones(9), "steps": torch.ones(())}                 # nothing fits
    r = match_weights(t, s, source_name="src.pt")
    assert r.matched == [("a.weight", "a.weight", "name"), ("a.bias", "a.bias", "name"),
                         ("b.weight", "x.weight", "shape"), ("b.bias", "x.bias", "shape")]
    assert r.shape_mismatches == [("c.weight", "c.weight", (2, 5), (7, 5)), ("c.bias", "c.bias", (2,), (7,))]
    assert r.kept == ["c.weight", "c.bias", "n.num_batches_tracked"]  # a float scalar never fills an int64 one
    assert r.unused == ["y.weight", "steps"]
    assert r.summary.startswith("4 of 7 tensors loaded: 2 by name, 2 by shape from src.pt; 3 kept their initial "
                                "values: c (weight, bias), n (num_batches_tracked).")
    assert "c.weight is 2×5 here but 7×5 in the source" in r.summary and "2 source tensors not used" in r.summary
    json.dumps(r.to_dict())  # plain data
    by_name = match_weights(t, s, by_shape=False)
    assert [m[0] for m in by_name.matched] == ["a.weight", "a.bias"]
    only_b = match_weights(t, s, layers=["b"])
    assert [m[0] for m in only_b.matched] == ["b.weight", "b.bias"] and "a.weight" in only_b.kept


def test_nothing_fits_says_so():
    r = match_weights({"a.weight": torch.zeros(2, 2)}, {"z": torch.zeros(3)})
    assert isinstance(r, TransferReport) and r.loaded == 0 and "Nothing fits" in r.summary


def test_transfer_into_loads_only_the_matched_tensors():
    src = build_model(chain([2], ("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 5})),
                      seed=1)
    model = build_model(mlp(), seed=2)
    before = state_of(model)
    r = transfer_into(model, src.state_dict())
    assert [m[0] for m in r.matched] == ["linear_1.weight", "linear_1.bias"]
    assert torch.equal(model.linear_1.weight, src.linear_1.weight)
    assert torch.equal(model.linear_2.weight, before["linear_2.weight"])


# ---- frozen layers and learning-rate factors --------------------------------------------------------------

def test_frozen_layers_do_not_change_while_the_others_learn():
    graph = chain([2], ("Linear", {"out_features": 16}), ("BatchNorm1d", {}), ("ReLU", {}),
                  ("Linear", {"out_features": 2}))
    graph.set_training_flags("linear_1", frozen=True)
    graph.set_training_flags("batchnorm1d_1", frozen=True)
    graph.set_training_flags("linear_2", lr_factor=0.5)
    run = prepare(moons_project(graph))
    model = run.trainer.module
    assert not model.linear_1.weight.requires_grad and model.linear_2.weight.requires_grad
    groups = run.trainer.optimizer.param_groups
    assert len(groups) == 1 and groups[0]["lr"] == pytest.approx(0.01) and groups[0]["lr_factor"] == 0.5
    assert {id(p) for p in groups[0]["params"]} == {id(model.linear_2.weight), id(model.linear_2.bias)}
    before = state_of(model)
    assert run.trainer.fit(run.data).ok
    after = model.state_dict()
    for k in ("linear_1.weight", "linear_1.bias", "batchnorm1d_1.weight", "batchnorm1d_1.running_mean",
              "batchnorm1d_1.running_var", "batchnorm1d_1.num_batches_tracked"):
        assert torch.equal(after[k], before[k]), k
    assert not torch.equal(after["linear_2.weight"], before["linear_2.weight"])
    model.train()
    assert model.training and not model.batchnorm1d_1.training  # a frozen BatchNorm stays in evaluation mode


def test_lr_factor_groups_survive_one_cycle_and_exact_resume(tmp_path):
    graph = mlp()
    graph.set_training_flags("linear_1", lr_factor=0.1)
    project = moons_project(graph, epochs=3, checkpoint_dir=str(tmp_path / "a"))
    project.schedule = {"type": "one-cycle", "params": {}}
    straight = prepare(project)
    lrs = []

    class Watch(Callback):
        def on_train_batch_end(self, trainer, logs):
            lrs.append([g["lr"] for g in trainer.optimizer.param_groups])

    straight.trainer.callbacks.append(Watch())
    assert straight.trainer.fit(straight.data).ok
    assert [g["lr_factor"] for g in straight.trainer.optimizer.param_groups] == [1.0, 0.1]
    assert len(lrs) > 5 and all(b == pytest.approx(a * 0.1) for a, b in lrs)
    assert max(a for a, _ in lrs) == pytest.approx(0.02, rel=0.05)  # the one-cycle peak is the optimizer's lr

    class StopAfterTwo(Callback):
        def on_train_epoch_end(self, trainer, logs):
            if logs["epoch"] == 2:
                trainer.request_stop("test")

    project.training["checkpoint_dir"] = str(tmp_path / "b")
    first = prepare(project, callbacks=[StopAfterTwo()])
    assert first.trainer.fit(first.data).epochs_done == 2
    second = prepare(project)
    assert second.trainer.fit(second.data, resume_from=tmp_path / "b" / "last").ok
    a, b = straight.trainer.module.state_dict(), second.trainer.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_layer_frozen_is_refused_before_training():
    graph = mlp()
    graph.set_training_flags("linear_1", frozen=True)
    graph.set_training_flags("linear_2", frozen=True)
    with pytest.raises(TrainingError, match="unfreeze at least one layer"):
        prepare(moons_project(graph))


def test_flags_round_trip_undo_and_bad_values(tmp_path):
    graph = mlp()
    plain = json.dumps(graph.to_dict())
    assert "frozen" not in plain and "lr_factor" not in plain  # files without the flags stay as they were
    assert graph.set_training_flags("linear_1", frozen=True, lr_factor=0.25) == {"frozen": False, "lr_factor": 1.0}
    assert graph.copy().nodes["linear_1"].frozen and graph.copy().nodes["linear_1"].lr_factor == 0.25
    save_project(tmp_path / "p.layerloom", engine.Project(graph=graph))
    text = (tmp_path / "p.layerloom").read_text()
    back = load_project(tmp_path / "p.layerloom").graph
    assert back.nodes["linear_1"].frozen and back.nodes["linear_1"].lr_factor == 0.25
    assert not back.nodes["linear_2"].frozen and back.nodes["linear_2"].lr_factor == 1.0
    assert back.set_training_flags("linear_1", frozen=False) == {"frozen": True}  # the old value, for an undo
    with pytest.raises(ParamError, match="above 0"):
        back.set_training_flags("linear_1", lr_factor=0)
    assert back.nodes["linear_1"].lr_factor == 0.25  # refused: unchanged
    for old, new, where, words in (('"frozen": true', '"frozen": "yes"', ".frozen", "true or false"),
                                   ('"lr_factor": 0.25', '"lr_factor": -1', ".lr_factor", "above 0"),
                                   ('"lr_factor": 0.25', '"lr_factor": "fast"', ".lr_factor", "must be a number")):
        assert old in text
        (tmp_path / "bad.layerloom").write_text(text.replace(old, new))
        with pytest.raises(ProjectError, match=words) as info:
            load_project(tmp_path / "bad.layerloom")
        assert info.value.where == f"graph.nodes[1]{where}"


# ---- starting from transferred weights --------------------------------------------------------------------

def test_runner_starts_from_the_saved_init_weights(tmp_path):
    source = build_model(chain([2], ("Linear", {"out_features": 16}), ("ReLU", {}),
                               ("Linear", {"out_features": 3})), seed=11)
    save_file(state_of(source), str(tmp_path / "source.safetensors"))
    project = moons_project()
    weights, report = transfer_to_project(project, "source.safetensors", base_dir=tmp_path)
    assert sorted(weights) == ["linear_1.bias", "linear_1.weight"] and report.summary.startswith("2 of 4")
    path = save_init_weights(project, tmp_path / "p.layerloom", weights, source="source.safetensors", report=report)
    assert path == tmp_path / "p.init.safetensors" and sorted(load_file(str(path))) == sorted(weights)
    save_project(tmp_path / "p.layerloom", project)
    reopened = load_project(tmp_path / "p.layerloom")
    assert reopened.extra[INIT_KEY]["weights"] == "p.init.safetensors"
    run = prepare(reopened, base_dir=tmp_path)
    model, fresh = run.trainer.module, build_model(project.graph, seed=0)
    assert torch.equal(model.linear_1.weight, source.linear_1.weight)
    assert torch.equal(model.linear_2.weight, fresh.linear_2.weight)  # not transferred: initialised as usual
    assert any("started from 2 of 4 tensors" in n for n in run.trainer.notes)
    path.unlink()
    with pytest.raises(DataError, match="p.init.safetensors") as info:
        prepare(reopened, base_dir=tmp_path)
    assert "transfer the weights again" in str(info.value)


def test_replace_head_then_the_network_trains_on_a_new_class_count():
    graph = mlp(4, 16, 2, ("Dropout", {"p": 0.0}))
    changes = replace_head(graph, 3)
    assert changes == [("linear_2", {"out_features": 2}, {"out_features": 3})]
    assert replace_head(graph, 3) == []  # already right
    project = engine.Project(graph=graph, name="iris", data={"source": "iris", "params": {},
                                                              "split": {"val": 0.3, "test": 0.0}},
                             loss={"type": "CrossEntropy", "params": {}},
                             optimizer={"type": "Adam", "params": {"lr": 0.03}},
                             training={"epochs": 12, "batch_size": 16, "device": "cpu"})
    run = prepare(project)
    result = run.trainer.fit(run.data)
    assert result.ok and result.history["epochs"][-1]["val_acc"] > 0.8  # three classes: chance is 1/3
    for nid, old, _new in changes:  # what an undo does
        graph.set_params(nid, old)
    assert graph.nodes["linear_2"].params["out_features"] == 2


def test_replace_head_needs_a_deciding_layer():
    with pytest.raises(GraphError, match="no Linear or convolution decides"):
        replace_head(chain([4], ("ReLU", {})), 3)
    with pytest.raises(GraphError, match="whole number"):
        replace_head(mlp(), 0)
    # a later layer that needs the old size: refused, and the graph is left as it was
    graph = chain([4], ("Linear", {"out_features": 6}), ("Reshape", {"shape": [2, 3]}))
    with pytest.raises(GraphError, match="would break reshape_1"):
        replace_head(graph, 5)
    assert graph.nodes["linear_1"].params["out_features"] == 6


def test_transfer_command_writes_the_start_weights_and_flags(tmp_path, capsys):
    import argparse

    from engine.transfer import add_transfer_parser

    parser = argparse.ArgumentParser(prog="layerloom")
    add_transfer_parser(parser.add_subparsers(dest="command"))
    source = build_model(mlp(), seed=21)
    save_file(state_of(source), str(tmp_path / "src.safetensors"))
    save_project(tmp_path / "p.layerloom", moons_project(mlp(2, 16, 3)))
    args = parser.parse_args(["transfer", str(tmp_path / "p.layerloom"), str(tmp_path / "src.safetensors"),
                              "--freeze", "loaded", "--lr-factor", "linear_2=0.5", "--classes", "2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "linear_2: out_features 3 → 2" in out and "4 of 4 tensors loaded" in out
    project = load_project(tmp_path / "p.layerloom")
    assert project.graph.nodes["linear_1"].frozen and project.graph.nodes["linear_2"].lr_factor == 0.5
    assert project.extra[INIT_KEY]["weights"] == "p.init.safetensors"
    assert torch.equal(load_file(str(tmp_path / "p.init.safetensors"))["linear_1.weight"], source.linear_1.weight)
    args = parser.parse_args(["transfer", str(tmp_path / "p.layerloom"), str(tmp_path / "missing.pt")])
    assert args.func(args) == 2 and "there is no file or folder" in capsys.readouterr().err


def test_a_layer_inside_a_block_keeps_its_own_lr_factor():
    from engine.blocks import edit_inner, group_into_block
    from engine.builder import build_model
    from engine.graph import Graph
    from engine.runner import parameter_groups

    g = Graph()
    x = g.add_node("Input", shape=[4])
    a = g.add_node("Linear", {"out_features": 6})
    b = g.add_node("Linear", {"out_features": 3})
    g.connect(x, a)
    g.connect(a, b)
    block, _ = group_into_block(g, [a, b], name="pair")
    edit_inner(g, block, lambda inner: inner.set_training_flags(a, lr_factor=0.1))
    model = build_model(g, seed=0)
    groups = parameter_groups(model, 1e-2)
    names = {id(p): n for n, p in model.named_parameters()}
    by_lr = {round(grp["lr"], 6): sorted(names[id(p)] for p in grp["params"]) for grp in groups}
    assert by_lr == {0.01: [f"{block}.{b}.bias", f"{block}.{b}.weight"],
                     0.001: [f"{block}.{a}.bias", f"{block}.{a}.weight"]}
