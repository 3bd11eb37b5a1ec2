"""What a trained network gets right and wrong: the metrics, a confusion matrix whose cells open their samples, the
worst samples, a predicted-versus-true scatter for regression and inputs beside their reconstructions.

`EvaluationView.show_result` takes the plain dict of `engine.evaluate.evaluate` (NumPy arrays and numbers, no
tensors). `ImageGallery` and `SampleTable` are the sample views it shares with the training setup panel's preview.
pyqtgraph is imported only when a regression result is shown.
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from .colors import ERROR_COLOR, INFO_COLOR, OK_COLOR
from .dialog_parts import section_heading
from .inspector import scrolling_page
from .palette import blend

CLASSIFICATION, BINARY, REGRESSION, RECONSTRUCTION = "classification", "binary", "regression", "reconstruction"
INDEX_ROLE = Qt.ItemDataRole.UserRole + 1  # the sample index of a table row
MAX_CELL_SAMPLES = 64  # samples shown for one confusion cell (the tooltip says how many there are)
EXPLAIN_TEXT = "Explain this prediction"
EXPLAINABLE = (CLASSIFICATION, BINARY, REGRESSION)  # tasks with one score per sample to explain


# ---- images ----------------------------------------------------------------------------------------------------
def image_range(images: np.ndarray) -> tuple[float, float]:
    """The value range to show a set of images in: [0, 1] when they lie in it, else their own min and max, so
    that images shown together (inputs beside outputs) keep one brightness scale."""
    a = np.asarray(images, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if lo >= -1e-6 and hi <= 1.0 + 1e-6:
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def to_qimage(image: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> QImage:
    """One image, (H, W) or (C, H, W) with 1 or 3 channels (other counts show the first), as a QImage."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:
        a = a.transpose(1, 2, 0) if a.shape[0] == 3 else a[0]
    elif a.ndim != 2:
        a = a.reshape(1, -1)
    a = np.nan_to_num((a - lo) / (hi - lo if hi > lo else 1.0), nan=0.0, posinf=1.0, neginf=0.0)
    data = np.ascontiguousarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8))
    h, w = data.shape[:2]
    if data.ndim == 3:
        return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QImage(data.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def _muted(palette: QPalette) -> QColor:
    return blend(palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base), 0.42)


def section_label(text: str, parent: QWidget) -> QLabel:
    """A small upper-case heading, as the inspector's."""
    return section_heading(text, parent, top=10)


