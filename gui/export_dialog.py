"""The export dialog: pick a format, a file and a check batch, export the network on a worker thread with
engine.export.export_model, and read the report (checked against PyTorch or not, largest difference, size, time,
notes) or the error in words; or copy the network as standalone PyTorch code.

The worker is a plain thread that gets a snapshot of the project (so later edits cannot race it) and hands back a
plain dict through a queued signal; torch loads on that thread, never on the GUI's.
"""
from __future__ import annotations

import html
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QWidget,
)
from shiboken6 import isValid

from engine.errors import LayerLoomError
from engine.export import ALL_FORMATS, ExportError
from engine.project import Project

from .colors import ERROR_COLOR, OK_COLOR, WARNING_COLOR
from .dialog_parts import busy_bar, dialog_body, emit_quietly, muted_color, status_label, style_muted_labels
from .evaluation_views import section_label
from .palette import blend

# format -> (name, default suffix, one line saying what it is for)
FORMAT_INFO: dict[str, tuple[str, str, str]] = {
    "safetensors": ("Weights (safetensors)", ".safetensors",
                    "the learned weights by layer name: safe to share, loads back into LayerLoom or any PyTorch code"),
    "onnx": ("ONNX", ".onnx", "network and weights for onnxruntime, browsers, phones and other frameworks"),
    "pt2": ("PyTorch program (.pt2)", ".pt2", "torch.export: torch.export.load(path).module() runs it without "
            "this app"),
    "torchscript": ("TorchScript", ".ts", "a traced module for torch.jit.load (older; prefer the .pt2 program)"),
    "python": ("PyTorch code (.py)", ".py", "a standalone script with the network as an nn.Module and a load() for "
               "its weights"),
    "int8": ("int8, quantised", ".int8.ts", "Linear, LSTM and GRU layers in 8-bit integers: smaller and faster on a "
             "CPU; accuracy before and after on your data (.int8.onnx for onnxruntime)"),
}
_KNOWN_SUFFIXES = (".int8.onnx", ".int8.ts", ".safetensors", ".torchscript", ".onnx", ".pt2", ".ts", ".py")


