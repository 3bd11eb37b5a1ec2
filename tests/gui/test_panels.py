"""The side panels on a real document: the palette (categories, search, drag payload, explanation), the inspector
(editors generated per parameter kind, one undo step per commit, refusals that change nothing, undo mirrored),
the summary table (rows, errors, totals, click to select) and the messages log."""
from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QLineEdit, QSpinBox

from engine.errors import ParamError
from engine.layers import CATEGORIES, all_specs, get_spec
from engine.params import Param
from engine.shapes import Analysis, NodeInfo
from engine.templates import load_template, template_path
from gui.document import LAYER_MIME, Document
from gui.inspector import InspectorWidget, parse_value
from gui.palette import PaletteWidget
from gui.summary import NODE_ROLE, MessagesWidget, SummaryWidget


@pytest.fixture
def doc(qapp):
    d = Document(load_template("cnn_mnist"), template_path("cnn_mnist"))
    yield d
    d.close()


@pytest.fixture
def palette(qtbot):
    w = PaletteWidget()
    qtbot.addWidget(w)
    w.resize(280, 640)
    return w


@pytest.fixture
def inspector(qtbot, doc):
    w = InspectorWidget()
    qtbot.addWidget(w)
    w.resize(360, 700)
    w.set_document(doc)
    w.show_node("conv2d_1")
    return w


def commit_text(editor: QLineEdit, text: str, qtbot) -> None:
    editor.setText(text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


# ---- palette ---------------------------------------------------------------------------------------------------
def test_palette_shows_every_catalogue_layer_in_nine_categories_and_the_blocks(palette):
    assert palette.categories() == list(CATEGORIES) and len(CATEGORIES) == 9
    assert sorted(palette.layers()) == sorted(s.type for s in all_specs())
    assert palette.tree.topLevelItemCount() == 10  # the nine layer categories, then Blocks
    for spec in all_specs():
        assert spec.type in palette.layers(spec.category)
        item = palette._items[spec.type]
        assert not item.icon(0).isNull()
        assert item.toolTip(0).lower().startswith(spec.summary.lower())


def test_search_filters_as_you_type_and_enter_adds_the_best_match(palette, qtbot):
    qtbot.keyClicks(palette.search, "conv")
    assert palette.layers() == ["Conv1d", "Conv2d", "ConvTranspose2d"]
    assert palette.categories() == ["Convolution"]
    with qtbot.waitSignal(palette.add_requested) as blocker:
        qtbot.keyClick(palette.search, Qt.Key.Key_Return)
    assert blocker.args == ["Conv1d"]

    palette.set_filter("CONV2")  # case-insensitive; a name starting with the text beats a summary that names it
    assert palette.layers() == ["Conv2d", "ConvTranspose2d"]
    assert palette.first_match() == "Conv2d" and palette.current_layer() == "Conv2d"
    palette.set_filter("probabilities")  # found by its summary
    assert palette.layers() == ["Softmax"]
    palette.set_filter("pooling")  # found by its category
    assert palette.categories() == ["Pooling"] and len(palette.layers()) == 6
    palette.set_filter("zzz")
    assert palette.layers() == [] and palette.categories() == [] and not palette.no_match.isHidden()
    with qtbot.assertNotEmitted(palette.add_requested):
        qtbot.keyClick(palette.search, Qt.Key.Key_Return)
    palette.set_filter("")
    assert len(palette.layers()) == len(all_specs())


def test_focus_search_and_placeholder(palette, qtbot):
    palette.show()
    qtbot.waitExposed(palette)
    palette.search.setText("relu")
    palette.focus_search()
    assert palette.search.placeholderText() == "Search layers (Ctrl+F)"
    assert palette.search.selectedText() == "relu"


def test_double_click_adds_a_layer_but_not_a_category(palette, qtbot):
    palette.show()
    qtbot.waitExposed(palette)
    item = palette._items["ReLU"]
    palette.tree.scrollToItem(item)
    view = palette.tree.viewport()
    center = palette.tree.visualItemRect(item).center()
    with qtbot.waitSignal(palette.add_requested, timeout=1000) as blocker:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=center)  # a double click is a press, then another
        qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=center)
    assert blocker.args == ["ReLU"]
    center = palette.tree.visualItemRect(palette._categories["Activation"]).center()
    with qtbot.assertNotEmitted(palette.add_requested):
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=center)
        qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=center)


