"""What the canvas draws: a node (type, key parameters, output shape, ports, error badge) and a wire labelled
with the shape it carries. Items only show the model; GraphScene keeps them in step with it.

Everything a paint needs (texts, paths, colours) is computed when the model changes, never while painting, and
items cache their pixels in device coordinates: panning a large graph blits pixmaps instead of re-laying text.
Below `LOD_TEXT` zoom a node is a plain coloured box and a wire a plain line; below `OVERVIEW_ZOOM` items paint
nothing at all and the scene draws every box and wire in a few batched calls, so a zoomed-out 5,000-node graph
costs a handful of draw calls instead of 11,000 Python paints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPalette,
    QPen,
    QPolygonF,
    QStaticText,
)
from PySide6.QtWidgets import QApplication, QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from engine.layers import fmt, get_spec
from engine.layers.base import FLOAT32
from engine.units import format_count

NODE_WIDTH = 190.0
NODE_HEIGHT = 64.0
PORT_RADIUS = 5.0
PORT_HIT = 11.0     # ports are small to look at but forgiving to grab
GRID = 10.0         # dragged nodes snap to this grid
LOD_TEXT = 0.45     # below this zoom a node is a box without text: text would be unreadable anyway
LOD_LABEL = 0.6     # wire labels need a little more room than node titles
LABEL_ROOM = 96.0    # the label width every wire reserves: a shape such as "(128, 14, 14)" fits
OVERVIEW_ZOOM = 0.2  # below this the scene draws all boxes and wires in a few batched calls (GraphScene)
STRIP = 6.0         # the category colour strip on a node's left edge

# Category colours read well on light and dark backgrounds alike, so they do not follow the palette.
CATEGORY_COLOURS = {
    "Input": "#2e9e5b",
    "Core": "#3b7dd8",
    "Convolution": "#8a56c9",
    "Pooling": "#17a2a8",
    "Normalisation": "#d49a1f",
    "Recurrent": "#d0508a",
    "Activation": "#e0702b",
    "Merge": "#1f9ed1",
    "Shape": "#7d8794",
}
ERROR_COLOUR = "#d93b3b"
OK_COLOUR = "#2e9e5b"

# How a key parameter is written on a node: compact, as people write a layer ("32, k3, s1").
_PREFIX = {"kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d", "hidden_size": "h"}
_NAMED = {"dims": "dims ", "p": "p=", "negative_slope": "slope ", "alpha": "α=", "dim": "dim ", "output_size": "out ",
          "num_layers": "layers ", "approximate": ""}


@dataclass
class Style:
    """Colours and fonts of the canvas, read from the application palette (light or dark theme)."""

    dark: bool
    background: QColor
    grid: QColor
    node_fill: QColor
    node_border: QColor
    text: QColor
    muted: QColor
    highlight: QColor
    highlight_text: QColor
    error: QColor
    ok: QColor
    wire: QColor
    label_fill: QColor
    title_font: QFont
    body_font: QFont
    label_font: QFont
    body_metrics: QFontMetricsF
    label_metrics: QFontMetricsF
    pens: dict[str, QPen] = field(default_factory=dict)  # made once: a paint should not build pens

    def __post_init__(self) -> None:
        self.pens = {"border": QPen(self.node_border, 1.0), "error": QPen(self.error, 1.5),
                     "selected": QPen(self.highlight, 2.5), "ok": QPen(self.ok, 3.0),
                     "refused": QPen(self.error, 3.0), "port": QPen(self.node_fill, 1.5)}
        # Measured texts, per style (a theme change brings new fonts): thousands of nodes show the same few
        # shapes and counts, so an edit that changes every shape measures each distinct text once.
        self._elided: dict[tuple[str, float], str] = {}
        self._body_widths: dict[str, float] = {}
        self._label_widths: dict[str, float] = {}
        self.label_height = self.label_metrics.height()

    def elided(self, text: str, width: float) -> str:
        """`text` in the body font, cut with "…" to fit `width`."""
        key = (text, width)
        out = self._elided.get(key)
        if out is None:
            if len(self._elided) > 20000:  # node ids make most sub-lines unique: keep the cache bounded
                self._elided.clear()
            out = self._elided[key] = self.body_metrics.elidedText(text, Qt.TextElideMode.ElideRight, width)
        return out

    def body_width(self, text: str) -> float:
        out = self._body_widths.get(text)
        if out is None:
            if len(self._body_widths) > 20000:
                self._body_widths.clear()
            out = self._body_widths[text] = self.body_metrics.horizontalAdvance(text)
        return out

    def label_width(self, text: str) -> float:
        out = self._label_widths.get(text)
        if out is None:
            if len(self._label_widths) > 20000:
                self._label_widths.clear()
            out = self._label_widths[text] = self.label_metrics.horizontalAdvance(text)
        return out

    @classmethod
    def from_palette(cls, palette: QPalette | None = None) -> Style:
        pal = palette or QApplication.palette()
        window = pal.color(QPalette.ColorRole.Window)
        dark = window.lightnessF() < 0.5
        base = pal.color(QPalette.ColorRole.Base)
        text = pal.color(QPalette.ColorRole.Text)
        muted = QColor(text)
        muted.setAlphaF(0.6)
        background = window.darker(112) if dark else window.lighter(103)
        grid = _mix(background, text, 0.07)  # opaque: solid lines take the raster engine's fast path
        border = QColor(text)
        border.setAlphaF(0.35)
        wire = QColor(text)
        wire.setAlphaF(0.55)
        label_fill = _mix(background, text, 0.08)
        node_fill = base.lighter(130) if dark else base
        family = QApplication.font()
        title = QFont(family)
        title.setPointSizeF(9.5)
        title.setBold(True)
        body = QFont(family)
        body.setPointSizeF(8.0)
        label = QFont(family)
        label.setPointSizeF(7.5)
        return cls(dark, background, grid, node_fill, border, text, muted, pal.color(QPalette.ColorRole.Highlight),
                   pal.color(QPalette.ColorRole.HighlightedText), QColor(ERROR_COLOUR), QColor(OK_COLOUR), wire,
                   label_fill, title, body, label, QFontMetricsF(body), QFontMetricsF(label))


def _short(value: Any, sizes: bool = True) -> str:
    """Sizes (a kernel, an input shape) as 3×5, or 3 when all equal; other lists (Permute's dims) as (1, 0)."""
    if isinstance(value, (list, tuple)):
        if not sizes:
            return "(" + ", ".join(str(v) for v in value) + ")"
        if len(value) > 1 and len(set(value)) == 1 and len(value) < 3:
            return str(value[0])
        return "×".join(str(v) for v in value)
    return str(value)


def param_summary(layer_type: str, params: dict[str, Any]) -> str:
    """The few parameters that say what a layer does, written compactly: Conv2d → "32, k3, s1, p1"."""
    spec = get_spec(layer_type)
    defaults = spec.defaults()
    names = list(spec.key_params)
    # Then whatever the user changed from its default, so that an edit is visible on the node.
    names += [p.name for p in spec.params if p.name not in names and params.get(p.name) != p.default]
    parts: list[str] = []
    for name in names:
        value = params.get(name, defaults.get(name))
        if value is None or value is False:
            continue
        if name in _PREFIX:
            parts.append(value if isinstance(value, str) else _PREFIX[name] + _short(value))
        elif name == "return_sequences":
            parts.append("seq")
        elif name == "approximate" and value == "none":
            continue
        elif name in _NAMED:
            parts.append(f"{_NAMED[name]}{_short(value, sizes=name != 'dims')}")
        elif name in spec.key_params:  # Input's shape reads as sizes (1×28×28), Reshape's as a tuple
            sizes = name != "shape" or spec.type == "Input"
            parts.append(_short(value, sizes) if not isinstance(value, bool) else name)
        else:
            parts.append(f"{name}={_short(value)}")
        if len(parts) == 4:
            break
    return ", ".join(parts)


def shape_text(shape: tuple[int, ...] | None, dtype: str | None) -> str:
    if shape is None:
        return ""
    key = (shape, dtype)
    text = _SHAPE_TEXTS.get(key)
    if text is None:  # a large graph shows a few distinct shapes thousands of times
        if len(_SHAPE_TEXTS) > 20000:
            _SHAPE_TEXTS.clear()
        text = _SHAPE_TEXTS[key] = fmt(shape) + ("" if dtype in (None, FLOAT32) else f" {dtype}")
    return text


_SHAPE_TEXTS: dict[tuple, str] = {}


def _static(text: str) -> QStaticText:
    st = QStaticText(text)
    st.setTextFormat(_PLAIN)
    return st


# Looked up once: an enum attribute costs a Python call each time, and a 5,000-node graph makes 50,000 of them.
_PLAIN = Qt.TextFormat.PlainText
_NODE_FLAGS = (QGraphicsItem.GraphicsItemFlag.ItemIsSelectable | QGraphicsItem.GraphicsItemFlag.ItemIsMovable
               | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
_DEVICE_CACHE = QGraphicsItem.CacheMode.DeviceCoordinateCache
_POSITION_CHANGE = QGraphicsItem.GraphicsItemChange.ItemPositionChange
_POSITION_CHANGED = QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged
_SELECTED_CHANGED = QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged
_SCENE_CHANGED = QGraphicsItem.GraphicsItemChange.ItemSceneHasChanged
_NODE_RECT = QRectF(-NODE_WIDTH / 2, -NODE_HEIGHT / 2, NODE_WIDTH, NODE_HEIGHT)
_NODE_BOUNDS = _NODE_RECT.adjusted(-PORT_HIT, -PORT_HIT, PORT_HIT, PORT_HIT)
_COLOURS: dict[str, QColor] = {}   # per category, shared by the nodes (never changed in place)
_TITLES: dict[str, QStaticText] = {}  # per layer type
_SHAPES: dict[bool, QPainterPath] = {}  # the outline with its ports, per "takes input"


class BadgeItem(QGraphicsItem):
    """The red "!" at a node's top-right corner; hovering it shows the engine's message and its fix."""

    RADIUS = 9.0

    def __init__(self, parent: NodeItem):
        super().__init__(parent)
        self.setPos(NODE_WIDTH / 2 - 4, -NODE_HEIGHT / 2 + 4)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)  # clicks go to the node

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        r = self.RADIUS + 1
        return QRectF(-r, -r, 2 * r, 2 * r)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        node: NodeItem = self.parentItem()
        if option.levelOfDetailFromTransform(painter.worldTransform()) < LOD_TEXT:
            return  # the whole node turns red instead
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(node.style.node_fill, 1.5))
        painter.setBrush(node.style.error)
        painter.drawEllipse(QPointF(0, 0), self.RADIUS, self.RADIUS)
        painter.setPen(QColor("white"))
        painter.setFont(node.style.title_font)
        painter.drawText(self.boundingRect(), Qt.AlignmentFlag.AlignCenter, "!")


