"""The model summary table (one row per node: shape, parameters, MACs, memory, error) with its totals, and the
messages log. The table reads the Document's latest Analysis: its rows are worked out again on each new one, and
only the rows that changed are reported to the view (a reset only when nodes came, went or changed order).

Sorting happens in the model, on plain Python tuples, behind an identity proxy: a QSortFilterProxyModel asks the
Python model for two values per comparison, which made every edit of a 5,000-node graph with a sorted table cost
half a second.
"""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Any, NamedTuple

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QIdentityProxyModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.layers import fmt
from engine.shapes import Analysis
from engine.units import format_bytes, format_count

from .colors import ERROR_COLOR, INFO_COLOR, OK_COLOR, WARNING_COLOR
from .palette import blend, layer_icon

SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # numbers sort as numbers, shapes by size
NODE_ROLE = Qt.ItemDataRole.UserRole + 2  # the node id of a row

COLUMNS = ("Name", "Type", "Output shape", "Params", "MACs", "Memory", "Error")
_TIPS = ("the node id (its name in the model and in exported code)", "the layer type",
         "the shape of one sample leaving the layer (batch dimension left out)",
         "learned weights and biases", "multiply-accumulate operations for one sample",
         "bytes of the layer's output for one sample", "why the layer cannot work yet, and how to fix it")
NUMERIC = {3, 4, 5}


def totals_text(analysis: Analysis) -> str:
    """The one-line totals the status bar shows: 121,930 params · 2.5M MACs · 266.7 KB/sample."""
    return (f"{analysis.total_params:,d} params · {format_count(analysis.total_macs)} MACs · "
            f"{format_bytes(analysis.total_memory)}/sample")


class _Row(NamedTuple):
    node_id: str
    type: str
    shape: str
    shape_size: int
    params: int
    macs: int
    memory: int
    error: str
    waiting: bool


def _sort_key(r: _Row, column: int):
    """What a column sorts by (SORT_ROLE): numbers as numbers, shapes by size, errors before the rest."""
    return (r.node_id, r.type, r.shape_size, r.params, r.macs, r.memory, (not r.error, r.error))[column]


class SummaryModel(QAbstractTableModel):
    """Rows of an Analysis, as plain tuples worked out once per analysis: in topological order, or sorted by a
    column (sort(), which the table's header calls through the proxy)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[_Row] = []   # as shown
        self._network: list[_Row] = []  # in topological order
        self._row_of: dict[str, int] = {}
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._error_bg = QColor(ERROR_COLOR)
        self._error_bg.setAlpha(48)
        self._waiting_bg = QColor(WARNING_COLOR)
        self._waiting_bg.setAlpha(30)
        self._error_fg = QColor(ERROR_COLOR)
        self._waiting_fg = QColor(WARNING_COLOR)
        self._mono = QFont("DejaVu Sans Mono")
        self._mono.setStyleHint(QFont.StyleHint.Monospace)

    def set_analysis(self, analysis: Analysis | None) -> None:
        network = []
        if analysis is not None:
            shapes: dict[tuple, tuple[str, int]] = {}  # thousands of rows share a few shapes
            for nid in analysis.order:
                info = analysis.nodes[nid]
                if info.shape is None:
                    shape, size = "—", -1
                else:
                    key = tuple(info.shape)
                    shape, size = shapes.get(key) or shapes.setdefault(key, (fmt(key), math.prod(key)))
                err = ""
                if info.error is not None:
                    err = str(info.error)
                network.append(_Row(nid, info.type, shape, size, info.params, info.macs, info.memory, err,
                                    info.waiting))
        self._network = network
        rows = self._sorted(network)
        old = self._rows
        if len(old) == len(rows) and all(a.node_id == b.node_id for a, b in zip(old, rows)):
            # The same nodes in the same places: say which rows changed instead of resetting the view (a reset
            # drops its selection and makes it measure every row again).
            changed = [i for i, (a, b) in enumerate(zip(old, rows)) if a != b]
            self._rows = rows
            if changed:
                self.dataChanged.emit(self.index(changed[0], 0), self.index(changed[-1], len(COLUMNS) - 1))
            return
        self.beginResetModel()
        self._rows = rows
        self._row_of = {r.node_id: i for i, r in enumerate(rows)}
        self.endResetModel()

    def _sorted(self, rows: list[_Row]) -> list[_Row]:
        column = self._sort_column
        if not 0 <= column < len(COLUMNS):
            return list(rows)
        return sorted(rows, key=lambda r: _sort_key(r, column),
                      reverse=self._sort_order == Qt.SortOrder.DescendingOrder)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by a column (-1: network order); selections and other persistent indexes follow their rows."""
        self._sort_column, self._sort_order = column, order
        self.layoutAboutToBeChanged.emit()
        rows = self._sorted(self._network)
        row_of = {r.node_id: i for i, r in enumerate(rows)}
        old = self.persistentIndexList()
        new = [self.index(row_of.get(self._rows[i.row()].node_id, -1), i.column()) if 0 <= i.row() < len(self._rows)
               else QModelIndex() for i in old]
        self._rows, self._row_of = rows, row_of
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def row_of(self, node_id: str) -> int:
        return self._row_of.get(node_id, -1)

    def node_at(self, row: int) -> str:
        return self._rows[row].node_id

    # ---- Qt overrides ----------------------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return _TIPS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole and section in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r, col = self._rows[index.row()], index.column()
        ok = not r.error
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return r.node_id
            if col == 1:
                return r.type
            if col == 2:
                return r.shape
            if col == 3:
                return f"{r.params:,d}" if ok else "—"
            if col == 4:
                return format_count(r.macs) if ok else "—"
            if col == 5:
                return format_bytes(r.memory) if ok else "—"
            return r.error
        if role == SORT_ROLE:
            return (r.node_id, r.type, r.shape_size, r.params, r.macs, r.memory, (not r.error, r.error))[col]
        if role == NODE_ROLE:
            return r.node_id
        if role == Qt.ItemDataRole.TextAlignmentRole and col in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole and r.error:
            return self._waiting_bg if r.waiting else self._error_bg
        if role == Qt.ItemDataRole.ForegroundRole and col == 6 and r.error:
            return self._waiting_fg if r.waiting else self._error_fg
        if role == Qt.ItemDataRole.DecorationRole and col == 1:
            return layer_icon(r.type)
        if role == Qt.ItemDataRole.FontRole and col == 2:
            return self._mono
        if role == Qt.ItemDataRole.ToolTipRole:
            if r.error:
                return r.error
            if col == 3:
                return f"{r.params:,d} parameters"
            if col == 4:
                return f"{r.macs:,d} multiply-accumulates per sample"
            if col == 5:
                return f"{r.memory:,d} bytes per sample"
        return None


