"""Small pictures of a network graph (the start page's template cards): boxes coloured by layer category and the
wires between them, drawn from the nodes' canvas positions, fitted and centred in the requested size."""
from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QGuiApplication,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QPixmap,
)

from engine.graph import Graph
from engine.layout import ROW

from .colors import layer_color

MARGIN = 12.0          # pixels kept clear around the drawing
MAX_BOX = QSize(84, 22)  # one node alone still reads as a box, not as a banner
MIN_BOX_HEIGHT = 3.0
LABEL_MIN_BOX_HEIGHT = 12.0  # below this a layer name would be too small to read, so boxes stay plain
MAX_SCALE = 0.42       # pixels per canvas unit: two nodes do not fill a card like a zoomed-in canvas
_STACK_OFFSET = 3.0    # nodes at one position are fanned out a little so that each one shows


def graph_thumbnail(graph: Graph, size: QSize, palette: QPalette | None = None,
                    device_pixel_ratio: float = 1.0) -> QPixmap:
    """A `size` picture of `graph` (logical pixels; sharper with a device pixel ratio above 1) on a rounded
    canvas-coloured background taken from `palette` (the application's when None)."""
    palette = palette or QGuiApplication.palette()
    ratio = max(1.0, float(device_pixel_ratio))
    pixmap = QPixmap(max(1, round(size.width() * ratio)), max(1, round(size.height() * ratio)))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    try:
        _paint(painter, graph, QRectF(0, 0, size.width(), size.height()), palette)
    finally:
        painter.end()
    return pixmap


def canvas_color(palette: QPalette) -> QColor:
    """The thumbnail background: a shade off the window colour, like the editor's canvas."""
    window = palette.color(QPalette.ColorRole.Window)
    return window.darker(112) if window.lightness() < 128 else window.darker(104)


def _paint(painter: QPainter, graph: Graph, rect: QRectF, palette: QPalette) -> None:
    dark = palette.color(QPalette.ColorRole.Window).lightness() < 128
    background = canvas_color(palette)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(background)
    painter.drawRoundedRect(rect, 8, 8)
    _paint_dots(painter, rect, QColor(255, 255, 255, 16) if dark else QColor(0, 0, 0, 18))
    if not len(graph):
        return
    boxes = _fit(graph, rect)
    ink = QColor(palette.color(QPalette.ColorRole.WindowText))
    ink.setAlphaF(0.45)
    wire = QPen(ink, 1.3 if min(b.height() for b in boxes.values()) > 6 else 1.0)
    wire.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(wire)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    detours = 0
    for edge in graph.edges:
        path, detour = _wire(boxes[edge.source], boxes[edge.target], boxes.values(), detours)
        detours += detour
        painter.drawPath(path)
    for nid, box in boxes.items():
        fill = QColor(layer_color(graph.nodes[nid].type))
        radius = min(4.0, box.height() / 2.5)
        # A shade of the fill keeps edges crisp on light backgrounds; the dark canvas outlines boxes apart.
        painter.setPen(QPen(fill.darker(120) if not dark else background.darker(140), 1.0))
        painter.setBrush(fill)
        painter.drawRoundedRect(box, radius, radius)
        if box.height() >= 9:  # a lighter top edge gives bigger boxes some depth; invisible on tiny ones
            painter.setPen(QPen(QColor(255, 255, 255, 70), 1.0))
            inner = box.adjusted(radius, 1.2, -radius, 0)
            painter.drawLine(inner.topLeft(), inner.topRight())
    _paint_labels(painter, graph, boxes)


def _paint_labels(painter: QPainter, graph: Graph, boxes: dict[str, QRectF]) -> None:
    """The layer type inside each box once boxes are tall enough to hold readable text (small networks)."""
    height = min(b.height() for b in boxes.values())
    if height < LABEL_MIN_BOX_HEIGHT:
        return
    font = QFont(painter.font())
    font.setPixelSize(max(8, min(11, round(height * 0.5))))
    font.setWeight(QFont.Weight.DemiBold)
    painter.setFont(font)
    metrics = QFontMetricsF(font)
    painter.setPen(QColor("#ffffff"))
    for nid, box in boxes.items():
        text = metrics.elidedText(graph.nodes[nid].type, Qt.TextElideMode.ElideRight, box.width() - 8)
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)


def _paint_dots(painter: QPainter, rect: QRectF, color: QColor) -> None:
    painter.setPen(QPen(color, 1.4))
    step = 12.0
    y = rect.top() + step / 2
    while y < rect.bottom():
        x = rect.left() + step / 2
        while x < rect.right():
            painter.drawPoint(QPointF(x, y))
            x += step
        y += step


