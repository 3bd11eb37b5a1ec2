"""Large graphs in the window (issue 9): the generated 5,000-node deep residual network opens in the real main window
offscreen, a parameter edit re-infers every shape and reaches the canvas and a sorted summary, far out the nodes are
boxes without text (with all of it fitted in view the scene draws them in batches), Tidy moves and re-routes
everything as one undo step, and deleting every node reports the selection once and comes back whole with undo."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from engine.layers import fmt
from engine.layout import layered_layout
from engine.units import format_count
from gui.app import DISCARD, MainWindow
from gui.autosave import Autosaver
from gui.canvas.items import CATEGORY_COLOURS, LOD_TEXT, OVERVIEW_ZOOM
from gui.summary import SORT_ROLE

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from large_graph import STAGE_CHANNELS, write_project  # noqa: E402


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    return write_project(5000, tmp_path_factory.mktemp("large") / "resnet_5000.layerloom")


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, big_file):
    monkeypatch.setenv("LAYERLOOM_NO_DIALOGS", "1")
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                   autosaver=Autosaver(tmp_path / "autosave"))
    monkeypatch.setattr(w, "ask_save_changes", lambda: DISCARD)  # closing at the end never blocks
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    assert w.open_file(big_file)
    settle()
    return w


def settle() -> None:
    for _ in range(5):  # the fit the window queues, the coalesced analysis, the re-routing
        QApplication.processEvents()


def visible_items(view):
    area = view.mapToScene(view.viewport().rect()).boundingRect()
    return [i for i in view.scene().nodes.values() if area.contains(i.pos())]


def test_the_big_graph_opens_and_far_out_its_nodes_are_boxes_without_text(window):
    w = window
    doc, view = w.document, w.view
    scene = view.scene()
    assert 4900 <= len(doc.graph) <= 5100
    assert len(scene.nodes) == len(doc.graph) and len(scene.edges) == len(doc.graph.edges)
    assert doc.analysis.ok and w.summary.row_count() == len(doc.graph)
    assert "shapes OK" in w.summary.totals.text()

    # It opens readable (the inputs at the top, layer names and shapes legible) ...
    assert view.zoom() >= LOD_TEXT and not scene.overview
    view.grab()
    shown = visible_items(view)
    assert shown and all(i.drew_text is True for i in shown)

    # ... and F fits all of it: overview mode, where no item paints itself and the scene draws boxes in batches.
    view.fit()
    assert view.zoom() < OVERVIEW_ZOOM and scene.overview
    for item in scene.nodes.values():
        item.drew_text = None
    image = view.grab().toImage()
    assert all(item.drew_text is None for item in scene.nodes.values())
    conv = QColor(CATEGORY_COLOURS["Convolution"])
    step = 3
    found = sum(image.pixelColor(x, y) == conv for x in range(0, image.width(), step)
                for y in range(0, image.height(), step))
    assert found > 20, "the batched overview drew no Conv2d boxes"

    # Between the overview and readable text: each item paints a plain box, wires no labels.
    view._zoom_by(0.3 / view.zoom())
    view.settle_zoom()
    assert not scene.overview and view.zoom() < LOD_TEXT
    view.centerOn(scene.nodes[next(n for n, x in doc.graph.nodes.items() if x.type == "Add")])
    for item in scene.nodes.values():
        item.drew_text = None
    for edge in scene.edges.values():
        edge.drew_label = None
    view.grab()
    painted = [i for i in scene.nodes.values() if i.drew_text is not None]
    assert len(painted) >= 10 and all(i.drew_text is False for i in painted)
    assert all(e.drew_label is not True for e in scene.edges.values())

    # At 100 % the nodes in view show their texts again.
    view.reset_zoom()
    view.settle_zoom()
    view.grab()
    shown = visible_items(view)
    assert shown and all(i.drew_text is True for i in shown)


def test_an_edit_re_infers_every_shape_into_the_canvas_and_a_sorted_summary(window, qtbot):
    w = window
    doc, scene, summary = w.document, w.view.scene(), w.summary
    inp = doc.graph.input_nodes()[0]
    convs = [n for n, x in doc.graph.nodes.items() if x.type == "Conv2d"]
    first, last = convs[0], convs[-1]
    head = doc.graph.sink_nodes()[0]

    summary.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # most parameters first
    summary.select_node(last)
    with qtbot.waitSignal(doc.analyzed, timeout=20000):
        doc.set_params(inp, {"shape": [3, 40, 40]})
    assert doc.analysis.ok
    assert doc.analysis.nodes[first].shape == (STAGE_CHANNELS[0], 40, 40)
    assert scene.nodes[first].status_text == fmt((STAGE_CHANNELS[0], 40, 40))
    assert scene.edges[(first, doc.graph.outputs_of(first)[0])].label == fmt((STAGE_CHANNELS[0], 40, 40))
    assert scene.nodes[last].status_text == fmt((STAGE_CHANNELS[-1], 5, 5))
    rows = {summary.proxy.index(r, 0).data(): summary.proxy.index(r, 2).data() for r in range(summary.row_count())}
    assert rows[first] == fmt((STAGE_CHANNELS[0], 40, 40)) and rows[head] == fmt((10,))
    assert summary.selected_node() == last

    # One layer gains a bias: it becomes the largest, the sorted table follows, the selection stays on it.
    params = doc.analysis.nodes[last].params
    with qtbot.waitSignal(doc.analyzed, timeout=20000):
        doc.set_params(last, {"bias": True})
    assert doc.analysis.nodes[last].params == params + STAGE_CHANNELS[-1]
    assert summary.node_at(0) == last and summary.selected_node() == last
    counts = [summary.proxy.index(r, 3).data(SORT_ROLE) for r in range(summary.row_count())]
    assert counts == sorted(counts, reverse=True)
    assert scene.nodes[last].count_text == f"{format_count(params + STAGE_CHANNELS[-1])} params"

    summary.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # back to network order
    assert [summary.node_at(r) for r in range(summary.row_count())] == doc.analysis.order
    with qtbot.waitSignal(doc.analyzed, timeout=20000):
        doc.undo()
        doc.undo()
    assert doc.analysis.nodes[first].shape == (STAGE_CHANNELS[0], 32, 32)
    assert scene.nodes[last].status_text == fmt((STAGE_CHANNELS[-1], 4, 4))


def test_tidy_moves_every_node_as_one_step_and_every_wire_follows(window):
    w = window
    doc, view = w.document, w.view
    scene = view.scene()
    before = {nid: node.position for nid, node in doc.graph.nodes.items()}
    count = doc.undo_stack.count()
    view.tidy()
    assert doc.undo_stack.count() == count + 1 and doc.undo_stack.undoText() == "Tidy layout"
    target = layered_layout(doc.graph)
    assert {nid: node.position for nid, node in doc.graph.nodes.items()} == target
    assert sum(before[n] != target[n] for n in target) > 0.9 * len(target)
    view.grab()  # the wires are routed before the view paints them

    def wires_follow() -> None:
        for edge in scene.edges.values():
            a, b = edge.endpoints()
            box = edge.boundingRect()
            assert box.contains(a) and box.contains(b), f"{edge.key} was not re-routed"

    wires_follow()
    # In the tidied column the skip connections run past the blocks' nodes: they bow out beside them.
    skips = [e for (s, t), e in scene.edges.items() if doc.graph.nodes[t].type == "Add"
             and doc.graph.nodes[s].type == "ReLU"]
    assert len(skips) > 600 and sum(e.detour != 0 for e in skips) > 0.9 * len(skips)

    doc.undo()
    settle()
    assert {nid: node.position for nid, node in doc.graph.nodes.items()} == before
    view.grab()
    wires_follow()


def test_deleting_every_node_reports_the_selection_once_and_undo_brings_all_back(window):
    w = window
    doc, view = w.document, w.view
    scene = view.scene()
    original = doc.graph.to_dict()
    reports: list[list[str]] = []
    view.selection_changed.connect(reports.append)
    view.select_all()
    assert reports == [list(doc.graph.nodes)]
    reports.clear()
    view.delete_selected()
    settle()
    assert len(doc.graph) == 0 and not scene.nodes and not scene.edges and not scene.items()
    assert reports == [[]]  # once, not once per node with the rest of the selection listed each time
    assert w.inspector.stack.currentWidget() is w.inspector.empty
    doc.undo()
    settle()
    assert doc.graph.to_dict() == original
    assert len(scene.nodes) == len(doc.graph) and len(scene.edges) == len(doc.graph.edges)
    assert doc.analysis.ok and w.summary.row_count() == len(doc.graph)
