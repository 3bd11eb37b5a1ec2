"""For every template: how long `export_model` takes per format, and how fast the exported ONNX file runs in
onnxruntime against the same network in PyTorch eager on the same batch, measured in one run.

    .venv/bin/python bench/export.py [--quick] [--templates cnn_mnist,lstm_sentiment] [--batch-size 32]

Export time is the engine's whole export (build, write, read back, run and compare on two batch sizes), with
untrained weights (weights=None: make_model's seeded initialisation), into a fresh temporary folder; a first
export of the smallest template in every format pays the one-time imports and is not counted. Throughput is
samples/s on one batch (int64 ids for the Embedding templates, from make_sample), after a warm-up, as the median
of interleaved rounds with a short untimed pause before each measurement (both engines' threads spin on after a
call and would slow the other down); the ratio onnxruntime / eager is the median of the per-round ratios (above
1: onnxruntime is faster). The largest difference between the two outputs shows it is the same computation.
onnxruntime runs on the CPUExecutionProvider with default SessionOptions (intra_op_num_threads=0: its own choice,
one thread per physical core); PyTorch keeps its default thread count, printed in the header. An "int8" format,
where the engine has one, is exported and run in onnxruntime the same way.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from engine.export import ALL_FORMATS, ExportError, export_model, make_model, make_sample  # noqa: E402
from engine.templates import load_template, template_names  # noqa: E402
from engine.units import format_bytes  # noqa: E402

SUFFIX = {"safetensors": ".safetensors", "onnx": ".onnx", "pt2": ".pt2", "torchscript": ".ts", "python": ".py",
          "int8": ".int8.onnx"}
QUICK_TEMPLATES = ["cnn_mnist", "lstm_sentiment"]
WARMUP_TEMPLATE = "linear_regression"
MIN_SECONDS = 0.02  # each timed measurement repeats the forward pass until it lasts about this long
# Untimed pause before each measurement: onnxruntime's thread pool (and PyTorch's OpenMP threads) keep spinning a
# moment after a call, which on 2 cores halves the speed of whichever engine is timed right after the other.
PAUSE = 0.1


def export_all(project, folder: Path, name: str) -> dict[str, object]:
    """Each format's ExportReport, or its ExportError when the export failed. The Project is passed, as the CLI
    and the app do: int8 scores the float and the int8 network on the project's data."""
    out: dict[str, object] = {}
    for fmt in ALL_FORMATS:
        try:
            out[fmt] = export_model(project, None, fmt, folder / f"{name}{SUFFIX.get(fmt, '.' + fmt)}")
        except ExportError as e:
            out[fmt] = e
    return out


def calls_per_measurement(fn) -> int:
    t = time.perf_counter()
    fn()
    return max(1, math.ceil(MIN_SECONDS / max(time.perf_counter() - t, 1e-7)))


