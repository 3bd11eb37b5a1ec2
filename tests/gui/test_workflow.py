"""A new user's first session, in the real main window with real clicks, keys and drops: from the start page to
the CNN of the articles (Input 1×28×28 → Conv2d 32 k3 → ReLU → MaxPool2d 2 → Flatten → Linear 10), a refused
wire, a parameter typed into the inspector, an error badge, the Edit menu and the canvas shortcuts, every step
undone back to the start and redone, the History dock, save, the dirty marker, and the file open again."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QAction, QDragEnterEvent, QDragMoveEvent, QDropEvent, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QSpinBox

from engine.project import load_project
from gui.app import CANCEL, DISCARD, MainWindow, open_at_start
from gui.autosave import Autosaver
from gui.canvas.items import NodeItem
from gui.theme import is_dark, make_palette, system_scheme

LEFT = Qt.MouseButton.LeftButton
NO = Qt.KeyboardModifier.NoModifier
CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier

CNN_SHAPES = {"input_1": "(1, 28, 28)", "conv2d_1": "(32, 26, 26)", "relu_1": "(32, 26, 26)",
              "maxpool2d_1": "(32, 13, 13)", "flatten_1": "(5408,)", "linear_1": "(10,)"}
CNN_EDGES = [("input_1", "conv2d_1"), ("conv2d_1", "relu_1"), ("relu_1", "maxpool2d_1"),
             ("maxpool2d_1", "flatten_1"), ("flatten_1", "linear_1")]


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLOOM_NO_DIALOGS", "1")

    def make(name: str = "settings") -> MainWindow:
        settings = QSettings(str(tmp_path / f"{name}.ini"), QSettings.Format.IniFormat)
        w = MainWindow(settings=settings, autosaver=Autosaver(tmp_path / "autosave"))
        monkeypatch.setattr(w, "ask_save_changes", lambda: DISCARD)  # closing at the end never blocks
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        return w
    return make


# ---- what a hand does ------------------------------------------------------------------------------------------
def double_click_in_palette(w: MainWindow, layer: str) -> str:
    """Double-click the layer's row in the palette tree; returns the id of the node it added."""
    tree = w.palette_widget.tree
    item = w.palette_widget._items[layer]  # noqa: SLF001 - the row a user would see
    tree.scrollToItem(item)
    before = set(w.document.graph.nodes)
    at = tree.visualItemRect(item).center()
    QTest.mouseClick(tree.viewport(), LEFT, NO, at)  # Qt's test double click is the second press only
    QTest.mouseDClick(tree.viewport(), LEFT, NO, at)
    added = [n for n in w.document.graph.nodes if n not in before]
    assert len(added) == 1, f"double-clicking {layer} added {added}"
    return added[0]


def drop_from_palette(w: MainWindow, layer: str, at: QPoint) -> None:
    """What the palette's QDrag delivers to the canvas: enter, move and drop with the palette's own MIME data."""
    mime = w.palette_widget.mime_data(layer)
    vp = w.view.viewport()
    enter = QDragEnterEvent(at, Qt.DropAction.CopyAction, mime, LEFT, NO)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    move = QDragMoveEvent(at, Qt.DropAction.CopyAction, mime, LEFT, NO)
    QApplication.sendEvent(vp, move)
    assert move.isAccepted()
    drop = QDropEvent(QPointF(at), Qt.DropAction.CopyAction, mime, LEFT, NO)
    QApplication.sendEvent(vp, drop)
    assert drop.isAccepted()


def drag_on_canvas(w: MainWindow, start: QPointF, end: QPointF, steps: int = 5) -> None:
    vp = w.view.viewport()
    a, b = w.view.mapFromScene(start), w.view.mapFromScene(end)
    assert vp.rect().contains(a) and vp.rect().contains(b), "the gesture must happen where the user can see"
    QTest.mousePress(vp, LEFT, NO, a)
    for i in range(1, steps + 1):
        QTest.mouseMove(vp, a + (b - a) * i / steps)
    QTest.mouseRelease(vp, LEFT, NO, b)


