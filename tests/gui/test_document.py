"""The document: every edit is one undo command on the engine's graph; refused edits push nothing; undo of
everything gives back the starting graph exactly; saving marks it clean."""
from __future__ import annotations

import json

import pytest

from engine.errors import CycleError, ParamError, PortError, ProjectError, UnknownLayerError
from engine.project import load_project
from engine.templates import load_template, template_path
from gui.document import Document


@pytest.fixture
def doc(qapp):
    d = Document(load_template("cnn_mnist"), template_path("cnn_mnist"))
    yield d
    d.close()


def snapshot(doc: Document) -> str:
    return json.dumps(doc.graph.to_dict(), sort_keys=True)


def test_every_kind_of_edit_undoes_back_to_the_start_and_redoes_again(doc):
    start = snapshot(doc)
    first, second = list(doc.graph.nodes)[:2]
    last = doc.graph.sink_nodes()[0]
    new = doc.add_node("ReLU", position=(300, 40))
    doc.connect(last, new)
    doc.set_params(list(doc.graph.nodes)[1], {"out_channels": 12})
    doc.move_nodes({new: ((300, 40), (320, 80))})
    doc.disconnect(first, second)
    doc.set_training_flags(second, frozen=True, lr_factor=0.5)
    pasted = doc.paste(doc.copy_nodes([second, new]))
    assert (doc.graph.nodes[pasted[0]].frozen, doc.graph.nodes[pasted[0]].lr_factor) == (True, 0.5)  # kept
    doc.remove_nodes([second])
    doc.tidy()
    after = snapshot(doc)
    assert after != start
    assert len(pasted) == 2 and all(p in doc.graph for p in pasted)
    assert doc.dirty
    count = doc.undo_stack.count()
    assert count == 9  # one step per edit
    while doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    assert snapshot(doc) == start
    assert not doc.dirty
    while doc.undo_stack.canRedo():
        doc.undo_stack.redo()
    assert snapshot(doc) == after


def test_a_loop_is_refused(qapp):
    d = Document(load_template("residual_block"))
    add = next(n for n, node in d.graph.nodes.items() if node.type == "Add")
    with pytest.raises(CycleError) as e:
        d.connect(d.graph.sink_nodes()[0], add)
    assert "loop" in str(e.value) and d.undo_stack.count() == 0
    d.close()


def test_remove_puts_edges_back_at_their_input_slot(qapp):
    d = Document(load_template("residual_block"))
    add = next(n for n, node in d.graph.nodes.items() if node.type == "Add")
    ins = d.graph.inputs_of(add)
    d.remove_nodes([ins[0]])
    assert d.graph.inputs_of(add) == ins[1:]
    d.undo_stack.undo()
    assert d.graph.inputs_of(add) == ins
    assert list(d.graph.nodes) == list(load_template("residual_block").graph.nodes)  # same node order too


def test_refused_edits_raise_the_engine_error_and_push_nothing(doc):
    start, count = snapshot(doc), doc.undo_stack.count()
    order = doc.graph.topological_order()
    with pytest.raises(CycleError):
        doc.connect(order[-1], order[-1])
    with pytest.raises(PortError):
        doc.connect(order[-1], order[1])  # a Conv2d takes one input and has it
    with pytest.raises(PortError):
        doc.connect(order[1], order[0])  # the Input takes no input
    with pytest.raises(ParamError) as e:
        doc.set_params(order[1], {"out_channels": 0})
    assert "out_channels" in str(e.value)
    with pytest.raises(UnknownLayerError):
        doc.add_node("Conv9d")
    assert snapshot(doc) == start and doc.undo_stack.count() == count


def test_add_after_a_node_is_one_step_with_its_wire(doc):
    last = doc.graph.sink_nodes()[0]
    nid = doc.add_node("Softmax", connect_from=last)
    assert doc.graph.inputs_of(nid) == [last]
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert nid not in doc.graph


