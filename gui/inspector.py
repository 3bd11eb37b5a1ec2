"""The inspector: the selected node's shapes and cost, one editor per parameter generated from its LayerSpec, and
the layer's explanation. Every commit goes through Document.set_params (one undo step); a refused value is shown
in red under its editor and changes nothing.

Editors mirror the graph: an undo, a redo or any other change of the node's parameters rewrites them with their
signals blocked, so writing back never echoes a second edit.
"""
from __future__ import annotations

import html
import re
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QAction, QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from engine.blocks import block_parameters, exposed_values
from engine.custom import code_hash, is_trusted, trust
from engine.errors import GraphError, LayerLoomError, ParamError
from engine.graph import MAX_LR_FACTOR
from engine.layers import fmt
from engine.params import BOOL, CHOICE, FLOAT, FLOATS, INT, INT_TUPLE, INTS, PADDING, Param
from engine.units import format_bytes, format_count

from .colors import ERROR_COLOR, WARNING_COLOR, category_color
from .custom_editor import CustomLayerEditor, push_params
from .dialog_parts import section_heading, style_muted_labels
from .palette import blend, category_icon, ports_text, spec_html

_INT_MIN, _INT_MAX = -(2**31) + 1, 2**31 - 1
_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SEPARATORS = re.compile(r"[\s,;]+")

EMPTY_HINT = ("Select a layer to edit it; drag layers from the palette onto the canvas, then wire them together. "
              "Each layer's shape, size and cost show up here.")
HOVER_HINT = "Point at or click into a parameter to see what changing it does."
SEARCH_ACTION_TEXT = "Add to the search"
SEARCHABLE_KINDS = (INT, FLOAT, CHOICE, BOOL)  # the editors whose right-click menu offers SEARCH_ACTION_TEXT


# ---- text ↔ value ---------------------------------------------------------------------------------------------
def _format_float(v: float) -> str:
    return repr(float(v))  # the shortest text that reads back the same: 1e-05, 0.1, 2.0


def format_value(param: Param, value: Any) -> str:
    """A parameter value as the inspector writes it in a line edit ("" for not set)."""
    if value is None:
        return ""
    if param.kind in (FLOAT,):
        return _format_float(value)
    if isinstance(value, (list, tuple)):
        items = [_format_float(v) if param.kind == FLOATS else str(v) for v in value]
        return ", ".join(items)
    return str(value)


def _tokens(text: str) -> list[str]:
    inner = text.strip()
    while len(inner) >= 2 and inner[0] in "([{" and inner[-1] in ")]}":
        inner = inner[1:-1].strip()
    return [t for t in _SEPARATORS.split(inner) if t]


def parse_value(owner: str, param: Param, text: str) -> Any:
    """Read what someone typed: "3", "3, 3", "(1, 28, 28)", "same", "1e-5"; "" is None for an optional
    parameter. Raises ParamError worded like the engine's; the engine then checks the range."""
    text = text.strip()
    if not text:
        if param.optional:
            return None
        raise ParamError(f"{owner}: {param.name} needs a value", param.name)
    kind = param.kind
    if kind == PADDING and text.lower() in ("same", "valid"):
        return text.lower()
    tokens = _tokens(text)
    if kind in (FLOAT, FLOATS):
        bad = next((t for t in tokens if not _FLOAT_RE.fullmatch(t)), None)
        if bad is not None or not tokens:
            raise ParamError(f"{owner}: {param.name} must be a number such as 0.001 or 1e-5, not {text!r}",
                             param.name)
        if kind == FLOAT:
            if len(tokens) != 1:
                raise ParamError(f"{owner}: {param.name} is one number, not {text!r}", param.name)
            return float(tokens[0])
        return [float(t) for t in tokens]
    bad = next((t for t in tokens if not _INT_RE.fullmatch(t)), None)
    if bad is not None or not tokens:
        example = {INTS: "1, 28, 28", INT_TUPLE: "3 or 3, 3", PADDING: "1, 'same' or 'valid'"}.get(kind, "3")
        raise ParamError(f"{owner}: {param.name} takes whole numbers (like {example}), not {text!r}", param.name)
    values = [int(t) for t in tokens]
    if kind == INT:
        if len(values) != 1:
            raise ParamError(f"{owner}: {param.name} is one whole number, not {text!r}", param.name)
        return values[0]
    if kind in (INT_TUPLE, PADDING) and len(values) == 1:
        return values[0]
    return values


def _format_hint(param: Param) -> str:
    n = param.length or 2
    return {
        INTS: "whole numbers separated by commas, e.g. 1, 28, 28",
        FLOATS: "numbers separated by commas, e.g. 0.5, 0.5",
        INT_TUPLE: f"one whole number for every side, or {n} of them, e.g. 3 or " + ", ".join(["3"] * n),
        PADDING: f"a whole number, {n} of them, 'same' (keep the size) or 'valid' (no padding)",
        FLOAT: "a number; scientific notation such as 1e-5 works",
    }.get(param.kind, "")


