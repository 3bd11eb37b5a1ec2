"""The start page shown when no project is open: new / open buttons, recent files, and a gallery of the bundled
templates, each card with a picture of its network, what it learns and its size."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QTextLayout,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.errors import ProjectError
from engine.graph import Graph
from engine.shapes import analyze
from engine.templates import load_template, template_names

from .colors import CATEGORY_COLORS
from .theme import is_dark
from .thumbnail import graph_thumbnail

TAGLINE = "Draw a neural network, watch it learn, and take it away as PyTorch."
CARD_MIN_WIDTH = 232
THUMB_HEIGHT = 140
GAP = 16
_ACRONYMS = {"cnn", "mlp", "gru", "lstm", "rnn", "mnist", "cifar", "mse"}


@dataclass
class TemplateInfo:
    """What a card shows about one bundled template."""

    name: str
    title: str
    description: str
    params: int
    layers: int
    graph: Graph


def readable_title(name: str) -> str:
    """A template's file name as a title: "cnn_mnist" → "CNN MNIST", "gru_two_branch" → "GRU two branch"."""
    words: list[str] = []
    for part in name.replace("-", "_").split("_"):
        if not part:
            continue
        if part.isdigit() and words and words[-1][-1].isdigit():
            words[-1] += f"-{part}"  # mlp_784_64_10 → MLP 784-64-10: the layer widths read as one figure
        elif part.lower() in _ACRONYMS:
            words.append(part.upper())
        else:
            words.append(part.capitalize() if not words else part.lower())
    return " ".join(words) or name


def params_text(count: int) -> str:
    return f"{count:,} parameter{'s' if count != 1 else ''}"


def load_template_infos() -> list[TemplateInfo]:
    """Every bundled template that loads (a broken file is left out rather than taking the page down)."""
    infos = []
    for name in template_names():
        try:
            project = load_template(name)
        except ProjectError:
            continue
        infos.append(TemplateInfo(name, readable_title(name), project.description or "",
                                  analyze(project.graph).total_params, len(project.graph), project.graph))
    return infos


# ---- colours derived from the palette, so both themes and a live switch work ------------------------------
def _mix(a: QColor, b: QColor, t: float) -> QColor:
    """`a` moved a fraction `t` of the way towards `b`."""
    return QColor.fromRgbF(*(x + (y - x) * t for x, y in zip(a.getRgbF()[:3], b.getRgbF()[:3])))


def muted_text(palette: QPalette) -> QColor:
    return _mix(palette.color(QPalette.ColorRole.WindowText), palette.color(QPalette.ColorRole.Window), 0.38)


def card_color(palette: QPalette) -> QColor:
    window = palette.color(QPalette.ColorRole.Window)
    return window.lighter(122) if is_dark(palette) else palette.color(QPalette.ColorRole.Base)


def border_color(palette: QPalette) -> QColor:
    window = palette.color(QPalette.ColorRole.Window)
    return window.lighter(150) if is_dark(palette) else window.darker(110)


def accent_color(palette: QPalette) -> QColor:
    return palette.color(QPalette.ColorRole.Accent)


def _set_text_color(label: QLabel, color: QColor) -> None:
    palette = label.palette()
    palette.setColor(QPalette.ColorRole.WindowText, color)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, _mix(color, label.palette().color(
        QPalette.ColorRole.Window), 0.45))
    label.setPalette(palette)


def _font(widget: QWidget, scale: float, weight: QFont.Weight = QFont.Weight.Normal) -> QFont:
    font = QFont(widget.font())
    font.setPointSizeF(max(6.0, font.pointSizeF() * scale))
    font.setWeight(weight)
    return font


def elide_lines(text: str, font: QFont, width: float, lines: int) -> str:
    """`text` wrapped at `width` and cut to `lines` lines, the last one ending in "…" when text was cut."""
    if width <= 0 or not text:
        return text
    layout = QTextLayout(text, font)
    layout.beginLayout()
    starts: list[tuple[int, int]] = []
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        starts.append((line.textStart(), line.textLength()))
    layout.endLayout()
    if len(starts) <= lines:
        return text
    kept = text[:starts[lines - 1][0]]
    last = text[starts[lines - 1][0]:].strip()
    return kept + QFontMetricsF(font).elidedText(last, Qt.TextElideMode.ElideRight, width)


