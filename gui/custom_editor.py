"""The editor of a custom layer (a "Custom" node): its Python code in a monospace editor with line numbers and a
small highlighter, the class name, the arguments (a name / value table), an Apply button (Ctrl+Enter) and the
node's error under it, with the offending line marked in the code.

The widget reads and writes plain parameters ({"code", "class_name", "arguments"}); the inspector commits them
through the document as one undo step (`push_params`).
"""
from __future__ import annotations

import keyword
import re
from typing import Any

from PySide6.QtCore import QRect, QRegularExpression, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QKeySequence,
    QPainter,
    QPalette,
    QShortcut,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from engine.errors import ParamError

from .colors import ERROR_COLOR
from .commands import SetParamsCommand

_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?\d+[eE][+-]?\d+")


# ---- committing ------------------------------------------------------------------------------------------------
class _ApplyCommand(SetParamsCommand):
    """A SetParamsCommand that never merges with the one before it: each Apply is its own undo step."""

    def id(self) -> int:  # noqa: A003 - Qt's name
        return -1


def push_params(doc, node_id: str, values: dict[str, Any], *, merge: bool = True, text: str = "") -> bool:
    """Validate `values` for a node (ParamError, nothing changed) and push them as one undo step; also takes a
    block's exposed names and a custom layer's arguments (virtual names). False when nothing would change."""
    node = doc.graph.node(node_id)
    checked = node.spec.validate_params(dict(values), base=node.params)
    if checked == node.params:
        return False
    cls = SetParamsCommand if merge else _ApplyCommand
    cmd = cls(doc.graph, node_id, dict(values))
    if text:
        cmd.setText(text)
    doc.push(cmd)
    return True


# ---- arguments: text ↔ value ---------------------------------------------------------------------------------
def format_argument(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse_argument(name: str, text: str) -> Any:
    """What was typed in the value column: true/false, a whole number, a number, else text (quotes optional)."""
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    if _INT_RE.fullmatch(t):
        return int(t)
    if _FLOAT_RE.fullmatch(t):
        return float(t)
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    if not t:
        raise ParamError(f"Custom: argument {name} needs a value (a number, true/false or text)", f"arguments.{name}")
    return t


# ---- highlighting --------------------------------------------------------------------------------------------
class PythonHighlighter(QSyntaxHighlighter):
    """Keywords, built-in names, numbers, strings and comments; triple-quoted strings across lines."""

    def __init__(self, document, dark: bool = False):
        super().__init__(document)
        colours = {"keyword": "#c678dd" if dark else "#8b2fc9", "builtin": "#56b6c2" if dark else "#0e7c86",
                   "number": "#d19a66" if dark else "#b35900", "string": "#98c379" if dark else "#2e7d32",
                   "comment": "#7f848e" if dark else "#7a7a7a", "def": "#61afef" if dark else "#1f5fbf"}
        self.formats: dict[str, QTextCharFormat] = {}
        for key, colour in colours.items():
            f = QTextCharFormat()
            f.setForeground(QColor(colour))
            if key in ("keyword", "def"):
                f.setFontWeight(QFont.Weight.Bold)
            if key == "comment":
                f.setFontItalic(True)
            self.formats[key] = f
        words = "|".join(keyword.kwlist)
        self.rules = [
            (QRegularExpression(rf"\b(?:{words})\b"), "keyword"),
            (QRegularExpression(r"\b(?:self|super|torch|nn|F|math|print|len|range|int|float|tuple|list)\b"),
             "builtin"),
            (QRegularExpression(r"\b(?:def|class)\s+(\w+)"), "def"),
            (QRegularExpression(r"\b[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?\b"), "number"),
            (QRegularExpression(r"'[^'\\]*(?:\\.[^'\\]*)*'|\"[^\"\\]*(?:\\.[^\"\\]*)*\""), "string"),
            (QRegularExpression(r"#[^\n]*"), "comment"),
        ]
        self.triple = QRegularExpression(r'"""|' + r"'''")

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        for rx, key in self.rules:
            it = rx.globalMatch(text)
            while it.hasNext():
                m = it.next()
                group = 1 if key == "def" else 0
                self.setFormat(m.capturedStart(group), m.capturedLength(group), self.formats[key])
        # triple-quoted strings (docstrings), which may span lines: block state 1 = inside one
        self.setCurrentBlockState(0)
        start = 0 if self.previousBlockState() == 1 else -1
        pos = 0
        if start < 0:
            m = self.triple.match(text, 0)
            start = m.capturedStart() if m.hasMatch() else -1
            pos = start + 3 if start >= 0 else 0
        while start >= 0:
            m = self.triple.match(text, pos)
            if m.hasMatch():
                end = m.capturedEnd()
                self.setFormat(start, end - start, self.formats["string"])
                n = self.triple.match(text, end)
                start = n.capturedStart() if n.hasMatch() else -1
                pos = start + 3
            else:
                self.setCurrentBlockState(1)
                self.setFormat(start, len(text) - start, self.formats["string"])
                break


# ---- the code editor -----------------------------------------------------------------------------------------
class _LineNumbers(QWidget):
    def __init__(self, editor: "CodeEditor"):
        super().__init__(editor)
        self.editor = editor

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self.editor.gutter_width(), 0)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.editor.paint_gutter(event)