def param_tooltip(param: Param) -> str:
    esc = html.escape
    lines = [f"<b>{esc(param.name)}</b>" + (f" — {esc(param.doc)}" if param.doc else "")]
    rng = param.describe_range()
    if rng:
        lines.append(f"Allowed: {esc(rng)}")
    how = _format_hint(param)
    if how:
        lines.append(f"Type {esc(how)}")
    default = "not set" if param.default is None else format_value(param, param.default)
    lines.append(f"Default: {esc(default)}" + ("; leave empty for not set" if param.optional else ""))
    if param.effect:
        lines.append(f"<i>{esc(param.effect[:1].upper() + param.effect[1:])}</i>")
    return "<br>".join(lines)


# ---- one editor ---------------------------------------------------------------------------------------------
def narrow_combo(combo: QComboBox, chars: int = 12) -> QComboBox:
    """A combo box that may become narrower than its longest choice (elided; the open list shows it whole), so a
    narrow dock never needs to scroll sideways for it."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return combo


def param_editor(param: Param, parent: QWidget, name: str, watcher: QObject, commit, *,
                 spin_ints: bool = True, label=None) -> tuple[QWidget, QLabel]:
    """The editor for one parameter (check box, combo box, spin box or text field with a hint), its tooltip and
    a hidden red error line under it; `commit()` runs once per finished edit (Enter, focus change, a toggle).
    `watcher` filters the editor's events (wheel over an unfocused editor scrolls the form); `label(choice)`
    names a combo box's choices."""
    kind = param.kind
    if kind == BOOL:
        w: QWidget = QCheckBox(parent)
    elif kind == CHOICE:
        w = QComboBox(parent)
        narrow_combo(w)
        for c in param.choices:
            w.addItem(label(c) if label else c, c)
    elif kind == INT and not param.optional and spin_ints:
        w = QSpinBox(parent)
        w.setRange(int(param.min) if param.min is not None else _INT_MIN,
                   int(param.max) if param.max is not None else _INT_MAX)
        w.setKeyboardTracking(False)  # one commit per Enter / focus change / arrow step, not per keystroke
        w.setAccelerated(True)
    else:
        w = QLineEdit(parent)
        if param.optional:
            w.setPlaceholderText("not set")
        elif kind == "path":
            w.setPlaceholderText("choose a file…")
        elif kind == FLOAT:
            w.setPlaceholderText("a number, e.g. 0.001 or 1e-5")
        else:
            w.setPlaceholderText(_format_hint(param))
    w.setObjectName(name)
    w.setToolTip(param_tooltip(param))
    w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a wheel over the form scrolls it, never edits a value
    w.installEventFilter(watcher)
    error = QLabel(parent)
    error.setWordWrap(True)
    error.setStyleSheet(f"color: {ERROR_COLOR};")
    error.hide()
    done = lambda *_: commit()
    if isinstance(w, QCheckBox):
        w.toggled.connect(done)
    elif isinstance(w, QComboBox):
        w.currentIndexChanged.connect(done)
    elif isinstance(w, QSpinBox):
        w.valueChanged.connect(done)
    else:
        w.editingFinished.connect(done)
    return w, error


def add_search_action(widget: QWidget, action: QAction) -> None:
    """Offer `action` ("Add to the search") at the end of an editor's right-click menu, after a text field's usual
    Undo / Cut / Copy / Paste entries."""
    widget.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def show(pos) -> None:
        if isinstance(widget, QLineEdit):
            menu = widget.createStandardContextMenu()
        elif isinstance(widget, QSpinBox):
            menu = widget.lineEdit().createStandardContextMenu()
        else:
            menu = QMenu(widget)
        if menu.actions():
            menu.addSeparator()
        menu.addAction(action)
        menu.exec(widget.mapToGlobal(pos))
        menu.deleteLater()

    widget.customContextMenuRequested.connect(show)


def write_widget(widget: QWidget, value: Any, text: str) -> None:
    """Show `value` in an editor without emitting its change signals (`text` for the text fields): views write
    back what the model holds without echoing it as a new edit."""
    was = widget.blockSignals(True)
    try:
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QComboBox):
            widget.setCurrentIndex(max(0, widget.findData(value)))
        elif isinstance(widget, QSpinBox):
            widget.setValue(int(value))
        else:
            widget.setText(text)
            widget.setCursorPosition(0)
    finally:
        widget.blockSignals(was)


def scrolling_page(owner: QWidget, name: str, margins: tuple[int, int, int, int]) -> tuple[QWidget, QVBoxLayout]:
    """A vertically scrolling page filling `owner` (a form or a report in a dock): the page and its layout."""
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    owner.scroll = QScrollArea(owner)
    owner.scroll.setWidgetResizable(True)
    owner.scroll.setFrameShape(QFrame.Shape.NoFrame)
    # A narrow dock scrolls sideways rather than cutting off what does not fit (a row of preview images).
    owner.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    outer.addWidget(owner.scroll)
    page = QWidget()
    page.setObjectName(name)
    owner.scroll.setWidget(page)
    body = QVBoxLayout(page)
    body.setContentsMargins(*margins)
    body.setSpacing(6)
    return page, body


