"""Time to re-infer every shape of a 200-node graph after one edit, against the obvious alternative:
building the same network as an nn.Module and running one forward pass on the meta device.

    .venv/bin/python bench/shape_inference.py [--nodes 200] [--repeat 30]

Prints medians and the ratio LayerLoom / baseline (lower is better); the goal is at most 50 ms.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine  # noqa: E402

from graphs import residual_tower  # noqa: E402


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up: first calls pay for imports and caches
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    g = residual_tower(args.nodes)
    conv = next(nid for nid, n in g.nodes.items() if n.type == "Conv2d")
    widths = iter([16, 17] * (args.repeat + 10))

    def edit_and_infer():
        g.set_params(conv, out_channels=next(widths))  # the edit that triggers re-inference in the app
        engine.analyze(g)

    import torch

    def meta_build_and_forward():
        with torch.device("meta"):
            model = engine.build_model(g)
            out = model(*model.example_inputs(1, device="meta"))
        return out.shape

    ours = median_ms(edit_and_infer, args.repeat)
    g.set_params(conv, out_channels=16)
    base = median_ms(meta_build_and_forward, max(5, args.repeat // 3))
    analysis = engine.analyze(g)
    assert analysis.ok
    print(f"graph: {len(g)} nodes, {len(g.edges)} edges, {analysis.total_params:,d} params")
    print(f"LayerLoom re-inference after one edit : {ours:8.2f} ms (median of {args.repeat}; goal ≤ 50 ms)")
    print(f"nn.Module build + meta forward        : {base:8.2f} ms (median)")
    print(f"ratio LayerLoom / baseline            : {ours / base:8.3f}  ({base / ours:.0f}× faster)")


if __name__ == "__main__":
    main()