class ImageGallery(QWidget):
    """A wrapping grid of small images, each with a caption of one or two lines and an optional coloured frame
    (red for a wrong prediction). Clicking an image emits `sample_clicked(index)` with that sample's index.
    With `pairs`, each cell shows two images side by side (an input and its reconstruction). With `explain_text`
    set, a right-click on an image offers that action and a double-click takes it: `explain_requested(index)`."""

    sample_clicked = Signal(int)
    explain_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None, cell: int = 60):
        super().__init__(parent)
        self.explain_text: str | None = None
        self._cell = cell
        self._pixmaps: list[tuple[QPixmap, ...]] = []
        self._captions: list[str] = []
        self._indices: list[int] = []
        self._tips: list[str] = []
        self._marks: list[str | None] = []
        self._selected: int | None = None
        self._empty_text = ""
        self.setMouseTracking(True)
        sp = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        sp.setHeightForWidth(True)
        self.setSizePolicy(sp)

    # ---- content -----------------------------------------------------------------------------------------------
    def set_samples(self, images: np.ndarray | Sequence, captions: Sequence[str], indices: Sequence[int] | None = None,
                    tooltips: Sequence[str] | None = None, marks: Sequence[str | None] | None = None,
                    pairs: np.ndarray | Sequence | None = None, value_range: tuple[float, float] | None = None
                    ) -> None:
        """Show `images` (N, C, H, W) or (N, H, W); captions per image ("\\n" starts the second line)."""
        images = np.asarray(images)
        n = len(images)
        lo, hi = value_range or image_range(images if pairs is None else np.concatenate(
            [np.asarray(images, dtype=np.float64).ravel(), np.asarray(pairs, dtype=np.float64).ravel()]))
        self._pixmaps = []
        for i in range(n):
            first = QPixmap.fromImage(to_qimage(images[i], lo, hi))
            self._pixmaps.append((first,) if pairs is None else (first, QPixmap.fromImage(to_qimage(pairs[i], lo,
                                                                                                      hi))))
        self._captions = [str(c) for c in captions][:n] + [""] * max(0, n - len(captions))
        self._indices = [int(i) for i in indices] if indices is not None else list(range(n))
        self._tips = [str(t) for t in tooltips] if tooltips is not None else list(self._captions)
        self._marks = list(marks) if marks is not None else [None] * n
        self._selected = None
        self._relayout()

    def clear(self, empty_text: str = "") -> None:
        self._pixmaps, self._captions, self._indices, self._tips, self._marks = [], [], [], [], []
        self._empty_text = empty_text
        self._selected = None
        self._relayout()

    def count(self) -> int:
        return len(self._pixmaps)

    def captions(self) -> list[str]:
        return list(self._captions)

    def indices(self) -> list[int]:
        return list(self._indices)

    def marks(self) -> list[str | None]:
        return list(self._marks)

    # ---- geometry ----------------------------------------------------------------------------------------------
    def _lines(self) -> int:
        return max((c.count("\n") + 1 for c in self._captions if c), default=0)

    def _cell_size(self) -> QSize:
        per = len(self._pixmaps[0]) if self._pixmaps else 1
        fm = QFontMetrics(self._caption_font())
        return QSize(self._cell * per + 4 * (per - 1) + 8, self._cell + 8 + self._lines() * fm.height()
                     + (3 if self._lines() else 0))

    def _columns(self, width: int) -> int:
        cw = self._cell_size().width()
        return max(1, (width + 6) // (cw + 6))

    def item_rect(self, i: int) -> QRect:
        """Where sample `i` (its position in the gallery) is drawn."""
        cols = self._columns(self.width())
        size = self._cell_size()
        r, c = divmod(i, cols)
        return QRect(c * (size.width() + 6), r * (size.height() + 6), size.width(), size.height())

    def position_at(self, pos: QPoint) -> int | None:
        for i in range(len(self._pixmaps)):
            if self.item_rect(i).contains(pos):
                return i
        return None

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt's name
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt's name
        n = len(self._pixmaps)
        if n == 0:
            return QFontMetrics(self.font()).height() + 12 if self._empty_text else 0
        rows = math.ceil(n / self._columns(width))
        return rows * (self._cell_size().height() + 6) - 6

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        w = max(self.width(), 8 * (self._cell_size().width() + 6))
        return QSize(w, self.heightForWidth(w))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(self._cell_size().width(), self.heightForWidth(max(self.width(), 1)))

    def _relayout(self) -> None:
        self.setFixedHeight(self.heightForWidth(max(self.width(), 1)))
        self.updateGeometry()
        self.update()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        h = self.heightForWidth(event.size().width())
        if h != self.height():
            self.setFixedHeight(h)

    # ---- painting ----------------------------------------------------------------------------------------------
    def _caption_font(self) -> QFont:
        f = QFont(self.font())
        f.setPointSizeF(max(7.0, f.pointSizeF() * 0.85))
        return f

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.Text)
        muted = _muted(pal)
        if not self._pixmaps:
            if self._empty_text:
                p.setPen(muted)
                p.drawText(self.rect().adjusted(2, 0, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                           self._empty_text)
            return
        font = self._caption_font()
        p.setFont(font)
        fm = QFontMetrics(font)
        cell = self._cell
        frame_bg = blend(pal.color(QPalette.ColorRole.Window), text, 0.06)
        for i, pixmaps in enumerate(self._pixmaps):
            r = self.item_rect(i)
            if not r.intersects(event.rect()):
                continue
            mark = self._marks[i]
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(blend(pal.color(QPalette.ColorRole.Window), QColor(mark), 0.18) if mark else frame_bg)
            if i == self._selected:
                p.setBrush(blend(pal.color(QPalette.ColorRole.Window), pal.color(QPalette.ColorRole.Highlight), 0.3))
            p.drawRoundedRect(r, 4, 4)
            for k, pm in enumerate(pixmaps):
                box = QRect(r.left() + 4 + k * (cell + 4), r.top() + 4, cell, cell)
                scaled = pm.size().scaled(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
                target = QRect(0, 0, scaled.width(), scaled.height())
                target.moveCenter(box.center())
                small = pm.width() <= cell // 2  # small images as crisp pixels, big ones smoothed
                p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, not small)
                p.drawPixmap(target, pm)
            if mark:
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.setPen(QPen(QColor(mark), 2))
                p.drawRoundedRect(r.adjusted(1, 1, -1, -1), 4, 4)
            lines = self._captions[i].split("\n")
            y = r.top() + 4 + cell + 3
            for k, line in enumerate(lines):
                p.setPen(text if k == 0 else muted)
                p.drawText(QRect(r.left() + 2, y, r.width() - 4, fm.height()), Qt.AlignmentFlag.AlignHCenter,
                           fm.elidedText(line, Qt.TextElideMode.ElideRight, r.width() - 4))
                y += fm.height()

    # ---- interaction -------------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        i = self.position_at(event.position().toPoint())
        if i is None:
            super().mousePressEvent(event)
            return
        self._selected = i
        self.update()
        self.sample_clicked.emit(self._indices[i])

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt's name
        i = self.position_at(event.position().toPoint())
        if i is None or not self.explain_text:
            super().mouseDoubleClickEvent(event)
            return
        self.explain_requested.emit(self._indices[i])

    def explain_menu(self, position: int) -> QMenu | None:
        """The context menu of the image at `position` in the gallery (None without `explain_text`)."""
        if not self.explain_text or not 0 <= position < len(self._indices):
            return None
        index = self._indices[position]
        menu = QMenu(self)
        action = menu.addAction(self.explain_text)
        action.triggered.connect(lambda checked=False: self.explain_requested.emit(index))
        return menu

    def contextMenuEvent(self, event) -> None:  # noqa: N802 - Qt's name
        i = self.position_at(event.pos())
        menu = self.explain_menu(i) if i is not None else None
        if menu is None:
            super().contextMenuEvent(event)
            return
        if i != self._selected:  # right-click selects as a click does
            self._selected = i
            self.update()
            self.sample_clicked.emit(self._indices[i])
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(event.globalPos())

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        over = self.position_at(event.position().toPoint()) is not None
        self.setCursor(Qt.CursorShape.PointingHandCursor if over else Qt.CursorShape.ArrowCursor)
        super().mouseMoveEvent(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            i = self.position_at(event.pos())
            if i is not None and self._tips[i]:
                QToolTip.showText(event.globalPos(), self._tips[i], self, self.item_rect(i))
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)


class SampleTable(QTableWidget):
    """Rows of samples (tabular data, sequences, text): given columns, one row per sample; clicking a row emits
    `sample_clicked(index)`. Shows at most `max_rows` rows and sizes itself to them. With `explain_text` set, a
    right-click on a row offers that action and a double-click takes it: `explain_requested(index)`."""

    sample_clicked = Signal(int)
    explain_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None, max_rows: int = 12):
        super().__init__(parent)
        self.explain_text: str | None = None
        self._max_rows = max_rows
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(QFontMetrics(self.font()).height() + 8)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(False)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setWordWrap(False)
        self.cellClicked.connect(self._on_cell_clicked)
        self.cellDoubleClicked.connect(self._on_cell_double_clicked)

    def set_rows(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], indices: Sequence[int] | None = None,
                 marks: Sequence[str | None] | None = None, tooltips: Sequence[str] | None = None,
                 stretch: int | None = None) -> None:
        """Fill the table; `stretch` names a column (long text) that takes the free width and is cut with "…"."""
        self.clear()
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels([str(h) for h in headers])
        self.setRowCount(len(rows))
        idx = list(indices) if indices is not None else list(range(len(rows)))
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                item = QTableWidgetItem(_cell_text(value))
                item.setData(INDEX_ROLE, idx[r])
                if _numeric(value):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if marks is not None and marks[r] and c == 0:
                    item.setForeground(QColor(marks[r]))
                if tooltips is not None:
                    item.setToolTip(tooltips[r])
                elif stretch == c:
                    item.setToolTip(str(value))
                self.setItem(r, c, item)
        header = self.horizontalHeader()
        for c in range(len(headers)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch if c == stretch
                                        else QHeaderView.ResizeMode.ResizeToContents)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self._fit_height()

    def _fit_height(self) -> None:
        """Exactly the shown rows, plus the horizontal scroll bar when the columns are wider than the view."""
        shown = min(self.rowCount(), self._max_rows)
        h = self.horizontalHeader().sizeHint().height() + shown * self.verticalHeader().defaultSectionSize()
        header = self.horizontalHeader()
        stretched = any(header.sectionResizeMode(c) == QHeaderView.ResizeMode.Stretch
                        for c in range(self.columnCount()))
        content = self.verticalHeader().width() * self.verticalHeader().isVisible() + sum(
            header.sectionSizeHint(c) for c in range(self.columnCount()))
        room = self.width() - 2 * self.frameWidth() - (self.verticalScrollBar().sizeHint().width()
                                                       if self.rowCount() > self._max_rows else 0)
        wide = not stretched and content > room
        height = h + 2 * self.frameWidth() + (self.horizontalScrollBar().sizeHint().height() if wide else 0)
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit_height()

    def row_texts(self, row: int) -> list[str]:
        return [self.item(row, c).text() if self.item(row, c) else "" for c in range(self.columnCount())]

    def _on_cell_clicked(self, row: int, _col: int) -> None:
        item = self.item(row, 0)
        if item is not None:
            self.sample_clicked.emit(int(item.data(INDEX_ROLE)))

    def _on_cell_double_clicked(self, row: int, _col: int) -> None:
        item = self.item(row, 0)
        if item is not None and self.explain_text:
            self.explain_requested.emit(int(item.data(INDEX_ROLE)))

    def explain_menu(self, row: int) -> QMenu | None:
        """The context menu of a row (None without `explain_text`)."""
        item = self.item(row, 0) if 0 <= row < self.rowCount() else None
        if not self.explain_text or item is None:
            return None
        index = int(item.data(INDEX_ROLE))
        menu = QMenu(self)
        action = menu.addAction(self.explain_text)
        action.triggered.connect(lambda checked=False: self.explain_requested.emit(index))
        return menu

    def contextMenuEvent(self, event) -> None:  # noqa: N802 - Qt's name
        row = self.rowAt(event.pos().y())  # the viewport's coordinates
        menu = self.explain_menu(row)
        if menu is None:
            super().contextMenuEvent(event)
            return
        if row != self.currentRow():  # right-click selects as a click does
            self.selectRow(row)
            self._on_cell_clicked(row, 0)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(event.globalPos())


