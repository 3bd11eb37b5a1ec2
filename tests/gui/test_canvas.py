"""The canvas mirrors the document: real widgets on the offscreen platform, real mouse, key, wheel and drop
events. Every gesture is one Document edit (one undo step), a refused wire says why and pushes nothing, and the
items follow undo and redo."""
from __future__ import annotations

import json
import time

import pytest
from PySide6.QtCore import QByteArray, QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QCursor, QDragEnterEvent, QDropEvent, QEnterEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from engine.graph import Graph
from engine.layers import fmt
from engine.layout import layered_layout
from engine.project import Project
from engine.templates import load_template
from gui.canvas import GraphScene, GraphView
from gui.canvas.items import GRID, NODE_HEIGHT, EdgeItem, NodeItem
from gui.document import CLIPBOARD_MIME, LAYER_MIME, Document

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def doc(qapp):
    d = Document(load_template("cnn_mnist"))
    yield d
    d.close()


@pytest.fixture
def view(qtbot, doc):
    v = GraphView(doc)
    qtbot.addWidget(v)
    v.resize(900, 1100)
    v.show()
    qtbot.waitExposed(v)
    v.reset_zoom()
    v.centerOn(0, 300)
    return v


def vp_point(view: GraphView, scene_point: QPointF) -> QPoint:
    return view.mapFromScene(scene_point)


def drag(view: GraphView, start: QPointF, end: QPointF, steps: int = 4, button=LEFT) -> None:
    """Press at `start`, move in a few steps, release at `end` (scene coordinates), as a hand would."""
    vp = view.viewport()
    a, b = vp_point(view, start), vp_point(view, end)
    QTest.mousePress(vp, button, Qt.KeyboardModifier.NoModifier, a)
    for i in range(1, steps + 1):
        QTest.mouseMove(vp, a + (b - a) * i / steps)
    QTest.mouseRelease(vp, button, Qt.KeyboardModifier.NoModifier, b)


def out_port(view: GraphView, nid: str) -> QPointF:
    return view.scene().nodes[nid].pos() + NodeItem.output_port()


def body(view: GraphView, nid: str) -> QPointF:
    return view.scene().nodes[nid].pos()


def test_the_scene_mirrors_a_template_with_shapes_on_every_wire(qapp):
    for name in ("cnn_mnist", "residual_block", "gru_two_branch"):
        d = Document(load_template(name))
        scene = GraphScene(d)
        assert set(scene.nodes) == set(d.graph.nodes)
        assert set(scene.edges) == {(e.source, e.target) for e in d.graph.edges}
        assert sum(isinstance(i, NodeItem) for i in scene.items()) == len(d.graph.nodes)
        assert sum(isinstance(i, EdgeItem) for i in scene.items()) == len(d.graph.edges)
        for (s, _), edge in scene.edges.items():
            assert edge.label == fmt(d.analysis.nodes[s].shape)
        for nid, node in d.graph.nodes.items():
            assert scene.nodes[nid].pos() == QPointF(*node.position)
        d.close()
        scene.set_document(None)
        assert not scene.items()


def test_a_merge_keeps_its_inputs_in_order_and_a_skip_wire_goes_around(qapp):
    d = Document(load_template("residual_block"))
    scene = GraphScene(d)
    add = next(n for n, node in d.graph.nodes.items() if node.type == "Add")
    ins = d.graph.inputs_of(add)
    ends = [scene.edges[(s, add)].endpoints()[1].x() for s in ins]
    assert ends == sorted(ends) and ends[0] < ends[1]  # first input on the left
    skip = scene.edges[(ins[1], add)]
    assert skip.detour != 0 and skip.boundingRect().right() > 95 + 20  # clear of the column of nodes
    d.close()


def test_nodes_show_type_key_params_and_shape(view):
    item = view.scene().nodes["conv2d_1"]
    assert item.layer_type == "Conv2d"
    assert item.params_text.startswith("32, k3")
    assert item.status_text == "(32, 26, 26)" and item.state == "ok"


