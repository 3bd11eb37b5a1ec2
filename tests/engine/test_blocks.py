"""Composite blocks: group and ungroup (exactly undoable, nested, several inputs and outputs), exposed parameters,
shape inference inside blocks, the block library, the project file, building with nested weight names, every
export format on a nested block, and each shipped block built, trained a step and exported to ONNX."""
from __future__ import annotations

import importlib.util
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from engine import BuildError, CycleError, Graph, GraphError, ParamError, ProjectError, analyze, build_model
from engine.blocks import (
    BlockDefinition,
    block_parameters,
    definition_of,
    edit_inner,
    exposed_values,
    group_into_block,
    import_block_file,
    instantiate_block,
    list_blocks,
    load_block,
    read_block_file,
    redo,
    save_block,
    set_inner_params,
    shipped_blocks,
    undo,
    ungroup,
    write_block_file,
)
from engine.export import export_model, generate_code, write_safetensors
from engine.export.core import onnx_runner
from engine.layers import TensorInfo
from engine.project import Project, load_project, loads_project, save_project
from engine.shapes import infer_node


@pytest.fixture(autouse=True)
def library(tmp_path, monkeypatch):
    folder = tmp_path / "library"
    monkeypatch.setenv("LAYERLOOM_BLOCKS_DIR", str(folder))
    return folder


def branchy() -> Graph:
    """Two inputs; add_1 takes relu_1 and linear_2 (two inputs crossing into {relu_1, add_1, linear_3}); add_1 feeds
    linear_5 and linear_3 feeds concat_1 at its second slot (two outputs crossing out)."""
    g = Graph()
    g.add_node("Input", {"shape": [4]}, position=(0, 0))
    g.add_node("Input", {"shape": [4]}, position=(300, 0))
    g.add_node("Linear", {"out_features": 6}, position=(0, 100))
    g.add_node("ReLU", position=(0, 200))
    g.add_node("Linear", {"out_features": 6}, position=(300, 100))
    g.add_node("Add", position=(100, 300))
    g.add_node("Linear", {"out_features": 6}, position=(100, 400))
    g.add_node("Linear", {"out_features": 6}, position=(-100, 400))
    g.add_node("Concat", position=(0, 500))
    g.add_node("Linear", {"out_features": 2}, position=(0, 600))
    for s, t in [("input_1", "linear_1"), ("linear_1", "relu_1"), ("input_2", "linear_2"), ("relu_1", "add_1"),
                 ("linear_2", "add_1"), ("add_1", "linear_3"), ("add_1", "linear_4"), ("linear_4", "concat_1"),
                 ("linear_3", "concat_1"), ("linear_2", "concat_1"), ("concat_1", "linear_5")]:
        g.connect(s, t)
    return g


def residual_chain() -> Graph:
    """input → [conv, bn, relu, conv, add(skip)] → relu → [conv, add(skip)] → flatten → linear."""
    g = Graph()
    i = g.add_node("Input", {"shape": [4, 6, 6]})
    prev = i
    for _ in range(2):
        c1 = g.add_node("Conv2d", {"out_channels": 4, "padding": 1})
        bn = g.add_node("BatchNorm2d")
        r = g.add_node("ReLU")
        c2 = g.add_node("Conv2d", {"out_channels": 4, "padding": 1})
        a = g.add_node("Add")
        for s, t in [(prev, c1), (c1, bn), (bn, r), (r, c2), (c2, a), (prev, a)]:
            g.connect(s, t)
        prev = g.add_node("ReLU")
        g.connect(a, prev)
    f = g.add_node("Flatten")
    g.connect(prev, f)
    g.connect(f, g.add_node("Linear", {"out_features": 3}))
    return g


def renamed(state: dict, mapping: dict[str, str]) -> dict:
    """A state dict with the first part of each name replaced (conv2d_1.weight → res_block_1.conv2d_1.weight)."""
    out = {}
    for k, v in state.items():
        head, _, rest = k.partition(".")
        out[f"{mapping.get(head, head)}.{rest}"] = v
    return out


