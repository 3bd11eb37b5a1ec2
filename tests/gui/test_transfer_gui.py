"""Transfer learning in the window: freezing layers and their learning-rate factors in the inspector and from the
Edit menu (each one undo step, the lock drawn on the canvas), the Load Weights dialog on a real safetensors file
(report, Apply as one undo step, training starting from the loaded weights) and Replace the Head."""
from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import QRectF
from safetensors.torch import load_file, save_file

from engine.builder import build_model
from engine.templates import load_template
from gui.app import MainWindow
from gui.canvas.items import _LOCK


def messages(w: MainWindow) -> str:
    return "\n".join(text for _level, text in w.messages.entries())


def dark_pixels(w: MainWindow, nid: str) -> int:
    """Pixels clearly darker than the node's fill where the padlock of node `nid` goes, in a grab of the canvas."""
    view = w.view
    item = view.scene().nodes[nid]
    view.centerOn(item)
    rect = view.mapFromScene(item.mapToScene(QRectF(_LOCK.boundingRect()))).boundingRect()
    image = view.viewport().grab().toImage()
    dpr = image.devicePixelRatio()
    count = 0
    for x in range(int(rect.left() * dpr), int((rect.right() + 1) * dpr)):
        for y in range(int(rect.top() * dpr), int((rect.bottom() + 1) * dpr)):
            if image.pixelColor(x, y).lightness() < 110:
                count += 1
    return count


def test_freeze_and_lr_factor_in_the_inspector_are_undoable_and_checked(window):
    w = window
    w.new_from_template("cnn_mnist")
    doc, insp = w.document, w.inspector
    w.view.select_nodes(["relu_1"])
    assert insp.node_id == "relu_1" and insp.training_box.isHidden()  # no weights: nothing to freeze
    w.view.select_nodes(["conv2d_1"])
    assert not insp.training_box.isHidden() and not insp.frozen_check.isChecked()
    assert insp.lr_edit.text() == "1"
    count = doc.undo_stack.count()
    insp.frozen_check.setChecked(True)
    node, item = doc.graph.nodes["conv2d_1"], w.view.scene().nodes["conv2d_1"]
    assert node.frozen and doc.undo_stack.count() == count + 1
    assert doc.undo_stack.undoText() == "Freeze conv2d_1"
    assert item.frozen and "frozen" in item.toolTip()
    doc.undo()
    assert not node.frozen and not insp.frozen_check.isChecked() and not item.frozen
    doc.redo()
    assert node.frozen and insp.frozen_check.isChecked()
    # A bad learning-rate factor is refused in words and changes nothing.
    for bad, said in (("abc", "must be a number"), ("0", "above 0"), ("5000", "at most 1000")):
        insp.lr_edit.setText(bad)
        insp.lr_edit.editingFinished.emit()
        assert said in insp.training_error_text(), insp.training_error_text()
        assert node.lr_factor == 1.0 and insp.lr_edit.text() == "1"
        assert doc.undo_stack.count() == count + 1
    insp.lr_edit.setText("0.10")
    insp.lr_edit.editingFinished.emit()
    assert node.lr_factor == 0.1 and insp.training_error_text() == "" and insp.lr_edit.text() == "0.1"
    assert doc.undo_stack.count() == count + 2 and item.lr_text == "lr×0.1" and "× 0.1" in item.toolTip()
    doc.undo()
    assert node.lr_factor == 1.0 and insp.lr_edit.text() == "1" and item.lr_text == ""
    # While a run uses the network the flags cannot change: the reason shows and the box goes back.
    doc.lock("a training run is using the network")
    insp.frozen_check.setChecked(False)
    assert node.frozen and insp.frozen_check.isChecked()
    assert "training run" in insp.training_error_text()
    doc.unlock()