def test_parameter_typing_merges_into_one_step(doc):
    conv = next(n for n, node in doc.graph.nodes.items() if node.type == "Conv2d")
    old = doc.graph.nodes[conv].params["out_channels"]
    for v in (3, 32, 320):
        doc.set_params(conv, {"out_channels": v})
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert doc.graph.nodes[conv].params["out_channels"] == old


def test_analysis_is_coalesced_and_reports_errors(doc, qtbot):
    conv = next(n for n, node in doc.graph.nodes.items() if node.type == "Conv2d")
    with qtbot.waitSignal(doc.analyzed, timeout=1000) as blocker:
        doc.set_params(conv, {"kernel_size": 5})
        doc.set_params(conv, {"kernel_size": 50})  # larger than the 28×28 image
    analysis = blocker.args[0]
    assert analysis.nodes[conv].error is not None
    assert "kernel" in str(analysis.nodes[conv].error)
    assert doc.undo_stack.count() == 1  # the two values merged into one step
    doc.undo_stack.undo()
    assert doc.reanalyze().ok


def test_settings_sections_are_undoable(doc, qtbot):
    old = doc.project.optimizer
    with qtbot.waitSignal(doc.section_changed) as blocker:
        doc.set_section("optimizer", {"type": "SGD", "params": {"lr": 0.1}})
    assert blocker.args == ["optimizer"]
    assert doc.project.optimizer["type"] == "SGD"
    doc.undo_stack.undo()
    assert doc.project.optimizer == old


def test_save_marks_clean_and_reopens_the_same(doc, tmp_path, qtbot):
    doc.add_node("Dropout", position=(10, 10))
    assert doc.dirty
    with qtbot.waitSignal(doc.dirty_changed) as blocker:
        path = doc.save(tmp_path / "mine.layerloom")
    assert blocker.args == [False] and not doc.dirty
    assert load_project(path).graph.to_dict() == doc.graph.to_dict()
    again = Document.open(path)
    assert again.graph.to_dict() == doc.graph.to_dict()
    again.close()


def test_a_broken_file_raises_a_project_error(tmp_path, qapp):
    bad = tmp_path / "broken.layerloom"
    bad.write_text('{"format": "layerloom", "version": 2, "graph": {"nodes": [{"id": 1}]}}')
    with pytest.raises(ProjectError) as e:
        Document.open(bad)
    assert "broken.layerloom" in str(e.value)


def test_tidy_layout_is_one_step_and_has_no_overlaps(qapp):
    d = Document(load_template("gru_two_branch"))
    for nid in d.graph.nodes:
        d.graph.move(nid, 0, 0)
    d.undo_stack.clear()
    d.tidy()
    assert d.undo_stack.count() == 1
    positions = [n.position for n in d.graph.nodes.values()]
    assert len(set(positions)) == len(positions)
    for nid in d.graph.nodes:  # every node below its inputs
        for src in d.graph.inputs_of(nid):
            assert d.graph.nodes[src].position[1] < d.graph.nodes[nid].position[1]


def test_a_locked_document_refuses_model_edits_but_not_moves(doc):
    from gui.document import LockedError

    conv = next(n for n, node in doc.graph.nodes.items() if node.type == "Conv2d")
    doc.set_params(conv, {"out_channels": 8})
    start = snapshot(doc)
    doc.lock("training is running: stop it to change the network")
    with pytest.raises(LockedError) as e:
        doc.set_params(conv, {"out_channels": 16})
    assert "stop it" in str(e.value)
    with pytest.raises(LockedError):
        doc.add_node("ReLU")
    with pytest.raises(LockedError):
        doc.remove_nodes([conv])
    with pytest.raises(LockedError):
        doc.undo()
    assert snapshot(doc) == start and doc.undo_stack.count() == 1
    old = doc.graph.nodes[conv].position
    doc.move_nodes({conv: (old, (old[0] + 50, old[1]))})  # moving changes no model: allowed
    assert doc.graph.nodes[conv].position == (old[0] + 50, old[1])
    doc.unlock()
    doc.undo()
    doc.undo()
    assert doc.graph.nodes[conv].params["out_channels"] != 8
