"""The training coach and the learning-rate finder in the real window, on real torch: a network built to go wrong
(a deep sigmoid stack, whose first layer gets almost no gradient) makes the coach speak in the Messages dock, in
the notice above the canvas (whose "Show" link selects the node) and in the Coach tab, which draws only when shown;
a healthy run gets no advice but its per-layer figures; Run → Find Learning Rate… draws the range test, suggests a
sensible rate and writes it as one undoable edit; a project without data says so in the dialog; Cancel stops."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QUrl

import engine
from engine.layout import layered_layout
from gui import training_worker
from gui.app import MainWindow
from gui.coach_view import advice_line, link_target, notice_html
from gui.document import Document
from gui.lr_finder_dialog import format_lr, rounded_lr

MOONS = {"source": "moons", "params": {"n_samples": 600, "noise": 0.2}, "split": {"val": 0.2, "test": 0.0}}


def chain(*layers, shape=(2,)):
    g = engine.Graph()
    prev = g.add_node("Input", shape=list(shape))
    for layer, params in layers:
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    for nid, (x, y) in layered_layout(g).items():
        g.move(nid, x, y)
    return g


def open_project(w: MainWindow, tmp_path: Path, graph, epochs: int, lr: float = 0.01, data=MOONS,
                 name: str = "coached") -> None:
    project = engine.Project(graph=graph, name=name, data=data, loss={"type": "CrossEntropy", "params": {}},
                             optimizer={"type": "Adam", "params": {"lr": lr}},
                             training={"epochs": epochs, "batch_size": 32, "device": "cpu", "seed": 0})
    path = tmp_path / f"{name}.layerloom"
    engine.save_project(path, project)
    assert w.open_file(path)


def deep_sigmoid_stack():
    layers = []
    for _ in range(10):
        layers += [("Linear", {"out_features": 32}), ("Sigmoid", {})]
    return chain(*layers, ("Linear", {"out_features": 2}))


def train(w, qtbot, timeout=120_000):
    """Start a run from the window; returns (session, result)."""
    finished = []
    w.training.run_finished.connect(finished.append)  # a tiny run may end while run_started is delivered
    try:
        with qtbot.waitSignal(w.training.run_started, timeout=timeout):
            assert w.training.train()
            session = w.training.session  # (the controller lets go of it when the run ends)
            assert not w.training.find_lr_action.isEnabled()  # the range test would train the locked network
        qtbot.waitUntil(lambda: bool(finished), timeout=timeout)
    finally:
        w.training.run_finished.disconnect(finished.append)
    result = finished[0]
    assert result["status"] == "finished", result["message"]
    assert w.training.find_lr_action.isEnabled()
    return session, result


# ---- the coach ---------------------------------------------------------------------------------------------------

def test_a_vanishing_gradient_is_told_in_messages_notice_and_coach_tab(window, qtbot, tmp_path):
    w = window
    open_project(w, tmp_path, deep_sigmoid_stack(), epochs=2)
    heard = []
    w.training.advised.connect(heard.append)
    session, result = train(w, qtbot)
    assert [(a["kind"], a["node"]) for a in heard] == [("vanishing_gradients", "linear_1")]
    advice = heard[0]
    assert advice["severity"] == "warning" and advice["step"] >= 1 and "linear_1" in advice["message"]
    assert result["coach"] == heard == w.training.advice  # the finished payload keeps them, and run.json too
    saved = json.loads((Path(result["run_dir"]) / "run.json").read_text())
    assert [a["kind"] for a in saved["coach"]] == ["vanishing_gradients"]

    # (a) the Messages dock, prefixed "Coach:", with the cure
    entries = w.messages.entries()
    assert ("warning", advice_line(advice)) in entries
    assert advice_line(advice).startswith("Coach: The first layer (linear_1)") and " Try: Use ReLU" in \
        advice_line(advice)

    # (b) the notice above the canvas: message, cure, a Show link that selects and centres the node
    banner = w.banner
    assert banner.isVisible() and banner.level == "warning"
    assert banner.title.text() == "Coach: Vanishing gradients"
    text = banner.text.text()
    assert "receives a gradient" in text and "Try:" in text and "residual" in text
    assert "href='node:linear_1'" in text and "Show linear_1" in text
    w.view.select_nodes([])
    w.view.centerOn(-5000, -5000)
    banner.text.linkActivated.emit("node:linear_1")
    assert w.view.selected_nodes() == ["linear_1"]
    item = w.view.scene().nodes["linear_1"]
    assert w.view.viewport().rect().contains(w.view.mapFromScene(item.scenePos()))  # centred on it
    banner.text.linkActivated.emit("coach:")  # "All advice" opens the Coach tab
    views = w.live_views
    assert views.currentWidget() is views.coach

    # (c) the Coach tab: drawn only once shown (the run's snapshots and the warning left it dirty)
    coach = views.coach
    assert coach.renders == 1 and views.tabText(views.indexOf(coach)) == "Coach (1)"
    shown = coach.warnings()
    assert len(shown) == 1 and shown[0]["message"] == advice["message"] and not shown[0]["cleared"]
    assert "Vanishing gradients" in coach.text() and "step" in coach.text() and advice["cure"] in coach.text()
    rows = coach.rows()
    assert rows == [f"linear_{i}" for i in range(1, 12)]  # network order
    grad, dead = coach.bar_values()
    assert np.all(np.isfinite(grad)) and grad[0] < 1e-3 * grad[-1] and np.isnan(dead).all()
    # its own Show link selects the node too
    w.view.select_nodes([])
    coach.browser.anchorClicked.emit(QUrl("node:linear_1"))
    assert w.view.selected_nodes() == ["linear_1"]
    assert session.coach is not None and session.coach.count >= 2

    # the next run starts afresh: no notice, an empty list
    open_project(w, tmp_path, chain(("Linear", {"out_features": 8}), ("ReLU", {}), ("Linear", {"out_features": 2})),
                 epochs=1, name="small")
    with qtbot.waitSignal(w.training.run_finished, timeout=120_000):
        assert w.training.train()
        assert not w.banner.isVisible()
    assert coach.warnings() == [] and views.tabText(views.indexOf(coach)) == "Coach"


def test_a_healthy_run_gets_no_advice_but_figures_per_layer(window, qtbot, tmp_path):
    w = window
    open_project(w, tmp_path, chain(("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 2})),
                 epochs=3)
    heard = []
    w.training.advised.connect(heard.append)
    snaps = []
    w.training.run_started.connect(lambda _info: w.training.session.snapshot.connect(snaps.append))
    session, result = train(w, qtbot)
    assert heard == [] and result["coach"] == []
    assert not w.banner.isVisible()
    assert not any(text.startswith("Coach:") for _level, text in w.messages.entries())
    # the snapshots carry the coach's figures as plain data, paced to a sampling interval in bounds
    payloads = [s["coach"] for s in snaps if "coach" in s]
    assert payloads and payloads[-1]["samples"] >= 2 and payloads[-1]["active"] == []
    coach = session.coach
    assert training_worker.COACH_MIN_EVERY <= coach.every <= training_worker.COACH_MAX_EVERY
    json.dumps(payloads[-1])
    views = w.live_views
    views.show_coach()
    view = views.coach
    assert view.warnings() == [] and "No problems so far" in view.text()
    assert view.rows() == ["linear_1", "relu_1", "linear_2"]
    grad, dead = view.bar_values()
    assert np.isfinite(grad[[0, 2]]).all() and (grad[[0, 2]] > 0).all() and 0 <= dead[1] < 50
    assert "relu_1" in view.describe("relu_1") and "units never on" in view.describe("relu_1")
    assert "coach" in views.tabToolTip(views.indexOf(view)).lower()


def test_the_notice_words_and_links():
    warning = {"kind": "lr_too_high", "severity": "warning", "node": None, "message": "The loss <climbs>.",
               "cure": "Lower the learning rate 10×.", "step": 7, "epoch": 1, "figures": {}}
    text = notice_html(warning, more=2)
    assert "&lt;climbs&gt;" in text and "Show" not in text and "All advice (2 more)" in text
    assert advice_line(warning) == "Coach: The loss <climbs>. Try: Lower the learning rate 10×."
    assert link_target("node:relu_1") == ("node", "relu_1") and link_target(QUrl("coach:")) == ("coach", "")
    assert link_target("https://example.org") == ("", "")
    assert format_lr(0.0071234) == "0.0071" and format_lr(3.2e-5) == "3.2e-5" and rounded_lr(0.0071234) == 0.0071


def test_a_cleared_warning_is_greyed_and_the_tab_counts_those_standing(qtbot):
    from gui.coach_view import SEVERITY_COLORS
    from gui.live_views import LiveViews, muted

    views = LiveViews()
    qtbot.addWidget(views)
    views.resize(900, 300)
    views.show()
    views.start_run({"metric": "acc", "total_steps": 100, "steps_per_epoch": 10, "sample_shape": [2]})
    coach = views.coach
    dead = {"kind": "dead_relu", "severity": "warning", "node": "relu_1", "step": 5, "epoch": 1,
            "message": "In relu_1, 100% of the units never switched on.", "cure": "Use LeakyReLU.",
            "figures": {"dead_share": 1.0}}
    views.add_advice(dead)
    assert views.tabText(views.indexOf(coach)) == "Coach (1)" and coach.renders == 0  # hidden: not drawn
    figures = {"step": 40, "epoch": 4, "every": 10, "samples": 4, "seconds": 0.01, "warnings": 1, "active": [],
               "layers": {"linear_1": {"grad_norm": 0.5, "weight_norm": 2.0, "update_ratio": 1e-3},
                          "relu_1": {"dead": 0.2, "units": 16.0, "batches": 4.0}}}
    views.add_snapshot({"step": 40, "epoch": 4, "layers": {}, "coach": figures})
    assert coach.renders == 0 and [w["cleared"] for w in coach.warnings()] == [True]
    assert views.tabText(views.indexOf(coach)) == "Coach"
    views.show_coach()
    assert coach.renders == 1 and "Dead ReLUs (cleared)" in coach.text()
    grey, amber = muted(coach.palette()).name(), SEVERITY_COLORS["warning"]
    page = coach.browser.toHtml()
    assert grey in page and amber not in page
    grad, dead_share = coach.bar_values()
    assert coach.rows() == ["linear_1", "relu_1"] and grad[0] == 0.5 and dead_share[1] == pytest.approx(20.0)
    # the same problem again: the new warning stands, the earlier one stays cleared; drawn at once while shown
    views.add_advice(dict(dead, step=60, epoch=6))
    assert [w["cleared"] for w in coach.warnings()] == [True, False] and coach.renders == 2
    assert views.tabText(views.indexOf(coach)) == "Coach (1)" and amber in coach.browser.toHtml()


# ---- the learning-rate finder --------------------------------------------------------------------------------------

def test_find_learning_rate_plots_suggests_and_uses_it_in_one_undo_step(window, qtbot):
    w = window
    w.new_from_template("mlp_mnist_128")
    doc = w.document
    run_menu = next(a.menu() for a in w.menuBar().actions() if a.text() == "&Run")
    assert w.training.find_lr_action in run_menu.actions() and w.training.find_lr_action.isEnabled()
    before = dict(doc.project.optimizer)
    dialog = w.training.find_learning_rate()
    assert dialog is w.training.lr_finder_dialog and dialog.busy and dialog.isVisible()
    assert not dialog.use_button.isEnabled() and dialog.cancel_button.isVisible()
    with qtbot.waitSignal(dialog.test_done, timeout=120_000) as done:
        pass
    payload = done.args[0]
    assert payload["ok"], payload["error"]
    result = dialog.result
    assert 1e-4 <= result["suggestion"] <= 1.0 and result["current_lr"] == 0.001
    lrs, raw, smooth = dialog.curves()
    assert len(lrs) == len(result["lrs"]) > 20 and np.allclose(lrs, result["lrs"]) and np.allclose(raw,
                                                                                                    result["losses"])
    assert np.allclose(smooth, result["smoothed"]) and lrs[0] == pytest.approx(1e-7)
    assert dialog.suggestion_line.isVisible()
    assert 10 ** dialog.suggestion_line.value() == pytest.approx(result["suggestion"])
    value = dialog.suggestion
    assert dialog.suggestion_label.text() == f"Suggested learning rate: {format_lr(value)}"
    assert result["reason"] in dialog.reason_label.text() and "Leslie Smith" in dialog.explanation.text()
    assert dialog.use_button.isEnabled() and dialog.use_button.text() == f"Use {format_lr(value)}"
    # Use: the optimizer's lr in one undo step, said in the Messages dock; undo gives the old one back
    steps = doc.undo_stack.count()
    dialog.use_button.click()
    assert doc.project.optimizer == {**before, "params": {**before["params"], "lr": value}}
    assert doc.undo_stack.count() == steps + 1
    assert w.messages.entries()[-1][1].startswith(f"Learning rate set to {format_lr(value)} (was 0.001)")
    doc.undo_stack.undo()
    assert doc.project.optimizer == before
    doc.undo_stack.redo()
    assert doc.project.optimizer["params"]["lr"] == value


def test_the_finder_says_what_is_wrong_and_cancel_stops_it(window, qtbot, tmp_path):
    w = window
    graph = chain(("Linear", {"out_features": 8}), ("ReLU", {}), ("Linear", {"out_features": 2}))
    project = engine.Project(graph=graph, name="no data", loss={"type": "CrossEntropy", "params": {}},
                             optimizer={"type": "Adam", "params": {"lr": 0.01}}, training={"epochs": 1})
    w.set_document(Document(project, None, w))
    dialog = w.training.find_learning_rate()
    with qtbot.waitSignal(dialog.test_done, timeout=60_000) as done:
        pass
    assert not done.args[0]["ok"] and "Choose a data set before training" in done.args[0]["error"]
    assert "Choose a data set" in dialog.error and dialog.error_label.isVisible()
    assert "Choose a data set" in dialog.error_label.text()
    assert dialog.result is None and not dialog.use_button.isEnabled() and not dialog.use_suggestion()
    assert dialog.curves()[0].size == 0
    dialog.reject()

    # with data, Cancel stops the test at its next step and nothing changes
    open_project(w, tmp_path, graph, epochs=1)
    before = w.document.project.to_dict()
    dialog = w.training.find_learning_rate()
    with qtbot.waitSignal(dialog.test_done, timeout=60_000) as done:
        dialog.cancel()
        assert not dialog.busy and dialog.status_label.text() == "cancelled" and "cancelled" in \
            dialog.reason_label.text()
    assert done.args[0]["cancelled"] and not done.args[0]["ok"]
    assert done.args[0]["steps_taken"] < 100  # stopped on its way, not run to the end and dropped
    assert dialog.result is None and w.document.project.to_dict() == before
    # and it can run again
    with qtbot.waitSignal(dialog.test_done, timeout=60_000) as done:
        assert dialog.start(steps=30)
    assert done.args[0]["ok"] and len(dialog.result["lrs"]) <= 30


def test_the_finder_needs_a_project_and_a_free_network(window):
    w = window
    assert w.training.find_learning_rate() is None  # the start page: no project
    assert "Open a project first" in w.messages.entries()[-1][1]
    assert not w.training.find_lr_action.isEnabled()