def port_out(w: MainWindow, nid: str) -> QPointF:
    return w.view.scene().nodes[nid].pos() + NodeItem.output_port()


def centre(w: MainWindow, nid: str) -> QPointF:
    return w.view.scene().nodes[nid].pos()


def type_into(editor, text: str) -> None:
    """Click into an inspector editor, replace its text and press Enter."""
    editor.setFocus(Qt.FocusReason.MouseFocusReason)
    QTest.keyClick(editor, Qt.Key.Key_A, CTRL)
    QTest.keyClicks(editor, text)
    QTest.keyClick(editor, Qt.Key.Key_Return)


def canvas_key(w: MainWindow, key, mods=NO) -> None:
    w.view.setFocus(Qt.FocusReason.OtherFocusReason)
    assert QApplication.focusWidget() is w.view
    QTest.keyClick(w.view, key, mods)


def labels(w: MainWindow) -> dict[tuple[str, str], str]:
    return {key: edge.label for key, edge in w.view.scene().edges.items()}


def summary_rows(w: MainWindow) -> dict[str, str]:
    model = w.summary.proxy
    return {model.index(r, 0).data(): model.index(r, 2).data() for r in range(model.rowCount())}


def history(w: MainWindow) -> list[str]:
    model = w.undo_view.model()
    return [model.index(r, 0).data() for r in range(model.rowCount())]


def settle(qtbot, w: MainWindow) -> None:
    """Let the coalesced analysis reach the canvas, summary and inspector (it runs on the next event-loop turn)."""
    qtbot.waitUntil(lambda: w.document.analysis.nodes.keys() == w.document.graph.nodes.keys(), timeout=2000)
    QApplication.processEvents()


