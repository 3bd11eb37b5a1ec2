"""Load weights… (transfer learning): pick weights trained elsewhere (.safetensors, a .layerloom project, a run
folder, .onnx, a .pt/.pth state dict), match them to the open network's tensors with engine.transfer (by name,
then by shape), read the report (a table of this network's tensors and where each comes from; what keeps its
initial value, what has another shape, what the source has left over), and Apply: the matched tensors become the
project's starting weights (Document.apply_transfer: one undoable edit, optionally freezing the loaded layers).

Matching reads files, may import an ONNX model and builds the network, so it runs on a plain thread that gets a
snapshot of the project as plain data and hands back a plain dict (NumPy arrays for the tensors) through a queued
signal; the GUI thread never waits for it.
"""
from __future__ import annotations

import html
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)
from shiboken6 import isValid

from engine.errors import LayerLoomError
from engine.transfer import INIT_KEY, TransferReport

from .colors import ERROR_COLOR, OK_COLOR, WARNING_COLOR
from .dialog_parts import (
    busy_bar,
    dialog_body,
    emit_quietly,
    muted_color,
    section_heading,
    status_label,
    style_muted_labels,
)
from .palette import blend

if TYPE_CHECKING:  # pragma: no cover
    from .document import Document

SOURCE_FILTER = ("Weights and networks (*.safetensors *.layerloom *.onnx *.pt *.pth *.bin *.ckpt);;"
                 "safetensors weights (*.safetensors);;LayerLoom projects (*.layerloom);;ONNX models (*.onnx);;"
                 "PyTorch state dicts (*.pt *.pth *.bin *.ckpt);;All files (*)")
COLUMNS = ("This network", "Shape", "Source tensor", "Source shape", "How")


def _shape(shape: Any) -> str:
    if shape is None:
        return ""
    return "×".join(str(int(s)) for s in shape) or "scalar"


def report_from_dict(d: dict[str, Any]) -> TransferReport:
    """A TransferReport back from its to_dict() (what the worker thread hands over)."""
    return TransferReport(matched=[(str(t), str(s), str(h)) for t, s, h in d.get("matched", [])],
                          shape_mismatches=[(str(t), str(s), tuple(ts), tuple(ss))
                                            for t, s, ts, ss in d.get("shape_mismatches", [])],
                          kept=[str(k) for k in d.get("kept", [])], unused=[str(u) for u in d.get("unused", [])],
                          source=str(d.get("source", "")))


def match_in_thread(emit: Callable[[dict], None], project: dict[str, Any], source: str, base_dir: str | None,
                    layers: list[str] | None, by_shape: bool, token: int) -> None:
    """Read the source, build the network and match (engine.transfer); hand back plain data: the report as a
    dict, the tensors' shapes, and the matched tensors as NumPy arrays under this network's names."""
    result: dict[str, Any] = {"token": token, "ok": False, "error": "", "source": source}
    try:
        from engine.builder import build_model  # torch loads here, on the worker
        from engine.project import Project
        from engine.transfer import load_weights_file, match_weights, matched_weights

        src = Path(os.path.expanduser(source))
        if not src.is_absolute() and base_dir:
            src = Path(base_dir) / src
        state = load_weights_file(src)
        model = build_model(Project.from_dict(project).graph, seed=0)
        target = model.state_dict()
        report = match_weights(target, state, layers=layers, by_shape=by_shape, source_name=src.name)
        weights = matched_weights(report, target, state)
        result.update(ok=True, path=str(src), report=report.to_dict(), lines=report.lines(),
                      target_shapes={k: list(v.shape) for k, v in target.items()},
                      source_shapes={k: list(v.shape) for k, v in state.items()},
                      weights={k: v.numpy() for k, v in weights.items()})
    except LayerLoomError as e:
        result["error"] = str(e)
    except Exception as e:  # a reader or a builder bug: said in the dialog, never a traceback dialog
        result["error"] = f"the weights could not be matched ({type(e).__name__}: {e})"
    emit_quietly(emit, result)


def _plain(label: QLabel) -> str:
    """The text of a rich-text label as plain text ("" when hidden)."""
    if label.isHidden():
        return ""
    doc = QTextDocument()
    doc.setHtml(label.text())
    return doc.toPlainText()