class SummaryWidget(QWidget):
    """The summary table of a Document with a totals line; clicking a row emits `node_selected(node_id)`."""

    node_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("SummaryWidget")
        self._doc = None
        self._analysis: Analysis | None = None
        self.model = SummaryModel(self)
        self.proxy = QIdentityProxyModel(self)  # passes the header's sort() on to the model, which sorts itself
        self.proxy.setSourceModel(self.model)

        self.table = QTableView(self)
        self.table.setObjectName("summaryTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # network order until a header is clicked
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        # no style sheet here: a styled view stops following a palette switched at run time (light ↔ dark)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setIconSize(QSize(16, 16))
        vh = self.table.verticalHeader()
        vh.hide()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(self.fontMetrics().height() + 10)
        hh = self.table.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setStretchLastSection(True)
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self._fitted = False  # columns fit their contents once, then keep what the user drags them to

        self.totals = QLabel(self)
        self.totals.setObjectName("summaryTotals")
        self.totals.setTextFormat(Qt.TextFormat.RichText)
        self.totals.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.totals.setContentsMargins(4, 2, 4, 0)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.totals)

        self.table.clicked.connect(self._on_row_clicked)
        self.table.activated.connect(self._on_row_clicked)
        self._update_totals()

    # ---- public --------------------------------------------------------------------------------------------
    def set_document(self, doc) -> None:
        if doc is self._doc:
            return
        if self._doc is not None:
            self._doc.analyzed.disconnect(self._on_analyzed)
        self._doc = doc
        self._fitted = False  # another project: its names may be longer, fit the columns again
        if doc is not None:
            doc.analyzed.connect(self._on_analyzed)
        self.set_analysis(doc.analysis if doc is not None else None)

    def set_analysis(self, analysis: Analysis | None) -> None:
        """Show an analysis; the selected node stays selected when it is still there."""
        selected = self.selected_node()
        self._analysis = analysis
        self.model.set_analysis(analysis)
        if not self._fitted and self.model.rowCount():
            self._fit_columns()
        self._update_totals()
        if selected is not None:
            self.select_node(selected)

    def totals_text(self) -> str:
        return totals_text(self._analysis) if self._analysis is not None else ""

    def row_count(self) -> int:
        return self.proxy.rowCount()

    def node_at(self, view_row: int) -> str:
        return self.proxy.index(view_row, 0).data(NODE_ROLE)

    def selected_node(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(NODE_ROLE) if rows else None

    def select_node(self, node_id: str | None) -> None:
        """Mirror the canvas selection; emits nothing (only a click does)."""
        row = self.model.row_of(node_id) if node_id is not None else -1
        if row < 0:
            self.table.clearSelection()
            return
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectRow(index.row())
        self.table.scrollTo(index)

    def _fit_columns(self) -> None:
        self._fitted = True
        header = self.table.horizontalHeader()
        header.setResizeContentsPrecision(200)  # rows sampled: a 5,000-node graph fits as fast as a small one
        for col in range(len(COLUMNS) - 1):
            self.table.resizeColumnToContents(col)
            header.resizeSection(col, header.sectionSize(col) + 10)  # air between a name and the next icon

    # ---- handlers ------------------------------------------------------------------------------------------
    def _on_analyzed(self, analysis: Analysis) -> None:
        self.set_analysis(analysis)

    def _on_row_clicked(self, index: QModelIndex) -> None:
        node_id = index.data(NODE_ROLE)
        if node_id:
            self.node_selected.emit(node_id)

    def _update_totals(self) -> None:
        a = self._analysis
        muted = blend(self.palette().color(QPalette.ColorRole.WindowText),
                      self.palette().color(QPalette.ColorRole.Window), 0.4).name()
        if a is None or not a.nodes:
            self.totals.setText(f"<span style='color:{muted}'>No layers yet: the totals appear here.</span>")
            return
        n = len(a.nodes)
        own = len(a.errors)
        status = (f"<span style='color:{ERROR_COLOR}; font-weight:600'>● {own} error{'s' if own != 1 else ''}"
                  f"</span>" if own else f"<span style='color:{OK_COLOR}'>● shapes OK</span>")
        partial = " (layers with errors not counted)" if any(not i.ok for i in a.nodes.values()) else ""
        self.totals.setText(f"<b>Total</b> {self.totals_text()} "
                            f"<span style='color:{muted}'>· {n} layer{'s' if n != 1 else ''}{partial}</span>"
                            f" &nbsp; {status}")

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "totals"):
            self._update_totals()