# ---- the session -------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Function.*QDrag.*Event:DeprecationWarning")  # their only constructors
def test_a_new_user_builds_the_cnn_of_the_articles_and_undoes_and_redoes_it_all(make_window, qtbot, tmp_path):
    w = make_window()
    w.activateWindow()
    assert QTest.qWaitForWindowActive(w)  # shortcuts reach only the active window
    assert w.central.currentWidget() is w.start_page and w.document is None

    # Start page → "New empty project": an Input layer, already selected so that the first add follows it.
    QTest.mouseClick(w.start_page.new_button, LEFT)
    doc = w.document
    assert doc is not None and w.central.currentWidget() is w.view
    assert list(doc.graph.nodes) == ["input_1"] and doc.graph.nodes["input_1"].params["shape"] == [1, 28, 28]
    assert w.view.selected_nodes() == ["input_1"] and w.inspector.node_id == "input_1"
    assert not w.isWindowModified() and w.windowTitle().startswith("untitled")
    start = doc.graph.to_dict()

    # Double-clicks in the palette build a chain: each new layer goes below the selection, wired, and is selected.
    assert double_click_in_palette(w, "Conv2d") == "conv2d_1"
    assert double_click_in_palette(w, "ReLU") == "relu_1"
    assert doc.graph.inputs_of("conv2d_1") == ["input_1"] and doc.graph.inputs_of("relu_1") == ["conv2d_1"]
    assert w.view.selected_nodes() == ["relu_1"] and w.inspector.node_id == "relu_1"
    assert w.isWindowModified() and "[*]" in w.windowTitle()
    assert centre(w, "relu_1").y() > centre(w, "conv2d_1").y() > centre(w, "input_1").y()

    # A drop from the palette lands where it was dropped, unwired, and becomes the selection.
    w.view.fit()
    below = centre(w, "relu_1") + QPointF(0, 160)
    drop_from_palette(w, "MaxPool2d", w.view.mapFromScene(below))
    assert "maxpool2d_1" in doc.graph and doc.graph.inputs_of("maxpool2d_1") == []
    assert abs(centre(w, "maxpool2d_1").y() - below.y()) <= 10
    assert w.view.selected_nodes() == ["maxpool2d_1"] and w.view.hasFocus()

    # A wire dragged from ReLU's output port onto the pool.
    settle(qtbot, w)
    drag_on_canvas(w, port_out(w, "relu_1"), centre(w, "maxpool2d_1"))
    assert doc.graph.inputs_of("maxpool2d_1") == ["relu_1"]
    w.view.select_nodes(["maxpool2d_1"])
    assert double_click_in_palette(w, "Flatten") == "flatten_1"
    assert double_click_in_palette(w, "Linear") == "linear_1"
    settle(qtbot, w)

    # Every wire says the shape it carries, the summary lists every layer, the totals are in the status bar.
    assert [(e.source, e.target) for e in doc.graph.edges] == CNN_EDGES
    assert labels(w) == {(s, t): CNN_SHAPES[s] for s, t in CNN_EDGES}
    assert summary_rows(w) == CNN_SHAPES
    assert w.view.scene().nodes["maxpool2d_1"].status_text == "(32, 13, 13)"
    assert w.totals_label.text().startswith("54,410 params")  # 32·9 + 32 and 5408·10 + 10

    # A refused wire (the conv's one input is taken) flashes the node and says why in the status bar; nothing
    # is pushed.
    w.view.fit()
    count = doc.undo_stack.count()
    drag_on_canvas(w, port_out(w, "linear_1"), centre(w, "conv2d_1"))
    assert doc.undo_stack.count() == count
    assert "already has it from input_1" in w.statusBar().currentMessage()
    assert w.view.scene().nodes["conv2d_1"].flash > 0

    # The inspector edits the selected node: a typed kernel size changes the shapes downstream (one step) ...
    w.view.select_nodes(["conv2d_1"])
    assert w.inspector.node_id == "conv2d_1"
    kernel = w.inspector.editor("kernel_size")
    type_into(kernel, "5")
    settle(qtbot, w)
    assert doc.graph.nodes["conv2d_1"].params["kernel_size"] == 5
    assert labels(w)[("conv2d_1", "relu_1")] == "(32, 24, 24)" and summary_rows(w)["maxpool2d_1"] == "(32, 12, 12)"
    assert doc.undo_stack.undoText() == "Set kernel_size of conv2d_1"
    # ... a value out of range is refused with a message and changes nothing ...
    channels = w.inspector.editor("out_channels")
    assert isinstance(channels, QSpinBox)
    count = doc.undo_stack.count()
    type_into(w.inspector.editor("stride"), "0")
    assert doc.undo_stack.count() == count and doc.graph.nodes["conv2d_1"].params["stride"] == 1
    assert "stride" in w.inspector.error_text("stride") and "stride" in w.statusBar().currentMessage()
    # ... and the undo (Ctrl+Z on the canvas) puts the old value back into the editor.
    canvas_key(w, Qt.Key.Key_Z, CTRL)
    settle(qtbot, w)
    assert doc.graph.nodes["conv2d_1"].params["kernel_size"] == 3 and kernel.text() == "3"
    assert labels(w) == {(s, t): CNN_SHAPES[s] for s, t in CNN_EDGES}

    # A kernel of 50 cannot work on 28×28: a red badge whose tooltip is the engine's message and its fix.
    type_into(kernel, "50")
    settle(qtbot, w)
    item = w.view.scene().nodes["conv2d_1"]
    err = doc.analysis.nodes["conv2d_1"].error
    assert item.state == "error" and item.badge is not None and item.badge.isVisible()
    assert err.reason in item.badge.toolTip() and f"Fix: {err.hint}" in item.badge.toolTip()
    assert labels(w)[("conv2d_1", "relu_1")] == ""  # no shape to carry
    assert "error" in w.totals_label.text() and w.inspector.problem.isVisible()
    assert err.reason in summary_rows_errors(w)["conv2d_1"]
    canvas_key(w, Qt.Key.Key_Z, CTRL)
    settle(qtbot, w)
    assert item.state == "ok" and not item.badge.isVisible() and not w.inspector.problem.isVisible()

    # The channel count through its spin box: typed, one commit on Enter.
    steps = doc.undo_stack.index()
    type_into(channels, "16")
    settle(qtbot, w)
    assert doc.undo_stack.index() == steps + 1 and doc.graph.nodes["conv2d_1"].params["out_channels"] == 16
    assert labels(w)[("conv2d_1", "relu_1")] == "(16, 26, 26)" and w.totals_label.text().startswith("27,210 params")
    w.undo_action.trigger()  # the Edit menu's Undo
    settle(qtbot, w)
    assert channels.value() == 32 and w.totals_label.text().startswith("54,410 params")
    built = doc.graph.to_dict()
    built_steps = doc.undo_stack.index()

    # Canvas shortcuts, with the canvas focused: Ctrl+D duplicates, Delete deletes, Ctrl+C / Ctrl+V paste,
    # F fits, and the Edit menu's actions do the same.
    w.view.select_nodes(["linear_1"])
    canvas_key(w, Qt.Key.Key_D, CTRL)
    assert w.view.selected_nodes() == ["linear_2"] and "linear_2" in doc.graph
    canvas_key(w, Qt.Key.Key_Delete)
    assert "linear_2" not in doc.graph and w.view.selected_nodes() == []
    w.view.select_nodes(["flatten_1", "linear_1"])
    canvas_key(w, Qt.Key.Key_C, CTRL)
    assert "Copied 2 layers" in w.statusBar().currentMessage()
    canvas_key(w, Qt.Key.Key_V, CTRL)
    assert w.view.selected_nodes() == ["flatten_2", "linear_2"]
    assert doc.graph.inputs_of("linear_2") == ["flatten_2"]  # the wire between copied nodes comes along
    # A parameter of the pasted Linear, then Delete on the pasted Flatten: the node goes with its wire.
    w.view.select_nodes(["linear_2"])
    type_into(w.inspector.editor("out_features"), "5")
    assert doc.graph.nodes["linear_2"].params["out_features"] == 5
    w.view.select_nodes(["flatten_2"])
    w.delete_action.trigger()  # the Edit menu's Delete
    assert "flatten_2" not in doc.graph and doc.graph.inputs_of("linear_2") == []
    w.view.zoom_in()
    zoom = w.view.zoom()
    canvas_key(w, Qt.Key.Key_F)
    assert w.view.zoom() != zoom
    # Duplicate, cut and paste from the Edit menu; then a wire drawn and a wire clicked and deleted.
    w.view.select_nodes(["relu_1"])
    w.duplicate_action.trigger()
    assert w.view.selected_nodes() == ["relu_2"]
    w.cut_action.trigger()
    assert "relu_2" not in doc.graph
    w.paste_action.trigger()
    assert w.view.selected_nodes() == ["relu_2"]
    w.tidy_action.trigger()  # one step for the whole layout, pasted nodes no longer on top of others
    assert doc.undo_stack.undoText() == "Tidy layout"
    w.fit_action.trigger()
    settle(qtbot, w)
    drag_on_canvas(w, port_out(w, "relu_2"), centre(w, "linear_2"))
    assert doc.graph.inputs_of("linear_2") == ["relu_2"]
    settle(qtbot, w)
    a, b = w.view.scene().edges[("relu_2", "linear_2")].endpoints()
    QTest.mouseClick(w.view.viewport(), LEFT, NO, w.view.mapFromScene((a + b) / 2))
    assert w.view.scene().selected_edges() == [("relu_2", "linear_2")]
    canvas_key(w, Qt.Key.Key_Delete)
    assert doc.graph.inputs_of("linear_2") == [] and doc.undo_stack.undoText() == "Delete the wire relu_2 → linear_2"

    # A node dragged by its body moves snapped to the grid, recorded once on release.
    steps = doc.undo_stack.count()
    a = centre(w, "relu_2")
    drag_on_canvas(w, a, a + QPointF(47, 33))
    x, y = doc.graph.nodes["relu_2"].position
    assert (x % 10, y % 10) == (0, 0) and (x, y) != (a.x(), a.y())
    assert doc.undo_stack.count() == steps + 1 and doc.undo_stack.undoText() == "Move relu_2"

    # Ctrl+F goes to the palette's search box, ready to type over.
    canvas_key(w, Qt.Key.Key_F, CTRL)
    assert QApplication.focusWidget() is w.palette_widget.search

    # The History dock lists every step, newest last, after "the project as opened".
    steps = history(w)
    assert steps[0] == "the project as opened" and len(steps) == doc.undo_stack.count() + 1
    assert steps[1:4] == ["Add Conv2d after input_1", "Add ReLU after conv2d_1", "Add MaxPool2d"]
    assert "Connect relu_1 → maxpool2d_1" in steps and "Tidy layout" in steps and steps[-1] == "Move relu_2"
    assert w.undo_view.isVisible()

    # Undo everything with Ctrl+Z on the canvas: back to the lone Input, saved state, no dirty marker.
    end = doc.graph.to_dict()
    while doc.undo_stack.canUndo():
        canvas_key(w, Qt.Key.Key_Z, CTRL)
    settle(qtbot, w)
    assert doc.graph.to_dict() == start and set(w.view.scene().nodes) == {"input_1"} and not w.view.scene().edges
    assert not w.isWindowModified() and not w.undo_action.isEnabled()
    assert summary_rows(w) == {"input_1": "(1, 28, 28)"}

    # Redo it all, alternating Ctrl+Y and Ctrl+Shift+Z: the same graph, the same picture.
    redo_keys = [(Qt.Key.Key_Y, CTRL), (Qt.Key.Key_Z, CTRL | SHIFT)]
    i = 0
    while doc.undo_stack.canRedo():
        before = doc.undo_stack.index()
        canvas_key(w, *redo_keys[i % 2])
        assert doc.undo_stack.index() == before + 1, redo_keys[i % 2]
        i += 1
    settle(qtbot, w)
    assert doc.graph.to_dict() == end and w.isWindowModified()
    assert set(w.view.scene().nodes) == set(doc.graph.nodes)
    assert set(w.view.scene().edges) == {(e.source, e.target) for e in doc.graph.edges}

    kinds = " ".join(history(w))
    for kind in ("Add", "after", "Connect", "Delete the wire", "Delete flatten_2", "Set out_features", "Paste",
                 "Duplicate", "Tidy", "Move"):
        assert kind in kinds, kind

    # Back to the CNN (the Edit menu's Undo, step by step), save it, and open it again.
    while doc.undo_stack.index() > built_steps:
        w.undo_action.trigger()
    settle(qtbot, w)
    assert doc.graph.to_dict() == built
    path = tmp_path / "cnn.layerloom"
    assert w._save_to(path)  # noqa: SLF001 - Save As without its file dialog
    assert not w.isWindowModified() and w.windowTitle().startswith("cnn.layerloom")
    assert load_project(path).graph.to_dict() == built
    w.close_project()
    assert w.document is None and w.central.currentWidget() is w.start_page
    assert w.start_page.recent.rows[0].path == str(path.resolve())
    assert w.open_file(path)
    settle(qtbot, w)
    assert w.document.graph.to_dict() == built and labels(w) == {(s, t): CNN_SHAPES[s] for s, t in CNN_EDGES}
    assert not w.isWindowModified() and history(w) == ["the project as opened"]


