"""GraphScene: mirrors one Document's graph as node and wire items through an id → item map, shows the latest
shape analysis on them, and turns mouse gestures (drag a wire, drag nodes) into Document edits.

The scene never writes the graph itself: a finished gesture calls one Document method (one undo step), and the
graph's events then reach the scene like any other edit, so undo, redo, paste and file loads need no special case.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QEasingCurve, QLine, QLineF, QPointF, QRectF, Qt, QTimer, QVariantAnimation, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QTransform
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsScene, QGraphicsSceneMouseEvent

from engine.errors import GraphError
from engine.graph import Edge, Node
from engine.layout import ROW
from engine.shapes import Analysis

from .items import CATEGORY_COLOURS, NODE_HEIGHT, NODE_WIDTH, BadgeItem, EdgeItem, NodeItem, Style, wire_path

GRAPH_EVENTS = ("node_added", "node_removed", "edge_added", "edge_removed", "node_moved", "params_changed")
DETOUR = NODE_WIDTH / 2 + 30  # a long wire's lane runs this far beside its ends, clear of a column of nodes


@dataclass
class _WireDrag:
    """A wire being drawn from `origin`'s output (or, dragged backwards, from its input)."""

    origin: NodeItem
    from_output: bool
    item: QGraphicsPathItem
    hover: NodeItem | None = None


