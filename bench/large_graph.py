"""Large graphs (issue 9): a generated deep residual network of about 5,000 nodes against the 200-node one, in the
same run. For each size, in a fresh process of its own (so that memory and caches start equal):

1. open: load_project + MainWindow.open_file, until the canvas has painted the graph for the first time;
2. Tidy: layered_layout alone, and the canvas's Tidy (layout, one undo step, the items moved, wires re-routed,
   the viewport painted);
3. re-inference after one parameter edit: Document.set_params → the `analyzed` signal handled by the canvas, the
   Inspector and the Summary (and the viewport painted), for an edit that changes every shape below it (the
   Input's size) and one that changes one node (a Conv2d's bias); engine.analyze alone for comparison;
4. frame time while panning at 100 % and at the zoom that fits the whole graph (overview), each frame a scroll
   of 15 px and a full repaint of the viewport (viewport().repaint());
5. memory: the process's resident set after the open (and what the open added to it);
6. whole-selection edits: select all, copy, delete the selection, undo that delete (each repainted).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/large_graph.py [--sizes 200 5000] [--frames 60] [--repeat 7]
        [--runs 1]

Prints one table: medians for both sizes and the ratio 5000/200 per row. Goals for 5,000 nodes: open < 3 s,
Tidy < 2 s, re-inference after one edit < 0.3 s, pan frames < 16 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.graph import Graph  # noqa: E402
from engine.layout import COLUMN  # noqa: E402
from engine.project import Project, save_project  # noqa: E402

STAGE_CHANNELS = (16, 32, 64, 128)
BLOCK = 7  # nodes of a plain residual block: Conv, BatchNorm, ReLU, Conv, BatchNorm, Add, ReLU
STEP = 100.0  # rows of the generated positions: closer than Tidy's ROW, so that Tidy moves every node


def deep_resnet(n_nodes: int = 5000, size: int = 32) -> Graph:
    """A ResNet-style network of about `n_nodes` nodes with valid shapes throughout: Input (3×size×size) → stem
    (Conv, BatchNorm, ReLU) → four stages of residual blocks (16, 32, 64, 128 channels; each later stage opens
    with a stride-2 block whose shortcut is a 1×1 Conv + BatchNorm projection) → AdaptiveAvgPool2d, Flatten,
    Linear(10). Positions as a hand-built file has them: the main path in one column, projections beside it.
    Node ids are given explicitly (`conv2d_1` ... as the editor would name them)."""
    if n_nodes < 40:
        raise ValueError(f"a deep residual network needs at least 40 nodes, not {n_nodes}")
    g = Graph()
    counters: dict[str, int] = {}
    y = 0.0

    def add(layer: str, params: dict | None = None, x: float = 0.0) -> str:
        nonlocal y
        prefix = layer.lower()
        counters[prefix] = counters.get(prefix, 0) + 1
        nid = g.add_node(layer, params or {}, node_id=f"{prefix}_{counters[prefix]}", position=(x, y))
        if x == 0.0:
            y += STEP
        return nid

    def chain(prev: str, *layers: tuple[str, dict]) -> str:
        for layer, params in layers:
            nid = add(layer, params)
            g.connect(prev, nid)
            prev = nid
        return prev

    def conv(channels: int, stride: int = 1, k: int = 3) -> tuple[str, dict]:
        return "Conv2d", {"out_channels": channels, "kernel_size": k, "stride": stride, "padding": k // 2,
                          "bias": False}

    bn = ("BatchNorm2d", {})
    relu = ("ReLU", {})
    x = add("Input", {"shape": [3, size, size]})
    x = chain(x, conv(STAGE_CHANNELS[0]), bn, relu)
    head = 3  # AdaptiveAvgPool2d, Flatten, Linear
    # Each stage after the first adds two nodes (the projection) to its first block.
    blocks = max(len(STAGE_CHANNELS), round((n_nodes - 4 - head - 2 * (len(STAGE_CHANNELS) - 1)) / BLOCK))
    per_stage = [blocks // len(STAGE_CHANNELS) + (1 if i < blocks % len(STAGE_CHANNELS) else 0)
                 for i in range(len(STAGE_CHANNELS))]
    for stage, (channels, count) in enumerate(zip(STAGE_CHANNELS, per_stage)):
        for b in range(count):
            down = stage > 0 and b == 0
            skip = x
            if down:  # the shortcut: a strided 1×1 projection beside the main path
                proj = g.add_node("Conv2d", conv(channels, 2, 1)[1], node_id=_next(counters, "conv2d"),
                                  position=(COLUMN, y + STEP))
                pbn = g.add_node("BatchNorm2d", {}, node_id=_next(counters, "batchnorm2d"),
                                 position=(COLUMN, y + 4 * STEP))
                g.connect(x, proj)
                g.connect(proj, pbn)
                skip = pbn
            body = chain(x, conv(channels, 2 if down else 1), bn, relu, conv(channels), bn)
            add_id = add("Add")
            g.connect(body, add_id)
            g.connect(skip, add_id)
            x = chain(add_id, relu)
    chain(x, ("AdaptiveAvgPool2d", {"output_size": 1}), ("Flatten", {}), ("Linear", {"out_features": 10}))
    return g


def _next(counters: dict[str, int], prefix: str) -> str:
    counters[prefix] = counters.get(prefix, 0) + 1
    return f"{prefix}_{counters[prefix]}"


def write_project(n_nodes: int, path: str | os.PathLike) -> Path:
    """The generated network as a project file the app opens (the bundled 32×32 shapes data, cross-entropy, Adam)."""
    project = Project(graph=deep_resnet(n_nodes), name=f"resnet_{n_nodes}",
                      description=f"A generated deep residual network of about {n_nodes} layers (bench).",
                      data={"source": "shapes", "params": {"size": 32, "channels": 3},
                            "split": {"val": 0.15, "test": 0.15, "seed": 0}},
                      loss={"type": "CrossEntropy", "params": {}}, optimizer={"type": "Adam", "params": {"lr": 0.001}},
                      training={"epochs": 1, "batch_size": 64})
    return save_project(path, project)


# ---- measuring one size (in a process of its own) ------------------------------------------------------------
def rss_mb() -> float:
    """The resident set of this process in MB (Linux /proc; elsewhere the peak from resource)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(n_nodes: int, frames: int, repeat: int) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["LAYERLOOM_NO_DIALOGS"] = "1"
    home = tempfile.mkdtemp(prefix="layerloom-bench-")
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_CACHE_HOME", "cache")):
        os.environ[var] = os.path.join(home, sub)
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from engine.layout import layered_layout
    from engine.project import load_project
    from engine.shapes import analyze
    from gui.app import DISCARD, MainWindow
    from gui.autosave import Autosaver

    app = QApplication.instance() or QApplication(sys.argv[:1])
    path = write_project(n_nodes, Path(home) / f"resnet_{n_nodes}.layerloom")
    out: dict = {"nodes": 0}

    window = MainWindow(settings=QSettings(os.path.join(home, "s.ini"), QSettings.Format.IniFormat),
                        autosaver=Autosaver(os.path.join(home, "autosave")))
    window.resize(1600, 1000)
    window.show()
    for _ in range(3):
        app.processEvents()
    view = window.view

    # 1. open, until the first paint of the canvas
    rss_before = rss_mb()
    painted: list[float] = []

    from PySide6.QtCore import QEvent, QObject

    class PaintWatch(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint and window.document is not None:
                painted.append(time.perf_counter())
            return False

    watch = PaintWatch()
    t = time.perf_counter()
    assert window.open_file(path)
    view.viewport().installEventFilter(watch)
    deadline = time.perf_counter() + 60
    while not painted and time.perf_counter() < deadline:
        app.processEvents()
    app.processEvents()  # the fit queued by set_document, then its paint
    view.viewport().repaint()
    out["open"] = time.perf_counter() - t
    out["open_first_paint"] = (painted[0] - t) if painted else float("nan")
    view.viewport().removeEventFilter(watch)
    doc = window.document
    for _ in range(5):
        app.processEvents()
    out["rss"] = rss_mb()
    out["rss_open"] = out["rss"] - rss_before

    # The pure engine parts of that open, measured again on their own (warm now).
    t = time.perf_counter()
    project = load_project(path)
    out["load_project"] = time.perf_counter() - t
    out["nodes"], out["edges"] = len(project.graph), len(project.graph.edges)
    t = time.perf_counter()
    analysis = analyze(project.graph)
    out["analyze"] = time.perf_counter() - t
    assert analysis.ok, [str(i.error) for i in analysis.errors][:3]
    assert len(view.scene().nodes) == out["nodes"] and len(view.scene().edges) == out["edges"]
    del project, analysis

    # 3. re-inference after one edit (all slots of `analyzed` included, then one repaint)
    done: list[float] = []
    doc.analyzed.connect(lambda _a: done.append(time.perf_counter()))
    inp = next(nid for nid, n in doc.graph.nodes.items() if n.type == "Input")
    convs = [nid for nid, n in doc.graph.nodes.items() if n.type == "Conv2d"]
    mid = convs[len(convs) // 2]

    def edit(node_id: str, values: list[dict]) -> tuple[list[float], list[float]]:
        to_signal, to_paint = [], []
        for i in range(repeat + 1):
            done.clear()
            t = time.perf_counter()
            doc.set_params(node_id, values[i % 2])
            while not done:
                app.processEvents()
            signal = done[0] - t
            view.viewport().repaint()
            if i:  # the first is a warm-up
                to_signal.append(signal)
                to_paint.append(time.perf_counter() - t)
        return to_signal, to_paint

    sizes = [{"shape": [3, 40, 40]}, {"shape": [3, 32, 32]}]
    out["edit_all"], out["edit_all_paint"] = (statistics.median(v) for v in edit(inp, sizes))
    out["edit_one"], out["edit_one_paint"] = (statistics.median(v) for v in edit(mid, [{"bias": True},
                                                                                       {"bias": False}]))
    t = time.perf_counter()
    analyze(doc.graph)
    out["analyze_again"] = time.perf_counter() - t

    # 4. panning: at 100 % and at the zoom that fits the whole graph
    from PySide6.QtCore import QPointF

    def pan(zoom: float | None) -> tuple[float, float]:
        if zoom is None:
            view.fit()
        else:
            view._zoom_by(zoom / view.zoom())
            view.settle_zoom()
        centre = view.scene().content_rect().center()
        view.centerOn(QPointF(centre.x(), centre.y()))
        times = []
        for i in range(frames + 5):
            d = 15 if (i // 20) % 2 == 0 else -15
            t = time.perf_counter()
            view._scroll_by(d, d * 2 / 3)
            view.viewport().repaint()
            app.processEvents()
            if i >= 5:  # warm-up: the first frames fill the item caches
                times.append(time.perf_counter() - t)
        times.sort()
        return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]

    out["pan_100"], out["pan_100_p95"] = pan(1.0)
    out["pan_fit"], out["pan_fit_p95"] = pan(None)
    out["fit_zoom"] = view.zoom()
    out["viewport"] = [view.viewport().width(), view.viewport().height()]

    # 2. Tidy: the layout alone, then the app's Tidy until painted
    t = time.perf_counter()
    layered_layout(doc.graph)
    out["layout"] = time.perf_counter() - t
    moved: list[float] = []
    view.scene().content_changed.connect(lambda: moved.append(time.perf_counter()))
    t = time.perf_counter()
    view.tidy()
    while not moved:
        app.processEvents()
    view.viewport().repaint()
    out["tidy"] = time.perf_counter() - t
    assert doc.undo_stack.undoText() == "Tidy layout"

    # 6. whole-selection edits (each was quadratic once): select all, copy, delete, undo the delete
    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        for _ in range(3):
            app.processEvents()
        view.viewport().repaint()
        return time.perf_counter() - t

    out["select_all"] = timed(view.select_all)
    out["copy_all"] = timed(view.copy)
    out["delete_all"] = timed(view.delete_selected)
    assert len(doc.graph) == 0
    out["undo_delete_all"] = timed(doc.undo)
    assert len(doc.graph) == out["nodes"] and len(view.scene().edges) == out["edges"]

    window.ask_save_changes = lambda: DISCARD  # the edits above are not worth a question
    window.close()
    return out


# ---- the table ----------------------------------------------------------------------------------------------
ROWS = (  # key, label, unit
    ("open", "open: open_file → first paint done", "ms"),
    ("open_first_paint", "  … first paint event begins", "ms"),
    ("load_project", "  load_project alone (warm)", "ms"),
    ("layout", "layered_layout", "ms"),
    ("tidy", "Tidy: layout + apply + repaint", "ms"),
    ("analyze", "analyze alone (engine, warm)", "ms"),
    ("edit_all", "edit Input size → analyzed handled", "ms"),
    ("edit_all_paint", "  … and repainted", "ms"),
    ("edit_one", "edit one Conv2d → analyzed handled", "ms"),
    ("edit_one_paint", "  … and repainted", "ms"),
    ("pan_100", "pan frame at 100 % (median)", "ms"),
    ("pan_100_p95", "pan frame at 100 % (p95)", "ms"),
    ("pan_fit", "pan frame at fitted zoom (median)", "ms"),
    ("pan_fit_p95", "pan frame at fitted zoom (p95)", "ms"),
    ("select_all", "select all nodes", "ms"),
    ("copy_all", "copy all (Document.copy_nodes)", "ms"),
    ("delete_all", "delete all selected", "ms"),
    ("undo_delete_all", "undo that delete", "ms"),
    ("rss", "RSS after open", "MB"),
    ("rss_open", "RSS added by the open", "MB"),
)


def table(results: list[dict]) -> str:
    small, big = results[0], results[-1]
    head = f"{'':40}" + "".join(f"{int(r['nodes']):>8d} n" for r in results) + f"{'ratio':>10}"
    lines = [head, "-" * len(head)]
    for key, label, unit in ROWS:
        scale = 1000.0 if unit == "ms" else 1.0
        cells = "".join(f"{r[key] * scale:>10.1f}" for r in results)
        ratio = big[key] / small[key] if small[key] else float("nan")
        lines.append(f"{label + ' (' + unit + ')':40}{cells}{ratio:>9.1f}×")
    lines.append(f"{'fitted zoom (%)':40}" + "".join(f"{r['fit_zoom'] * 100:>10.1f}" for r in results))
    lines.append(f"{'edges':40}" + "".join(f"{int(r['edges']):>10d}" for r in results))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 5000])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--runs", type=int, default=1, help="fresh processes per size; the table shows medians")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one size may take")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process: measure one size
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.frames, args.repeat)))
        return
    results = []
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    for n in args.sizes:
        runs = []
        for _ in range(args.runs):
            proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--frames", str(args.frames),
                                   "--repeat", str(args.repeat)], capture_output=True, text=True, env=env,
                                  timeout=args.timeout)
            if proc.returncode != 0:
                sys.exit(f"measuring {n} nodes failed:\n{proc.stderr[-3000:]}")
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        results.append({key: statistics.median(r[key] for r in runs) if isinstance(value, (int, float)) else value
                        for key, value in runs[0].items()})
    w, h = results[-1]["viewport"]
    print(f"Deep residual networks in the main window (1600×1000, canvas {w}×{h}), offscreen; medians of "
          f"{args.repeat} edits and {args.frames} frames" + (f", then of {args.runs} runs (a fresh process each)"
                                                              if args.runs > 1 else ""))
    print(table(results))


if __name__ == "__main__":
    main()