def test_the_drag_carries_the_layer_type(palette):
    mime = palette.mime_data("conv2d")  # any spelling the catalogue knows
    assert mime.hasFormat(LAYER_MIME)
    assert bytes(mime.data(LAYER_MIME)).decode("utf-8") == "Conv2d"
    assert LAYER_MIME in palette.tree.mimeTypes()
    assert not palette.tree.mimeData([palette._categories["Core"]]).hasFormat(LAYER_MIME)
    assert not palette._categories["Core"].flags() & Qt.ItemFlag.ItemIsDragEnabled


def test_selecting_a_layer_explains_it_with_its_formula(palette, qtbot):
    spec = get_spec("Linear")
    with qtbot.waitSignal(palette.layer_selected) as blocker:
        palette.select_layer("Linear")
    assert blocker.args == ["Linear"]
    text = palette.info.toPlainText()
    assert spec.formula in text and spec.doc in text and spec.summary[1:] in text


# ---- inspector ------------------------------------------------------------------------------------------------
def test_no_node_shows_a_friendly_hint(qtbot, doc):
    w = InspectorWidget()
    qtbot.addWidget(w)
    assert w.stack.currentWidget() is w.empty and "Select a layer" in w.empty.text()
    w.set_document(doc)
    w.show_node("no_such_node")
    assert w.node_id is None and w.stack.currentWidget() is w.empty


def test_editors_follow_each_parameter_kind_with_its_range(inspector, doc):
    eds = inspector.editors()
    assert list(eds) == [p.name for p in get_spec("Conv2d").params]
    spin = eds["out_channels"]
    assert isinstance(spin, QSpinBox) and (spin.minimum(), spin.maximum(), spin.value()) == (1, 65536, 32)
    assert "≥ 1 and ≤ 65536" in spin.toolTip()
    assert isinstance(eds["kernel_size"], QLineEdit) and eds["kernel_size"].text() == "3"
    assert isinstance(eds["padding"], QLineEdit)
    assert isinstance(eds["bias"], QCheckBox) and eds["bias"].isChecked()
    combo = eds["padding_mode"]
    assert isinstance(combo, QComboBox) and [combo.itemText(i) for i in range(combo.count())] == list(
        get_spec("Conv2d").params[-1].choices)
    assert "conv2d_1" in inspector.title.text() and "Conv2d" in inspector.subtitle.text()
    assert get_spec("Conv2d").formula in inspector.about.text()
    assert inspector._stat_values["output"].text() == "(32, 26, 26)"
    assert inspector._stat_values["params"].text() == "320"

    QApplication.sendEvent(eds["out_channels"], QEvent(QEvent.Type.Enter))  # hover shows what it changes
    assert "more filters" in inspector.hint.text().lower()

    bn = doc.add_node("BatchNorm2d")
    emb = doc.add_node("Embedding")
    inspector.show_node(bn)
    assert isinstance(inspector.editor("eps"), QLineEdit) and inspector.editor("eps").text() == "1e-05"
    inspector.show_node(emb)
    assert isinstance(inspector.editor("padding_idx"), QLineEdit)
    assert inspector.editor("padding_idx").text() == "" and inspector.editor("padding_idx").placeholderText()
    inspector.show_node("input_1")
    assert inspector.editor("shape").text() == "1, 28, 28"


def test_each_commit_is_one_undo_step_and_changes_the_graph(inspector, doc, qtbot):
    stack, node = doc.undo_stack, doc.graph.nodes["conv2d_1"]
    with qtbot.waitSignal(inspector.message):
        commit_text(inspector.editor("kernel_size"), "(5, 3)", qtbot)
    assert node.params["kernel_size"] == [5, 3] and stack.count() == 1
    assert inspector.editor("kernel_size").text() == "5, 3"
    doc.reanalyze()
    assert inspector._stat_values["output"].text() == "(32, 24, 26)"

    spin = inspector.editor("out_channels")
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "16")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert node.params["out_channels"] == 16 and stack.count() == 2

    inspector.editor("bias").click()
    assert node.params["bias"] is False and stack.count() == 3
    inspector.editor("padding_mode").setCurrentIndex(1)
    assert node.params["padding_mode"] == "reflect" and stack.count() == 4
    commit_text(inspector.editor("padding"), "same", qtbot)
    assert node.params["padding"] == "same" and stack.count() == 5

    commit_text(inspector.editor("padding"), "same", qtbot)  # the same value again pushes nothing
    assert stack.count() == 5


