"""Samples per second of `layerloom`'s Trainer on 1 and on 2 processes (torchrun, gloo on CPU), in one run.

    .venv/bin/python bench/ddp.py [--template mlp_mnist_128] [--epochs 3] [--batch-size 128]

Each process gets cores / N threads, as torchrun arranges. On a 2-core machine two processes share the cores
the single process had, so the ratio shows the cost of the gradient all-reduce more than a speed-up.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(nproc: int, args) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // nproc)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(HERE / "ddp_worker.py"), args.template, str(args.epochs), str(args.batch_size)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    m = re.search(r"RESULT (.*)", out.stdout)
    if out.returncode or not m:
        sys.exit(f"{nproc} process(es) failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    print(f"{nproc} process(es): {m.group(1)}")
    return float(re.search(r"samples_per_s=([\d.]+)", m.group(1)).group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", default="mlp_mnist_128")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    one, two = [], []
    for _ in range(args.rounds):
        one.append(run(1, args))
        two.append(run(2, args))
    best1, best2 = max(one), max(two)
    print(f"{args.template}: 1 process {best1:.0f} samples/s, 2 processes {best2:.0f} samples/s, "
          f"ratio 2/1 = {best2 / best1:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
