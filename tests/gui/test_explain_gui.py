"""Explain a prediction from the real window: after a short real training run and an evaluation, a worst sample
clicked and explained fills the explain panel for that sample (heat map the image's size, the predicted class
chosen), a new method, layer or class recomputes, Grad-CAM offers exactly the network's convolution layers, a
newer request replaces the waiting one, broken weights and missing weights are said in words with the app still
up; for a table, feature importance draws one bar per feature, most important on top, and Grad-CAM is not
offered for a network without convolutions."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QApplication, QMenu

import engine
from engine.data import load_data
from engine.explain import GRADCAM, INTEGRATED_GRADIENTS, SALIENCY, conv_layers
from engine.project import Project, save_project
from gui.app import MainWindow
from gui.explain_view import NO_WEIGHTS, explain_dialog

WAIT = 60_000


def train_and_evaluate(w: MainWindow, qtbot) -> dict:
    with qtbot.waitSignal(w.training.run_finished, timeout=120_000) as done:
        assert w.training.train()
    assert done.args[0]["status"] == "finished", done.args[0].get("message")
    with qtbot.waitSignal(w.training.evaluated, timeout=WAIT) as ev:
        assert w.training.evaluate()
    result = ev.args[0]
    assert "error" not in result, result.get("error")
    w.evaluation_dock.show()
    w.evaluation_dock.raise_()
    qtbot.wait(10)
    return result


def context_menu(widget, pos: QPoint, at=None) -> QMenu:
    """Right-click at `pos` of `at` (the widget itself, or a table's viewport), a real context-menu event: the
    widget's menu that pops up."""
    at = at or widget
    QApplication.sendEvent(at, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, at.mapToGlobal(pos)))
    menus = [m for m in widget.findChildren(QMenu) if m.isVisible()]
    assert len(menus) == 1
    return menus[0]


def explained(qtbot, panel, action) -> dict:
    """Run `action` and wait for the panel's next answer."""
    with qtbot.waitSignal(panel.computed, timeout=WAIT) as answer:
        action()
    return answer.args[0]


