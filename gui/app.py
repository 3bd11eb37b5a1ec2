"""The main window: the canvas in the middle, palette, inspector, summary and messages in docks; files, undo,
autosave, recent files and remembered settings. The window shows first; PyTorch loads in the background."""
from __future__ import annotations

import html
import os
import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QToolBar,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

from engine.errors import LayerLoomError, ProjectError
from engine.project import Project
from engine.templates import load_template

from .autosave import Autosaver, Recovered
from .banner import Banner
from .canvas import GraphView
from .document import Document
from .inspector import InspectorWidget
from .palette import PaletteWidget
from .start_page import StartPage
from .summary import MessagesWidget, SummaryWidget
from .theme import apply_theme, follow_system
from .training_controller import TrainingController

APP = "LayerLoom"
FILTER = "LayerLoom projects (*.layerloom);;All files (*)"
MAX_RECENT = 10
AUTOSAVE_MS = 60_000
SAVE, DISCARD, CANCEL = "save", "discard", "cancel"
TRUST_TITLE = "This project contains custom code"


class TorchWarmUp(QObject):
    """Imports torch on a plain thread so the first Train or Export does not wait for it; reports plain text."""

    done = Signal(str)

    def start(self) -> None:
        threading.Thread(target=self._run, name="torch-warm-up", daemon=True).start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            # What the first run would otherwise import while it trains: the optimizer's first step pulls in
            # torch._dynamo (about 1.5 s of imports), the bundled data sets scikit-learn. An import holds Python's
            # lock for long stretches, so done here, while the user looks at the window, it cannot stall the
            # live views during a run.
            import safetensors.torch  # noqa: F401 - the run's weights are saved with it
            import sklearn.datasets  # noqa: F401
            import torch

            import engine.coach  # noqa: F401
            import engine.live  # noqa: F401
            import engine.runner  # noqa: F401
            import engine.runs  # noqa: F401

            from . import training_worker  # noqa: F401 - the window imports it at the first Train
            weight = torch.zeros(2, requires_grad=True)
            optimizer = torch.optim.Adam([weight], lr=0.1)
            (weight * 2.0).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
            text = f"PyTorch {torch.__version__} ready ({time.perf_counter() - t0:.1f} s)"
        except Exception as e:  # a broken install must not take the editor down
            text = f"PyTorch could not be loaded: {e}"
        self.done.emit(text)