# ---- the gallery ------------------------------------------------------------------------------------------
class _Thumbnail(QWidget):
    """The network's picture, drawn again when the card's width or the theme changes (a few ms)."""

    def __init__(self, graph, parent: QWidget | None = None):
        super().__init__(parent)
        self._graph = graph
        self._pixmap: QPixmap | None = None
        self._key: tuple | None = None
        self.setFixedHeight(THUMB_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def pixmap(self) -> QPixmap:
        ratio = self.devicePixelRatioF()
        key = (self.width(), self.height(), ratio, self.palette().color(QPalette.ColorRole.Window).rgba())
        if self._pixmap is None or key != self._key:
            self._pixmap = graph_thumbnail(self._graph, self.size(), self.palette(), ratio)
            self._key = key
        return self._pixmap

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self.pixmap())
        painter.end()


class _HoverFrame(QFrame):
    """A clickable frame that repaints when the pointer enters or leaves (`_hovered`) and recolours its texts
    when the palette changes (`_on_palette_changed`): what the template cards and the recent rows share."""

    _hovered = False

    def event(self, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.HoverEnter, QEvent.Type.HoverLeave):
            self._hovered = event.type() == QEvent.Type.HoverEnter
            self.update()
        return super().event(event)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._on_palette_changed()
        super().changeEvent(event)

    def _on_palette_changed(self) -> None:
        """Recolour what the palette does not reach (labels with their own colours)."""


class TemplateCard(_HoverFrame):
    """One template in the gallery: click it, or focus it and press Enter, to start from it."""

    activated = Signal(str)

    def __init__(self, info: TemplateInfo, parent: QWidget | None = None):
        super().__init__(parent)
        self.info = info
        self.name = info.name
        self._hovered = False
        self._pressed = False
        self.setObjectName(f"card_{info.name}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setAttribute(Qt.WidgetAttribute.WA_Hover)
        self.setToolTip(f"<b>{info.title}</b><br>{info.description}<br><br>Click or press Enter to open a copy.")
        self.setAccessibleName(f"Template {info.title}")
        self.setAccessibleDescription(f"{info.description} {params_text(info.params)}.")

        self.thumbnail = _Thumbnail(info.graph, self)
        self.title_label = QLabel(info.title, self)
        self.title_label.setObjectName("title")
        self.title_label.setFont(_font(self, 1.2, QFont.Weight.DemiBold))
        self.description_label = QLabel(self)
        self.description_label.setObjectName("description")
        self.description_label.setWordWrap(True)
        self.description_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.params_label = QLabel(params_text(info.params), self)
        self.params_label.setObjectName("params")
        self.layers_label = QLabel(f"{info.layers} layer{'s' if info.layers != 1 else ''}", self)
        self.layers_label.setObjectName("layers")
        self.layers_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        small = _font(self, 0.92)
        self.params_label.setFont(small)
        self.layers_label.setFont(small)
        for label in (self.title_label, self.description_label, self.params_label, self.layers_label):
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        # Three lines of description always, so that cards in a row line up whatever their text.
        self._description_lines = 3
        line = QFontMetricsF(self.description_label.font()).lineSpacing()
        self.description_label.setFixedHeight(round(line * self._description_lines) + 2)

        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.addWidget(self.params_label, 1)
        footer.addWidget(self.layers_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 12)
        layout.setSpacing(0)
        layout.addWidget(self.thumbnail)
        layout.addSpacing(12)
        text = QVBoxLayout()
        text.setContentsMargins(6, 0, 6, 0)
        text.setSpacing(4)
        text.addWidget(self.title_label)
        text.addWidget(self.description_label)
        text.addSpacing(6)
        text.addLayout(footer)
        layout.addLayout(text)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._on_palette_changed()

    def description(self) -> str:
        return self.info.description

    def sizeHint(self) -> QSize:
        return QSize(CARD_MIN_WIDTH, self.layout().sizeHint().height())

    # ---- input -------------------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._pressed = True
            self.update()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        was_pressed, self._pressed = self._pressed, False
        self.update()
        # Released outside the card: the user changed their mind, as with a button.
        if was_pressed and event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
                event.position().toPoint()):
            self.activated.emit(self.name)
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.activated.emit(self.name)
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide_description()

    def _on_palette_changed(self) -> None:
        palette = self.palette()
        _set_text_color(self.description_label, muted_text(palette))
        _set_text_color(self.params_label, muted_text(palette))
        _set_text_color(self.layers_label, muted_text(palette))
        self._elide_description()

    def _elide_description(self) -> None:
        width = self.description_label.width() or (self.width() - 28)
        self.description_label.setText(elide_lines(self.info.description, self.description_label.font(), width,
                                                   self._description_lines))

    # ---- look ------------------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        palette = self.palette()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(1.5, 1.5, -1.5, -2.5)
        lifted = self._hovered or self.hasFocus()
        if lifted and not self._pressed:  # a soft shadow under a hovered card: it looks pressable
            for i, alpha in enumerate((26, 16, 8)):
                shadow = QColor(0, 0, 0, alpha * (2 if is_dark(palette) else 1))
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(shadow)
                painter.drawRoundedRect(rect.translated(0, 1.0 + i), 10, 10)
        fill = card_color(palette)
        if self._pressed:
            fill = fill.darker(106) if not is_dark(palette) else fill.lighter(108)
        accent = accent_color(palette)
        border = accent if lifted else border_color(palette)
        painter.setPen(QPen(border, 2.0 if self.hasFocus() else 1.0))
        painter.setBrush(fill)
        painter.drawRoundedRect(rect, 10, 10)
        painter.end()


