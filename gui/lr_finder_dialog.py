"""Run → Find Learning Rate…: Leslie Smith's learning-rate range test (engine.lr_finder) on the open project, drawn
as loss against learning rate on a log axis with the suggested value marked, and a button that writes the
suggestion into the project's optimizer as one undoable edit.

The test runs on a plain thread with a snapshot of the project (so edits cannot race it) and hands back plain data
through a queued signal: the step it has reached, then the result or the error in words. Cancel stops it at the
next step: the loss function the test calls is wrapped so that it counts the steps and raises when cancelled (the
range test puts the network and the optimizer back as they were in any case).
"""
from __future__ import annotations

import html
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QWidget,
)
from shiboken6 import isValid

from engine.errors import LayerLoomError

from .colors import ERROR_COLOR, OK_COLOR
from .dialog_parts import dialog_body, emit_quietly
from .live_views import muted
from .plots import GridAxis, plot_background, style_plot

if TYPE_CHECKING:  # pragma: no cover
    from .document import Document

START_LR, END_LR = 1e-7, 10.0
DEFAULT_STEPS = 100
PROGRESS_INTERVAL = 1 / 15   # at most ~15 progress emits a second
RAW_COLOR = "#9aa7b8"
SMOOTH_COLOR = "#3b7dd8"


def format_lr(value: float) -> str:
    """A learning rate with two significant digits, as people write it: 0.0032, 0.1, 3e-05 → 3e-5."""
    text = f"{value:.2g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


EXPLANATION = ("Leslie Smith's range test trains the network for a few dozen steps while the learning rate grows "
               f"exponentially from {format_lr(START_LR)} to {format_lr(END_LR)}, and records the loss at each "
               "step. Too small a rate barely moves the loss and too large a one makes it blow up; a good choice is "
               "where the loss falls fastest, about a tenth of the rate where it is lowest.")


def rounded_lr(value: float) -> float:
    """The learning rate the Use button writes: the suggestion to two significant digits."""
    return float(f"{value:.2g}")


def _sentence(text: str) -> str:
    text = " ".join(str(text).split())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class _Cancelled(Exception):
    """Raised inside the range test's loss function when Cancel was pressed; `steps` had been taken."""

    def __init__(self, steps: int):
        super().__init__(f"cancelled after {steps} steps")
        self.steps = steps


