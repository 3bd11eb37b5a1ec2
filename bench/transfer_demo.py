"""Transfer learning end to end: train the cnn_mnist template on the bundled handwritten digits (28×28), transfer
its two convolution layers into the same network for the generated shapes set (1×28×28, 10 classes), and fine-tune
it (a) with the transferred convolutions frozen, (b) all layers at the same learning rate and (c) all layers with
the convolutions' learning rate × 0.1, against (d) the same network trained from scratch; same epochs, data and
seed for all four.

    .venv/bin/python bench/transfer_demo.py [--source-epochs 4] [--epochs 5] [--samples 1000] [--out FOLDER]

Prints the transfer report and a table of validation accuracy per epoch for each; everything goes through the
engine's own paths (runner.prepare, runs.save_run, transfer.transfer_to_project / save_init_weights, node flags),
with the projects and weights written into --out (a temporary folder by default).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.project import Project, load_project, save_project  # noqa: E402
from engine.runner import prepare  # noqa: E402
from engine.runs import run_settings, save_run  # noqa: E402
from engine.templates import load_template  # noqa: E402
from engine.transfer import replace_head, save_init_weights, transfer_to_project  # noqa: E402

CONVS = ["conv2d_1", "conv2d_2"]


def train(project: Project, base_dir: Path, epochs: int, seed: int) -> tuple[list[float], float, object]:
    """Validation accuracy per epoch, seconds, and the run (its trainer holds the weights)."""
    run = prepare(project, {"epochs": epochs, "seed": seed, "device": "cpu"}, base_dir=base_dir)
    t = time.perf_counter()
    result = run.trainer.fit(run.data)
    if not result.ok:
        raise SystemExit(f"training {project.name} failed: {result.message}")
    return [e["val_acc"] for e in result.history["epochs"]], time.perf_counter() - t, (run, result)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source-epochs", type=int, default=4, help="epochs of the digits network (default 4)")
    ap.add_argument("--epochs", type=int, default=5, help="epochs of each shapes run (default 5)")
    ap.add_argument("--samples", type=int, default=1000, help="shapes images generated (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--out", help="folder for the projects and weights (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out) if args.out else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)

        # 1. the source: cnn_mnist on the bundled digits at 28×28
        source = load_template("cnn_mnist")
        source.name = "digits"
        source_path = folder / "digits.layerloom"
        accs, secs, (run, result) = train(source, folder, args.source_epochs, args.seed)
        run_dir = save_run(folder / "runs" / "digits", run_settings(source), result.history, run.trainer.module,
                           result={"status": str(result.status)})
        source.extra["trained"] = {"weights": str((run_dir / "final.safetensors").relative_to(folder)),
                                   "status": str(result.status)}
        save_project(source_path, source)
        print(f"source: cnn_mnist on {run.bundle.name} ({len(run.bundle.train.x)} training images), "
              f"{args.source_epochs} epochs in {secs:.1f} s, validation accuracy {accs[-1]:.3f}")

        # 2. the target: the same network for the shapes set
        def shapes_project(name: str) -> Project:
            p = load_template("cnn_mnist")
            p.name = name
            p.data = {"source": "shapes", "params": {"n_samples": args.samples, "size": 28, "channels": 1,
                                                     "seed": args.seed},
                      "split": {"val": 0.3, "test": 0.0, "seed": 0}}
            changed = replace_head(p.graph, 10)  # shapes has 10 classes, as digits: nothing to change here
            assert changed == []
            return p

        probe = shapes_project("probe")
        weights, report = transfer_to_project(probe, source_path, base_dir=folder, layers=CONVS)
        print(f"transfer: {report.summary}")

        variants: dict[str, Project] = {}
        scratch_p = shapes_project("scratch")
        variants["from scratch"] = scratch_p
        frozen = shapes_project("frozen")
        for nid in CONVS:
            frozen.graph.set_training_flags(nid, frozen=True)
        variants["convs frozen"] = frozen
        variants["all, same lr"] = shapes_project("all")
        gentle = shapes_project("gentle")
        for nid in CONVS:
            gentle.graph.set_training_flags(nid, lr_factor=0.1)
        variants["all, convs lr×0.1"] = gentle
        for name, p in variants.items():
            path = folder / f"shapes_{p.name}.layerloom"
            if p is not scratch_p:
                save_init_weights(p, path, weights, source=source_path.name, report=report)
            save_project(path, p)
            variants[name] = load_project(path)  # trained as reopened from the file: flags and init included

        curves: dict[str, list[float]] = {}
        times: dict[str, float] = {}
        for name, p in variants.items():
            curves[name], times[name], (run, _r) = train(p, folder, args.epochs, args.seed)
            if name == next(iter(variants)):
                print(f"target: {run.bundle.name}, {len(run.bundle.train.x)} training and {len(run.bundle.val.x)} "
                      f"validation images, {args.epochs} epochs, seed {args.seed}")

    names = list(curves)
    width = max(len(n) for n in names) + 2
    print()
    print("validation accuracy per epoch")
    print("epoch".ljust(6) + "".join(n.rjust(width) for n in names))
    for e in range(args.epochs):
        print(str(e + 1).ljust(6) + "".join(f"{curves[n][e]:.3f}".rjust(width) for n in names))
    print("time".ljust(6) + "".join(f"{times[n]:.1f} s".rjust(width) for n in names))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
