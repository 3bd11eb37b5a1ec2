"""The layer palette: every catalogue layer grouped by category, searchable, draggable onto the canvas, with an
info pane that explains the selected layer (summary, explanation, formula).

Icons are drawn here with QPainter (a white glyph on the category colour), so the app ships no image files for
them; `layer_icon` and `category_icon` are cached and usable by other views.
"""
from __future__ import annotations

import html
import math

from PySide6.QtCore import QEvent, QMimeData, QObject, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QDrag,
    QFont,
    QFontMetrics,
    QIcon,
    QKeyEvent,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine import blocks as block_lib
from engine.errors import ProjectError, UnknownLayerError
from engine.layers import CATEGORIES, LayerSpec, by_category, get_spec

from .colors import category_color, layer_color
from .document import LAYER_MIME

TYPE_ROLE = Qt.ItemDataRole.UserRole  # the layer type of a layer row; None on a category row
BLOCK_ROLE = Qt.ItemDataRole.UserRole + 1  # a block row's key ("shipped:res_block", "library:my_block")
BLOCK_MIME = "application/x-layerloom-block"  # a Blocks row's drag: the block definition as JSON (UTF-8)
BLOCKS = "Blocks"
_ICON_SIZES = (16, 20, 24, 32, 48)
_icons: dict[str, QIcon] = {}


# ---- icons ---------------------------------------------------------------------------------------------------
def _glyph(p: QPainter, category: str) -> None:
    """A white glyph for the category on a 24×24 grid (the painter is already scaled)."""
    pen = QPen(QColor("white"), 2.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    white = QColor("white")
    if category == "Input":  # an arrow into a bar
        p.drawLine(QPointF(5, 12), QPointF(14, 12))
        p.drawPolyline([QPointF(10.5, 8), QPointF(14.5, 12), QPointF(10.5, 16)])
        p.drawLine(QPointF(18.5, 6), QPointF(18.5, 18))
    elif category == "Core":  # fully connected: two nodes to two nodes
        pen.setWidthF(1.3)
        p.setPen(pen)
        left, right = (QPointF(7, 8), QPointF(7, 16)), (QPointF(17, 8), QPointF(17, 16))
        for a in left:
            for b in right:
                p.drawLine(a, b)
        p.setBrush(white)
        for c in left + right:
            p.drawEllipse(c, 2.4, 2.4)
    elif category == "Convolution":  # a 3×3 kernel
        pen.setWidthF(1.5)
        p.setPen(pen)
        p.drawRect(QRectF(6, 6, 12, 12))
        for t in (10, 14):
            p.drawLine(QPointF(t, 6), QPointF(t, 18))
            p.drawLine(QPointF(6, t), QPointF(18, t))
    elif category == "Pooling":  # a funnel: many values to one
        p.drawPolygon([QPointF(5, 7), QPointF(19, 7), QPointF(13.5, 13), QPointF(13.5, 18), QPointF(10.5, 18),
                       QPointF(10.5, 13)])
    elif category == "Normalisation":  # a bell curve on a baseline
        path = QPainterPath(QPointF(4, 17))
        path.cubicTo(QPointF(9, 17), QPointF(9.5, 6), QPointF(12, 6))
        path.cubicTo(QPointF(14.5, 6), QPointF(15, 17), QPointF(20, 17))
        p.drawPath(path)
    elif category == "Recurrent":  # a loop with an arrowhead
        p.drawArc(QRectF(6, 6, 12, 12), 100 * 16, 290 * 16)
        end = QPointF(12 + 6 * math.cos(math.radians(30)), 12 - 6 * math.sin(math.radians(30)))
        p.setBrush(white)
        p.drawPolygon([end + QPointF(-3.2, -1.6), end + QPointF(1.6, -3.4), end + QPointF(1.2, 1.6)])
    elif category == "Activation":  # the ReLU kink
        p.drawPolyline([QPointF(4.5, 16.5), QPointF(12, 16.5), QPointF(19.5, 6.5)])
    elif category == "Merge":  # two wires joining
        p.drawPolyline([QPointF(5, 7), QPointF(11, 12), QPointF(19, 12)])
        p.drawLine(QPointF(5, 17), QPointF(11, 12))
    elif category == BLOCKS:  # three layers stacked in a frame
        pen.setWidthF(1.5)
        p.setPen(pen)
        p.drawRoundedRect(QRectF(5, 4.5, 14, 15), 2.5, 2.5)
        p.setBrush(white)
        for y in (7.5, 11, 14.5):
            p.drawRect(QRectF(8, y, 8, 1.6))
    elif category == "Shape":  # a tall block becomes a wide one
        pen.setWidthF(1.6)
        p.setPen(pen)
        p.drawRect(QRectF(5, 5, 5, 14))
        p.drawRect(QRectF(13, 10, 7, 5))
    else:
        p.setBrush(white)
        p.drawEllipse(QPointF(12, 12), 3, 3)


def _icon_pixmap(category: str, size: int) -> QPixmap:
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.scale(size / 24.0, size / 24.0)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(category_color(category)))
    p.drawRoundedRect(QRectF(1, 1, 22, 22), 5.5, 5.5)
    _glyph(p, category)
    p.end()
    return pix