def run_range_test(project_dict: dict[str, Any], base_dir: str | None, *, steps: int = DEFAULT_STEPS,
                   start: float = START_LR, end: float = END_LR,
                   on_step: Callable[[int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """The range test on a project (as engine.lr_finder.find_lr: the network, loss, optimizer and training data as
    a run would build them, its batch size and seed), reporting each step to `on_step(step)` and stopping when
    `should_stop()` says so. Returns LRFinderResult.to_dict() plus "current_lr" (the project's), "data" (the data
    set's name), "batch_size", "steps" and "seconds"; raises what prepare and the test raise, or _Cancelled."""
    from engine.lr_finder import lr_range_test
    from engine.project import Project
    from engine.runner import prepare

    t0 = time.perf_counter()
    run = prepare(Project.from_dict(project_dict), base_dir=base_dir)
    trainer = run.trainer
    loss_fn = trainer.loss_fn
    taken = [0]

    def watched(out: Any, target: Any) -> Any:
        if should_stop is not None and should_stop():
            raise _Cancelled(taken[0])
        taken[0] += 1
        if on_step is not None:
            on_step(taken[0])
        return loss_fn(out, target)

    current = float(trainer.optimizer.param_groups[0]["lr"])
    result = lr_range_test(trainer.module, watched, trainer.optimizer, run.data, start=start, end=end, steps=steps,
                           batch_size=run.config.batch_size, seed=run.config.seed)
    out = result.to_dict()
    out.update(current_lr=current, data=run.bundle.name, batch_size=run.config.batch_size, steps=steps,
               seconds=time.perf_counter() - t0)
    return out


def _test_in_thread(emit: Callable[[dict], None], run_id: int, project_dict: dict[str, Any], base_dir: str | None,
                    steps: int, cancelled: threading.Event) -> None:
    last = [0.0]

    def on_step(step: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= PROGRESS_INTERVAL or step == steps:
            last[0] = now
            emit_quietly(emit, {"kind": "progress", "run": run_id, "step": step, "steps": steps})

    try:
        result = run_range_test(project_dict, base_dir, steps=steps, on_step=on_step, should_stop=cancelled.is_set)
        payload: dict[str, Any] = {"kind": "result", "ok": True, "result": result, "error": ""}
    except _Cancelled as stopped:
        payload = {"kind": "result", "ok": False, "result": None, "error": "", "cancelled": True,
                   "steps_taken": stopped.steps}
    except LayerLoomError as e:
        payload = {"kind": "result", "ok": False, "result": None, "error": _sentence(str(e))}
    except Exception as e:  # a bug or a network that cannot run: said in the dialog, the app stays up
        payload = {"kind": "result", "ok": False, "result": None,
                   "error": _sentence(f"the range test failed unexpectedly ({type(e).__name__}: {e})")}
    if cancelled.is_set():
        payload.update(ok=False, result=None, cancelled=True)
    payload["run"] = run_id
    emit_quietly(emit, payload)


class _LogAxis(GridAxis):
    """The learning-rate axis: log10 positions labelled with the rates themselves."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        out = []
        for v in values:
            p = round(v)
            out.append(format_lr(10.0 ** p) if abs(v - p) < 1e-6 else "")
        return out


class LRFinderDialog(QDialog):
    """The range test on `document`'s project (data files relative to `base_dir`). start() runs it (the app calls it
    when the dialog opens); `test_done(dict)` carries what the worker sent: ok, result (the LRFinderResult as a dict
    with current_lr, data, batch_size, steps, seconds) or error, and cancelled (with steps_taken when the test was
    stopped on its way). use_suggestion() writes the
    suggested rate into the optimizer (one undo step) and emits `applied(text)`."""

    test_done = Signal(dict)
    applied = Signal(str)
    _from_worker = Signal(dict)  # queued from the test's thread

    def __init__(self, document: Document, base_dir: str | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("LRFinderDialog")
        self.document = document
        self.base_dir = base_dir
        self._busy = False
        self._cancel: threading.Event | None = None
        self._result: dict[str, Any] | None = None
        self._error = ""
        self._started = 0.0
        self._run_id = 0
        self._from_worker.connect(self._on_worker, Qt.ConnectionType.QueuedConnection)
        self.setWindowTitle("Find a learning rate")
        self.setMinimumWidth(640)
        self._build()
        self._apply_colors()
        self._show_idle()
        self.resize(720, 640)

    # ---- building -------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        body = dialog_body(self, "Find a learning rate", spacing=8)
        self.explanation = QLabel(EXPLANATION, self)
        self.explanation.setWordWrap(True)
        body.addWidget(self.explanation)

        row = QHBoxLayout()
        row.setSpacing(8)
        steps_label = QLabel("Steps", self)
        self.steps_spin = QSpinBox(self)
        self.steps_spin.setObjectName("lrSteps")
        self.steps_spin.setRange(20, 1000)
        self.steps_spin.setValue(DEFAULT_STEPS)
        tip = "how many training steps the test takes (one batch each); more give a steadier curve"
        steps_label.setToolTip(tip)
        self.steps_spin.setToolTip(tip)
        steps_label.setBuddy(self.steps_spin)
        row.addWidget(steps_label)
        row.addWidget(self.steps_spin)
        self.run_button = QPushButton("Run the test", self)
        self.run_button.clicked.connect(lambda: self.start())
        row.addWidget(self.run_button)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        self.progress.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        row.addWidget(self.progress, 1)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("lrStatus")
        row.addWidget(self.status_label)
        body.addLayout(row)

        self.plot_widget = pg.PlotWidget(axisItems={"bottom": _LogAxis("bottom"), "left": GridAxis("left")})
        self.plot_widget.setMinimumHeight(300)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.showGrid(x=True, y=True, alpha=0.18)
        self.plot.setLabel("bottom", "learning rate (log scale)")
        self.plot.setLabel("left", "training loss")
        self.plot.getAxis("bottom").setTickSpacing(major=1, minor=1)
        self.plot.addLegend(offset=(10, 10))
        self.raw_curve = self.plot.plot([], [], pen=pg.mkPen(RAW_COLOR, width=1), name="loss per step")
        self.smooth_curve = self.plot.plot([], [], pen=pg.mkPen(SMOOTH_COLOR, width=2.4), name="smoothed")
        self.suggestion_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(OK_COLOR, width=2),
                                               label="", labelOpts={"position": 0.92, "color": OK_COLOR,
                                                                    "fill": None, "movable": False})
        self.current_line = pg.InfiniteLine(angle=90, movable=False,
                                            pen=pg.mkPen(RAW_COLOR, width=1, style=Qt.PenStyle.DashLine),
                                            label="", labelOpts={"position": 0.08, "color": RAW_COLOR})
        self.plot.addItem(self.current_line, ignoreBounds=True)
        self.plot.addItem(self.suggestion_line, ignoreBounds=True)
        self.suggestion_line.hide()
        self.current_line.hide()
        body.addWidget(self.plot_widget, 1)

        self.suggestion_label = QLabel(self)
        self.suggestion_label.setObjectName("lrSuggestion")
        sf = QFont(self.font())
        sf.setPointSizeF(sf.pointSizeF() * 1.15)
        sf.setBold(True)
        self.suggestion_label.setFont(sf)
        body.addWidget(self.suggestion_label)
        self.reason_label = QLabel(self)
        self.reason_label.setObjectName("lrReason")
        self.reason_label.setWordWrap(True)
        self.reason_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        body.addWidget(self.reason_label)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("lrError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.RichText)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        body.addWidget(self.error_label)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("stop the test; the network and the project stay as they are")
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.cancel_button)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.reject)
        buttons.addWidget(self.close_button)
        self.use_button = QPushButton("Use the suggestion", self)
        self.use_button.setObjectName("lrUse")
        self.use_button.setDefault(True)
        self.use_button.clicked.connect(lambda: self.use_suggestion())
        buttons.addWidget(self.use_button)
        body.addLayout(buttons)

    # ---- public ---------------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def result(self) -> dict[str, Any] | None:
        """The last finished test's result (LRFinderResult.to_dict() and the extras), or None."""
        return self._result

    @property
    def error(self) -> str:
        """The last test's error in words ("" when it worked)."""
        return self._error

    @property
    def suggestion(self) -> float | None:
        """The learning rate the Use button writes (the suggestion to two significant digits), or None."""
        return rounded_lr(self._result["suggestion"]) if self._result else None

    def curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The plotted curves: learning rates, raw losses and smoothed losses (tests read them)."""
        x, raw = self.raw_curve.getData()
        _x, smooth = self.smooth_curve.getData()
        if x is None:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        return 10.0 ** np.asarray(x), np.asarray(raw), np.asarray(smooth)

    def start(self, steps: int | None = None) -> bool:
        """Run the range test on a snapshot of the project, on a worker thread; False while one runs."""
        if self._busy:
            return False
        if steps is not None:
            self.steps_spin.setValue(int(steps))
        steps = self.steps_spin.value()
        try:
            snapshot = self.document.project.to_dict()
        except LayerLoomError as e:
            self._show_error(_sentence(str(e)))
            return False
        self._result, self._error = None, ""
        self._cancel = cancel = threading.Event()
        self._set_busy(True)
        self.progress.setRange(0, 0)  # busy until the data and the network are built
        self.status_label.setText("loading the data and building the network…")
        self._clear_plot()
        self.suggestion_label.clear()
        self.reason_label.clear()
        self.error_label.hide()
        self._started = time.perf_counter()
        self._run_id += 1
        threading.Thread(target=_test_in_thread, name="layerloom-lr-finder",
                         args=(self._from_worker.emit, self._run_id, snapshot, self.base_dir, steps, cancel),
                         daemon=True).start()
        return True

    def cancel(self) -> None:
        """Stop a running test at its next step; the dialog shows it was cancelled at once."""
        if not self._busy or self._cancel is None:
            return
        self._cancel.set()
        self._set_busy(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status_label.setText("cancelled")
        self.reason_label.setText("The test was cancelled: nothing was changed. Run it again when you are ready.")

    def use_suggestion(self) -> bool:
        """Write the suggested learning rate into the project's optimizer as one undo step; says what it did."""
        value = self.suggestion
        if value is None or self._busy:
            return False
        doc = self.document
        from engine.optimizers import get_optimizer

        section = dict(doc.project.optimizer or {"type": "Adam", "params": {}})
        params = dict(section.get("params") or {})
        before = params.get("lr")
        params["lr"] = value
        try:
            get_optimizer(section["type"]).validate_params(params)
            doc.set_section("optimizer", {**section, "params": params},
                            text=f"Set the learning rate to {format_lr(value)}")
        except LayerLoomError as e:
            self._show_error(f"<b>The learning rate could not be set:</b> {html.escape(_sentence(str(e)))}")
            return False
        if before is not None and float(before) == value:
            text = f"The learning rate is {format_lr(value)} already: nothing changed"
        else:
            was = f" (was {format_lr(float(before))})" if before is not None else ""
            text = (f"Learning rate set to {format_lr(value)}{was}, as the range test suggested; Undo (Ctrl+Z) "
                    f"takes it back")
        self.status_label.setText("learning rate set")
        self.applied.emit(text)
        self._draw_current(value)
        return True

    # ---- worker results -------------------------------------------------------------------------------------------
    def _on_worker(self, payload: dict) -> None:
        if not isValid(self):
            return
        current = payload.get("run") == self._run_id and self._busy
        if payload.get("kind") == "progress":
            if current:
                self.progress.setRange(0, int(payload["steps"]))
                self.progress.setValue(int(payload["step"]))
                self.status_label.setText(f"step {payload['step']} of {payload['steps']}")
            return
        if not current or payload.get("cancelled"):
            self.test_done.emit(dict(payload, cancelled=True))
            return  # a cancelled test (cancel() has said so already), or one a later start() replaced
        self._set_busy(False)
        if payload.get("ok"):
            self._result = payload["result"]
            self._show_result(self._result)
        else:
            self._show_error(html.escape(payload.get("error") or "The range test failed."))
        self.test_done.emit(payload)

    def _show_idle(self) -> None:
        self._set_busy(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status_label.setText("")
        self.error_label.hide()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.cancel_button.setVisible(busy)
        self.run_button.setEnabled(not busy)
        self.steps_spin.setEnabled(not busy)
        self.use_button.setEnabled(not busy and self._result is not None)
        if self._result is None:
            self.use_button.setText("Use the suggestion")
        self.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)

    def _clear_plot(self) -> None:
        self.raw_curve.setData([], [])
        self.smooth_curve.setData([], [])
        self.suggestion_line.hide()
        self.current_line.hide()

    def _show_error(self, text: str) -> None:
        self._error = text
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status_label.setText("")
        self.error_label.setText(f"<span style='color:{ERROR_COLOR}'>✗ {text}</span>")
        self.error_label.show()

    def _show_result(self, r: dict[str, Any]) -> None:
        lrs = np.asarray(r["lrs"], dtype=np.float64)
        raw = np.asarray(r["losses"], dtype=np.float64)
        smooth = np.asarray(r["smoothed"], dtype=np.float64)
        x = np.log10(lrs)
        self.raw_curve.setData(x, raw)
        self.smooth_curve.setData(x, smooth)
        value = rounded_lr(r["suggestion"])
        self.suggestion_line.show()  # first: a hidden line's label does not take a new text
        self.suggestion_line.setValue(math.log10(r["suggestion"]))
        self.suggestion_line.label.setFormat(f"suggested {format_lr(value)}")
        self._draw_current(r.get("current_lr"))
        # the view: the whole range of rates, the loss from its lowest to a little above where it started, so that
        # the blow-up at the end does not squash the part that matters
        i_min = int(np.argmin(smooth))
        top = float(max(smooth[: i_min + 1].max(), smooth[0]))
        low = float(min(smooth.min(), np.percentile(raw, 2)))
        span = max(top - low, 1e-6 * max(1.0, abs(top)))
        self.plot.setXRange(float(x[0]), float(x[-1]), padding=0.02)
        self.plot.setYRange(low - 0.08 * span, top + 0.45 * span, padding=0)
        seconds = float(r.get("seconds") or (time.perf_counter() - self._started))
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.status_label.setText(f"{len(lrs)} steps in {seconds:.1f} s")
        self.suggestion_label.setText(f"Suggested learning rate: {format_lr(value)}")
        notes = list(r.get("notes") or [])
        current = r.get("current_lr")
        if current:
            notes.append(f"the project trains with {format_lr(float(current))} now")
        text = str(r.get("reason", ""))
        if notes:
            text += " " + " ".join(_sentence(n) for n in notes)
        self.reason_label.setText(text)
        self.use_button.setText(f"Use {format_lr(value)}")
        self.use_button.setEnabled(True)
        self.use_button.setToolTip(f"write {format_lr(value)} into the optimizer's learning rate (one undo step)")

    def _draw_current(self, lr: Any) -> None:
        if not lr or not math.isfinite(float(lr)) or float(lr) <= 0:
            self.current_line.hide()
            return
        self.current_line.show()
        self.current_line.setValue(math.log10(float(lr)))
        self.current_line.label.setFormat(f"now {format_lr(float(lr))}")

    # ---- closing and colours --------------------------------------------------------------------------------------
    def reject(self) -> None:
        if self._busy and self._cancel is not None:
            self._cancel.set()  # the thread stops at its next step; its result is dropped
        super().reject()

    def _apply_colors(self) -> None:
        palette = self.palette()
        self.plot_widget.setBackground(plot_background(palette))
        style_plot(self.plot, palette)
        grey = muted(palette).name()
        self.explanation.setStyleSheet(f"color: {grey}")
        self.status_label.setStyleSheet(f"color: {grey}")
        self.suggestion_label.setStyleSheet(f"color: {OK_COLOR}")

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange and hasattr(self, "plot"):
            self._apply_colors()
