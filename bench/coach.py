"""What the training coach costs: steps per second of the same template trained with and without a Coach, in one
run, measurements interleaved (plain, coached, plain, coached ...) so a busy machine weighs on both alike.

    .venv/bin/python bench/coach.py [--templates mlp_mnist_128 cnn_mnist] [--rounds 5] [--epochs 2] [--every 20]
                                    [--threads N]

Each measurement is a whole fit() of a fresh run from engine.runner.prepare on the template's own data (loaded
once), validation included. Prints per template the median steps/s of each, the median of the per-round ratios
coached / plain (goal: ≥ 0.95), the coach's own time per sampled step and its share of the run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.coach import Coach  # noqa: E402
from engine.data import load_data  # noqa: E402
from engine.runner import prepare  # noqa: E402
from engine.templates import load_template  # noqa: E402


def measure(project, bundle, epochs: int, coach: Coach | None) -> tuple[float, float]:
    run = prepare(project, {"epochs": epochs, "device": "cpu"}, callbacks=[coach] if coach else None, bundle=bundle)
    t = time.perf_counter()
    result = run.trainer.fit(run.data)
    elapsed = time.perf_counter() - t
    assert result.ok, result.message
    return result.steps_done / elapsed, elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", nargs="+", default=["mlp_mnist_128", "cnn_mnist"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 steadies the "
                                                           "figures on a machine busy with other work")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} on {torch.get_num_threads()} threads; {args.epochs} epochs per measurement, "
          f"{args.rounds} interleaved rounds (after one warm-up), coach every {args.every} steps")
    for name in args.templates:
        project = load_template(name)
        bundle = load_data(project.data)
        plain, coached, share, samples, warnings, seconds = [], [], [], [], [], []
        for r in range(args.rounds + 1):  # round 0 warms caches, allocators and lazy imports up
            order = ("plain", "coached") if r % 2 == 0 else ("coached", "plain")
            for kind in order:
                if kind == "plain":
                    rate, _ = measure(project, bundle, args.epochs, None)
                    if r:
                        plain.append(rate)
                else:
                    coach = Coach(every=args.every)
                    rate, elapsed = measure(project, bundle, args.epochs, coach)
                    if r:
                        coached.append(rate)
                        seconds.append(coach.seconds)
                        share.append(coach.seconds / elapsed)
                        samples.append(coach.count)
                        warnings.append(len(coach.warnings))
        ratio = statistics.median(c / p for c, p in zip(coached, plain, strict=True))
        steps = -(-len(bundle.train.x) // int(project.training.get("batch_size", 32)))
        per_sample = 1000 * sum(seconds) / max(1, sum(samples))
        print(f"{name}: {len(bundle.train.x)} training samples, {steps} steps per epoch; plain "
              f"{statistics.median(plain):.1f} steps/s, coached {statistics.median(coached):.1f} steps/s; "
              f"ratio coached/plain {ratio:.3f} (goal ≥ 0.95; per round: "
              f"{', '.join(f'{c / p:.3f}' for c, p in zip(coached, plain, strict=True))}); coach "
              f"{per_sample:.2f} ms per sampled step, {statistics.median(samples)} samples per run, "
              f"{100 * statistics.median(share):.2f} % of the run's time; "
              f"warnings given: {warnings}")


if __name__ == "__main__":
    main()
