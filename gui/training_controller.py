"""Train, pause, stop, evaluate and export from the window: starts a TrainingSession on the open document, feeds
its plain-data signals to the live views, locks the model while it runs, and keeps the trained weights with the
project when it ends. The run's coach speaks through the Messages dock ("Coach: …"), a notice above the canvas
(with a link that shows the node it names) and the live views' Coach tab; Find Learning Rate… opens the range test
(gui/lr_finder_dialog.py)."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QProgressBar

if TYPE_CHECKING:  # pragma: no cover
    from .app import MainWindow
    from .training_worker import TrainingSession

LOCK_REASON = "a training run is using the network: pause does not unlock it; press Stop (Shift+F5) to edit"
LIVE_DOCK_SHARE = 0.36  # of the window's height: the least a bottom Live dock gets when a run starts
TRAINED_KEY = "trained"  # project.extra["trained"] = {"weights": path relative to the project, "run": ..., ...}


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class TrainingController(QObject):
    """Owns the run of the window's document (one at a time). Signals for tests and the status bar:
    `run_started(dict)`, `run_finished(dict)` (the session's result), `evaluated(dict)`, `advised(dict)` (a warning
    of the coach, after the window has shown it)."""

    run_started = Signal(object)
    advised = Signal(object)
    run_finished = Signal(object)
    evaluated = Signal(object)
    _evaluation_done = Signal(object)  # a dict from the evaluation thread, queued to the GUI thread

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.session: TrainingSession | None = None
        self.last_result: dict[str, Any] | None = None
        self._started_at = 0.0
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.progress_label = QLabel()
        # A fixed width: the figures change four times a second, and a label whose size may change makes Qt lay
        # the whole window out again each time (its docks included).
        self.progress_label.setFixedWidth(self.progress_label.fontMetrics().horizontalAdvance(
            "paused · epoch 100/100 · step 100000/100000 · 9999 steps/s · ETA 59 min 59 s") + 8)
        self.progress_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        window.statusBar().addPermanentWidget(self.progress_label)
        window.statusBar().addPermanentWidget(self.progress)
        self.train_action = self._action("&Train", self.train, "F5", "Train the network on its data (F5)")
        self.pause_action = self._action("&Pause", self.toggle_pause, "F6", "Pause or resume the run (F6)")
        self.stop_action = self._action("&Stop", self.stop, "Shift+F5", "Stop the run; the weights so far are kept")
        self.evaluate_action = self._action("&Evaluate", self.evaluate, "F7",
                                            "Score the trained network on the test split (F7)")
        self.export_action = self._action("E&xport…", self.export, "Ctrl+E",
                                          "Write the network as safetensors, ONNX, TorchScript, … (Ctrl+E)")
        self.find_lr_action = self._action("Find &Learning Rate…", self.find_learning_rate, "Ctrl+Shift+L",
                                           "Run a learning-rate range test on the network and its data, and use the "
                                           "suggested rate")
        self.lr_finder_dialog = None
        self.advice: list[dict[str, Any]] = []  # the coach's warnings of the current (or last) run
        self._coach_hooked = False
        # the notice above the canvas is the window's banner: its links show a node or open the Coach tab
        text = window.banner.text
        text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse |
                                     Qt.TextInteractionFlag.LinksAccessibleByMouse)
        text.setOpenExternalLinks(False)
        text.linkActivated.connect(self.follow_link)
        self._evaluation_done.connect(self._on_evaluated)
        self.update_actions()

    def _action(self, text: str, slot, shortcut: str, tip: str) -> QAction:
        action = QAction(text, self.window)
        action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.setToolTip(tip)
        action.triggered.connect(lambda checked=False: slot())
        self.window.addAction(action)
        return action

    # ---- state ----------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.session is not None and self.session.is_running()

    def weights_path(self) -> Path | None:
        """The trained weights of the open project: the last run's, or those recorded in the project file."""
        doc = self.window.document
        if doc is None:
            return None
        trained = doc.project.extra.get(TRAINED_KEY) or {}
        path = trained.get("weights") if isinstance(trained, dict) else None
        if not path:
            return None
        p = Path(path)
        if not p.is_absolute() and doc.path is not None:
            p = doc.path.parent / p
        return p if p.is_file() else None

    def update_actions(self) -> None:
        doc = self.window.document
        running = self.running
        self.train_action.setEnabled(doc is not None and not running)
        self.pause_action.setEnabled(running)
        self.stop_action.setEnabled(running)
        has_weights = self.weights_path() is not None
        self.evaluate_action.setEnabled(doc is not None and not running and has_weights)
        self.export_action.setEnabled(doc is not None and not running)
        # the range test trains the network for a few steps: not while a run has it
        self.find_lr_action.setEnabled(doc is not None and not running)

    # ---- running --------------------------------------------------------------------------------------
    def train(self) -> bool:
        """Start a run of the open project; says why when it cannot (no project, graph errors)."""
        from .training_worker import TrainingSession

        w, doc = self.window, self.window.document
        if doc is None or self.running:
            return False
        analysis = doc.reanalyze()
        if not analysis.ok:
            first = analysis.errors[0] if analysis.errors else None
            reason = f"{first.node_id}: {first.error}" if first else "the network is empty"
            w.show_banner("The network cannot train yet", f"Fix the layer marked in red first — {reason}", "error")
            return False
        base_dir = str(doc.path.parent) if doc.path else None
        session = TrainingSession(doc.project.to_dict(), base_dir, parent=self)
        session.started.connect(self._on_started)
        session.steps.connect(w.live_views.add_steps)
        session.epoch_end.connect(self._on_epoch)
        session.snapshot.connect(w.live_views.add_snapshot)
        session.progress.connect(self._on_progress)
        session.advice.connect(self._on_advice)
        session.failed.connect(self._on_failed)
        session.finished.connect(self._on_finished)
        views = w.live_views
        if hasattr(views, "feature_request"):
            views.feature_request.connect(lambda layer, index: session.set_views(feature_layer=layer,
                                                                                  sample_index=index))
        if not self._coach_hooked and hasattr(views, "node_requested"):
            views.node_requested.connect(self.show_node)
            self._coach_hooked = True
        self.advice = []
        self.session = session
        # The live views come to the front at once (grown if squeezed to a strip), before the lock disables the
        # settings: a settings panel sharing the dock area is then behind its tab and is not repainted greyed
        # out, and the first pictures of the run do not arrive together with a relayout of the window (which
        # made one long stall).
        self._show_live_dock(grow=True)
        doc.lock(LOCK_REASON)
        w.set_model_locked(True, LOCK_REASON)
        w.hide_banner()
        self._started_at = time.perf_counter()
        self.progress.setRange(0, 0)  # busy until the worker has built the data and the model
        self.progress.show()
        self.progress_label.setText("preparing the data and the network…")
        session.start()
        self.update_actions()
        w.say("Training started: the network is locked until the run ends (Stop: Shift+F5)")
        return True

    def toggle_pause(self) -> None:
        if not self.running:
            return
        if self.pause_action.text().endswith("Pause"):
            self.session.pause()
            self.pause_action.setText("&Resume")
            self.progress_label.setText("paused")
            self.window.say("Paused: Resume with F6")
        else:
            self.session.resume()
            self.pause_action.setText("&Pause")
            self.window.say("Resumed")

    def stop(self) -> None:
        if self.running:
            self.session.stop()
            self.progress_label.setText("stopping after this step…")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop a run and wait for it (the window is closing)."""
        if self.running:
            self.session.stop()
            self.session.wait(timeout)

    def _set_progress(self, value: int, maximum: int) -> None:
        """QProgressBar repaints at once when its figure changes, and a repaint at once paints everything
        waiting in the window with it (the curves' next frame included); with updates off meanwhile, the bar is
        painted with the rest at the next frame instead."""
        bar = self.progress
        bar.setUpdatesEnabled(False)
        try:
            if bar.maximum() != maximum or bar.minimum() != 0:
                bar.setRange(0, maximum)
            bar.setValue(value)
        finally:
            bar.setUpdatesEnabled(True)

    def _show_live_dock(self, grow: bool = False) -> None:
        w = self.window
        dock = w.live_dock
        if dock.isHidden() or dock.visibleRegion().isEmpty():  # closed, or behind another dock's tab
            dock.show()
            dock.raise_()  # (raising a dock already in view would only repaint the window once more)
        # a run's curves need some height: a bottom dock squeezed to a strip grows to LIVE_DOCK_SHARE of the
        # window (the network is locked meanwhile); a taller one, or one the user floated, stays as it is
        want = int(LIVE_DOCK_SHARE * w.height())
        if grow and not dock.isFloating() and w.dockWidgetArea(dock) == Qt.DockWidgetArea.BottomDockWidgetArea \
                and dock.height() < want:
            w.resizeDocks([dock], [want], Qt.Orientation.Vertical)

    def _on_started(self, info: dict) -> None:
        self.window.live_views.start_run(info)
        self._show_live_dock()  # in view since Train was pressed, unless the user has put it away since
        self._set_progress(0, max(1, int(info.get("total_steps") or 1)))
        self.run_started.emit(info)

    def _on_epoch(self, logs: dict) -> None:
        self.window.live_views.add_epoch(logs)
        shown = [f"epoch {int(logs.get('epoch', 0))}", f"loss {logs.get('loss', float('nan')):.4f}"]
        for key in ("acc", "val_loss", "val_acc", "mae", "val_mae", "r2", "val_r2"):
            if key in logs:
                shown.append(f"{key} {logs[key]:.4f}")
        self.window.messages.add(" · ".join(shown))

    def _on_progress(self, p: dict) -> None:
        total = int(p.get("total_steps") or 0)
        step = int(p.get("step") or 0)
        if total:
            self._set_progress(min(step, total), total)
        speed = p.get("steps_per_s") or 0.0
        status = p.get("status", "running")
        text = (f"epoch {int(p.get('epoch') or 0)}/{int(p.get('epochs') or 0)} · step {step}/{total} · "
                f"{speed:.0f} steps/s · ETA {_fmt_eta(p.get('eta'))}")
        self.progress_label.setText(("paused · " if status == "paused" else "") + text)

    # ---- the coach ------------------------------------------------------------------------------------------
    def _on_advice(self, warning: dict) -> None:
        """A warning of the coach: into the Messages dock, the notice above the canvas and the Coach tab."""
        from .coach_view import advice_line, message_level

        w = self.window
        self.advice.append(warning)
        w.say(advice_line(warning), message_level(warning))
        w.live_views.add_advice(warning)
        self.show_notice(warning)
        self.advised.emit(warning)

    def show_notice(self, warning: dict) -> None:
        """The newest warning across the top of the canvas, with its cure and links; it never covers an error."""
        from .coach_view import message_level, notice_html, notice_style, notice_title

        banner = self.window.banner
        if not banner.isHidden() and banner.level == "error":
            return
        level = message_level(warning)
        banner.show_message(notice_title(warning), notice_html(warning, len(self.advice) - 1), level)
        banner.setStyleSheet(notice_style(level))

    def follow_link(self, link: str | QUrl) -> None:
        """A link of the coach's notice: node:<id> shows that node on the canvas, coach: opens the Coach tab."""
        from .coach_view import COACH_LINK, NODE_LINK, link_target

        scheme, target = link_target(link)
        if scheme == NODE_LINK and target:
            self.show_node(target)
        elif scheme == COACH_LINK:
            w = self.window
            w.live_dock.show()
            w.live_dock.raise_()
            w.live_views.show_coach()

    def show_node(self, node: str) -> bool:
        """Select a node on the canvas and centre the view on it (the coach's "Show"); says so when it is gone."""
        w, doc = self.window, self.window.document
        if doc is None or node not in doc.graph:
            w.say(f"{node} is no longer in the network", "warning")
            return False
        w.central.setCurrentWidget(w.view)
        w.view.select_nodes([node])
        item = w.view.scene().nodes.get(node)
        if item is not None:
            w.view.centerOn(item)
        w.view.setFocus()
        return True

    # ---- the learning-rate finder ------------------------------------------------------------------------------
    def find_learning_rate(self):
        """Open the learning-rate finder on the open project and start the range test; returns the dialog, or None
        (no project, or a run has the network)."""
        from .lr_finder_dialog import LRFinderDialog

        w, doc = self.window, self.window.document
        if doc is None:
            w.say("Open a project first: the range test trains its network on its data", "warning")
            return None
        if self.running:
            w.say(f"The learning-rate finder cannot run now: {LOCK_REASON}", "warning")
            return None
        base_dir = str(doc.path.parent) if doc.path else None
        dialog = LRFinderDialog(doc, base_dir, w)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.applied.connect(w.say)
        dialog.open()
        dialog.start()
        self.lr_finder_dialog = dialog
        return dialog

    def _on_failed(self, info: dict) -> None:
        message = info.get("message") or "the run failed"
        hint = info.get("hint") or ""
        self.window.show_banner("Training stopped", f"{message}" + (f" — {hint}" if hint else ""), "error")
        self.window.messages.add(f"Training failed: {message}", "error")

    def _on_finished(self, result: dict) -> None:
        w, doc = self.window, self.window.document
        self.last_result = result
        if hasattr(w.live_views, "end_run"):
            w.live_views.end_run()  # the final curves and pictures now, not at their next paced frame
        if doc is not None:
            doc.unlock()
            self._remember_weights(result)
        w.set_model_locked(False, "")
        self.progress.hide()
        self.pause_action.setText("&Pause")
        status = result.get("status", "")
        seconds = time.perf_counter() - self._started_at
        self.progress_label.setText(f"{status} · {result.get('epochs_done', 0)} epochs in {seconds:.0f} s")
        if status == "finished":
            w.say(f"Training finished: {result.get('message') or 'done'}; weights in {result.get('weights')}")
        elif status == "stopped":
            w.say(f"Training stopped; the weights so far are kept in {result.get('weights')}")
        self.session = None
        self.update_actions()
        self.run_finished.emit(result)

    def _remember_weights(self, result: dict) -> None:
        """Record the run's weights in the project (made relative to its folder when inside it); the project
        becomes unsaved so that the user saves the trained state with it."""
        doc = self.window.document
        weights = result.get("weights")
        if not weights or not Path(weights).is_file():
            return
        def rel(path: str | None) -> str | None:
            if not path:
                return None
            p = Path(path)
            if doc.path is not None:
                try:
                    return str(p.resolve().relative_to(doc.path.parent.resolve()))
                except ValueError:
                    pass
            return str(p)
        last = result.get("history") or []  # the epoch logs, oldest first
        doc.project.extra[TRAINED_KEY] = {
            "weights": rel(weights), "best_weights": rel(result.get("best_weights")), "run": rel(result.get("run_dir")),
            "status": result.get("status"), "epochs": result.get("epochs_done"),
            "metrics": {k: v for k, v in (last[-1] if last else {}).items() if isinstance(v, (int, float))}}
        doc.undo_stack.resetClean()  # unsaved: the trained state belongs in the file
        self.window._update_title()

    # ---- after training -----------------------------------------------------------------------------------
    def evaluate(self) -> bool:
        """Score the trained weights on the test split on a thread; the evaluation view fills when done."""
        doc = self.window.document
        weights = self.weights_path()
        if doc is None or weights is None or self.running:
            self.window.say("Train the network first: there are no trained weights to evaluate")
            return False
        project = doc.project.to_dict()
        base_dir = str(doc.path.parent) if doc.path else None
        self.window.say("Evaluating on the test split…")

        def work() -> None:
            from engine.evaluate import evaluate
            from engine.project import Project
            try:
                result = evaluate(Project.from_dict(project), str(weights), base_dir=base_dir)
            except Exception as e:  # shown in words; the app stays up
                result = {"error": f"{type(e).__name__}: {e}" if not str(e) else str(e)}
            self._evaluation_done.emit(result)

        threading.Thread(target=work, name="evaluation", daemon=True).start()
        return True

    def _on_evaluated(self, result: dict) -> None:
        w = self.window
        if "error" in result:
            w.show_banner("Evaluation failed", result["error"], "error")
        else:
            w.evaluation_view.show_result(result)
            w.evaluation_dock.show()
            w.evaluation_dock.raise_()
            metrics = " · ".join(f"{k} {v:.4f}" for k, v in (result.get("metrics") or {}).items())
            w.say(f"Evaluated on {result.get('n')} {result.get('split')} samples: {metrics}")
        self.evaluated.emit(result)

    def export(self) -> None:
        from .export_dialog import ExportDialog

        doc = self.window.document
        if doc is None:
            return
        weights = self.weights_path()
        base_dir = str(doc.path.parent) if doc.path else None
        dialog = ExportDialog(doc.project, str(weights) if weights else None, base_dir, self.window)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.open()
        self.export_dialog = dialog