class MainWindow(QMainWindow):
    """One project at a time. `document` is None while the start page shows."""

    def __init__(self, settings: QSettings | None = None, autosaver: Autosaver | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings or QSettings(APP, APP)
        self.autosaver = autosaver or Autosaver()
        self.document: Document | None = None
        self._autosave_key = ""
        self._untitled = 0
        self.setWindowTitle(APP)
        self.setObjectName("MainWindow")
        self.setDockNestingEnabled(True)

        self.start_page = StartPage()
        self.view = GraphView()
        self.central = QStackedWidget()
        self.central.addWidget(self.start_page)
        self.central.addWidget(self.view)
        self.banner = Banner()
        holder = QWidget()
        column = QVBoxLayout(holder)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.central, 1)
        self.setCentralWidget(holder)

        self.palette_widget = PaletteWidget()
        self.inspector = InspectorWidget()
        self.summary = SummaryWidget()
        self.messages = MessagesWidget()
        self.undo_view = QUndoView()
        self.undo_view.setEmptyLabel("the project as opened")
        self.palette_dock = self._dock("Palette", self.palette_widget, Qt.LeftDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", self.inspector, Qt.RightDockWidgetArea)
        self.history_dock = self._dock("History", self.undo_view, Qt.RightDockWidgetArea)
        self.summary_dock = self._dock("Summary", self.summary, Qt.BottomDockWidgetArea)
        self.messages_dock = self._dock("Messages", self.messages, Qt.BottomDockWidgetArea)
        # Training docks: their widgets (pyqtgraph, the data preview) are built on first use, after the window
        # has painted, so they cost nothing at start-up.
        self._lazy: dict[str, QWidget] = {}
        self._editor_state: QByteArray | None = None  # the dock layout kept while the start page shows
        self.training_dock = self._dock("Training", QWidget(), Qt.RightDockWidgetArea)
        self.live_dock = self._dock("Live", QWidget(), Qt.BottomDockWidgetArea)
        self.evaluation_dock = self._dock("Evaluation", QWidget(), Qt.BottomDockWidgetArea)
        self.search_dock = self._dock("Search", QWidget(), Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.summary_dock, self.messages_dock)
        self.tabifyDockWidget(self.summary_dock, self.live_dock)
        self.tabifyDockWidget(self.summary_dock, self.evaluation_dock)
        self.tabifyDockWidget(self.summary_dock, self.search_dock)
        self.tabifyDockWidget(self.inspector_dock, self.training_dock)
        self.summary_dock.raise_()
        self.inspector_dock.raise_()
        self.splitDockWidget(self.inspector_dock, self.history_dock, Qt.Vertical)
        # The canvas gets most of the room; the summary a strip below it, the history a short list.
        self.resizeDocks([self.palette_dock, self.inspector_dock], [250, 320], Qt.Horizontal)
        self.resizeDocks([self.summary_dock], [190], Qt.Vertical)
        self.resizeDocks([self.inspector_dock, self.history_dock], [520, 160], Qt.Vertical)

        self.totals_label = QLabel()
        self.torch_label = QLabel("loading PyTorch…")
        self.statusBar().addPermanentWidget(self.totals_label)
        self.statusBar().addPermanentWidget(self.torch_label)

        self._make_actions()
        self.training = TrainingController(self)
        self._make_menus()
        self._make_toolbar()
        self._connect()
        self._update_actions()
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        self.warm_up = TorchWarmUp(self)
        self.warm_up.done.connect(self._on_torch_ready)
        self._restore_settings()
        self.show_start_page()

    # ---- assembly -------------------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}_dock")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _built(self, key: str, dock: QDockWidget, make) -> QWidget:
        widget = self._lazy.get(key)
        if widget is None:
            widget = self._lazy[key] = make()
            dock.setWidget(widget)
            self._hook_lazy(key, widget)
        return widget

    @property
    def training_panel(self):
        from .training_panel import TrainingSetupPanel
        return self._built("training", self.training_dock, TrainingSetupPanel)

    @property
    def live_views(self):
        from .live_views import LiveViews
        return self._built("live", self.live_dock, LiveViews)

    @property
    def evaluation_view(self):
        from .evaluation_views import EvaluationView
        return self._built("evaluation", self.evaluation_dock, EvaluationView)

    @property
    def search_view(self):
        from .search_view import SearchView
        return self._built("search", self.search_dock, lambda: SearchView(self))

    def past_runs(self) -> list:
        """The open project's finished or stopped runs on disk, newest first, without the one training now."""
        doc = self.document
        if doc is None or doc.path is None:
            return []
        from engine.runs import list_runs
        session = self.training.session
        current = getattr(session, "run_dir", None) if session is not None else None
        return [r for r in list_runs(doc.path) if current is None or r.folder != current]

    def build_training_views(self) -> None:
        """Build the training docks' widgets now (called once the window has painted)."""
        self.training_panel, self.live_views, self.evaluation_view  # noqa: B018 - properties that build

    def _hook_lazy(self, key: str, widget: QWidget) -> None:
        if key == "training":
            widget.message.connect(self.say)
            widget.search_requested.connect(self.add_to_search)
            widget.set_document(self.document)
            if self.document is not None and self.document.locked:
                widget.set_locked(True, self.document.locked)
        elif key == "live":
            widget.curves.runs_provider = self.past_runs
        elif key == "search":
            widget.message.connect(self.say)
            widget.set_document(self.document)
        elif key == "evaluation" and hasattr(widget, "sample_selected"):
            widget.sample_selected.connect(lambda i: self.statusBar().showMessage(f"sample {i}", 3000))
            if hasattr(widget, "explain_requested"):
                from .explain_view import hook_explain  # the explain dialog, made on first use
                hook_explain(self, widget)

    def show_banner(self, title: str, text: str, level: str = "error") -> None:
        """A message across the top of the canvas that stays until closed (errors in a run, for example)."""
        self.banner.show_message(title, text, level)

    def hide_banner(self) -> None:
        self.banner.hide()

    def set_model_locked(self, locked: bool, reason: str) -> None:
        """During a run: the training settings and the history are read-only and the user is told why."""
        if "training" in self._lazy:
            self.training_panel.set_locked(locked, reason)
        self.undo_view.setEnabled(not locked)
        self.undo_view.setToolTip(reason if locked else "")
        self._update_actions()

    def _action(self, text: str, slot, shortcut=None, tip: str = "", context=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            # A key sequence listed twice (Redo is Ctrl+Y on some platforms, Ctrl+Shift+Z on others) would make
            # the shortcut ambiguous, and Qt then triggers nothing: keep each once.
            # A standard key brings every binding the platform has for it (Close is Ctrl+W on one desktop and
            # Ctrl+F4 on another), not only the first.
            keys: dict[str, QKeySequence] = {}
            for s in shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]:
                seqs = QKeySequence.keyBindings(s) if isinstance(s, QKeySequence.StandardKey) else [QKeySequence(s)]
                for seq in seqs:
                    keys.setdefault(seq.toString(), seq)
            action.setShortcuts(list(keys.values()))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(lambda checked=False: slot())
        if context is not None:  # canvas edits act only while the canvas has focus, not in a text field
            action.setShortcutContext(context)
            self.view.addAction(action)
        else:
            self.addAction(action)
        return action

    def _make_actions(self) -> None:
        canvas = Qt.WidgetWithChildrenShortcut
        a = self._action
        self.new_action = a("&New from Template…", self.show_start_page, QKeySequence.New,
                            "Start a project from one of the example networks")
        self.new_empty_action = a("New &Empty Project", self.new_empty, "Ctrl+Shift+N", "Start from an Input layer")
        self.open_action = a("&Open…", self.open_dialog, QKeySequence.Open, "Open a .layerloom project")
        self.save_action = a("&Save", self.save, QKeySequence.Save, "Save the project")
        self.save_as_action = a("Save &As…", self.save_as, QKeySequence.SaveAs, "Save the project under a new name")
        self.close_action = a("&Close Project", self.close_project, QKeySequence.Close, "Back to the start page")
        self.quit_action = a("&Quit", self.close, QKeySequence.Quit)
        self.undo_action = a("&Undo", self._undo, QKeySequence.Undo)
        self.redo_action = a("&Redo", self._redo, [QKeySequence.Redo, "Ctrl+Y", "Ctrl+Shift+Z"])
        self.cut_action = a("Cu&t", self.view.cut, QKeySequence.Cut, context=canvas)
        self.copy_action = a("&Copy", self.view.copy, QKeySequence.Copy, context=canvas)
        self.paste_action = a("&Paste", self.view.paste, QKeySequence.Paste, context=canvas)
        self.duplicate_action = a("&Duplicate", self.view.duplicate, "Ctrl+D", context=canvas)
        self.delete_action = a("De&lete", self.view.delete_selected, [QKeySequence.Delete, "Backspace"],
                               context=canvas)
        self.select_all_action = a("Select &All", self.view.select_all, QKeySequence.SelectAll, context=canvas)
        self.find_action = a("&Find Layer", self._find_layer, QKeySequence.Find, "Search the palette")
        self.fit_action = a("&Fit to Window", self.view.fit, "F", "Show the whole network", context=canvas)
        self.zoom_in_action = a("Zoom &In", self.view.zoom_in, QKeySequence.ZoomIn, context=canvas)
        self.zoom_out_action = a("Zoom &Out", self.view.zoom_out, QKeySequence.ZoomOut, context=canvas)
        self.reset_zoom_action = a("&Actual Size", self.view.reset_zoom, "Ctrl+0", context=canvas)
        self.tidy_action = a("&Tidy Layout", self.view.tidy, "Ctrl+L", "Arrange the network top to bottom")
        self.search_action = a("Search &Hyper-parameters…", self.show_search, "F8",
                               "Try many settings (learning rate, layer sizes …) and keep the best (F8)")
        self.theme_group = QActionGroup(self)
        self.theme_actions = {}
        for mode in ("system", "light", "dark"):
            act = QAction(mode.capitalize() if mode != "system" else "Follow the System", self, checkable=True)
            act.triggered.connect(lambda checked=False, m=mode: self.set_theme(m))
            self.theme_group.addAction(act)
            self.theme_actions[mode] = act
        self.about_action = a("&About LayerLoom", self._about)

    def _make_menus(self) -> None:
        self._make_transfer_actions()
        self._make_custom_actions()
        self._make_block_actions()
        bar = self.menuBar()
        m = bar.addMenu("&File")
        for act in (self.new_action, self.new_empty_action, self.open_action):
            m.addAction(act)
        self.recent_menu = m.addMenu("Open &Recent")
        m.addSeparator()
        for act in (self.save_action, self.save_as_action, self.close_action):
            m.addAction(act)
        m.addSeparator()
        m.addAction(self.load_weights_action)
        m.aboutToShow.connect(self._update_transfer_actions)
        m.addSeparator()
        m.addAction(self.import_block_action)
        m.addAction(self.export_block_action)
        m.addSeparator()
        m.addAction(self.quit_action)
        m = bar.addMenu("&Edit")
        for act in (self.undo_action, self.redo_action, None, self.cut_action, self.copy_action, self.paste_action,
                    self.duplicate_action, self.delete_action, None, self.select_all_action, self.find_action):
            m.addSeparator() if act is None else m.addAction(act)
        m.addAction(self.add_custom_action)
        m.addSeparator()
        for act in (self.freeze_action, self.unfreeze_action, self.replace_head_action, self.load_weights_action):
            m.addAction(act)
        m.aboutToShow.connect(self._update_transfer_actions)
        m.addSeparator()
        for act in (self.group_action, self.ungroup_action, self.open_block_action, self.expose_action,
                    self.save_block_action):
            m.addAction(act)
        m.aboutToShow.connect(self._update_block_actions)
        m = bar.addMenu("&View")
        for act in (self.fit_action, self.zoom_in_action, self.zoom_out_action, self.reset_zoom_action,
                    self.tidy_action):
            m.addAction(act)
        m.addSeparator()
        theme = m.addMenu("&Theme")
        for act in self.theme_actions.values():
            theme.addAction(act)
        m.addSeparator()
        for dock in (self.palette_dock, self.inspector_dock, self.history_dock, self.summary_dock,
                     self.messages_dock, self.training_dock, self.live_dock, self.evaluation_dock, self.search_dock):
            m.addAction(dock.toggleViewAction())
        m = bar.addMenu("&Run")
        t = self.training
        for act in (t.train_action, t.pause_action, t.stop_action, None, t.evaluate_action, t.export_action, None,
                    t.find_lr_action):  # Find Learning Rate…: its slot is TrainingController.find_learning_rate
            m.addSeparator() if act is None else m.addAction(act)
        m.addAction(self.search_action)
        m = bar.addMenu("&Help")
        m.addAction(self.about_action)
        self._refresh_recent_menu()

    def _make_toolbar(self) -> None:
        bar = self.addToolBar("Run")
        bar.setObjectName("run_toolbar")
        bar.setToolButtonStyle(Qt.ToolButtonTextOnly)
        t = self.training
        for act in (t.train_action, t.pause_action, t.stop_action, None, t.evaluate_action, t.export_action):
            bar.addSeparator() if act is None else bar.addAction(act)

    def _connect(self) -> None:
        self.start_page.template_chosen.connect(self.new_from_template)
        self.start_page.open_requested.connect(self.open_file)
        self.start_page.open_other.connect(self.open_dialog)
        self.start_page.new_empty.connect(self.new_empty)
        self.palette_widget.add_requested.connect(self._add_layer)
        self.view.selection_changed.connect(self._on_selection_changed)
        self.view.message.connect(self.say)
        self.inspector.message.connect(self.say)
        self.inspector.search_requested.connect(self.add_to_search)
        self.summary.node_selected.connect(lambda nid: self.view.select_nodes([nid]))

    # ---- messages ---------------------------------------------------------------------------------------
    def say(self, text: str, level: str = "info") -> None:
        """One sentence in the status bar, kept in the Messages dock."""
        self.statusBar().showMessage(text, 8000)
        self.messages.add(text, level)

    def _on_torch_ready(self, text: str) -> None:
        self.torch_label.setText(text.split(" (")[0] if "ready" in text else "PyTorch unavailable")
        self.torch_label.setToolTip(text)
        self.messages.add(text, "info" if "ready" in text else "error")

    # ---- documents -------------------------------------------------------------------------------------
    def set_document(self, doc: Document | None) -> None:
        old = self.document
        if old is not None:
            self._discard_autosave()
            old.analyzed.disconnect(self._on_analyzed)
            old.dirty_changed.disconnect(self._update_title)
            old.path_changed.disconnect(self._on_path_changed)
            old.undo_stack.canUndoChanged.disconnect(self._update_actions)
            old.undo_stack.canRedoChanged.disconnect(self._update_actions)
        self.document = doc
        self.view.set_document(doc)
        self.inspector.set_document(doc)
        self.summary.set_document(doc)
        self.undo_view.setStack(doc.undo_stack if doc else None)
        if "training" in self._lazy:
            self.training_panel.set_document(doc)
        if "search" in self._lazy:
            self.search_view.set_document(doc)
        if doc is not None:
            doc.analyzed.connect(self._on_analyzed)
            doc.dirty_changed.connect(self._update_title)
            doc.path_changed.connect(self._on_path_changed)
            doc.undo_stack.canUndoChanged.connect(self._update_actions)
            doc.undo_stack.canRedoChanged.connect(self._update_actions)
            self._untitled += 1
            self._autosave_key = self.autosaver.key(doc.path, str(self._untitled))
            self.central.setCurrentWidget(self.view)
            self._show_docks(True)
            self._on_analyzed(doc.analysis)
            QTimer.singleShot(0, lambda: self.view.fit(readable=True))  # once the docks have their sizes
            if doc.path:
                self.settings.setValue("last_project", str(doc.path))
        else:
            self.central.setCurrentWidget(self.start_page)
            self._show_docks(False)
            self.totals_label.clear()
            if old is not None:  # the user closed the project: the next start shows the start page
                self.settings.setValue("last_project", "")
        if old is not None:
            old.close()
            old.deleteLater()
        self._update_title()
        self._update_actions()

    def show_start_page(self) -> None:
        if self.document is not None and not self.maybe_save():
            return
        self.set_document(None)
        self.start_page.set_recent(self.recent_files())

    def close_project(self) -> None:
        self.show_start_page()

    def new_from_template(self, name: str) -> None:
        if self.document is not None and not self.maybe_save():
            return
        project = load_template(name)
        project.name = name
        doc = Document(project, None, self)
        self.set_document(doc)
        self.say(f"New project from the template {name}: {project.description.split('.')[0]}")

    def new_empty(self) -> None:
        if self.document is not None and not self.maybe_save():
            return
        project = Project(name="untitled")
        first = project.graph.add_node("Input", {"shape": [1, 28, 28]}, position=(0.0, 0.0))
        self.set_document(Document(project, None, self))
        self.view.select_nodes([first])  # so that the first layer double-clicked in the palette follows it
        self.say("New project: drag layers from the palette, or double-click one to add it below the selection")

    def open_dialog(self) -> None:
        folder = self.settings.value("last_folder", str(Path.home()))
        path, _ = QFileDialog.getOpenFileName(self, "Open a project", folder, FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path: str | os.PathLike) -> bool:
        """Open a project; a file that cannot be read leaves everything as it was and says why."""
        path = Path(path).expanduser().absolute()  # `layerloom my.layerloom` is remembered with its folder
        if self.document is not None and self.document.path and self.document.path.resolve() == path.resolve():
            return True
        try:
            doc = Document.open(path, self)
        except ProjectError as e:
            self.say(f"Could not open {path.name}: {e}", "error")
            self._warn("Could not open the project", f"{path.name} could not be opened.", str(e))
            if not path.exists():
                self._forget_recent(path)
            return False
        if self.document is not None and not self.maybe_save():
            doc.close()
            return False
        self.set_document(doc)
        self.add_recent(path)
        self.settings.setValue("last_folder", str(path.parent))
        self.say(f"Opened {path}")
        self._check_custom_code(doc)
        return True

    def save(self) -> bool:
        if self.document is None:
            return False
        if self.document.path is None:
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self) -> bool:
        if self.document is None:
            return False
        start = str(self.document.path or Path(self.settings.value("last_folder", str(Path.home())))
                    / f"{self.document.project.name or 'untitled'}.layerloom")
        path, _ = QFileDialog.getSaveFileName(self, "Save the project as", start, FILTER)
        if not path:
            return False
        if not path.endswith(".layerloom"):
            path += ".layerloom"
        return self._save_to(Path(path))

    def _save_to(self, path: Path) -> bool:
        path = Path(path).expanduser().absolute()
        try:
            self.document.save(path)
        except ProjectError as e:
            self.say(f"Could not save: {e}", "error")
            self._warn("Could not save the project", f"{path.name} could not be written; your work is still "
                       "open and autosaved.", str(e))
            return False
        self._discard_autosave()
        self._autosave_key = self.autosaver.key(path, "")
        self.add_recent(path)
        self.settings.setValue("last_folder", str(path.parent))
        self.settings.setValue("last_project", str(path))
        self.say(f"Saved {path}")
        return True

    def maybe_save(self) -> bool:
        """True when it is fine to drop the current project (saved, discarded, or not dirty)."""
        if self.document is None or not self.document.dirty:
            return True
        answer = self.ask_save_changes()
        if answer == SAVE:
            return self.save()
        return answer == DISCARD

    def ask_save_changes(self) -> str:
        box = QMessageBox(QMessageBox.Warning, "Unsaved changes",
                          f"Save the changes to {self.document.title} before closing it?",
                          QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, self)
        box.setInformativeText("If you don't save, your changes since the last save are lost.")
        box.setDefaultButton(QMessageBox.Save)
        answer = box.exec()
        return {QMessageBox.Save: SAVE, QMessageBox.Discard: DISCARD}.get(answer, CANCEL)

    def _warn(self, title: str, text: str, details: str) -> None:
        if os.environ.get("LAYERLOOM_NO_DIALOGS"):  # tests and screenshots: the message is in the status bar
            return
        box = QMessageBox(QMessageBox.Warning, title, text, QMessageBox.Ok, self)
        box.setInformativeText(details)
        box.open()  # not modal-blocking: the app keeps running behind it

    # ---- recent files and settings --------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in value or []]

    def add_recent(self, path: str | os.PathLike) -> None:
        p = str(Path(path).resolve())
        files = [p] + [f for f in self.recent_files() if f != p]
        self.settings.setValue("recent_files", files[:MAX_RECENT])
        self._refresh_recent_menu()

    def _forget_recent(self, path: Path) -> None:
        p = str(path.resolve())
        self.settings.setValue("recent_files", [f for f in self.recent_files() if f != p])
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for i, f in enumerate(files):
            act = self.recent_menu.addAction(f"&{i + 1} {Path(f).name}  —  {Path(f).parent}")
            act.triggered.connect(lambda checked=False, f=f: self.open_file(f))
        if not files:
            self.recent_menu.addAction("(no recent files)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear the List", self._clear_recent)
        if self.document is None:
            self.start_page.set_recent(files)

    def _clear_recent(self) -> None:
        self.settings.setValue("recent_files", [])
        self._refresh_recent_menu()

    def set_theme(self, mode: str) -> None:
        app = QApplication.instance()
        apply_theme(app, mode)
        follow_system(app)  # while the mode is "system", a change of the OS scheme re-applies the theme
        self.settings.setValue("theme", mode)
        self.theme_actions[mode].setChecked(True)
        self.view.viewport().update()

    def _restore_settings(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        state = self.settings.value("window_state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        mode = str(self.settings.value("theme", "system"))
        self.set_theme(mode if mode in self.theme_actions else "system")

    def _show_docks(self, show: bool) -> None:
        """The start page has the whole window; the docks come back as they were when a project opens."""
        if show:
            if self._editor_state is not None:
                self.restoreState(self._editor_state)
                self._editor_state = None
            return
        if self._editor_state is None:
            self._editor_state = self.saveState()
        for dock in self.findChildren(QDockWidget):
            dock.hide()
        for bar in self.findChildren(QToolBar):
            bar.hide()

    def _save_settings(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        # On the start page the docks are hidden for the gallery: remember the editor's layout instead.
        self.settings.setValue("window_state", self._editor_state if self._editor_state is not None
                               else self.saveState())
        self.settings.sync()

    # ---- autosave -------------------------------------------------------------------------------------
    def autosave(self) -> Path | None:
        """Copy unsaved work to the data folder (every minute while there are unsaved changes)."""
        doc = self.document
        if doc is None or not doc.dirty:
            return None
        try:
            return self.autosaver.write(self._autosave_key, doc.project, doc.path)
        except (ProjectError, OSError) as e:
            self.say(f"Autosave failed: {e}", "warning")
            return None

    def _discard_autosave(self) -> None:
        if self._autosave_key:
            self.autosaver.discard(self._autosave_key)

    def offer_recovery(self) -> bool:
        """After a crash: offer to restore the autosaves left behind. Returns True when one was restored."""
        found = self.autosaver.pending()
        if not found:
            return False
        latest = found[0]
        if not self.ask_restore(latest, len(found)):
            for r in found:
                self.autosaver.discard(self.autosaver.key_of(r))
            return False
        return self.restore(latest)

    def ask_restore(self, recovered: Recovered, count: int) -> bool:
        more = f" ({count - 1} older autosave(s) will be kept)" if count > 1 else ""
        answer = QMessageBox.question(
            self, "Restore unsaved work?",
            f"LayerLoom did not close properly last time. Restore your unsaved work?\n\n{recovered.describe()}"
            f"{more}", QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        return answer == QMessageBox.Yes

    def restore(self, recovered: Recovered) -> bool:
        try:
            project = self.autosaver.load(recovered)
        except ProjectError as e:
            self.say(str(e), "error")
            return False
        if self.document is not None and not self.maybe_save():
            return False
        doc = Document(project, recovered.original, self)
        self.set_document(doc)
        # Restored work is unsaved work: mark it so until the user saves it.
        doc.undo_stack.resetClean()
        self.autosaver.discard(self.autosaver.key_of(recovered))
        self._update_title()
        self.say(f"Restored unsaved work: {recovered.describe()}. Save it to keep it.")
        self._check_custom_code(doc)
        return True

    # ---- custom layers: Add Custom Layer and the trust banner --------------------------------------------------
    def _make_custom_actions(self) -> None:
        self.add_custom_action = self._action(
            "Add &Custom Layer", self.add_custom_layer, "Ctrl+Shift+K",
            "Add a layer written in Python (a small nn.Module class) and edit its code in the inspector")
        text = self.banner.text
        text.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.LinksAccessibleByMouse)
        text.setOpenExternalLinks(False)
        text.linkActivated.connect(self._follow_custom_link)
        self._trust_banner_shown = False

    def add_custom_layer(self) -> str:
        """Add a Custom node with the starter code (a Swish activation, trusted: LayerLoom wrote it), selected so
        that its code shows in the inspector; returns its id ("" when refused)."""
        from engine.custom import DEFAULT_CODE, code_hash, trust

        try:
            trust(code_hash(DEFAULT_CODE))
        except LayerLoomError as e:
            self.say(str(e), "error")
            return ""
        if self.document is None:
            self.new_empty()
        try:
            nid = self.view.add_layer("Custom")
        except LayerLoomError as e:
            self.say(str(e), "warning")
            return ""
        if nid:
            self.inspector.show_node(nid)
            self.inspector_dock.show()
            self.inspector_dock.raise_()
            self.say(f"Added {nid}: write its code in the inspector and press Apply (Ctrl+Enter)")
        return nid

    def _check_custom_code(self, doc: Document) -> None:
        """A project with custom code that is not trusted here: nothing of it has run; say so, with Trust."""
        from engine.custom import untrusted_code

        found = untrusted_code(doc.graph)
        if not found:
            return
        names = ", ".join(path for path, _ in found[:4]) + (" …" if len(found) > 4 else "")
        self.show_banner(TRUST_TITLE,
                         f"Custom layers ({html.escape(names)}) hold Python code that has not been trusted on this "
                         f"computer, so it has not been run. Review it in the inspector; Trust runs it on this "
                         f"computer.&nbsp;&nbsp;<a href='trust-code:'>Trust</a>&nbsp;&nbsp;"
                         f"<a href='show-code:{html.escape(found[0][0])}'>Show code</a>", "warning")
        self._trust_banner_shown = True
        doc.analyzed.connect(self._hide_trust_banner_when_trusted)

    def _hide_trust_banner_when_trusted(self, _analysis=None) -> None:
        from engine.custom import untrusted_code

        if self._trust_banner_shown and self.document is not None and not untrusted_code(self.document.graph):
            self._trust_banner_shown = False
            if self.banner.title.text() == TRUST_TITLE:  # not another message shown since
                self.hide_banner()

    def trust_custom_code(self) -> list[str]:
        """Trust every custom layer of the open project (the banner's Trust) and work the shapes out again."""
        from engine.custom import trust_graph

        if self.document is None:
            return []
        try:
            hashes = trust_graph(self.document.graph)
        except LayerLoomError as e:
            self.say(str(e), "error")
            return []
        self.document.reanalyze()
        self._hide_trust_banner_when_trusted()
        self.say(f"Trusted the custom code of this project ({len(hashes)} piece{'s' if len(hashes) != 1 else ''}); "
                 f"it runs on this computer from now on")
        return hashes

    def _follow_custom_link(self, link) -> None:
        text = link.toString() if hasattr(link, "toString") else str(link)
        scheme, _, target = text.partition(":")
        if scheme == "trust-code":
            self.trust_custom_code()
        elif scheme == "show-code" and self.document is not None:
            node = target.split(".", 1)[0]  # a layer inside a block: show the block
            if node in self.document.graph:
                self.central.setCurrentWidget(self.view)
                self.view.select_nodes([node])
                self.inspector.show_node(node)
                self.inspector_dock.show()
                self.inspector_dock.raise_()

    # ---- edits ------------------------------------------------------------------------------------------
    def _add_layer(self, layer_type: str) -> None:
        if self.document is None:
            self.new_empty()
        try:
            nid = self.view.add_layer(layer_type)
        except LayerLoomError as e:
            self.say(str(e), "warning")
            return
        self.say(f"Added {nid}")

    def _undo(self) -> None:
        if self.document is not None:
            self.document.undo_stack.undo()

    def _redo(self) -> None:
        if self.document is not None:
            self.document.undo_stack.redo()

    def _find_layer(self) -> None:
        self.palette_dock.show()
        self.palette_dock.raise_()
        self.palette_widget.focus_search()

    def _on_selection_changed(self, ids: list) -> None:
        self.inspector.show_node(ids[0] if len(ids) == 1 else None)
        self.summary.select_node(ids[0] if len(ids) == 1 else None)
        if len(ids) > 1:
            self.statusBar().showMessage(f"{len(ids)} nodes selected", 3000)

    def _on_analyzed(self, analysis) -> None:
        self.totals_label.setText(self.summary.totals_text())
        errors = len(analysis.errors)
        self.totals_label.setStyleSheet("color: #d9534f;" if errors else "")
        if errors:
            self.totals_label.setText(f"{self.totals_label.text()} · {errors} error{'s' if errors > 1 else ''}")

    def _on_path_changed(self, path: str) -> None:
        self._update_title()

    def _update_title(self, *_: object) -> None:
        doc = self.document
        if doc is None:
            self.setWindowTitle(APP)
            self.setWindowModified(False)
            return
        self.setWindowTitle(f"{doc.title}[*] — {APP}")
        self.setWindowModified(doc.dirty)

    def _update_actions(self, *_: object) -> None:
        if hasattr(self, "training"):
            self.training.update_actions()
            if self.searching:  # a search holds the network: no training run (or range test) beside it
                for act in (self.training.train_action, getattr(self.training, "find_lr_action", None)):
                    if act is not None:
                        act.setEnabled(False)
            self.search_action.setEnabled(self.document is not None and not self.training.running)
        has = self.document is not None
        for act in (self.save_action, self.save_as_action, self.close_action, self.cut_action, self.copy_action,
                    self.paste_action, self.duplicate_action, self.delete_action, self.select_all_action,
                    self.fit_action, self.zoom_in_action, self.zoom_out_action, self.reset_zoom_action,
                    self.tidy_action):
            act.setEnabled(has)
        self.undo_action.setEnabled(has and self.document.undo_stack.canUndo())
        self.redo_action.setEnabled(has and self.document.undo_stack.canRedo())
        if has:
            self.undo_action.setText(f"&Undo {self.document.undo_stack.undoText()}".rstrip())
            self.redo_action.setText(f"&Redo {self.document.undo_stack.redoText()}".rstrip())

    def _about(self) -> None:
        QMessageBox.about(self, "About LayerLoom", "<b>LayerLoom</b><p>Build, train and export PyTorch models by "
                          "pointing and clicking.</p>")

    # ---- transfer learning: the menu entries and their slots ------------------------------------------------
    def _make_transfer_actions(self) -> None:
        a = self._action
        self.load_weights_action = a("Load &Weights…", self.load_weights, tip="Start training from weights trained "
                                     "elsewhere: a .safetensors, .layerloom, .onnx or .pt file, or a run folder")
        self.freeze_action = a("&Freeze Selected Layers", self.freeze_selected,
                               tip="Keep the selected layers' weights as they are while the network trains")
        self.unfreeze_action = a("U&nfreeze Selected Layers", self.unfreeze_selected,
                                 tip="Let the selected layers' weights train again")
        self.replace_head_action = a("Replace the &Head…", self.replace_head,
                                     tip="Give the network a new number of outputs (classes), e.g. before loading "
                                         "weights trained for another task")

    def _update_transfer_actions(self) -> None:
        doc = self.document
        free = doc is not None and not doc.locked
        ids = [n for n in self.view.selected_nodes() if n in doc.graph] if doc is not None else []
        self.load_weights_action.setEnabled(free)
        self.replace_head_action.setEnabled(free)
        self.freeze_action.setEnabled(free and any(not doc.graph.nodes[n].frozen and doc.has_weights(n) for n in ids))
        self.unfreeze_action.setEnabled(free and any(doc.graph.nodes[n].frozen for n in ids))

    def load_weights(self):
        """Open the Load Weights dialog on the open project (kept as `transfer_dialog`); returns it, or None."""
        doc = self.document
        if doc is None:
            self.say("Open a project first: weights are loaded into its network", "warning")
            return None
        if doc.locked:
            self.say(f"Weights cannot be loaded now: {doc.locked}", "warning")
            return None
        from .transfer_dialog import TransferDialog

        dialog = TransferDialog(doc, self.view.selected_nodes(), self, save_first=self._save_for_transfer)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.applied.connect(self.say)
        dialog.open()
        self.transfer_dialog = dialog
        return dialog

    def _save_for_transfer(self) -> bool:
        """An untitled project is saved before weights are loaded into it (the file goes beside it)."""
        if os.environ.get("LAYERLOOM_NO_DIALOGS"):
            self.say("Save the project first: the starting weights are written to a file beside it", "warning")
            return False
        answer = QMessageBox.question(
            self, "Save the project first", "The starting weights are written to a file beside the project, so "
            "the project must be saved first. Save it now?", QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        return answer == QMessageBox.Yes and self.save()

    def freeze_selected(self) -> list[str]:
        return self._set_frozen(True)

    def unfreeze_selected(self) -> list[str]:
        return self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> list[str]:
        """Freeze or unfreeze the canvas's selected layers as one undo step; says what changed, or why not."""
        doc = self.document
        if doc is None:
            return []
        ids = self.view.selected_nodes()
        verb = "freeze" if frozen else "unfreeze"
        if not ids:
            self.say(f"Select the layers to {verb} on the canvas first", "warning")
            return []
        try:
            changed = doc.set_frozen(ids, frozen)
        except LayerLoomError as e:
            self.say(f"Cannot {verb} now: {e}", "warning")
            return []
        if not changed:
            self.say("Nothing to freeze: the selected layers have no weights or are frozen already" if frozen else
                     "Nothing to unfreeze: none of the selected layers is frozen")
        elif frozen:
            self.say(f"Froze {', '.join(changed)}: their weights stay as they are while the network trains")
        else:
            self.say(f"Unfroze {', '.join(changed)}: their weights train again")
        return changed

    def replace_head(self, num_classes: int | None = None) -> bool:
        """Give the network `num_classes` outputs (asked for when None) as one undo step; says what changed."""
        doc = self.document
        if doc is None:
            self.say("Open a project first: the head is the last layer of its network", "warning")
            return False
        if num_classes is None:
            if os.environ.get("LAYERLOOM_NO_DIALOGS"):
                return False
            from PySide6.QtWidgets import QInputDialog

            shapes = [doc.analysis.nodes[n].shape for n in doc.graph.sink_nodes() if n in doc.analysis.nodes]
            current = next((s[0] for s in shapes if s is not None and len(s) == 1), 10)
            value, ok = QInputDialog.getInt(self, "Replace the head", "Number of classes (outputs) the network "
                                            "should have:", int(current), 1, 1_000_000)
            if not ok:
                return False
            num_classes = value
        try:
            changes = doc.replace_head(num_classes)
        except LayerLoomError as e:
            self.say(f"Cannot replace the head: {e}", "warning")
            self._warn("Cannot replace the head", "The network's head could not be changed.", str(e))
            return False
        if not changes:
            self.say(f"The network has {num_classes} outputs already: nothing changed")
            return True
        what = "; ".join(f"{nid}: {', '.join(f'{k} {old[k]} → {v}' for k, v in new.items())}"
                         for nid, old, new in changes)
        self.say(f"Replaced the head for {num_classes} classes ({what}); it starts from fresh weights when trained. "
                 f"Undo (Ctrl+Z) takes it back")
        return True

    # ---- composite blocks: the menu entries and their slots ---------------------------------------------------
    def _make_block_actions(self) -> None:
        a = self._action
        canvas = Qt.WidgetWithChildrenShortcut
        self.group_action = a("&Group into Block…", self.group_selected, "Ctrl+G",
                              "Replace the selected layers with one block that holds them", context=canvas)
        self.ungroup_action = a("U&ngroup Block", self.ungroup_selected, "Ctrl+Shift+G",
                                "Put the selected block's layers back in the network", context=canvas)
        self.open_block_action = a("&Open Block", self.open_block, tip="See and edit the inside of the selected "
                                   "block (or double-click it)")
        self.expose_action = a("&Expose Block Parameter…", self.expose_block_parameter,
                               tip="Show a parameter of a layer inside the selected block on the block itself (e.g. "
                                   "its channels), to set it per copy and keep it when the block is saved")
        self.save_block_action = a("Save Block to &Library…", self.save_block_to_library,
                                   tip="Keep the selected block in your library, to add it to other networks "
                                       "from the palette's Blocks")
        self.import_block_action = a("&Import Block File…", self.import_block_file,
                                     tip="Add a shared block file (.json) to your library")
        self.export_block_action = a("E&xport Block File…", self.export_block_file,
                                     tip="Write the selected block to a file to share it")
        self.view.context_actions = [self.group_action, self.ungroup_action, self.open_block_action, None,
                                     self.save_block_action, self.export_block_action]
        self.view.node_activated.connect(self._on_node_activated)
        self.view.selection_changed.connect(self._update_block_actions)
        self.palette_widget.block_requested.connect(self.add_block)
        self.block_dialog = None

    def _update_block_actions(self, *_: object) -> None:
        """Enabled by the selection (a locked model is refused by the slots, with the reason)."""
        block = self._selected_block(quiet=True)
        self.group_action.setEnabled(self.document is not None and bool(self.view.selected_nodes()))
        self.ungroup_action.setEnabled(block is not None)
        self.open_block_action.setEnabled(block is not None)
        self.save_block_action.setEnabled(block is not None)
        self.expose_action.setEnabled(block is not None)
        self.export_block_action.setEnabled(block is not None)

    def _selected_block(self, quiet: bool = False) -> str | None:
        """The one block selected on the canvas, or None (and, unless quiet, a message saying what to select)."""
        doc = self.document
        ids = self.view.selected_nodes() if doc is not None else []
        found = [n for n in ids if n in doc.graph and doc.graph.nodes[n].type == "Block"] if doc is not None else []
        if len(found) == 1 and len(ids) == 1:
            return found[0]
        if not quiet:
            self.say("Select one block on the canvas first" if not found else
                     "Select only one block: this acts on one block at a time", "warning")
        return None

    def _ask_text(self, title: str, label: str, default: str) -> str | None:
        """A line of text from the user (the default under LAYERLOOM_NO_DIALOGS); None when cancelled."""
        if os.environ.get("LAYERLOOM_NO_DIALOGS"):
            return default
        from PySide6.QtWidgets import QInputDialog

        text, ok = QInputDialog.getText(self, title, label, text=default)
        return text.strip() if ok and text.strip() else None

    def group_selected(self, name: str | None = None) -> str | None:
        """Edit ▸ Group into Block (Ctrl+G): the selected layers become one block (asked for a name), as one undo
        step. Returns the block's id; None, with the engine's reason in the status bar, when refused."""
        doc = self.document
        if doc is None:
            return None
        ids = self.view.selected_nodes()
        if not ids:
            self.say("Select the layers to group into a block first", "warning")
            return None
        if name is None:
            name = self._ask_text("Group into Block", "Name of the block (letters, digits, _ or -):", "block")
            if name is None:
                return None
        try:
            block_id = doc.group_into_block(ids, name)
        except LayerLoomError as e:
            self.say(f"Cannot group into a block: {e}", "warning")
            return None
        self.view.select_nodes([block_id])
        self.say(f"Grouped {len(ids)} layer{'s' if len(ids) != 1 else ''} into {block_id}: double-click it to see "
                 f"inside, Ctrl+Shift+G ungroups it")
        return block_id

    def ungroup_selected(self) -> list[str]:
        """Edit ▸ Ungroup Block (Ctrl+Shift+G): the selected block's layers back in the network, one undo step."""
        doc = self.document
        block_id = self._selected_block()
        if doc is None or block_id is None:
            return []
        try:
            ids = doc.ungroup(block_id)
        except LayerLoomError as e:
            self.say(f"Cannot ungroup {block_id}: {e}", "warning")
            return []
        self.view.select_nodes(ids)
        self.say(f"Ungrouped {block_id} into {len(ids)} layer{'s' if len(ids) != 1 else ''}")
        return ids

    def _on_node_activated(self, node_id: str) -> None:
        doc = self.document
        if doc is not None and node_id in doc.graph and doc.graph.nodes[node_id].type == "Block":
            self.open_block(node_id)

    def open_block(self, block_id: str | None = None):
        """Edit ▸ Open Block (or double-click a block): its inside in an editor dialog (kept as `block_dialog`);
        Apply or Back puts the edits in the network as one undo step. Returns the dialog, or None."""
        from .block_view import BlockEditorDialog

        doc = self.document
        block_id = block_id or self._selected_block()
        if doc is None or block_id is None:
            return None
        doc.reanalyze()  # the shapes coming into the block, up to date
        try:
            dialog = BlockEditorDialog(doc, block_id, (doc.project.name or "network",), self)
        except LayerLoomError as e:
            self.say(str(e), "warning")
            return None
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.message.connect(self.say)
        dialog.setModal(True)
        dialog.show()
        self.block_dialog = dialog
        return dialog

    def exposable_targets(self, block_id: str) -> list[str]:
        """The inner parameters of a block that can be shown on it: "conv2d_1.out_channels", … (layers with plain
        number, on/off or choice parameters; the block's own ports left out)."""
        from engine import blocks
        from engine.params import BOOL, CHOICE, FLOAT, INT

        graph = blocks.inner(self.document.graph.nodes[block_id].params).graph
        shown = {t for targets in self.document.graph.nodes[block_id].params.get("exposed", {}).values()
                 for t in targets}
        out = []
        for nid, node in graph.nodes.items():
            if node.type in ("BlockInput", "BlockOutput", "Block", "Custom"):
                continue
            out += [f"{nid}.{p.name}" for p in node.spec.params
                    if p.kind in (INT, FLOAT, BOOL, CHOICE) and f"{nid}.{p.name}" not in shown]
        return out

    def expose_block_parameter(self, target: str | None = None, name: str | None = None) -> bool:
        """Edit ▸ Expose Block Parameter…: an inner layer's parameter (asked from a list) becomes a parameter of the
        selected block under a name (asked), set in the inspector per copy and kept when the block is saved to
        the library; one undo step."""
        doc = self.document
        block_id = self._selected_block()
        if doc is None or block_id is None:
            return False
        if target is None:
            choices = self.exposable_targets(block_id)
            if not choices or os.environ.get("LAYERLOOM_NO_DIALOGS"):
                return False
            from PySide6.QtWidgets import QInputDialog
            target, ok = QInputDialog.getItem(self, "Expose Block Parameter", "Parameter of a layer inside "
                                              f"{block_id}:", choices, 0, False)
            if not ok:
                return False
        if name is None:
            name = self._ask_text("Expose Block Parameter", "Its name on the block:", target.split(".", 1)[1])
            if not name:
                return False
        exposed = {k: list(v) for k, v in doc.graph.nodes[block_id].params.get("exposed", {}).items()}
        exposed.setdefault(name, [])
        if target in exposed[name]:
            return False
        exposed[name].append(target)
        try:
            doc.set_params(block_id, {"exposed": exposed})
        except LayerLoomError as e:
            self.say(f"Cannot expose {target}: {e}", "warning")
            return False
        self.say(f"{block_id} now shows {target} as {name!r}: set it in the inspector")
        return True

    def save_block_to_library(self, name: str | None = None, description: str | None = None,
                              overwrite: bool = False) -> Path | None:
        """Edit ▸ Save Block to Library…: the selected block's definition in the user's library (asked for a name
        and a description), then listed in the palette's Blocks. Returns the file written, or None."""
        from engine import blocks

        doc = self.document
        block_id = self._selected_block()
        if doc is None or block_id is None:
            return None
        definition = blocks.definition_of(doc.graph, block_id)
        if name is None:
            name = self._ask_text("Save Block to Library", "Name of the block in your library:", definition.name)
            if name is None:
                return None
        if description is None:
            description = self._ask_text("Save Block to Library", "What it does (one sentence, may be empty):",
                                         definition.description) or ""
        definition.name, definition.description = name, description
        try:
            path = blocks.save_block(definition, overwrite=overwrite)
        except LayerLoomError as e:
            self.say(f"Cannot save the block: {e}", "warning")
            return None
        self.palette_widget.refresh_blocks()
        self.say(f"Saved the block {name} to your library ({path}); it is in the palette's Blocks")
        return path

    def add_block(self, definition) -> str:
        """Add an instance of a block definition (from the palette's Blocks) as one undo step; returns its id."""
        if self.document is None:
            self.new_empty()
        return self.view.add_block(definition)

    def import_block_file(self, path: str | os.PathLike | None = None) -> Path | None:
        """File ▸ Import Block File…: add a shared block file to the library (and the palette)."""
        from engine import blocks

        if path is None:
            if os.environ.get("LAYERLOOM_NO_DIALOGS"):
                return None
            path, _ = QFileDialog.getOpenFileName(self, "Import a block", str(Path.home()),
                                                  "LayerLoom blocks (*.json);;All files (*)")
            if not path:
                return None
        try:
            saved = blocks.import_block_file(path)
        except LayerLoomError as e:
            self.say(f"Cannot import {Path(path).name}: {e}", "warning")
            return None
        self.palette_widget.refresh_blocks()
        self.say(f"Imported the block {blocks.read_block_file(saved).name} into your library")
        return saved

    def export_block_file(self, path: str | os.PathLike | None = None) -> Path | None:
        """File ▸ Export Block File…: write the selected block's definition to a file to share it."""
        from engine import blocks

        doc = self.document
        block_id = self._selected_block()
        if doc is None or block_id is None:
            return None
        definition = blocks.definition_of(doc.graph, block_id)
        if path is None:
            if os.environ.get("LAYERLOOM_NO_DIALOGS"):
                return None
            path, _ = QFileDialog.getSaveFileName(self, "Export the block", str(Path.home() / blocks.block_file_name(
                definition.name)), "LayerLoom blocks (*.json);;All files (*)")
            if not path:
                return None
        try:
            written = blocks.write_block_file(definition, path)
        except LayerLoomError as e:
            self.say(f"Cannot export the block: {e}", "warning")
            return None
        self.say(f"Exported {block_id} to {written}")
        return written

    # ---- hyper-parameter search: the Search dock -------------------------------------------------------------
    @property
    def searching(self) -> bool:
        """Whether a hyper-parameter search is running (the network is locked meanwhile)."""
        return "search" in self._lazy and self.search_view.running

    def show_search(self) -> None:
        """Run ▸ Search Hyper-parameters… (F8): the Search dock, raised and tall enough for its table and plots."""
        if self.document is None:
            self.say("Open a project first: a search tries settings of its network", "warning")
            return
        self.search_view  # noqa: B018 - the property builds the dock's widget
        self.search_dock.show()
        self.search_dock.raise_()
        if self.search_dock.height() < 320:
            self.resizeDocks([self.search_dock], [340], Qt.Vertical)

    def add_to_search(self, target: str) -> bool:
        """"Add to the search" from a right-click menu: a row for `target` in the Search dock."""
        self.show_search()
        return self.document is not None and self.search_view.add_target(target)

    # ---- closing ----------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if not self.maybe_save():
            event.ignore()
            return
        self.training.shutdown()
        if "search" in self._lazy:
            self.search_view.shutdown()
        self._discard_autosave()
        self._save_settings()
        event.accept()


# ---- start-up -----------------------------------------------------------------------------------------------

def no_display_reason() -> str | None:
    """Why no window can open here, or None. Checked before Qt starts, which would otherwise abort."""
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            return "no display was found (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return None


HEADLESS_HINT = ("use the headless commands instead: layerloom summary|train|search|export|import|transfer|layers "
                 "PROJECT (layerloom --help lists them)")


def main(argv: list[str] | None = None) -> int:
    """`layerloom [FILE.layerloom]`: open the window (the last project, the file given, or the start page)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    reason = no_display_reason()
    if reason:
        print(f"layerloom: the window cannot open because {reason}; {HEADLESS_HINT}.", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP)
    app.setOrganizationName(APP)
    app.setApplicationDisplayName(APP)
    app.setDesktopFileName("layerloom")  # Wayland matches the window to packaging/layerloom.desktop
    icon = Path(__file__).resolve().parent.parent / "resources" / "icons" / "layerloom.png"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow()
    probe = os.environ.get("LAYERLOOM_STARTUP_PROBE")
    if probe:
        from .startup_probe import FirstPaint
        window._probe = FirstPaint(window, quit_after=probe == "quit")  # noqa: SLF001 - kept alive with it
    window.show()
    files = [a for a in argv if not a.startswith("-")]

    def after_show() -> None:
        window.warm_up.start()
        QTimer.singleShot(200, window.build_training_views)
        open_at_start(window, files)

    QTimer.singleShot(0, after_show)
    code = app.exec()
    from .canvas.view import empty_clipboard
    empty_clipboard()  # while the application still exists: see _clear_clipboard_at_exit
    return code


def open_at_start(window: MainWindow, files: list[str]) -> None:
    """What the window shows once it is up: unsaved work left by a crash (if the user takes it back), else the
    file given on the command line, else the project open when the app last closed, else the start page."""
    if window.offer_recovery():
        return
    if files:
        window.open_file(files[0])
        return
    last = str(window.settings.value("last_project", "") or "")
    if last and Path(last).is_file():
        window.open_file(last)


if __name__ == "__main__":
    sys.exit(main())
