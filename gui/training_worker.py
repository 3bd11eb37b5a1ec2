"""One training run off the GUI thread: a plain thread builds data and model from the project's plain dict, runs
Trainer.fit with a bridge callback, saves the run folder, and reports through Qt signals delivered in the GUI
thread. Only plain data crosses: floats, ints, strings, lists, dicts and NumPy arrays, never tensors or modules.

Signals (each carries one dict; see TrainingSession for the keys):
    started, steps, epoch_end, snapshot, progress, advice (the coach's warnings), failed (before finished, when the
    run failed), finished.
The training thread never emits them itself: it hands each payload to a private relay signal whose queued
connection to this object (which lives in the GUI thread) re-emits it there, so every receiver, a lambda included,
runs in the GUI thread.
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from engine.callbacks import Callback, Snapshots

STEPS_INTERVAL = 1 / 10      # at most ~10 `steps` emits a second (the plots draw a few frames a second)
PROGRESS_INTERVAL = 1 / 4    # ~4 `progress` emits a second
# A snapshot (kernels, a feature map, every layer's histograms, the decision boundary) costs the training thread
# milliseconds, and drawing it costs the window's thread as much again. After each, the next waits until the time
# since is at least its cost / SNAPSHOT_SHARE: a fast machine still sees new pictures every few steps, a slow one
# (or a short, fast run) never spends more than a few per cent of its training on them. The first snapshot and
# the one at the end of the run are always taken.
SNAPSHOT_SHARE = 0.03
# The window's thread draws every snapshot in each view that shows it (three windows of pictures cost it three
# times one). While a run trains, the session measures how busy the window's thread has been between two
# snapshots (its CPU seconds per second): above WINDOW_SHARE the next snapshots wait longer (up to
# MAX_PICTURE_GAP seconds apart), below half of it the wait shrinks back. The window's work competes with the
# training for the cores, so a slow machine with many views open trains at full speed and shows fewer pictures.
WINDOW_SHARE = 0.06
MAX_PICTURE_GAP = 3.0
RATE_WINDOW = 2.0            # seconds over which steps/s is measured

# The coach (engine.coach.Coach) looks closely at one step in `every`; the rest of its work is a few float
# operations per step. A sampled step costs about 0.5 ms for a small MLP and 1 ms for a small CNN on one CPU core
# (bench/coach.py), on top of steps of 1-2 ms and 50 ms. The worker measures both while the run goes and sets
# `every` so that the sampled steps take about COACH_SHARE of the run, within [COACH_MIN_EVERY, COACH_MAX_EVERY]:
# a tiny network gets a close look every few dozen steps, anything that takes milliseconds a step every 10.
COACH_SHARE = 0.01
COACH_EVERY = 20             # until the first measurements are in
COACH_MIN_EVERY = 10
COACH_MAX_EVERY = 100

# kinds of failure (failed["kind"])
NAN, DATA, GRAPH, SETTINGS, ERROR, DISK = "nan", "data", "graph", "settings", "error", "disk"

HINTS = {
    DATA: "Check the data settings (the file's path, its columns, the split), then start again.",
    GRAPH: "Fix the layers marked on the canvas, then start again.",
    SETTINGS: "Check the loss, optimizer and training settings, then start again.",
    ERROR: "The weights up to that point are saved in the run folder; if it happens again, report it with the "
           "details.",
    DISK: "What was written before (the last checkpoint, the best weights) is kept; start again once there is room.",
}


def _sentence(text: str) -> str:
    text = " ".join(str(text).split())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def classify(error: BaseException) -> dict[str, Any]:
    """The `failed` payload for an exception: {"kind", "message", "hint"}, plus "traceback" for an unexpected one."""
    from engine.errors import BuildError, DataError, GraphError, LayerLoomError, ParamError, ShapeError
    if _disk_full(error):
        text = f"cannot write {error.filename}: {error.strerror}" if isinstance(error, OSError) else str(error)
        return {"kind": DISK, "message": _sentence(text), "hint": HINTS[DISK]}
    if isinstance(error, DataError):
        kind = DATA
    elif isinstance(error, ParamError):  # a setting out of range (node parameters fail as BuildError here)
        kind = SETTINGS
    elif isinstance(error, (BuildError, GraphError, ShapeError)):
        kind = GRAPH
    elif isinstance(error, LayerLoomError):
        kind = SETTINGS
    else:
        return {"kind": ERROR, "message": _sentence(f"{type(error).__name__}: {error}"), "hint": HINTS[ERROR],
                "traceback": "".join(traceback.format_exception(error))}
    return {"kind": kind, "message": _sentence(str(error)), "hint": HINTS[kind]}


def _disk_full(error: BaseException) -> bool:
    """A write that failed for want of room: the OS's own error, or the engine's message for a checkpoint or a run
    file that could not be written (engine.training / engine.runs, which name the cure)."""
    import errno
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    from engine.errors import LayerLoomError
    return isinstance(error, LayerLoomError) and "Free some disk space" in str(error)


def nan_failure(message: str) -> dict[str, Any]:
    """The Trainer's NaN message ("the loss became NaN at …: <cause>; gradient clipping … helps. Training stopped
    and …") split into what happened and what to try."""
    head, _, rest = message.partition(": ")
    hint, sep, kept = rest.rpartition(". Training stopped and ")
    if not sep:
        hint, kept = rest, ""
    what = head + (f"; training stopped and {kept}" if kept else "")
    return {"kind": NAN, "message": _sentence(what),
            "hint": _sentence(hint or "lower the learning rate, or clip the gradients (e.g. 1.0)")}


