"""Large graphs (issue 9): the generated 5,000-node deep residual network of bench/large_graph.py is a valid project,
shape inference after an edit equals a fresh inference, and the graph edits that used to be quadratic on it (the
loop check of connect, putting nodes back at their place in node order) still give exactly the right answers."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from engine.errors import CycleError
from engine.graph import Graph
from engine.layout import COLUMN, ROW, layered_layout
from engine.project import load_project
from engine.shapes import analyze

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from large_graph import STAGE_CHANNELS, deep_resnet, write_project  # noqa: E402


@pytest.fixture(scope="module")
def big() -> Graph:
    return deep_resnet(5000)


def plain(analysis) -> dict:
    return {nid: analysis.nodes[nid].to_dict() for nid in analysis.order}


def test_the_generator_makes_a_valid_five_thousand_node_resnet(big, tmp_path):
    assert 4900 <= len(big) <= 5100
    types = [n.type for n in big.nodes.values()]
    assert types.count("Input") == 1 and types.count("Add") > 600
    assert len(big.topological_order()) == len(big)  # a DAG holding every node
    analysis = analyze(big)
    assert analysis.ok, [str(i.error) for i in analysis.errors][:3]
    sink = big.sink_nodes()
    assert len(sink) == 1 and analysis.nodes[sink[0]].shape == (10,)
    # Four stages: 16 channels at 32×32, then each later stage halves the size and doubles the channels.
    adds = {analysis.nodes[n].shape for n in big.nodes if big.nodes[n].type == "Add"}
    assert adds == {(c, 32 >> i, 32 >> i) for i, c in enumerate(STAGE_CHANNELS)}
    assert analysis.total_params > 1_000_000

    path = write_project(5000, tmp_path / "resnet.layerloom")
    project = load_project(path)
    assert project.graph.to_dict() == big.to_dict()
    assert project.data["source"] == "shapes" and project.loss["type"] == "CrossEntropy"
    assert deep_resnet(200).to_dict() == load_project(write_project(200, tmp_path / "small.layerloom")).graph.to_dict()
    assert 190 <= len(deep_resnet(200)) <= 210


def test_analysis_after_edits_equals_a_fresh_analysis(big):
    g = big.copy()
    first = next(n for n, node in g.nodes.items() if node.type == "Conv2d")
    deep = [n for n, node in g.nodes.items() if node.type == "Conv2d"][-3]
    inp = g.input_nodes()[0]
    before = plain(analyze(g))
    # A width the skip connection cannot add: the Add below errs and everything under it waits on that Add.
    g.set_params(first, out_channels=24)
    broken = analyze(g)
    assert plain(broken) == plain(analyze(g.copy()))
    own = broken.errors
    assert len(own) == 1 and big.nodes[own[0].node_id].type == "Add"
    waiting = [i for i in broken.nodes.values() if i.waiting]
    assert len(waiting) > 4000 and all(i.error.waiting_on == own[0].node_id for i in waiting)
    g.set_params(first, out_channels=STAGE_CHANNELS[0])
    assert plain(analyze(g)) == before
    # A larger image changes every shape below the Input; a local edit changes one node's parameter count.
    g.set_params(inp, shape=[3, 40, 40])
    g.set_params(deep, bias=True)
    edited = analyze(g)
    assert plain(edited) == plain(analyze(g.copy()))
    assert edited.nodes[deep].params == before[deep]["params"] + STAGE_CHANNELS[-1]
    assert edited.nodes[g.sink_nodes()[0]].shape == (10,) and edited.nodes[first].shape == (16, 40, 40)


def test_a_loop_is_refused_however_far_apart_its_ends_are(big):
    g = big.copy()
    order = g.topological_order()
    top, bottom = order[1], order[-1]  # the stem Conv2d and the head: thousands of nodes apart
    first_add = next(n for n in order if g.nodes[n].type == "Add")  # takes any number of inputs
    with pytest.raises(CycleError, match="would make a loop"):
        g.connect(bottom, first_add)
    assert len(g.inputs_of(first_add)) == 2  # refused before anything changed
    # A wire downwards across the whole network is fine (the tail Linear takes one input, so a ReLU gets it).
    relu = g.add_node("ReLU")
    g.connect(top, relu)
    g.connect(relu, g.add_node("ReLU"))
    assert g.inputs_of(relu) == [top]


def test_the_loop_check_agrees_with_plain_reachability_on_random_graphs():
    rng = random.Random(7)
    for _ in range(60):
        g = Graph()
        ids = [g.add_node("Add") for _ in range(rng.randint(2, 14))]
        for _ in range(rng.randint(0, 30)):
            s, t = rng.sample(ids, 2)
            if ids.index(s) < ids.index(t) and s not in g.inputs_of(t):  # keep it a DAG
                g.connect(s, t)
        for s in ids:
            for t in ids:
                if s == t or s in g.inputs_of(t):
                    continue
                below, stack = set(), [t]  # everything t feeds, walked the obvious way
                while stack:
                    for n in g.outputs_of(stack.pop()):
                        if n not in below:
                            below.add(n)
                            stack.append(n)
                loops = s in below
                try:
                    g.check_connect(s, t)
                    assert not loops, f"{s} → {t} closes a loop but was allowed"
                except CycleError:
                    assert loops, f"{s} → {t} was refused as a loop but closes none"


def test_deleting_every_node_and_putting_them_back_restores_the_graph_exactly(big):
    g = big.copy()
    original = g.to_dict()
    saved = []
    for nid in list(g.nodes):  # the way an undoable delete of a selection does it
        index = list(g.nodes).index(nid)
        saved.append((index, *g.remove_node(nid)))
    assert len(g) == 0 and not g.edges
    for index, node, edges in reversed(saved):  # undo: the last removed comes back first
        g.add_node(node.type, node.params, node_id=node.id, position=node.position, index=index)
        for edge, slot in sorted(edges, key=lambda e: e[1]):
            g.connect(edge.source, edge.target, index=slot)
    assert g.to_dict() == original


def test_nodes_put_back_at_any_index_keep_node_order():
    rng = random.Random(3)
    for _ in range(200):
        g, expected = Graph(), []
        for i in range(rng.randint(1, 40)):
            index = rng.choice([None, rng.randint(-2, 45)])
            nid = g.add_node("ReLU", node_id=f"relu_{i}", index=index)
            if index is None or index >= len(expected):
                expected.append(nid)
            else:
                expected.insert(max(0, index), nid)
            assert list(g.nodes) == expected
        assert set(g.nodes) == set(g._in) == set(g._out)


def test_the_layout_of_the_big_graph_puts_every_node_below_its_inputs(big):
    pos = layered_layout(big)
    assert set(pos) == set(big.nodes)
    assert len(set(pos.values())) == len(pos)  # no two nodes in one place
    for e in big.edges:
        assert pos[e.target][1] >= pos[e.source][1] + ROW
    rows: dict[float, list[float]] = {}
    for x, y in pos.values():
        rows.setdefault(y, []).append(x)
    for xs in rows.values():  # each row centred on one axis, COLUMN apart
        xs.sort()
        assert abs(xs[0] + xs[-1]) < 1e-6 and all(abs(b - a - COLUMN) < 1e-6 for a, b in zip(xs, xs[1:]))