def test_explaining_worst_samples_of_a_trained_cnn(window, qtbot, tmp_path):
    w = window
    w.new_from_template("cnn_mnist")
    doc = w.document
    doc.set_section("training", {**(doc.project.training or {}), "epochs": 1, "batch_size": 64})
    assert w._save_to(tmp_path / "cnn.layerloom")
    result = train_and_evaluate(w, qtbot)
    view = w.evaluation_view
    gallery = view.worst_gallery
    assert gallery.explain_text and not view.worst_explain.isEnabled() and view.explain_index("worst") is None
    assert not view.features_row.isVisibleTo(view)  # images: no feature importance

    # A click on a worst sample offers "Explain this prediction" for it; the button opens the panel.
    k = int(result["worst"][0])
    qtbot.mouseClick(gallery, Qt.MouseButton.LeftButton, pos=gallery.item_rect(0).center())
    assert view.worst_explain.isVisibleTo(view) and view.explain_index("worst") == k
    panel = explain_dialog(w).panel
    first = explained(qtbot, panel, lambda: qtbot.mouseClick(view.worst_explain, Qt.MouseButton.LeftButton))
    assert "error" not in first, first.get("error")
    assert w.explain_dialog.isVisible() and not w.explain_dialog.isModal()
    assert panel.index == k
    pred, true = int(result["y_pred"][k]), int(result["y_true"][k])
    e = panel.explanation
    assert panel.method_combo.currentData() == SALIENCY and e["method"] == SALIENCY
    assert panel.class_combo.currentData() == pred and e["target"] == e["predicted"] == pred
    assert e["heat"].shape == result["x"][k].shape[-2:] == (28, 28)
    np.testing.assert_allclose(e["probs"].sum(), 1.0, atol=1e-4)
    assert panel.overlay_picture.image.size().toTuple() == (28, 28)
    assert panel.heat_picture.image.size().toTuple() == (28, 28)
    assert panel.prob_bars.rows()[0][0] == result["classes"][pred] and "predicted" in panel.prob_bars.rows()[0][2]
    assert result["classes"][true] in [name for name, _, _ in panel.prob_bars.rows()]
    assert "∂y_c / ∂x" in panel.reading.text()

    # Grad-CAM lists exactly the network's convolution layers, the last chosen; choosing recomputes.
    model = engine.build_model(doc.project.graph)
    assert panel.layer_choices() == conv_layers(model) == ["conv2d_1", "conv2d_2"]
    assert panel.method_offered(GRADCAM) and not panel.layer_combo.isVisibleTo(panel)
    cam = explained(qtbot, panel, lambda: panel.method_combo.setCurrentIndex(panel.method_combo.findData(GRADCAM)))
    assert cam["explanation"]["method"] == GRADCAM and cam["explanation"]["layer"] == "conv2d_2"
    assert panel.layer_combo.isVisibleTo(panel) and "ReLU(Σ_k α_k · A^k)" in panel.reading.text()
    assert not np.array_equal(cam["explanation"]["heat"], first["explanation"]["heat"])
    early = explained(qtbot, panel, lambda: panel.layer_combo.setCurrentIndex(0))
    assert early["explanation"]["layer"] == "conv2d_1" and early["explanation"]["heat"].shape == (28, 28)

    # Another class (the true one when the network was wrong): why not that one?
    other = panel.class_combo.findData(true) if true != pred else 2
    chosen = panel.class_combo.itemData(other)
    why_not = explained(qtbot, panel, lambda: panel.class_combo.setCurrentIndex(other))
    assert why_not["explanation"]["target"] == chosen != pred and why_not["explanation"]["predicted"] == pred
    assert panel.title.text().startswith("Why not")

    # Three quick changes while a job runs: the waiting one is replaced, only the last answer is shown.
    answers = []
    panel.computed.connect(answers.append)
    with qtbot.waitSignal(panel.computed, timeout=WAIT):
        panel.method_combo.setCurrentIndex(panel.method_combo.findData(SALIENCY))
        panel.method_combo.setCurrentIndex(panel.method_combo.findData(INTEGRATED_GRADIENTS))
        assert panel.runner.busy() and panel.runner.pending() == ["sample"]
        assert "Computing the integrated gradients" in panel.status.text()  # the panel says it is at work
        panel.class_combo.setCurrentIndex(0)
    qtbot.waitUntil(lambda: not panel.runner.busy(), timeout=WAIT)
    qtbot.wait(50)
    assert len(answers) == 1
    last = answers[0]["explanation"]
    assert last["method"] == INTEGRATED_GRADIENTS and last["target"] == pred and last["delta"] is not None
    panel.computed.disconnect(answers.append)

    # The samples of a confusion cell: the right-click menu explains the sample under the cursor.
    cell = view.cell_indices()
    assert cell, "the most frequent mistake's cell is open"
    pos = 1 if len(cell) > 1 else 0
    menu = context_menu(view.cell_gallery, view.cell_gallery.item_rect(pos).center())
    assert [a.text() for a in menu.actions()] == ["Explain this prediction"]
    from_cell = explained(qtbot, panel, menu.actions()[0].trigger)
    assert "error" not in from_cell and panel.index == cell[pos]
    assert view.explain_index("cell") == cell[pos]  # the right-click selected it too

    # Broken weights: said in words in the panel; the window stays up and recovers with good weights.
    weights = w.training.weights_path()
    good = weights.read_bytes()
    weights.write_bytes(b"these are not weights")
    broken = explained(qtbot, panel, lambda: panel.method_combo.setCurrentIndex(panel.method_combo.findData(
        SALIENCY)))
    assert "not a readable .safetensors file" in broken["error"]
    assert panel.error == broken["error"] and "Cannot explain this sample" in panel.status.text()
    assert panel.overlay_picture.image is None
    weights.write_bytes(good)
    again = explained(qtbot, panel, lambda: panel.method_combo.setCurrentIndex(panel.method_combo.findData(GRADCAM)))
    assert "error" not in again and panel.error is None and w.isVisible()
    assert panel.overlay_picture.image is not None

    # Without trained weights, the panel says to train first.
    panel.set_context(result, doc.project.to_dict(), None, str(tmp_path))
    panel.show_sample(k)
    assert panel.error == NO_WEIGHTS and "Train the network first" in panel.status.text()


