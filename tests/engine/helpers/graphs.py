"""Graph builders the engine tests share (import as `from helpers.graphs import chain`)."""
from __future__ import annotations

import engine


def chain(shape, *layers):
    """An Input of `shape` followed by `layers`, each a (layer type, params) pair, connected in a line."""
    g = engine.Graph()
    prev = g.add_node("Input", shape=list(shape))
    for layer, params in layers:
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    return g