def category_icon(category: str) -> QIcon:
    """The category's icon (a white glyph on its colour), drawn once at several sizes and cached."""
    icon = _icons.get(category)
    if icon is None:
        icon = QIcon()
        for size in _ICON_SIZES:
            pix = _icon_pixmap(category, size)
            icon.addPixmap(pix)
            icon.addPixmap(pix, QIcon.Mode.Selected)  # keep the colour on a selected row, untinted
        _icons[category] = icon
    return icon


def layer_icon(layer_type: str) -> QIcon:
    try:
        return category_icon(get_spec(layer_type).category)
    except UnknownLayerError:
        return category_icon("")


def search_icon(color: QColor) -> QIcon:
    pix = QPixmap(32, 32)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(color, 3.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    p.drawEllipse(QRectF(6, 6, 15, 15))
    p.drawLine(QPointF(19, 19), QPointF(26, 26))
    p.end()
    return QIcon(pix)


def block_mime_data(definition: block_lib.BlockDefinition) -> QMimeData:
    """What a drag from the Blocks category carries: the definition as JSON under BLOCK_MIME."""
    import json

    mime = QMimeData()
    mime.setData(BLOCK_MIME, json.dumps(definition.to_dict()).encode("utf-8"))
    mime.setText(definition.name)
    return mime


def block_html(definition: block_lib.BlockDefinition, where: str, palette: QPalette) -> str:
    """A block of the palette explained: its name, where it comes from, description, exposed parameters and
    inner layers."""
    text, base = palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base)
    muted = _hex(blend(text, base, 0.42))
    accent = QColor(category_color(BLOCKS))
    esc = html.escape
    layers = [n["type"] for n in definition.graph.get("nodes", [])
              if n.get("type") not in (block_lib.PORT_IN, block_lib.PORT_OUT)]
    exposed = ", ".join(esc(k) for k in definition.exposed) or "none"
    source = "Shipped with LayerLoom" if where == "shipped" else "Your block library"
    return (f"<div style='font-size:13pt; font-weight:600'>{esc(definition.name)}</div>"
            f"<div style='color:{accent.name()}; font-weight:600; margin-top:2px'>Block"
            f"<span style='color:{muted}; font-weight:normal'> · {source}</span></div>"
            f"<p style='margin-top:8px; line-height:130%'>{esc(definition.description or 'No description.')}</p>"
            f"<p style='margin-top:6px; color:{muted}'>Inside: {len(layers)} layer{'s' if len(layers) != 1 else ''}"
            f" ({esc(', '.join(dict.fromkeys(layers)))})</p>"
            f"<p style='margin-top:4px; color:{muted}'>Parameters: {exposed}</p>"
            f"<p style='margin-top:4px; color:{muted}'><i>Drag it onto the canvas, or double-click to add it; "
            f"double-click the block on the canvas to see inside.</i></p>")


def layer_mime_data(layer_type: str) -> QMimeData:
    """What a palette drag carries: the layer type as UTF-8 under LAYER_MIME (plain text too, for other apps)."""
    mime = QMimeData()
    mime.setData(LAYER_MIME, layer_type.encode("utf-8"))
    mime.setText(layer_type)
    return mime


# ---- the explanation -----------------------------------------------------------------------------------------
def _hex(c: QColor) -> str:
    return c.name(QColor.NameFormat.HexRgb)


def blend(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * t), round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


def ports_text(spec: LayerSpec) -> str:
    if spec.max_inputs == 0:
        return "No input: data enters the network here"
    if spec.max_inputs is None:
        return f"Takes {spec.min_inputs} or more inputs"
    if spec.min_inputs == spec.max_inputs == 1:
        return "Takes one input"
    return f"Takes {spec.min_inputs} to {spec.max_inputs} inputs"