class NodeItem(QGraphicsItem):
    """One layer. Its position is the node's centre, exactly the graph's (x, y)."""

    Type = QGraphicsItem.UserType + 1

    def __init__(self, node_id: str, layer_type: str, params: dict[str, Any], style: Style,
                 pos: QPointF | None = None):
        super().__init__()
        if pos is not None:  # placed before it sends geometry changes: no itemChange round trip
            self.setPos(pos)
        spec = get_spec(layer_type)
        self.node_id = node_id
        self.layer_type = spec.type
        self.category = spec.category
        self.takes_input = spec.max_inputs != 0
        self.many_inputs = spec.max_inputs is None or spec.max_inputs > 1
        self.style = style
        colour = _COLOURS.get(spec.category)
        if colour is None:
            colour = _COLOURS[spec.category] = QColor(CATEGORY_COLOURS.get(spec.category, "#888888"))
        self.colour = colour
        self.rect = _NODE_RECT
        self._bounds = _NODE_BOUNDS
        self._shape = _SHAPES.get(self.takes_input) or _node_shape(self.takes_input)
        self.setFlags(_NODE_FLAGS)
        self.setCacheMode(_DEVICE_CACHE)
        self.params_text = ""
        self.status_text = "…"
        self.count_text = ""
        self.error_text = ""    # the tooltip: engine message and its fix
        self.state = "pending"  # pending | ok | waiting | error
        self.flash = 0.0        # 1 → 0 after a refused wire
        self.drop_hint: str | None = None  # "ok" / "refused" while a wire is dragged over the node
        self.drew_text: bool | None = None  # what the last paint did: the level-of-detail switch, for tests
        self.badge: BadgeItem | None = None
        self.frozen = False     # training flags of the node (engine.graph.Node): a padlock in the top-right corner
        self.lr_factor = 1.0    # ... and "lr×0.1" in small text in the title row, where it fits
        self.lr_text = ""
        self.drew_lock: bool | None = None  # what the last paint did, for tests
        self._lr: QStaticText | None = None  # made when a factor is set: most nodes never have one
        self._lr_width = 0.0
        self._title_width = 0.0
        self._status_tip = ""   # the analysis' part of the tooltip; the flags add theirs
        self._tooltip = ""      # what setToolTip was last given
        self.wire_label = ""    # what the wires leaving this node say: its output shape, when it has one
        self._info_key: tuple | None = None
        title = _TITLES.get(self.layer_type)
        if title is None:
            title = _TITLES[self.layer_type] = _static(self.layer_type)
        self._title = title
        self._sub = _static("")
        self._status = _static("")
        self._count = _static("")
        self.set_params(params)
        self._set_status("…", "pending")

    def type(self) -> int:  # noqa: A003 - Qt's name
        return self.Type

    # ---- geometry ------------------------------------------------------------------------------------
    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self._bounds

    def shape(self) -> QPainterPath:
        return self._shape

    @staticmethod
    def output_port() -> QPointF:
        return QPointF(0, NODE_HEIGHT / 2)

    @staticmethod
    def input_port(slot: int = 0, count: int = 1) -> QPointF:
        """Where the wire of input `slot` of `count` ends: inputs spread left to right in their order."""
        if count <= 1:
            return QPointF(0, -NODE_HEIGHT / 2)
        step = min(36.0, (NODE_WIDTH - 60) / (count - 1))
        return QPointF((slot - (count - 1) / 2) * step, -NODE_HEIGHT / 2)

    def port_at(self, local: QPointF) -> str | None:
        """"out" or "in" when `local` (item coordinates) is on a port, else None."""
        if QLineF(local, self.output_port()).length() <= PORT_HIT:
            return "out"
        if self.takes_input and abs(local.y() + NODE_HEIGHT / 2) <= PORT_HIT and abs(local.x()) <= (
                NODE_WIDTH / 2 - 20 if self.many_inputs else PORT_HIT):
            return "in"
        return None

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:  # noqa: N802
        scene = self.scene()
        if change == _POSITION_CHANGE and scene is not None and scene.snapping:
            return QPointF(round(value.x() / GRID) * GRID, round(value.y() / GRID) * GRID)
        if change == _POSITION_CHANGED and scene is not None:
            scene.node_item_moved(self)
        elif change == _SELECTED_CHANGED:
            self.setZValue(1 if value else 0)
        elif change == _SCENE_CHANGED and scene is not None:
            self.sync_training_flags()  # a node added frozen (a file, an undone delete) shows its lock at once
        return super().itemChange(change, value)

    # ---- content -------------------------------------------------------------------------------------
    def set_params(self, params: dict[str, Any]) -> None:
        if self.layer_type == "Block":  # a block is titled by its kind (res_block …), marked as one that opens
            self._title = _static(f"⊞ {params.get('block') or 'Block'}")
        text = param_summary(self.layer_type, params)
        self.params_text = text
        sub = f"{self.node_id} · {text}" if text else self.node_id
        self._sub.setText(self.style.elided(sub, NODE_WIDTH - STRIP - 20))
        self.sync_training_flags()  # the graph reports a change of the flags as a change of parameters
        self.update()

    def sync_training_flags(self) -> None:
        """Read the node's frozen / lr_factor flags from the scene's document (nothing when not in one)."""
        doc = getattr(self.scene(), "document", None)
        node = doc.graph.nodes.get(self.node_id) if doc is not None else None
        if node is not None:
            self.set_training_flags(node.frozen, node.lr_factor)

    def set_training_flags(self, frozen: bool, lr_factor: float) -> None:
        """Show the node's training flags: a padlock when frozen, "lr×0.1" when its learning-rate factor is not
        1, and both in the tooltip."""
        if frozen == self.frozen and lr_factor == self.lr_factor:
            return
        self.frozen, self.lr_factor = bool(frozen), float(lr_factor)
        self.lr_text = f"lr×{self.lr_factor:g}" if self.lr_factor != 1.0 else ""
        self._lr = _static(self.lr_text) if self.lr_text else None
        if self.lr_text:  # rare: measured only then, so thousands of plain nodes cost nothing
            self._lr_width = self.style.label_metrics.horizontalAdvance(self.lr_text)
            self._title_width = QFontMetricsF(self.style.title_font).horizontalAdvance(self.layer_type)
        self._apply_tooltip()
        self.update()

    def flags_tooltip(self) -> str:
        parts = []
        if self.frozen:
            parts.append(f"{self.node_id} is frozen: its weights are not trained (unfreeze it in the Inspector)")
        if self.lr_text:
            parts.append(f"learning rate × {self.lr_factor:g} for its weights (the optimizer's rate times this)")
        return "\n".join(parts)

    def _apply_tooltip(self) -> None:
        tip = "\n".join(t for t in (self._status_tip, self.flags_tooltip()) if t) if (
            self.frozen or self.lr_text) else self._status_tip
        if tip != self._tooltip:  # setting a tooltip is a round trip through itemChange: skip it when unchanged
            self._tooltip = tip
            self.setToolTip(tip)

    def set_info(self, info) -> bool:
        """Show one NodeInfo of the latest analysis; returns False (and repaints nothing) when nothing the node
        shows has changed, so that an edit repaints only the nodes it affects."""
        if info is None:
            key: tuple = ("pending",)
        elif info.error is None:
            key = ("ok", info.shape, info.dtype, info.params)
        elif info.waiting:
            key = ("waiting", info.error.waiting_on)
        else:
            key = ("error", info.error.reason, info.error.hint)
        if key == self._info_key:
            return False
        self._info_key = key
        self.wire_label = shape_text(info.shape, info.dtype) if key[0] == "ok" else ""
        if key[0] == "pending":
            self._set_status("…", "pending")
        elif key[0] == "ok":
            self._set_status(shape_text(info.shape, info.dtype), "ok",
                             f"{format_count(info.params)} params" if info.params else "")
        elif key[0] == "waiting":
            self._set_status(f"waiting on {info.error.waiting_on}", "waiting", tooltip=(
                f"{self.node_id} waits on {info.error.waiting_on}: fix the error there first"))
        else:
            reason, hint = info.error.reason, info.error.hint
            self._set_status(reason, "error", tooltip=f"{reason}\nFix: {hint}" if hint else reason)
        return True

    def _set_status(self, text: str, state: str, count: str = "", tooltip: str = "") -> None:
        self.state = state
        self.status_text = text
        self.count_text = count
        self.error_text = tooltip if state == "error" else ""
        st = self.style
        count_w = st.body_width(count) + 8 if count else 0
        self._count.setText(count)
        self._status.setText(st.elided(text, NODE_WIDTH - STRIP - 20 - count_w))
        self._status_tip = tooltip
        self._apply_tooltip()
        if state == "error":
            if self.badge is None:
                self.badge = BadgeItem(self)
            self.badge.setToolTip(tooltip)
            self.badge.show()
        elif self.badge is not None:
            self.badge.hide()
        self.update()

    def set_style(self, style: Style) -> None:
        self.style = style
        self.set_params_text_again()

    def set_params_text_again(self) -> None:
        """Re-elide texts after a font change."""
        sub = f"{self.node_id} · {self.params_text}" if self.params_text else self.node_id
        self._sub.setText(self.style.elided(sub, NODE_WIDTH - STRIP - 20))
        if self.lr_text:
            self._lr_width = self.style.label_metrics.horizontalAdvance(self.lr_text)
            self._title_width = QFontMetricsF(self.style.title_font).horizontalAdvance(self.layer_type)
        self._set_status(self.status_text, self.state, self.count_text, self._status_tip)

    # ---- painting ------------------------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        st = self.style
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        selected = self.isSelected()
        if lod < LOD_TEXT:
            self.drew_text = False
            self.drew_lock = False
            fill = st.error if self.state == "error" else self.colour
            painter.fillRect(self.rect, st.highlight if selected else fill)
            return
        self.drew_text = True
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.drop_hint is not None:
            painter.setPen(st.pens["ok" if self.drop_hint == "ok" else "refused"])
        else:
            painter.setPen(st.pens["selected" if selected else "error" if self.state == "error" else "border"])
        painter.setBrush(_mix(st.node_fill, st.error, 0.6 * self.flash) if self.flash > 0 else st.node_fill)
        painter.drawPath(_BODY)
        painter.fillPath(_STRIP, self.colour)

        painter.setPen(st.text)
        painter.setFont(st.title_font)
        painter.drawStaticText(_TITLE_AT, self._title)
        painter.setFont(st.body_font)
        painter.setPen(st.muted)
        painter.drawStaticText(_SUB_AT, self._sub)
        painter.setPen(st.text if self.state == "ok" else st.error if self.state == "error" else st.muted)
        painter.drawStaticText(_STATUS_AT, self._status)
        if self.count_text:
            painter.setPen(st.muted)
            painter.drawStaticText(QPointF(NODE_WIDTH / 2 - 8 - self._count.size().width(), _STATUS_AT.y()),
                                   self._count)
        # Ports
        painter.setPen(st.pens["port"])
        painter.setBrush(self.colour)
        painter.drawEllipse(self.output_port(), PORT_RADIUS, PORT_RADIUS)
        if self.many_inputs:  # a bar: this node takes several inputs, kept in order left to right
            painter.drawRoundedRect(_INPUT_BAR, PORT_RADIUS - 1, PORT_RADIUS - 1)
        elif self.takes_input:
            painter.drawEllipse(self.input_port(), PORT_RADIUS, PORT_RADIUS)
        self.drew_lock = self.frozen
        if self.frozen or self.lr_text:
            self._paint_flags(painter, st)

    def _paint_flags(self, painter: QPainter, st: Style) -> None:
        """The training flags: a padlock in the top-right corner (left of the error badge when there is one) and
        the learning-rate factor in small text before it, when the title leaves room."""
        right = NODE_WIDTH / 2 - 8 - (_BADGE_ROOM if self.state == "error" else 0.0)
        if self.frozen:
            painter.fillPath(_LOCK_SHIFTED if self.state == "error" else _LOCK, st.text)
            right -= _LOCK_W + 4
        if self.lr_text and _TEXT_X + self._title_width + 6 <= right - self._lr_width:
            painter.setFont(st.label_font)
            painter.setPen(st.muted)
            painter.drawStaticText(QPointF(right - self._lr_width, _TITLE_AT.y() + 2), self._lr)


