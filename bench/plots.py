"""Live-plot smoothness: frame times of TrainingPlots holding 1,000,000 points per per-step curve (loss, accuracy,
learning rate, fed in chunks as a run sends them) while panning, zooming and appending, against a plain
pyqtgraph PlotWidget drawing one curve of the same data naively (no downsampling, no clipping) and against empty
plots, all in the same run; plus the cost of `add_steps` per chunk and of one timer tick.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/plots.py [--points 1000000] [--chunk 1000] [--frames 60]

A frame is one step of the gesture (pan by 1 % of the visible range, zoom by 4 %, or append one chunk and let
the timer's flush draw it) followed by one turn of the event loop, which paints the whole plot area. Prints
medians, p95 and the ratios to the empty plot and to the naive curve (lower is better). Goal: frames well under
33 ms (the 30 Hz timer), so that a long run never makes the window stutter.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QObject  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

SIZE = (1000, 650)

Frame = tuple[float, float]  # wall and CPU seconds


def stats(values: list[float]) -> tuple[float, float]:
    """Median and 95th percentile in ms."""
    ms = sorted(v * 1000 for v in values)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def run_chunks(points: int, chunk: int, seed: int = 0):
    """The per-step figures of a long run, in the chunks the worker emits (~30 a second)."""
    rng = np.random.default_rng(seed)
    for start in range(0, points, chunk):
        n = min(chunk, points - start)
        s = np.arange(start + 1, start + n + 1, dtype=np.int64)
        loss = 2.3 * np.exp(-s / (points / 8)) + 0.05 + rng.gamma(2.0, 0.03, n)
        yield {"step": s, "epoch": s // 10_000 + 1, "loss": loss, "acc": np.clip(1.0 - loss / 2.4, 0.0, 1.0),
               "lr": 1e-3 * 0.5 * (1 + np.cos(np.pi * s / points))}


class PaintCounter(QObject):
    """Counts the paint events of a viewport."""

    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


COUNTERS: dict[int, PaintCounter] = {}
PAINTS = {"frames": 0, "paints": 0}


def frame(widget, step: Callable[[], None]) -> Frame:
    """Wall-clock and CPU seconds of one frame: the step, then the event loop's turn, in which pyqtgraph's scene
    processes its dirty items and paints the viewport once, as it would live (a repaint() forced before that
    turn is painted again after it, doubling every frame). A frame that did not paint is painted at once."""
    counter = COUNTERS.get(id(widget))
    if counter is None:
        counter = COUNTERS[id(widget)] = PaintCounter()
        widget.viewport().installEventFilter(counter)
    before = counter.paints
    t, c = time.perf_counter(), time.thread_time()
    step()
    QApplication.processEvents()
    if counter.paints == before:
        widget.viewport().repaint()
    wall, cpu = time.perf_counter() - t, time.thread_time() - c
    PAINTS["frames"] += 1
    PAINTS["paints"] += counter.paints - before
    return wall, cpu


def pan_frames(widget, plot, frames: int, x0: float, x1: float) -> list[Frame]:
    """Pan back and forth by 1 % of a window showing [x0, x1]."""
    plot.setXRange(x0, x1, padding=0)
    QApplication.processEvents()
    width = x1 - x0
    state = {"x0": x0}
    times = []
    for i in range(frames + 3):
        d = 0.01 * width if (i // 25) % 2 == 0 else -0.01 * width

        def step(d=d):
            state["x0"] += d
            plot.setXRange(state["x0"], state["x0"] + width, padding=0)

        f = frame(widget, step)
        if i >= 3:  # the first frames build caches
            times.append(f)
    return times


def zoom_frames(widget, plot, frames: int, x0: float, x1: float) -> list[Frame]:
    """Zoom in and out by 4 % per frame around the middle of [x0, x1]."""
    plot.setXRange(x0, x1, padding=0)
    QApplication.processEvents()
    centre, half = (x0 + x1) / 2, (x1 - x0) / 2
    state = {"half": half}
    times = []
    for i in range(frames):
        f = 1 / 1.04 if (i // 25) % 2 == 0 else 1.04

        def step(f=f):
            state["half"] *= f
            plot.setXRange(centre - state["half"], centre + state["half"], padding=0)

        times.append(frame(widget, step))
    return times


def line(label: str, ours: list[Frame], empty: list[Frame], naive: list[Frame] | None = None) -> str:
    med, p95 = stats([w for w, _ in ours])
    cpu, _ = stats([c for _, c in ours])
    emed, ep95 = stats([w for w, _ in empty])
    text = (f"  {label:<26} median {med:6.2f} ms  p95 {p95:6.2f} ms  (cpu {cpu:5.2f})"
            f"  | empty {emed:5.2f} / {ep95:5.2f} ms  ×{med / max(emed, 1e-6):4.1f}")
    if naive:
        nmed, np95 = stats([w for w, _ in naive])
        text += f"  | naive {nmed:7.1f} / {np95:7.1f} ms  ours is {nmed / max(med, 1e-6):5.1f}× faster"
    return text


def snapshot_times(repeat: int) -> None:
    """A snapshot reaching the filters (64 kernels 3×3) and feature maps (32 maps 26×26) views on screen: the
    NumPy mosaic and setImage, then the frame that shows it."""
    from gui.live_views import FeatureMapsView, FiltersView

    rng = np.random.default_rng(0)
    for name, view, make in (
            ("filters 64 × 3×3", FiltersView(), lambda i: {
                "step": i, "kernel_layer": "conv1", "kernels": rng.normal(size=(64, 1, 3, 3)).astype(np.float32)}),
            ("feature maps 32 × 26×26", FeatureMapsView(), lambda i: {
                "step": i, "feature_layer": "conv1",
                "features": np.maximum(rng.normal(size=(32, 26, 26)), 0).astype(np.float32)})):
        view.resize(*SIZE)
        view.show()
        QApplication.processEvents()
        snaps = [make(i) for i in range(repeat)]
        updates = []
        for snap in snaps[:3]:
            view.set_snapshot(snap)
        for snap in snaps:
            t = time.perf_counter()
            view.set_snapshot(snap)
            updates.append(time.perf_counter() - t)
        shown = [frame(view.canvas, lambda s=s: view.set_snapshot(s)) for s in snaps]
        umed, up95 = stats(updates)
        fmed, fp95 = stats([w for w, _ in shown])
        print(f"  snapshot: {name:<24} update median {umed:5.2f} ms  p95 {up95:5.2f} ms; "
              f"with its frame {fmed:5.2f} / {fp95:5.2f} ms")
        view.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000, help="points per per-step curve")
    ap.add_argument("--chunk", type=int, default=1000, help="points per add_steps call")
    ap.add_argument("--frames", type=int, default=60, help="frames per gesture for TrainingPlots and empty plots")
    ap.add_argument("--naive-frames", type=int, default=12, help="frames per gesture for the naive curve")
    args = ap.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    import pyqtgraph as pg

    from gui.plots import TrainingPlots
    from gui.theme import apply_theme

    apply_theme(app, "light")
    began = time.perf_counter()

    plots = TrainingPlots()
    plots.resize(*SIZE)
    plots.show()
    plots.start_run({"metric": "accuracy", "total_steps": args.points, "steps_per_epoch": 10_000})
    empty_plots = TrainingPlots()
    empty_plots.resize(*SIZE)
    empty_plots.show()
    empty_plots.start_run({"metric": "accuracy"})
    QApplication.processEvents()

    # ---- fill: add_steps per chunk as the worker's signal would call it; a timer tick every chunk or so
    adds, ticks = [], []
    xs, ys = [], []
    epoch_every = 10_000 // args.chunk or 1
    for i, chunk in enumerate(run_chunks(args.points, args.chunk)):
        t = time.perf_counter()
        plots.add_steps(chunk)
        adds.append(time.perf_counter() - t)
        xs.append(chunk["step"])
        ys.append(chunk["loss"])
        if (i + 1) % epoch_every == 0:
            s = float(chunk["step"][-1])
            loss = float(chunk["loss"].mean())
            plots.add_epoch({"epoch": s / 10_000, "step": s, "loss": loss, "acc": 1 - loss / 2.4,
                             "val_loss": loss * 1.05, "val_acc": 1 - loss / 2.3, "lr": float(chunk["lr"][-1])})
        if i % 30 == 29:  # about one tick per second of a run: the buffers' own growth dominates the fill
            t = time.perf_counter()
            plots.flush()
            ticks.append(time.perf_counter() - t)
    x_all, y_all = np.concatenate(xs).astype(np.float64), np.concatenate(ys)
    t = time.perf_counter()
    plots.flush()
    full_tick = time.perf_counter() - t
    QApplication.processEvents()
    filled = time.perf_counter() - began

    naive = pg.PlotWidget()
    naive.resize(*SIZE)
    naive.show()
    curve = naive.plot(x_all, y_all, pen=pg.mkPen("#3b7dd8", width=1))
    empty = pg.PlotWidget()
    empty.resize(*SIZE)
    empty.show()
    QApplication.processEvents()

    amed, ap95 = stats(adds)
    print(f"TrainingPlots {SIZE[0]}×{SIZE[1]} (loss, accuracy, learning rate), {args.points:,d} points per per-step "
          f"curve in chunks of {args.chunk:,d} ({filled:.1f} s to fill); naive: one PlotWidget curve of the same "
          f"loss data with no downsampling or clipping")
    print(f"  add_steps per chunk        median {amed:6.3f} ms  p95 {ap95:6.3f} ms  "
          f"({amed / args.chunk * 1e6:.0f} ns per step, all columns)")
    tmed, tp95 = stats(ticks)
    print(f"  timer tick (setData)       median {tmed:6.2f} ms  p95 {tp95:6.2f} ms over the fill; "
          f"{full_tick * 1000:.2f} ms at {args.points:,d} points after smoothing 0 → drawn")

    frames, nframes = args.frames, args.naive_frames
    n = float(args.points)
    ours_plot, empty_ours_plot = plots.loss_plot, empty_plots.loss_plot
    naive_plot, empty_plot = naive.getPlotItem(), empty.getPlotItem()
    widgets = ((plots.graphics, ours_plot), (empty_plots.graphics, empty_ours_plot), (naive, naive_plot),
               (empty, empty_plot))

    def gesture(kind: str, *window: float) -> tuple[list[Frame], ...]:
        fn = pan_frames if kind == "pan" else zoom_frames
        return tuple(fn(w, p, nframes if w is naive else frames, *window) for w, p in widgets)

    ours, ours_empty, nv, em = gesture("pan", 0.45 * n, 0.55 * n)
    print(line("pan, 10 % of the run", ours, ours_empty, nv))
    print(f"  {'':<26} (a plain empty PlotWidget: {stats([w for w, _ in em])[0]:.2f} ms)")
    ours, ours_empty, nv, em = gesture("pan", 0.0, n)
    print(line("pan, the whole run", ours, ours_empty, nv))
    ours, ours_empty, nv, em = gesture("zoom", 0.0, n)
    print(line("zoom ×1.04 in and out", ours, ours_empty, nv))

    # ---- appending at full size: a chunk arrives, the tick draws it; the view follows the run
    for _widget, p in widgets:
        p.enableAutoRange()
    more = run_chunks(args.chunk * (frames + nframes + 2), args.chunk, seed=1)
    offset = {"step": args.points}

    def next_chunk():
        c = next(more)
        c["step"] = c["step"] + offset["step"]
        return c

    def append_ours():
        plots.add_steps(next_chunk())
        plots.flush()

    naive_data = {"x": x_all, "y": y_all}

    def append_naive():
        c = next_chunk()
        naive_data["x"] = np.concatenate([naive_data["x"], c["step"]])
        naive_data["y"] = np.concatenate([naive_data["y"], c["loss"]])
        curve.setData(naive_data["x"], naive_data["y"])

    ours = [frame(plots.graphics, append_ours) for _ in range(frames)]
    ours_empty = [frame(empty_plots.graphics, lambda: empty_plots.flush()) for _ in range(frames)]
    nv = [frame(naive, append_naive) for _ in range(nframes)]
    print(line("append a chunk + draw", ours, ours_empty, nv))
    snapshot_times(frames)
    per_frame = PAINTS["paints"] / max(1, PAINTS["frames"])
    print(f"{per_frame:.2f} paints per frame; total {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