def iris_project(path) -> None:
    g = engine.Graph()
    prev = g.add_node("Input", shape=[4])
    for layer, params in (("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 3})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    save_project(path, Project(graph=g, name="iris", data={"source": "iris"},
                               loss={"type": "CrossEntropy", "params": {}},
                               optimizer={"type": "Adam", "params": {"lr": 0.03}},
                               training={"epochs": 30, "batch_size": 16, "seed": 0}))


def test_feature_importance_and_rows_of_a_table(window, qtbot, tmp_path):
    w = window
    iris_project(tmp_path / "iris.layerloom")
    assert w.open_file(tmp_path / "iris.layerloom")
    result = train_and_evaluate(w, qtbot)
    view = w.evaluation_view
    names = list(load_data({"source": "iris"}).feature_names)

    # "Feature importance" (tables only) fills a sorted bar chart with one bar per feature.
    assert view.features_row.isVisibleTo(view)
    panel = explain_dialog(w).panel
    answer = explained(qtbot, panel, view.features_button.click)
    assert "error" not in answer, answer.get("error")
    rows = panel.importance_rows
    chart = panel.importance_chart()
    assert sorted(name for name, _, _ in chart) == sorted(names)  # one bar per feature
    assert [name for name, _, _ in chart] == [r["name"] for r in rows]  # drawn top to bottom as ranked
    values = [v for _, v, _ in chart]
    assert values == sorted(values, reverse=True)
    np.testing.assert_allclose(values, [r["importance"] for r in rows])
    np.testing.assert_allclose([s for _, _, s in chart], [r["std"] for r in rows])
    assert values[0] > 0.05 and "petal" in chart[0][0]  # the petals tell the species apart
    assert "shuffled" in panel.importance_reading.text()

    # A row of the worst table explained: bars with the feature names; no Grad-CAM without convolutions.
    table = view.worst_table
    assert table.isVisibleTo(view) and table.explain_text
    k = int(result["worst"][0])
    row = explained(qtbot, panel, lambda: table.cellDoubleClicked.emit(0, 1))
    assert "error" not in row, row.get("error")
    assert panel.index == k and panel.explanation["attributions"].shape == (4,)
    labels = panel.bar_labels()
    assert len(labels) == 4 and {label.split(" = ")[0] for label in labels} == set(names)
    assert len(panel.bars.opts["y"]) == 4
    assert panel.layer_choices() == [] and not panel.method_offered(GRADCAM)
    assert "needs a convolution layer" in panel.method_combo.itemText(panel.method_combo.findData(GRADCAM))
    # Asked for anyway (the item set from code), the engine's refusal is shown in words.
    refused = explained(qtbot, panel, lambda: panel.method_combo.setCurrentIndex(
        panel.method_combo.findData(GRADCAM)))
    assert "Grad-CAM needs a convolution layer" in refused["error"] and "Cannot explain" in panel.status.text()
    fine = explained(qtbot, panel, lambda: panel.method_combo.setCurrentIndex(
        panel.method_combo.findData(INTEGRATED_GRADIENTS)))
    assert "error" not in fine and fine["explanation"]["attributions"].shape == (4,) and w.isVisible()
    # A right-click on another row of the table offers the same.
    menu = context_menu(table, table.visualRect(table.model().index(1, 0)).center(), at=table.viewport())
    second = explained(qtbot, panel, menu.actions()[0].trigger)
    assert "error" not in second and panel.index == int(result["worst"][1])