def _numeric(value: Any) -> bool:
    """Numbers (and numbers already written as text, like "0.25, 1.5") line up on the right."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float, np.number)):
        return True
    if isinstance(value, str) and value:
        try:
            [float(v) for v in value.replace("%", "").split(",")]
        except ValueError:
            return False
        return True
    return False


def _cell_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(value)


# ---- the confusion matrix ---------------------------------------------------------------------------------------
class ConfusionModel(QAbstractTableModel):
    """Counts of samples by true class (rows) and predicted class (columns), coloured by their share of the row:
    the diagonal (right) in green, the rest (mistakes) in red."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.matrix = np.zeros((0, 0), dtype=np.int64)
        self.classes: list[str] = []
        self._palette = QPalette()

    def set_matrix(self, matrix: np.ndarray, classes: Sequence[str], palette: QPalette) -> None:
        self.beginResetModel()
        self.matrix = np.asarray(matrix, dtype=np.int64)
        c = self.matrix.shape[0]
        self.classes = [str(x) for x in classes][:c] + [str(i) for i in range(len(classes), c)]
        self._palette = palette
        self.endResetModel()

    def count(self, true: int, pred: int) -> int:
        return int(self.matrix[true, pred])

    def rowCount(self, parent=None) -> int:  # noqa: N802 - Qt's name
        return 0 if parent is not None and parent.isValid() else self.matrix.shape[0]

    def columnCount(self, parent=None) -> int:  # noqa: N802 - Qt's name
        return 0 if parent is not None and parent.isValid() else self.matrix.shape[1] if self.matrix.ndim == 2 else 0

    def _share(self, r: int, c: int) -> float:
        total = int(self.matrix[r].sum())
        return self.matrix[r, c] / total if total else 0.0

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r, c = index.row(), index.column()
        n = int(self.matrix[r, c])
        if role == Qt.ItemDataRole.DisplayRole:
            return str(n)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return Qt.AlignmentFlag.AlignCenter
        share = self._share(r, c)
        if role == Qt.ItemDataRole.BackgroundRole:
            base = self._palette.color(QPalette.ColorRole.Base)
            if n == 0:
                return base
            tint = QColor(OK_COLOR if r == c else ERROR_COLOR)
            return blend(base, tint, 0.12 + 0.78 * min(1.0, share if r == c else share * 2.5))
        if role == Qt.ItemDataRole.ForegroundRole:
            if n == 0:
                return _muted(self._palette)
            strong = 0.12 + 0.78 * min(1.0, share if r == c else share * 2.5) > 0.55
            return QColor("#ffffff") if strong else self._palette.color(QPalette.ColorRole.Text)
        if role == Qt.ItemDataRole.FontRole and r == c:
            f = QFont()
            f.setBold(True)
            return f
        if role == Qt.ItemDataRole.ToolTipRole:
            true, pred = self.classes[r], self.classes[c]
            what = "right" if r == c else "mistaken"
            return (f"true {true}, predicted {pred}: {n} sample{'s' if n != 1 else ''} ({share:.1%} of class "
                    f"{true}, {what}). Click to see them.")
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.classes):
            return self.classes[section]
        if role == Qt.ItemDataRole.ToolTipRole and 0 <= section < len(self.classes):
            total = int(self.matrix[section].sum() if orientation == Qt.Orientation.Vertical
                        else self.matrix[:, section].sum())
            right = int(self.matrix[section, section])
            if orientation == Qt.Orientation.Vertical:
                return f"true class {self.classes[section]}: {total} samples, {right} recognised"
            return f"predicted {self.classes[section]}: {total} times, {right} of them right"
        return None