def default_file_name(project_name: str, fmt: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", project_name or "").strip("._") or "model"
    return stem + FORMAT_INFO.get(fmt, ("", "." + fmt, ""))[1]


def with_format_suffix(path: str, fmt: str) -> str:
    """The path with its export suffix changed to the format's (a .int8.onnx name stays one for int8)."""
    if not path.strip():
        return path
    p = Path(path)
    name = p.name
    if fmt == "int8" and name.lower().endswith((".int8.onnx", ".onnx")) and not name.lower().endswith(".int8.ts"):
        stem = name[: -len(".int8.onnx")] if name.lower().endswith(".int8.onnx") else name[: -len(".onnx")]
        return str(p.with_name(stem + ".int8.onnx"))
    stem = name
    for suffix in _KNOWN_SUFFIXES:
        if name.lower().endswith(suffix):
            stem = name[: -len(suffix)]
            break
    return str(p.with_name((stem or "model") + FORMAT_INFO[fmt][1]))


def _export_in_thread(emit: Callable[[dict], None], project: Project, weights: str | None, fmt: str, path: str,
                      batch_size: int, base_dir: str | None) -> None:
    from engine.export import export_model  # torch loads here, on the worker

    result: dict[str, Any] = {"kind": "export", "format": fmt, "path": path, "ok": False, "report": None,
                              "lines": [], "error": "", "details": ""}
    try:
        report = export_model(project, weights, fmt, path, batch_size=batch_size, base_dir=base_dir)
        result.update(ok=True, report=report.to_dict(), lines=report.lines())
    except ExportError as e:
        result.update(error=str(e), details=e.details or "")
        if e.report is not None:
            result.update(report=e.report.to_dict(), lines=e.report.lines())
    except LayerLoomError as e:
        result.update(error=str(e))
    except Exception as e:  # an exporter bug: said in the dialog, never a traceback dialog
        result.update(error=f"the export failed unexpectedly ({type(e).__name__}: {e})")
    emit_quietly(emit, result)


def _code_in_thread(emit: Callable[[dict], None], project: Project) -> None:
    from engine.export import generate_code

    result: dict[str, Any] = {"kind": "code", "ok": False, "code": "", "error": ""}
    try:
        result.update(ok=True, code=generate_code(project))
    except LayerLoomError as e:
        result.update(error=str(e))
    except Exception as e:  # as above
        result.update(error=f"the code could not be generated ({type(e).__name__}: {e})")
    emit_quietly(emit, result)


class ExportDialog(QDialog):
    """Exports `project` (with the weights at `weights_path`, or untrained when None). `base_dir` is the project's
    folder: the default output goes there and int8 reads the project's data from there. `export_done(dict)` carries
    the result: ok, format, path, report (ExportReport.to_dict() or None), lines (the report in words), error and
    details (the exporter's own output). `code_copied(str)` carries the code put on the clipboard."""

    export_done = Signal(dict)
    code_copied = Signal(str)
    _finished = Signal(dict)  # from the worker thread (queued)

    def __init__(self, project: Project, weights_path: str | os.PathLike | None, base_dir: str | os.PathLike | None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ExportDialog")
        self.project = project
        self.base_dir = Path(base_dir) if base_dir else Path.cwd()
        self.weights_path = self._resolve(weights_path)
        self._busy = False
        self._path_edited = False
        self._last: dict[str, Any] | None = None
        self._finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self.setWindowTitle(f"Export {project.name or 'the network'}")
        self.setMinimumWidth(600)
        self._muted = blend(self.palette().color(QPalette.ColorRole.Text),
                            self.palette().color(QPalette.ColorRole.Base), 0.42).name()
        self._build()
        self._apply_colors()
        self._on_format_changed()
        self.resize(640, self.layout().totalHeightForWidth(640))

    def _fit_height(self) -> None:
        """Grow to show wrapped text whole (a layout's size hint leaves height-for-width labels out)."""
        if not isValid(self):
            return
        self.layout().activate()
        need = self.layout().totalHeightForWidth(self.width())
        if need > self.height():
            self.resize(self.width(), need)

    def _resolve(self, weights: str | os.PathLike | None) -> Path | None:
        if weights is None or str(weights) == "":
            return None
        p = Path(weights)
        return p if p.is_absolute() else self.base_dir / p

    # ---- building -------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        body = dialog_body(self, f"Export {self.project.name or 'the network'}")
        self.subtitle = QLabel("Every file is read back and run against the PyTorch network before it is reported "
                               "done; only a file that passes is kept.", self)
        self.subtitle.setWordWrap(True)
        self.subtitle.setProperty("muted", True)
        body.addWidget(self.subtitle)

        body.addWidget(section_label("Format", self))
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(3)
        self.format_group = QButtonGroup(self)
        self.format_buttons: dict[str, QRadioButton] = {}
        for row, fmt in enumerate(ALL_FORMATS):
            name, suffix, what = FORMAT_INFO.get(fmt, (fmt, "." + fmt, ""))
            button = QRadioButton(name, self)
            button.setObjectName(f"format_{fmt}")
            bf = QFont(button.font())
            bf.setBold(True)
            button.setFont(bf)
            button.setToolTip(f"{name}: {what} ({suffix})")
            self.format_group.addButton(button, row)
            self.format_buttons[fmt] = button
            desc = QLabel(what, self)
            desc.setWordWrap(True)
            desc.setProperty("muted", True)
            desc.setBuddy(button)
            grid.addWidget(button, row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(desc, row, 1)
        grid.setColumnStretch(1, 1)
        body.addLayout(grid)
        self.format_buttons["onnx" if "onnx" in self.format_buttons else ALL_FORMATS[0]].setChecked(True)
        self.format_group.idToggled.connect(lambda _id, on: on and self._on_format_changed())

        body.addWidget(section_label("File", self))
        row = QHBoxLayout()
        row.setSpacing(6)
        self.path_edit = QLineEdit(self)
        self.path_edit.setObjectName("exportPath")
        self.path_edit.setPlaceholderText("where to write the file")
        self.path_edit.textEdited.connect(self._on_path_edited)
        row.addWidget(self.path_edit, 1)
        self.browse_button = QPushButton("Browse…", self)
        self.browse_button.clicked.connect(self._on_browse)
        row.addWidget(self.browse_button)
        body.addLayout(row)

        body.addWidget(section_label("Weights", self))
        self.weights_label = QLabel(self)
        self.weights_label.setObjectName("weightsLabel")
        self.weights_label.setWordWrap(True)
        self.weights_label.setTextFormat(Qt.TextFormat.RichText)
        self.weights_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        body.addWidget(self.weights_label)
        batch_row = QHBoxLayout()
        batch_row.setSpacing(8)
        batch_label = QLabel("Check batch", self)
        self.batch_spin = QSpinBox(self)
        self.batch_spin.setObjectName("batchSize")
        self.batch_spin.setRange(1, 4096)
        self.batch_spin.setValue(2)
        tip = ("samples in the random batch the export is traced and checked on; a second batch of another size "
               "proves the batch axis stays free")
        batch_label.setToolTip(tip)
        self.batch_spin.setToolTip(tip)
        batch_label.setBuddy(self.batch_spin)
        batch_row.addWidget(batch_label)
        batch_row.addWidget(self.batch_spin)
        batch_hint = QLabel("samples: the file is checked on this batch and on one of another size", self)
        batch_hint.setProperty("muted", True)
        batch_row.addWidget(batch_hint, 1)
        body.addLayout(batch_row)

        busy_row = QHBoxLayout()
        self.progress = busy_bar(self)
        self.busy_label = QLabel(self)
        self.busy_label.setProperty("muted", True)
        busy_row.addWidget(self.busy_label)
        busy_row.addWidget(self.progress, 1)
        self.busy_label.hide()
        body.addLayout(busy_row)

        self.result_label = QLabel(self)
        self.result_label.setObjectName("exportResult")
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.TextFormat.RichText)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.hide()
        body.addWidget(self.result_label)
        self.details_button = QPushButton("Show the exporter's output", self)
        self.details_button.setCheckable(True)
        self.details_button.setFlat(True)
        self.details_button.toggled.connect(self._on_details_toggled)
        self.details_button.hide()
        body.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.details = QPlainTextEdit(self)
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.details.setMaximumHeight(180)
        self.details.hide()
        body.addWidget(self.details)
        self.status = status_label(self, "exportStatus")
        body.addWidget(self.status)
        body.addStretch(1)

        buttons = QHBoxLayout()
        self.copy_button = QPushButton("Copy PyTorch code", self)
        self.copy_button.setToolTip("put the network as a standalone PyTorch nn.Module on the clipboard")
        self.copy_button.clicked.connect(self.copy_code)
        buttons.addWidget(self.copy_button)
        buttons.addStretch(1)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.reject)
        buttons.addWidget(self.close_button)
        self.export_button = QPushButton("Export", self)
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(lambda: self.export_now())
        buttons.addWidget(self.export_button)
        body.addLayout(buttons)
        self._show_weights()

    def _show_weights(self) -> None:
        esc = html.escape
        w = self.weights_path
        if w is None:
            self.weights_label.setText(f"<span style='color:{WARNING_COLOR}'>▲ <b>Untrained.</b></span> There are "
                                       f"no trained weights yet, so the file gets the network's freshly initialised "
                                       f"weights: it runs, but knows nothing. Train the network first to export "
                                       f"what it learned.")
        elif not w.is_file():
            self.weights_label.setText(f"<span style='color:{ERROR_COLOR}'>✗ <b>The weights file is missing:</b> "
                                       f"{esc(str(w))}</span>")
        else:
            self.weights_label.setText(f"<span style='color:{OK_COLOR}'>✓</span> Trained weights <b>{esc(w.name)}"
                                       f"</b> <span style='color:{self._muted}'>in {esc(str(w.parent))}</span>")

    # ---- public ---------------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def result(self) -> dict[str, Any] | None:
        """The last export's result dict (as export_done carried it)."""
        return self._last

    def current_format(self) -> str:
        for fmt, button in self.format_buttons.items():
            if button.isChecked():
                return fmt
        return ALL_FORMATS[0]

    def set_format(self, fmt: str) -> None:
        self.format_buttons[fmt].setChecked(True)

    def output_path(self) -> str:
        return self.path_edit.text().strip()

    def result_text(self) -> str:
        """The shown result (or error) as plain text."""
        return re.sub(r"<[^>]+>", " ", html.unescape(self.result_label.text())) if not self.result_label.isHidden() \
            else ""

    def export_now(self, fmt: str | None = None, path: str | os.PathLike | None = None) -> bool:
        """Start an export on the worker thread (format and path default to the dialog's); False when one is still
        running or there is no path. The result comes with export_done."""
        if self._busy:
            return False
        if fmt is not None:
            self.set_format(fmt)
        if path is not None:
            self.path_edit.setText(str(path))
            self._path_edited = True
        fmt = self.current_format()
        out = self.output_path()
        if not out:
            self._show_status("Give the file to write first.", ERROR_COLOR)
            return False
        target = Path(os.path.expanduser(out))
        if not target.is_absolute():
            target = self.base_dir / target
        snapshot = self._snapshot()
        if snapshot is None:
            return False
        weights = str(self.weights_path) if self.weights_path is not None else None
        self._set_busy(True, f"Exporting as {FORMAT_INFO.get(fmt, (fmt,))[0]}…")
        self.result_label.hide()
        self.details_button.hide()
        self.details.hide()
        self.status.hide()
        threading.Thread(target=_export_in_thread, name="layerloom-export",
                         args=(self._finished.emit, snapshot, weights, fmt, str(target), self.batch_spin.value(),
                               str(self.base_dir)), daemon=True).start()
        return True

    def copy_code(self) -> bool:
        """Generate the network's PyTorch code on the worker and put it on the clipboard (code_copied follows)."""
        if self._busy:
            return False
        snapshot = self._snapshot()
        if snapshot is None:
            return False
        self._set_busy(True, "Writing the PyTorch code…")
        threading.Thread(target=_code_in_thread, name="layerloom-codegen", args=(self._finished.emit, snapshot),
                         daemon=True).start()
        return True

    def _snapshot(self) -> Project | None:
        """A copy of the project for the worker, which then never reads what the GUI may be editing."""
        try:
            return Project.from_dict(self.project.to_dict())
        except LayerLoomError as e:
            self._show_status(f"<b>The project cannot be exported yet:</b> {html.escape(_sentence(str(e)))}",
                              ERROR_COLOR)
            return None

    # ---- results --------------------------------------------------------------------------------------------------
    def _set_busy(self, busy: bool, text: str = "") -> None:
        self._busy = busy
        self.busy_label.setText(text)
        self.busy_label.setVisible(busy)
        self.progress.setVisible(busy)
        for w in (self.export_button, self.copy_button, self.browse_button, self.path_edit, self.batch_spin,
                  *self.format_buttons.values()):
            w.setEnabled(not busy)
        self.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)
        if not busy:
            self.export_button.setFocus()

    def _on_finished(self, result: dict) -> None:
        if not isValid(self):
            return
        self._set_busy(False)
        if result.get("kind") == "code":
            self._on_code(result)
            return
        self._last = result
        self._show_result(result)
        self.export_done.emit(result)

    def _on_code(self, result: dict) -> None:
        if not result.get("ok"):
            self._show_status(f"<b>No code:</b> {html.escape(_sentence(result.get('error', '')))}", ERROR_COLOR)
            return
        code = result["code"]
        QGuiApplication.clipboard().setText(code)
        cls = re.search(r"^class (\w+)\(nn\.Module\)", code, re.M)
        lines = code.count("\n") + 1
        self._show_status(f"✓ Copied {lines} lines of PyTorch code" + (f" (class {html.escape(cls.group(1))})"
                                                                        if cls else "")
                          + " to the clipboard.", OK_COLOR)
        self.code_copied.emit(code)

    def _show_status(self, text: str, color: str) -> None:
        self.status.setText(f"<span style='color:{color}'>{text}</span>")
        self.status.show()
        QTimer.singleShot(0, self._fit_height)

    def _show_result(self, result: dict) -> None:
        esc = html.escape
        ok = bool(result.get("ok"))
        report = result.get("report") or {}
        color = OK_COLOR if ok else ERROR_COLOR
        if ok:
            head = f"✓ Exported and checked: {esc(Path(report.get('path', result['path'])).name)}"
        else:
            head = "✗ The export failed"
        parts = [f"<div style='font-size:large; font-weight:600; color:{color}'>{head}</div>"]
        if not ok:
            parts.append(f"<div style='margin-top:4px'>{esc(_sentence(result.get('error', '')))}</div>")
        rows = []
        notes = []
        for line in result.get("lines") or []:
            key, _, value = line.partition(":")
            if key.strip() == "note":
                notes.append(value.strip())
            elif key.strip() == "check passed":
                mark = (f"<span style='color:{OK_COLOR}'>✓ yes</span>" if value.strip().startswith("yes") else
                        f"<span style='color:{ERROR_COLOR}'>✗ no</span>")
                rest = value.strip()[3:].strip() if value.strip().startswith("yes") else value.strip()[2:].strip()
                rows.append(("check passed", f"{mark} {esc(rest)}"))
            elif key.strip() != "path":
                rows.append((key.strip(), esc(value.strip())))
        if rows:
            cells = "".join(f"<tr><td style='color:{self._muted}; padding-right:14px'>{esc(k)}</td><td>{v}</td></tr>"
                            for k, v in rows)
            parts.append(f"<table cellspacing='0' cellpadding='2' style='margin-top:6px'>{cells}</table>")
        if ok and report.get("path"):
            parts.append(f"<div style='color:{self._muted}; margin-top:4px'>{esc(report['path'])}</div>")
        if notes and ok:
            parts.append("".join(f"<div style='margin-top:4px'>• {esc(_sentence(n))}</div>" for n in notes))
        bg = blend(self.palette().color(QPalette.ColorRole.Base), QColor(color), 0.10).name()
        self.result_label.setStyleSheet(f"QLabel#exportResult {{ background: {bg}; border-left: 3px solid {color};"
                                        f" padding: 8px 10px; }}")
        self.result_label.setText("".join(parts))
        self.result_label.show()
        details = (result.get("details") or "").strip()
        self.details.setPlainText(details)
        self.details_button.setVisible(bool(details))
        self.details_button.setChecked(False)
        self.details.hide()
        QTimer.singleShot(0, self._fit_height)

    # ---- handlers -------------------------------------------------------------------------------------------------
    def _on_format_changed(self) -> None:
        fmt = self.current_format()
        current = self.output_path()
        if not current or not self._path_edited:
            self.path_edit.setText(str(self.base_dir / default_file_name(self.project.name, fmt)))
        else:
            self.path_edit.setText(with_format_suffix(current, fmt))
        self.export_button.setText(f"Export {FORMAT_INFO.get(fmt, (fmt,))[0].split(' (')[0]}")

    def _on_path_edited(self, _text: str) -> None:
        self._path_edited = True

    def _on_browse(self) -> None:
        fmt = self.current_format()
        name, suffix, _ = FORMAT_INFO.get(fmt, (fmt, "." + fmt, ""))
        chosen, _ = QFileDialog.getSaveFileName(self, f"Export as {name}", self.output_path() or str(self.base_dir),
                                                f"{name} (*{suffix});;All files (*)")
        if chosen:
            self.path_edit.setText(chosen)
            self._path_edited = True

    def _on_details_toggled(self, on: bool) -> None:
        self.details.setVisible(on)
        self.details_button.setText("Hide the exporter's output" if on else "Show the exporter's output")
        QTimer.singleShot(0, self._fit_height)

    # ---- colours --------------------------------------------------------------------------------------------------
    def _apply_colors(self) -> None:
        self._muted = muted_color(self)
        style_muted_labels(self, self._muted)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "status"):
            self._apply_colors()
            self._show_weights()
            if self._last is not None:
                self._show_result(self._last)


def _sentence(text: str) -> str:
    text = str(text).strip()
    if not text:
        return ""
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


__all__ = ["ExportDialog", "FORMAT_INFO", "default_file_name", "with_format_suffix"]