class _Editor:
    """One parameter's widget and its red error line; reads and writes values, never the document."""

    def __init__(self, param: Param, node_id: str, widget: QWidget, error: QLabel):
        self.param, self.node_id, self.widget, self.error = param, node_id, widget, error

    def write(self, value: Any) -> None:
        write_widget(self.widget, value, format_value(self.param, value))

    def read(self, owner: str) -> Any:
        w = self.widget
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentData()
        if isinstance(w, QSpinBox):
            return w.value()
        return parse_value(owner, self.param, w.text())

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.widget.setProperty("invalid", bool(message))
        self.widget.setStyleSheet(f"border: 1px solid {ERROR_COLOR}; border-radius: 3px;"
                                  if message and isinstance(self.widget, QLineEdit) else "")


def node_value(node, name: str) -> Any:
    """A parameter's value as the inspector shows it: a block's exposed name reads its first inner target, a custom
    layer's argument reads its "arguments"."""
    if node.type == "Block" and name not in node.params:
        return exposed_values(node.params).get(name)
    if node.type == "Custom" and name not in node.params:
        return node.params.get("arguments", {}).get(name)
    return node.params.get(name)


UNTRUSTED_TEXT = ("This code has not been run: it came with the project and has not been trusted on this computer. "
                  "Read it first; Trust runs it (code can do anything your account can).")