class GraphScene(QGraphicsScene):
    """Signals: `message(str)` one sentence for the status bar (why a wire was refused), `content_changed()`
    when nodes were added, removed or moved (coalesced), `refreshed()` after an analysis reached the items."""

    message = Signal(str)
    content_changed = Signal()
    refreshed = Signal()

    def __init__(self, document=None, parent=None):
        super().__init__(parent)
        # A BSP tree finds the items in an exposed rectangle without looking at the thousands outside it.
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.BspTreeIndex)
        self.document = None
        self.style = Style.from_palette()
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[tuple[str, str], EdgeItem] = {}
        self._edges_of: dict[str, set[EdgeItem]] = {}
        self._callbacks: list[tuple[str, Callable]] = []
        self.snapping = False  # on while the user drags nodes: model positions (tidy, files) are never snapped
        self._drag_start: dict[str, QPointF] | None = None
        self._wire: _WireDrag | None = None
        self._flash_item: NodeItem | None = None
        self._flash = QVariantAnimation(self)
        self._flash.setStartValue(1.0)
        self._flash.setEndValue(0.0)
        self._flash.setDuration(900)
        self._flash.setEasingCurve(QEasingCurve.Type.InQuad)
        self._flash.valueChanged.connect(self._on_flash_step)
        self._content_timer = QTimer(self)
        self._content_timer.setSingleShot(True)
        self._content_timer.setInterval(0)
        self._content_timer.timeout.connect(self._on_content_timer)
        self._content_rect: QRectF | None = None
        self._reroute = False  # nodes appeared, went or moved: a long wire may need a new way around
        # Wires whose ends moved or changed since they were last routed, each routed once by flush_routes (the
        # content timer, or the view before it paints): a Tidy or an undo moving 5,000 nodes would otherwise
        # route every wire twice, probing the index among half-moved nodes.
        self._stale: dict[EdgeItem, None] = {}
        self.mirroring = False  # True while an item leaves because the graph lost a node (the view waits)
        self.overview = False  # zoomed far out: items paint nothing, drawBackground draws them all in batches
        self._overview: tuple | None = None  # the batches: wire lines, selected wire lines, boxes per colour
        self._overview_geometry: tuple | None = None  # each node's box and each wire's line, until one moves
        self._caching = True
        self.selectionChanged.connect(self.invalidate_overview)
        # The graph holds plain Python callbacks: unhook them if Qt deletes this scene before the document goes.
        # The closure sees only this list, never the scene, so it can run after the scene's C++ half is gone.
        self._hooked: list[tuple] = []
        hooked = self._hooked
        self.destroyed.connect(lambda *_: [events.disconnect(name, cb) for events, name, cb in hooked])
        if document is not None:
            self.set_document(document)

    # ---- mirroring -----------------------------------------------------------------------------------
    def set_document(self, document) -> None:
        """Drop every item and mirror `document`'s graph (None: an empty canvas)."""
        self._detach()
        self._cancel_wire()
        self._drag_start = None
        self.snapping = False
        self.clear()  # deletes every item
        self.nodes.clear()
        self.edges.clear()
        self._edges_of.clear()
        self._stale.clear()
        self._overview_geometry = None
        self._flash_item = None
        self._reroute = False
        self.document = document
        if document is None:
            self._content_changed()
            return
        graph = document.graph
        self._callbacks = [(name, getattr(self, f"_on_{name}")) for name in GRAPH_EVENTS]
        for name, cb in self._callbacks:
            graph.events.connect(name, cb)
        document.analyzed.connect(self._on_analyzed)
        self._hooked[:] = [(graph.events, name, cb) for name, cb in self._callbacks]
        for node in graph.nodes.values():
            self._add_node_item(node)
        for edge in graph.edges:
            self._add_edge_item(edge)
        self._content_rect = None
        self._fit_scene_rect()  # before the routing queries below, so that the index is built once
        for nid in graph.nodes:
            ins = graph.inputs_of(nid)
            for slot, source in enumerate(ins):
                edge = self.edges[(source, nid)]
                edge.slot, edge.count = slot, len(ins)
        for edge in self.edges.values():
            self._route(edge)
        self._show_analysis(document.analysis)
        self._content_changed()

    def _detach(self) -> None:
        if self.document is None:
            return
        for name, cb in self._callbacks:
            self.document.graph.events.disconnect(name, cb)
        self._callbacks = []
        self._hooked.clear()
        try:
            self.document.analyzed.disconnect(self._on_analyzed)
        except (RuntimeError, TypeError):  # the document is already gone
            pass

    def _add_node_item(self, node: Node) -> NodeItem:
        item = NodeItem(node.id, node.type, node.params, self.style, QPointF(*node.position))
        self._prepare(item)
        self.nodes[node.id] = item
        self._edges_of[node.id] = set()
        self.addItem(item)
        return item

    def _add_edge_item(self, edge: Edge) -> EdgeItem:
        item = EdgeItem(self.nodes[edge.source], self.nodes[edge.target], self.style)
        item.set_label(self.nodes[edge.source].wire_label)
        self._prepare(item)
        self.edges[(edge.source, edge.target)] = item
        self._edges_of[edge.source].add(item)
        self._edges_of[edge.target].add(item)
        self.addItem(item)
        return item

    def _on_node_added(self, node: Node) -> None:
        self._add_node_item(node)
        self.invalidate_overview(geometry=True)
        self._content_changed(reroute=True)

    def _on_node_removed(self, node: Node) -> None:
        item = self.nodes.pop(node.id, None)
        self._edges_of.pop(node.id, None)
        if item is None:
            return
        if self._flash_item is item:
            self._flash_item = None
        if self._wire is not None and item in (self._wire.origin, self._wire.hover):
            self._cancel_wire()
        self.mirroring = True
        try:
            self.removeItem(item)
        finally:
            self.mirroring = False
        self.invalidate_overview(geometry=True)
        self._content_changed(reroute=True)

    def _on_edge_added(self, edge: Edge) -> None:
        self._add_edge_item(edge)
        self.invalidate_overview(geometry=True)
        self._route_around(edge.source, edge.target)

    def _on_edge_removed(self, edge: Edge) -> None:
        item = self.edges.pop((edge.source, edge.target), None)
        if item is None:
            return
        for nid in (edge.source, edge.target):
            self._edges_of.get(nid, set()).discard(item)
        self._stale.pop(item, None)
        self.removeItem(item)
        self.invalidate_overview(geometry=True)
        self._route_around(edge.source, edge.target)

    def _on_node_moved(self, node: Node) -> None:
        item = self.nodes.get(node.id)
        pos = QPointF(*node.position)
        if item is not None and item.pos() != pos:  # our own drag already shows it: no echo
            item.setPos(pos)

    def _on_params_changed(self, node: Node) -> None:
        item = self.nodes.get(node.id)
        if item is not None:
            item.set_params(node.params)

    def _on_analyzed(self, analysis: Analysis) -> None:
        self._show_analysis(analysis)

    def _show_analysis(self, analysis: Analysis) -> None:
        """Shapes, errors and wire labels; only the items whose text changed repaint."""
        infos = analysis.nodes
        changed = False
        for nid, item in self.nodes.items():
            if item.set_info(infos.get(nid)):
                changed = True
                label = item.wire_label
                for edge in self._edges_of[nid]:
                    if edge.source is item:
                        edge.set_label(label)
        if changed:
            self.invalidate_overview()
        self.refreshed.emit()

    def _restack_inputs(self, target: str) -> None:
        """Wires into a node with several inputs end left to right in input order (Add, Concat keep order)."""
        ins = self.document.graph.inputs_of(target)
        for slot, source in enumerate(ins):
            edge = self.edges.get((source, target))
            if edge is not None:
                edge.slot, edge.count = slot, len(ins)
                self._mark(edge)

    def _mark(self, edge: EdgeItem) -> None:
        """Route this wire at the next flush (once, however many of its ends change before it)."""
        if not self._stale:
            self._content_timer.start()
        self._stale[edge] = None

    def flush_routes(self) -> None:
        """Route every wire marked since the last flush, once. The content timer calls it once per batch of
        edits, and the view before it paints, so a wire is never drawn along a stale path. After nodes came, went
        or moved, long wires are routed again too: a node may now stand in their way, or no longer."""
        if not (self._stale or self._reroute):
            return
        if self._content_rect is None:
            self._fit_scene_rect()  # before the routing queries, so that the index is rebuilt at most once
        if self._reroute:
            self._reroute = False
            for edge in self.edges.values():
                if edge not in self._stale:
                    a, b = edge.endpoints()
                    if b.y() - a.y() > NODE_HEIGHT + 0.5 * ROW or edge.detour:
                        self._stale[edge] = None
        while self._stale:
            stale, self._stale = self._stale, {}
            for edge in stale:
                if self.edges.get(edge.key) is edge:
                    self._route(edge)

    def _route(self, edge: EdgeItem) -> None:
        """Straight down when nothing is in the way; a long wire (a skip connection) that would run behind
        other nodes bows out to the side of its input slot instead. The label goes where no other wire is."""
        edge.detour = 0.0
        a, b = ends = edge.endpoints()
        # Only a wire running down a column can hide behind it; one crossing columns stays a plain curve.
        if b.y() - a.y() > NODE_HEIGHT + 0.5 * ROW and abs(b.x() - a.x()) < NODE_WIDTH:
            probe = QRectF(a, b).normalized().adjusted(-4, 2, 4, -2)
            # Candidates by bounding rect, then the node's own outline: asking Qt for shapes would stroke
            # the path of every wire the probe meets.
            blocked = any(isinstance(it, NodeItem) and it is not edge.source and it is not edge.target
                          and it.shape().intersects(probe.translated(-it.pos()))
                          for it in self.items(probe, Qt.ItemSelectionMode.IntersectsItemBoundingRect))
            if blocked:
                edge.detour = -DETOUR if edge.slot < (edge.count - 1) / 2 else DETOUR
        if edge.detour:
            edge.label_left = edge.detour < 0
        elif sum(1 for e in self._edges_of[edge.source.node_id] if e.source is edge.source) > 1:
            # A branching node: the wire going straight down keeps its label left, clear of the branch
            # that leaves to the right.
            edge.label_left = b.x() <= a.x()
        else:
            edge.label_left = edge.count > 1 and edge.slot < (edge.count - 1) / 2
        edge.update_path(ends)

    def _route_around(self, source: str, target: str) -> None:
        """Wires whose slot or label side an edge between these two nodes can change."""
        if target in self.nodes:
            self._restack_inputs(target)
        for edge in self._edges_of.get(source, ()):
            if edge.source.node_id == source:
                self._mark(edge)

    def node_item_moved(self, item: NodeItem) -> None:
        """Called by a NodeItem whenever its position changed (a drag, or the model moving it)."""
        for edge in self._edges_of.get(item.node_id, ()):
            self._mark(edge)
        self.invalidate_overview(geometry=True)
        if self._drag_start is None:
            self._content_changed(reroute=True)

    def _content_changed(self, reroute: bool = False) -> None:
        self._content_rect = None
        self._reroute = self._reroute or reroute
        self._content_timer.start()

    def _fit_scene_rect(self) -> None:
        """An explicit scene rect with room to spare. Left to grow by itself, the scene rect would change with
        every item that reaches past it, and each change rebuilds the whole BSP index."""
        content = self.content_rect()
        current = self.sceneRect()
        roomy = current.contains(content.adjusted(-200, -200, 200, 200))
        snug = current.width() * current.height() < 4 * (content.width() + 4000) * (content.height() + 4000)
        if not (roomy and snug):
            self.setSceneRect(content.adjusted(-2000, -2000, 2000, 2000))

    def _on_content_timer(self) -> None:
        self._fit_scene_rect()
        self.flush_routes()  # long wires are re-routed once per batch of edits (tidy, undo, paste)
        self.content_changed.emit()

    def content_rect(self) -> QRectF:
        """The rectangle holding every node (a small default one around the origin when there are none)."""
        if self._content_rect is None:
            if not self.nodes:
                self._content_rect = QRectF(-400, -300, 800, 600)
            else:
                xs = [i.x() for i in self.nodes.values()]
                ys = [i.y() for i in self.nodes.values()]
                self._content_rect = QRectF(QPointF(min(xs) - NODE_WIDTH / 2, min(ys) - NODE_HEIGHT / 2),
                                            QPointF(max(xs) + NODE_WIDTH / 2, max(ys) + NODE_HEIGHT / 2))
        return QRectF(self._content_rect)

    def refresh_style(self) -> None:
        """Re-read the application palette (the theme changed)."""
        self.style = Style.from_palette()
        self._overview = None
        for item in self.nodes.values():
            item.set_style(self.style)
        for edge in self.edges.values():
            edge.style = self.style
            edge.update_path()
            edge.update()
        self.update()

    # ---- far zoom and zoom gestures ------------------------------------------------------------------
    def _prepare(self, item: QGraphicsItem) -> None:
        if self.overview:
            item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents, True)
        if not self._caching:
            item.setCacheMode(QGraphicsItem.CacheMode.NoCache)

    def set_overview(self, on: bool) -> None:
        """Far out, thousands of items each painting a box cost a Python call apiece per frame; instead they
        paint nothing (yet stay selectable and hit-testable) and drawBackground draws them in a few batches."""
        if on == self.overview:
            return
        self.overview = on
        flag = QGraphicsItem.GraphicsItemFlag.ItemHasNoContents
        for item in self.nodes.values():
            item.setFlag(flag, on)
            if item.badge is not None:
                item.badge.setFlag(flag, on)
        for edge in self.edges.values():
            edge.setFlag(flag, on)
        self._overview = None
        self.update()

    def set_item_caching(self, on: bool) -> None:
        """Pixmap caches make panning cheap but every zoom step would re-render them: the view turns them off
        while a zoom gesture lasts."""
        if on == self._caching:
            return
        self._caching = on
        mode = QGraphicsItem.CacheMode.DeviceCoordinateCache if on else QGraphicsItem.CacheMode.NoCache
        for item in self.nodes.values():
            item.setCacheMode(mode)
        for edge in self.edges.values():
            edge.setCacheMode(mode)

    def invalidate_overview(self, geometry: bool = False) -> None:
        """The batches are stale (with `geometry`, also the boxes and lines they are made of: something moved,
        came or went). Items that paint nothing never ask for a repaint themselves (Qt skips them), so in
        overview mode the scene asks for one; Qt merges them into one frame per event-loop turn."""
        self._overview = None
        if geometry:
            self._overview_geometry = None
        if self.overview:
            self.update()

    def _overview_batches(self) -> tuple:
        if self._overview is None:
            if self._overview_geometry is None:
                # Built once per change of geometry; a selection or a new analysis only regroups them by colour.
                out_port, in_port = NodeItem.output_port(), NodeItem.input_port()
                w, h = NODE_WIDTH, NODE_HEIGHT
                self._overview_geometry = (
                    [(item, QRectF(item.x() - w / 2, item.y() - h / 2, w, h)) for item in self.nodes.values()],
                    [(edge, QLineF(edge.source.pos() + out_port, edge.target.pos() + in_port))
                     for edge in self.edges.values()])
            boxes_of, lines_of = self._overview_geometry
            lines, chosen = [], []
            for edge, line in lines_of:
                (chosen if edge.selected else lines).append(line)
            boxes: dict[str, list[QRectF]] = {}
            for item, box in boxes_of:
                key = "selected" if item.isSelected() else "error" if item.state == "error" else item.category
                group = boxes.get(key)
                if group is None:
                    boxes[key] = [box]
                else:
                    group.append(box)
            self._overview = (lines, chosen, boxes)
        return self._overview

    def _paint_overview(self, painter: QPainter) -> None:
        lines, chosen, boxes = self._overview_batches()
        st = self.style
        painter.setPen(QPen(st.wire, 0))
        painter.drawLines(lines)
        if chosen:
            painter.setPen(QPen(st.highlight, 0))
            painter.drawLines(chosen)
        painter.setPen(Qt.PenStyle.NoPen)
        for key, rects in boxes.items():
            colour = {"selected": st.highlight, "error": st.error}.get(key) or QColor(CATEGORY_COLOURS.get(key,
                                                                                                         "#888888"))
            painter.setBrush(colour)
            painter.drawRects(rects)

    # ---- queries -------------------------------------------------------------------------------------
    def selected_node_ids(self) -> list[str]:
        """Selected nodes in graph order."""
        chosen = {i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)}
        if not chosen or self.document is None:
            return []
        return [nid for nid in self.document.graph.nodes if nid in chosen]

    def selected_edges(self) -> list[tuple[str, str]]:
        return [key for key, e in self.edges.items() if e.selected]

    def clear_edge_selection(self) -> None:
        for e in self.edges.values():
            e.set_selected(False)
        self.invalidate_overview()

    def node_at(self, pos: QPointF, exclude: QGraphicsItem | None = None) -> NodeItem | None:
        item = self.item_at(pos, exclude)
        return item if isinstance(item, NodeItem) else None

    def item_at(self, pos: QPointF, exclude: QGraphicsItem | None = None) -> NodeItem | EdgeItem | None:
        """The topmost node or wire under a scene point (a badge counts as its node)."""
        self.flush_routes()  # a wire is hit where it is drawn
        for it in self.items(pos, Qt.ItemSelectionMode.IntersectsItemShape, Qt.SortOrder.DescendingOrder,
                             QTransform()):
            if isinstance(it, BadgeItem):
                it = it.parentItem()
            if it is exclude:
                continue
            if isinstance(it, (NodeItem, EdgeItem)):
                return it
        return None

    # ---- a refused wire flashes the node it was dropped on ---------------------------------------------
    def flash(self, node_id: str) -> None:
        item = self.nodes.get(node_id)
        if item is None:
            return
        if self._flash_item is not None and self._flash_item is not item:
            self._flash_item.flash = 0.0
            self._flash_item.update()
        self._flash_item = item
        self._flash.stop()
        item.flash = 1.0
        item.update()
        self._flash.start()

    def _on_flash_step(self, value: float) -> None:
        if self._flash_item is not None:
            self._flash_item.flash = float(value)
            self._flash_item.update()

    # ---- gestures --------------------------------------------------------------------------------------
    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802 - Qt's name
        additive = bool(event.modifiers() & (Qt.KeyboardModifier.ControlModifier
                                             | Qt.KeyboardModifier.ShiftModifier))
        if event.button() == Qt.MouseButton.LeftButton and self.document is not None:
            item = self.item_at(event.scenePos())
            if isinstance(item, NodeItem):
                port = item.port_at(item.mapFromScene(event.scenePos()))
                if port is not None:
                    self._start_wire(item, port == "out", event.scenePos())
                    event.accept()
                    return
            elif isinstance(item, EdgeItem):
                if not additive:
                    self.clearSelection()
                    self.clear_edge_selection()
                item.set_selected(not item.selected if additive else True)
                self.invalidate_overview()
                event.accept()
                return
            if not additive:
                self.clear_edge_selection()
        super().mousePressEvent(event)
        grabber = self.mouseGrabberItem()
        if event.button() == Qt.MouseButton.LeftButton and isinstance(grabber, NodeItem):
            moving = [i for i in self.selectedItems() if isinstance(i, NodeItem)] + [grabber]
            self._drag_start = {i.node_id: i.pos() for i in moving}
            self.snapping = True

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._wire is not None:
            self._drag_wire(event.scenePos())
            event.accept()
            return
        super().mouseMoveEvent(event)
        self.flush_routes()  # a drag moved nodes: their wires follow in this frame, each routed once

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._wire is not None:
            if event.button() == Qt.MouseButton.LeftButton:
                self._finish_wire(event.scenePos())
            event.accept()
            return
        super().mouseReleaseEvent(event)
        if self._drag_start is not None and event.button() == Qt.MouseButton.LeftButton:
            self._record_drag()

    def _record_drag(self) -> None:
        """The drag is over: one Document.move_nodes for every node it moved (one undo step)."""
        start, self._drag_start = self._drag_start, None
        self.snapping = False
        moves = {}
        for nid, old in start.items():
            item = self.nodes.get(nid)
            if item is not None and item.pos() != old:
                moves[nid] = ((old.x(), old.y()), (item.x(), item.y()))
        if moves and self.document is not None:
            self.document.move_nodes(moves)
        self._content_changed(reroute=bool(moves))

    def _start_wire(self, origin: NodeItem, from_output: bool, pos: QPointF) -> None:
        path = QGraphicsPathItem()
        pen = QPen(self.style.highlight, 2.0, Qt.PenStyle.DashLine)
        path.setPen(pen)
        path.setZValue(10)
        self.addItem(path)
        self._wire = _WireDrag(origin, from_output, path)
        self._drag_wire(pos)

    def _drag_wire(self, pos: QPointF) -> None:
        wire = self._wire
        port = wire.origin.pos() + (NodeItem.output_port() if wire.from_output else NodeItem.input_port())
        wire.item.setPath(wire_path(port, pos) if wire.from_output else wire_path(pos, port))
        hover = self.node_at(pos, exclude=wire.item)
        if hover is wire.origin:
            hover = None
        if hover is not wire.hover:
            if wire.hover is not None:
                wire.hover.drop_hint = None
                wire.hover.update()
            if hover is not None:
                source, target = self._wire_ends(hover)
                try:
                    self.document.graph.check_connect(source, target)
                    hover.drop_hint = "ok"
                except GraphError:
                    hover.drop_hint = "refused"
                hover.update()
            wire.hover = hover

    def _wire_ends(self, other: NodeItem) -> tuple[str, str]:
        wire = self._wire
        if wire.from_output:
            return wire.origin.node_id, other.node_id
        return other.node_id, wire.origin.node_id

    def _finish_wire(self, pos: QPointF) -> None:
        target = self.node_at(pos, exclude=self._wire.item)
        ends = self._wire_ends(target) if target is not None and target is not self._wire.origin else None
        self._cancel_wire()
        if ends is None:
            return
        try:
            self.document.connect(*ends)
        except GraphError as e:
            self.flash(target.node_id)
            self.message.emit(str(e))

    def _cancel_wire(self) -> None:
        wire, self._wire = self._wire, None
        if wire is None:
            return
        if wire.hover is not None:
            wire.hover.drop_hint = None
            wire.hover.update()
        if wire.item.scene() is self:
            self.removeItem(wire.item)

    def cancel_gesture(self) -> bool:
        """Escape: drop a wire being drawn; True when there was one."""
        had = self._wire is not None
        self._cancel_wire()
        return had

    # ---- background --------------------------------------------------------------------------------------
    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt's name
        painter.fillRect(rect, self.style.background)
        scale = painter.worldTransform().m11()
        step = 20.0 if scale >= 0.6 else 100.0 if scale >= 0.15 else 0.0
        if step:
            self._paint_grid(painter, rect, step)
        if self.overview:
            self._paint_overview(painter)

    def _paint_grid(self, painter: QPainter, rect: QRectF, step: float) -> None:
        """Grid lines in device pixels, whole and opaque: a scaled or blended line costs many times more."""
        t = painter.worldTransform()
        device = t.mapRect(rect).toAlignedRect()
        scale, dx, dy = t.m11(), t.dx(), t.dy()
        painter.save()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(QPen(self.style.grid, 1))
        lines = []
        x = math.floor(rect.left() / step) * step
        while x <= rect.right():
            px = round(x * scale + dx)
            lines.append(QLine(px, device.top(), px, device.bottom()))
            x += step
        y = math.floor(rect.top() / step) * step
        while y <= rect.bottom():
            py = round(y * scale + dy)
            lines.append(QLine(device.left(), py, device.right(), py))
            y += step
        painter.drawLines(lines)
        painter.restore()
