"""The training setup panel on real documents: each edit (data source, a source setting, the loss, the optimizer's
learning rate, epochs, early stopping, schedule) is one undo step that changes the project; undo and outside changes
rewrite the editors without echo; refused values change nothing; the preview loads real data off the GUI thread and
says whether it fits the network; locking stops editing."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit

from engine.templates import load_template, template_path
from gui.colors import ERROR_COLOR, OK_COLOR
from gui.document import Document
from gui.training_panel import TrainingSetupPanel, path_for_project

WAIT = 20000  # ms: the first digits load imports scikit-learn


def make_doc(name: str) -> Document:
    return Document(load_template(name), template_path(name))


@pytest.fixture
def doc(qapp):
    d = make_doc("cnn_mnist")
    yield d
    d.close()


@pytest.fixture
def panel(qtbot, doc):
    w = TrainingSetupPanel()
    qtbot.addWidget(w)
    w.resize(440, 900)
    w.set_document(doc)
    w.show()
    return w


def commit_text(editor: QLineEdit, text: str, qtbot) -> None:
    editor.setText(text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


def choose(combo: QComboBox, value) -> None:
    i = combo.findData(value)
    assert i >= 0, value
    combo.setCurrentIndex(i)


def wait_preview(qtbot, panel, text: str = "", state: str = "ready") -> None:
    qtbot.waitUntil(lambda: panel.preview_state == state and text.lower() in panel.preview_text().lower(),
                    timeout=WAIT)


# ---- one undo step per edit ---------------------------------------------------------------------------------------
def test_changing_the_source_is_one_command_and_undo_rebuilds_its_settings(panel, doc):
    before = doc.undo_stack.count()
    choose(panel.source_combo, "iris")
    assert doc.undo_stack.count() == before + 1
    assert doc.project.data["source"] == "iris"
    assert doc.project.data["split"] == {"val": 0.15, "test": 0.15, "seed": 0}  # the split is kept
    with pytest.raises(KeyError):
        panel.editor("data", "params", "size")  # iris has no image size
    assert doc.undo_stack.undoText().startswith("Data source")
    doc.undo_stack.undo()
    assert doc.project.data["source"] == "digits"
    assert panel.source_combo.currentData() == "digits"
    assert panel.editor("data", "params", "size").text() == "28"


def test_a_source_setting_is_one_command_and_undo_rewrites_the_editor(panel, doc, qtbot):
    size = panel.editor("data", "params", "size")
    before = doc.undo_stack.count()
    commit_text(size, "8", qtbot)
    assert doc.undo_stack.count() == before + 1
    assert doc.project.data["params"] == {"size": 8}
    wait_preview(qtbot, panel, "(1, 8, 8)")
    doc.undo_stack.undo()
    assert size.text() == "28" and doc.project.data["params"] == {"size": 28}
    wait_preview(qtbot, panel, "(1, 28, 28)")
    flatten = panel.editor("data", "params", "flatten")
    assert isinstance(flatten, QCheckBox)
    flatten.setChecked(True)
    assert doc.project.data["params"] == {"size": 28, "flatten": True}
    assert doc.undo_stack.count() == before + 1  # the undone step was replaced by this one


def test_loss_choice_is_one_command_with_its_explanation_and_advice(panel, doc):
    before = doc.undo_stack.count()
    choose(panel.loss_combo, "NLL")
    assert doc.undo_stack.count() == before + 1
    assert doc.project.loss == {"type": "NLL", "params": {}}
    assert "log-likelihood" in panel.loss_about.text()
    assert "x" in panel.loss_about.text() and "LogSoftmax" in panel.loss_advice.text()  # cnn_mnist ends in Linear
    assert not panel.loss_advice.isHidden()
    choose(panel.loss_combo, "CrossEntropy")
    label = panel.editor("loss", "params", "label_smoothing")
    assert panel.loss_advice.isHidden()
    assert "softmax" in panel.loss_about.text()
    doc.undo_stack.undo()
    assert panel.loss_combo.currentData() == "NLL"
    assert label is not panel.editor("loss", "params", "ignore_index")


def test_learning_rate_takes_scientific_notation_as_one_command(panel, doc, qtbot):
    lr = panel.editor("optimizer", "params", "lr")
    assert lr.text() == "0.003"
    before = doc.undo_stack.count()
    commit_text(lr, "1e-4", qtbot)
    assert doc.undo_stack.count() == before + 1
    assert doc.project.optimizer == {"type": "Adam", "params": {"lr": 1e-4}}
    assert lr.text() == "0.0001"
    commit_text(lr, "0.0001", qtbot)  # the same value again: nothing new
    assert doc.undo_stack.count() == before + 1
    choose(panel.optimizer_combo, "SGD")
    assert doc.project.optimizer == {"type": "SGD", "params": {"lr": 1e-4}}  # the chosen rate stays
    assert panel.editor("optimizer", "params", "momentum").text() == "0.0"
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert panel.editor("optimizer", "params", "lr").text() == "0.003"


def test_epochs_and_l2_are_one_command_each_and_undo_shows_the_old_value(panel, doc, qtbot):
    epochs = panel.editor("training", "epochs")
    before = doc.undo_stack.count()
    commit_text(epochs, "25", qtbot)
    assert doc.project.training == {"epochs": 25, "batch_size": 64}
    commit_text(panel.editor("optimizer", "params", "weight_decay"), "5e-4", qtbot)
    assert doc.project.optimizer["params"] == {"lr": 0.003, "weight_decay": 5e-4}
    commit_text(panel.editor("training", "batch_size"), "16", qtbot)
    assert doc.undo_stack.count() == before + 3
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert epochs.text() == "10" and panel.editor("training", "batch_size").text() == "64"
    assert panel.editor("optimizer", "params", "weight_decay").text() == "0.0"


def test_early_stopping_and_schedule(panel, doc, qtbot):
    patience = panel.editor("training", "early_stopping", "patience")
    assert not patience.isEnabled()
    panel.editor("training", "early_stopping").setChecked(True)
    assert doc.project.training["early_stopping"] == {}
    assert patience.isEnabled()
    commit_text(patience, "3", qtbot)
    choose(panel.editor("training", "early_stopping", "monitor"), "val_acc")
    assert doc.project.training["early_stopping"] == {"patience": 3, "monitor": "val_acc"}
    choose(panel.schedule_combo, "cosine")
    assert doc.project.schedule == {"type": "cosine", "params": {}}
    commit_text(panel.editor("schedule", "params", "eta_min"), "1e-5", qtbot)
    assert doc.project.schedule == {"type": "cosine", "params": {"eta_min": 1e-5}}
    choose(panel.schedule_combo, None)
    assert doc.project.schedule is None
    assert "schedule" not in {k[0] for k in panel._fields}
    panel.editor("training", "early_stopping").setChecked(False)
    assert "early_stopping" not in doc.project.training and not patience.isEnabled()


def test_refused_values_show_why_and_push_nothing(panel, doc, qtbot):
    messages = []
    panel.message.connect(messages.append)
    before = doc.undo_stack.count()
    optimizer, training = dict(doc.project.optimizer), dict(doc.project.training)
    lr = panel.editor("optimizer", "params", "lr")
    commit_text(lr, "-1", qtbot)
    assert "lr" in panel.error_text("optimizer", "params", "lr")
    assert "out of range" in messages[-1]
    assert lr.text() == "0.003"  # back to the project's value
    epochs = panel.editor("training", "epochs")
    commit_text(epochs, "0", qtbot)
    assert "epochs" in panel.error_text("training", "epochs") and "≥ 1" in panel.error_text("training", "epochs")
    commit_text(epochs, "many", qtbot)
    assert "whole numbers" in panel.error_text("training", "epochs")
    commit_text(panel.editor("data", "split", "val"), "0.9", qtbot)  # with test 0.15 nothing is left to train on
    assert "leaves nothing to train on" in panel.error_text("data", "split", "val")
    assert doc.undo_stack.count() == before
    assert doc.project.optimizer == optimizer and doc.project.training == training
    commit_text(epochs, "12", qtbot)  # a good value clears the refusal
    assert panel.error_text("training", "epochs") == "" and doc.project.training["epochs"] == 12


def test_outside_changes_rewrite_the_editors_without_echo(panel, doc):
    doc.set_section("training", {"epochs": 7, "batch_size": 8, "grad_clip": 1.0})
    doc.set_section("loss", {"type": "MSE", "params": {}})
    assert doc.undo_stack.count() == 2
    assert panel.editor("training", "epochs").text() == "7"
    assert panel.editor("training", "grad_clip").text() == "1.0"
    assert panel.loss_combo.currentData() == "MSE"
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert panel.editor("training", "grad_clip").text() == ""
    assert doc.undo_stack.count() == 2 and doc.undo_stack.index() == 0


# ---- the preview --------------------------------------------------------------------------------------------------
def test_preview_shows_digit_images_their_shape_and_that_they_fit(panel, qtbot):
    wait_preview(qtbot, panel, "(1, 28, 28)")
    assert panel.preview_gallery.isVisibleTo(panel) and panel.preview_gallery.count() == 24
    assert all(c in "0123456789" for c in panel.preview_gallery.captions())
    text = panel.preview_text()
    assert "10 classes" in text and "1,257 train" in text and "float32" in text
    assert panel.fit_messages() == []
    assert "fits the network" in panel.fit_label.text() and OK_COLOR in panel.fit_label.text()


def test_fit_check_shows_the_fix_when_the_data_does_not_fit(qtbot, qapp):
    d = make_doc("mlp_784_64_10")  # Input (784,) on flattened digits
    w = TrainingSetupPanel()
    qtbot.addWidget(w)
    w.set_document(d)
    wait_preview(qtbot, w, "(784,)")
    assert w.fit_messages() == []
    assert w.preview_gallery.count() == 24  # flattened images are still shown as images
    w.editor("data", "params", "flatten").setChecked(False)
    qtbot.waitUntil(lambda: w.fit_messages() != [], timeout=WAIT)
    msg = w.fit_messages()[0]
    assert "Input expects (784,) but the data gives (1, 28, 28)" in msg
    assert "set the Input shape to (1, 28, 28)" in msg and "Reshape" in msg
    assert ERROR_COLOR in w.fit_label.text() and "does not fit" in w.fit_label.text()
    d.close()


def test_tabular_preview_is_a_table(panel, qtbot):
    choose(panel.source_combo, "iris")
    wait_preview(qtbot, panel, "(4,)")
    assert panel.preview_table.isVisibleTo(panel) and not panel.preview_gallery.isVisibleTo(panel)
    headers = [panel.preview_table.horizontalHeaderItem(c).text() for c in range(panel.preview_table.columnCount())]
    assert headers[0] == "label" and "sepal length (cm)" in headers
    assert panel.preview_table.rowCount() == 6
    assert any("Input expects (1, 28, 28) but the data gives (4,)" in m for m in panel.fit_messages())


def test_a_missing_csv_file_is_said_in_the_panel(panel, doc, qtbot, tmp_path):
    choose(panel.source_combo, "csv")
    wait_preview(qtbot, panel, "needs a file", state="error")
    before = doc.undo_stack.count()
    panel.set_path("path", tmp_path / "missing.csv")
    assert doc.undo_stack.count() == before + 1
    wait_preview(qtbot, panel, "no such file", state="error")
    assert "cannot be loaded" in panel.preview_status.text() and ERROR_COLOR in panel.preview_status.text()
    assert panel.preview_gallery.isHidden() and panel.preview_table.isHidden()


def test_a_file_inside_the_project_folder_is_stored_relative_and_previewed(qtbot, qapp, tmp_path):
    d = make_doc("linear_regression")
    d.save(tmp_path / "proj.layerloom")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "points.csv").write_text("x,y\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(40)))
    w = TrainingSetupPanel()
    qtbot.addWidget(w)
    w.set_document(d)
    choose(w.source_combo, "csv")
    w.set_path("path", tmp_path / "data" / "points.csv")
    assert d.project.data["params"]["path"] == "data/points.csv"
    wait_preview(qtbot, w, "(1,)")
    assert w.preview_table.rowCount() == 6 and w.preview_table.row_texts(0)[0] != ""
    assert path_for_project(tmp_path.parent / "x.csv", tmp_path) == str((tmp_path.parent / "x.csv").resolve())
    d.close()


# ---- locking and documents ----------------------------------------------------------------------------------------
def test_lock_disables_editing_and_says_why(panel, doc, qtbot):
    panel.set_locked(True, "Training is running; stop it to change the settings.")
    assert panel.locked and not panel.lock_banner.isHidden()
    assert "Training is running" in panel.lock_banner.text()
    for editor in (panel.editor("training", "epochs"), panel.editor("optimizer", "params", "lr"), panel.source_combo,
                   panel.loss_combo, panel.editor("data", "params", "size")):
        assert not editor.isEnabled()
    before = doc.undo_stack.count()
    epochs = panel.editor("training", "epochs")
    epochs.setText("99")
    panel._commit(panel._fields[("training", "epochs")])
    assert doc.undo_stack.count() == before and doc.project.training["epochs"] == 10
    panel.set_locked(False)
    assert panel.lock_banner.isHidden() and epochs.isEnabled()


def test_no_document_disables_the_panel_and_a_new_one_is_followed(panel, qtbot):
    panel.set_document(None)
    assert not panel.data_box.isEnabled() and not panel.no_doc.isHidden()
    other = make_doc("linear_regression")
    panel.set_document(other)
    assert panel.source_combo.currentData() == "line" and panel.loss_combo.currentData() == "MSE"
    assert panel.optimizer_combo.currentData() == "SGD"
    assert panel.editor("training", "epochs").text() == "50"
    wait_preview(qtbot, panel, "(1,)")
    assert panel.preview_table.isVisibleTo(panel)
    other.close()


def test_device_choice_offers_auto_and_cpu(panel, doc):
    device = panel.editor("training", "device")
    assert [device.itemData(i) for i in range(device.count())] == ["auto", "cpu", "cuda"]
    choose(device, "cpu")
    assert doc.project.training["device"] == "cpu"


def test_preview_settled_waits_for_the_delayed_start_and_the_load(panel, doc, qtbot):
    """A change starts the preview 150 ms later: until it has started and loaded, the panel is not settled
    (benchmarks and tests wait on it before pressing Train)."""
    wait_preview(qtbot, panel)
    qtbot.waitUntil(panel.preview_settled, timeout=WAIT)
    choose(panel.source_combo, "iris")
    assert not panel.preview_settled()
    qtbot.waitUntil(panel.preview_settled, timeout=WAIT)
    assert panel.preview_state == "ready" and "3 classes" in panel.preview_text()