# ---- the view -----------------------------------------------------------------------------------------------------
def _as_int_labels(a: Any, n: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.rint(arr.reshape(n, -1)[:, 0].astype(np.float64)).astype(np.int64)


def images_of(result: dict[str, Any], values: Any = None) -> np.ndarray | None:
    """The result's inputs (or `values` shaped like them) as images (N, C, H, W), also when the network saw them
    flattened (image_shape says how to fold them back); None for data that is no image."""
    x = result.get("x") if values is None else values
    if x is None:
        return None
    x = np.asarray(x)
    if result.get("is_image") and x.ndim == 4:
        return x
    shape = result.get("image_shape")
    if shape and int(np.prod(shape)) == int(np.prod(x.shape[1:])):
        return x.reshape(len(x), *[int(s) for s in shape])
    return None


def is_table(result: dict[str, Any] | None) -> bool:
    """Inputs that are rows of numeric features (not images, token ids or sequences) of a task with a score."""
    x = result.get("x") if result else None
    if x is None or str(result.get("task", CLASSIFICATION)) not in EXPLAINABLE:
        return False
    x = np.asarray(x)
    return x.ndim == 2 and np.issubdtype(x.dtype, np.floating) and images_of(result) is None


def _fmt_metric(key: str, value: float) -> tuple[str, str]:
    v = float(value)
    if key == "acc":
        return "accuracy", f"{v:.1%}"
    if key == "r2":
        return "R²", f"{v:.3f}"
    if key == "mae":
        return "mean abs. error", f"{v:.4g}"
    if key == "rmse":
        return "RMSE", f"{v:.4g}"
    return key, f"{v:.4g}"


class EvaluationView(QWidget):
    """Shows one evaluation: `show_result(dict)` with the keys of engine.evaluate.evaluate. A click on a sample in
    a gallery or table, or on a point of the scatter, emits `sample_selected(index)` (its index in the result).
    "Explain this prediction" (the button under a selected sample, a right-click or a double-click on one) emits
    `explain_requested(index)`; "Feature importance" (tables) emits `features_requested()`."""

    sample_selected = Signal(int)
    explain_requested = Signal(int)
    features_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("EvaluationView")
        self._result: dict[str, Any] | None = None
        self._scatter_xy: tuple[np.ndarray, np.ndarray] | None = None
        self._plot = None
        self._cell: tuple[int, int] | None = None

        page, body = scrolling_page(self, "evaluationPage", (14, 12, 14, 14))
        self._body = body

        self.title = QLabel("No evaluation yet", page)
        tf = QFont(self.font())
        tf.setPointSizeF(tf.pointSizeF() * 1.3)
        tf.setBold(True)
        self.title.setFont(tf)
        body.addWidget(self.title)
        self.metrics = QLabel(page)
        self.metrics.setTextFormat(Qt.TextFormat.RichText)
        self.metrics.setWordWrap(True)
        self.metrics.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        body.addWidget(self.metrics)
        # tables: which features matter (permutation importance, in the explain panel)
        self.features_row = QWidget(page)
        frow = QHBoxLayout(self.features_row)
        frow.setContentsMargins(0, 4, 0, 0)
        self.features_button = QPushButton("Feature importance…", self.features_row)
        self.features_button.setToolTip("Which features does the network rely on? Shuffles each feature of the "
                                        "validation split in turn and measures how much the score drops.")
        self.features_button.clicked.connect(lambda checked=False: self.features_requested.emit())
        frow.addWidget(self.features_button)
        self.features_note = QLabel("which input columns the network relies on", self.features_row)
        self.features_note.setProperty("muted", True)
        frow.addWidget(self.features_note)
        frow.addStretch(1)
        body.addWidget(self.features_row)

        # classification: the matrix and the samples of a cell
        self.confusion_title = section_label("Confusion matrix", page)
        body.addWidget(self.confusion_title)
        self.confusion_hint = QLabel("Rows are the true classes, columns the predicted ones; the diagonal is right. "
                                     "Click a cell to see its samples.", page)
        self.confusion_hint.setWordWrap(True)
        self.confusion_hint.setProperty("muted", True)
        body.addWidget(self.confusion_hint)
        self.confusion_model = ConfusionModel(self)
        self.confusion = QTableView(page)
        self.confusion.setObjectName("confusionMatrix")
        self.confusion.setModel(self.confusion_model)
        self.confusion.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.confusion.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.confusion.setShowGrid(True)
        self.confusion.setCornerButtonEnabled(False)
        self.confusion.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.confusion.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.confusion.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.confusion.clicked.connect(self._on_confusion_clicked)
        self.pred_axis = QLabel("true class ↓   predicted class →", page)
        self.pred_axis.setProperty("muted", True)
        body.addWidget(self.pred_axis)
        body.addWidget(self.confusion)

        self.cell_title = section_label("Samples of a cell", page)
        body.addWidget(self.cell_title)
        self.cell_gallery = ImageGallery(page)
        self.cell_gallery.sample_clicked.connect(self._on_sample_clicked)
        self.cell_table = SampleTable(page)
        self.cell_table.sample_clicked.connect(self._on_sample_clicked)
        self.cell_explain = self._explain_button(page, (self.cell_gallery, self.cell_table))
        body.addWidget(self.cell_explain)  # above the samples, so that it stays in sight after a click
        body.addWidget(self.cell_gallery)
        body.addWidget(self.cell_table)

        # regression: predicted against true
        self.scatter_title = section_label("Predicted against true", page)
        body.addWidget(self.scatter_title)
        self.scatter_host = QWidget(page)
        self.scatter_host.setMinimumHeight(300)
        QVBoxLayout(self.scatter_host).setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.scatter_host)

        # reconstruction: inputs beside outputs
        self.recon_title = section_label("Inputs and their reconstructions", page)
        body.addWidget(self.recon_title)
        self.recon_gallery = ImageGallery(page, cell=56)
        self.recon_gallery.sample_clicked.connect(self._on_sample_clicked)
        body.addWidget(self.recon_gallery)
        self.recon_table = SampleTable(page)
        self.recon_table.sample_clicked.connect(self._on_sample_clicked)
        body.addWidget(self.recon_table)

        # every task: the worst samples
        self.worst_title = section_label("Worst samples", page)
        body.addWidget(self.worst_title)
        self.worst_hint = QLabel(page)
        self.worst_hint.setWordWrap(True)
        self.worst_hint.setProperty("muted", True)
        body.addWidget(self.worst_hint)
        self.worst_gallery = ImageGallery(page)
        self.worst_gallery.sample_clicked.connect(self._on_sample_clicked)
        self.worst_table = SampleTable(page)
        self.worst_table.sample_clicked.connect(self._on_sample_clicked)
        self.worst_explain = self._explain_button(page, (self.worst_gallery, self.worst_table))
        body.addWidget(self.worst_explain)
        body.addWidget(self.worst_gallery)
        body.addWidget(self.worst_table)
        body.addStretch(1)

        self._apply_colors()
        self.clear()

    # ---- public --------------------------------------------------------------------------------------------------
    @property
    def result(self) -> dict[str, Any] | None:
        return self._result

    def clear(self) -> None:
        self._result = None
        self._cell = None
        self.title.setText("No evaluation yet")
        self.metrics.setText(f"<span style='color:{self._muted}'>Train the network, then evaluate it on the "
                             f"validation or test split to see what it gets right and wrong.</span>")
        for w in self._task_widgets():
            w.hide()

    def show_result(self, result: dict[str, Any]) -> None:
        """Show an evaluation (the dict of engine.evaluate.evaluate)."""
        self._result = result
        self._cell = None
        task = str(result.get("task", CLASSIFICATION))
        for w in self._task_widgets():
            w.hide()
        explain = EXPLAIN_TEXT if task in EXPLAINABLE else None
        for view in (self.cell_gallery, self.cell_table, self.worst_gallery, self.worst_table):
            view.explain_text = explain
        for button in (self.cell_explain, self.worst_explain):
            self._reset_explain(button)
        self._show_header(result)
        if is_table(result):
            self.features_row.show()
        if task in (CLASSIFICATION, BINARY):
            self._show_confusion(result)
        elif task == REGRESSION:
            self._show_scatter(result)
        elif task == RECONSTRUCTION:
            self._show_reconstructions(result)
        self._show_worst(result, task)

    def select_cell(self, true: int, pred: int) -> None:
        """Show the samples of one confusion cell, as a click on it does."""
        self.confusion.setCurrentIndex(self.confusion_model.index(true, pred))
        self._show_cell(true, pred)

    def cell_indices(self) -> list[int]:
        """The samples shown for the selected cell (gallery or table), by index in the result."""
        if self.cell_gallery.isVisibleTo(self):
            return self.cell_gallery.indices()
        return [int(self.cell_table.item(r, 0).data(INDEX_ROLE)) for r in range(self.cell_table.rowCount())]

    def scatter_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(true, predicted) of the regression scatter, flattened."""
        return self._scatter_xy

    @property
    def plot(self):
        """The pyqtgraph PlotWidget of the regression scatter (None until one is shown)."""
        return self._plot

    def explain_index(self, section: str = "worst") -> int | None:
        """The sample the "Explain this prediction" button of a section ("worst" or "cell") would explain."""
        button = self.worst_explain if section == "worst" else self.cell_explain
        index = button.property("sample")
        return None if index is None or index < 0 or not button.isVisibleTo(self) or not button.isEnabled() \
            else int(index)

    # ---- sections ------------------------------------------------------------------------------------------------
    def _explain_button(self, page: QWidget, views: tuple[ImageGallery, SampleTable]) -> QPushButton:
        """"Explain this prediction" above a gallery and its table: enabled once one of their samples is clicked."""
        button = QPushButton(EXPLAIN_TEXT, page)
        button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        button.setProperty("sample", -1)
        button.clicked.connect(lambda checked=False: self._explain_from(button))
        for view in views:
            view.explain_requested.connect(self.explain_requested)
            view.sample_clicked.connect(lambda i, b=button: self._offer_explain(b, i))
        return button

    def _offer_explain(self, button: QPushButton, index: int) -> None:
        result = self._result
        if result is None or str(result.get("task", CLASSIFICATION)) not in EXPLAINABLE:
            return
        info = self._labels(result, int(index))
        about = (f"{info['true']} → {info['pred']}" if "pred" in info and info.get("true") != info.get("pred")
                 else info.get("true", ""))
        button.setText(f"{EXPLAIN_TEXT}: sample {int(index)}" + (f" ({about})" if about else ""))
        button.setProperty("sample", int(index))
        button.setEnabled(True)

    def _reset_explain(self, button: QPushButton) -> None:
        button.setText(f"{EXPLAIN_TEXT} (click a sample first)")
        button.setProperty("sample", -1)
        button.setEnabled(False)

    def _explain_from(self, button: QPushButton) -> None:
        index = button.property("sample")
        if index is not None and index >= 0:
            self.explain_requested.emit(int(index))

    def _task_widgets(self) -> list[QWidget]:
        return [self.features_row, self.confusion_title, self.confusion_hint, self.confusion, self.pred_axis,
                self.cell_title, self.cell_gallery, self.cell_table, self.cell_explain, self.scatter_title,
                self.scatter_host, self.recon_title, self.recon_gallery, self.recon_table, self.worst_title,
                self.worst_hint, self.worst_gallery, self.worst_table, self.worst_explain]

    def _n(self, result: dict[str, Any]) -> int:
        n = result.get("n")
        if n is None:
            n = len(np.asarray(result.get("y_true", [])))
        return int(n)

    def _show_header(self, result: dict[str, Any]) -> None:
        split = str(result.get("split", "test"))
        names = {"val": "validation", "valid": "validation", "validation": "validation", "test": "test",
                 "train": "training"}
        n = self._n(result)
        task = str(result.get("task", CLASSIFICATION))
        self.title.setText(f"Results on the {names.get(split, split)} split")
        chips = []
        metrics = dict(result.get("metrics") or {})
        first = ("acc", "r2", "mae", "rmse", "loss")
        order = [k for k in first if k in metrics] + [k for k in metrics if k not in first]
        for key in order:
            if key in metrics and metrics[key] is not None:
                name, value = _fmt_metric(key, metrics[key])
                color = INFO_COLOR if key in ("acc", "r2") else self._text
                chips.append(f"<span style='color:{self._muted}'>{html.escape(name)}</span> "
                             f"<b style='color:{color}; font-size:large'>{html.escape(value)}</b>")
        what = {CLASSIFICATION: f"{len(result.get('classes') or [])} classes", BINARY: "yes/no",
                REGRESSION: "regression", RECONSTRUCTION: "reconstruction"}.get(task, task)
        total = result.get("n_total")
        count = f"{n:,d} of {int(total):,d} samples" if total is not None and int(total) > n else f"{n:,d} samples"
        data = f"{html.escape(str(result['data']))} · " if result.get("data") else ""
        chips.append(f"<span style='color:{self._muted}'>{data}{count} · {html.escape(what)}</span>")
        asked = result.get("requested_split")
        if asked and asked != split:
            chips.append(f"<span style='color:{self._muted}'>(the {names.get(str(asked), asked)} split is empty)"
                         f"</span>")
        self.metrics.setText("&nbsp;&nbsp;&nbsp;&nbsp;".join(chips))

    def _show_confusion(self, result: dict[str, Any]) -> None:
        matrix = np.asarray(result.get("confusion"), dtype=np.int64)
        classes = [str(c) for c in (result.get("classes") or range(matrix.shape[0]))]
        self.confusion_model.set_matrix(matrix, classes, self.palette())
        c = matrix.shape[0]
        fm = QFontMetrics(self.font())
        side = max(34, fm.horizontalAdvance(str(int(matrix.max()) if matrix.size else 0)) + 16,
                   max((fm.horizontalAdvance(x) for x in classes), default=0) + 14)
        side = min(side, 90)
        hh, vh = self.confusion.horizontalHeader(), self.confusion.verticalHeader()
        hh.setDefaultSectionSize(side)
        hh.setMinimumSectionSize(20)
        vh.setDefaultSectionSize(max(28, fm.height() + 12))
        vh.setMinimumSectionSize(20)
        width = vh.sizeHint().width() + side * c + 2 * self.confusion.frameWidth() + 2
        height = hh.sizeHint().height() + vh.defaultSectionSize() * c + 2 * self.confusion.frameWidth() + 2
        limit = 620
        self.confusion.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if width > limit
                                                    else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.confusion.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if height > limit
                                                  else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.confusion.setFixedSize(min(width, limit), min(height, limit))
        for w in (self.confusion_title, self.confusion_hint, self.confusion, self.pred_axis,
                  self.cell_title):
            w.show()
        # open the most frequent mistake, so the view shows samples at once
        off = matrix.copy()
        np.fill_diagonal(off, 0)
        if off.size and off.max() > 0:
            true, pred = np.unravel_index(int(np.argmax(off)), off.shape)
            self.select_cell(int(true), int(pred))
        else:
            self.cell_title.setText("SAMPLES OF A CELL")
            self.cell_gallery.clear("No mistakes: every sample lies on the diagonal. Click a cell to see its samples.")
            self.cell_gallery.show()

    def _show_cell(self, true: int, pred: int) -> None:
        result = self._result
        if result is None:
            return
        self._cell = (true, pred)
        n = self._n(result)
        yt, yp = _as_int_labels(result["y_true"], n), _as_int_labels(result["y_pred"], n)
        idx = np.flatnonzero((yt == true) & (yp == pred))
        classes = self.confusion_model.classes
        total = len(idx)
        head = f"True {classes[true]}, predicted {classes[pred]}: {total} sample{'s' if total != 1 else ''}"
        if total > MAX_CELL_SAMPLES:
            head += f" (the first {MAX_CELL_SAMPLES})"
        self.cell_title.setText(head.upper())
        self.cell_title.show()
        self._reset_explain(self.cell_explain)
        self.cell_explain.setVisible(total > 0 and str(result.get("task", CLASSIFICATION)) in EXPLAINABLE)
        idx = idx[:MAX_CELL_SAMPLES]
        mark = OK_COLOR if true == pred else ERROR_COLOR
        empty = (f"No sample of class {classes[true]} was predicted as {classes[pred]}.")
        self._fill_samples(result, idx, self.cell_gallery, self.cell_table, marks=[None if true == pred else mark]
                           * len(idx), empty=empty)

    def _show_scatter(self, result: dict[str, Any]) -> None:
        import pyqtgraph as pg  # loaded when a regression is first shown

        n = self._n(result)
        yt = np.asarray(result["y_true"], dtype=np.float64).reshape(n, -1)
        yp = np.asarray(result["y_pred"], dtype=np.float64).reshape(n, -1)
        k = yt.shape[1]
        x, y = yt.ravel(), yp.ravel()
        self._scatter_xy = (x, y)
        if self._plot is None:
            self._plot = pg.PlotWidget(self.scatter_host)
            self._plot.setObjectName("regressionScatter")
            self._plot.setMenuEnabled(False)
            self._plot.showGrid(x=True, y=True, alpha=0.15)
            self.scatter_host.layout().addWidget(self._plot)
        plot = self._plot
        self._style_plot()
        plot.clear()
        finite = np.isfinite(x) & np.isfinite(y)
        if finite.any():
            lo = float(min(x[finite].min(), y[finite].min()))
            hi = float(max(x[finite].max(), y[finite].max()))
        else:
            lo, hi = 0.0, 1.0
        pad = (hi - lo) * 0.05 or 0.5
        line = pg.PlotDataItem([lo - pad, hi + pad], [lo - pad, hi + pad],
                               pen=pg.mkPen(self._muted, width=1.5, style=Qt.PenStyle.DashLine))
        plot.addItem(line)
        sample = np.repeat(np.arange(n), k)
        brush = QColor(INFO_COLOR)
        brush.setAlpha(150)
        scatter = pg.ScatterPlotItem(x=x[finite], y=y[finite], data=sample[finite], size=7,
                                     pen=pg.mkPen(None), brush=brush, hoverable=True, tip=None)
        scatter.sigClicked.connect(self._on_points_clicked)
        plot.addItem(scatter)
        plot.setLabel("bottom", "true value")
        plot.setLabel("left", "predicted")
        plot.setAspectLocked(True)
        plot.setXRange(lo - pad, hi + pad, padding=0)
        plot.setYRange(lo - pad, hi + pad, padding=0)
        self._scatter_item = scatter
        metrics = result.get("metrics") or {}
        bits = [f"{_fmt_metric(key, metrics[key])[0]} {_fmt_metric(key, metrics[key])[1]}"
                for key in ("mae", "r2") if metrics.get(key) is not None]
        self.scatter_title.setText(("Predicted against true" + (f" ({', '.join(bits)})" if bits else "")
                                    + " — on the dashed line is right").upper())
        self.scatter_title.show()
        self.scatter_host.show()

    def _show_reconstructions(self, result: dict[str, Any]) -> None:
        outs = result.get("reconstructions")
        x = result.get("x")
        self.recon_title.show()
        if outs is None or x is None:
            self.recon_gallery.clear("No reconstructions in this result.")
            self.recon_gallery.show()
            return
        outs = np.asarray(outs)
        m = len(outs)
        x = np.asarray(x)[:m]
        losses = np.asarray(result.get("losses", np.zeros(m)), dtype=np.float64)
        xi, oi = images_of(result, x), images_of(result, outs)
        if xi is not None and oi is not None:
            caps = [f"#{i}\nloss {losses[i]:.3g}" if i < len(losses) else f"#{i}" for i in range(m)]
            tips = [f"sample {i}: input (left) and the network's output (right)" for i in range(m)]
            self.recon_gallery.set_samples(xi, caps, list(range(m)), tooltips=tips, pairs=oi)
            self.recon_gallery.show()
        else:
            flat_x, flat_o = x.reshape(m, -1), outs.reshape(m, -1)
            cols = min(6, flat_x.shape[1])
            headers = ["#", "loss"] + [f"in {c}" for c in range(cols)] + [f"out {c}" for c in range(cols)]
            rows = [[i, float(losses[i]) if i < len(losses) else ""] + list(flat_x[i, :cols]) + list(flat_o[i, :cols])
                    for i in range(m)]
            self.recon_table.set_rows(headers, rows)
            self.recon_table.show()

    def _show_worst(self, result: dict[str, Any], task: str) -> None:
        worst = np.asarray(result.get("worst", []), dtype=np.int64).ravel()[:64]
        self.worst_title.setText({CLASSIFICATION: "Worst classified", BINARY: "Worst classified",
                                  REGRESSION: "Largest errors", RECONSTRUCTION: "Worst reconstructed"
                                  }.get(task, "Worst samples").upper() + f" ({len(worst)})")
        self.worst_hint.setText("The samples with the highest loss first: the ones the network finds hardest. "
                                + ("Click one, then Explain this prediction (or right-click or double-click it) "
                                   "to see what the network looked at." if task in EXPLAINABLE else
                                   "Click one to select it."))
        for w in (self.worst_title, self.worst_hint):
            w.show()
        self.worst_explain.setVisible(task in EXPLAINABLE and len(worst) > 0)
        n = self._n(result)
        marks = None
        if task in (CLASSIFICATION, BINARY):
            yt, yp = _as_int_labels(result["y_true"], n), _as_int_labels(result["y_pred"], n)
            marks = [ERROR_COLOR if yt[i] != yp[i] else None for i in worst]
        self._fill_samples(result, worst, self.worst_gallery, self.worst_table, marks=marks,
                           empty="No samples to show.")

    # ---- samples as images or rows -------------------------------------------------------------------------------
    def _labels(self, result: dict[str, Any], i: int) -> dict[str, Any]:
        """What to say about sample i: true, predicted, confidence, loss (as far as the result knows)."""
        n = self._n(result)
        task = str(result.get("task", CLASSIFICATION))
        out: dict[str, Any] = {}
        losses = result.get("losses")
        if losses is not None and i < len(losses):
            out["loss"] = float(np.asarray(losses)[i])
        if task in (CLASSIFICATION, BINARY):
            classes = [str(c) for c in (result.get("classes") or [])]
            yt, yp = int(_as_int_labels(result["y_true"], n)[i]), int(_as_int_labels(result["y_pred"], n)[i])
            out["true"] = classes[yt] if 0 <= yt < len(classes) else str(yt)
            out["pred"] = classes[yp] if 0 <= yp < len(classes) else str(yp)
            out["right"] = yt == yp
            conf = result.get("confidence")
            if conf is not None and i < len(conf):
                out["confidence"] = float(np.asarray(conf).reshape(-1)[i])
        elif task == REGRESSION:
            yt = np.asarray(result["y_true"], dtype=np.float64).reshape(n, -1)[i]
            yp = np.asarray(result["y_pred"], dtype=np.float64).reshape(n, -1)[i]
            out["true"] = ", ".join(f"{v:.3g}" for v in yt)
            out["pred"] = ", ".join(f"{v:.3g}" for v in yp)
        return out

    def _caption(self, task: str, info: dict[str, Any]) -> str:
        if task in (CLASSIFICATION, BINARY):
            conf = f"{info['confidence']:.0%}" if "confidence" in info else ""
            if info.get("right"):
                return f"{info['true']} ✓\n{conf}"
            return f"{info['true']} → {info['pred']}\n{conf}"
        if task == REGRESSION:
            return f"{info['true']} → {info['pred']}"
        return f"loss {info['loss']:.3g}" if "loss" in info else ""

    def _tooltip(self, i: int, task: str, info: dict[str, Any]) -> str:
        parts = [f"sample {i}"]
        if task in (CLASSIFICATION, BINARY):
            parts.append(f"true {info['true']}, predicted {info['pred']}"
                         + (f" with {info['confidence']:.1%} confidence" if "confidence" in info else ""))
        elif task == REGRESSION:
            parts.append(f"true {info['true']}, predicted {info['pred']}")
        if "loss" in info:
            parts.append(f"loss {info['loss']:.4g}")
        return ": ".join(parts[:2]) + ("; " + parts[2] if len(parts) > 2 else "")

    def _fill_samples(self, result: dict[str, Any], idx: np.ndarray, gallery: ImageGallery, table: SampleTable,
                      marks: list[str | None] | None, empty: str) -> None:
        task = str(result.get("task", CLASSIFICATION))
        x = result.get("x")
        infos = [self._labels(result, int(i)) for i in idx]
        xs = images_of(result)
        if xs is not None or len(idx) == 0:
            table.hide()
            if len(idx) == 0:
                gallery.clear(empty)
            else:
                gallery.set_samples(xs[idx], [self._caption(task, f) for f in infos], [int(i) for i in idx],
                                    tooltips=[self._tooltip(int(i), task, f) for i, f in zip(idx, infos)],
                                    marks=marks, value_range=image_range(xs))
            gallery.show()
            return
        gallery.hide()
        flat = np.asarray(x).reshape(len(np.asarray(x)), -1) if x is not None else np.zeros((self._n(result), 0))
        cols = min(8, flat.shape[1])
        headers = ["#"]
        if task in (CLASSIFICATION, BINARY, REGRESSION):
            headers += ["true", "predicted"]
        if task in (CLASSIFICATION, BINARY):
            headers.append("confidence")
        headers.append("loss")
        headers += [f"x{c}" for c in range(cols)] + (["…"] if flat.shape[1] > cols else [])
        rows = []
        for i, info in zip(idx, infos):
            row: list[Any] = [int(i)]
            if task in (CLASSIFICATION, BINARY, REGRESSION):
                row += [info.get("true", ""), info.get("pred", "")]
            if task in (CLASSIFICATION, BINARY):
                row.append(f"{info['confidence']:.0%}" if "confidence" in info else "")
            row.append(info.get("loss", ""))
            row += [float(v) for v in flat[int(i), :cols]] + (["…"] if flat.shape[1] > cols else [])
            rows.append(row)
        table.set_rows(headers, rows, [int(i) for i in idx], marks=marks,
                       tooltips=[self._tooltip(int(i), task, f) for i, f in zip(idx, infos)])
        table.show()

    # ---- handlers ------------------------------------------------------------------------------------------------
    def _on_confusion_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self._show_cell(index.row(), index.column())

    def _on_sample_clicked(self, index: int) -> None:
        self.sample_selected.emit(int(index))

    def _on_points_clicked(self, _item, points, *_args) -> None:
        if len(points):
            self.sample_selected.emit(int(points[0].data()))

    # ---- colours -------------------------------------------------------------------------------------------------
    def _apply_colors(self) -> None:
        pal = self.palette()
        self._muted = _muted(pal).name()
        self._text = pal.color(QPalette.ColorRole.Text).name()
        for label in self.findChildren(QLabel):
            if label.property("muted") or label.property("section"):
                label.setStyleSheet(f"color: {self._muted};")
        self._style_plot()

    def _style_plot(self) -> None:
        if self._plot is None:
            return
        pal = self.palette()
        self._plot.setBackground(pal.color(QPalette.ColorRole.Base))
        for side in ("left", "bottom"):
            axis = self._plot.getAxis(side)
            axis.setPen(QPen(QColor(self._muted)))
            axis.setTextPen(QPen(pal.color(QPalette.ColorRole.Text)))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "worst_table"):
            self._apply_colors()
            if self._result is not None:
                cell = self._cell
                self.show_result(self._result)
                if cell is not None:
                    self.select_cell(*cell)


__all__ = ["ConfusionModel", "EvaluationView", "ImageGallery", "SampleTable", "image_range", "is_table", "to_qimage"]
