"""Composite blocks in the window: Group into Block / Ungroup as one undo step each (exact on graph.to_dict()), a
refused selection explained in the status bar, the inside of a block opened, edited and applied as one step, the
palette's Blocks (shipped and the user's library), and block files imported and exported."""
from __future__ import annotations

import json

from engine import blocks
from gui.palette import BLOCK_MIME, BLOCK_ROLE, BLOCKS

CONV = ["conv2d_2", "relu_2", "maxpool2d_2"]


def test_group_and_ungroup_are_one_exact_undo_step_each(window):
    w = window
    w.new_from_template("cnn_mnist")
    doc = w.document
    before = doc.graph.to_dict()
    flat = doc.reanalyze().nodes["flatten_1"].shape
    steps = doc.undo_stack.count()
    w.view.select_nodes(CONV)
    assert w.group_action.isEnabled() and not w.ungroup_action.isEnabled()
    menu = w.view.context_menu()  # the canvas's right-click menu offers the block edits
    assert [a.text() for a in menu.actions() if not a.isSeparator()][:3] == [
        w.group_action.text(), w.ungroup_action.text(), w.open_block_action.text()]
    menu.deleteLater()
    w.group_action.trigger()  # Ctrl+G; the name is the default "block" without dialogs
    block_id = w.view.selected_nodes()[0]
    assert block_id == "block_1" and doc.graph.nodes[block_id].type == "Block"
    assert not any(n in doc.graph for n in CONV)
    assert doc.graph.inputs_of(block_id) == ["maxpool2d_1"] and doc.graph.outputs_of(block_id) == ["flatten_1"]
    assert doc.undo_stack.count() == steps + 1
    assert w.ungroup_action.isEnabled()
    grouped = doc.graph.to_dict()
    assert doc.reanalyze().errors == []
    assert doc.analysis.nodes["flatten_1"].shape == flat  # the block gives what the layers gave
    doc.undo()
    assert doc.graph.to_dict() == before
    doc.redo()
    assert doc.graph.to_dict() == grouped
    # Ungroup (Ctrl+Shift+G): the layers come back, wired as before; one undo step takes it back.
    w.view.select_nodes([block_id])
    w.ungroup_action.trigger()
    assert sorted(w.view.selected_nodes()) == sorted(CONV)
    assert block_id not in doc.graph
    assert doc.graph.inputs_of("conv2d_2") == ["maxpool2d_1"] and doc.graph.outputs_of("maxpool2d_2") == ["flatten_1"]
    assert doc.undo_stack.count() == steps + 2
    doc.undo()
    assert doc.graph.to_dict() == grouped
    doc.undo()
    assert doc.graph.to_dict() == before


def test_a_refused_selection_says_why_and_changes_nothing(window):
    w = window
    w.new_from_template("cnn_mnist")
    doc = w.document
    before, steps = doc.graph.to_dict(), doc.undo_stack.count()
    w.view.select_nodes(["input_1", "conv2d_1"])
    assert w.group_selected("stem") is None
    assert "Input" in w.statusBar().currentMessage() and "leave the Input" in w.statusBar().currentMessage()
    # A selection with a hole in it would make the block feed itself.
    w.view.select_nodes(["conv2d_1", "maxpool2d_1"])
    assert w.group_selected("gap") is None
    assert "feed itself" in w.statusBar().currentMessage()
    assert doc.graph.to_dict() == before and doc.undo_stack.count() == steps
    # Ungroup on a plain layer: told to select a block.
    w.view.select_nodes(["conv2d_1"])
    assert w.ungroup_selected() == []
    assert "Select one block" in w.statusBar().currentMessage()