def spec_html(spec: LayerSpec, palette: QPalette, title: bool = True, drag_hint: bool = True) -> str:
    """A layer explained in rich text that follows the widget palette (light or dark); the inspector shows it
    without the title (it has its own header) and without the drag hint."""
    text, base = palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base)
    muted = _hex(blend(text, base, 0.42))
    accent = QColor(category_color(spec.category))
    box = _hex(blend(base, accent, 0.12))
    esc = html.escape
    summary = spec.summary[:1].upper() + spec.summary[1:]
    params = ", ".join(f"{esc(p.name)}" for p in spec.params) or "none"
    parts = []
    if title:
        parts += [f"<div style='font-size:13pt; font-weight:600'>{esc(spec.type)}</div>",
                  f"<div style='color:{accent.name()}; font-weight:600; margin-top:2px'>{esc(spec.category)}"
                  f"<span style='color:{muted}; font-weight:normal'> · {esc(ports_text(spec))}</span></div>"]
    parts += [f"<p style='margin-top:{8 if title else 0}px; font-weight:600'>{esc(summary)}.</p>",
              f"<p style='margin-top:6px; line-height:130%'>{esc(spec.doc)}</p>"]
    if spec.formula:
        parts.append(f"<p style='margin-top:10px; margin-bottom:3px; color:{muted}'>{esc(spec.formula_label)}</p>"
                     f"<table width='100%' cellpadding='7' cellspacing='0' style='background-color:{box}'>"
                     f"<tr><td style='font-family:\"DejaVu Serif\", \"Cambria Math\", serif; font-size:11pt; "
                     f"white-space:pre-wrap'>"
                     f"{esc(spec.formula)}</td></tr></table>")
    if drag_hint:
        parts.append(f"<p style='margin-top:10px; color:{muted}'>Parameters: {params}</p>")
        parts.append(f"<p style='margin-top:4px; color:{muted}'><i>Drag it onto the canvas, or double-click to "
                     f"add it.</i></p>")
    return "".join(parts)


def _empty_html(palette: QPalette) -> str:
    muted = _hex(blend(palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base), 0.42))
    return (f"<p style='color:{muted}'>Select a layer to read what it does and how it computes.<br>"
            f"Drag it onto the canvas, or double-click it, to add it to the network.</p>")


# ---- widgets -------------------------------------------------------------------------------------------------
class _LayerTree(QTreeWidget):
    """The category tree; a drag carries the layer type (never a category), Enter adds the current layer."""

    activated_layer = Signal(str)
    activated_block = Signal(str)  # a Blocks row's key
    block_definition = None  # set by the palette: key -> BlockDefinition

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt's name
        return [LAYER_MIME, BLOCK_MIME, "text/plain"]

    def mimeData(self, items) -> QMimeData:  # noqa: N802 - Qt's name
        keys = [k for k in (i.data(0, BLOCK_ROLE) for i in items) if k]
        if keys and self.block_definition is not None:
            return block_mime_data(self.block_definition(keys[0]))
        types = [t for t in (i.data(0, TYPE_ROLE) for i in items) if t]
        return layer_mime_data(types[0]) if types else QMimeData()

    def startDrag(self, actions) -> None:  # noqa: N802 - Qt's name
        item = self.currentItem()
        key = item.data(0, BLOCK_ROLE) if item is not None else None
        layer_type = item.data(0, TYPE_ROLE) if item is not None else None
        drag = QDrag(self)
        if key and self.block_definition is not None:
            definition = self.block_definition(key)
            drag.setMimeData(block_mime_data(definition))
            chip = _drag_chip(definition.name, self.font(), self.palette(), self.devicePixelRatioF(), BLOCKS)
        elif layer_type:
            drag.setMimeData(layer_mime_data(layer_type))
            chip = _drag_chip(layer_type, self.font(), self.palette(), self.devicePixelRatioF())
        else:
            return
        drag.setPixmap(chip)
        drag.setHotSpot(chip.rect().center() / chip.devicePixelRatio())
        drag.exec(Qt.DropAction.CopyAction)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        item = self.currentItem()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and item is not None and item.data(0, TYPE_ROLE):
            self.activated_layer.emit(item.data(0, TYPE_ROLE))
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and item is not None and item.data(0, BLOCK_ROLE):
            self.activated_block.emit(item.data(0, BLOCK_ROLE))
            return
        super().keyPressEvent(event)


