"""Custom layers and blocks in the real window: the code editor in the inspector (Apply is one undo step, an error
names and marks its line, a fix shows the shape), the trust banner on opening a project with custom code (nothing
runs until Trust), and a block's exposed parameter edited in the inspector (inner layers change, one undo step)."""
from __future__ import annotations

from PySide6.QtCore import Qt

from engine import blocks
from engine.custom import UNTRUSTED, code_hash, is_trusted
from engine.project import Project, save_project
from gui.app import TRUST_TITLE
from gui.custom_editor import parse_argument

BROKEN = '''class Twice(nn.Module):
    def __init__(self, factor: float = 2.0):
        super().__init__(
        self.factor = factor
'''

RAISES = '''class Twice(nn.Module):
    def __init__(self, factor: float = 2.0):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x.reshape(x.shape[0], 5, -1) * self.factor
'''

FIXED = '''class Twice(nn.Module):
    def __init__(self, factor: float = 2.0):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x.flatten(1) * self.factor
'''


def apply(w, code: str, class_name: str = "Twice", args: dict | None = None) -> None:
    ed = w.inspector.custom_editor()
    ed.set_values({"code": code, "class_name": class_name, "arguments": args or {}})
    ed.apply_button.click()
    w.document.reanalyze()


def test_custom_layer_edit_error_fix_and_undo(window, qtbot):
    w = window
    w.new_empty()
    doc = w.document
    nid = w.add_custom_layer()
    assert nid == "custom_1" and doc.graph.inputs_of(nid) == ["input_1"]
    doc.reanalyze()
    assert w.inspector.node_id == nid
    ed = w.inspector.custom_editor()
    assert ed is not None and "class Swish" in ed.code.toPlainText()
    assert doc.analysis.nodes[nid].shape == (1, 28, 28)  # the starter code runs: it is trusted
    assert "(1, 28, 28)" in ed.status.text() and ed.error_text() == ""
    assert w.add_custom_action in w.menuBar().actions()[1].menu().actions()

    apply(w, BROKEN)  # a syntax error: its line is named and marked
    assert "syntax error on line 3" in ed.error_text()
    assert ed.code.error_line == 3
    assert doc.analysis.nodes[nid].error is not None

    apply(w, RAISES, args={"factor": 3.0})  # an exception in forward: the line of the code
    assert "line 7" in ed.error_text() and ed.code.error_line == 7
    assert doc.graph.nodes[nid].params["arguments"] == {"factor": 3.0}

    ed.code.setPlainText(FIXED)  # Ctrl+Enter applies too
    ed.code.setFocus()
    qtbot.keyClick(ed.code, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    doc.reanalyze()
    assert doc.graph.nodes[nid].params["code"] == FIXED
    assert ed.error_text() == "" and ed.code.error_line is None
    assert doc.analysis.nodes[nid].shape == (784,)
    assert w.inspector._stat_values["output"].text().startswith("(784")
    assert is_trusted(code_hash(FIXED))  # the user wrote it

    assert doc.undo_stack.count() == 4  # add, then one step per Apply
    doc.undo()
    doc.reanalyze()
    assert doc.graph.nodes[nid].params["code"] == RAISES
    assert ed.code.toPlainText() == RAISES and ed.code.error_line == 7
    doc.undo()
    doc.undo()
    doc.reanalyze()
    assert "class Swish" in ed.code.toPlainText() and ed.error_text() == ""
    assert doc.analysis.nodes[nid].shape == (1, 28, 28)


def test_a_bad_argument_is_refused_and_changes_nothing(window):
    w = window
    w.new_empty()
    nid = w.add_custom_layer()
    ed = w.inspector.custom_editor()
    before = dict(w.document.graph.nodes[nid].params)
    ed.add_argument_row("", "3")
    ed.apply_button.click()
    assert "needs a name" in ed.error_text()
    assert w.document.graph.nodes[nid].params == before
    assert parse_argument("a", "true") is True and parse_argument("a", "3") == 3
    assert parse_argument("a", "1e-3") == 0.001 and parse_argument("a", "'relu'") == "relu"


def test_opening_untrusted_custom_code_runs_nothing_until_trusted(window, tmp_path):
    w = window
    marker = tmp_path / "marker.txt"
    code = (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n\n"
            "class Half(nn.Module):\n    def forward(self, x):\n        return x[:, :4] * 0.5\n")
    project = Project(name="shared")
    project.graph.add_node("Input", {"shape": [8]}, position=(0.0, 0.0))
    cid = project.graph.add_node("Custom", {"code": code, "class_name": "Half", "arguments": {}},
                                 position=(0.0, 120.0))
    project.graph.connect("input_1", cid)
    path = save_project(tmp_path / "shared.layerloom", project)

    assert w.open_file(path)
    doc = w.document
    assert not w.banner.isHidden() and w.banner.title.text() == TRUST_TITLE
    assert "has not been run" in w.banner.text.text() and "trust-code:" in w.banner.text.text()
    assert not marker.exists()
    err = doc.analysis.nodes[cid].error
    assert err is not None and UNTRUSTED in err.reason

    w._follow_custom_link("show-code:" + cid)  # Show code: the node in the inspector, with its Trust button
    assert w.inspector.node_id == cid
    assert w.inspector.custom_editor().code.toPlainText() == code
    assert not w.inspector._trust_row.isHidden()
    assert UNTRUSTED in w.inspector.problem.text()
    assert not marker.exists()

    w._follow_custom_link("trust-code:")
    assert marker.read_text() == "ran"
    assert doc.analysis.nodes[cid].shape == (4,)
    assert w.banner.isHidden()
    assert w.inspector._trust_row.isHidden() and w.inspector.custom_editor().error_text() == ""
    assert is_trusted(code_hash(code))  # remembered for this code


def test_a_blocks_exposed_parameter_edits_inner_layers_in_one_step(window):
    w = window
    w.new_empty()
    doc = w.document
    doc.set_section("name", "blocks")
    bid = blocks.instantiate_block(doc.graph, "res_block", (0.0, 120.0))
    doc.graph.connect("input_1", bid)
    doc.reanalyze()
    w.view.select_nodes([bid])
    assert w.inspector.node_id == bid
    spin = w.inspector.editor("channels")
    start = blocks.exposed_values(doc.graph.nodes[bid].params)["channels"]
    assert spin.value() == start
    summary = w.inspector.block_summary_text()
    assert "conv2d_1" in summary and "Inside:" in summary
    count = doc.undo_stack.count()

    spin.setValue(start + 5)
    inner = blocks.inner(doc.graph.nodes[bid].params).graph
    assert inner.nodes["conv2d_1"].params["out_channels"] == start + 5
    assert inner.nodes["conv2d_2"].params["out_channels"] == start + 5
    assert doc.undo_stack.count() == count + 1

    doc.undo()
    inner = blocks.inner(doc.graph.nodes[bid].params).graph
    assert inner.nodes["conv2d_1"].params["out_channels"] == start
    assert inner.nodes["conv2d_2"].params["out_channels"] == start
    assert spin.value() == start