def summary_rows_errors(w: MainWindow) -> dict[str, str]:
    model = w.summary.proxy
    return {model.index(r, 0).data(): model.index(r, 6).data() for r in range(model.rowCount())}


def test_the_unsaved_changes_question_guards_close_new_and_open(make_window, monkeypatch, tmp_path):
    w = make_window()
    w.new_from_template("cnn_mnist")
    other = tmp_path / "other.layerloom"
    w._save_to(other)  # noqa: SLF001
    w.new_from_template("mlp_mnist_128")
    w.document.add_node("ReLU", position=(500, 0))
    asked = []
    monkeypatch.setattr(w, "ask_save_changes", lambda: asked.append(1) or CANCEL)
    doc = w.document
    for attempt in (w.close_project, w.new_empty, w.new_action.trigger, lambda: w.open_file(other),
                    lambda: w.new_from_template("cnn_mnist")):
        attempt()
        assert w.document is doc and doc.dirty
    assert not w.close() and w.isVisible()
    assert len(asked) == 6


def test_the_file_given_on_the_command_line_or_else_the_last_project_opens(make_window, tmp_path, monkeypatch):
    w = make_window()
    w.new_from_template("cnn_mnist")
    first = tmp_path / "first.layerloom"
    w._save_to(first)  # noqa: SLF001
    w.new_from_template("mlp_mnist_128")
    second = tmp_path / "second.layerloom"
    w._save_to(second)  # noqa: SLF001
    w.close()

    again = make_window()  # same settings: the next start
    open_at_start(again, [])
    assert again.document is not None and again.document.path == second
    again.close()
    given = make_window()
    monkeypatch.chdir(tmp_path)
    open_at_start(given, ["first.layerloom"])  # `layerloom first.layerloom` in its folder
    assert given.document.path == first and given.windowTitle().startswith("first.layerloom")
    assert given.settings.value("last_project") == str(first)  # found again from any folder
    given.close_project()  # a closed project is not reopened at the next start
    given.close()
    last = make_window()
    open_at_start(last, [])
    assert last.document is None and last.central.currentWidget() is last.start_page
    assert [row.path for row in last.start_page.recent.rows] == [str(first), str(second)]