def _first_conv(module: Any) -> str | None:
    import torch.nn as nn
    return next((n for n, m in module.named_children()
                 if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d))), None)


def default_runs_base() -> Path:
    """Where runs of a project that was never saved go: the user's data folder (its `runs` subfolder)."""
    import platformdirs
    return Path(platformdirs.user_data_dir("LayerLoom", appauthor=False))


class _Bridge(Callback):
    """The callback in the training thread. Per step it only appends five numbers to lists and reads the clock;
    payloads are built and handed over at most ~30 (steps) and ~8 (progress) times a second, snapshots every
    `every` steps and at each epoch end."""

    def __init__(self, session: TrainingSession, every: int, views: dict[str, Any], coach: Any = None,
                 coach_every: int | None = None):
        self.session, self.every = session, max(1, int(every))
        self.views = dict(views)
        self.coach = coach                  # engine.coach.Coach or None
        self.coach_fixed = coach_every is not None  # a fixed sampling interval: not paced
        self._coach_seen = 0                # the coach's sample count when last paced
        self._coach_mark: tuple[int, float, float, int] | None = None  # (count, seconds, time, step) then
        self._order: dict[str, int] = {}    # node id -> position in the network, to list the coach's layers
        self.snapshots = Snapshots(every=self.every, conv_layer=self.views.get("conv_layer"),
                                   feature_layer=self.views.get("feature_layer"))
        from engine.live import LiveExtras
        self.live = LiveExtras(every=self.every)
        self.metric_key = "acc"
        self._step: list[int] = []
        self._epoch: list[int] = []
        self._loss: list[float] = []
        self._metric: list[float] = []
        self._lr: list[float] = []
        self._next_steps = 0.0
        self._next_progress = 0.0
        self._rate: deque[tuple[float, int]] = deque()
        self._last_snapshot_step = -1
        self._next_snapshot = 0.0  # perf_counter time before which a snapshot waits (SNAPSHOT_SHARE)
        self.snapshots_taken = 0
        self.view_error = ""
        self.sample_index = 0
        self.sample_source = "val"

    # ---- set-up -------------------------------------------------------------------------------------
    def configure(self, trainer: Any, data: Any) -> None:
        """Before fit: the kernel and feature layers (defaults: the first convolution) and the fixed sample."""
        from engine.training import REGRESSION
        self.metric_key = "mae" if trainer.metric == REGRESSION else "acc"
        module = trainer.module
        for key in ("conv_layer", "feature_layer"):
            name = self.views.get(key)
            if name is not None and name not in dict(module.named_children()):
                self.view_error = f"there is no layer {name!r} for the {key.replace('_', ' ')}"
                setattr(self.snapshots, key, None)
        if self.snapshots.conv_layer is None:
            self.snapshots.conv_layer = _first_conv(module)
        if self.snapshots.feature_layer is None:
            self.snapshots.feature_layer = self.snapshots.conv_layer
        self._set_sample(data, int(self.views.get("sample_index") or 0))
        self._order = {name: i for i, (name, _m) in enumerate(module.named_children())}

    def _set_sample(self, data: Any, index: int) -> None:
        x = data.val_x if data.has_val else data.train_x
        self.sample_source = "val" if data.has_val else "train"
        self.sample_index = min(max(0, index), len(x) - 1)
        self.snapshots.sample = x[self.sample_index:self.sample_index + 1]

    def on_fit_start(self, trainer, logs):
        self.snapshots.on_fit_start(trainer, logs)
        self.live.setup(trainer)
        now = time.perf_counter()
        self._rate.append((now, trainer.global_step))
        if self.session._stop_wanted:  # a stop asked for while the data was loading (fit clears the flag)
            trainer.request_stop()
        elif self.session._pause_wanted:
            trainer.pause()

    # ---- the hot path ---------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer, logs):
        step = logs["step"]
        self._step.append(step)
        self._epoch.append(logs["epoch"])
        self._loss.append(logs["loss"])
        self._metric.append(logs.get(self.metric_key, math.nan))
        self._lr.append(logs.get("lr", math.nan))
        now = time.perf_counter()
        if now >= self._next_steps:
            self._flush_steps(now)
        if now >= self._next_progress:
            self._progress(trainer, now)
        if step % self.every == 0 and now >= self._next_snapshot:
            self._snapshot(trainer, logs)
        coach = self.coach
        if coach is not None and coach.count != self._coach_seen and not self.coach_fixed:
            self._coach_seen = coach.count
            self._pace_coach(coach, now, step)

    def _pace_coach(self, coach: Any, now: float, step: int) -> None:
        """After a sampled step: set the coach's interval so that its samples cost about COACH_SHARE of the time,
        from its own time per sample and the time per step since the last sample."""
        mark = self._coach_mark
        self._coach_mark = (coach.count, coach.seconds, now, step)
        if mark is None or coach.count <= 1:  # the first sample warms caches up: not a fair measure
            return
        count, seconds, t, s = mark
        if step <= s or now <= t:
            return
        per_sample = (coach.seconds - seconds) / max(1, coach.count - count)
        per_step = (now - t) / (step - s)  # pauses make it long: the interval then shrinks until the next sample
        every = math.ceil(per_sample / (COACH_SHARE * per_step)) if per_step > 0 else COACH_MAX_EVERY
        coach.every = int(min(COACH_MAX_EVERY, max(COACH_MIN_EVERY, every)))

    def coach_payload(self) -> dict[str, Any]:
        """The coach's latest figures as plain data: {"step", "epoch", "every", "samples", "seconds", "layers"
        ({node: {dead, units, batches} or {weight_norm, grad_norm, update_ratio}}, in network order), "active"
        ([kind, node] of the warnings still standing), "warnings" (how many were given)}."""
        coach = self.coach
        figures = coach.figures
        order = self._order
        layers = coach.layer_figures()
        ordered = {k: layers[k] for k in sorted(layers, key=lambda k: (order.get(k, len(order)), k))}
        return {"step": int(figures.get("step", 0)), "epoch": int(figures.get("epoch", 0)),
                "every": int(coach.every), "samples": int(coach.count), "seconds": float(coach.seconds),
                "layers": ordered, "active": [[w["kind"], w["node"]] for w in coach.active],
                "warnings": len(coach.warnings)}

    # ---- the rest -----------------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer, logs):
        import numpy as np
        self._flush_steps(time.perf_counter())
        epoch = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float, np.floating, np.integer))}
        epoch["eta"] = trainer.eta_seconds
        self.session._send("epoch_end", epoch)
        last = trainer.epoch >= trainer.config.epochs  # the run's final picture is never skipped
        if last or time.perf_counter() >= self._next_snapshot:
            self._snapshot(trainer, logs)
        self._progress(trainer, time.perf_counter())

    def on_fit_end(self, trainer, logs):
        from engine.training import Status
        if trainer.status in (Status.FINISHED, Status.STOPPED) and trainer.global_step \
                and self._last_snapshot_step != trainer.global_step:  # e.g. early stopping between paced pictures
            self._snapshot(trainer, logs)
        self._flush_steps(time.perf_counter())
        self._progress(trainer, time.perf_counter())

    def _flush_steps(self, now: float) -> None:
        self._next_steps = now + STEPS_INTERVAL
        if not self._step:
            return
        import numpy as np
        payload = {"step": np.array(self._step, dtype=np.int64), "epoch": np.array(self._epoch, dtype=np.int64),
                   "loss": np.array(self._loss, dtype=np.float64),
                   self.metric_key: np.array(self._metric, dtype=np.float64),
                   "lr": np.array(self._lr, dtype=np.float64)}
        self._step, self._epoch, self._loss, self._metric, self._lr = [], [], [], [], []
        self.session._send("steps", payload)

    def _progress(self, trainer, now: float) -> None:
        self._next_progress = now + PROGRESS_INTERVAL
        step = trainer.global_step
        rate = self._rate
        rate.append((now, step))
        while len(rate) > 2 and now - rate[1][0] >= RATE_WINDOW:
            rate.popleft()
        t0, s0 = rate[0]
        self.session._send("progress", progress_payload(trainer, self.session,
                                                        (step - s0) / (now - t0) if now > t0 else 0.0))

    def _apply_views(self, trainer) -> None:
        views = self.session._take_views()
        if not views:
            return
        module = trainer.module
        children = dict(module.named_children())
        self.view_error = ""
        for key in ("conv_layer", "feature_layer"):
            if key not in views:
                continue
            name = views[key]
            if name is not None and name not in children:
                self.view_error = f"there is no layer {name!r} for the {key.replace('_', ' ')}"
                continue
            if key == "conv_layer" and name is not None and getattr(children[name], "weight", None) is None:
                self.view_error = f"{name} has no weights to show as kernels"
                continue
            setattr(self.snapshots, key, name)
        if "sample_index" in views and trainer.data is not None:
            self._set_sample(trainer.data, int(views["sample_index"] or 0))

    def _snapshot(self, trainer, logs) -> None:
        step = int(logs["step"])
        if step == self._last_snapshot_step:
            return
        self._last_snapshot_step = step
        self._apply_views(trainer)
        t = time.perf_counter()
        try:
            snap = self.snapshots.take(trainer, logs)
            snap.update(self.live.take(trainer, logs))
        except Exception as e:  # a picture that cannot be drawn must not end the training
            self.snapshots.feature_layer = None
            self.view_error = f"the live pictures failed ({type(e).__name__}: {e}); feature maps are off"
            snap = {"step": step, "epoch": int(logs["epoch"]), "layers": {}}
        sample = self.snapshots.sample
        if sample is not None:
            snap["sample"] = sample[0].detach().float().cpu().numpy().copy()
            snap["sample_index"], snap["sample_split"] = self.sample_index, self.sample_source
        if self.view_error:
            snap["view_error"] = self.view_error
        if self.coach is not None:
            snap["coach"] = self.coach_payload()
        now = time.perf_counter()
        snap["seconds"] = now - t
        self._next_snapshot = now + max(snap["seconds"] / SNAPSHOT_SHARE, self.session.picture_gap)
        self.snapshots_taken += 1
        self.session._send("snapshot", snap)