class _CardGrid(QLayout):
    """A uniform grid that reflows: as many columns as fit, cards stretched to share the spare width."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self.setContentsMargins(0, 0, 0, 0)
        self.columns = 1

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        height = max((i.sizeHint().height() for i in self._items), default=0)
        return QSize(CARD_MIN_WIDTH, height)

    def _columns_for(self, width: int) -> int:
        return max(1, (width + GAP) // (CARD_MIN_WIDTH + GAP))

    def _arrange(self, rect: QRect, move: bool) -> int:
        if not self._items:
            return 0
        columns = min(self._columns_for(rect.width()), len(self._items))
        # Cap the stretch: with few cards on a wide window, cards keep a card's size instead of becoming banners.
        cell_w = min((rect.width() - GAP * (columns - 1)) // columns, int(CARD_MIN_WIDTH * 1.45))
        cell_h = max(i.sizeHint().height() for i in self._items)
        if move:
            self.columns = columns
            for index, item in enumerate(self._items):
                row, col = divmod(index, columns)
                item.setGeometry(QRect(rect.x() + col * (cell_w + GAP), rect.y() + row * (cell_h + GAP),
                                       cell_w, cell_h))
        rows = (len(self._items) + columns - 1) // columns
        return rows * cell_h + (rows - 1) * GAP


class TemplateGallery(QWidget):
    """The cards, one per template; arrow keys move between them as in a grid."""

    template_chosen = Signal(str)

    def __init__(self, infos: list[TemplateInfo], parent: QWidget | None = None):
        super().__init__(parent)
        self.grid = _CardGrid(self)
        self.cards: list[TemplateCard] = []
        for info in infos:
            card = TemplateCard(info, self)
            card.activated.connect(self.template_chosen)
            card.installEventFilter(self)
            self.grid.addWidget(card)
            self.cards.append(card)
        sp = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        sp.setHeightForWidth(True)
        self.setSizePolicy(sp)

    def card(self, name: str) -> TemplateCard:
        return next(c for c in self.cards if c.name == name)

    def eventFilter(self, watched, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and watched in self.cards:
            step = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_Up: -self.grid.columns,
                    Qt.Key.Key_Down: self.grid.columns}.get(event.key())
            if step is not None:
                target = self.cards.index(watched) + step
                if 0 <= target < len(self.cards):
                    self.cards[target].setFocus(Qt.FocusReason.TabFocusReason)
                return True
        return super().eventFilter(watched, event)


# ---- recent files -----------------------------------------------------------------------------------------
def _short_folder(path: Path) -> str:
    """The folder with the home directory written as ~, as file managers and shells do."""
    folder = str(path.parent)
    home = str(Path.home())
    if folder == home or folder.startswith(home + os.sep):
        folder = "~" + folder[len(home):]
    return folder


class RecentRow(_HoverFrame):
    """One recent file: its name over its folder; greyed and inert when the file is gone."""

    activated = Signal(str)

    def __init__(self, path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.path = path
        self.missing = not Path(path).is_file()
        self._hovered = False
        p = Path(path)
        self.name_label = QLabel(self)
        self.name_label.setObjectName("name")
        self.name_label.setFont(_font(self, 1.0, QFont.Weight.DemiBold))
        self.folder_label = QLabel(self)
        self.folder_label.setObjectName("folder")
        self.folder_label.setFont(_font(self, 0.92))
        self._folder = _short_folder(p)
        for label in (self.name_label, self.folder_label):
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(38, 7, 10, 7)
        layout.setSpacing(1)
        layout.addWidget(self.name_label)
        layout.addWidget(self.folder_label)
        self.setAttribute(Qt.WidgetAttribute.WA_Hover)
        self.setToolTip(f"{path}\n(the file is no longer there)" if self.missing else path)
        self.setAccessibleName(f"Recent file {p.name}" + (", missing" if self.missing else ""))
        if self.missing:
            self.setEnabled(False)
        else:
            self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._on_palette_changed()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if (not self.missing and event.button() == Qt.MouseButton.LeftButton
                and self.rect().contains(event.position().toPoint())):
            self.activated.emit(self.path)
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self.missing and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.activated.emit(self.path)
            return
        super().keyPressEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide_folder()

    def _on_palette_changed(self) -> None:
        _set_text_color(self.folder_label, muted_text(self.palette()))
        self._elide_folder()

    def _elide_folder(self) -> None:
        # A long name loses its end but keeps the "(missing)" mark; a folder loses its middle first: the start
        # says which drive or home, the end which project folder.
        width = max(40, self.width() - 48)
        suffix = "  (missing)" if self.missing else ""
        name_metrics = QFontMetricsF(self.name_label.font())
        self.name_label.setText(name_metrics.elidedText(Path(self.path).name, Qt.TextElideMode.ElideRight,
                                                        width - name_metrics.horizontalAdvance(suffix)) + suffix)
        self.folder_label.setText(QFontMetricsF(self.folder_label.font()).elidedText(
            self._folder, Qt.TextElideMode.ElideMiddle, width))

    def paintEvent(self, event: QPaintEvent) -> None:
        palette = self.palette()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if (self._hovered or self.hasFocus()) and not self.missing:
            hover = QColor(accent_color(palette))
            hover.setAlphaF(0.14 if is_dark(palette) else 0.09)
            painter.setPen(QPen(accent_color(palette), 1.5) if self.hasFocus() else Qt.PenStyle.NoPen)
            painter.setBrush(hover)
            painter.drawRoundedRect(QRectF(self.rect()).adjusted(1, 1, -1, -1), 7, 7)
        self._paint_file_glyph(painter, QRectF(12, self.height() / 2 - 10, 16, 20), palette)
        painter.end()

    def _paint_file_glyph(self, painter: QPainter, r: QRectF, palette: QPalette) -> None:
        """A sheet with a folded corner and three coloured layer bars: a LayerLoom file at a glance."""
        ink = muted_text(palette) if not self.missing else palette.color(
            QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
        fold = 5.0
        painter.setPen(QPen(ink, 1.2))
        painter.setBrush(card_color(palette))
        outline = [QPointF(r.left(), r.top()), QPointF(r.right() - fold, r.top()), QPointF(r.right(), r.top() + fold),
                   QPointF(r.right(), r.bottom()), QPointF(r.left(), r.bottom())]
        painter.drawPolygon(outline)
        painter.drawPolyline([QPointF(r.right() - fold, r.top()), QPointF(r.right() - fold, r.top() + fold),
                              QPointF(r.right(), r.top() + fold)])
        painter.setPen(Qt.PenStyle.NoPen)
        for i, category in enumerate(("Input", "Convolution", "Core")):
            color = QColor(CATEGORY_COLORS[category])
            if self.missing:
                color = _mix(color, palette.color(QPalette.ColorRole.Window), 0.6)
            painter.setBrush(color)
            painter.drawRoundedRect(QRectF(r.left() + 3, r.top() + 6 + i * 4.2, r.width() - 6, 2.6), 1, 1)


class RecentList(QWidget):
    """The recent files, newest first, or a line saying there are none yet."""

    open_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows: list[RecentRow] = []
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self.empty_label = QLabel("No recent projects yet.\nProjects you open or save will appear here.", self)
        self.empty_label.setWordWrap(True)
        self.empty_label.setContentsMargins(4, 4, 4, 4)
        self._layout.addWidget(self.empty_label)
        self._layout.addStretch(1)
        self._on_palette_changed()

    def set_paths(self, paths: list[str]) -> None:
        for row in self.rows:
            self._layout.removeWidget(row)
            row.deleteLater()
        self.rows = []
        for index, path in enumerate(dict.fromkeys(str(p) for p in paths)):
            row = RecentRow(path, self)
            row.activated.connect(self.open_requested)
            self._layout.insertWidget(index, row)
            self.rows.append(row)
        self.empty_label.setVisible(not self.rows)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._on_palette_changed()
        super().changeEvent(event)

    def _on_palette_changed(self) -> None:
        _set_text_color(self.empty_label, muted_text(self.palette()))


# ---- the page ---------------------------------------------------------------------------------------------
class _LogoMark(QWidget):
    """The app's mark: three layers wired top to bottom on an accent tile."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFixedSize(40, 40)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        accent = accent_color(self.palette())
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(accent)
        painter.drawRoundedRect(QRectF(0, 0, 40, 40), 10, 10)
        painter.setPen(QPen(QColor(255, 255, 255, 170), 1.6))
        painter.drawLine(QPointF(20, 12), QPointF(13, 20))
        painter.drawLine(QPointF(20, 12), QPointF(27, 20))
        painter.drawLine(QPointF(13, 20), QPointF(20, 28))
        painter.drawLine(QPointF(27, 20), QPointF(20, 28))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#ffffff"))
        for x, y in ((20, 11), (12.5, 20), (27.5, 20), (20, 29)):
            painter.drawRoundedRect(QRectF(x - 5, y - 2.6, 10, 5.2), 2, 2)
        painter.end()