def test_layout_and_geometry_are_remembered(make_window, qtbot):
    w = make_window()
    w.show()
    assert not w.palette_dock.isVisible()  # the start page has the whole window
    w.new_from_template("cnn_mnist")
    assert w.palette_dock.isVisible() and w.inspector_dock.isVisible()
    w.resize(720, 600)  # within the offscreen screen (800 × 800), which a restore keeps to
    size = w.size()
    w.history_dock.hide()
    w.removeDockWidget(w.palette_dock)
    w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, w.palette_dock)
    w.palette_dock.show()
    w.close()
    again = make_window()
    again.show()
    again.new_from_template("mlp_mnist_128")
    assert again.size() == size and size.width() == 720
    assert not again.history_dock.isVisible() and again.palette_dock.isVisible()
    assert again.dockWidgetArea(again.palette_dock) == Qt.DockWidgetArea.RightDockWidgetArea


def test_the_system_theme_follows_a_change_of_the_os_scheme(make_window, qapp):
    w = make_window()
    w.theme_actions["system"].trigger()  # View → Theme → Follow the System
    system = system_scheme()
    qapp.setPalette(make_palette("light" if system == "dark" else "dark"))  # as it stands before the OS switches
    qapp.styleHints().colorSchemeChanged.emit(qapp.styleHints().colorScheme())
    assert is_dark(qapp.palette()) == (system == "dark")
    assert w.settings.value("theme") == "system"


def test_no_two_actions_share_a_key_and_each_platform_binding_works(make_window):
    """Qt ignores a key claimed twice (an "ambiguous shortcut"): every key must belong to one action only."""
    w = make_window()
    owners: dict[str, list[str]] = {}
    for action in w.findChildren(QAction):
        for seq in action.shortcuts():
            owners.setdefault(seq.toString(), []).append(action.text())
    shared = {key: names for key, names in owners.items() if len(names) > 1}
    assert not shared
    for key in ("Ctrl+Y", "Ctrl+Shift+Z"):
        assert owners[key] == [w.redo_action.text()]
    for seq in QKeySequence.keyBindings(QKeySequence.StandardKey.Close):
        assert owners[seq.toString()] == [w.close_action.text()]