def progress_payload(trainer: Any, session: TrainingSession, steps_per_s: float | None = None) -> dict[str, Any]:
    """{"epoch" (the one running, from 1), "epochs", "step", "total_steps", "fraction", "eta" (s or None),
    "steps_per_s", "status", "loss" and "acc"/"mae" (this epoch's running figures)}."""
    epochs = trainer.config.epochs
    running = trainer.running_logs()
    payload = {"epoch": min(trainer.epoch + 1, epochs), "epochs": epochs, "step": trainer.global_step,
               "total_steps": trainer.total_steps, "fraction": trainer.progress, "eta": trainer.eta_seconds,
               "steps_per_s": steps_per_s, "status": session.status}
    payload.update(running)
    return payload


TRAINING_NICENESS = 4
SWITCH_INTERVAL = 0.0005  # seconds: how long a thread may keep Python's lock while another waits for it


def _yield_to_the_window() -> None:
    """Lower this thread's scheduling priority a little (Linux lets each thread have its own), before it starts
    PyTorch's worker threads, which inherit it. On a machine with few cores the training threads otherwise
    keep the window's thread waiting for a core for up to ~100 ms; niced, they still get every cycle the window
    does not use, so training alone runs as fast as before."""
    if sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + TRAINING_NICENESS))
        except (OSError, AttributeError):  # not permitted, or not available: train at normal priority
            pass


