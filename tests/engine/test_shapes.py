"""Shape inference over whole graphs: errors a learner can act on, waiting nodes, totals, dtypes."""
from __future__ import annotations

import math

import pytest

import engine
from engine import ShapeError


def chain(g: engine.Graph, *layers) -> list[str]:
    ids = []
    for layer in layers:
        layer_type, params = (layer, {}) if isinstance(layer, str) else layer
        nid = g.add_node(layer_type, params)
        if ids:
            g.connect(ids[-1], nid)
        ids.append(nid)
    return ids


def test_nodes_below_an_error_wait_on_it_instead_of_repeating_it():
    g = engine.Graph()
    x, conv, lin, relu, out = chain(g, ("Input", {"shape": [1, 28, 28]}), ("Conv2d", {"kernel_size": 3}),
                                    ("Linear", {"out_features": 64}), "ReLU", ("Linear", {"out_features": 10}))
    a = engine.analyze(g)
    assert not a.ok
    assert [e.node_id for e in a.errors] == [lin]
    assert "Linear needs a flat input (features) but gets (32, 26, 26)" in str(a.nodes[lin].error)
    for nid in (relu, out):
        err = a.nodes[nid].error
        assert a.nodes[nid].waiting and err.waiting_on == lin
        assert f"waiting on {lin}" in str(err) and "Flatten" not in str(err)
    assert a.nodes[conv].shape == (32, 26, 26) and a.nodes[conv].ok
    # the fix the message names makes the whole graph work
    g.disconnect(conv, lin)
    flat = g.add_node("Flatten")
    g.connect(conv, flat)
    g.connect(flat, lin)
    shapes = engine.infer_shapes(g)
    assert shapes[out] == (10,) and shapes[flat] == (32 * 26 * 26,)


def test_unconnected_layer_says_connect_something():
    g = engine.Graph()
    lin = g.add_node("Linear")
    add = g.add_node("Add")
    x = g.add_node("Input", shape=[4])
    g.connect(x, add)
    shapes = engine.infer_shapes(g)
    assert isinstance(shapes[lin], ShapeError) and "has no input" in str(shapes[lin])
    assert "connect a layer into it" in str(shapes[lin])
    assert "needs at least 2 inputs but has 1" in str(shapes[add])


def test_merge_errors_name_both_nodes_and_both_shapes():
    g = engine.Graph()
    x = g.add_node("Input", shape=[8, 28, 28])
    conv = g.add_node("Conv2d", out_channels=16, kernel_size=3, padding=1)
    g.connect(x, conv)
    add = g.add_node("Add")
    g.connect(conv, add)
    g.connect(x, add)
    msg = str(engine.infer_shapes(g)[add])
    assert "conv2d_1" in msg and "(16, 28, 28)" in msg and "input_1" in msg and "(8, 28, 28)" in msg
    g.set_params(conv, out_channels=8)
    assert engine.infer_shapes(g)[add] == (8, 28, 28)


def test_embedding_fed_floats_and_linear_fed_ids():
    g = engine.Graph()
    x, emb = chain(g, ("Input", {"shape": [100]}), ("Embedding", {"num_embeddings": 50, "embedding_dim": 8}))
    msg = str(engine.infer_shapes(g)[emb])
    assert "int64" in msg and "set the Input's dtype to int64" in msg
    g.set_params(x, dtype="int64")
    assert engine.infer_shapes(g)[emb] == (100, 8)
    lin = g.add_node("Linear")
    g.connect(x, lin)
    assert "put an Embedding before it" in str(engine.infer_shapes(g)[lin])


def test_kernel_larger_than_input_after_pooling():
    g = engine.Graph()
    *_, conv = chain(g, ("Input", {"shape": [1, 12, 12]}), ("MaxPool2d", {"kernel_size": 2}),
                     ("MaxPool2d", {"kernel_size": 2}), ("Conv2d", {"kernel_size": 5}))
    msg = str(engine.infer_shapes(g)[conv])
    assert "kernel 5 is larger than the 3×3 input" in msg
    assert "lower kernel_size or remove a pooling layer above" in msg


def test_totals_match_the_sum_of_nodes_and_memory_is_output_bytes():
    p = engine.load_project("resources/templates/cnn_mnist.layerloom")
    a = engine.analyze(p.graph)
    assert a.ok and a.total_params == 121_930
    assert a.total_params == sum(n.params for n in a.nodes.values())
    conv = a.nodes["conv2d_1"]
    assert conv.macs == 32 * 26 * 26 * 9 and conv.memory == 32 * 26 * 26 * 4
    assert a.nodes["input_1"].memory == 28 * 28 * 4


def test_int64_input_memory_is_eight_bytes_per_value():
    p = engine.load_project("resources/templates/lstm_sentiment.layerloom")
    a = engine.analyze(p.graph)
    assert a.nodes["input_1"].dtype == "int64" and a.nodes["input_1"].memory == 100 * 8


@pytest.mark.parametrize("alias", ["long", "int", "torch.int64", "INT64"])
def test_input_dtype_accepts_common_spellings(alias):
    g = engine.Graph()
    x = g.add_node("Input", shape=[3], dtype=alias)
    assert g.node(x).params["dtype"] == "int64"


def test_a_200_node_graph_infers_completely():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from graphs import residual_tower

    g = residual_tower(200)
    a = engine.analyze(g)
    assert len(g) >= 200 and a.ok
    assert a.nodes[g.sink_nodes()[0]].shape == (10,)
    # the analytic count matches a real model of the same graph
    model = engine.build_model(g)
    assert a.total_params == sum(p.numel() for p in model.parameters())
    assert math.prod(a.nodes[g.input_nodes()[0]].shape) == 3 * 32 * 32