def _node_geometry() -> tuple[QPainterPath, QPainterPath]:
    """The node outline and its category strip (the outline's rounded left edge), computed once for all."""
    rect = QRectF(-NODE_WIDTH / 2, -NODE_HEIGHT / 2, NODE_WIDTH, NODE_HEIGHT)
    body = QPainterPath()
    body.addRoundedRect(rect, 8, 8)
    left = QPainterPath()
    left.addRect(QRectF(rect.left(), rect.top(), STRIP, rect.height()))
    return body, body.intersected(left)


def _lock_path(right: float) -> QPainterPath:
    """A small padlock (shackle and body, a keyhole cut out) whose right edge is at x = `right`, at the top of
    a node: one path, filled in one call."""
    w, h, top = _LOCK_W, 7.0, -NODE_HEIGHT / 2 + 11.0
    left = right - w
    body = QPainterPath()
    body.addRoundedRect(QRectF(left, top, w, h), 1.5, 1.5)
    shackle = QPainterPath()
    r = w / 2 - 2.0
    cx = left + w / 2
    shackle.moveTo(cx - r, top + 0.5)
    shackle.lineTo(cx - r, top - 2.0)
    shackle.arcTo(QRectF(cx - r, top - 2.0 - r, 2 * r, 2 * r), 180, -180)
    shackle.lineTo(cx + r, top + 0.5)
    stroker = QPainterPathStroker()
    stroker.setWidth(1.6)
    lock = body.united(stroker.createStroke(shackle))
    hole = QPainterPath()
    hole.addEllipse(QPointF(cx, top + h / 2 - 0.5), 1.1, 1.1)
    return lock.subtracted(hole)