LEVELS = ("info", "warning", "error")


def _dot_icon(color: str) -> QIcon:
    pix = QPixmap(16, 16)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(color))
    p.drawEllipse(4, 4, 8, 8)
    p.end()
    return QIcon(pix)


class MessagesWidget(QWidget):
    """A read-only, time-stamped log of what the app did and what went wrong, newest at the bottom, capped."""

    def __init__(self, parent: QWidget | None = None, max_entries: int = 500):
        super().__init__(parent)
        self.setObjectName("MessagesWidget")
        self.max_entries = max_entries
        self._entries: deque[tuple[float, str, str]] = deque(maxlen=max_entries)
        self._icons = {"info": _dot_icon(INFO_COLOR), "warning": _dot_icon(WARNING_COLOR),
                       "error": _dot_icon(ERROR_COLOR)}

        self.list = QListWidget(self)
        self.list.setObjectName("messagesList")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setWordWrap(True)
        self.list.setUniformItemSizes(False)
        self.list.setAlternatingRowColors(True)
        self.count_label = QLabel(self)
        self.clear_button = QPushButton("Clear", self)
        self.clear_button.setToolTip("Remove every message from the log")
        self.clear_button.clicked.connect(self.clear)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.count_label, 1)
        bar.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addWidget(self.list, 1)
        layout.addLayout(bar)
        self._update_count()

    def add(self, text: str, level: str = "info") -> None:
        if level not in LEVELS:
            raise ValueError(f"a message level is one of {', '.join(LEVELS)}, not {level!r}")
        now = time.time()
        self._entries.append((now, level, text))
        item = QListWidgetItem(self._icons[level], f"{time.strftime('%H:%M:%S', time.localtime(now))}  {text}")
        item.setToolTip(f"{level}: {text}")
        item.setData(Qt.ItemDataRole.UserRole, level)
        if level != "info":
            item.setForeground(QColor(ERROR_COLOR if level == "error" else WARNING_COLOR))
        self.list.addItem(item)
        while self.list.count() > self.max_entries:
            self.list.takeItem(0)
        self.list.scrollToBottom()
        self._update_count()

    def entries(self) -> list[tuple[str, str]]:
        """(level, text) of each message kept, oldest first."""
        return [(level, text) for _, level, text in self._entries]

    def clear(self) -> None:
        self._entries.clear()
        self.list.clear()
        self._update_count()

    def _update_count(self) -> None:
        n = len(self._entries)
        errors = sum(1 for _, level, _ in self._entries if level == "error")
        text = "No messages" if n == 0 else f"{n} message{'s' if n != 1 else ''}"
        if errors:
            text += f" · {errors} error{'s' if errors != 1 else ''}"
        self.count_label.setText(text)
        self.clear_button.setEnabled(n > 0)