def outputs_of(graph: Graph, state: dict, inputs: tuple) -> torch.Tensor:
    model = build_model(graph).train(False)
    model.load_state_dict(state)
    with torch.no_grad():
        return model(*inputs)


# ---- group / ungroup ---------------------------------------------------------------------------------------------

def test_grouping_several_inputs_and_outputs_keeps_wires_in_place_and_undoes_exactly():
    g = branchy()
    before = g.to_dict()
    bid, info = group_into_block(g, ["linear_3", "relu_1", "add_1"], name="mixer")
    assert bid == "mixer_1" and info["block"] == bid
    # inputs: the outside sources in the order met (relu_1 ← linear_1, then add_1's second input linear_2)
    assert g.inputs_of(bid) == ["linear_1", "linear_2"]
    # two results leave the selection (add_1 → linear_4, linear_3 → concat_1): one Pick each, in node order
    assert g.outputs_of(bid) == ["pick_1", "pick_2"]
    assert [g.nodes[p].params["index"] for p in ("pick_1", "pick_2")] == [0, 1]
    assert g.inputs_of("linear_4") == ["pick_1"]
    assert g.inputs_of("concat_1") == ["linear_4", "pick_2", "linear_2"]  # the crossing kept its slot
    params = g.nodes[bid].params
    inner = Graph.from_dict(params["graph"])
    assert list(inner.nodes) == ["in_1", "in_2", "relu_1", "add_1", "linear_3", "out_1", "out_2"]
    assert inner.inputs_of("add_1") == ["relu_1", "in_2"]
    assert inner.inputs_of("out_1") == ["add_1"] and inner.inputs_of("out_2") == ["linear_3"]
    assert g.nodes[bid].position == pytest.approx(((0 + 100 + 100) / 3, (200 + 300 + 400) / 3))
    assert analyze(g).ok
    after = g.to_dict()
    undo(g, info)
    assert g.to_dict() == before
    redo(g, info)
    assert g.to_dict() == after


def test_grouping_preserves_what_the_network_computes():
    g = branchy()
    torch.manual_seed(0)
    state = build_model(g, seed=3).state_dict()
    x = (torch.randn(5, 4), torch.randn(5, 4))
    want = outputs_of(g, state, x)
    bid, _ = group_into_block(g, ["relu_1", "add_1", "linear_3"], name="mixer")
    got = outputs_of(g, renamed(state, {"linear_3": f"{bid}.linear_3"}), x)
    assert torch.equal(got, want)


def test_ungroup_rewires_and_undoes_exactly():
    g = branchy()
    original = g.to_dict()
    bid, _ = group_into_block(g, ["relu_1", "add_1", "linear_3"], name="mixer")
    grouped = g.to_dict()
    info = ungroup(g, bid)
    assert info["nodes"] == ["relu_1", "add_1", "linear_3"]
    assert bid not in g.nodes and "pick_1" not in g.nodes
    # the same nodes and each one's inputs in the same order (the ungrouped nodes now sit together in node order)
    by_id = {n["id"]: n for n in original["nodes"]}
    assert {n["id"]: n for n in g.to_dict()["nodes"]} == by_id
    for nid in g.nodes:
        assert g.inputs_of(nid) == [e["source"] for e in original["edges"] if e["target"] == nid], nid
    undo(g, info)
    assert g.to_dict() == grouped