class _Sidebar(QFrame):
    def paintEvent(self, event: QPaintEvent) -> None:
        palette = self.palette()
        painter = QPainter(self)
        window = palette.color(QPalette.ColorRole.Window)
        painter.fillRect(self.rect(), window.darker(112) if is_dark(palette) else palette.color(
            QPalette.ColorRole.Base))
        painter.setPen(border_color(palette))
        painter.drawLine(self.width() - 1, 0, self.width() - 1, self.height())
        painter.end()


class StartPage(QWidget):
    """Shown when no project is open. Signals: `template_chosen(name)`, `open_requested(path)` (a recent file),
    `open_other()` (the Open… button), `new_empty()`."""

    template_chosen = Signal(str)
    open_requested = Signal(str)
    open_other = Signal()
    new_empty = Signal()

    def __init__(self, parent: QWidget | None = None, templates: list[TemplateInfo] | None = None):
        super().__init__(parent)
        self.setObjectName("startPage")
        self.templates = templates if templates is not None else load_template_infos()

        # Left: who we are, the two ways in, and the recent files.
        sidebar = _Sidebar(self)
        sidebar.setFixedWidth(312)
        side = QVBoxLayout(sidebar)
        side.setContentsMargins(28, 36, 20, 20)
        side.setSpacing(0)
        brand = QHBoxLayout()
        brand.setSpacing(12)
        brand.addWidget(_LogoMark(sidebar))
        self.title_label = QLabel("LayerLoom", sidebar)
        self.title_label.setObjectName("appTitle")
        self.title_label.setFont(_font(self, 2.2, QFont.Weight.Bold))
        brand.addWidget(self.title_label, 1)
        side.addLayout(brand)
        side.addSpacing(12)
        self.tagline_label = QLabel(TAGLINE, sidebar)
        self.tagline_label.setObjectName("tagline")
        self.tagline_label.setWordWrap(True)
        self.tagline_label.setFont(_font(self, 1.08))
        side.addWidget(self.tagline_label)
        side.addSpacing(26)
        self.new_button = QPushButton("New empty project", sidebar)
        self.new_button.setObjectName("primaryButton")
        self.new_button.setToolTip("A new project holding only an Input layer, ready for yours (Ctrl+Shift+N)")
        self.new_button.clicked.connect(self.new_empty)
        self.open_button = QPushButton("Open…", sidebar)
        self.open_button.setObjectName("secondaryButton")
        self.open_button.setToolTip("Open a .layerloom project from disk (Ctrl+O)")
        self.open_button.clicked.connect(self.open_other)
        for button in (self.new_button, self.open_button):
            button.setCursor(Qt.CursorShape.PointingHandCursor)
            button.setMinimumHeight(38)
            side.addWidget(button)
            side.addSpacing(8)
        side.addSpacing(26)
        self.recent_heading = QLabel("RECENT", sidebar)
        self.recent_heading.setFont(_letter_spaced(_font(self, 0.85, QFont.Weight.Bold)))
        side.addWidget(self.recent_heading)
        side.addSpacing(8)
        self.recent = RecentList(sidebar)
        self.recent.open_requested.connect(self.open_requested)
        recent_scroll = QScrollArea(sidebar)
        recent_scroll.setFrameShape(QFrame.Shape.NoFrame)
        recent_scroll.setWidgetResizable(True)
        recent_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        recent_scroll.setWidget(self.recent)
        _transparent(recent_scroll)
        side.addWidget(recent_scroll, 1)

        # Right: the template gallery, scrolling when the window is short.
        content = QWidget()
        body = QVBoxLayout(content)
        body.setContentsMargins(40, 36, 40, 36)
        body.setSpacing(0)
        self.gallery_heading = QLabel("Start from a template", content)
        self.gallery_heading.setFont(_font(self, 1.55, QFont.Weight.DemiBold))
        body.addWidget(self.gallery_heading)
        body.addSpacing(6)
        self.gallery_hint = QLabel("Each one is a working network with its data and training settings. Open a "
                                   "copy and press Train, or change it first.", content)
        self.gallery_hint.setWordWrap(True)
        body.addWidget(self.gallery_hint)
        body.addSpacing(22)
        self.gallery = TemplateGallery(self.templates, content)
        self.gallery.template_chosen.connect(self.template_chosen)
        body.addWidget(self.gallery)
        body.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        _transparent(scroll)
        self.scroll = scroll

        page = QHBoxLayout(self)
        page.setContentsMargins(0, 0, 0, 0)
        page.setSpacing(0)
        page.addWidget(sidebar)
        page.addWidget(scroll, 1)
        self._on_palette_changed()

    @property
    def cards(self) -> list[TemplateCard]:
        return self.gallery.cards

    def set_recent(self, paths: list[str]) -> None:
        """Show these files (newest first); missing ones greyed out and marked "(missing)"."""
        self.recent.set_paths(list(paths))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._on_palette_changed()
        super().changeEvent(event)

    def _on_palette_changed(self) -> None:
        palette = self.palette()
        for label in (self.tagline_label, self.gallery_hint, self.recent_heading):
            _set_text_color(label, muted_text(palette))
        style = _button_style(palette)
        if style != self.styleSheet():  # polishing with a new sheet can echo a palette change: set it once
            self.setStyleSheet(style)