class TrainingSession(QObject):
    """One training run of a project, on its own thread. Create it in the GUI thread, connect, then start().

    Payloads (all plain):
      started:   {"run_dir", "name", "epochs", "batch_size", "steps_per_epoch", "total_steps", "metric" ("acc" or
                  "mae"), "task", "classes" (list or None), "sample_shape", "image_shape" ((C, H, W) or None),
                  "train_samples", "val_samples", "test_samples", "kernel_layer", "feature_layer", "layers" (node ids
                  with weights, in network order), "device", "data" (the data set's name), "lr"}
      steps:     columnar NumPy arrays of the steps since the last emit: "step", "epoch" (int64), "loss",
                 "acc" or "mae", "lr" (float64); at most ~30 a second, flushed at each epoch end and at the end
      epoch_end: the epoch's logs as floats: epoch, step, loss, acc/mae, val_loss, val_acc/val_mae (r2, val_r2 for
                 regression), lr, time; and eta (seconds or None)
      snapshot:  Snapshots' dict (step, epoch, layers {node: {param: {norm, hist, edges, grad_norm, grad_hist,
                 grad_edges}}}, kernels + kernel_layer, features + feature_layer) plus LiveExtras' "boundary" /
                 "reconstruction" when they apply, "sample" (the input of the feature maps), "sample_index",
                 "sample_split", "seconds" (time taken), "view_error" when a chosen layer does not exist;
                 every `snapshot_every` steps and at each epoch end
      progress:  {"epoch", "epochs", "step", "total_steps", "fraction", "eta", "steps_per_s", "status", "loss",
                  "acc"/"mae"}; ~8 a second, and at once on pause() and resume()
      advice:    one warning of the coach (engine.coach.Coach), as it is given: {"kind", "severity" ("info" |
                 "warning"), "node" (a node id or None), "message", "cure", "step", "epoch", "figures"}; each kind
                 comes once per node until its condition clears. The snapshots carry the coach's latest per-layer
                 figures and the warnings still standing as snapshot["coach"] (see _Bridge.coach_payload)
      failed:    {"kind": "nan" | "data" | "graph" | "settings" | "error", "message": one sentence, "hint": what to
                  try, "traceback" (kind "error" only)}; emitted before finished
      finished:  {"status": "finished" | "stopped" | "failed", "message", "run_dir" (None when the run never
                  started), "weights" (final.safetensors, or None), "best_weights" (or None), "history" (the epoch
                  logs), "epochs_done", "steps_done", "notes", "best_epoch", "seconds", "coach" (every warning the
                  coach gave, oldest first)}

    `views` chooses the pictures: {"conv_layer": node id, "feature_layer": node id, "sample_index": index into the
    validation split}; set_views() changes them while running (from the next snapshot). `callbacks` adds engine
    callbacks to the run (tests inject a failing one; scripts may add their own). `coach` (on by default) watches
    the run for the classic problems and says what cures them (the `advice` signal); `coach_every` fixes its
    sampling interval instead of pacing it to about 1 % of the run's time."""

    started = Signal(object)
    steps = Signal(object)
    epoch_end = Signal(object)
    snapshot = Signal(object)
    progress = Signal(object)
    advice = Signal(object)
    failed = Signal(object)
    finished = Signal(object)
    _relay = Signal(str, object)

    def __init__(self, project_dict: dict[str, Any], base_dir: str | None, run_dir: str | None = None,
                 overrides: dict[str, Any] | None = None, snapshot_every: int = 50, parent: QObject | None = None,
                 *, views: dict[str, Any] | None = None, callbacks: list[Callback] | None = None,
                 runs_base: str | None = None, coach: bool = True, coach_every: int | None = None):
        super().__init__(parent)
        self._project_dict = project_dict
        self._base_dir = base_dir
        self._run_dir_arg = run_dir
        self._overrides = dict(overrides or {})
        self._every = max(1, int(snapshot_every))
        self._views = dict(views or {})
        self._callbacks = list(callbacks or [])
        self._runs_base = runs_base
        self._coach_on = bool(coach)
        self._coach_every = None if coach_every is None else max(1, int(coach_every))
        self.coach: Any = None  # the run's engine.coach.Coach once built (its lists are the training thread's)
        self._thread: threading.Thread | None = None
        self._trainer: Any = None
        self._status = "idle"
        self._stop_wanted = False
        self._pause_wanted = False
        self._lock = threading.Lock()
        self._pending_views: dict[str, Any] = {}
        self._orphaned = False
        self.picture_gap = 0.0  # seconds between snapshots the window asks for (written here, read by the thread)
        self._load_mark: tuple[float, float] | None = None
        self.run_dir: Path | None = None
        self.result: dict[str, Any] | None = None
        self._relay.connect(self._on_relay, Qt.ConnectionType.QueuedConnection)

    # ---- controls (GUI thread) ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a TrainingSession runs once; make a new one for another run")
        # Python hands its lock between busy threads every 5 ms by default. Between two PyTorch operations
        # (which release it) the training thread needs the lock for a few microseconds; while the window's
        # thread draws in Python, the training would wait up to the whole interval each time.
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._status = "preparing"
        self._thread = threading.Thread(target=self._run, name="layerloom-training", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._pause_wanted = True
        trainer = self._trainer
        if trainer is not None:
            trainer.pause()
            self._announce()

    def resume(self) -> None:
        self._pause_wanted = False
        trainer = self._trainer
        if trainer is not None:
            trainer.resume()
            self._announce()

    def stop(self) -> None:
        """Ask the run to stop after the current step; it saves its weights and a checkpoint, then `finished`
        comes with status "stopped"."""
        self._stop_wanted = True
        self._pause_wanted = False
        trainer = self._trainer
        if trainer is not None:
            trainer.request_stop()

    def set_views(self, views: dict[str, Any] | None = None, **more: Any) -> None:
        """Change conv_layer, feature_layer or sample_index (a dict, e.g. straight from a view's signal, or
        keywords); thread-safe, applied at the next snapshot."""
        with self._lock:
            self._pending_views.update(views or {}, **more)

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread has ended (True) or `timeout` seconds passed (False). Signals still queued
        arrive when the event loop runs next."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def trainer(self) -> Any:
        """The engine's Trainer once built (None before): read its status and counters, never its tensors."""
        return self._trainer

    @property
    def status(self) -> str:
        """idle, preparing, running, paused, finished, stopped or failed. Pause and resume show at once, while
        the training loop is still finishing its step."""
        if self._status in ("finished", "stopped", "failed"):
            return self._status
        trainer = self._trainer
        if trainer is None:
            return self._status
        if trainer.status in ("running", "paused"):  # what was asked for: the loop follows within a step
            return "paused" if self._pause_wanted else "running"
        return str(trainer.status)

    # ---- delivery -------------------------------------------------------------------------------------
    def _announce(self) -> None:
        trainer = self._trainer
        if trainer is not None and trainer.total_steps:
            self.progress.emit(progress_payload(trainer, self))

    def _send(self, name: str, payload: dict[str, Any]) -> None:
        """From the training thread: queue the payload for the GUI thread."""
        if self._orphaned:
            return
        try:
            self._relay.emit(name, payload)
        except RuntimeError:  # the Qt object was deleted under a running thread (its window closed): stop
            self._orphaned = True
            trainer = self._trainer
            if trainer is not None:
                trainer.request_stop("the window closed")

    @Slot(str, object)
    def _on_relay(self, name: str, payload: dict[str, Any]) -> None:
        if name == "snapshot":
            self.pace_pictures()
        getattr(self, name).emit(payload)

    def pace_pictures(self) -> None:
        """At each snapshot's arrival (GUI thread): the share of a core the window's thread used since the last
        one sets `picture_gap`, the least time the training thread leaves between two snapshots."""
        now, cpu = time.perf_counter(), time.thread_time()
        mark, self._load_mark = self._load_mark, (now, cpu)
        if mark is None or now - mark[0] < 0.02:
            return
        interval = now - mark[0]
        share = (cpu - mark[1]) / interval
        gap = self.picture_gap
        if share > WINDOW_SHARE:  # stretch the interval so that the same drawing makes about WINDOW_SHARE
            gap = min(MAX_PICTURE_GAP, max(gap * 1.5, interval * share / WINDOW_SHARE))
        elif share < WINDOW_SHARE / 2:
            gap = gap * 0.7 if gap > 0.05 else 0.0
        self.picture_gap = gap

    def _take_views(self) -> dict[str, Any]:
        with self._lock:
            views, self._pending_views = self._pending_views, {}
        return views

    # ---- the thread -----------------------------------------------------------------------------------
    def _make_run_dir(self, name: str) -> Path:
        from engine.runs import new_run_dir
        if self._run_dir_arg:
            folder = Path(self._run_dir_arg)
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        base = self._runs_base or self._base_dir or default_runs_base()
        return new_run_dir(base, name)

    def _run(self) -> None:
        t0 = time.perf_counter()
        _yield_to_the_window()
        outcome: dict[str, Any] = {"status": "failed", "message": "", "run_dir": None, "weights": None,
                                   "best_weights": None, "history": [], "epochs_done": 0, "steps_done": 0,
                                   "notes": [], "best_epoch": None, "coach": []}
        failure: dict[str, Any] | None = None
        trainer = None
        try:
            from engine.errors import TrainingError
            from engine.project import Project
            from engine.runner import prepare
            from engine.runs import BestWeights, run_settings, save_run
            from engine.training import Status

            project = Project.from_dict(self._project_dict)
            coach = None
            if self._coach_on:
                from engine.coach import Coach
                coach = self.coach = Coach(every=self._coach_every or COACH_EVERY,
                                           on_warning=lambda w: self._send("advice", w))
            bridge = _Bridge(self, self._every, self._views, coach, self._coach_every)
            overrides = dict(self._overrides)
            extra = [coach] if coach is not None else []
            run = prepare(project, overrides, [bridge, *extra, *self._callbacks], base_dir=self._base_dir)
            trainer = run.trainer
            bridge.configure(trainer, run.data)
            self.run_dir = run_dir = self._make_run_dir(project.name or "untitled")
            outcome["run_dir"] = str(run_dir)
            if not trainer.config.checkpoint_dir:
                trainer.config.checkpoint_dir = str(run_dir / "checkpoints")
            best = BestWeights(run_dir)
            trainer.callbacks.append(best)
            self._trainer = trainer
            self._send("started", self._describe(run, bridge, run_dir))
            result = trainer.fit(run.data)
            best_weights = None
            if trainer.early_stopping is not None and trainer.early_stopping.best_weights is not None:
                best_weights = trainer.early_stopping.best_weights
            outcome.update(status=str(result.status), message=result.message,
                           history=[dict(e) for e in result.history.get("epochs", [])],
                           epochs_done=result.epochs_done, steps_done=result.steps_done, notes=list(result.notes),
                           best_epoch=result.best_epoch if result.best_epoch is not None else best.best_epoch,
                           coach=[dict(w) for w in coach.warnings] if coach is not None else [])
            if result.status == Status.FAILED:
                err = result.error
                if type(err) is TrainingError and result.message.startswith("the loss became"):
                    failure = nan_failure(result.message)
                elif err is not None:
                    failure = classify(err)
                    if failure["kind"] == ERROR:
                        failure["message"] = _sentence(result.message)
                else:
                    failure = {"kind": ERROR, "message": _sentence(result.message), "hint": HINTS[ERROR]}
            save_run(run_dir, run_settings(project, overrides), result.history, trainer.module,
                     best_weights=best_weights, result={
                         "project": project.name, "status": str(result.status), "message": result.message,
                         "epochs_done": result.epochs_done, "steps_done": result.steps_done,
                         "notes": result.notes, "data": run.bundle.name, "seconds": time.perf_counter() - t0,
                         "failure": failure, "coach": outcome["coach"],
                         "last_epoch": (result.history.get("epochs") or [{}])[-1]})
            outcome["weights"] = str(run_dir / "final.safetensors")
            best_path = run_dir / "best.safetensors"
            outcome["best_weights"] = str(best_path) if best_path.is_file() else None
        except Exception as e:  # anything at all ends as `failed`; the app stays up
            failure = classify(e)
            outcome["status"] = "failed"
            if self.coach is not None:
                outcome["coach"] = [dict(w) for w in self.coach.warnings]
            if trainer is not None and self.run_dir is not None and outcome["weights"] is None:
                try:  # keep what was trained so far
                    from engine.runs import save_weights
                    outcome["weights"] = str(save_weights(trainer.module, self.run_dir / "final.safetensors"))
                except Exception:
                    pass
        if failure is not None:
            outcome["status"] = "failed"
            outcome["message"] = failure["message"]
            self._send("failed", failure)
        outcome["seconds"] = time.perf_counter() - t0
        self._status = outcome["status"]
        self.result = outcome
        self._send("finished", outcome)

    def _describe(self, run: Any, bridge: _Bridge, run_dir: Path) -> dict[str, Any]:
        from engine.evaluate import image_shape
        trainer, bundle = run.trainer, run.bundle
        module = trainer.module
        n = len(run.data.train_x)
        bs = trainer.config.batch_size
        steps_per_epoch = math.ceil(n / bs) - (1 if n % bs == 1 and n > bs else 0)  # as Trainer.fit counts
        return {
            "run_dir": str(run_dir), "name": run.project.name, "epochs": trainer.config.epochs, "batch_size": bs,
            "steps_per_epoch": steps_per_epoch, "total_steps": steps_per_epoch * trainer.config.epochs,
            "metric": bridge.metric_key, "task": bundle.task,
            "classes": list(bundle.class_names) if bundle.class_names else None,
            "sample_shape": list(bundle.sample_shape), "image_shape": image_shape(bundle),
            "train_samples": len(bundle.train), "val_samples": len(bundle.val), "test_samples": len(bundle.test),
            "kernel_layer": bridge.snapshots.conv_layer, "feature_layer": bridge.snapshots.feature_layer,
            "layers": [name for name, m in module.named_children() if any(True for _ in m.parameters())],
            "device": str(trainer.device), "data": bundle.name,
            "lr": float(trainer.optimizer.param_groups[0]["lr"]),
        }