def _wire(a: QRectF, b: QRectF, boxes, detours: int) -> tuple[QPainterPath, bool]:
    """A vertical S-curve from the bottom of `a` to the top of `b`, as the canvas draws data flowing down. A wire
    that would run behind other boxes (a skip connection in a column) bows out to the right instead, so that
    the residual shape shows; the second flag says it did, and `detours` spaces out several such bows."""
    start = QPointF(a.center().x(), a.bottom())
    end = QPointF(b.center().x(), b.top())
    corridor = QRectF(min(start.x(), end.x()) - 1, start.y(), abs(end.x() - start.x()) + 2, end.y() - start.y())
    blockers = [r for r in boxes if r is not a and r is not b and r.intersects(corridor)]
    if end.y() >= start.y() and not blockers:
        bend = max(4.0, (end.y() - start.y()) * 0.5)
        path = QPainterPath(start)
        path.cubicTo(start + QPointF(0, bend), end - QPointF(0, bend), end)
        return path, False
    # Around the right of everything in the way; a cubic reaches ¾ of the way to its control points.
    start = QPointF(a.right(), a.center().y())
    end = QPointF(b.right(), b.center().y())
    side = max([r.right() for r in blockers] + [start.x(), end.x()]) + 8.0 + 5.0 * detours
    reach = start.x() + (side - start.x()) / 0.75
    path = QPainterPath(start)
    path.cubicTo(QPointF(reach, start.y()), QPointF(reach + end.x() - start.x(), end.y()), end)
    return path, True


def _fit(graph: Graph, rect: QRectF) -> dict[str, QRectF]:
    """Each node's box in pixels. Centres are scaled uniformly (the picture keeps the graph's proportions) and
    box sizes follow from the spacing of neighbours rather than the canvas box size, so that a long chain is a
    column of readable bars instead of a thin stripe of specks."""
    centres = {nid: (float(n.position[0]), float(n.position[1])) for nid, n in graph.nodes.items()}
    xs = [c[0] for c in centres.values()]
    ys = [c[1] for c in centres.values()]
    span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
    pitch_x, pitch_y = _pitches(list(centres.values()))
    area_w = max(1.0, rect.width() - 2 * MARGIN)
    area_h = max(1.0, rect.height() - 2 * MARGIN)
    max_w = min(float(MAX_BOX.width()), area_w)
    max_h = min(float(MAX_BOX.height()), area_h)
    # Boxes fill most of the gap to their neighbour: 85 % across a row, 60 % down a column (room for the wire).
    scale = min(_max_scale(span_x, 0.85 * pitch_x, max_w, area_w),
                _max_scale(span_y, 0.6 * pitch_y, max_h, area_h), MAX_SCALE)
    box_w = max(MIN_BOX_HEIGHT, min(0.85 * pitch_x * scale, max_w))
    box_h = max(MIN_BOX_HEIGHT, min(0.6 * pitch_y * scale, max_h))
    box_w = max(box_w, min(max_w, box_h * 2.2))  # never narrower than a flat bar
    # Centre the drawing: the span of the centres plus one box, in the middle of the rect.
    left = rect.center().x() - (span_x * scale) / 2
    top = rect.center().y() - (span_y * scale) / 2
    boxes: dict[str, QRectF] = {}
    seen: dict[tuple[int, int], int] = {}
    for nid, (x, y) in centres.items():
        cx = left + (x - min(xs)) * scale
        cy = top + (y - min(ys)) * scale
        key = (round(cx), round(cy))
        stacked = seen.get(key, 0)
        seen[key] = stacked + 1
        cx += stacked * _STACK_OFFSET
        cy += stacked * _STACK_OFFSET
        boxes[nid] = QRectF(cx - box_w / 2, cy - box_h / 2, box_w, box_h)
    return boxes


def _pitches(points: list[tuple[float, float]]) -> tuple[float, float]:
    """The smallest distance between side-by-side nodes and between stacked ones (infinite when there are none).
    Side by side means closer vertically than a row; stacked means closer horizontally than a column's gap."""
    pitch_x = pitch_y = math.inf
    for i, (x1, y1) in enumerate(points):
        for x2, y2 in points[i + 1:]:
            dx, dy = abs(x1 - x2), abs(y1 - y2)
            if dx < 1 and dy < 1:
                continue  # one position: handled as a stack when drawing
            if dy < ROW / 2 and dx >= 1:
                pitch_x = min(pitch_x, dx)
            if dx < ROW and dy >= 1:
                pitch_y = min(pitch_y, dy)
    return pitch_x, pitch_y


def _max_scale(span: float, gap_ratio: float, cap: float, area: float) -> float:
    """The largest scale s with span·s + min(gap_ratio·s, cap) ≤ area: the centres' spread plus one box fits."""
    if math.isfinite(gap_ratio) and gap_ratio > 0:
        s = area / (span + gap_ratio)
        if gap_ratio * s <= cap:
            return s
    if span <= 0:
        return math.inf
    return max(0.0, (area - cap) / span)
