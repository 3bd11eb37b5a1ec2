"""The graph model: edits, events, input order, and refused edits that change nothing."""
from __future__ import annotations

import random
import re
import time

import pytest

import engine
from engine import CycleError, GraphError, NodeNotFoundError, ParamError, PortError, UnknownLayerError


@pytest.fixture
def chain():
    """Input → Conv2d → ReLU, the smallest useful graph."""
    g = engine.Graph()
    x = g.add_node("Input", shape=[1, 28, 28])
    c = g.add_node("Conv2d", out_channels=8, kernel_size=3)
    r = g.add_node("ReLU")
    g.connect(x, c)
    g.connect(c, r)
    return g, x, c, r


class Recorder:
    def __init__(self, g: engine.Graph):
        self.calls: list[tuple] = []
        for name in ("node_added", "node_removed", "edge_added", "edge_removed", "node_moved", "params_changed",
                     "changed"):
            g.events.connect(name, lambda *a, _n=name: self.calls.append((_n, *a)))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def test_issue_example_shapes_and_ids():
    g = engine.Graph()
    x = g.add_node("Input", shape=[1, 28, 28])
    c = g.add_node("Conv2d", out_channels=32, kernel_size=3)
    g.connect(x, c)
    assert (x, c) == ("input_1", "conv2d_1")
    assert engine.infer_shapes(g) == {x: (1, 28, 28), c: (32, 26, 26)}
    assert g.node(c).params["stride"] == 1  # defaults filled in
    assert g.add_node("Conv2d") == "conv2d_2"


def test_ids_are_reused_only_when_free(chain):
    g, x, c, r = chain
    g.remove_node(c)
    assert g.add_node("Conv2d") == "conv2d_1"
    assert g.add_node("Conv2d") == "conv2d_2"


def test_events_for_each_edit(chain):
    g, x, c, r = chain
    rec = Recorder(g)
    d = g.add_node("Dropout", p=0.2)
    g.connect(r, d)
    g.set_params(d, p=0.3)
    g.move(d, 10, 20)
    g.disconnect(r, d)
    g.remove_node(d)
    assert rec.names() == ["node_added", "changed", "edge_added", "changed", "params_changed", "changed",
                           "node_moved", "changed", "edge_removed", "changed", "node_removed", "changed"]
    assert g.node(c).position == (0.0, 0.0)


def test_remove_node_removes_its_edges_first_and_reports_them(chain):
    g, x, c, r = chain
    rec = Recorder(g)
    node, removed = g.remove_node(c)
    assert node.id == c
    assert [e for e, _ in removed] == [engine.Edge(x, c), engine.Edge(c, r)]
    assert rec.names()[:4] == ["edge_removed", "changed", "edge_removed", "changed"]
    assert g.edges == []
    assert c not in g


def test_remove_and_restore_is_exact(chain):
    """What an undo command does: put the node back at its index and its edges at their input slots."""
    g = engine.Graph()
    a = g.add_node("Input", shape=[4])
    b = g.add_node("Input", shape=[4])
    c = g.add_node("Input", shape=[4])
    add = g.add_node("Add")
    for s in (a, b, c):
        g.connect(s, add)
    before = g.to_dict()
    index = list(g.nodes).index(b)
    node, removed = g.remove_node(b)
    g.add_node(node.type, node.params, node_id=node.id, position=node.position, index=index)
    for edge, slot in removed:
        g.connect(edge.source, edge.target, index=slot)
    assert g.to_dict() == before
    assert g.inputs_of(add) == [a, b, c]


def test_input_order_is_connect_order():
    g = engine.Graph()
    a = g.add_node("Input", shape=[3])
    b = g.add_node("Input", shape=[5])
    cat = g.add_node("Concat", dim=1)
    g.connect(b, cat)
    g.connect(a, cat)
    assert g.inputs_of(cat) == [b, a]
    g.disconnect(b, cat)
    g.connect(b, cat, index=0)
    assert g.inputs_of(cat) == [b, a]


def _unchanged(g: engine.Graph, action, error):
    before, rev = g.to_dict(), g.revision
    rec = Recorder(g)
    with pytest.raises(error) as info:
        action()
    assert g.to_dict() == before and g.revision == rev and rec.calls == []
    return str(info.value)