class CodeEditor(QPlainTextEdit):
    """A plain-text editor for Python: monospace, 4-space tabs, line numbers, an error line marked in red.
    `apply_requested` on Ctrl+Enter."""

    apply_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("customCode")
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * 4)
        dark = self.palette().color(QPalette.ColorRole.Base).lightness() < 128
        self.highlighter = PythonHighlighter(self.document(), dark)
        self.error_line: int | None = None
        self.gutter = _LineNumbers(self)
        self.blockCountChanged.connect(lambda *_: self._update_margins())
        self.updateRequest.connect(self._scroll_gutter)
        self._update_margins()
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            sc = QShortcut(QKeySequence(keys), self)
            sc.setContext(Qt.ShortcutContext.WidgetShortcut)
            sc.activated.connect(self.apply_requested)

    # line numbers
    def gutter_width(self) -> int:
        digits = len(str(max(1, self.blockCount())))
        return 10 + self.fontMetrics().horizontalAdvance("9") * max(2, digits)

    def _update_margins(self) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _scroll_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self.gutter.scroll(0, dy)
        else:
            self.gutter.update(0, rect.y(), self.gutter.width(), rect.height())

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        cr = self.contentsRect()
        self.gutter.setGeometry(QRect(cr.left(), cr.top(), self.gutter_width(), cr.height()))

    def paint_gutter(self, event) -> None:
        painter = QPainter(self.gutter)
        pal = self.palette()
        painter.fillRect(event.rect(), pal.color(QPalette.ColorRole.AlternateBase))
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        muted = pal.color(QPalette.ColorRole.PlaceholderText)
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                bad = self.error_line == number + 1
                painter.setPen(QColor(ERROR_COLOR) if bad else muted)
                painter.drawText(0, top, self.gutter.width() - 5, self.fontMetrics().height(),
                                 Qt.AlignmentFlag.AlignRight, str(number + 1))
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()

    # the error line
    def mark_line(self, line: int | None) -> None:
        """Mark line `line` (1-based) as the one in error, or clear the mark (None)."""
        self.error_line = line if line and 1 <= line <= self.blockCount() else None
        selections = []
        if self.error_line is not None:
            sel = QTextEdit.ExtraSelection()
            colour = QColor(ERROR_COLOR)
            colour.setAlpha(60)
            sel.format.setBackground(colour)
            sel.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            cursor = QTextCursor(self.document().findBlockByNumber(self.error_line - 1))
            sel.cursor = cursor
            selections.append(sel)
        self.setExtraSelections(selections)
        self.gutter.update()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Tab and not event.modifiers():
            self.insertPlainText("    ")
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not event.modifiers():
            line = self.textCursor().block().text()
            indent = line[:len(line) - len(line.lstrip(" "))]
            if line.rstrip().endswith(":"):
                indent += "    "
            super().keyPressEvent(event)
            self.insertPlainText(indent)
            return
        super().keyPressEvent(event)