def test_open_a_block_edit_inside_and_apply_as_one_step(window, qtbot):
    w = window
    w.new_from_template("cnn_mnist")
    doc = w.document
    pooled = doc.reanalyze().nodes["maxpool2d_2"].shape
    w.view.select_nodes(CONV)
    block_id = w.group_selected("conv_relu_pool")
    grouped, steps = doc.graph.to_dict(), doc.undo_stack.count()
    w.view.node_activated.emit(block_id)  # a double-click on the block
    dialog = w.block_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.breadcrumb.text() == f"cnn_mnist › {block_id}"
    assert set(dialog.inner_node_ids()) == {"in_1", *CONV, "out_1"}
    assert set(dialog.view.scene().nodes) == set(dialog.inner_node_ids())  # the canvas shows them
    # The inner analysis is fed the block's input (what the first conv and pool give): no errors.
    inner = dialog.inner_doc.analysis
    assert inner.errors == [] and inner.nodes["maxpool2d_2"].shape == pooled
    # Edit inside: fewer channels in the inner conv; nothing outside changes until Apply.
    dialog.inner_doc.set_params("conv2d_2", {"out_channels": 8})
    assert dialog.changed and doc.graph.to_dict() == grouped
    dialog.back()  # Back applies and closes
    qtbot.waitUntil(lambda: not dialog.isVisible())
    assert doc.undo_stack.count() == steps + 1
    inner_graph = blocks.inner_graph(doc.graph.nodes[block_id].params)
    assert inner_graph.nodes["conv2d_2"].params["out_channels"] == 8
    assert doc.reanalyze().nodes["flatten_1"].shape == (8 * pooled[1] * pooled[2],)
    doc.undo()
    assert doc.graph.to_dict() == grouped


def test_an_inner_graph_that_is_no_block_is_not_applied(window):
    w = window
    w.new_from_template("cnn_mnist")
    doc = w.document
    w.view.select_nodes(CONV)
    block_id = w.group_selected("b")
    grouped, steps = doc.graph.to_dict(), doc.undo_stack.count()
    dialog = w.open_block(block_id)
    dialog.inner_doc.remove_nodes(["out_1"])  # no BlockOutput left
    assert not dialog.apply()
    assert "BlockOutput" in dialog.status.text()
    assert doc.graph.to_dict() == grouped and doc.undo_stack.count() == steps
    dialog.reject()


def test_palette_blocks_add_a_shipped_block_with_good_shapes(window):
    w = window
    palette = w.palette_widget
    shipped = palette.blocks("shipped")
    assert {"res_block", "se_block", "transformer_encoder"} <= set(shipped)
    assert palette.blocks("library") == []
    assert palette.tree.topLevelItem(palette.tree.topLevelItemCount() - 1).text(0) == BLOCKS
    w.new_from_template("cnn_mnist")
    doc = w.document
    steps = doc.undo_stack.count()
    # The drag's payload dropped on the canvas adds one instance (one undo step).
    item = next(palette._blocks_item.child(i) for i in range(palette._blocks_item.childCount())
                if palette._blocks_item.child(i).data(0, BLOCK_ROLE) == "shipped:res_block")
    mime = palette.tree.mimeData([item])
    assert mime.hasFormat(BLOCK_MIME)
    nid = w.view.add_block_data(bytes(mime.data(BLOCK_MIME).data()))
    assert nid == "res_block_1" and doc.undo_stack.count() == steps + 1
    # Wired after the first conv with a matching channel count, its shapes are right.
    channels, height, width = doc.reanalyze().nodes["relu_1"].shape
    fitted = doc.add_block(palette.block_definition("shipped:res_block"), values={"channels": channels})
    assert blocks.exposed_values(doc.graph.nodes[fitted].params) == {"channels": channels}
    doc.connect("relu_1", fitted)
    analysis = doc.reanalyze()
    assert analysis.nodes[fitted].error is None and analysis.nodes[fitted].shape == (channels, height, width)
    assert analysis.nodes[fitted].params > 0 and analysis.nodes[fitted].inner is not None
    # A double-click in the palette asks the window to add one too.
    palette._on_item_double_clicked(item, 0)
    assert "res_block_3" in doc.graph
    doc.undo()
    assert "res_block_3" not in doc.graph


