"""What a hyper-parameter search costs beyond the training it runs, and what a second worker process gains.

    .venv/bin/python bench/search.py [--trials 8] [--epochs 3] [--samples 4000] [--rounds 3] [--workers 1 2]

1. Overhead: the same trials (a seeded random search over the learning rate and the hidden width of a moons MLP,
   pruning off) run by `run_search`, and the same settings trained directly with `runner.prepare` + `fit` on the
   data loaded once. The difference per trial is what the search adds: Optuna's sampling and bookkeeping, the
   project copy and graph check of `apply_params`, reporting each epoch, and, spread over the trials, the data
   loading and up-front check that run_search does once. It is measured on trainings of one epoch
   on 200 samples (--overhead-samples), so that the noise of the training itself does not hide it.
2. Workers: wall time of the whole search with 1 and with N worker processes sharing the budget (each worker with
   cores // N torch threads; its start-up, importing torch and loading the data, is included).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine  # noqa: E402
from engine.data import load_data  # noqa: E402
from engine.runner import prepare  # noqa: E402
from engine.search import apply_params, run_search  # noqa: E402


def moons(samples: int, epochs: int) -> engine.Project:
    g = engine.Graph()
    prev = g.add_node("Input", shape=[2])
    for layer, params in (("Linear", {"out_features": 64}), ("ReLU", {}), ("Linear", {"out_features": 64}),
                          ("ReLU", {}), ("Linear", {"out_features": 2})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    return engine.Project(graph=g, name="moons", data={"source": "moons", "params": {"n_samples": samples}},
                          loss={"type": "CrossEntropy", "params": {}},
                          optimizer={"type": "Adam", "params": {"lr": 0.01}},
                          training={"epochs": epochs, "batch_size": 32})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--overhead-samples", type=int, default=200)
    args = ap.parse_args()
    project = moons(args.overhead_samples, 1)
    spec = {"method": "random", "trials": args.trials, "seed": 0, "epochs": 1, "prune": False,
            "space": [{"target": "optimizer.lr", "kind": "float", "low": 1e-3, "high": 0.1, "log": True},
                      {"target": "node:linear_1.out_features", "kind": "int", "low": 16, "high": 128, "log": True}]}
    bundle = load_data(project.data)
    run = prepare(project, bundle=bundle)  # warm-up: the first model and optimizer import more of torch
    run.trainer.fit(run.data)

    plan = [t["params"] for t in run_search(project, spec).trials]  # the values the seeded search tries
    searched, direct = [], []
    for _ in range(args.rounds):  # interleaved, so a busy machine slows both alike
        t = time.perf_counter()
        run_search(project, spec)
        searched.append(time.perf_counter() - t)
        t = time.perf_counter()
        for params in plan:
            run = prepare(apply_params(project, params), bundle=bundle)
            run.trainer.fit(run.data)
        direct.append(time.perf_counter() - t)
    s, d = statistics.median(searched), statistics.median(direct)
    print(f"overhead: {args.trials} trials of 1 epoch on {args.overhead_samples} samples, median of {args.rounds} "
          f"rounds: run_search {s:.3f} s, the same trainings directly {d:.3f} s: "
          f"{(s - d) / args.trials * 1000:+.1f} ms per trial")

    project = moons(args.samples, args.epochs)
    spec = dict(spec, epochs=args.epochs)
    print(f"workers: {args.trials} trials of {args.epochs} epochs on {args.samples} samples")

    for workers in args.workers:
        t = time.perf_counter()
        result = run_search(project, spec, workers=workers)
        wall = time.perf_counter() - t
        threads = ", ".join(str(w["threads"]) for w in result.workers)
        print(f"  {workers} worker(s): {wall:.2f} s for {len(result.trials)} trials (torch threads: {threads}); "
              f"best val_loss {result.best['value']:.4f}")


if __name__ == "__main__":
    main()