def _node_shape(takes_input: bool) -> QPainterPath:
    """What a click hits: the body and its ports (with room to spare around them), made once per kind."""
    shape = QPainterPath()
    shape.setFillRule(Qt.FillRule.WindingFill)  # where a port overlaps the body, both count as inside
    shape.addRoundedRect(_NODE_RECT, 8, 8)
    for port in (NodeItem.output_port(), NodeItem.input_port()) if takes_input else (NodeItem.output_port(),):
        shape.addEllipse(port, PORT_HIT, PORT_HIT)
    _SHAPES[takes_input] = shape
    return shape


_BODY, _STRIP = _node_geometry()
_LOCK_W = 9.0
_BADGE_ROOM = 16.0  # the error badge covers the corner: the lock and the lr text move left of it
_LOCK = _lock_path(NODE_WIDTH / 2 - 8)
_LOCK_SHIFTED = _lock_path(NODE_WIDTH / 2 - 8 - _BADGE_ROOM)
_TEXT_X = -NODE_WIDTH / 2 + STRIP + 8
_TITLE_AT = QPointF(_TEXT_X, -NODE_HEIGHT / 2 + 5)
_SUB_AT = QPointF(_TEXT_X, -NODE_HEIGHT / 2 + 24)
_STATUS_AT = QPointF(_TEXT_X, -NODE_HEIGHT / 2 + 42)
_INPUT_BAR = QRectF(-40, -NODE_HEIGHT / 2 - PORT_RADIUS + 1, 80, 2 * PORT_RADIUS - 2)