def test_scientific_notation_and_not_set(inspector, doc, qtbot):
    bn, pool = doc.add_node("BatchNorm2d"), "maxpool2d_1"
    inspector.show_node(bn)
    commit_text(inspector.editor("eps"), "1e-3", qtbot)
    assert doc.graph.nodes[bn].params["eps"] == 0.001 and inspector.editor("eps").text() == "0.001"
    inspector.show_node(pool)
    commit_text(inspector.editor("stride"), "1", qtbot)
    assert doc.graph.nodes[pool].params["stride"] == 1
    commit_text(inspector.editor("stride"), "", qtbot)  # empty is "not set" for an optional parameter
    assert doc.graph.nodes[pool].params["stride"] is None


@pytest.mark.parametrize("name, text, says", [
    ("kernel_size", "0", "must be ≥ 1 and ≤ 1024"),
    ("kernel_size", "3, 3, 3", "a list of 2"),
    ("padding", "wide", "whole numbers"),
    ("kernel_size", "", "needs a value"),
])
def test_a_refused_value_is_shown_and_changes_nothing(inspector, doc, qtbot, name, text, says):
    before, count = dict(doc.graph.nodes["conv2d_1"].params), doc.undo_stack.count()
    editor = inspector.editor(name)
    shown = editor.text()
    with qtbot.waitSignal(inspector.message) as blocker:
        commit_text(editor, text, qtbot)
    assert says in blocker.args[0]
    assert says in inspector.error_text(name)
    assert editor.text() == shown  # reverted to the graph's value
    assert doc.graph.nodes["conv2d_1"].params == before and doc.undo_stack.count() == count
    commit_text(editor, "2", qtbot)  # a good value clears the message
    assert inspector.error_text(name) == ""


def test_a_bad_shape_string_on_the_input_changes_nothing(inspector, doc, qtbot):
    inspector.show_node("input_1")
    commit_text(inspector.editor("shape"), "1, 28, x", qtbot)
    assert "whole numbers" in inspector.error_text("shape")
    assert doc.graph.nodes["input_1"].params["shape"] == [1, 28, 28] and doc.undo_stack.count() == 0
    assert inspector.editor("shape").text() == "1, 28, 28"


def test_undo_and_redo_refresh_the_editors_without_echo(inspector, doc, qtbot):
    commit_text(inspector.editor("kernel_size"), "5", qtbot)
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert inspector.editor("kernel_size").text() == "3"
    doc.undo_stack.redo()
    assert inspector.editor("kernel_size").text() == "5"
    doc.set_params("conv2d_1", {"out_channels": 8, "bias": False})  # any outside change is mirrored
    assert inspector.editor("out_channels").value() == 8 and not inspector.editor("bias").isChecked()
    assert doc.undo_stack.count() == 2 and doc.undo_stack.index() == 2  # writing back pushed nothing


def test_removing_the_node_clears_the_inspector(inspector, doc):
    doc.remove_nodes(["conv2d_1"])
    assert inspector.node_id is None and inspector.stack.currentWidget() is inspector.empty
    assert inspector.editors() == {}


def test_errors_of_the_node_show_in_the_inspector(inspector, doc, qtbot):
    inspector.show_node("conv2d_2")
    with qtbot.waitSignal(doc.analyzed):
        commit_text(inspector.editor("kernel_size"), "20", qtbot)
    assert not inspector.problem.isHidden() and "larger than" in inspector.problem.text()
    inspector.show_node("linear_1")
    assert "Waiting on conv2d_2" in inspector.problem.text()