def test_save_to_library_then_add_it_in_a_new_project(window, tmp_path):
    w = window
    w.new_from_template("cnn_mnist")
    channels = w.document.graph.nodes["conv2d_2"].params["out_channels"]
    w.view.select_nodes(CONV)
    block_id = w.group_selected("conv_stage")
    path = w.save_block_to_library("conv_stage", "conv, relu and pool")
    assert path is not None and path.parent == tmp_path / "library" and path.is_file()
    assert [d.name for d in blocks.list_blocks()] == ["conv_stage"]
    assert w.palette_widget.blocks("library") == ["conv_stage"]
    # Saving a different block under that name is refused with the reason.
    assert w.document.set_inner_graph(block_id, _with_channels(w.document, block_id, channels + 8))
    assert w.save_block_to_library("conv_stage", "") is None
    assert "already has a block named" in w.statusBar().currentMessage()
    # A new project: the block comes from the palette, as the library has it.
    w.new_empty()
    doc = w.document
    definition = w.palette_widget.block_definition(w.palette_widget.block_key("conv_stage"))
    w.palette_widget.block_requested.emit(definition)
    nid = w.view.selected_nodes()[0]
    assert nid == "conv_stage_1"
    assert blocks.inner_graph(doc.graph.nodes[nid].params).nodes["conv2d_2"].params["out_channels"] == channels
    assert doc.graph.nodes[nid].params["description"] == "conv, relu and pool"


def _with_channels(doc, block_id, n):
    g = blocks.inner_graph(doc.graph.nodes[block_id].params)
    g.set_params("conv2d_2", {"out_channels": n})
    return g.to_dict()


def test_export_and_import_a_block_file(window, tmp_path):
    w = window
    w.new_from_template("cnn_mnist")
    w.view.select_nodes(CONV)
    w.group_selected("shared_stage")
    out = w.export_block_file(tmp_path / "shared.json")
    assert out is not None and json.loads(out.read_text())["name"] == "shared_stage"
    assert w.palette_widget.blocks("library") == []
    saved = w.import_block_file(out)
    assert saved == tmp_path / "library" / "shared_stage.json"
    assert w.palette_widget.blocks("library") == ["shared_stage"]
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    assert w.import_block_file(tmp_path / "bad.json") is None
    assert "not a LayerLoom block" in w.statusBar().currentMessage()


def test_palette_search_finds_blocks(window):
    palette = window.palette_widget
    palette.set_filter("squeeze")  # se_block's description
    assert "se_block" in palette.blocks() and palette.no_match.isHidden()
    palette.set_filter("zzzz-nothing")
    assert palette.blocks() == [] and not palette.no_match.isHidden()
    palette.set_filter("")
    assert len(palette.blocks()) >= 6 and "Conv2d" in palette.layers()


def test_an_exposed_parameter_is_set_per_copy_and_kept_in_the_library(window, tmp_path):
    w = window
    w.new_from_template("cnn_mnist")
    w.view.select_nodes(CONV)
    block_id = w.group_selected("conv_stage")
    w.view.select_nodes([block_id])
    assert "conv2d_2.out_channels" in w.exposable_targets(block_id)
    steps = w.document.undo_stack.count()
    assert w.expose_block_parameter("conv2d_2.out_channels", "channels")
    assert w.document.undo_stack.count() == steps + 1
    assert [p.name for p in blocks.block_parameters(w.document.graph.nodes[block_id])] == ["channels"]
    assert "conv2d_2.out_channels" not in w.exposable_targets(block_id)  # offered once
    w.document.undo()
    assert blocks.block_parameters(w.document.graph.nodes[block_id]) == []
    w.document.redo()
    assert w.save_block_to_library("conv_stage", "conv, relu and pool") is not None
    # In another project, a copy with 16 channels: the inner convolution follows, shapes still fit.
    w.new_from_template("cnn_mnist")
    doc = w.document
    w.view.select_nodes(CONV)
    doc.remove_nodes(CONV)
    definition = blocks.load_block("conv_stage")
    nid = blocks.instantiate_block(doc.graph, definition, values={"channels": 16})
    assert blocks.inner_graph(doc.graph.nodes[nid].params).nodes["conv2d_2"].params["out_channels"] == 16
    doc.set_params(nid, {"channels": 24})  # through the document, as the inspector does: one undo step
    assert blocks.inner_graph(doc.graph.nodes[nid].params).nodes["conv2d_2"].params["out_channels"] == 24