def _sentence(text: str) -> str:
    text = str(text).strip()
    if not text:
        return ""
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class TransferDialog(QDialog):
    """Loads weights into the open document's network. `selected`: the canvas's selected node ids (the "only the
    selected layers" option). `save_first()` is asked to save an untitled project before Apply (returns whether
    it did). Signals: `matched(dict)` after each match (the worker's result: ok, error, report, ...), `applied(str)`
    with the sentence that says what was loaded."""

    matched = Signal(object)
    applied = Signal(str)
    _finished = Signal(object)  # from the worker thread (queued)

    def __init__(self, document: Document, selected: list[str] | None = None, parent: QWidget | None = None,
                 save_first: Callable[[], bool] | None = None):
        super().__init__(parent)
        self.setObjectName("TransferDialog")
        self.document = document
        self.selected = [n for n in (selected or []) if n in document.graph]
        self.save_first = save_first
        self._busy = False
        self._token = 0
        self._result: dict[str, Any] | None = None
        self._finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self.setWindowTitle("Load weights")
        self.setMinimumWidth(640)
        self._muted = "#888888"
        self._build()
        self._apply_colors()
        self._show_current()
        self._update_buttons()
        self.resize(780, 660)

    # ---- building -------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        name = self.document.project.name or "the network"
        body = dialog_body(self, f"Load weights into {name}")
        intro = QLabel("Start training from weights trained elsewhere. Each tensor of this network takes the "
                       "source's tensor of the same name, else (if you like) one of the same shape; the others keep "
                       "their fresh initial values. Nothing changes until you apply.", self)
        intro.setWordWrap(True)
        intro.setProperty("muted", True)
        body.addWidget(intro)

        self.current = QWidget(self)
        row = QHBoxLayout(self.current)
        row.setContentsMargins(0, 4, 0, 0)
        self.current_label = QLabel(self.current)
        self.current_label.setObjectName("currentInit")
        self.current_label.setWordWrap(True)
        self.current_label.setTextFormat(Qt.TextFormat.RichText)
        row.addWidget(self.current_label, 1)
        self.remove_button = QPushButton("Stop starting from them", self.current)
        self.remove_button.setToolTip("train from fresh initial values again (one undoable edit; the file stays)")
        self.remove_button.clicked.connect(self.remove_current)
        row.addWidget(self.remove_button, 0, Qt.AlignmentFlag.AlignTop)
        body.addWidget(self.current)

        body.addWidget(section_heading("Source", self))
        row = QHBoxLayout()
        row.setSpacing(6)
        self.source_edit = QLineEdit(self)
        self.source_edit.setObjectName("transferSource")
        self.source_edit.setPlaceholderText("a .safetensors, .layerloom, .onnx or .pt/.pth file, or a run folder")
        self.source_edit.returnPressed.connect(self.match_now)
        row.addWidget(self.source_edit, 1)
        self.file_button = QPushButton("File…", self)
        self.file_button.setToolTip("choose a weights file, a LayerLoom project (its trained weights) or an ONNX "
                                    "model")
        self.file_button.clicked.connect(self._on_browse_file)
        row.addWidget(self.file_button)
        self.folder_button = QPushButton("Run folder…", self)
        self.folder_button.setToolTip("choose a run folder (its final weights) or a checkpoint folder")
        self.folder_button.clicked.connect(self._on_browse_folder)
        row.addWidget(self.folder_button)
        body.addLayout(row)

        self.by_shape_check = QCheckBox("Also match by shape when the names differ", self)
        self.by_shape_check.setObjectName("transferByShape")
        self.by_shape_check.setChecked(True)
        self.by_shape_check.setToolTip("tensors left after matching by name take a source tensor of the same shape, "
                                       "in order (a network built elsewhere names its layers differently)")
        self.by_shape_check.toggled.connect(self._on_option)
        body.addWidget(self.by_shape_check)
        ids = ", ".join(self.selected[:4]) + (f" and {len(self.selected) - 4} more" if len(self.selected) > 4 else "")
        self.selected_check = QCheckBox(f"Only the selected layers ({ids})" if self.selected else
                                        "Only the selected layers (select layers on the canvas first)", self)
        self.selected_check.setObjectName("transferSelected")
        self.selected_check.setEnabled(bool(self.selected))
        self.selected_check.toggled.connect(self._on_option)
        body.addWidget(self.selected_check)

        row = QHBoxLayout()
        self.match_button = QPushButton("Match", self)
        self.match_button.setToolTip("read the source and pair its tensors with this network's (nothing changes)")
        self.match_button.clicked.connect(lambda: self.match_now())
        self.match_button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        row.addWidget(self.match_button)
        self.progress = busy_bar(self)
        row.addWidget(self.progress, 1)
        self.busy_label = QLabel(self)
        self.busy_label.setProperty("muted", True)
        self.busy_label.hide()
        row.addWidget(self.busy_label, 1)
        row.addStretch(0)
        body.addLayout(row)

        self.report_title = section_heading("Report", self)
        body.addWidget(self.report_title)
        self.summary_label = QLabel(self)
        self.summary_label.setObjectName("transferSummary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        body.addWidget(self.summary_label)
        self.counts_label = QLabel(self)
        self.counts_label.setObjectName("transferCounts")
        self.counts_label.setTextFormat(Qt.TextFormat.RichText)
        body.addWidget(self.counts_label)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("transferTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        for col in (1, 3, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(160)
        body.addWidget(self.table, 1)
        self.lists_label = QLabel(self)
        self.lists_label.setObjectName("transferLists")
        self.lists_label.setWordWrap(True)
        self.lists_label.setTextFormat(Qt.TextFormat.RichText)
        self.lists_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.lists_label.setContentsMargins(0, 4, 0, 4)
        body.addWidget(self.lists_label)
        for w in (self.report_title, self.summary_label, self.counts_label, self.table, self.lists_label):
            w.hide()

        self.status = status_label(self, "transferStatus")
        body.addWidget(self.status)
        self.stretch = QWidget(self)
        self.stretch.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        body.addWidget(self.stretch)

        row = QHBoxLayout()
        self.freeze_check = QCheckBox("Freeze the loaded layers too", self)
        self.freeze_check.setObjectName("transferFreeze")
        self.freeze_check.setToolTip("the layers that take weights keep them while the rest trains (unfreeze them "
                                     "later in the Inspector to fine-tune)")
        row.addWidget(self.freeze_check)
        row.addStretch(1)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.reject)
        row.addWidget(self.close_button)
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.setObjectName("transferApply")
        self.apply_button.setDefault(True)
        self.apply_button.setToolTip("start training from the loaded tensors (one undoable edit)")
        self.apply_button.clicked.connect(lambda: self.apply())
        row.addWidget(self.apply_button)
        body.addLayout(row)

    # ---- public ---------------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def result(self) -> dict[str, Any] | None:
        """The last match's result (as matched carried it)."""
        return self._result

    def report(self) -> TransferReport | None:
        r = self._result
        return report_from_dict(r["report"]) if r and r.get("ok") else None

    def set_source(self, path: str | os.PathLike) -> None:
        self.source_edit.setText(str(path))

    def source(self) -> str:
        return self.source_edit.text().strip()

    def summary_text(self) -> str:
        """The shown summary (or error) as plain text."""
        return _plain(self.summary_label) or _plain(self.status)

    def table_rows(self) -> list[tuple[str, ...]]:
        """The report table as text, row by row (for tests and for copying)."""
        return [tuple(self.table.item(r, c).text() if self.table.item(r, c) else "" for c in range(len(COLUMNS)))
                for r in range(self.table.rowCount())]

    def match_now(self, source: str | os.PathLike | None = None) -> bool:
        """Match the source's tensors to the network on the worker thread (`matched` follows). False (and says
        why) when there is no source or the network cannot be read."""
        if source is not None:
            self.set_source(source)
        text = self.source()
        if not text:
            self._show_status("Choose where the weights come from first: a file or a run folder.", ERROR_COLOR)
            return False
        doc = self.document
        try:
            snapshot = doc.project.to_dict()
        except LayerLoomError as e:
            self._show_status(html.escape(_sentence(str(e))), ERROR_COLOR)
            return False
        layers = list(self.selected) if self.selected_check.isChecked() and self.selected else None
        base_dir = str(doc.path.parent) if doc.path is not None else None
        self._token += 1
        self._result = None
        self._set_busy(True, f"Reading {Path(text).name} and matching it to the network…")
        self.status.hide()
        threading.Thread(target=match_in_thread, name="layerloom-transfer",
                         args=(self._finished.emit, snapshot, text, base_dir, layers,
                               self.by_shape_check.isChecked(), self._token), daemon=True).start()
        return True

    def apply(self) -> bool:
        """Make the matched tensors the project's starting weights (one undo step; the loaded layers frozen
        too when ticked). An untitled project is saved first (save_first), since the file goes beside it."""
        r = self._result
        if self._busy or not r or not r.get("ok"):
            self._show_status("Match a source first: choose it and press Match.", ERROR_COLOR)
            return False
        report = report_from_dict(r["report"])
        if not report.matched:
            self._show_status("Nothing to load: no tensor of the source fits this network.", ERROR_COLOR)
            return False
        doc = self.document
        if doc.path is None and self.save_first is not None:
            self.save_first()
        if doc.path is None:
            self._show_status("Save the project first (File ▸ Save As): the starting weights are written to a "
                              "file beside it.", ERROR_COLOR)
            return False
        import torch  # loaded by the worker already; from_numpy copies nothing

        weights = {k: torch.from_numpy(v) for k, v in r["weights"].items()}
        freeze = self.freeze_check.isChecked()
        before = set(doc.graph.frozen_nodes())
        try:
            path = doc.apply_transfer(weights, report, r.get("path") or self.source(), freeze=freeze)
        except LayerLoomError as e:
            self._show_status(html.escape(_sentence(str(e))), ERROR_COLOR)
            return False
        frozen = [n for n in doc.graph.frozen_nodes() if n not in before]
        message = (f"Loaded {report.loaded} of {report.total} tensors from {Path(r.get('path') or '').name} as the "
                   f"starting weights ({path.name}); training now starts from them")
        if frozen:
            message += f"; froze {', '.join(frozen)}"
        message += ". Undo (Ctrl+Z) takes it back."
        self._show_current()
        self._show_status(f"✓ {html.escape(message)}", OK_COLOR)
        self.applied.emit(message)
        self.accept()
        return True

    def remove_current(self) -> bool:
        """Stop starting from the project's transferred weights (one undo step)."""
        try:
            removed = self.document.remove_init()
        except LayerLoomError as e:
            self._show_status(html.escape(_sentence(str(e))), ERROR_COLOR)
            return False
        self._show_current()
        if removed:
            self.applied.emit("Training starts from fresh initial values again (the weights file stays on disk).")
        return removed

    # ---- results --------------------------------------------------------------------------------------------------
    def _set_busy(self, busy: bool, text: str = "") -> None:
        self._busy = busy
        self.busy_label.setText(text)
        self.busy_label.setVisible(busy)
        self.progress.setVisible(busy)
        for w in (self.match_button, self.file_button, self.folder_button, self.source_edit, self.by_shape_check):
            w.setEnabled(not busy)
        self.selected_check.setEnabled(not busy and bool(self.selected))
        self.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)
        self._update_buttons()

    def _update_buttons(self) -> None:
        r = self._result
        ok = bool(r and r.get("ok") and r["report"]["matched"]) and not self._busy
        self.apply_button.setEnabled(ok)
        self.freeze_check.setEnabled(ok)

    def _on_finished(self, result: dict) -> None:
        if not isValid(self) or result.get("token") != self._token:
            return  # closed, or a newer match is running
        self._set_busy(False)
        self._result = result
        if result.get("ok"):
            self._show_report(result)
        else:
            for w in (self.report_title, self.summary_label, self.counts_label, self.table, self.lists_label):
                w.hide()
            self.stretch.show()
            self._show_status(f"<b>The weights cannot be loaded:</b> {html.escape(_sentence(result['error']))}",
                              ERROR_COLOR)
        self._update_buttons()
        self.matched.emit(result)

    def _show_report(self, result: dict) -> None:
        esc = html.escape
        report = report_from_dict(result["report"])
        target_shapes, source_shapes = result["target_shapes"], result["source_shapes"]
        color = OK_COLOR if report.matched and not report.kept else WARNING_COLOR if report.matched else ERROR_COLOR
        bg = blend(self.palette().color(QPalette.ColorRole.Base), QColor(color), 0.10).name()
        self.summary_label.setStyleSheet(f"QLabel#transferSummary {{ background: {bg}; border-left: 3px solid "
                                         f"{color}; padding: 8px 10px; }}")
        self.summary_label.setText(esc(report.summary))
        by_name = sum(1 for m in report.matched if m[2] == "name")
        counts = [(f"{report.loaded} loaded", OK_COLOR if report.loaded else ERROR_COLOR),
                  (f"{by_name} by name, {report.loaded - by_name} by shape", self._muted),
                  (f"{len(report.kept)} kept", self._muted if not report.kept else WARNING_COLOR),
                  (f"{len(report.shape_mismatches)} with another shape",
                   WARNING_COLOR if report.shape_mismatches else self._muted),
                  (f"{len(report.unused)} unused in the source", self._muted)]
        self.counts_label.setText(" · ".join(f"<span style='color:{c}'>{esc(t)}</span>" for t, c in counts))
        mismatch = {t: (s, ss) for t, s, _ts, ss in report.shape_mismatches}
        rows: list[tuple[tuple[str, ...], str]] = []
        for t, s, how in report.matched:
            rows.append(((t, _shape(target_shapes.get(t)), s, _shape(source_shapes.get(s)), f"✓ by {how}"), "ok"))
        for k in report.kept:
            if k in mismatch:
                s, ss = mismatch[k]
                rows.append(((k, _shape(target_shapes.get(k)), s, _shape(ss), "kept: another shape"), "warn"))
            else:
                rows.append(((k, _shape(target_shapes.get(k)), "—", "", "kept: initial value"), "kept"))
        self.table.setRowCount(len(rows))
        muted = QBrush(QColor(self._muted))
        for r, (cells, kind) in enumerate(rows):
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 4:
                    item.setForeground(QBrush(QColor(OK_COLOR if kind == "ok" else WARNING_COLOR if kind == "warn"
                                                     else self._muted)))
                elif kind == "kept":
                    item.setForeground(muted)
                if c in (1, 3):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        lists = []
        loaded_layers = list(dict.fromkeys(t.split(".", 1)[0] for t, _s, _h in report.matched))
        if loaded_layers:
            lists.append(f"<b>Loaded layers:</b> {esc(', '.join(loaded_layers))}")
        kept_layers = list(dict.fromkeys(k.split(".", 1)[0] for k in report.kept))
        if kept_layers:
            lists.append(f"<b>Keep their initial values:</b> {esc(', '.join(kept_layers))}")
        if report.unused:
            shown = ", ".join(report.unused[:12]) + (f" and {len(report.unused) - 12} more"
                                                     if len(report.unused) > 12 else "")
            lists.append(f"<b>Not used from the source:</b> <span style='color:{self._muted}'>{esc(shown)}</span>")
        self.lists_label.setText("<br>".join(lists))
        for w in (self.report_title, self.summary_label, self.counts_label, self.table):
            w.show()
        self.lists_label.setVisible(bool(lists))
        self.stretch.hide()

    def _show_status(self, text: str, color: str) -> None:
        self.status.setText(f"<span style='color:{color}'>{text}</span>")
        self.status.show()

    def _show_current(self) -> None:
        entry = self.document.project.extra.get(INIT_KEY)
        if not isinstance(entry, dict) or not entry.get("weights"):
            self.current.hide()
            return
        esc = html.escape
        source = Path(str(entry.get("source") or "")).name
        self.current_label.setText(
            f"This project already starts from <b>{esc(str(entry['weights']))}</b>"
            + (f" (from {esc(source)}, {int(entry.get('tensors', 0))} tensors)" if source else "")
            + ". Applying new weights replaces them.")
        self.current.show()

    # ---- handlers -------------------------------------------------------------------------------------------------
    def _on_option(self, _on: bool) -> None:
        if self._result is not None and self.source() and not self._busy:
            self.match_now()  # the report always matches the options shown

    def _start_folder(self) -> str:
        text = self.source()
        if text:
            return str(Path(text).expanduser().parent)
        doc = self.document
        return str(doc.path.parent) if doc.path is not None else str(Path.home())

    def _on_browse_file(self) -> None:
        if os.environ.get("LAYERLOOM_NO_DIALOGS"):
            return
        chosen, _ = QFileDialog.getOpenFileName(self, "Load weights from", self._start_folder(), SOURCE_FILTER)
        if chosen:
            self.match_now(chosen)

    def _on_browse_folder(self) -> None:
        if os.environ.get("LAYERLOOM_NO_DIALOGS"):
            return
        chosen = QFileDialog.getExistingDirectory(self, "Load the weights of a run folder", self._start_folder())
        if chosen:
            self.match_now(chosen)

    # ---- colours --------------------------------------------------------------------------------------------------
    def _apply_colors(self) -> None:
        self._muted = muted_color(self)
        style_muted_labels(self, self._muted)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "status"):
            self._apply_colors()
            if self._result is not None and self._result.get("ok"):
                QTimer.singleShot(0, lambda: isValid(self) and self._show_report(self._result))


__all__ = ["COLUMNS", "SOURCE_FILTER", "TransferDialog", "match_in_thread", "report_from_dict"]
