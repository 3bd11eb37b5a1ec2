"""GraphView: the canvas widget. Zoom, pan, fit, drops from the palette, the clipboard and keyboard edits, each
turned into one Document call; the scene it shows (GraphScene) mirrors the document's graph.
"""
from __future__ import annotations

import atexit
import json

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QCursor, QGuiApplication, QKeyEvent, QMouseEvent, QPainter, QPixmapCache, QWheelEvent
from PySide6.QtWidgets import QApplication, QFrame, QGraphicsView, QMenu, QWidget

from engine.errors import GraphError, LayerLoomError
from engine.layers import get_spec
from engine.layout import COLUMN, ROW

from ..document import CLIPBOARD_MIME, LAYER_MIME, Document
from .items import GRID, LOD_LABEL, NODE_HEIGHT, NODE_WIDTH, OVERVIEW_ZOOM, NodeItem, grid_snap
from .scene import GraphScene

MIN_ZOOM, MAX_ZOOM = 0.02, 3.0
READABLE_ZOOM = LOD_LABEL  # a document opens at least this close: layer names and shapes on wires stay legible
WHEEL_STEP = 1.0015  # per 1/8 degree: one notch (120) zooms by 20 %
PASTE_STEP = 40.0


class GraphView(QGraphicsView):
    """The canvas. Signals: `message(str)` one sentence for the status bar, `selection_changed(list)` selected
    node ids in graph order, `node_activated(str)` a node double-clicked.

    Mouse: left-drag a node to move it (snapped to a 10 px grid, one undo step on release), from a port to draw
    a wire, on empty canvas for a rubber band; click a wire to select it; wheel zooms around the cursor;
    middle-drag, or Space + left-drag, pans; double-click a node to activate it.

    Keys the view handles itself, only while it has focus and no window action claims them: Delete and
    Backspace (delete the selection), F (fit), Escape (drop a wire being drawn, else clear the selection), arrows
    (nudge the selection, Shift for 5 grid steps), Space held (pan). Copy, cut, paste, duplicate and select-all
    have no key here: the main window's actions call copy(), cut(), paste(), duplicate(), select_all().
    """

    message = Signal(str)
    selection_changed = Signal(list)
    node_activated = Signal(str)

    def __init__(self, document: Document | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._scene = GraphScene(parent=self)
        self.setScene(self._scene)
        self._document: Document | None = None
        self._batch = False
        self._pan_from: QPoint | None = None
        self._space = False
        self._port_cursor = False
        self._fit_pending = False
        self._paste_key: tuple[bytes, int] = (b"", 0)
        self.context_actions: list = []  # what a right-click offers (the main window's block actions); None: a line
        self._style_timer = QTimer(self)
        self._style_timer.setSingleShot(True)
        self._style_timer.timeout.connect(self._scene.refresh_style)
        self._zoom_settled = QTimer(self)  # a zoom gesture is over when no step came for a moment
        self._zoom_settled.setSingleShot(True)
        self._zoom_settled.setInterval(250)
        self._zoom_settled.timeout.connect(self.settle_zoom)
        self._selection_later = QTimer(self)  # nodes deleted one by one: one report once the edit is over
        self._selection_later.setSingleShot(True)
        self._selection_later.setInterval(0)
        self._selection_later.timeout.connect(self._on_selection_changed)
        self._scene.message.connect(self.message)
        self._scene.selectionChanged.connect(self._on_selection_changed)
        self._scene.content_changed.connect(self._on_content_changed)
        self.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        # Items add the margin antialiasing needs to their bounding rects, so Qt need not add its own.
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.ItemSelectionMode.IntersectsItemShape)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Network canvas")
        self.viewport().setMouseTracking(True)  # moves without a button: the cross cursor over ports
        _make_room_for_item_caches()
        self.set_document(document)

    # ---- document ------------------------------------------------------------------------------------
    def scene(self) -> GraphScene:
        return self._scene

    @property
    def document(self) -> Document | None:
        return self._document

    def set_document(self, document: Document | None) -> None:
        """Mirror this document's graph (None: an empty canvas) and fit it into view."""
        self._document = document
        self._batch = True
        try:
            self._scene.set_overview(False)
            self._scene.set_document(document)
        finally:
            self._batch = False
        self._update_scroll_area()
        self._fit_pending = True
        if self.isVisible():
            self.fit(readable=True)
        self.selection_changed.emit([])

    # ---- selection -------------------------------------------------------------------------------------
    def selected_nodes(self) -> list[str]:
        return self._scene.selected_node_ids()

    def select_nodes(self, ids: list[str]) -> None:
        """Select exactly these nodes and scroll them into view."""
        items = [self._scene.nodes[i] for i in ids if i in self._scene.nodes]
        self._batch = True
        try:
            self._scene.clearSelection()
            self._scene.clear_edge_selection()
            for item in items:
                item.setSelected(True)
        finally:
            self._batch = False
        self._on_selection_changed()
        if items:
            rect = QRectF(items[0].sceneBoundingRect())
            for item in items[1:]:
                rect = rect.united(item.sceneBoundingRect())
            self.ensureVisible(rect, 40, 40)

    def select_all(self) -> None:
        self.select_nodes(list(self._scene.nodes))

    def _on_selection_changed(self) -> None:
        if self._batch:
            return
        if self._scene.mirroring:
            # A selected node left with the graph. Deleting 5,000 selected nodes would otherwise report 5,000
            # shrinking selections, each listing the rest: quadratic. The Inspector drops a deleted node itself.
            self._selection_later.start()
            return
        self._selection_later.stop()
        self.selection_changed.emit(self.selected_nodes())

    # ---- edits -------------------------------------------------------------------------------------------
    def delete_selected(self) -> None:
        """Delete the selected nodes and wires as one undo step."""
        if self._document is None:
            return
        nodes, edges = self.selected_nodes(), self._scene.selected_edges()
        if nodes or edges:
            self._document.delete(nodes, edges)

    def copy(self) -> None:
        ids = self.selected_nodes()
        if self._document is None or not ids:
            self.message.emit("Select the layers to copy first.")
            return
        data = json.dumps(self._document.copy_nodes(ids)).encode("utf-8")
        mime = QMimeData()
        mime.setData(CLIPBOARD_MIME, QByteArray(data))
        QApplication.clipboard().setMimeData(mime)
        _clear_clipboard_at_exit()
        self._paste_key = (data, 0)
        self.message.emit(f"Copied {_layers(len(ids))}.")

    def cut(self) -> None:
        ids = self.selected_nodes()
        if self._document is None or not ids:
            self.message.emit("Select the layers to cut first.")
            return
        self.copy()
        self._paste_key = (self._paste_key[0], -1)  # the first paste goes where the cut nodes were
        self._document.delete(ids, [])

    def paste(self) -> None:
        """Paste LayerLoom layers from the clipboard under the mouse (or next to the originals) and select them."""
        if self._document is None:
            return
        mime = QApplication.clipboard().mimeData()
        if mime is None or not mime.hasFormat(CLIPBOARD_MIME):
            self.message.emit("The clipboard holds no layers to paste.")
            return
        raw = bytes(mime.data(CLIPBOARD_MIME).data())
        try:
            data = json.loads(raw.decode("utf-8"))
            nodes = data["nodes"]
            xs = [float(n["position"][0]) for n in nodes]
            ys = [float(n["position"][1]) for n in nodes]
        except (ValueError, KeyError, TypeError, IndexError):
            self.message.emit("The clipboard's layers cannot be read.")
            return
        if not nodes:
            return
        cursor = self.viewport().mapFromGlobal(QCursor.pos())
        if self.viewport().underMouse() and self.viewport().rect().contains(cursor):
            centre = self.mapToScene(cursor)
            offset = (grid_snap(centre.x() - (min(xs) + max(xs)) / 2), grid_snap(centre.y() - (min(ys) + max(ys)) / 2))
        else:  # repeated pastes step down and right instead of piling up
            count = self._paste_key[1] + 1 if self._paste_key[0] == raw else 1
            self._paste_key = (raw, count)
            offset = (PASTE_STEP * count, PASTE_STEP * count)
        try:
            ids = self._document.paste(data, offset)
        except (GraphError, KeyError, TypeError, ValueError) as e:
            self.message.emit(f"Cannot paste: {e}")
            return
        self.select_nodes(ids)

    def duplicate(self) -> None:
        ids = self.selected_nodes()
        if self._document is None or not ids:
            return
        self.select_nodes(self._document.duplicate(ids))

    def tidy(self) -> None:
        """The layered layout of the whole graph (one undo step), then fit it into view."""
        if self._document is None or not self._document.graph.nodes:
            return
        self._document.tidy()
        self.fit()

    def add_layer(self, layer_type: str, scene_pos: QPointF | None = None) -> str:
        """Add a layer and return its id. When a node is selected (the last in graph order when several are) and
        the new layer takes input, it is wired from that node and placed below it; `scene_pos` overrides the
        place. The new node becomes the selection, so repeated adds build a chain. Refused: message, ""."""
        if self._document is None:
            return ""
        try:
            spec = get_spec(layer_type)
        except GraphError as e:
            self.message.emit(str(e))
            return ""
        selected = self.selected_nodes()
        source = selected[-1] if selected and spec.max_inputs != 0 else None
        if scene_pos is not None:
            pos = QPointF(grid_snap(scene_pos.x()), grid_snap(scene_pos.y()))
        elif source is not None:
            below = self._scene.nodes[source].pos() + QPointF(0, ROW)
            pos = self._free_spot(below, QPointF(COLUMN, 0))
        else:
            centre = self.mapToScene(self.viewport().rect().center())
            pos = self._free_spot(QPointF(grid_snap(centre.x()), grid_snap(centre.y())), QPointF(0, ROW))
        try:
            nid = self._document.add_node(spec.type, position=(pos.x(), pos.y()), connect_from=source)
        except GraphError as e:
            self.message.emit(str(e))
            return ""
        self.select_nodes([nid])
        return nid

    def _free_spot(self, pos: QPointF, step: QPointF) -> QPointF:
        """`pos`, or the first place along `step` where a new node would overlap none."""
        for _ in range(200):
            probe = QRectF(pos.x() - NODE_WIDTH / 2 - 10, pos.y() - NODE_HEIGHT / 2 - 10,
                           NODE_WIDTH + 20, NODE_HEIGHT + 20)
            if not any(isinstance(i, NodeItem) for i in self._scene.items(probe)):
                break
            pos = pos + step
        return pos

    def _nudge(self, dx: float, dy: float) -> None:
        ids = self.selected_nodes()
        if self._document is None or not ids:
            return
        moves = {}
        for nid in ids:
            x, y = self._document.graph.nodes[nid].position
            moves[nid] = ((x, y), (x + dx, y + dy))
        self._document.move_nodes(moves)

    # ---- zoom and pan --------------------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def zoom_in(self) -> None:
        self._zoom_by(1.25)

    def zoom_out(self) -> None:
        self._zoom_by(0.8)

    def reset_zoom(self) -> None:
        self._zoom_by(1.0 / self.zoom())

    def _zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Scale by `factor` (clamped) keeping the scene point under `anchor` (viewport pixels; the centre
        when None) where it is."""
        self._fit_pending = False  # the user chose a zoom: the fit a new document asked for is void
        current = self.zoom()
        target = min(MAX_ZOOM, max(MIN_ZOOM, current * factor))
        if abs(target - current) < 1e-9:
            return
        point = anchor if anchor is not None else QPointF(self.viewport().rect().center())
        fixed = self.mapToScene(point.toPoint())
        self._update_scroll_area(target)  # room to scroll first, so that the anchor can stay put
        self._scene.set_item_caching(False)
        self._zoom_settled.start()
        self.scale(target / current, target / current)
        self._scene.set_overview(target < OVERVIEW_ZOOM)
        moved = self.mapFromScene(fixed) - point.toPoint()
        self._scroll_by(moved.x(), moved.y())

    def settle_zoom(self) -> None:
        """The zoom holds still (called 250 ms after the last step; benches and tests call it to skip the wait):
        items draw from pixmap caches again, so that a pan blits instead of calling every item's paint, or far
        out the scene draws them all in a few batches."""
        self._zoom_settled.stop()
        self._scene.set_overview(self.zoom() < OVERVIEW_ZOOM)
        self._scene.set_item_caching(True)

    def _scroll_by(self, dx: float, dy: float) -> None:
        h, v = self.horizontalScrollBar(), self.verticalScrollBar()
        h.setValue(h.value() + round(dx))
        v.setValue(v.value() + round(dy))

    def fit(self, readable: bool = False) -> None:
        """Show the whole graph (never magnified past 100 %). `readable` (a document just opened): never zoom out
        so far that the layers' names vanish; a graph too big for that shows its top (the inputs) instead, and F
        shows all of it."""
        self._fit_pending = False
        rect = self._scene.content_rect().adjusted(-40, -40, 40, 40)
        size = self.viewport().size()
        if size.width() < 10 or size.height() < 10:
            return
        scale = min(size.width() / rect.width(), size.height() / rect.height(), 1.0)
        scale = min(MAX_ZOOM, max(MIN_ZOOM, READABLE_ZOOM if readable else MIN_ZOOM, scale))
        self._update_scroll_area(scale)
        self.resetTransform()
        self.scale(scale, scale)
        self.settle_zoom()
        center = rect.center()
        half_w, half_h = size.width() / scale / 2, size.height() / scale / 2
        if rect.width() > 2 * half_w:
            center.setX(rect.left() + half_w)
        if rect.height() > 2 * half_h:
            center.setY(rect.top() + half_h)
        self.centerOn(center)

    def _update_scroll_area(self, scale: float | None = None) -> None:
        """Room to pan: the graph plus a viewport's worth on every side at this zoom, so the canvas never
        snaps back to centre the way a small scene rect would."""
        scale = scale or self.zoom()
        content = self._scene.content_rect()
        mx = self.viewport().width() / scale + 200
        my = self.viewport().height() / scale + 200
        self.setSceneRect(content.adjusted(-mx, -my, mx, my))

    def _on_content_changed(self) -> None:
        self._update_scroll_area()

    # ---- Qt events -------------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._scene.flush_routes()  # wires whose nodes moved in this event-loop turn take their new way first
        super().paintEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._fit_pending:
            QTimer.singleShot(0, self._fit_if_pending)

    def _fit_if_pending(self) -> None:
        if self._fit_pending:
            self.fit(readable=True)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._update_scroll_area()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange,
                            QEvent.Type.ApplicationFontChange):
            self._style_timer.start(0)  # the theme changed: one refresh however many events announce it
        super().changeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta:
            self._zoom_by(WHEEL_STEP ** delta, event.position())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if event.button() == Qt.MouseButton.MiddleButton or (
                event.button() == Qt.MouseButton.LeftButton and self._space):
            self._pan_from = event.position().toPoint()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._pan_from is not None:
            now = event.position().toPoint()
            delta = now - self._pan_from
            self._pan_from = now
            self._scroll_by(-delta.x(), -delta.y())
            event.accept()
            return
        if event.buttons() == Qt.MouseButton.NoButton and not self._space:
            self._show_port_cursor(self.mapToScene(event.position().toPoint()))
        super().mouseMoveEvent(event)

    def _show_port_cursor(self, at: QPointF) -> None:
        """A cross over a port says "drag from here to wire"; set only when it changes."""
        item = self._scene.node_at(at)
        on_port = item is not None and item.port_at(item.mapFromScene(at)) is not None
        if on_port != self._port_cursor:
            self._port_cursor = on_port
            if on_port:
                self.viewport().setCursor(Qt.CursorShape.CrossCursor)
            else:
                self.viewport().unsetCursor()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._pan_from is not None and event.button() in (Qt.MouseButton.MiddleButton,
                                                              Qt.MouseButton.LeftButton):
            self._pan_from = None
            self._port_cursor = False
            if self._space:
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            else:
                self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        item = self._scene.node_at(self.mapToScene(event.position().toPoint()))
        if item is not None and event.button() == Qt.MouseButton.LeftButton:
            self.node_activated.emit(item.node_id)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        key, mods = event.key(), event.modifiers()
        plain = not (mods & ~(Qt.KeyboardModifier.KeypadModifier | Qt.KeyboardModifier.ShiftModifier))
        step = 5 * GRID if mods & Qt.KeyboardModifier.ShiftModifier else GRID
        arrows = {Qt.Key.Key_Left: (-step, 0), Qt.Key.Key_Right: (step, 0), Qt.Key.Key_Up: (0, -step),
                  Qt.Key.Key_Down: (0, step)}
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and plain:
            self.delete_selected()
        elif key == Qt.Key.Key_F and not mods:
            self.fit()
        elif key == Qt.Key.Key_Escape:
            if not self._scene.cancel_gesture():
                self.select_nodes([])
        elif key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        elif key in arrows and plain and self.selected_nodes():
            self._nudge(*arrows[key])
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            if self._pan_from is None:
                self._port_cursor = False
                self.viewport().unsetCursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._space = False  # a Space released in another window never reaches us
        super().focusOutEvent(event)

    # ---- drops from the palette -------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._accept_layer_drag(event)

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._accept_layer_drag(event)

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        event.accept()

    def _accept_layer_drag(self, event) -> None:
        from ..palette import BLOCK_MIME

        if self._document is not None and (event.mimeData().hasFormat(LAYER_MIME)
                                           or event.mimeData().hasFormat(BLOCK_MIME)):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        from ..palette import BLOCK_MIME

        mime = event.mimeData()
        if self._document is not None and mime.hasFormat(BLOCK_MIME):
            at = self.mapToScene(event.position().toPoint())
            nid = self.add_block_data(bytes(mime.data(BLOCK_MIME).data()), at)
            if not nid:
                event.ignore()
                return
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            self.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        if self._document is None or not mime.hasFormat(LAYER_MIME):
            event.ignore()
            return
        layer_type = bytes(mime.data(LAYER_MIME).data()).decode("utf-8", "replace").strip()
        at = self.mapToScene(event.position().toPoint())
        try:
            nid = self._document.add_node(layer_type, position=(grid_snap(at.x()), grid_snap(at.y())))
        except GraphError as e:
            self.message.emit(str(e))
            event.ignore()
            return
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self.select_nodes([nid])
        self.setFocus(Qt.FocusReason.OtherFocusReason)


    # ---- blocks ---------------------------------------------------------------------------------------------
    def add_block_data(self, data: bytes, scene_pos: QPointF | None = None) -> str:
        """Add an instance of a block from a palette drag's JSON (one undo step) at `scene_pos` (else the centre of
        the view) and select it; returns its id, "" with a message when refused."""
        from engine.blocks import BlockDefinition

        try:
            definition = BlockDefinition.from_dict(json.loads(data.decode("utf-8")))
        except (ValueError, LayerLoomError) as e:
            self.message.emit(f"The block cannot be added: {e}")
            return ""
        return self.add_block(definition, scene_pos)

    def add_block(self, definition, scene_pos: QPointF | None = None) -> str:
        """Add an instance of a BlockDefinition as one undo step at `scene_pos` (else a free spot near the centre
        of the view) and select it; returns its id, "" with a message when refused."""
        if self._document is None:
            return ""
        if scene_pos is None:
            centre = self.mapToScene(self.viewport().rect().center())
            scene_pos = self._free_spot(QPointF(grid_snap(centre.x()), grid_snap(centre.y())), QPointF(0, ROW))
        try:
            nid = self._document.add_block(definition, (grid_snap(scene_pos.x()), grid_snap(scene_pos.y())))
        except LayerLoomError as e:
            self.message.emit(f"The block cannot be added: {e}")
            return ""
        self.select_nodes([nid])
        self.message.emit(f"Added {nid}: double-click it to see inside")
        return nid

    def context_menu(self) -> QMenu | None:
        """The right-click menu: `context_actions` (None entries are separators); None when there are none."""
        if not self.context_actions:
            return None
        menu = QMenu(self)
        for act in self.context_actions:
            menu.addSeparator() if act is None else menu.addAction(act)
        return menu

    def contextMenuEvent(self, event) -> None:  # noqa: N802 - Qt's name
        item = self._scene.node_at(self.mapToScene(event.pos()))
        if item is not None and not item.isSelected():  # right-click on a node acts on that node
            self.select_nodes([item.node_id])
        menu = self.context_menu()
        if menu is None:
            super().contextMenuEvent(event)
            return
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(event.globalPos())
        event.accept()


def _layers(n: int) -> str:
    return f"{n} layer{'s' if n != 1 else ''}"


def _make_room_for_item_caches() -> None:
    """Items keep their pixels in QPixmapCache, whose default 10 MB holds a screenful of nodes only on a small
    screen: past it, every pan frame re-renders what it evicted (ten times slower on a 2,000-node graph).
    Room for four screens' worth, at least 64 MB: a ceiling, not an allocation."""
    screen = QGuiApplication.primaryScreen()
    size = screen.size() if screen is not None else None
    ratio = screen.devicePixelRatio() if screen is not None else 1.0
    pixels = size.width() * size.height() * ratio * ratio if size is not None else 0
    wanted_kb = max(64 * 1024, int(4 * pixels * 4 / 1024))
    if QPixmapCache.cacheLimit() < wanted_kb:
        QPixmapCache.setCacheLimit(wanted_kb)


_CLIPBOARD_HOOKED = False


def _clear_clipboard_at_exit() -> None:
    """The clipboard owns the QMimeData we gave it; left there when the interpreter ends, it is deleted by Qt's
    clean-up after Python has let go of its wrapper, which crashes the process at exit (status 139 after a
    clean run). Emptying the clipboard while the application still exists avoids it."""
    global _CLIPBOARD_HOOKED
    if not _CLIPBOARD_HOOKED:
        _CLIPBOARD_HOOKED = True
        atexit.register(empty_clipboard)


def empty_clipboard() -> None:
    """Empty the clipboard if it still holds our layers (what the user copied elsewhere since is left alone)."""
    app = QApplication.instance()
    if app is None:
        return
    mime = app.clipboard().mimeData()
    if mime is not None and mime.hasFormat(CLIPBOARD_MIME):
        app.clipboard().clear()
