"""Graphs of a chosen size for the benchmarks: a residual CNN tower, as users build big networks."""
from __future__ import annotations

import engine


def residual_tower(n_nodes: int = 200, channels: int = 16, size: int = 32) -> engine.Graph:
    """Input → stem → k residual blocks (Conv, BatchNorm, ReLU, Conv, BatchNorm, Add, ReLU) → head,
    with k chosen so the graph has about n_nodes nodes."""
    g = engine.Graph()
    x = g.add_node("Input", shape=[3, size, size], position=(0, 0))
    prev = g.add_node("Conv2d", out_channels=channels, kernel_size=3, padding=1)
    g.connect(x, prev)
    y = 2
    blocks = max(1, round((n_nodes - 7) / 7))
    for _ in range(blocks):
        skip, cur = prev, prev
        for layer, params in (("Conv2d", dict(out_channels=channels, kernel_size=3, padding=1)),
                              ("BatchNorm2d", {}), ("ReLU", {}),
                              ("Conv2d", dict(out_channels=channels, kernel_size=3, padding=1)),
                              ("BatchNorm2d", {}), ("Add", {}), ("ReLU", {})):
            nid = g.add_node(layer, params, position=(0, y * 100))
            g.connect(cur, nid)
            if layer == "Add":
                g.connect(skip, nid)
            cur, y = nid, y + 1
        prev = cur
    for layer, params in (("AdaptiveAvgPool2d", {"output_size": 1}), ("Flatten", {}),
                          ("Linear", {"out_features": 64}), ("ReLU", {}), ("Linear", {"out_features": 10})):
        nid = g.add_node(layer, params, position=(0, y * 100))
        g.connect(prev, nid)
        prev, y = nid, y + 1
    return g