def test_freeze_selected_is_one_step_and_the_lock_survives_delete_and_undo(window):
    w = window
    w.new_from_template("cnn_mnist")
    doc = w.document
    before = dark_pixels(w, "conv2d_1")
    w.view.select_nodes(["conv2d_1", "relu_1", "conv2d_2", "linear_1"])
    w._update_transfer_actions()  # noqa: SLF001 - what the Edit menu does as it opens
    assert w.freeze_action.isEnabled() and not w.unfreeze_action.isEnabled()
    count = doc.undo_stack.count()
    w.freeze_action.trigger()
    assert doc.graph.frozen_nodes() == ["conv2d_1", "conv2d_2", "linear_1"]  # the ReLU has nothing to freeze
    assert doc.undo_stack.count() == count + 1 and doc.undo_stack.undoText() == "Freeze 3 layers"
    assert "Froze conv2d_1, conv2d_2, linear_1" in messages(w)
    # The padlock is painted in the node's corner, and only on frozen nodes.
    assert before < 3 and dark_pixels(w, "conv2d_1") > 12
    assert w.view.scene().nodes["conv2d_1"].drew_lock and not w.view.scene().nodes["relu_1"].drew_lock
    doc.undo()  # one step undoes all three
    assert doc.graph.frozen_nodes() == []
    assert dark_pixels(w, "conv2d_1") < 3
    doc.redo()
    # Deleting a frozen node and undoing brings it back frozen, with its learning-rate factor.
    doc.set_training_flags("conv2d_2", lr_factor=0.25)
    w.view.select_nodes(["conv2d_2"])
    w.delete_action.trigger()
    assert "conv2d_2" not in doc.graph
    doc.undo()
    node = doc.graph.nodes["conv2d_2"]
    assert node.frozen and node.lr_factor == 0.25
    item = w.view.scene().nodes["conv2d_2"]
    assert item.frozen and item.lr_text == "lr×0.25"
    assert dark_pixels(w, "conv2d_2") > 12
    w.view.select_nodes(["conv2d_1", "conv2d_2"])
    assert w.unfreeze_selected() == ["conv2d_1", "conv2d_2"]
    assert doc.graph.frozen_nodes() == ["linear_1"]


def test_load_weights_report_apply_undo_and_training_starts_from_them(window, qtbot, tmp_path):
    # Weights of cnn_mnist trained for 3 classes: everything but the head fits the 10-class network.
    source_project = load_template("cnn_mnist")
    source_project.graph.set_params("linear_2", {"out_features": 3})
    source = {k: v.contiguous() for k, v in build_model(source_project.graph, seed=123).state_dict().items()}
    src = tmp_path / "three_classes.safetensors"
    save_file(source, str(src))

    w = window
    w.new_from_template("cnn_mnist")
    doc = w.document
    doc.set_section("training", {**doc.project.training, "epochs": 1, "batch_size": 128})
    dialog = w.load_weights()
    assert dialog is w.transfer_dialog and not dialog.apply_button.isEnabled()
    with qtbot.waitSignal(dialog.matched, timeout=30_000) as got:
        assert dialog.match_now(src)
    result = got.args[0]
    assert result["ok"], result["error"]
    report = dialog.report()
    assert (report.loaded, report.total, len(report.kept), len(report.shape_mismatches), len(report.unused)) == \
        (6, 8, 2, 2, 0)
    assert "6 of 8 tensors loaded: 6 by name" in dialog.summary_text()
    assert "linear_2.weight is 10×64 here but 3×64 in the source" in dialog.summary_text()
    rows = dialog.table_rows()
    assert len(rows) == 8
    assert rows[0] == ("conv2d_1.weight", "32×1×3×3", "conv2d_1.weight", "32×1×3×3", "✓ by name")
    assert rows[-1] == ("linear_2.bias", "10", "linear_2.bias", "3", "kept: another shape")
    assert "6 loaded" in dialog.counts_label.text() and dialog.apply_button.isEnabled()
    # An untitled project has no folder for the file: Apply says to save first and changes nothing.
    count = doc.undo_stack.count()
    assert not dialog.apply()
    assert "Save the project first" in dialog.summary_text() or "Save the project first" in dialog.status.text()
    assert "init" not in doc.project.extra and doc.undo_stack.count() == count
    assert w._save_to(tmp_path / "cnn.layerloom")  # noqa: SLF001
    dialog.freeze_check.setChecked(True)
    assert dialog.apply()
    init = doc.project.extra["init"]
    assert init["weights"] == "cnn.init.safetensors" and init["tensors"] == 6
    written = load_file(str(tmp_path / "cnn.init.safetensors"))
    assert sorted(written) == sorted(t for t, _s, _h in report.matched)
    assert torch.equal(written["conv2d_1.weight"], source["conv2d_1.weight"])
    assert doc.graph.frozen_nodes() == ["conv2d_1", "conv2d_2", "linear_1"]
    assert doc.undo_stack.count() == count + 1 and doc.undo_stack.undoText() == "Load weights from three_classes" \
        ".safetensors"
    assert "Loaded 6 of 8 tensors from three_classes.safetensors" in messages(w)
    doc.undo()  # one step: the setting and the freezing go together; the file stays
    assert "init" not in doc.project.extra and doc.graph.frozen_nodes() == []
    assert (tmp_path / "cnn.init.safetensors").is_file()
    doc.redo()
    assert doc.project.extra["init"]["weights"] == "cnn.init.safetensors"
    # Training from the window starts from the loaded weights: the frozen first convolution ends exactly as loaded,
    # the head (kept, trainable) learns, and the run says where it started from.
    with qtbot.waitSignal(w.training.run_finished, timeout=120_000) as done:
        assert w.training.train()
    result = done.args[0]
    assert result["status"] == "finished", result.get("message")
    assert any("started from 6 of 8 tensors in cnn.init.safetensors" in n for n in result["notes"]), result["notes"]
    final = load_file(result["weights"])
    assert torch.equal(final["conv2d_1.weight"], source["conv2d_1.weight"])
    assert torch.equal(final["linear_1.bias"], source["linear_1.bias"])
    fresh = build_model(doc.project.graph, seed=doc.project.training.get("seed", 0)).state_dict()
    assert not torch.equal(final["linear_2.weight"], fresh["linear_2.weight"])