def test_parse_value_reads_what_people_type():
    ints = Param("shape", "ints", [1])
    assert parse_value("Input", ints, "(1, 28, 28)") == [1, 28, 28]
    assert parse_value("Input", ints, "[3 32 32]") == [3, 32, 32]
    pad = Param("padding", "padding", 0, length=2)
    assert parse_value("Conv2d", pad, "Same") == "same" and parse_value("Conv2d", pad, "1,2") == [1, 2]
    assert parse_value("Conv2d", Param("k", "int_tuple", 1, length=2), " 3 ") == 3
    assert parse_value("BN", Param("eps", "float", 1e-5), "1e-5") == 1e-5
    assert parse_value("Emb", Param("i", "int", None, optional=True), "") is None
    for param, text in ((ints, "1, 2.5"), (Param("eps", "float", 1.0), "fast"), (Param("n", "int", 1), "")):
        with pytest.raises(ParamError):
            parse_value("X", param, text)


# ---- summary and messages ----------------------------------------------------------------------------------
def test_summary_rows_errors_totals_and_clicks(qtbot, doc):
    w = SummaryWidget()
    qtbot.addWidget(w)
    w.resize(800, 400)
    w.set_document(doc)
    assert w.row_count() == len(doc.graph.nodes)
    assert [w.node_at(r) for r in range(w.row_count())] == doc.analysis.order
    assert w.totals_text() == "121,930 params · 2.5M MACs · 266.7 KB/sample"
    assert "shapes OK" in w.totals.text()

    with qtbot.waitSignal(doc.analyzed):
        doc.set_params("conv2d_2", {"kernel_size": 20})
    row = doc.analysis.order.index("conv2d_2")
    index = w.proxy.index(row, 6)
    assert "larger than" in index.data()
    assert index.data(Qt.ItemDataRole.BackgroundRole) is not None
    assert w.proxy.index(0, 6).data(Qt.ItemDataRole.BackgroundRole) is None
    assert "1 error" in w.totals.text()

    w.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # most parameters first, counted as numbers
    assert w.node_at(0) == "conv2d_1"  # the others have errors or none
    w.show()
    qtbot.waitExposed(w)
    target = w.proxy.index(1, 0)
    with qtbot.waitSignal(w.node_selected) as blocker:
        qtbot.mouseClick(w.table.viewport(), Qt.MouseButton.LeftButton, pos=w.table.visualRect(target).center())
    assert blocker.args == [target.data(NODE_ROLE)]
    w.select_node("relu_1")  # mirroring the canvas selection emits nothing and survives a new analysis
    doc.reanalyze()
    assert w.selected_node() == "relu_1"


def test_summary_takes_five_thousand_nodes_quickly(qtbot):
    w = SummaryWidget()
    qtbot.addWidget(w)
    order = [f"linear_{i}" for i in range(5000)]
    analysis = Analysis({nid: NodeInfo(nid, "Linear", (64,), "float32", 4160, 4096, 256) for nid in order}, order)
    start = time.perf_counter()
    w.set_analysis(analysis)
    w.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    assert time.perf_counter() - start < 2.0
    assert w.row_count() == 5000 and w.totals_text() == "20,800,000 params · 20.5M MACs · 1.2 MB/sample"


def test_messages_are_stamped_capped_and_cleared(qtbot):
    w = MessagesWidget(max_entries=5)
    qtbot.addWidget(w)
    w.add("opened cnn_mnist")
    w.add("loss after softmax", "warning")
    w.add("kernel too large", "error")
    assert w.entries() == [("info", "opened cnn_mnist"), ("warning", "loss after softmax"),
                           ("error", "kernel too large")]
    assert w.list.item(2).text().endswith("kernel too large") and w.list.item(2).text()[2] == ":"
    assert "1 error" in w.count_label.text()
    for i in range(6):
        w.add(f"step {i}")
    assert w.list.count() == 5 and w.entries()[-1] == ("info", "step 5") and w.entries()[0] == ("info", "step 1")
    with pytest.raises(ValueError):
        w.add("?", "debug")
    w.clear_button.click()
    assert w.list.count() == 0 and w.entries() == [] and not w.clear_button.isEnabled()