# ---- the whole section ---------------------------------------------------------------------------------------
class CustomLayerEditor(QWidget):
    """Code, class name, arguments, Apply and the error. `apply_requested` when the user applies; `values()`
    reads what is typed ({"code", "class_name", "arguments"}; ParamError for an argument it cannot read)."""

    apply_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("customLayerEditor")
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(6)

        row = QHBoxLayout()
        row.addWidget(QLabel("Class", self))
        self.class_edit = QLineEdit(self)
        self.class_edit.setObjectName("customClassName")
        self.class_edit.setToolTip("the name of the nn.Module class in the code that this layer uses")
        row.addWidget(self.class_edit, 1)
        col.addLayout(row)

        self.code = CodeEditor(self)
        self.code.setMinimumHeight(self.code.fontMetrics().height() * 14)
        self.code.setToolTip("a class deriving from nn.Module; torch, nn, F (torch.nn.functional) and math are "
                             "at hand. Ctrl+Enter applies it.")
        self.code.apply_requested.connect(self.apply_requested)
        col.addWidget(self.code)

        self.error = QLabel(self)
        self.error.setObjectName("customError")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error.hide()
        col.addWidget(self.error)

        args_head = QHBoxLayout()
        args_head.addWidget(QLabel("Arguments", self), 1)
        add = QPushButton("+", self)
        add.setToolTip("add an argument (a keyword argument of the class's __init__)")
        add.setFixedWidth(28)
        add.clicked.connect(self.add_argument_row)
        remove = QPushButton("−", self)
        remove.setToolTip("remove the selected argument")
        remove.setFixedWidth(28)
        remove.clicked.connect(self._remove_row)
        args_head.addWidget(add)
        args_head.addWidget(remove)
        col.addLayout(args_head)
        self.args = QTableWidget(0, 2, self)
        self.args.setObjectName("customArguments")
        self.args.setHorizontalHeaderLabels(["name", "value"])
        self.args.verticalHeader().hide()
        self.args.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.args.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.args.setToolTip("keyword arguments of the class: a whole number, a number, true/false or text")
        col.addWidget(self.args)

        buttons = QHBoxLayout()
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        buttons.addWidget(self.status, 1)
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.setObjectName("customApply")
        self.apply_button.setToolTip("use this code for the layer (Ctrl+Enter); one step in the undo history")
        self.apply_button.clicked.connect(self.apply_requested)
        buttons.addWidget(self.apply_button)
        col.addLayout(buttons)
        self._fit_table()

    # ---- values ----------------------------------------------------------------------------------------------
    def set_values(self, params: dict[str, Any]) -> None:
        """Show a node's parameters (replacing what is typed)."""
        if self.code.toPlainText() != params.get("code", ""):
            self.code.setPlainText(params.get("code", ""))
        self.class_edit.setText(params.get("class_name", ""))
        self.args.setRowCount(0)
        for name, value in params.get("arguments", {}).items():
            self.add_argument_row(name, format_argument(value))
        self._fit_table()

    def values(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        for r in range(self.args.rowCount()):
            name_item, value_item = self.args.item(r, 0), self.args.item(r, 1)
            name = name_item.text().strip() if name_item else ""
            text = value_item.text() if value_item else ""
            if not name and not text.strip():
                continue
            if not name:
                raise ParamError(f"Custom: the argument in row {r + 1} needs a name", "arguments")
            if name in arguments:
                raise ParamError(f"Custom: the argument {name} is listed twice; remove one row", "arguments")
            arguments[name] = parse_argument(name, text)
        return {"code": self.code.toPlainText(), "class_name": self.class_edit.text().strip(),
                "arguments": arguments}

    def add_argument_row(self, name: str = "", value: str = "") -> None:
        r = self.args.rowCount()
        self.args.insertRow(r)
        self.args.setItem(r, 0, QTableWidgetItem(name if isinstance(name, str) else ""))
        self.args.setItem(r, 1, QTableWidgetItem(value))
        self._fit_table()

    def _remove_row(self) -> None:
        rows = sorted({i.row() for i in self.args.selectedIndexes()}, reverse=True)
        for r in rows or ([self.args.rowCount() - 1] if self.args.rowCount() else []):
            self.args.removeRow(r)
        self._fit_table()

    def _fit_table(self) -> None:
        h = self.args.horizontalHeader().height() + 4
        h += sum(self.args.rowHeight(r) for r in range(self.args.rowCount())) or self.args.fontMetrics().height()
        self.args.setFixedHeight(h + 2)

    # ---- the error -----------------------------------------------------------------------------------------
    def show_error(self, message: str, line: int | None = None) -> None:
        """The node's error under the code ("" clears it) and its line marked in the code."""
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.code.mark_line(line if message else None)

    def error_text(self) -> str:
        return "" if self.error.isHidden() else self.error.text()