class EdgeItem(QGraphicsItem):
    """A wire from a node's output port (bottom) to an input port (top), labelled with the shape it carries."""

    Type = QGraphicsItem.UserType + 2

    def __init__(self, source: NodeItem, target: NodeItem, style: Style):
        super().__init__()
        self.source, self.target = source, target
        self.style = style
        self.slot, self.count = 0, 1
        self.detour = 0.0       # sideways bow (scene units) that keeps a long wire off the nodes it passes
        self.selected = False   # wires have their own selection: a rubber band picks nodes only
        self.label_left = False  # set by the scene: which side of the wire keeps the label clear of others
        self.label = ""
        self.drew_label: bool | None = None
        self._label = _static("")
        self._label_rect = QRectF()
        self._path = QPainterPath()
        self._arrow = QPolygonF()
        self._bounds = QRectF()
        self._shape: QPainterPath | None = None
        self._line: QLineF | None = None  # a wire straight down is drawn as a line: far cheaper than a curve
        self._mid = QPointF()
        self._sideways = False
        self.setZValue(-1)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        # No path yet: the scene routes every wire it adds (slot, detour, label side), once.

    def type(self) -> int:  # noqa: A003 - Qt's name
        return self.Type

    @property
    def key(self) -> tuple[str, str]:
        return (self.source.node_id, self.target.node_id)

    def endpoints(self) -> tuple[QPointF, QPointF]:
        # The arrow's tip touches the input port's circle instead of hiding under it.
        return (self.source.pos() + NodeItem.output_port(),
                self.target.pos() + NodeItem.input_port(self.slot, self.count) - QPointF(0, PORT_RADIUS))

    def update_path(self, ends: tuple[QPointF, QPointF] | None = None) -> None:
        """Lay the wire out again from its ends (`ends`: endpoints() when the caller has them already)."""
        self.prepareGeometryChange()
        a, b = ends or self.endpoints()
        self._path = wire_path(a, b, self.detour)
        self._line = QLineF(a, b) if abs(a.x() - b.x()) < 0.5 and not self.detour and b.y() > a.y() else None
        self._shape = None
        tip = b
        self._arrow = QPolygonF([tip, tip + QPointF(-4.5, -8), tip + QPointF(4.5, -8)])
        # Where the wire runs sideways there is no room beside it: the label sits on it.
        if self.detour:
            self._mid = self._path.pointAtPercent(0.5)
            self._sideways = abs(math.sin(math.radians(self._path.angleAtPercent(0.5)))) < 0.7
        else:
            # The plain curve is symmetric about the middle of its ends: halfway along it is that middle, and
            # its direction there is (dx, dy − pull), so thousands of wires are placed without measuring paths.
            self._mid = (a + b) / 2
            dx, dy = b.x() - a.x(), b.y() - a.y()
            down = dy - _pull(dy)
            length = math.hypot(dx, down)
            self._sideways = length > 0 and abs(down) / length < 0.7
        # Room for a typical label is reserved with the path, so a new shape after an edit repaints the wire
        # without moving it in the scene's index.
        self._bounds = self._path.boundingRect().adjusted(-6, -6, 6, 6).united(
            self._label_box(max(LABEL_ROOM, self._label_width())).adjusted(-1, -1, 1, 1))
        self._place_label()

    def set_label(self, text: str) -> None:
        if text == self.label:
            return
        self.label = text
        self._label.setText(text)
        self.setToolTip(f"{self.source.node_id} → {self.target.node_id}: {text}" if text else "")
        self._place_label()
        self.update()

    def set_selected(self, on: bool) -> None:
        if on != self.selected:
            self.selected = on
            self.update()

    def _label_width(self) -> float:
        return self.style.label_width(self.label) + 8 if self.label else 0.0

    def _label_box(self, w: float) -> QRectF:
        h = self.style.label_height + 2
        mid = self._mid
        if self._sideways:
            return QRectF(mid.x() - w / 2, mid.y() - h / 2, w, h)
        x = mid.x() - 7 - w if self.label_left else mid.x() + 7
        return QRectF(x, mid.y() - h / 2, w, h)

    def _place_label(self) -> None:
        self._label_rect = self._label_box(self._label_width()) if self.label else QRectF()
        if self.label and not self._bounds.contains(self._label_rect):
            self.prepareGeometryChange()
            self._bounds = self._bounds.united(self._label_rect.adjusted(-1, -1, 1, 1))

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self._bounds

    def shape(self) -> QPainterPath:
        if self._shape is None:  # stroked lazily: only hit tests need it
            stroker = QPainterPathStroker()
            stroker.setWidth(10)
            self._shape = stroker.createStroke(self._path)
        return self._shape

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        st = self.style
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        colour = st.highlight if self.selected else st.wire
        if lod < LOD_TEXT:
            self.drew_label = False
            painter.setPen(QPen(colour, 0))
            painter.drawLine(*self.endpoints())
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(colour, 2.5 if self.selected else 1.6))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if self._line is not None:
            painter.drawLine(self._line)
        else:
            painter.drawPath(self._path)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawPolygon(self._arrow)
        self.drew_label = bool(self.label) and lod >= LOD_LABEL
        if self.drew_label:  # a plain filled box: a rounded, antialiased outline costs more than the text
            painter.fillRect(self._label_rect, st.highlight if self.selected else st.label_fill)
            painter.setFont(st.label_font)
            painter.setPen(st.highlight_text if self.selected else st.text)
            painter.drawStaticText(self._label_rect.topLeft() + QPointF(4, 1), self._label)