def test_a_second_transfer_never_overwrites_the_first_file(window, qtbot, tmp_path):
    project = load_template("mlp_784_64_10")
    weights_a = {k: v.contiguous() for k, v in build_model(project.graph, seed=1).state_dict().items()}
    weights_b = {k: v.contiguous() for k, v in build_model(project.graph, seed=2).state_dict().items()}
    save_file(weights_a, str(tmp_path / "a.safetensors"))
    save_file(weights_b, str(tmp_path / "b.safetensors"))
    w = window
    w.new_from_template("mlp_784_64_10")
    assert w._save_to(tmp_path / "mlp.layerloom")  # noqa: SLF001
    doc = w.document
    for name in ("a", "b"):
        dialog = w.load_weights()
        with qtbot.waitSignal(dialog.matched, timeout=30_000):
            dialog.match_now(tmp_path / f"{name}.safetensors")
        assert dialog.apply()
    assert doc.project.extra["init"]["weights"] == "mlp.2.init.safetensors"
    doc.undo()  # back to the first transfer: its file still holds its weights
    first = tmp_path / doc.project.extra["init"]["weights"]
    assert first.name == "mlp.init.safetensors"
    key = next(iter(weights_a))
    assert torch.equal(load_file(str(first))[key], weights_a[key])
    # The dialog shows the current starting weights and can stop using them, as one undo step.
    dialog = w.load_weights()
    assert not dialog.current.isHidden() and "mlp.init.safetensors" in dialog.current_label.text()
    assert dialog.remove_current() and "init" not in doc.project.extra and first.is_file()
    assert "fresh initial values again" in messages(w)
    doc.undo()
    assert doc.project.extra["init"]["weights"] == "mlp.init.safetensors"
    dialog.close()
    doc.lock("a training run is using the network")
    assert w.load_weights() is None and "Weights cannot be loaded now" in messages(w)
    doc.unlock()
    # A source that fits nothing is reported, and there is nothing to apply.
    bad = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(bad))
    dialog = w.load_weights()
    with qtbot.waitSignal(dialog.matched, timeout=30_000):
        dialog.match_now(bad)
    assert dialog.report().loaded == 0 and "Nothing fits" in dialog.summary_text()
    assert not dialog.apply_button.isEnabled() and not dialog.apply()
    with qtbot.waitSignal(dialog.matched, timeout=30_000) as got:
        dialog.match_now(tmp_path / "missing.pt")
    assert not got.args[0]["ok"] and "missing.pt" in dialog.summary_text()


def test_replace_the_head_is_one_undo_step_and_a_network_without_one_is_explained(window):
    w = window
    w.new_from_template("cnn_mnist")
    doc = w.document
    count = doc.undo_stack.count()
    assert w.replace_head(3)
    assert doc.graph.nodes["linear_2"].params["out_features"] == 3
    assert doc.reanalyze().nodes["linear_2"].shape == (3,)
    assert doc.undo_stack.count() == count + 1 and "linear_2: out_features 10 → 3" in messages(w)
    doc.undo()
    assert doc.graph.nodes["linear_2"].params["out_features"] == 10
    assert w.replace_head(10) and doc.undo_stack.index() == count  # already right: nothing pushed
    assert "has 10 outputs already" in messages(w)
    w.new_empty()  # an Input alone: no layer decides the outputs
    assert not w.replace_head(3)
    assert "Cannot replace the head: the network has no output layer" in messages(w)
    assert w.document.undo_stack.count() == 0


def test_the_frozen_flags_reach_the_canvas_when_a_project_opens(window, tmp_path):
    project = load_template("cnn_mnist")
    project.graph.set_training_flags("conv2d_1", frozen=True, lr_factor=0.5)
    from engine.project import save_project
    save_project(tmp_path / "frozen.layerloom", project)
    w = window
    assert w.open_file(tmp_path / "frozen.layerloom")
    item = w.view.scene().nodes["conv2d_1"]
    assert item.frozen and item.lr_text == "lr×0.5"
    assert not w.view.scene().nodes["conv2d_2"].frozen
    assert np.isclose(w.document.graph.nodes["conv2d_1"].lr_factor, 0.5)
