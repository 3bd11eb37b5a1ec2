"""Does the window stay responsive while it trains? The longest event-loop stall of the real main window while it
trains cnn_mnist on digits 28×28 with every live view open, and the training speed inside the app against a plain
PyTorch loop on the same data, model and batch size, measured in the same process.

    .venv/bin/python bench/ui_responsiveness.py [--epochs N (default: the template's own, 10)] [--rounds 3]

The stall is measured by a 5 ms timer on the GUI thread: any gap between its ticks beyond 5 ms is time the event
loop could not serve the user. Goals: the longest stall under 50 ms; training speed in the app at least 0.95 of
the plain loop (steps per second over the training epochs, as the worker's own epoch times report them). The plain
loop is timed as people write it (row-major images, PyTorch's default Adam) and as "plain same", given the layout
and the fused optimizer kernel the app trains with: app / plain same is what the window and its views cost.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["LAYERLOOM_NO_DIALOGS"] = "1"
_home = tempfile.mkdtemp(prefix="layerloom-bench-ui-")
os.environ["XDG_CONFIG_HOME"], os.environ["XDG_DATA_HOME"] = f"{_home}/config", f"{_home}/data"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QElapsedTimer, QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


class StallMeter:
    """Ticks every `interval` ms on the GUI thread and keeps the gaps between ticks."""

    def __init__(self, interval: int = 5):
        self.interval = interval
        self.gaps: list[float] = []
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(interval)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps.clear()
        self.clock.start()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        self.gaps.append(self.clock.nsecsElapsed() / 1e6)
        self.clock.restart()

    def stalls(self) -> list[float]:
        return [max(0.0, g - self.interval) for g in self.gaps]


def plain_loop(graph, x, y, epochs: int, bs: int, lr: float, channels_last: bool = False,
               fused: bool = False) -> float:
    """Steps per second of a hand-written loop: shuffle, slice, forward, loss, backward, step, loss.item().
    As people write it: row-major images, PyTorch's default Adam. With `channels_last` and `fused`, the same loop
    given the layout and the optimizer kernel the app trains with, which leaves only the app's own costs."""
    import torch

    import engine
    model = engine.build_model(graph, seed=0)
    # plain row-major strides (the loader's arrays carry a stride of 1 on the size-1 channel dimension, which
    # PyTorch reads as channels-last and which would give the hand-written loop the app's layout by accident)
    x = x.clone(memory_format=torch.contiguous_format)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=lr, **({"fused": True} if fused else {}))
    crit = torch.nn.CrossEntropyLoss()
    n, steps = len(x), 0
    t = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            opt.zero_grad()
            loss = crit(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            loss.item()
            steps += 1
    return steps / (time.perf_counter() - t)


def thread_cpu_seconds(native_id: int) -> float:
    """CPU time (user + system) a thread of this process has used so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def in_thread(fn, *args):
    """Run `fn` on a short-lived thread and return its result. The plain loop must not run on the GUI thread:
    OpenMP keeps a team of worker threads for every thread that ran a parallel region, and with two teams on a
    2-core machine libgomp stops spinning and each parallel region pays a wake-up; the app's own training thread
    would then be measured 25-30 % slower than it is. A thread that ends takes its team with it."""
    import threading
    out = []
    t = threading.Thread(target=lambda: out.append(fn(*args)))
    t.start()
    t.join()
    return out[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None,
                    help="epochs per run (default: the template's own, as a user's first run trains)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-coach", action="store_true", help="train without the coach, to see what it costs")
    args = ap.parse_args()
    if args.no_coach:
        import functools

        import gui.training_worker as worker  # the controller imports TrainingSession from here at each Train
        worker.TrainingSession = functools.partial(worker.TrainingSession, coach=False)

    app = QApplication.instance() or QApplication([])  # noqa: F841 - kept alive for the run
    from engine.runner import prepare
    from gui.app import MainWindow
    from gui.autosave import Autosaver
    from gui.live_views import FeatureMapsView, FiltersView, HistogramsView

    window = MainWindow(settings=QSettings(f"{_home}/s.ini", QSettings.IniFormat), autosaver=Autosaver(f"{_home}/a"))
    window.resize(1440, 900)
    window.show()
    # As at a real start: PyTorch and what training imports load in the background once the window shows.
    warmed = QEventLoop()
    window.warm_up.done.connect(lambda text: warmed.quit())
    window.warm_up.start()
    warmed.exec()
    window.new_from_template("cnn_mnist")
    training = dict(window.document.project.training or {})
    args.epochs = args.epochs or int(training.get("epochs") or 10)
    training["epochs"] = args.epochs
    window.document.set_section("training", training)
    window.build_training_views()
    # A user presses Train on a window that has settled: the set-up panel has loaded its data preview (it starts
    # 150 ms after the settings change and would otherwise load the data beside the first run).
    settle = QElapsedTimer()
    settle.start()
    while not window.training_panel.preview_settled() and settle.elapsed() < 60_000:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
    # Every live view open at once: the tabbed views in the Live dock, plus a window each for the views that
    # would otherwise hide behind a tab.
    extra = [FiltersView(), FeatureMapsView(), HistogramsView()]
    for v in extra:
        v.resize(500, 400)
        v.show()
    run = in_thread(prepare, window.document.project)  # builds tensors with torch: not on the GUI thread
    x, y = run.data.train_x, run.data.train_y
    bs = run.config.batch_size
    lr = window.document.project.optimizer["params"].get("lr", 1e-3)
    graph = window.document.project.graph
    steps_per_epoch = -(-len(x) // bs)
    print(f"cnn_mnist on digits 28×28: {len(x)} training samples, batch {bs}, {args.epochs} epochs "
          f"({steps_per_epoch * args.epochs} steps) per run, {args.rounds} rounds; views open: live dock "
          f"({window.live_views.count()} tabs) + filters, feature maps and histograms windows")

    meter = StallMeter()
    results = {"app": [], "plain": [], "plain same": []}
    worst: list[float] = []
    p95: list[float] = []
    for r in range(args.rounds):
        results["plain"].append(in_thread(plain_loop, graph, x, y, args.epochs, bs, lr))
        results["plain same"].append(in_thread(plain_loop, graph, x, y, args.epochs, bs, lr, True, True))
        loop = QEventLoop()
        done: dict = {}

        def finished(result: dict, done=done, loop=loop) -> None:
            done.update(result)
            loop.quit()

        pictures = {"count": 0, "seconds": 0.0, "coach": 0.0}

        def snapshot(snap: dict, pictures=pictures) -> None:
            pictures["count"] += 1
            pictures["seconds"] += snap.get("seconds", 0.0)
            pictures["coach"] = (snap.get("coach") or {}).get("seconds", pictures["coach"])
            for v in extra:
                v.set_snapshot(snap)

        window.training.run_finished.connect(finished)
        import threading
        gui_id = threading.main_thread().native_id
        gui_cpu, wall = thread_cpu_seconds(gui_id), time.perf_counter()
        meter.start()
        assert window.training.train(), "the run did not start"
        window.training.session.snapshot.connect(snapshot)
        QTimer.singleShot(600_000, loop.quit)
        loop.exec()
        meter.stop()
        gui_cpu, wall = thread_cpu_seconds(gui_id) - gui_cpu, time.perf_counter() - wall
        window.training.run_finished.disconnect(finished)
        assert done.get("status") == "finished", done.get("message")
        epochs = done.get("history") or []
        seconds = sum(e.get("time", 0.0) for e in epochs)
        results["app"].append(done["steps_done"] / seconds)
        stalls = sorted(meter.stalls())
        worst.append(stalls[-1])
        p95.append(stalls[int(0.95 * (len(stalls) - 1))])
        print(f"round {r + 1}: app {results['app'][-1]:.1f} steps/s, plain {results['plain'][-1]:.1f}, "
              f"plain same {results['plain same'][-1]:.1f}; longest stall {worst[-1]:.1f} ms, "
              f"p95 {p95[-1]:.1f} ms over {len(stalls)} ticks; the window's thread used {gui_cpu:.2f} s of CPU in "
              f"{wall:.2f} s; on the training thread {pictures['count']} snapshots took "
              f"{pictures['seconds'] * 1000:.0f} ms and the coach {pictures['coach'] * 1000:.0f} ms")
    ratio = statistics.median(a / b for a, b in zip(results["app"], results["plain"], strict=True))
    ratio_same = statistics.median(a / b for a, b in zip(results["app"], results["plain same"], strict=True))
    longest = max(worst)
    print(f"longest event-loop stall {longest:.1f} ms (median over rounds {statistics.median(worst):.1f} ms, "
          f"p95 {statistics.median(p95):.1f} ms): goal < 50 ms {'met' if longest < 50 else 'NOT met'}")
    print(f"training speed in the app / plain loop: {ratio:.3f} (goal ≥ 0.95: {'met' if ratio >= 0.95 else 'NOT met'});"
          f" / plain loop with the app's layout and kernel (the app's own cost): {ratio_same:.3f}")
    window.training.shutdown()
    window.document.undo_stack.setClean()
    window.close()


if __name__ == "__main__":
    main()