def wire_path(a: QPointF, b: QPointF, detour: float = 0.0) -> QPainterPath:
    """A smooth wire leaving `a` downwards and entering `b` from above. A `detour` runs it down a lane that far
    to the side of both ends (a skip connection passing a column of nodes), with short bends at each end."""
    dy = b.y() - a.y()
    path = QPainterPath(a)
    if detour:
        lane = (max(a.x(), b.x()) if detour > 0 else min(a.x(), b.x())) + detour
        bend = min(34.0, dy / 3)
        path.cubicTo(a + QPointF(0, bend * 0.7), QPointF(lane, a.y() + bend * 0.3), QPointF(lane, a.y() + bend))
        path.lineTo(lane, b.y() - bend)
        path.cubicTo(QPointF(lane, b.y() - bend * 0.3), b - QPointF(0, bend * 0.7), b)
        return path
    pull = _pull(dy)
    path.cubicTo(a + QPointF(0, pull), b - QPointF(0, pull), b)
    return path


def _pull(dy: float) -> float:
    """How far a plain wire's control points reach down from its start (and up from its end)."""
    return max(30.0, dy / 2 if dy > 0 else 60.0 + abs(dy) / 4)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    t = max(0.0, min(1.0, t))
    return QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * t, a.greenF() + (b.greenF() - a.greenF()) * t,
                           a.blueF() + (b.blueF() - a.blueF()) * t, 1.0)


def grid_snap(value: float) -> float:
    return round(value / GRID) * GRID


__all__ = ["BadgeItem", "EdgeItem", "GRID", "LOD_TEXT", "NODE_HEIGHT", "NODE_WIDTH", "NodeItem", "Style",
           "grid_snap", "param_summary", "shape_text", "wire_path"]
