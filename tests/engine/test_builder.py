"""engine.build_model: module names, several inputs and outputs, determinism, errors, merges, gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import engine
from engine import BuildError, Graph, build_model
from engine.project import Project, load_project, save_project
from engine.templates import load_template, template_names

ATOL, RTOL = 1e-6, 1e-5


def _inputs(model: nn.Module, batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Seeded inputs of the model's input shapes (token ids over a wide range for int64 Inputs)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for nid in model.input_ids:
        shape = (batch, *model.input_shapes[nid])
        if model.input_dtypes[nid] == "int64":
            out.append(torch.randint(0, 1000, shape, generator=g))
        else:
            out.append(torch.randn(shape, generator=g))
    return tuple(out)


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _chain(g: Graph, specs: list[tuple], start: str | None = None) -> list[str]:
    ids, prev = [], start
    for spec in specs:
        nid = g.add_node(spec[0], spec[1] if len(spec) > 1 else {})
        if prev is not None:
            g.connect(prev, nid)
        ids.append(nid)
        prev = nid
    return ids


# ---- module names and save / load ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cnn_mnist", "residual_block", "gru_two_branch"])
def test_submodules_are_named_by_node_id_in_topological_order(name):
    graph = load_template(name).graph
    model = build_model(graph, seed=0)
    layers = [nid for nid in engine.analyze(graph).order if graph.nodes[nid].type != "Input"]
    assert [n for n, _ in model.named_children()] == layers
    for key in model.state_dict():
        assert key.split(".")[0] in graph.nodes, key


@pytest.mark.parametrize("name", template_names())
def test_state_dict_survives_project_save_and_load(name, tmp_path):
    project = load_template(name)
    first = build_model(project.graph, seed=1).eval()
    weights = tmp_path / "weights.pt"
    torch.save(first.state_dict(), weights)
    path = save_project(tmp_path / f"{name}.layerloom", project)

    graph = load_project(path).graph
    second = build_model(graph, seed=2).eval()
    assert list(second.state_dict()) == list(first.state_dict())
    x = _inputs(first)
    with torch.no_grad():
        expected = first(*x)
        assert not torch.allclose(second(*x), expected)  # another seed: other weights
        second.load_state_dict(torch.load(weights), strict=True)
        torch.testing.assert_close(second(*x), expected, atol=0, rtol=0)


def test_a_renamed_node_no_longer_matches_the_saved_state_dict():
    g = Graph()
    _chain(g, [("Input", {"shape": [4]}), ("Linear", {"out_features": 2})])
    state = build_model(g, seed=0).state_dict()
    g2 = Graph()
    x = g2.add_node("Input", {"shape": [4]})
    g2.add_node("Linear", {"out_features": 2}, node_id="head")
    g2.connect(x, "head")
    with pytest.raises(RuntimeError, match="head"):
        build_model(g2).load_state_dict(state, strict=True)


# ---- several inputs and outputs ---------------------------------------------------------------------------

def test_two_inputs_and_two_sinks():
    g = Graph()
    # node order: a, late_head, b, lin_a, lin_b, add, deep. late_head is a sink listed before add but
    # computed after it (it waits on deep, added last): node order and topological order differ.
    a = g.add_node("Input", {"shape": [4]}, node_id="a")
    late = g.add_node("Linear", {"out_features": 2}, node_id="late_head")
    b = g.add_node("Input", {"shape": [6]}, node_id="b")
    lin_a = g.add_node("Linear", {"out_features": 3}, node_id="lin_a")
    lin_b = g.add_node("Linear", {"out_features": 3}, node_id="lin_b")
    add = g.add_node("Add", node_id="add")
    deep = g.add_node("ReLU", node_id="deep")
    g.connect(a, lin_a)
    g.connect(b, lin_b)
    g.connect(lin_a, add)
    g.connect(lin_b, add)
    g.connect(lin_b, deep)
    g.connect(deep, late)
    order = engine.analyze(g).order
    assert order.index("late_head") > order.index("add")

    model = build_model(g, seed=0).eval()
    assert model.input_ids == ["a", "b"]
    assert model.output_ids == ["late_head", "add"]
    xa = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    xb = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(xa, xb)
        assert isinstance(out, tuple) and len(out) == 2
        ya = F.linear(xa, model.lin_a.weight, model.lin_a.bias)
        yb = F.linear(xb, model.lin_b.weight, model.lin_b.bias)
        torch.testing.assert_close(out[0], F.linear(F.relu(yb), model.late_head.weight, model.late_head.bias),
                                   atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(out[1], ya + yb, atol=ATOL, rtol=RTOL)
        with pytest.raises(RuntimeError):
            model(xb, xa)  # the inputs are taken in the order the Inputs were added
        with pytest.raises(TypeError, match="2 input"):
            model(xa)
    shapes = engine.infer_shapes(g)
    assert (shapes["late_head"], shapes["add"]) == (tuple(out[0].shape[1:]), tuple(out[1].shape[1:]))


def _net(reverse: bool) -> Graph:
    """input → conv → relu → flatten → linear, plus a side branch joined by Concat, with fixed ids;
    `reverse` adds every node before the nodes that feed it, then wires them."""
    nodes = [
        ("x", "Input", {"shape": [2, 6, 6]}),
        ("conv", "Conv2d", {"out_channels": 3, "kernel_size": 3}),
        ("relu", "ReLU", {}),
        ("flat", "Flatten", {}),
        ("side", "Flatten", {}),
        ("side_fc", "Linear", {"out_features": 5}),
        ("cat", "Concat", {"dim": 1}),
        ("head", "Linear", {"out_features": 4}),
    ]
    edges = [("x", "conv"), ("conv", "relu"), ("relu", "flat"), ("x", "side"), ("side", "side_fc"),
             ("flat", "cat"), ("side_fc", "cat"), ("cat", "head")]
    g = Graph()
    for nid, kind, params in (reversed(nodes) if reverse else nodes):
        g.add_node(kind, params, node_id=nid)
    for s, t in edges:
        g.connect(s, t)
    return g


def test_the_order_nodes_were_added_does_not_change_the_model():
    fwd, rev = _net(False), _net(True)
    assert list(rev.nodes)[0] == "head"  # a consumer before its producers
    assert engine.infer_shapes(fwd) == engine.infer_shapes(rev)
    m_fwd, m_rev = build_model(fwd, seed=5).eval(), build_model(rev, seed=6).eval()
    assert sorted(m_fwd.state_dict()) == sorted(m_rev.state_dict())
    m_rev.load_state_dict(m_fwd.state_dict(), strict=True)
    x = torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = m_fwd(x)
        torch.testing.assert_close(m_rev(x), y, atol=0, rtol=0)
        # and by hand: head(cat(flatten(relu(conv(x))), side_fc(flatten(x))))
        left = torch.flatten(F.relu(F.conv2d(x, m_fwd.conv.weight, m_fwd.conv.bias)), 1)
        right = F.linear(torch.flatten(x, 1), m_fwd.side_fc.weight, m_fwd.side_fc.bias)
        hand = F.linear(torch.cat([left, right], 1), m_fwd.head.weight, m_fwd.head.bias)
    torch.testing.assert_close(y, hand, atol=ATOL, rtol=RTOL)


def test_a_chain_added_backwards_gets_the_same_seeded_weights():
    specs = [("x", "Input", {"shape": [6]}), ("l1", "Linear", {"out_features": 5}), ("act", "Tanh", {}),
             ("l2", "Linear", {"out_features": 2})]
    graphs = []
    for order in (specs, specs[::-1]):
        g = Graph()
        for nid, kind, params in order:
            g.add_node(kind, params, node_id=nid)
        for (s, *_), (t, *_) in zip(specs, specs[1:]):
            g.connect(s, t)
        graphs.append(g)
    assert _same_state(build_model(graphs[0], seed=9), build_model(graphs[1], seed=9))


# ---- seeds ----------------------------------------------------------------------------------------------

def test_seed_makes_building_deterministic():
    graph = load_template("gru_two_branch").graph
    assert _same_state(build_model(graph, seed=3), build_model(graph, seed=3))
    assert _same_state(build_model(graph, seed=3), build_model(graph.copy(), seed=3))
    assert not _same_state(build_model(graph, seed=3), build_model(graph, seed=4))
    assert not _same_state(build_model(graph), build_model(graph))


def test_seeded_build_leaves_the_global_rng_alone():
    graph = load_template("cnn_mnist").graph
    torch.manual_seed(2024)
    state = torch.get_rng_state()
    expected = torch.rand(8)
    torch.set_rng_state(state)
    build_model(graph, seed=11)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(torch.rand(8), expected)


# ---- errors ---------------------------------------------------------------------------------------------

def test_empty_graph_is_refused():
    with pytest.raises(BuildError) as e:
        build_model(Graph())
    msg = str(e.value)
    assert "empty" in msg and "add an Input" in msg


def test_graph_without_input_is_refused():
    g = Graph()
    _chain(g, [("Linear", {"out_features": 3}), ("ReLU",)])
    with pytest.raises(BuildError) as e:
        build_model(g)
    msg = str(e.value)
    assert "no Input node" in msg and "add one" in msg and "linear_1" in msg


def test_shape_error_names_the_node_and_the_fix():
    g = Graph()
    x, lin, relu = _chain(g, [("Input", {"shape": [1, 28, 28]}), ("Linear", {"out_features": 10}), ("ReLU",)])
    with pytest.raises(BuildError) as e:
        build_model(g)
    msg = str(e.value)
    assert lin == "linear_1"
    assert "linear_1 (Linear)" in msg
    assert "insert a Flatten before it" in msg and "(784,)" in msg
    assert relu not in msg  # relu_1 only waits on linear_1: the message points at the node to fix
    # once fixed as suggested, it builds
    g.disconnect(x, lin)
    flat = g.add_node("Flatten")
    g.connect(x, flat)
    g.connect(flat, lin)
    assert build_model(g, seed=0)(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_unconnected_layer_names_the_node_and_the_fix():
    g = Graph()
    _chain(g, [("Input", {"shape": [4]}), ("Linear", {"out_features": 2})])
    g.add_node("Linear", {"out_features": 2}, node_id="stray")
    with pytest.raises(BuildError) as e:
        build_model(g)
    assert "stray (Linear)" in str(e.value) and "connect a layer into it" in str(e.value)


def test_node_id_that_clashes_with_a_module_attribute_is_refused():
    g = Graph()
    x = g.add_node("Input", {"shape": [4]})
    g.add_node("Linear", {"out_features": 2}, node_id="forward")
    g.connect(x, "forward")
    with pytest.raises(BuildError, match="'forward'.*rename"):
        build_model(g)


def test_node_id_plan_is_refused_like_any_other_clash():
    g = Graph()
    x = g.add_node("Input", {"shape": [4]})
    g.add_node("Linear", {"out_features": 2}, node_id="_plan")
    g.connect(x, "_plan")
    with pytest.raises(BuildError, match="'_plan'.*rename"):
        build_model(g, seed=0)


# ---- merges ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("skip_first", [False, True])
def test_add_skip_connection_is_x_plus_f_of_x(skip_first):
    g = Graph()
    x = g.add_node("Input", {"shape": [8]})
    fc = g.add_node("Linear", {"out_features": 8})
    act = g.add_node("Tanh")
    add = g.add_node("Add")
    g.connect(x, fc)
    g.connect(fc, act)
    if skip_first:
        g.connect(x, add)
        g.connect(act, add)
    else:
        g.connect(act, add)
        g.connect(x, add)
    model = build_model(g, seed=0).eval()
    inp = torch.randn(6, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = model(inp)
        hand = inp + torch.tanh(inp @ model.linear_1.weight.T + model.linear_1.bias)
    torch.testing.assert_close(got, hand, atol=ATOL, rtol=RTOL)


def test_concat_joins_in_connect_order(tmp_path):
    g = Graph()
    x = g.add_node("Input", {"shape": [4]})
    two = g.add_node("Linear", {"out_features": 2}, node_id="two")
    three = g.add_node("Linear", {"out_features": 3}, node_id="three")
    cat = g.add_node("Concat", {"dim": 1})
    g.connect(x, two)
    g.connect(x, three)
    g.connect(three, cat)  # connected first although added last
    g.connect(two, cat)
    model = build_model(g, seed=0).eval()
    inp = torch.randn(5, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = model(inp)
        want = torch.cat([model.three(inp), model.two(inp)], dim=1)
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert engine.infer_shapes(g)[cat] == (5,)

    # an explicit index puts an input in front
    g.disconnect(two, cat)
    g.connect(two, cat, index=0)
    model2 = build_model(g, seed=0).eval()
    model2.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model2(inp), torch.cat([model.two(inp), model.three(inp)], dim=1),
                                   atol=0, rtol=0)

    # the order survives saving and loading the project
    g.disconnect(two, cat)
    g.connect(two, cat)  # back to three, two
    loaded = load_project(save_project(tmp_path / "cat.layerloom", Project(graph=g))).graph
    assert loaded.inputs_of(cat) == [three, two]
    model3 = build_model(loaded, seed=1).eval()
    model3.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model3(inp), want, atol=0, rtol=0)


# ---- gradients ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", template_names())
def test_gradients_reach_every_parameter(name):
    model = build_model(load_template(name).graph, seed=0).train()
    x = _inputs(model, batch=4, seed=1)
    out = model(*x)
    outs = out if isinstance(out, tuple) else (out,)
    g = torch.Generator().manual_seed(2)
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
    loss.backward()
    params = list(model.named_parameters())
    assert params
    for pname, p in params:
        assert p.grad is not None, pname
        assert p.grad.shape == p.shape, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


# ---- recurrent ------------------------------------------------------------------------------------------

def test_bidirectional_two_layer_lstm_gives_both_final_states_of_the_last_layer():
    g = Graph()
    x = g.add_node("Input", {"shape": [7, 5]})
    lstm = g.add_node("LSTM", {"hidden_size": 6, "num_layers": 2, "bidirectional": True,
                               "return_sequences": False})
    g.connect(x, lstm)
    assert engine.infer_shapes(g)[lstm] == (12,)
    model = build_model(g, seed=0).eval()

    torch.manual_seed(77)
    ref = nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True).eval()
    assert engine.analyze(g).total_params == sum(p.numel() for p in ref.parameters())
    built = list(model.parameters())
    hand = list(ref.parameters())
    assert len(built) == len(hand) == 16
    with torch.no_grad():
        for i, (b, h) in enumerate(zip(built, hand)):
            assert b.shape == h.shape, i
            b.copy_(h)

    inp = torch.randn(3, 7, 5, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = model(inp)
        out, (h_n, _c_n) = ref(inp)
        h_n = h_n.view(2, 2, 3, 6)  # (num_layers, directions, batch, hidden)
        want = torch.cat([h_n[-1, 0], h_n[-1, 1]], dim=1)
        # the hand computation is what it claims: forward's last step, backward's first step
        torch.testing.assert_close(want, torch.cat([out[:, -1, :6], out[:, 0, 6:]], dim=1))
    assert got.shape == (3, 12)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL)