def _letter_spaced(font: QFont) -> QFont:
    font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 110)
    return font


def _transparent(scroll: QScrollArea) -> None:
    """Let the page's own background show through a scroll area."""
    scroll.setAutoFillBackground(False)
    scroll.viewport().setAutoFillBackground(False)
    if scroll.widget() is not None:
        scroll.widget().setAutoFillBackground(False)


def _button_style(palette: QPalette) -> str:
    """Flat, rounded buttons in the palette's colours: a filled accent one for the main action."""
    accent = accent_color(palette)
    dark = is_dark(palette)
    text = palette.color(QPalette.ColorRole.ButtonText).name()
    button = card_color(palette)
    return f"""
        QPushButton#primaryButton {{
            background: {accent.name()}; color: #ffffff; border: none; border-radius: 7px;
            padding: 8px 16px; font-weight: 600; text-align: left;
        }}
        QPushButton#primaryButton:hover {{ background: {accent.lighter(110).name()}; }}
        QPushButton#primaryButton:pressed {{ background: {accent.darker(112).name()}; }}
        QPushButton#primaryButton:focus {{ border: 2px solid {_mix(accent, QColor('#ffffff'), 0.5).name()}; }}
        QPushButton#secondaryButton {{
            background: {button.name()}; color: {text}; border: 1px solid {border_color(palette).name()};
            border-radius: 7px; padding: 8px 16px; text-align: left;
        }}
        QPushButton#secondaryButton:hover {{
            border-color: {accent.name()};
            background: {(button.lighter(112) if dark else _mix(button, accent, 0.05)).name()};
        }}
        QPushButton#secondaryButton:pressed {{ background: {(button.darker(110)).name()}; }}
        QPushButton#secondaryButton:focus {{ border: 2px solid {accent.name()}; }}
    """