def throughput(runners: dict[str, object], batch: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    """samples/s of each runner per round; runners are interleaved within a round."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    counts = {}
    for k, fn in runners.items():
        time.sleep(PAUSE)
        counts[k] = calls_per_measurement(fn)
    rates: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, fn in runners.items():
            time.sleep(PAUSE)
            t = time.perf_counter()
            for _ in range(counts[k]):
                fn()
            rates[k].append(batch * counts[k] / (time.perf_counter() - t))
    return rates


def max_abs_diff(got: list[np.ndarray], want: list[torch.Tensor]) -> float:
    return max(float(np.abs(g.astype(np.float64) - w.double().numpy()).max()) for g, w in zip(got, want))


def outputs(value) -> list[torch.Tensor]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", help="comma-separated names (default: all; with --quick: "
                    f"{','.join(QUICK_TEMPLATES)})")
    ap.add_argument("--quick", action="store_true", help="two templates, fewer rounds")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, help="timed rounds per template (default 15, 5 with --quick)")
    args = ap.parse_args()
    names = ([n for n in args.templates.split(",") if n] if args.templates
             else QUICK_TEMPLATES if args.quick else template_names())
    unknown = [n for n in names if n not in template_names()]
    if unknown:
        ap.error(f"no template {', '.join(unknown)}; templates: {', '.join(template_names())}")
    rounds = args.rounds or (5 if args.quick else 15)
    warmup = 3 if args.quick else 10
    bs = args.batch_size
    onnx_formats = [f for f in ALL_FORMATS if SUFFIX.get(f, "").endswith(".onnx")]

    print(f"torch {torch.__version__} on {torch.get_num_threads()} threads (default); onnxruntime "
          f"{ort.__version__}, CPUExecutionProvider, default SessionOptions (intra_op_num_threads=0, its own "
          f"choice); formats: {', '.join(ALL_FORMATS)}")
    print(f"throughput: batch {bs}, {warmup} warm-up calls, median of {rounds} interleaved rounds of "
          f"≥ {MIN_SECONDS * 1000:.0f} ms each, {PAUSE * 1000:.0f} ms pause before each; load average "
          f"{os.getloadavg()[0]:.2f} at start (other processes on the cores skew the times)")
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="layerloom-bench-export-") as tmp:
        warm = Path(tmp) / "warm-up"
        warm.mkdir()
        export_all(load_template(WARMUP_TEMPLATE), warm, WARMUP_TEMPLATE)  # imports, caches: not counted

        exports: dict[str, dict[str, object]] = {}
        speed: dict[str, dict[str, tuple[float, float, float, float]]] = {}
        skipped: list[str] = []
        for name in names:
            folder = Path(tmp) / name
            folder.mkdir()
            project = load_template(name)
            graph = project.graph
            exports[name] = reports = export_all(project, folder, name)

            model = make_model(graph)  # the network every export above wrote: seed 0, evaluation mode
            sample = make_sample(graph, model, bs)
            with torch.no_grad():
                want = outputs(model(*sample))

            def eager(model=model, sample=sample):
                with torch.no_grad():
                    return model(*sample)

            runners = {"eager": eager}
            diffs = {}
            for fmt in onnx_formats:
                if isinstance(reports.get(fmt), ExportError):
                    continue
                try:
                    session = ort.InferenceSession(reports[fmt].path, providers=["CPUExecutionProvider"])
                except Exception as e:  # int8 written as something other than ONNX: only its export is timed
                    if fmt == "onnx":
                        raise
                    skipped.append(f"{name} {fmt}: not run in onnxruntime ({str(e).strip()[:120]})")
                    continue
                feed = {i.name: t.numpy() for i, t in zip(session.get_inputs(), sample)}
                diffs[fmt] = max_abs_diff(session.run(None, feed), want)
                runners[fmt] = lambda session=session, feed=feed: session.run(None, feed)
            rates = throughput(runners, bs, rounds, warmup)
            speed[name] = {fmt: (statistics.median(rates["eager"]), statistics.median(rates[fmt]),
                                 statistics.median(o / e for o, e in zip(rates[fmt], rates["eager"])), diffs[fmt])
                           for fmt in runners if fmt != "eager"}

    width = max(len(n) for n in names)
    print("\nexport time per format, seconds (the whole export_model: build, write, read back, run, compare)")
    print(f"{'template':<{width}}  " + "  ".join(f"{fmt:>11}" for fmt in ALL_FORMATS))
    for name in names:
        print(f"{name:<{width}}  " + "  ".join(
            f"{'failed' if isinstance(r, ExportError) else f'{r.seconds:.2f}':>11}" for r in exports[name].values()))
    totals = {fmt: [exports[n][fmt].seconds for n in names if not isinstance(exports[n][fmt], ExportError)]
              for fmt in ALL_FORMATS}
    print(f"{'median':<{width}}  " + "  ".join(f"{(f'{statistics.median(v):.2f}' if v else '—'):>11}"
                                                for v in totals.values()))
    print("\nsize of what each export wrote")
    print(f"{'template':<{width}}  " + "  ".join(f"{fmt:>11}" for fmt in ALL_FORMATS))
    for name in names:
        print(f"{name:<{width}}  " + "  ".join(
            f"{'failed' if isinstance(r, ExportError) else format_bytes(r.size_bytes):>11}"
            for r in exports[name].values()))
    failed = [(n, fmt, e) for n in names for fmt, e in exports[n].items() if isinstance(e, ExportError)]
    for n, fmt, e in failed:
        print(f"  {n} {fmt} failed: {e}")

    for fmt in onnx_formats:
        rows = [(n, speed[n][fmt]) for n in names if fmt in speed[n]]
        if not rows:
            continue
        print(f"\n{fmt} file in onnxruntime vs PyTorch eager (torch.no_grad), batch {bs}, samples/s")
        print(f"{'template':<{width}}  {'eager':>12}  {'onnxruntime':>12}  {'ratio':>7}  {'max |diff|':>10}"
              + ("  (int8 against the float network: the rounding to 8 bits)" if fmt == "int8" else ""))
        for n, (e, o, ratio, diff) in rows:
            print(f"{n:<{width}}  {e:12,.0f}  {o:12,.0f}  {ratio:6.2f}×  {diff:10.2e}")
        ratios = [r[1][2] for r in rows]
        print(f"{fmt} in onnxruntime vs eager: median ratio {statistics.median(ratios):.2f}× over {len(rows)} "
              f"templates (range {min(ratios):.2f}× to {max(ratios):.2f}×; above 1: onnxruntime faster)")
    for line in skipped:
        print(f"  {line}")
    print(f"\nwhole run: {time.perf_counter() - t_start:.0f} s; load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