@pytest.mark.filterwarnings("ignore:Function.*QDragEnterEvent:DeprecationWarning")  # its only constructor
def test_a_palette_drop_adds_the_layer_at_the_drop_point_and_other_data_is_refused(view, doc, qtbot):
    vp = view.viewport()
    at = vp_point(view, QPointF(403, 257))
    mime = QMimeData()
    mime.setData(LAYER_MIME, QByteArray(b"Dropout"))
    enter = QDragEnterEvent(at, Qt.DropAction.CopyAction, mime, LEFT, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(at), Qt.DropAction.CopyAction, mime, LEFT, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(view.selection_changed):
        QApplication.sendEvent(vp, drop)
    assert drop.isAccepted()
    added = [n for n in doc.graph.nodes.values() if n.type == "Dropout"]
    assert len(added) == 1 and doc.undo_stack.count() == 1
    x, y = added[0].position
    assert x % GRID == 0 and y % GRID == 0 and abs(x - 403) <= GRID and abs(y - 257) <= GRID
    assert view.selected_nodes() == [added[0].id]
    assert added[0].id in view.scene().nodes

    text = QMimeData()
    text.setText("Dropout")
    enter = QDragEnterEvent(at, Qt.DropAction.CopyAction, text, LEFT, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, enter)
    assert not enter.isAccepted()
    drop = QDropEvent(QPointF(at), Qt.DropAction.CopyAction, text, LEFT, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, drop)
    assert not drop.isAccepted() and doc.undo_stack.count() == 1


def test_dragging_from_a_port_draws_a_wire_and_a_loop_is_refused_with_the_reason(view, doc, qtbot):
    free = doc.add_node("ReLU", position=(400, 200))
    count = doc.undo_stack.count()
    QTest.mouseMove(view.viewport(), vp_point(view, out_port(view, "relu_1")))
    assert view.viewport().cursor().shape() == Qt.CursorShape.CrossCursor  # "wire from here"
    QTest.mouseMove(view.viewport(), vp_point(view, body(view, "relu_1")))
    assert view.viewport().cursor().shape() == Qt.CursorShape.ArrowCursor
    drag(view, out_port(view, "relu_1"), body(view, free))
    assert "relu_1" in doc.graph.inputs_of(free)
    assert ("relu_1", free) in view.scene().edges
    assert doc.undo_stack.count() == count + 1

    # Backwards, from an input port onto the node that should feed it: the same wire, drawn the other way.
    merge = doc.add_node("Add", position=(400, 400), connect_from=free)
    other = doc.add_node("ReLU", position=(400, 600))
    drag(view, view.scene().nodes[other].pos() + NodeItem.input_port(), body(view, merge))
    assert doc.graph.inputs_of(other) == [merge]

    count = doc.undo_stack.count()
    messages = []
    view.message.connect(messages.append)
    drag(view, out_port(view, other), body(view, merge))
    assert len(messages) == 1 and "loop" in messages[0]
    assert doc.undo_stack.count() == count  # refused: nothing pushed
    assert view.scene().nodes[merge].flash > 0
    drag(view, out_port(view, "relu_2"), body(view, "conv2d_1"))  # a full input port
    assert len(messages) == 2 and "already has" in messages[1]
    assert doc.undo_stack.count() == count
    assert not any(i.drop_hint for i in view.scene().nodes.values())
    assert len(view.scene().edges) == len(doc.graph.edges)


def test_labels_and_badges_follow_an_edit(view, doc, qtbot):
    scene = view.scene()
    with qtbot.waitSignal(scene.refreshed):
        doc.set_params("conv2d_1", {"out_channels": 8})
    assert scene.edges[("conv2d_1", "relu_1")].label == "(8, 26, 26)"
    assert scene.nodes["conv2d_1"].params_text.startswith("8, k3")

    with qtbot.waitSignal(scene.refreshed):
        doc.set_params("conv2d_2", {"kernel_size": 50})
    item = scene.nodes["conv2d_2"]
    info = doc.analysis.nodes["conv2d_2"]
    assert item.state == "error" and item.badge is not None and item.badge.isVisible()
    assert info.error.reason in item.badge.toolTip() and info.error.hint in item.badge.toolTip()
    assert "Fix:" in item.badge.toolTip() and item.toolTip() == item.badge.toolTip()
    assert scene.nodes["relu_2"].status_text == "waiting on conv2d_2"
    assert scene.edges[("conv2d_2", "relu_2")].label == ""

    with qtbot.waitSignal(scene.refreshed):
        doc.undo_stack.undo()
    assert not item.badge.isVisible() and item.state == "ok"
    assert scene.edges[("conv2d_2", "relu_2")].label != ""


def mlp_tower(n_nodes: int) -> Project:
    """Input → Linear → (Linear, ReLU, Linear, Add with the block's input) repeated: about n_nodes nodes."""
    g = Graph()
    prev = g.add_node("Input", shape=[64], position=(0, 0))
    y = 0
    while len(g) < n_nodes:
        skip = prev
        for layer, params in (("Linear", {"out_features": 64}), ("ReLU", {}), ("Linear", {"out_features": 64}),
                              ("Add", {})):
            y += 100
            nid = g.add_node(layer, params, position=(0, y))
            g.connect(prev, nid)
            prev = nid
        g.connect(skip, prev)
    return Project(graph=g)


def test_an_edit_on_a_200_node_graph_reaches_the_items_quickly(qtbot, qapp):
    d = Document(mlp_tower(200))
    v = GraphView(d)
    qtbot.addWidget(v)
    v.resize(800, 600)
    v.show()
    qtbot.waitExposed(v)
    first = next(n for n, node in d.graph.nodes.items() if node.type == "Linear")
    last_add = [n for n, node in d.graph.nodes.items() if node.type == "Add"][-1]
    times = []
    for width in (48, 64, 48):
        t = time.perf_counter()
        with qtbot.waitSignal(v.scene().refreshed):
            d.set_params(first, {"out_features": width})
        times.append(time.perf_counter() - t)
        assert v.scene().nodes[first].status_text == f"({width},)"
    assert v.scene().nodes[last_add].status_text == "(64,)"
    assert min(times) < 0.2  # bench/canvas.py measures it properly; the goal there is 50 ms
    d.close()


def test_undo_and_redo_are_mirrored(view, doc):
    scene = view.scene()
    view.select_nodes(["relu_1"])
    view.delete_selected()
    assert "relu_1" not in scene.nodes and ("conv2d_1", "relu_1") not in scene.edges
    doc.undo_stack.undo()
    assert "relu_1" in scene.nodes
    assert set(scene.edges) == {(e.source, e.target) for e in doc.graph.edges}
    doc.undo_stack.redo()
    assert "relu_1" not in scene.nodes


def test_a_drag_moves_nodes_snapped_and_is_recorded_once_on_release(view, doc):
    scene = view.scene()
    view.select_nodes(["relu_1", "maxpool2d_1"])
    start = {n: doc.graph.nodes[n].position for n in ("relu_1", "maxpool2d_1")}
    count = doc.undo_stack.count()
    grab = body(view, "relu_1") + QPointF(-40, 0)
    drag(view, grab, grab + QPointF(133, 47), steps=6)
    assert doc.undo_stack.count() == count + 1
    for nid in start:
        x, y = doc.graph.nodes[nid].position
        assert (x % GRID, y % GRID) == (0, 0)
        assert abs(x - start[nid][0] - 133) <= GRID and abs(y - start[nid][1] - 47) <= GRID
        assert scene.nodes[nid].pos() == QPointF(x, y)
    wire = scene.edges[("conv2d_1", "relu_1")]
    assert wire.endpoints()[1].y() == doc.graph.nodes["relu_1"].position[1] - NODE_HEIGHT / 2 - 5
    doc.undo_stack.undo()
    for nid, pos in start.items():
        assert scene.nodes[nid].pos() == QPointF(*pos)


def test_copy_paste_duplicate_and_cut(view, doc, qtbot):
    QCursor.setPos(view.mapToGlobal(QPoint(-500, -500)))  # off the canvas: pastes step beside the originals
    view.select_nodes(["conv2d_1", "relu_1"])
    view.copy()
    mime = QApplication.clipboard().mimeData()
    assert mime.hasFormat(CLIPBOARD_MIME)
    assert [n["id"] for n in json.loads(bytes(mime.data(CLIPBOARD_MIME).data()))["nodes"]] == ["conv2d_1",
                                                                                               "relu_1"]
    view.paste()
    pasted = view.selected_nodes()
    assert len(pasted) == 2 and all(p in view.scene().nodes for p in pasted)
    assert doc.graph.inputs_of(pasted[1]) == [pasted[0]]  # the inner wire came along
    x0, y0 = doc.graph.nodes["conv2d_1"].position
    assert doc.graph.nodes[pasted[0]].position == (x0 + 40, y0 + 40)
    view.paste()  # a second paste steps further instead of landing on the first
    assert doc.graph.nodes[view.selected_nodes()[0]].position == (x0 + 80, y0 + 80)

    view.select_nodes(["linear_2"])
    view.duplicate()
    dup = view.selected_nodes()
    assert len(dup) == 1 and dup[0] != "linear_2" and doc.graph.nodes[dup[0]].type == "Linear"

    count = len(doc.graph.nodes)
    view.cut()
    assert dup[0] not in doc.graph.nodes and len(doc.graph.nodes) == count - 1
    view.paste()
    assert len(doc.graph.nodes) == count

    QCursor.setPos(view.viewport().mapToGlobal(QPoint(600, 300)))  # over the canvas: under the mouse
    QApplication.sendEvent(view.viewport(), QEnterEvent(QPointF(600, 300), QPointF(600, 300),
                                                        QPointF(view.viewport().mapToGlobal(QPoint(600, 300)))))
    view.select_nodes(["relu_3"])
    view.copy()
    view.paste()
    under = view.mapToScene(QPoint(600, 300))
    px, py = doc.graph.nodes[view.selected_nodes()[0]].position
    assert abs(px - under.x()) <= GRID and abs(py - under.y()) <= GRID

    messages = []
    view.message.connect(messages.append)
    plain = QMimeData()
    plain.setText("not layers")
    QApplication.clipboard().setMimeData(plain)
    before = doc.undo_stack.count()
    view.paste()
    assert doc.undo_stack.count() == before and "no layers" in messages[-1]


def test_a_clicked_wire_is_selected_and_deleted_alone(view, doc):
    wire = view.scene().edges[("relu_1", "maxpool2d_1")]
    a, b = wire.endpoints()
    QTest.mouseClick(view.viewport(), LEFT, Qt.KeyboardModifier.NoModifier, vp_point(view, (a + b) / 2))
    assert view.scene().selected_edges() == [("relu_1", "maxpool2d_1")]
    assert view.selected_nodes() == []
    nodes = len(doc.graph.nodes)
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_Delete)
    assert "relu_1" not in doc.graph.inputs_of("maxpool2d_1") and len(doc.graph.nodes) == nodes
    assert ("relu_1", "maxpool2d_1") not in view.scene().edges
    assert doc.undo_stack.count() == 1