def _drag_chip(layer_type: str, font: QFont, palette: QPalette, dpr: float, category: str | None = None) -> QPixmap:
    """The picture under the cursor while dragging: the layer's icon and name on a rounded card."""
    fm = QFontMetrics(font)
    w, h = fm.horizontalAdvance(layer_type) + 46, max(30, fm.height() + 14)
    pix = QPixmap(round(w * dpr), round(h * dpr))
    pix.setDevicePixelRatio(dpr)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(QColor(category_color(category) if category else layer_color(layer_type)), 1.5))
    p.setBrush(palette.color(QPalette.ColorRole.Base))
    p.drawRoundedRect(QRectF(1, 1, w - 2, h - 2), 7, 7)
    (category_icon(category) if category else layer_icon(layer_type)).paint(p, 8, (h - 20) // 2, 20, 20)
    p.setPen(palette.color(QPalette.ColorRole.Text))
    p.setFont(font)
    p.drawText(QRectF(34, 0, w - 40, h), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, layer_type)
    p.end()
    return pix


class PaletteWidget(QWidget):
    """Search box, the layers by category, and the selected layer's explanation. Signals: `add_requested(type)`
    on double-click or Enter, `layer_selected(type)` when the current layer changes."""

    add_requested = Signal(str)
    layer_selected = Signal(str)
    block_requested = Signal(object)  # a BlockDefinition to add (double-click or Enter on a Blocks row)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("PaletteWidget")
        self.search = QLineEdit(self)
        self.search.setObjectName("paletteSearch")
        self.search.setPlaceholderText("Search layers (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self._search_action = self.search.addAction(search_icon(self._muted_color()),
                                                    QLineEdit.ActionPosition.LeadingPosition)
        self.search.setToolTip("Type part of a name, a category or what a layer does; Enter adds the highlighted "
                               "layer, ↓ moves into the list")

        self.tree = _LayerTree(self)
        self.tree.setObjectName("paletteTree")
        self.tree.setHeaderHidden(True)
        self.tree.setColumnCount(1)
        self.tree.setRootIsDecorated(True)
        self.tree.setIndentation(14)
        self.tree.setUniformRowHeights(True)
        self.tree.setIconSize(QSize(20, 20))
        self.tree.setAnimated(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setExpandsOnDoubleClick(False)
        self.tree.setStyleSheet("QTreeWidget#paletteTree::item { padding: 3px 2px; }")

        self.no_match = QLabel(self)
        self.no_match.setWordWrap(True)
        self.no_match.setTextFormat(Qt.TextFormat.PlainText)
        self.no_match.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_match.setContentsMargins(8, 12, 8, 12)
        self.no_match.hide()

        self.info = QTextBrowser(self)
        self.info.setObjectName("paletteInfo")
        self.info.setOpenLinks(False)
        self.info.setFrameShape(QTextBrowser.Shape.NoFrame)
        self.info.document().setDocumentMargin(10)

        top = QWidget(self)
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.setSpacing(6)
        top_layout.addWidget(self.search)
        top_layout.addWidget(self.tree, 1)
        top_layout.addWidget(self.no_match)

        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.info)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.splitter)

        self._items: dict[str, QTreeWidgetItem] = {}
        self._categories: dict[str, QTreeWidgetItem] = {}
        self._specs: dict[str, LayerSpec] = {}
        self._blocks_item: QTreeWidgetItem | None = None
        self._block_defs: dict[str, block_lib.BlockDefinition] = {}
        self.block_problems: list[ProjectError] = []
        self.tree.block_definition = self.block_definition
        self._populate()
        self.refresh_blocks()

        self.search.textChanged.connect(self._on_search_changed)
        self.search.returnPressed.connect(self._on_search_return)
        self.search.installEventFilter(self)
        self.tree.currentItemChanged.connect(self._on_current_changed)
        self.tree.itemDoubleClicked.connect(self._on_item_double_clicked)
        self.tree.activated_layer.connect(self.add_requested)
        self.tree.activated_block.connect(lambda key: self.block_requested.emit(self.block_definition(key)))
        self._show_info(None)

    # ---- building --------------------------------------------------------------------------------------------
    def _populate(self) -> None:
        bold = QFont(self.tree.font())
        bold.setBold(True)
        for category, specs in by_category().items():
            if not specs:
                continue
            cat = QTreeWidgetItem(self.tree, [category])
            cat.setIcon(0, category_icon(category))
            cat.setFont(0, bold)
            cat.setFlags(Qt.ItemFlag.ItemIsEnabled)
            cat.setToolTip(0, f"{category}: {len(specs)} layer{'s' if len(specs) != 1 else ''}")
            self._categories[category] = cat
            for spec in specs:
                item = QTreeWidgetItem(cat, [spec.type])
                item.setData(0, TYPE_ROLE, spec.type)
                item.setIcon(0, category_icon(category))
                item.setToolTip(0, spec.summary[:1].upper() + spec.summary[1:])
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                              | Qt.ItemFlag.ItemIsDragEnabled)
                self._items[spec.type] = item
                self._specs[spec.type] = spec
        self.tree.expandAll()

    def refresh_blocks(self) -> None:
        """(Re)build the Blocks category: the shipped blocks, then the user's library (engine.blocks.blocks_dir());
        a library file that cannot be read is left out and kept in `block_problems`."""
        bold = QFont(self.tree.font())
        bold.setBold(True)
        if self._blocks_item is None:
            self._blocks_item = QTreeWidgetItem([BLOCKS])
            self.tree.addTopLevelItem(self._blocks_item)
            self._blocks_item.setIcon(0, category_icon(BLOCKS))
            self._blocks_item.setFont(0, bold)
            self._blocks_item.setFlags(Qt.ItemFlag.ItemIsEnabled)
        cat = self._blocks_item
        cat.takeChildren()
        self._block_defs.clear()
        self.block_problems = []
        try:
            shipped = list(block_lib.shipped_blocks().values())
        except ProjectError as e:
            shipped = []
            self.block_problems.append(e)
        library = block_lib.list_blocks(problems=self.block_problems)
        for where, definitions in (("shipped", shipped), ("library", library)):
            for d in definitions:
                key = f"{where}:{d.name}"
                self._block_defs[key] = d
                item = QTreeWidgetItem(cat, [d.name if where == "shipped" else f"{d.name}  (my library)"])
                item.setData(0, BLOCK_ROLE, key)
                item.setIcon(0, category_icon(BLOCKS))
                item.setToolTip(0, d.description or d.name)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                              | Qt.ItemFlag.ItemIsDragEnabled)
        cat.setToolTip(0, f"Blocks: {len(shipped)} shipped, {len(library)} in your library")
        cat.setExpanded(True)
        if self.search.text().strip():
            self._on_search_changed(self.search.text())

    def blocks(self, where: str | None = None) -> list[str]:
        """The names of the visible blocks ("shipped", "library" or both), in palette order."""
        cat = self._blocks_item
        if cat is None or cat.isHidden():
            return []
        keys = [cat.child(i).data(0, BLOCK_ROLE) for i in range(cat.childCount()) if not cat.child(i).isHidden()]
        return [k.split(":", 1)[1] for k in keys if where is None or k.startswith(where + ":")]

    def block_definition(self, key: str) -> block_lib.BlockDefinition:
        """The definition behind a Blocks row ("shipped:res_block", "library:my_block"): a fresh copy."""
        d = self._block_defs[key]
        return block_lib.BlockDefinition.from_dict(d.to_dict())

    def block_key(self, name: str) -> str | None:
        """The row key of a block by name, the library's first (it is the one the user saved)."""
        for where in ("library", "shipped"):
            if f"{where}:{name}" in self._block_defs:
                return f"{where}:{name}"
        return None

    # ---- queries (also for tests and the main window) ---------------------------------------------------------
    def categories(self) -> list[str]:
        """The categories shown now (those with at least one visible layer)."""
        return [c for c in CATEGORIES if c in self._categories and not self._categories[c].isHidden()]

    def layers(self, category: str | None = None) -> list[str]:
        """The visible layer types, in palette order (of one category if given)."""
        cats = [category] if category else self.categories()
        out = []
        for c in cats:
            cat = self._categories.get(c)
            if cat is None or cat.isHidden():
                continue
            out += [cat.child(i).data(0, TYPE_ROLE) for i in range(cat.childCount()) if not cat.child(i).isHidden()]
        return out

    def current_layer(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, TYPE_ROLE) if item is not None and not item.isHidden() else None

    def first_match(self) -> str | None:
        """What Enter in the search box adds: the best match for the text (a name starting with it, then a name
        containing it, then a category or summary match), in palette order within each rank."""
        visible = self.layers()
        if not visible:
            return None
        query = self.search.text().strip().lower()
        for rank in (lambda t: t.lower().startswith(query), lambda t: query in t.lower()):
            hits = [t for t in visible if rank(t)]
            if hits:
                return hits[0]
        return visible[0]

    def mime_data(self, layer_type: str) -> QMimeData:
        """The drag payload for a layer (what the canvas's drop reads)."""
        return self.tree.mimeData([self._items[get_spec(layer_type).type]])

    # ---- actions ---------------------------------------------------------------------------------------------
    def focus_search(self) -> None:
        """Ctrl+F: put the cursor in the search box with its text selected, ready to type over."""
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def select_layer(self, layer_type: str) -> None:
        item = self._items.get(get_spec(layer_type).type)
        if item is not None and not item.isHidden():
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)

    def set_filter(self, text: str) -> None:
        self.search.setText(text)

    # ---- handlers --------------------------------------------------------------------------------------------
    def _on_search_changed(self, text: str) -> None:
        query = text.strip().lower()
        for category, cat in self._categories.items():
            any_visible = False
            for i in range(cat.childCount()):
                item = cat.child(i)
                spec = self._specs[item.data(0, TYPE_ROLE)]
                hit = not query or query in spec.type.lower() or query in spec.summary.lower() \
                    or query in category.lower()
                item.setHidden(not hit)
                any_visible |= hit
            cat.setHidden(not any_visible)
            if any_visible:
                cat.setExpanded(True)
        if self._blocks_item is not None:
            any_block = False
            for i in range(self._blocks_item.childCount()):
                item = self._blocks_item.child(i)
                d = self._block_defs[item.data(0, BLOCK_ROLE)]
                hit = not query or query in d.name.lower() or query in d.description.lower() or query in "blocks"
                item.setHidden(not hit)
                any_block |= hit
            self._blocks_item.setHidden(not any_block)
        matches = self.layers() + self.blocks()
        self.no_match.setVisible(not matches)
        self.tree.setVisible(bool(matches))
        if not matches:
            self.no_match.setText(f"No layer matches “{text.strip()}”.\nTry a shorter word, or a category such as "
                                  f"“pooling”.")
            return
        if query and self.layers():  # highlight what Enter will add
            self.select_layer(self.first_match())

    def _on_search_return(self) -> None:
        layer_type = self.current_layer() if self.search.text().strip() == "" else self.first_match()
        if layer_type:
            self.add_requested.emit(layer_type)

    def _on_current_changed(self, current: QTreeWidgetItem | None, _previous) -> None:
        if current is not None and current.data(0, BLOCK_ROLE):
            self._refresh_info()
            return
        layer_type = current.data(0, TYPE_ROLE) if current is not None else None
        self._show_info(layer_type)
        if layer_type:
            self.layer_selected.emit(layer_type)

    def _on_item_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        layer_type = item.data(0, TYPE_ROLE)
        key = item.data(0, BLOCK_ROLE)
        if layer_type:
            self.add_requested.emit(layer_type)
        elif key:
            self.block_requested.emit(self.block_definition(key))
        else:
            item.setExpanded(not item.isExpanded())

    def _refresh_info(self) -> None:
        """The info pane again for the current row (a layer or a block), e.g. in the new theme's colours."""
        item = self.tree.currentItem()
        key = item.data(0, BLOCK_ROLE) if item is not None and not item.isHidden() else None
        if key and key in self._block_defs:
            self.info.setHtml(block_html(self._block_defs[key], key.split(":", 1)[0], self.info.palette()))
        else:
            self._show_info(self.current_layer())

    def _show_info(self, layer_type: str | None) -> None:
        if layer_type is None:
            self.info.setHtml(_empty_html(self.info.palette()))
        else:
            self.info.setHtml(spec_html(self._specs[layer_type], self.info.palette()))

    def _muted_color(self) -> QColor:
        pal = self.palette()
        return blend(pal.color(QPalette.ColorRole.Text), pal.color(QPalette.ColorRole.Base), 0.45)

    # ---- Qt overrides ----------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key == Qt.Key.Key_Down and self.layers():
                self.tree.setFocus()
                if self.current_layer() is None:
                    self.select_layer(self.layers()[0])
                return True
            if key == Qt.Key.Key_Escape and self.search.text():
                self.search.clear()
                return True
        return super().eventFilter(watched, event)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # light ↔ dark: re-colour the text and the search glyph
            self._search_action.setIcon(search_icon(self._muted_color()))
            # Children learn the new palette after this event: redraw once they have it.
            QTimer.singleShot(0, self._refresh_info)
            # A widget with a style sheet keeps the palette it was polished with: polish it again.
            sheet = self.tree.styleSheet()
            self.tree.setStyleSheet("")
            self.tree.setStyleSheet(sheet)