def test_refused_edits_change_nothing(chain):
    g, x, c, r = chain
    msg = _unchanged(g, lambda: g.add_node("Conv3d"), UnknownLayerError)
    assert "Conv3d" in msg and "Conv2d" in msg  # suggests the nearest type
    msg = _unchanged(g, lambda: g.add_node("Conv2d", kernel=3), ParamError)
    assert "kernel" in msg and "kernel_size" in msg
    msg = _unchanged(g, lambda: g.add_node("Dropout", p=1.5), ParamError)
    assert "p = 1.5" in msg and "≤ 1" in msg
    msg = _unchanged(g, lambda: g.add_node("Linear", out_features=0), ParamError)
    assert "≥ 1" in msg
    msg = _unchanged(g, lambda: g.add_node("Linear", out_features="ten"), ParamError)
    assert "whole number" in msg
    _unchanged(g, lambda: g.add_node("Linear", out_features=True), ParamError)
    _unchanged(g, lambda: g.add_node("ReLU", node_id=c), GraphError)
    _unchanged(g, lambda: g.add_node("ReLU", node_id="9 bad id"), GraphError)
    msg = _unchanged(g, lambda: g.connect(r, x), PortError)
    assert "takes no input" in msg
    msg = _unchanged(g, lambda: g.connect(x, c), PortError)
    assert "already" in msg
    msg = _unchanged(g, lambda: g.connect(r, c), PortError)  # Conv2d's single input is taken
    assert "disconnect" in msg
    msg = _unchanged(g, lambda: g.connect(r, r), CycleError)
    _unchanged(g, lambda: g.connect("nope", r), NodeNotFoundError)
    _unchanged(g, lambda: g.set_params(c, out_channels=-1), ParamError)
    _unchanged(g, lambda: g.set_params(c, colour="red"), ParamError)
    _unchanged(g, lambda: g.remove_node("nope"), NodeNotFoundError)
    _unchanged(g, lambda: g.disconnect(x, r), GraphError)


def test_cycle_is_refused_with_its_path():
    g = engine.Graph()
    a = g.add_node("Input", shape=[4])
    add = g.add_node("Add")
    l1 = g.add_node("Linear", out_features=4)
    g.connect(a, add)
    g.connect(add, l1)
    msg = _unchanged(g, lambda: g.connect(l1, add), CycleError)
    assert "loop" in msg and l1 in msg and add in msg


def test_set_params_validates_merged_values_and_returns_old(chain):
    g, x, c, r = chain
    old = g.set_params(c, {"kernel_size": [3, 5], "padding": "same"})
    assert old == {"kernel_size": 3, "padding": 0}
    assert g.node(c).params["kernel_size"] == [3, 5]
    g.set_params(c, kernel_size=[2, 2])
    assert g.node(c).params["kernel_size"] == 2  # a uniform pair is stored as one number


def test_topological_order_follows_edges_not_insertion():
    g = engine.Graph()
    lin = g.add_node("Linear", out_features=2)
    x = g.add_node("Input", shape=[3])
    g.connect(x, lin)
    assert g.topological_order() == [x, lin]
    assert g.sink_nodes() == [lin]
    assert g.input_nodes() == [x]


def test_dict_round_trip_and_copy_are_independent(chain):
    g, x, c, r = chain
    g.move(c, 12.5, -3)
    h = g.copy()
    assert h.to_dict() == g.to_dict()
    h.set_params(c, out_channels=4)
    assert g.node(c).params["out_channels"] == 8


def test_positions_must_be_finite_numbers(chain):
    g, *_ = chain
    with pytest.raises(GraphError):
        g.add_node("ReLU", position=("a", 1))
    with pytest.raises(GraphError):
        g.add_node("ReLU", position=(float("nan"), 1))


def _lowest_free_id(g: engine.Graph, layer_type: str) -> str:
    """new_id as it was first written (a scan of every id): the cached version must agree with it exactly."""
    prefix = engine.graph.default_prefix(layer_type)
    used = {int(m.group(1)) for nid in g.nodes if (m := re.fullmatch(re.escape(prefix) + r"_(\d+)", nid))}
    n = 1
    while n in used:
        n += 1
    return f"{prefix}_{n}"


def test_new_ids_match_a_full_scan_through_adds_removes_explicit_ids_and_undo_inserts():
    rng = random.Random(7)
    g = engine.Graph()
    types = ["ReLU", "Linear", "Dropout", "Conv2d"]
    for step in range(600):
        kind = rng.random()
        layer = rng.choice(types)
        if kind < 0.45 or not g.nodes:
            assert g.new_id(layer) == _lowest_free_id(g, layer)
            g.add_node(layer)
        elif kind < 0.7:
            g.remove_node(rng.choice(list(g.nodes)))
        elif kind < 0.85:  # an explicit id, as a file, a paste or an undo brings
            nid = f"{engine.graph.default_prefix(layer)}_{rng.randint(0, 40)}"
            if nid not in g.nodes:
                g.add_node(layer, node_id=nid, index=rng.randint(0, len(g.nodes)))
        else:
            g.add_node(layer, node_id=f"{layer.lower()}_x{step}")  # ids that are no prefix_N
        for t in types:
            assert g.new_id(t) == _lowest_free_id(g, t), (step, t)
    h = engine.Graph.from_dict(g.to_dict())
    assert all(h.new_id(t) == _lowest_free_id(h, t) for t in types)
    del h.nodes[next(iter(h.nodes))]  # changed behind the graph's back: the index notices and rebuilds
    assert all(h.new_id(t) == _lowest_free_id(h, t) for t in types)


def test_building_a_long_chain_does_not_rescan_every_id():
    t0 = time.perf_counter()
    g = engine.Graph()
    prev = g.add_node("Input", shape=[8])
    for _ in range(3000):
        nid = g.add_node("ReLU")
        g.connect(prev, nid)
        prev = nid
    assert prev == "relu_3000"
    assert time.perf_counter() - t0 < 5.0  # a rescan per add took about 7 s here