def test_rubber_band_selects_the_nodes_it_touches(view, qtbot):
    scene = view.scene()
    top = scene.nodes["conv2d_1"].pos()
    bottom = scene.nodes["maxpool2d_1"].pos()
    with qtbot.waitSignal(view.selection_changed):
        drag(view, top + QPointF(-200, -10), bottom + QPointF(60, 10), steps=8)
    assert view.selected_nodes() == ["conv2d_1", "relu_1", "maxpool2d_1"]
    assert scene.selected_edges() == []  # a band picks nodes, never wires


def test_fit_shows_everything_and_zoom_has_limits(view):
    for _ in range(30):
        view.zoom_in()
    assert view.zoom() == pytest.approx(3.0)
    QTest.keyClick(view, Qt.Key.Key_F)
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    for item in view.scene().nodes.values():
        assert visible.contains(item.sceneBoundingRect())
    assert view.zoom() <= 1.0
    view.reset_zoom()
    assert view.zoom() == pytest.approx(1.0)


def test_the_wheel_zooms_around_the_cursor_and_the_middle_button_pans(view):
    vp = view.viewport()
    at = QPointF(300, 200)
    under = view.mapToScene(at.toPoint())
    wheel = QWheelEvent(at, vp.mapToGlobal(at), QPoint(), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    assert view.zoom() == pytest.approx(1.0015 ** 240, rel=1e-3)
    after = view.mapToScene(at.toPoint())
    assert abs(after.x() - under.x()) < 2 and abs(after.y() - under.y()) < 2

    before = view.mapToScene(vp.rect().center())
    drag(view, view.mapToScene(QPoint(400, 400)), view.mapToScene(QPoint(300, 350)),
         button=Qt.MouseButton.MiddleButton)
    moved = view.mapToScene(vp.rect().center()) - before
    assert moved.x() * view.zoom() == pytest.approx(100, abs=2)
    assert moved.y() * view.zoom() == pytest.approx(50, abs=2)
    assert view.selected_nodes() == []


def test_tidy_lays_out_the_graph_in_one_step(view, doc):
    doc.move_nodes({"relu_2": ((0.0, 500.0), (700.0, -300.0))})
    count = doc.undo_stack.count()
    view.tidy()
    assert doc.undo_stack.count() == count + 1
    expected = layered_layout(doc.graph)
    for nid, pos in expected.items():
        assert view.scene().nodes[nid].pos() == QPointF(*pos)


def test_add_layer_goes_below_the_selection_connected(view, doc):
    view.select_nodes(["linear_2"])
    nid = view.add_layer("Softmax")
    assert doc.graph.inputs_of(nid) == ["linear_2"]
    x, y = doc.graph.nodes["linear_2"].position
    assert doc.graph.nodes[nid].position == (x, y + 120)
    assert view.selected_nodes() == [nid]
    chained = view.add_layer("Dropout")  # the new node is the selection: the next one follows it
    assert doc.graph.inputs_of(chained) == [nid]

    view.select_nodes(["relu_1"])  # relu_1 has a node below it: the new one goes beside, not on top
    side = view.add_layer("ReLU")
    sx, sy = doc.graph.nodes[side].position
    rx, ry = doc.graph.nodes["relu_1"].position
    assert sy == ry + 120 and sx > rx

    view.select_nodes([])
    lone = view.add_layer("Input")
    assert doc.graph.inputs_of(lone) == [] and lone in view.scene().nodes
    messages = []
    view.message.connect(messages.append)
    assert view.add_layer("NoSuchLayer") == "" and messages


def test_double_click_activates_a_node(view, qtbot):
    with qtbot.waitSignal(view.node_activated) as blocker:
        QTest.mouseDClick(view.viewport(), LEFT, Qt.KeyboardModifier.NoModifier,
                          vp_point(view, body(view, "relu_1")))
    assert blocker.args == ["relu_1"]


def test_low_zoom_draws_boxes_without_text(view):
    item = view.scene().nodes["conv2d_1"]
    view.grab()
    assert item.drew_text is True
    view._zoom_by(0.2 / view.zoom())
    view.centerOn(item)
    view.grab()
    assert item.drew_text is False
    assert view.scene().edges[("conv2d_1", "relu_1")].drew_label is False


def test_a_new_document_replaces_the_scene(view, qtbot, tmp_path):
    other = Document(load_template("residual_block"))
    view.set_document(other)
    assert set(view.scene().nodes) == set(other.graph.nodes)
    other.add_node("ReLU", position=(500, 0))
    assert len(view.scene().nodes) == len(other.graph.nodes)
    shot = view.grab()
    assert not shot.isNull() and shot.save(str(tmp_path / "canvas.png"))
    assert (tmp_path / "canvas.png").stat().st_size > 1000
    view.set_document(None)
    assert not view.scene().nodes and not view.scene().items()
    other.close()


def test_far_out_the_scene_draws_every_item_in_batches_and_they_stay_selectable(view, qtbot):
    scene = view.scene()
    view._zoom_by(0.1 / view.zoom())
    view.settle_zoom()
    view.centerOn(scene.nodes["relu_2"])
    assert scene.overview
    for item in scene.nodes.values():
        item.drew_text = None
    image = view.grab().toImage()
    assert all(item.drew_text is None for item in scene.nodes.values())  # no item painted itself
    conv = scene.nodes["conv2d_1"]
    at = view.mapFromScene(conv.pos())
    assert image.pixelColor(at).name() == conv.colour.name()  # the batch drew its box

    with qtbot.waitSignal(view.selection_changed):
        drag(view, scene.nodes["input_1"].pos() + QPointF(-200, -60), conv.pos() + QPointF(150, 20))
    assert view.selected_nodes() == ["input_1", "conv2d_1"]
    image = view.grab().toImage()
    assert image.pixelColor(at).name() == scene.style.highlight.name()

    view.reset_zoom()
    view.settle_zoom()
    assert not scene.overview


def test_a_theme_change_repaints_the_canvas_in_the_new_palette(view, qapp, qtbot):
    from PySide6.QtGui import QColor, QPalette

    old = qapp.palette()
    dark = QPalette()
    for role, colour in ((QPalette.ColorRole.Window, "#2b2b2b"), (QPalette.ColorRole.Base, "#1e1e1e"),
                         (QPalette.ColorRole.Text, "#e6e6e6"), (QPalette.ColorRole.WindowText, "#e6e6e6")):
        dark.setColor(role, QColor(colour))
    try:
        qapp.setPalette(dark)
        qtbot.waitUntil(lambda: view.scene().style.dark, timeout=2000)
        assert view.scene().nodes["relu_1"].style is view.scene().style
    finally:
        qapp.setPalette(old)
    qtbot.waitUntil(lambda: not view.scene().style.dark, timeout=2000)


def test_keys_nudge_clear_and_pan(view, doc):
    view.setFocus()
    view.select_nodes(["relu_1"])
    x, y = doc.graph.nodes["relu_1"].position
    QTest.keyClick(view, Qt.Key.Key_Right)
    QTest.keyClick(view, Qt.Key.Key_Down, Qt.KeyboardModifier.ShiftModifier)
    assert doc.graph.nodes["relu_1"].position == (x + GRID, y + 5 * GRID)
    assert doc.undo_stack.count() == 2
    QTest.keyClick(view, Qt.Key.Key_Escape)
    assert view.selected_nodes() == []

    before = view.mapToScene(view.viewport().rect().center())
    QTest.keyPress(view, Qt.Key.Key_Space)
    start = view.mapToScene(QPoint(600, 600))  # empty canvas right of the column
    drag(view, start, view.mapToScene(QPoint(500, 600)))
    QTest.keyRelease(view, Qt.Key.Key_Space)
    moved = view.mapToScene(view.viewport().rect().center()) - before
    assert moved.x() == pytest.approx(100 / view.zoom(), abs=2) and abs(moved.y()) < 2
    assert doc.undo_stack.count() == 2 and view.selected_nodes() == []


def test_add_layer_at_a_point_snaps_it(view, doc):
    nid = view.add_layer("Dropout", QPointF(503, 307))
    assert doc.graph.nodes[nid].position == (500, 310) and doc.graph.inputs_of(nid) == []