# ---- the widget ---------------------------------------------------------------------------------------------
class InspectorWidget(QWidget):
    """Edits the selected node of a Document. `message(str)` carries status-bar text (what changed, or why a
    value was refused)."""

    message = Signal(str)
    search_requested = Signal(str)  # a search target ("node:linear_1.out_features") to add to the search

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("InspectorWidget")
        self._doc = None
        self._node_id: str | None = None
        self._editors: dict[str, _Editor] = {}
        self._by_widget: dict[QObject, str] = {}
        self._focused: str | None = None
        self._custom: CustomLayerEditor | None = None  # the code editor of a Custom node
        self._trust_row: QWidget | None = None
        self._block_summary: QLabel | None = None  # the inner layers of a Block node

        self.stack = QStackedWidget(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        # page 0: nothing selected
        self.empty = QLabel(self)
        self.empty.setObjectName("inspectorEmpty")
        self.empty.setWordWrap(True)
        self.empty.setTextFormat(Qt.TextFormat.RichText)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.empty)

        # page 1: a node
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        page = QWidget()
        page.setObjectName("inspectorPage")
        self.scroll.setWidget(page)
        self.stack.addWidget(self.scroll)
        body = QVBoxLayout(page)
        body.setContentsMargins(12, 12, 12, 12)
        body.setSpacing(8)

        head = QHBoxLayout()
        head.setSpacing(10)
        self.icon = QLabel(page)
        self.icon.setFixedSize(32, 32)
        head.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        titles = QVBoxLayout()
        titles.setSpacing(1)
        self.title = QLabel(page)
        self.title.setObjectName("inspectorTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        title_font = QFont(self.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.3)
        title_font.setBold(True)
        self.title.setFont(title_font)
        self.subtitle = QLabel(page)
        self.subtitle.setTextFormat(Qt.TextFormat.RichText)
        self.subtitle.setWordWrap(True)  # a narrow dock wraps it instead of widening the page past the view
        titles.addWidget(self.title)
        titles.addWidget(self.subtitle)
        head.addLayout(titles, 1)
        body.addLayout(head)

        self.stats = QWidget(page)
        grid = QGridLayout(self.stats)
        grid.setContentsMargins(0, 4, 0, 0)
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(3)
        self._stat_values: dict[str, QLabel] = {}
        for row, (key, label, tip) in enumerate((
                ("input", "Input", "the shape of one sample coming in (batch dimension left out)"),
                ("output", "Output", "the shape of one sample going out (batch dimension left out)"),
                ("params", "Parameters", "learned weights and biases of this layer"),
                ("macs", "MACs", "multiply-accumulate operations for one sample"),
                ("memory", "Memory", "bytes of this layer's output for one sample"))):
            name = QLabel(label, self.stats)
            name.setProperty("muted", True)
            name.setToolTip(tip)
            value = QLabel(self.stats)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setToolTip(tip)
            grid.addWidget(name, row, 0)
            grid.addWidget(value, row, 1)
            self._stat_values[key] = value
        grid.setColumnStretch(1, 1)
        body.addWidget(self.stats)

        self.problem = QLabel(page)
        self.problem.setObjectName("inspectorProblem")
        self.problem.setWordWrap(True)
        self.problem.setTextFormat(Qt.TextFormat.RichText)
        self.problem.hide()
        body.addWidget(self.problem)

        self.params_title = section_heading("Parameters", page)
        body.addWidget(self.params_title)
        self.form_host = QWidget(page)
        self.form_host_layout = QVBoxLayout(self.form_host)
        self.form_host_layout.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.form_host)
        self.no_params = QLabel("This layer has no parameters to set.", page)
        self.no_params.setProperty("muted", True)
        body.addWidget(self.no_params)

        self.hint = QLabel(HOVER_HINT, page)
        self.hint.setObjectName("inspectorHint")
        self.hint.setWordWrap(True)
        self.hint.setTextFormat(Qt.TextFormat.RichText)
        self.hint.setMinimumHeight(self.fontMetrics().height() * 2 + 14)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        body.addWidget(self.hint)

        self._build_training(page, body)

        self.about_title = section_heading("About", page)
        body.addWidget(self.about_title)
        self.about = QLabel(page)
        self.about.setObjectName("inspectorAbout")
        self.about.setWordWrap(True)
        self.about.setTextFormat(Qt.TextFormat.RichText)
        self.about.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.about.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.about.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        body.addWidget(self.about)
        body.addStretch(1)

        self._apply_colors()
        self.stack.setCurrentWidget(self.empty)

    # ---- public --------------------------------------------------------------------------------------------
    @property
    def document(self):
        return self._doc

    @property
    def node_id(self) -> str | None:
        return self._node_id

    def editor(self, name: str) -> QWidget:
        """The editor widget of a parameter of the shown node (for the main window's focus and for tests)."""
        return self._editors[name].widget

    def editors(self) -> dict[str, QWidget]:
        return {name: e.widget for name, e in self._editors.items()}

    def search_action(self, name: str) -> QAction | None:
        """The "Add to the search" entry of a parameter's right-click menu (None for a parameter a search cannot
        vary, such as a list of numbers)."""
        return getattr(self._editors[name], "search_action", None)

    def error_text(self, name: str) -> str:
        """The refusal shown under a parameter's editor ("" when none)."""
        e = self._editors[name].error
        return "" if e.isHidden() else e.text()

    def set_document(self, doc) -> None:
        """Follow another document (or none): listen to its analyses and its graph's parameter changes."""
        if doc is self._doc:
            return
        if self._doc is not None:
            self._doc.analyzed.disconnect(self._on_analyzed)
            self._doc.graph.events.disconnect("params_changed", self._on_params_changed)
            self._doc.graph.events.disconnect("node_removed", self._on_node_removed)
        self._doc = doc
        if doc is not None:
            doc.analyzed.connect(self._on_analyzed)
            doc.graph.events.connect("params_changed", self._on_params_changed)
            doc.graph.events.connect("node_removed", self._on_node_removed)
        self.show_node(None)

    def show_node(self, node_id: str | None) -> None:
        """Show a node of the document, or the friendly empty page for None (or an id no longer there)."""
        node = self._doc.node_or_none(node_id) if (self._doc is not None and node_id is not None) else None
        if node is None:
            self._node_id = None
            self._clear_form()
            self.stack.setCurrentWidget(self.empty)
            return
        same = node_id == self._node_id
        self._node_id = node_id
        if not same:
            self._build(node)
        self._refresh_values()
        self._refresh_analysis()
        if not same:
            self._show_training_error("")
        self._refresh_training()
        self.stack.setCurrentWidget(self.scroll)

    # ---- building --------------------------------------------------------------------------------------------
    def _clear_form(self) -> None:
        for e in self._editors.values():
            e.widget.removeEventFilter(self)
            e.widget.blockSignals(True)  # hiding a focused editor must not commit into a node that may be gone
        self._editors.clear()
        self._by_widget.clear()
        self._focused = None
        if self._custom is not None:
            self._custom.blockSignals(True)
        self._custom = self._trust_row = self._block_summary = None
        while self.form_host_layout.count():
            item = self.form_host_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()
                item.widget().deleteLater()

    def _build(self, node) -> None:
        self._clear_form()
        spec = node.spec
        pix = category_icon(spec.category).pixmap(QSize(32, 32), self.devicePixelRatioF())
        self.icon.setPixmap(pix)
        self.title.setText(node.id)
        self.title.setToolTip(f"node id {node.id}: the name of this layer in the model and in exported code")
        accent = category_color(spec.category)
        self.subtitle.setText(f"<span style='color:{accent}; font-weight:600'>{html.escape(spec.type)}</span>"
                              f"<span style='color:{self._muted}'> · {html.escape(spec.category)} · "
                              f"{html.escape(ports_text(spec).lower())}</span>")
        self.about_title.setText(f"ABOUT {spec.type.upper()}")
        self.about.setText(spec_html(spec, self.palette(), title=False, drag_hint=False))
        form_widget = QWidget(self.form_host)
        form = QFormLayout(form_widget)
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(6)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for param in spec.params:
            editor = self._make_editor(param, node.id, form_widget)
            self._add_editor_row(form, form_widget, param.name, editor, param_tooltip(param))
        self.form_host_layout.addWidget(form_widget)
        form_widget.show()  # now, not on the layout's queued show: a grab or a test right after must see it
        self.params_title.setVisible(bool(spec.params))
        self.no_params.setVisible(not spec.params)
        self.hint.setVisible(bool(spec.params))
        if node.type == "Custom":
            self._build_custom(node)
        elif node.type == "Block":
            self._build_block(node, form, form_widget)
        self._set_hint(None)

    # ---- custom layers and blocks ----------------------------------------------------------------------------
    def custom_editor(self) -> CustomLayerEditor | None:
        """The code editor of the shown Custom node (None for other nodes)."""
        return self._custom

    def block_summary_text(self) -> str:
        """The read-only summary of the shown block's inner layers ("" for other nodes)."""
        return self._block_summary.text() if self._block_summary is not None else ""

    def _build_custom(self, node) -> None:
        self.params_title.setVisible(True)
        self.no_params.hide()
        host = QWidget(self.form_host)
        col = QVBoxLayout(host)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(6)
        self._trust_row = QWidget(host)
        row = QHBoxLayout(self._trust_row)
        row.setContentsMargins(0, 0, 0, 0)
        note = QLabel(UNTRUSTED_TEXT, self._trust_row)
        note.setWordWrap(True)
        note.setStyleSheet(f"color: {WARNING_COLOR};")
        row.addWidget(note, 1)
        trust_button = QPushButton("Trust", self._trust_row)
        trust_button.setObjectName("customTrust")
        trust_button.setToolTip("run this code on this computer from now on (remembered for this exact code)")
        trust_button.clicked.connect(self._trust_custom)
        row.addWidget(trust_button, 0, Qt.AlignmentFlag.AlignTop)
        col.addWidget(self._trust_row)
        self._custom = CustomLayerEditor(host)
        self._custom.apply_requested.connect(self._apply_custom)
        col.addWidget(self._custom)
        self.form_host_layout.addWidget(host)
        host.show()

    def _trust_custom(self) -> None:
        doc, nid = self._doc, self._node_id
        node = doc.node_or_none(nid) if doc is not None and nid else None
        if node is None or node.type != "Custom":
            return
        try:
            trust(code_hash(node.params["code"]))
        except LayerLoomError as e:  # the trust file cannot be written
            self.message.emit(str(e))
            return
        self.message.emit(f"{nid}: its code is trusted on this computer and runs now")
        doc.reanalyze()

    def _apply_custom(self) -> None:
        """Commit the code, class name and arguments as one undo step. Code the user changed here is theirs, so
        it is trusted; code that came with the project stays untrusted until Trust is pressed."""
        doc, nid, ed = self._doc, self._node_id, self._custom
        node = doc.node_or_none(nid) if doc is not None and nid else None
        if node is None or ed is None or not isValid(self):
            return
        try:
            values = ed.values()
            checked = node.spec.validate_params(values, base=node.params)
            if checked["code"] != node.params["code"] or is_trusted(code_hash(node.params["code"])):
                trust(code_hash(checked["code"]))
            changed = push_params(doc, nid, values, merge=False, text=f"Edit the custom layer {nid}")
        except (ParamError, GraphError) as e:
            ed.show_error(str(e))
            self.message.emit(str(e))
            return
        if changed:
            self.message.emit(f"{nid}: the custom layer's code applied")
        else:
            doc.reanalyze()  # nothing changed, but a trust given just now shows at once

    def _refresh_custom(self, info) -> None:
        ed = self._custom
        node = self._doc.node_or_none(self._node_id) if self._doc is not None and self._node_id else None
        if ed is None or node is None:
            return
        self._trust_row.setVisible(not is_trusted(code_hash(node.params["code"])))
        err = info.error if info is not None else None
        if err is None or info.waiting:
            ed.show_error("")
            shape = fmt(info.shape) if info is not None and info.shape is not None else "…"
            ed.status.setText(f"<span style='color:{self._muted}'>output {html.escape(shape)}</span>"
                              if info is not None and info.shape is not None else "")
            return
        ed.status.setText("")
        if not is_trusted(code_hash(node.params["code"])):
            ed.show_error("")  # the note above the code says it (and offers Trust)
            return
        ed.show_error(err.reason + (f" — {err.hint}" if err.hint else ""), getattr(err, "line", None))

    def _add_editor_row(self, form: QFormLayout, form_widget: QWidget, name: str, editor, tip: str) -> None:
        """One form row: the parameter's name (its buddy the editor, hovering it shows the hint) over the editor
        and its error line."""
        label = QLabel(name, form_widget)
        label.setToolTip(tip)
        label.setBuddy(editor.widget)
        field = QWidget(form_widget)
        col = QVBoxLayout(field)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        col.addWidget(editor.widget)
        col.addWidget(editor.error)
        form.addRow(label, field)
        self._editors[name] = editor
        self._by_widget[editor.widget] = name
        self._by_widget[label] = name
        label.installEventFilter(self)

    def _build_block(self, node, form: QFormLayout, form_widget: QWidget) -> None:
        exposed = block_parameters(node)
        for p in exposed:
            if p.param is None:  # a text argument of an inner custom layer: shown, edited inside the block
                value = QLabel(str(p.value), form_widget)
                value.setToolTip(f"sets {', '.join(p.targets)}")
                form.addRow(QLabel(p.name, form_widget), value)
                continue
            editor = self._make_editor(p.param, node.id, form_widget, searchable=False)
            tip = param_tooltip(p.param) + f"<br>Sets {html.escape(', '.join(p.targets))}"
            editor.widget.setToolTip(tip)
            self._add_editor_row(form, form_widget, p.name, editor, tip)
        self.params_title.setVisible(bool(exposed))
        self.no_params.setVisible(not exposed)
        self.hint.setVisible(bool(exposed))
        self._block_summary = QLabel(self.form_host)
        self._block_summary.setObjectName("blockSummary")
        self._block_summary.setWordWrap(True)
        self._block_summary.setTextFormat(Qt.TextFormat.RichText)
        self._block_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.form_host_layout.addWidget(self._block_summary)
        self._block_summary.show()

    def _refresh_block(self, info) -> None:
        label = self._block_summary
        node = self._doc.node_or_none(self._node_id) if self._doc is not None and self._node_id else None
        if label is None or node is None or node.type != "Block":
            return
        from engine.blocks import inner

        graph = inner(node.params).graph
        layers = [n for n in graph.nodes.values() if n.type not in ("BlockInput", "BlockOutput")]
        inner_info = info.inner if info is not None else None
        rows = []
        for n in layers:
            ni = inner_info.nodes.get(n.id) if inner_info is not None else None
            shape = fmt(ni.shape) if ni is not None and ni.shape is not None else "—"
            count = f"{ni.params:,d}" if ni is not None and ni.error is None else "—"
            rows.append(f"<tr><td>{html.escape(n.id)}<br><span style='color:{self._muted}'>{html.escape(n.type)}"
                        f"</span></td><td align='right' nowrap>{html.escape(shape)}</td>"
                        f"<td align='right'>{count}</td></tr>")
        total = f"{info.params:,d} parameters" if info is not None and info.error is None else "parameters: —"
        label.setText(f"<b>Inside: {len(layers)} layer{'s' if len(layers) != 1 else ''}</b>, {total}"
                      f"<table cellspacing='0' cellpadding='2' width='100%'>"
                      f"<tr style='color:{self._muted}'><td>layer</td><td align='right'>output</td>"
                      f"<td align='right'>params</td></tr>{''.join(rows)}</table>")

    def _make_editor(self, param: Param, node_id: str, parent: QWidget, searchable: bool = True) -> _Editor:
        editor: list[_Editor] = []
        w, error = param_editor(param, parent, f"param_{param.name}", self, lambda: self._commit(editor[0]))
        editor.append(_Editor(param, node_id, w, error))
        if searchable and param.kind in SEARCHABLE_KINDS:
            action = QAction(SEARCH_ACTION_TEXT, w)
            action.setToolTip(f"try several values of {param.name} in a hyper-parameter search (Run ▸ Search)")
            target = f"node:{node_id}.{param.name}"
            action.triggered.connect(lambda *_: self.search_requested.emit(target))
            add_search_action(w, action)
            editor[0].search_action = action
        return editor[0]

    # ---- edits -----------------------------------------------------------------------------------------------
    def _commit(self, editor: _Editor) -> None:
        doc = self._doc
        if doc is None or not isValid(self):
            return
        node = doc.node_or_none(editor.node_id)
        if node is None:
            return
        name = editor.param.name
        current = node_value(node, name)
        try:
            value = editor.read(node.type)
            if value == current and not isinstance(editor.widget, QLineEdit):
                return
            if node.type == "Block":  # an exposed name sets inner layers: one undo step, undone exactly
                push_params(doc, editor.node_id, {name: value})
            else:
                doc.set_params(editor.node_id, {name: value})
        except (ParamError, GraphError) as e:
            editor.show_error(str(e))
            if editor.node_id == self._node_id:
                editor.write(current)  # back to the value the graph has: a refused edit changes nothing
            self.message.emit(str(e))
            return
        editor.show_error("")
        new = doc.node_or_none(editor.node_id)
        if new is not None:
            value = node_value(new, name)
            editor.write(value)  # the canonical form: "3, 3" reads back as 3
            if value != current:
                self.message.emit(f"{editor.node_id}: {name} {format_value(editor.param, current) or 'not set'}"
                                  f" → {format_value(editor.param, value) or 'not set'}")

    def _refresh_values(self) -> None:
        node = self._doc.node_or_none(self._node_id) if self._doc is not None and self._node_id else None
        if node is None:
            return
        for name, editor in self._editors.items():
            editor.write(node_value(node, name))
        if self._custom is not None and node.type == "Custom":
            self._custom.set_values(node.params)

    def _refresh_analysis(self) -> None:
        doc, nid = self._doc, self._node_id
        if doc is None or nid is None:
            return
        info = doc.analysis.nodes.get(nid)
        self._refresh_custom(info)
        self._refresh_block(info)
        values = self._stat_values
        ins = []
        for src in doc.graph.inputs_of(nid) if nid in doc.graph else []:
            src_info = doc.analysis.nodes.get(src)
            ins.append(fmt(src_info.shape) if src_info is not None and src_info.shape is not None else "—")
        values["input"].setText(", ".join(ins) if ins else "—")
        if info is None:  # the node is newer than the last analysis: the next one is a moment away
            for key in ("output", "params", "macs", "memory"):
                values[key].setText("…")
            self.problem.hide()
            return
        dtype = f"  {info.dtype}" if info.dtype and info.dtype != "float32" else ""
        values["output"].setText(fmt(info.shape) + dtype if info.shape is not None else "—")
        values["params"].setText(f"{info.params:,d}" if info.error is None else "—")
        values["macs"].setText(f"{format_count(info.macs)} per sample" if info.error is None else "—")
        values["memory"].setText(f"{format_bytes(info.memory)} per sample" if info.error is None else "—")
        if info.error is None:
            self.problem.hide()
            return
        err = info.error
        color = WARNING_COLOR if info.waiting else ERROR_COLOR
        if info.waiting:
            text = (f"<b style='color:{color}'>Waiting on {html.escape(err.waiting_on)}</b><br>That layer cannot "
                    f"work yet; once it is fixed, this one is worked out again.")
        else:
            text = (f"<b style='color:{color}'>This layer cannot work yet</b><br>{html.escape(err.reason)}"
                    + (f"<br><span style='color:{self._muted}'>Fix: {html.escape(err.hint)}</span>"
                       if err.hint else ""))
        self.problem.setText(text)
        bg = blend(self.palette().color(QPalette.ColorRole.Base), QColor(color), 0.12).name()
        self.problem.setStyleSheet(f"QLabel#inspectorProblem {{ background: {bg}; border-left: 3px solid {color};"
                                   f" padding: 6px 8px; }}")
        self.problem.show()

    def _set_hint(self, name: str | None) -> None:
        param = self._editors[name].param if name in self._editors else None
        if param is None:
            self.hint.setText(f"<span style='color:{self._muted}'>{HOVER_HINT}</span>")
            return
        what = param.effect or param.doc
        rng = param.describe_range()
        extra = f" <span style='color:{self._muted}'>({html.escape(rng)})</span>" if rng else ""
        self.hint.setText(f"<b>{html.escape(param.name)}</b>: {html.escape(what[:1].upper() + what[1:])}{extra}")

    # ---- training flags (transfer learning) ------------------------------------------------------------------
    def _build_training(self, page: QWidget, body: QVBoxLayout) -> None:
        """The "Training" section: freeze the layer, and its learning-rate factor; each change one undo step
        through Document.set_training_flags. Shown for layers that have weights (or are frozen already)."""
        self.training_title = section_heading("Training", page)
        body.addWidget(self.training_title)
        self.training_box = QWidget(page)
        col = QVBoxLayout(self.training_box)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(6)
        self.frozen_check = QCheckBox("Frozen (weights not trained)", self.training_box)
        self.frozen_check.setObjectName("trainingFrozen")
        self.frozen_check.setToolTip("A frozen layer keeps its weights (and BatchNorm statistics) while the rest of "
                                     "the network trains: the usual way to keep layers loaded from a trained "
                                     "network (File ▸ Load Weights) as they are")
        self.frozen_check.toggled.connect(self._commit_frozen)
        col.addWidget(self.frozen_check)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(12)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.lr_edit = QLineEdit(self.training_box)
        self.lr_edit.setObjectName("trainingLrFactor")
        self.lr_edit.setPlaceholderText("1")
        tip = (f"multiplies the optimizer's learning rate for this layer's weights: 1 = the same as the others, "
               f"0.1 = ten times slower (fine-tuning loaded layers gently); above 0, at most {MAX_LR_FACTOR:g}")
        self.lr_edit.setToolTip(tip)
        self.lr_edit.editingFinished.connect(self._commit_lr)
        lr_label = QLabel("LR factor", self.training_box)
        lr_label.setToolTip(tip)
        lr_label.setBuddy(self.lr_edit)
        form.addRow(lr_label, self.lr_edit)
        col.addLayout(form)
        self.training_error = QLabel(self.training_box)
        self.training_error.setObjectName("trainingError")
        self.training_error.setWordWrap(True)
        self.training_error.setStyleSheet(f"color: {ERROR_COLOR};")
        self.training_error.hide()
        self._training_field = ""  # which editor the shown refusal is about: "frozen" or "lr"
        col.addWidget(self.training_error)
        body.addWidget(self.training_box)

    def training_error_text(self) -> str:
        """The refusal shown under the Training section ("" when none)."""
        return "" if self.training_error.isHidden() else self.training_error.text()

    def _show_training_error(self, message: str) -> None:
        self.training_error.setText(message)
        self.training_error.setVisible(bool(message))
        self.lr_edit.setStyleSheet(f"border: 1px solid {ERROR_COLOR}; border-radius: 3px;"
                                   if message and self._training_field == "lr" else "")

    def _refresh_training(self) -> None:
        node = self._doc.node_or_none(self._node_id) if self._doc is not None and self._node_id else None
        show = node is not None and (node.frozen or node.lr_factor != 1.0 or self._doc.has_weights(node.id))
        self.training_title.setVisible(show)
        self.training_box.setVisible(show)
        if node is None:
            return
        was = self.frozen_check.blockSignals(True)
        self.frozen_check.setChecked(node.frozen)
        self.frozen_check.blockSignals(was)
        write_widget(self.lr_edit, node.lr_factor, f"{node.lr_factor:g}")

    def _commit_frozen(self, on: bool) -> None:
        doc, nid = self._doc, self._node_id
        if doc is None or nid is None or not isValid(self):
            return
        self._training_field = "frozen"
        try:
            changed = doc.set_training_flags(nid, frozen=bool(on))
        except (ParamError, GraphError) as e:
            self._show_training_error(str(e))
            self._refresh_training()  # back to what the graph has: a refused edit changes nothing
            self.message.emit(str(e))
            return
        self._show_training_error("")
        if changed:
            self.message.emit(f"{nid} frozen: its weights stay as they are while the network trains" if on else
                              f"{nid} unfrozen: its weights train again")

    def _commit_lr(self) -> None:
        doc, nid = self._doc, self._node_id
        if doc is None or nid is None or not isValid(self):
            return
        node = doc.node_or_none(nid)
        if node is None:
            return
        self._training_field = "lr"
        text = self.lr_edit.text().strip().lstrip("×xX*").strip() or "1"  # empty: back to the default
        old = node.lr_factor
        try:
            if not _FLOAT_RE.fullmatch(text):
                raise ParamError(f"The LR factor must be a number such as 0.1 (1 = the optimizer's learning rate), "
                                 f"not {self.lr_edit.text().strip()!r}", "lr_factor")
            changed = doc.set_training_flags(nid, lr_factor=float(text))
        except (ParamError, GraphError) as e:
            self._show_training_error(str(e))
            self._refresh_training()
            self.message.emit(str(e))
            return
        self._show_training_error("")
        self._refresh_training()  # the canonical form: "0.10" reads back as 0.1
        if changed:
            self.message.emit(f"{nid}: learning-rate factor {old:g} → {node.lr_factor:g}")

    # ---- handlers --------------------------------------------------------------------------------------------
    def _on_analyzed(self, _analysis) -> None:
        if isValid(self) and self._node_id is not None:
            self._refresh_analysis()
            self._refresh_training()

    def _on_params_changed(self, node) -> None:
        if not isValid(self) or node.id != self._node_id:
            return
        for editor in self._editors.values():
            editor.show_error("")  # an undo or redo makes any earlier refusal moot
        self._refresh_values()
        self._show_training_error("")
        self._refresh_training()  # the graph reports a change of the training flags as a change of parameters

    def _on_node_removed(self, node) -> None:
        if isValid(self) and node.id == self._node_id:
            self.show_node(None)

    # ---- colours ---------------------------------------------------------------------------------------------
    def _apply_colors(self) -> None:
        pal = self.palette()
        text, base = pal.color(QPalette.ColorRole.Text), pal.color(QPalette.ColorRole.Base)
        self._muted = blend(text, base, 0.42).name()
        hint_bg = blend(pal.color(QPalette.ColorRole.Window), text, 0.05).name()
        self.hint.setStyleSheet(f"QLabel#inspectorHint {{ background: {hint_bg}; border-radius: 4px;"
                                f" padding: 6px 8px; }}")
        self.empty.setStyleSheet(f"QLabel#inspectorEmpty {{ color: {self._muted}; padding: 28px; }}")
        first, rest = EMPTY_HINT.split("; ", 1)
        self.empty.setText(f"<p style='font-size:large; font-weight:600'>{html.escape(first)}</p>"
                           f"<p>{html.escape(rest[:1].upper() + rest[1:])}</p>")
        style_muted_labels(self, self._muted)

    # ---- Qt overrides ----------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        name = self._by_widget.get(watched)
        if name is not None:
            kind = event.type()
            if kind == QEvent.Type.FocusIn:
                self._focused = name
                self._set_hint(name)
            elif kind == QEvent.Type.Enter:
                self._set_hint(name)
            elif kind == QEvent.Type.Leave:
                self._set_hint(self._focused)
            elif kind == QEvent.Type.Wheel and not watched.hasFocus() \
                    and isinstance(watched, (QSpinBox, QComboBox)):
                QCoreApplication.sendEvent(self.scroll.verticalScrollBar(), event)
                return True
        return super().eventFilter(watched, event)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "hint"):
            self._apply_colors()
            node_id, self._node_id = self._node_id, None
            self.show_node(node_id)  # rebuild the rich text in the new colours
