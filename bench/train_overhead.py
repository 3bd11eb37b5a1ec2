"""Steps per second of LayerLoom's Trainer against a plain hand-written PyTorch loop, on the same model, the same
tensors (digits resized to 28×28) and the same batch size, measured in one run, rounds interleaved.

    .venv/bin/python bench/train_overhead.py [--templates cnn_mnist mlp_mnist_128] [--rounds 5] [--epochs 6]

Prints, per template, the median steps/s of each and the ratios Trainer / plain (goal: ≥ 0.97 without
snapshots, ≥ 0.95 with a snapshot every 50 steps). The Trainer keeps image batches channels-last, which is faster
for convolutions on CPU; the plain loop is timed both as people write it (row-major) and channels-last too.
Each Trainer measurement is a whole fit(), its one-off set-up included (seeding, a copy of the weights to fall
back on, hooks: 2-3 ms here); 6 epochs (174 steps) keep that set-up near 2 % of the time, as in a real run
where it is smaller still. With --epochs 2 it is about 5 % of a 60 ms measurement on the MLP.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import engine  # noqa: E402
from engine.callbacks import Snapshots  # noqa: E402
from engine.data import load_data  # noqa: E402
from engine.templates import template_path  # noqa: E402
from engine.training import TensorData, TrainConfig, Trainer  # noqa: E402


def plain_loop(model, x, y, epochs: int, bs: int, seed: int, metrics: bool = False) -> float:
    """What a person writes by hand: shuffle, slice, forward, loss, backward, step; loss.item() for the log.
    With `metrics`, it also counts each step's correct predictions, as the Trainer reports loss and accuracy."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = torch.nn.CrossEntropyLoss()
    n = len(x)
    steps = correct = 0
    t = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb, yb = x[idx], y[idx]
            opt.zero_grad()
            out = model(xb)
            loss = crit(out, yb)
            loss.backward()
            opt.step()
            loss.item()
            if metrics:
                correct += (out.argmax(1) == yb).sum().item()
            steps += 1
    return steps / (time.perf_counter() - t)


def trainer_loop(model, x, y, epochs: int, bs: int, seed: int, snapshots: bool) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    callbacks = [Snapshots(every=50)] if snapshots else []
    trainer = Trainer(model, torch.nn.CrossEntropyLoss(), opt, TrainConfig(epochs=epochs, batch_size=bs, seed=seed),
                      callbacks=callbacks)
    t = time.perf_counter()
    result = trainer.fit(TensorData(x, y))
    assert result.status.value == "finished", result.message
    return result.steps_done / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", nargs="+", default=["cnn_mnist", "mlp_mnist_128"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    bundle = load_data({"source": "digits", "params": {"size": 28}, "split": {"val": 0.0, "test": 0.0}})
    x = torch.tensor(bundle.train.x).clone(memory_format=torch.contiguous_format)  # plain row-major, as by hand
    y = torch.as_tensor(bundle.train.y, dtype=torch.int64)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    print(f"data: digits 28×28, {len(x)} samples, batch {args.batch_size}, {args.epochs} epochs per measurement, "
          f"{args.rounds} interleaved rounds, torch {torch.__version__} on {torch.get_num_threads()} threads")
    for name in args.templates:
        graph = engine.load_project(template_path(name)).graph
        runs: dict[str, list[float]] = {"plain": [], "plain channels-last": [], "plain+accuracy": [], "trainer": [],
                                        "trainer+snapshots": []}
        for r in range(args.rounds + 1):  # round 0 warms up caches and allocators
            for kind in runs:
                model = engine.build_model(graph, seed=0)
                if kind == "plain":
                    rate = plain_loop(model, x, y, args.epochs, args.batch_size, r)
                elif kind == "plain+accuracy":
                    rate = plain_loop(model, x, y, args.epochs, args.batch_size, r, metrics=True)
                elif kind == "plain channels-last":  # the layout the Trainer picks for images, written by hand
                    rate = plain_loop(model.to(memory_format=torch.channels_last), x_cl, y, args.epochs,
                                      args.batch_size, r)
                else:
                    rate = trainer_loop(model, x, y, args.epochs, args.batch_size, r, kind.endswith("snapshots"))
                if r:
                    runs[kind].append(rate)
        med = {k: statistics.median(v) for k, v in runs.items()}

        def ratio(a: str, b: str) -> float:
            return statistics.median(p / q for p, q in zip(runs[a], runs[b], strict=True))

        print(f"{name}: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()) + " steps/s")
        print(f"{name}: ratio Trainer/plain {ratio('trainer', 'plain'):.3f} (goal ≥ 0.97), "
              f"Trainer+snapshots/plain {ratio('trainer+snapshots', 'plain'):.3f} (goal ≥ 0.95); "
              f"against plain channels-last {ratio('trainer', 'plain channels-last'):.3f} and "
              f"{ratio('trainer+snapshots', 'plain channels-last'):.3f}; against plain+accuracy "
              f"{ratio('trainer', 'plain+accuracy'):.3f} and {ratio('trainer+snapshots', 'plain+accuracy'):.3f}")


if __name__ == "__main__":
    main()