def test_group_then_ungroup_of_a_contiguous_selection_gives_back_the_same_file():
    g = residual_chain()
    before = g.to_dict()
    bid, _ = group_into_block(g, ["conv2d_1", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"], name="res_block")
    ungroup(g, bid)
    assert g.to_dict() == before


def test_nested_blocks_group_ungroup_and_undo():
    g = residual_chain()
    states = [g.to_dict()]
    inner_id, i1 = group_into_block(g, ["conv2d_1", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"],
                                    name="res_block")
    states.append(g.to_dict())
    outer_id, i2 = group_into_block(g, [inner_id, "relu_2"], name="stage")
    states.append(g.to_dict())
    assert (inner_id, outer_id) == ("res_block_1", "stage_1")
    inner = Graph.from_dict(g.nodes[outer_id].params["graph"])
    assert inner.nodes[inner_id].type == "Block"
    analysis = analyze(g)
    assert analysis.ok and analysis.nodes[outer_id].params == analysis.nodes[outer_id].inner.nodes[inner_id].params
    paths = [p for p, _ in analysis.walk()]
    assert "stage_1.res_block_1.conv2d_1" in paths
    i3 = ungroup(g, outer_id)  # the inner block comes back as a block
    assert g.nodes[inner_id].type == "Block" and g.inputs_of("relu_2") == [inner_id]
    for info, state in zip((i3, i2, i1), reversed(states)):  # each undo gives back the state before that edit
        undo(g, info)
        assert g.to_dict() == state


def test_ungroup_gives_fresh_ids_to_inner_nodes_whose_ids_are_taken():
    g = residual_chain()
    bid, _ = group_into_block(g, ["conv2d_1", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"], name="res_block")
    taken = g.add_node("Conv2d", {"out_channels": 4}, node_id="conv2d_1")  # another layer takes the freed id
    g.connect("relu_2", taken)
    before = g.to_dict()
    info = ungroup(g, bid)
    assert info["nodes"] == ["conv2d_5", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"]
    assert g.inputs_of("batchnorm2d_1") == ["conv2d_5"] and g.inputs_of("conv2d_5") == ["input_1"]
    undo(g, info)
    assert g.to_dict() == before


@pytest.mark.parametrize("selection, words", [
    ([], "select the layers"),
    (["nope"], "no node 'nope'"),
    (["input_1", "linear_1"], "Input"),
    (["linear_1", "add_1"], "relu_1 is fed by the selection and feeds it again"),
])
def test_grouping_refusals_change_nothing(selection, words):
    g = branchy()
    before = g.to_dict()
    with pytest.raises(GraphError, match=words):
        group_into_block(g, selection)
    assert g.to_dict() == before


def test_a_block_with_several_outputs_needs_its_picks():
    g = branchy()
    bid, _ = group_into_block(g, ["relu_1", "add_1", "linear_3"])
    with pytest.raises(GraphError, match=f"{bid} gives several outputs and its Pick nodes must go with it"):
        group_into_block(g, [bid, "pick_1", "linear_4"])  # pick_2 would be left outside
    with pytest.raises(GraphError, match="add pick_1 to the selection"):
        group_into_block(g, [bid, "linear_4"])
    with pytest.raises(GraphError, match=f"pick_1 takes one output of {bid}: select {bid} too"):
        group_into_block(g, ["pick_1", "linear_4"])
    g.disconnect("pick_1", "linear_4")
    g.connect(bid, "linear_4", 0)
    errors = analyze(g).errors
    assert [e.node_id for e in errors] == ["linear_4"] and "put a Pick" in str(errors[0].error)
    g.disconnect(bid, "linear_4")
    g.connect("pick_1", "linear_4")
    g.set_params("pick_2", index=2)
    assert "gives only 2" in str(analyze(g).nodes["pick_2"].error)


def random_graph(rng: random.Random) -> Graph:
    """One or two Inputs of (4,) and 3 to 10 Linear, ReLU, Add (of 2 or 3 earlier nodes) and Concat + Linear."""
    g = Graph()
    ids = [g.add_node("Input", {"shape": [4]}) for _ in range(rng.randint(1, 2))]
    for _ in range(rng.randint(3, 10)):
        kind = rng.choice(["Linear", "ReLU", "Add", "Concat"])
        if kind in ("Add", "Concat") and len(ids) >= 2:
            node = g.add_node(kind)
            for s in rng.sample(ids, rng.randint(2, min(3, len(ids)))):
                g.connect(s, node)
            if kind == "Concat":
                g.connect(node, g.add_node("Linear", {"out_features": 4}))
                node = list(g.nodes)[-1]
        else:
            node = g.add_node(kind if kind != "Add" and kind != "Concat" else "ReLU",
                              {"out_features": 4} if kind == "Linear" else {})
            g.connect(rng.choice(ids), node)
        ids.append(node)
    return g


def test_random_selections_group_exactly_and_keep_the_function():
    grouped = 0
    for seed in range(150):
        rng = random.Random(seed)
        g = random_graph(rng)
        layers = [n for n in g.nodes if g.nodes[n].type != "Input"]
        selection = rng.sample(layers, rng.randint(1, len(layers)))
        before = g.to_dict()
        state = build_model(g, seed=0).state_dict()
        xs = tuple(torch.randn(3, 4) for _ in g.input_nodes())
        want = outputs_of(g, state, xs)
        try:
            bid, info = group_into_block(g, selection, name="blk")
        except CycleError:  # an outside node between two selected ones: refused, nothing changed
            assert g.to_dict() == before, seed
            continue
        grouped += 1
        got = outputs_of(g, renamed(state, {n: f"{bid}.{n}" for n in selection}), xs)
        got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
        # the sinks keep their order unless one of them went into the block
        assert sorted(float(t.sum()) for t in got) == pytest.approx(sorted(float(t.sum()) for t in want)), seed
        after = g.to_dict()
        undo(g, info)
        assert g.to_dict() == before, seed
        redo(g, info)
        assert g.to_dict() == after, seed
        back = ungroup(g, bid)
        original = Graph.from_dict(before)
        assert set(g.nodes) == set(original.nodes), seed
        assert all(g.inputs_of(n) == original.inputs_of(n) for n in g.nodes), seed
        undo(g, back)
        assert g.to_dict() == after, seed
    assert grouped > 60


# ---- exposed parameters ------------------------------------------------------------------------------------------

def test_exposed_parameters_set_every_target_and_undo_exactly():
    g = Graph()
    i = g.add_node("Input", {"shape": [8, 6, 6]})
    bid = instantiate_block(g, "res_block", (0, 100), values={"channels": 8})
    g.connect(i, bid)
    assert exposed_values(g.nodes[bid].params) == {"channels": 8}
    [channels] = block_parameters(g.nodes[bid])
    assert channels.name == "channels" and channels.value == 8 and channels.param.kind == "int"
    assert channels.targets == ("conv2d_1.out_channels", "conv2d_2.out_channels")
    before = g.to_dict()
    old = g.set_params(bid, channels=12)
    inner = Graph.from_dict(g.nodes[bid].params["graph"])
    assert [inner.nodes[n].params["out_channels"] for n in ("conv2d_1", "conv2d_2")] == [12, 12]
    assert set(old) == {"graph"}
    error = analyze(g).nodes[bid].error  # 12 channels + an 8-channel skip: the inner Add says so
    assert str(error).startswith("inside res_block_1: add_1: Add needs inputs of the same shape")
    assert error.inner_path == ["add_1"] and error.node_id == bid
    g.set_params(bid, old)
    assert g.to_dict() == before
    with pytest.raises(ParamError, match="channels = 0 does not fit conv2d_1.out_channels"):
        g.set_params(bid, channels=0)
    with pytest.raises(ParamError, match="has no parameter 'width'"):
        g.set_params(bid, width=3)
    with pytest.raises(ParamError, match="no node 'conv2d_9'"):
        g.set_params(bid, exposed={"channels": ["conv2d_9.out_channels"]})
    assert g.to_dict() == before


def test_exposed_parameter_of_a_nested_block_and_inner_edits():
    g = residual_chain()
    inner_id, _ = group_into_block(g, ["conv2d_1", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"], name="res_block",
                                   exposed={"channels": ["conv2d_1.out_channels", "conv2d_2.out_channels"]})
    outer_id, _ = group_into_block(g, [inner_id, "relu_2"], name="stage",
                                   exposed={"width": [f"{inner_id}.channels"]})
    assert exposed_values(g.nodes[outer_id].params) == {"width": 4}
    g.set_params(outer_id, width=5)
    nested = Graph.from_dict(g.nodes[outer_id].params["graph"]).nodes[inner_id]
    assert exposed_values(nested.params) == {"channels": 5}
    old = set_inner_params(g, [outer_id, inner_id, "conv2d_2"], {"kernel_size": 5, "padding": 2})
    nested = Graph.from_dict(g.nodes[outer_id].params["graph"]).nodes[inner_id]
    assert Graph.from_dict(nested.params["graph"]).nodes["conv2d_2"].params["kernel_size"] == 5
    g.set_params(outer_id, old)
    assert exposed_values(g.nodes[outer_id].params) == {"width": 5}
    before = g.to_dict()
    with pytest.raises(ParamError, match="exposed width points at res_block_1.channels"):
        edit_inner(g, outer_id, lambda inner: inner.set_params(inner_id, exposed={}))
    assert g.to_dict() == before


# ---- shapes, building and training -------------------------------------------------------------------------------

def test_block_totals_and_inner_errors_in_the_analysis():
    g = residual_chain()
    plain = analyze(g)
    bid, _ = group_into_block(g, ["conv2d_1", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"], name="res_block")
    a = analyze(g)
    block = a.blocks[bid]
    inner_ids = ["conv2d_1", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"]
    assert block.params == sum(plain.nodes[n].params for n in inner_ids) > 0
    assert block.macs == sum(plain.nodes[n].macs for n in inner_ids)
    assert a.total_params == plain.total_params and a.total_macs == plain.total_macs
    assert block.shape == (4, 6, 6) and block.to_dict()["inner"][0]["id"] == "in_1"
    set_inner_params(g, f"{bid}.conv2d_2", {"kernel_size": 9})
    error = analyze(g).nodes[bid].error
    assert str(error).startswith(f"inside {bid}: conv2d_2: kernel 9 is larger than the 6×6 input")
    assert error.hint and analyze(g).nodes["relu_2"].error.waiting_on == bid
    info = infer_node("Block", g.nodes[bid].params, [TensorInfo((4, 6, 6)), TensorInfo((4, 6, 6))], "b")
    assert "takes one input" in str(info.error)


def test_built_block_names_its_weights_and_honours_flags():
    g = residual_chain()
    bid, _ = group_into_block(g, ["conv2d_1", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"], name="res_block")
    def flags(inner: Graph) -> None:
        inner.set_training_flags("conv2d_1", frozen=True, lr_factor=0.5)
        inner.set_training_flags("batchnorm2d_1", frozen=True)

    edit_inner(g, bid, flags)
    g.set_training_flags(bid, lr_factor=0.1)
    model = build_model(g, seed=0)
    names = list(model.state_dict())
    assert names[:2] == ["res_block_1.conv2d_1.weight", "res_block_1.conv2d_1.bias"]
    assert "res_block_1.batchnorm2d_1.running_mean" in names
    assert not model.res_block_1.conv2d_1.weight.requires_grad and model.res_block_1.conv2d_2.weight.requires_grad
    assert model.frozen_ids == ("res_block_1.conv2d_1", "res_block_1.batchnorm2d_1")
    assert model.lr_factors == {"res_block_1": 0.1, "res_block_1.conv2d_1": pytest.approx(0.05)}
    model.train()  # a frozen BatchNorm inside the block keeps its statistics; the one outside trains
    assert not model.res_block_1.batchnorm2d_1.training and model.batchnorm2d_2.training


def test_a_multi_output_block_needs_a_pick_for_each_model_output():
    g = branchy()
    bid, _ = group_into_block(g, ["relu_1", "add_1", "linear_3"])
    for pick in ("pick_1", "pick_2"):
        g.remove_node(pick)
    error = analyze(g).nodes[bid].error
    assert "gives 2 outputs but nothing takes them" in str(error)
    with pytest.raises(BuildError, match="Pick"):
        build_model(g)


# ---- the library and the project file ----------------------------------------------------------------------------

def test_save_list_load_and_instantiate_a_block_in_another_project(library, tmp_path):
    g = residual_chain()
    bid, _ = group_into_block(g, ["conv2d_1", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"], name="my_res",
                              description="conv-bn-relu-conv + skip",
                              exposed={"channels": ["conv2d_1.out_channels", "conv2d_2.out_channels"]})
    definition = definition_of(g, bid)
    path = save_block(definition)
    assert path == library / "my_res.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "layerloom-block" and data["version"] == 1 and data["name"] == "my_res"
    assert data["exposed"] == {"channels": ["conv2d_1.out_channels", "conv2d_2.out_channels"]}
    assert save_block(definition) == path  # the same block again is fine
    other = BlockDefinition("my_res", "something else", {}, definition.graph)
    with pytest.raises(ProjectError, match="already has a block named 'my_res'"):
        save_block(other)
    assert [d.name for d in list_blocks()] == ["my_res"]
    loaded = load_block("my_res")
    assert loaded.to_dict() == definition.to_dict()
    # another project: instantiated with its own channel count, trains like any layer
    h = Graph()
    i = h.add_node("Input", {"shape": [6, 5, 5]})
    b = instantiate_block(h, loaded, (10, 20), values={"channels": 6})
    h.connect(i, b)
    h.connect(b, h.add_node("Flatten"))
    assert b == "my_res_1" and h.nodes[b].position == (10.0, 20.0) and analyze(h).ok
    project = Project(graph=h, name="other")
    again = load_project(save_project(tmp_path / "other.layerloom", project))
    assert again.to_dict() == project.to_dict()
    # shared as a file, added to another library
    shared = write_block_file(loaded, tmp_path / "share.json")
    assert import_block_file(shared, tmp_path / "friend") == tmp_path / "friend" / "my_res.json"
    assert read_block_file(tmp_path / "friend" / "my_res.json").to_dict() == definition.to_dict()


def test_broken_block_files_are_project_errors_saying_where(library, tmp_path):
    good = shipped_blocks()["res_block"].to_dict()
    cases = [
        ({**good, "format": "x"}, "format"),
        ({**good, "version": 9}, "version"),
        ({**good, "exposed": {"channels": ["conv2d_7.out_channels"]}}, "exposed.channels[0]"),
        ({**good, "graph": {**good["graph"], "nodes": good["graph"]["nodes"][1:]}}, "graph.edges[0].source"),
    ]
    for i, (doc, where) in enumerate(cases):
        path = tmp_path / f"bad{i}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(ProjectError) as e:
            read_block_file(path)
        assert e.value.where == where and e.value.path == str(path)
    library.mkdir()
    (library / "broken.json").write_text("{", encoding="utf-8")
    problems: list = []
    assert list_blocks(problems=problems) == [] and "not valid JSON" in str(problems[0])
    with pytest.raises(ProjectError, match="no block 'missing'"):
        load_block("missing")


def test_project_files_hold_blocks_inline_and_the_reader_checks_them(tmp_path):
    g = residual_chain()
    inner_id, _ = group_into_block(g, ["conv2d_1", "batchnorm2d_1", "relu_1", "conv2d_2", "add_1"],
                                   name="res_block")
    group_into_block(g, [inner_id, "relu_2"], name="stage")
    project = Project(graph=g, name="nested")
    path = save_project(tmp_path / "nested.layerloom", project)
    assert load_project(path).to_dict() == project.to_dict()
    doc = json.loads(path.read_text(encoding="utf-8"))
    stage = doc["graph"]["nodes"][1]
    assert stage["type"] == "Block" and stage["params"]["block"] == "stage"
    res = next(n for n in stage["params"]["graph"]["nodes"] if n["id"] == inner_id)
    conv = next(n for n in res["params"]["graph"]["nodes"] if n["id"] == "conv2d_2")
    conv["params"]["out_channels"] = -1
    with pytest.raises(ProjectError) as e:
        loads_project(json.dumps(doc))
    assert e.value.where == "graph.nodes[1].params.graph.nodes[1].params.graph.nodes[4].params.out_channels"
    assert "out_channels = -1 is out of range" in e.value.reason


# ---- exports of a nested block -----------------------------------------------------------------------------------

def nested_graph() -> Graph:
    """input → res_block_1 → stage_1 [res_block_2 → conv2d_1] → flatten → linear: two instances of one definition,
    one of them inside another block."""
    g = Graph()
    x = g.add_node("Input", {"shape": [4, 6, 6]})
    a = instantiate_block(g, "res_block", values={"channels": 4})
    b = instantiate_block(g, "res_block", values={"channels": 4})
    c = g.add_node("Conv2d", {"out_channels": 3, "kernel_size": 1})
    f = g.add_node("Flatten")
    for s, t in [(x, a), (a, b), (b, c), (c, f), (f, g.add_node("Linear", {"out_features": 3}))]:
        g.connect(s, t)
    group_into_block(g, [b, c], name="stage")
    return g


def test_nested_block_exports_agree_and_the_script_reuses_one_class_per_block(tmp_path):
    g = nested_graph()
    assert list(g.nodes) == ["input_1", "res_block_1", "stage_1", "flatten_1", "linear_1"]
    model = build_model(g, seed=1).train(False)
    with torch.no_grad():  # BatchNorm statistics that are not the defaults, so they must travel too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    state = model.state_dict()
    assert "stage_1.res_block_2.conv2d_2.weight" in state and "res_block_1.batchnorm2d_1.running_var" in state
    weights = tmp_path / "w.safetensors"
    write_safetensors(state, weights)
    x = torch.randn(3, 4, 6, 6)
    with torch.no_grad():
        want = model(x)
    for fmt, suffix in [("safetensors", ".safetensors"), ("onnx", ".onnx"), ("pt2", ".pt2"),
                        ("torchscript", ".ts"), ("python", ".py")]:
        report = export_model(g, weights, fmt, tmp_path / f"net{suffix}")
        assert report.check_passed, fmt
    code = (tmp_path / "net.py").read_text(encoding="utf-8")
    assert code.count("class ResBlock(nn.Module):") == 1 and "class ResBlock2" not in code
    assert "self.res_block_1 = ResBlock()" in code and "self.res_block_2 = ResBlock()" in code
    assert "class Stage(nn.Module):" in code and "self.stage_1 = Stage()" in code
    assert code == generate_code(g)
    # the generated script, imported from its file, loads the exported weights strictly and agrees
    spec = importlib.util.spec_from_file_location("generated_nested", tmp_path / "net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.load(str(tmp_path / "net.safetensors"))
    with torch.no_grad():
        assert torch.allclose(generated(x), want, atol=1e-6)
    run, _ = onnx_runner(tmp_path / "net.onnx", "the test model")
    assert torch.allclose(torch.as_tensor(run((x,))[0]), want, atol=1e-4)


def test_instances_built_differently_get_their_own_class():
    g = Graph()
    x = g.add_node("Input", {"shape": [8, 4, 4]})
    a = instantiate_block(g, "res_block", values={"channels": 8})
    b = instantiate_block(g, "res_block", values={"channels": 8})
    g.connect(x, a)
    g.connect(a, b)
    c = g.add_node("Conv2d", {"out_channels": 6, "kernel_size": 1})
    g.connect(b, c)
    d = instantiate_block(g, "res_block", values={"channels": 6})
    g.connect(c, d)
    code = generate_code(g)
    assert code.count("class ResBlock(nn.Module):") == 1 and code.count("class ResBlock2(nn.Module):") == 1
    assert f"self.{d} = ResBlock2()" in code


# ---- the shipped blocks --------------------------------------------------------------------------------------------

SHIPPED = {
    "res_block": ([8, 6, 6], {"channels": 8}, (8, 6, 6)),
    "bottleneck_block": ([8, 6, 6], {"channels": 8, "width": 4}, (8, 6, 6)),
    "inception_block": ([8, 6, 6], {"c1": 4, "c3": 6, "c5": 2, "pool_proj": 3}, (15, 6, 6)),
    "se_block": ([8, 6, 6], {"channels": 8, "reduced": 2}, (8, 6, 6)),
    "transformer_encoder": ([5, 16], {"d_model": 16, "heads": 2, "feedforward": 24}, (5, 16)),
    "lstm_encoder": ([5, 3], {"hidden": 6, "bidirectional": True}, (12,)),
}


def test_every_shipped_block_is_listed_with_a_description():
    blocks = shipped_blocks()
    assert sorted(blocks) == sorted(SHIPPED)
    for name, d in blocks.items():
        assert len(d.description) > 80 and d.exposed, name
        assert load_block(name).to_dict() == d.to_dict()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_block_builds_infers_trains_and_exports_to_onnx(name, tmp_path):
    shape, values, out_shape = SHIPPED[name]
    g = Graph()
    i = g.add_node("Input", {"shape": shape})
    bid = instantiate_block(g, name, (0, 100), values=values)
    g.connect(i, bid)
    f = g.add_node("Flatten")
    g.connect(bid, f)
    head = g.add_node("Linear", {"out_features": 3})
    g.connect(f, head)
    analysis = analyze(g)
    assert analysis.ok, [str(e.error) for e in analysis.errors]
    assert analysis.nodes[bid].shape == out_shape
    model = build_model(g, seed=0)
    assert sum(p.numel() for p in model.parameters()) == analysis.total_params
    assert all(k.startswith(f"{bid}.") or k.startswith(f"{head}.") for k in model.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(0)
    loss = F.cross_entropy(model.train()(torch.randn(4, *shape)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    assert math.isfinite(loss.item())
    inner_weights = [k for k in before if k.startswith(f"{bid}.") and "weight" in k]
    assert inner_weights
    assert any(not torch.equal(before[k], model.state_dict()[k]) for k in inner_weights)
    report = export_model(g, model.state_dict(), "onnx", tmp_path / f"{name}.onnx")
    assert report.check_passed and report.max_abs_diff <= 1e-4


# ---- the new layers the blocks use, checked against PyTorch ------------------------------------------------------

@pytest.mark.parametrize("params, shapes", [
    ({"num_heads": 2}, [(5, 8)]),
    ({"num_heads": 3, "dropout": 0.2, "bias": False}, [(4, 6), (7, 5)]),
    ({"num_heads": 1}, [(4, 6), (7, 5), (7, 3)]),
])
def test_multihead_attention_rule_matches_pytorch(params, shapes):
    import torch.nn as nn
    ins = [TensorInfo(s) for s in shapes]
    spec = infer_spec("MultiheadAttention")
    params = spec.validate_params(params)
    info = infer_node("MultiheadAttention", params, ins)
    assert info.ok
    module = spec.build(params, ins)
    assert isinstance(module, nn.MultiheadAttention) and module.batch_first
    out = module.train(False)(*[torch.randn(2, *s) for s in shapes])
    assert tuple(out.shape[1:]) == info.shape
    assert sum(p.numel() for p in module.parameters()) == info.params
    reference = nn.MultiheadAttention(shapes[0][1], params["num_heads"], bias=params["bias"],
                                      kdim=shapes[1][1] if len(shapes) > 1 else None,
                                      vdim=shapes[-1][1] if len(shapes) > 1 else None, batch_first=True)
    assert sorted(n for n, _ in reference.named_parameters()) == sorted(n for n, _ in module.named_parameters())


def test_multihead_attention_and_scale_refusals_say_what_to_do():
    bad = infer_node("MultiheadAttention", {"num_heads": 3, "dropout": 0.0, "bias": True}, [TensorInfo((5, 8))])
    assert "cannot be split evenly into num_heads 3" in str(bad.error) and "e.g." in bad.error.hint
    flat = infer_node("MultiheadAttention", {"num_heads": 1, "dropout": 0.0, "bias": True}, [TensorInfo((8,))])
    assert "needs sequences (steps, features)" in str(flat.error)
    ok = infer_node("Scale", {}, [TensorInfo((4, 3, 3)), TensorInfo((4, 1, 1))])
    assert ok.shape == (4, 3, 3) and ok.macs == 36
    out = infer_spec("Scale").build({}, [])(torch.randn(2, 4, 3, 3), torch.randn(2, 4, 1, 1))
    assert tuple(out.shape) == (2, 4, 3, 3)
    wrong = infer_node("Scale", {}, [TensorInfo((4, 3, 3)), TensorInfo((2, 1, 1))])
    assert "(4, 1, 1)" in wrong.error.hint


def infer_spec(name):
    from engine.layers import get_spec
    return get_spec(name)
