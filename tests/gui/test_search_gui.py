"""Hyper-parameter search from the real window: rows added from the Inspector's and the Training panel's
"Add to the search" actions, ranges edited in the Search dock with undo and redo, a real seeded search on the
two-moons data (locked while it runs, the table and both plots filled, saved and shown again), Stop, "Apply the best"
as one undo step, and the engine's messages for a spec or a project that cannot search."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication

import engine
from engine.project import save_project
from engine.search import SearchError, best_trial, searches_folder, validate_spec
from gui.app import MainWindow
from gui.document import LockedError
from gui.search_view import C_HIGH, C_LOG, C_LOW, C_NAME, LOCK_REASON, SearchView


def open_moons(w: MainWindow, tmp_path, search: dict | None = None, n: int = 240):
    """Input(2) → linear_1(16) → ReLU → dropout_1 → linear_2(2) on the two-moons data, saved in tmp_path."""
    g = engine.Graph()
    prev = g.add_node("Input", shape=[2], position=(0.0, 0.0))
    layers = (("Linear", {"out_features": 16}), ("ReLU", {}), ("Dropout", {"p": 0.1}), ("Linear", {"out_features": 2}))
    for i, (layer, params) in enumerate(layers):
        nid = g.add_node(layer, params, position=(0.0, 120.0 * (i + 1)))
        g.connect(prev, nid)
        prev = nid
    project = engine.Project(graph=g, name="moons", data={"source": "moons", "params": {"n_samples": n}},
                             loss={"type": "CrossEntropy", "params": {}},
                             optimizer={"type": "Adam", "params": {"lr": 0.01}},
                             training={"epochs": 5, "batch_size": 32},
                             extra={"search": search} if search is not None else {})
    path = tmp_path / "moons.layerloom"
    save_project(path, project)
    assert w.open_file(path)
    return w.document


def pick_from_context_menu(widget, text: str) -> list[str]:
    """Right-click `widget` and choose `text` from the menu that opens; returns the menu's entries."""
    seen: list[str] = []

    def choose() -> None:
        menu = QApplication.activePopupWidget()
        seen.extend(a.text() for a in menu.actions())
        next(a for a in menu.actions() if a.text() == text).trigger()
        menu.close()
    QTimer.singleShot(0, choose)
    widget.customContextMenuRequested.emit(QPoint(4, 4))
    return seen


def targets(doc) -> list[str]:
    return [e["target"] for e in doc.project.extra["search"]["space"]]


def test_rows_come_from_the_context_actions_and_edits_undo(window, qtbot, tmp_path):
    w = window
    doc = open_moons(w, tmp_path)
    w.view.select_nodes(["linear_1"])
    action = w.inspector.search_action("out_features")
    assert action is not None and action.text() == "Add to the search"
    steps = doc.undo_stack.count()
    action.trigger()
    view: SearchView = w.search_view
    assert w.search_dock.isVisible()
    assert doc.project.extra["search"]["space"] == [
        {"target": "node:linear_1.out_features", "kind": "int", "low": 4, "high": 64, "log": True}]
    assert doc.undo_stack.count() == steps + 1  # one undo step
    w.view.select_nodes(["dropout_1"])
    w.inspector.search_action("p").trigger()
    panel = w.training_panel
    for key in (("optimizer", "params", "lr"), ("training", "batch_size"), ("optimizer", "type"),
                ("optimizer", "params", "weight_decay"), ("training", "l1")):
        panel.search_action(*key).trigger()
    assert targets(doc) == ["node:linear_1.out_features", "node:dropout_1.p", "optimizer.lr", "training.batch_size",
                            "optimizer.type", "optimizer.weight_decay", "training.l1"]
    assert doc.undo_stack.count() == steps + 7
    assert view.space_table.rowCount() == 7
    assert view.space_table.item(2, C_NAME).text() == "optimizer.lr"
    assert view.space_table.item(3, C_LOW).text() == "16, 32, 64, 128"  # a choice's values
    assert validate_spec(doc.project)["space"][4]["values"] == ["Adam", "AdamW", "SGD"]
    assert "7 parameters" in view.spec_message()
    # The same target twice, and the output layer's width, are refused in words; nothing is pushed.
    panel.search_action("optimizer", "params", "lr").trigger()
    assert "already" in w.statusBar().currentMessage()
    w.view.select_nodes(["linear_2"])
    w.inspector.search_action("out_features").trigger()
    assert "cannot be searched on its own" in w.statusBar().currentMessage()
    assert doc.undo_stack.count() == steps + 7 and len(targets(doc)) == 7
    # Editing a range in the table is one undo step; undo and redo rewrite the table.
    view.space_table.item(0, C_HIGH).setText("32")
    assert doc.project.extra["search"]["space"][0]["high"] == 32
    assert view.space_table.item(0, C_HIGH).text() == "32"
    view.space_table.item(2, C_LOG).setCheckState(Qt.CheckState.Unchecked)
    assert doc.project.extra["search"]["space"][2]["log"] is False
    view.space_table.item(3, C_LOW).setText("8, 256")
    assert doc.project.extra["search"]["space"][3]["values"] == [8, 256]
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.project.extra["search"]["space"][2]["log"] is True
    doc.undo_stack.undo()
    assert doc.project.extra["search"]["space"][0]["high"] == 64
    assert view.space_table.item(0, C_HIGH).text() == "64"
    doc.undo_stack.redo()
    assert doc.project.extra["search"]["space"][0]["high"] == 32 and view.space_table.item(0, C_HIGH).text() == "32"
    # Settings too: the method combo and the trials spin box.
    view.method_combo.setCurrentIndex(view.method_combo.findData("random"))
    view.trials_spin.setValue(7)
    assert doc.project.extra["search"]["method"] == "random" and doc.project.extra["search"]["trials"] == 7
    doc.undo_stack.undo()
    assert doc.project.extra["search"]["trials"] == 20 and view.trials_spin.value() == 20
    # Rows go as one undo step and come back with it.
    assert view.remove_rows([5, 6])
    assert len(targets(doc)) == 5 and view.space_table.rowCount() == 5
    doc.undo_stack.undo()
    assert len(targets(doc)) == 7 and view.space_table.rowCount() == 7
    # A real right-click on a setting's editor offers the entry after the text field's own ones.
    entries = pick_from_context_menu(panel.editor("training", "grad_clip"), "Add to the search")
    assert entries[-1] == "Add to the search" and any("Copy" in e for e in entries)
    assert targets(doc)[-1] == "training.grad_clip" and view.space_table.rowCount() == 8
    doc.undo_stack.undo()
    # The Add menu offers what search_targets finds, those in the search already switched off.
    view._fill_add_menu()  # noqa: SLF001 - what opening the menu runs
    offered = {a.text().split("  ")[0]: a for a in view.add_menu.actions() if not a.isSeparator() and a.text()}
    assert not offered["optimizer.lr"].isEnabled() and offered["optimizer.amsgrad"].isEnabled()
    offered["optimizer.amsgrad"].trigger()
    assert targets(doc)[-1] == "optimizer.amsgrad" and view.space_table.rowCount() == 8
    doc.undo_stack.undo()
    # Text that is no number is refused at the cell and the project keeps its value.
    before = doc.project.extra["search"]
    view.space_table.item(0, C_LOW).setText("many")
    assert "whole number" in view.spec_message() and doc.project.extra["search"] == before
    qtbot.waitUntil(lambda: view.space_table.item(0, C_LOW).text() == "4")
    # An invalid spec is kept (editing goes on) and shows the engine's own message; Start waits for a fix.
    view.space_table.item(0, C_LOW).setText("100")
    assert doc.project.extra["search"]["space"][0]["low"] == 100
    with pytest.raises(SearchError) as refused:
        validate_spec(doc.project)
    assert view.spec_message() == str(refused.value) and "above high" in view.spec_message()
    assert not view.start_button.isEnabled() and not view.start()
    view.space_table.item(0, C_LOW).setText("8")
    assert "above high" not in view.spec_message() and view.start_button.isEnabled()


def test_a_search_locks_the_model_fills_the_views_and_applies_the_best(window, qtbot, tmp_path):
    w = window
    space = [{"target": "optimizer.lr", "kind": "float", "low": 1e-3, "high": 0.1, "log": True},
             {"target": "node:linear_1.out_features", "kind": "int", "low": 4, "high": 32, "step": 4},
             {"target": "training.batch_size", "kind": "choice", "values": [16, 64]}]
    doc = open_moons(w, tmp_path, {"method": "random", "trials": 5, "seed": 3, "epochs": 1, "prune": False,
                                   "space": space})
    w.show_search()
    view: SearchView = w.search_view
    during = []
    view.trial_done.connect(lambda r: during.append((w.document.locked, w.training.train_action.isEnabled(),
                                                     view.trial_count())))
    with qtbot.waitSignal(view.search_finished, timeout=90_000) as finished:
        assert view.start()
        assert doc.locked == LOCK_REASON and view.running and w.searching
        with pytest.raises(LockedError):
            doc.add_node("ReLU")
        assert not w.training.train_action.isEnabled() and not view.start_button.isEnabled()
        assert view.stop_button.isEnabled() and not view.setup.isEnabled()
    payload = finished.args[0]
    assert payload["status"] == "finished", payload["message"]
    assert [d[0] for d in during] == [LOCK_REASON] * 5 and not any(d[1] for d in during)
    assert [d[2] for d in during] == [1, 2, 3, 4, 5]  # the table grew trial by trial
    assert not doc.locked and w.training.train_action.isEnabled() and not view.running
    trials = view.shown["trials"]
    assert view.trial_count() == 5 and sorted(t["number"] for t in trials) == [0, 1, 2, 3, 4]
    assert all(t["state"] == "complete" for t in trials)
    best = best_trial(trials, "minimize")
    assert view.trials_table.item(0, 0).text() == str(best["number"])  # best first
    values = [float(view.trials_table.item(r, 2).text()) for r in range(5)]
    assert values == sorted(values)
    # The score plot: the chosen parameter along x (log10 for a log range); parallel coordinates: a line a trial.
    plot = view.score_plot
    plot.param_combo.setCurrentIndex(plot.param_combo.findData("optimizer.lr"))
    assert plot.point_count() == 5
    lrs = sorted(math.log10(t["params"]["optimizer.lr"]) for t in trials)
    assert np.allclose(sorted(plot.scatter.xData), lrs)
    assert np.allclose(sorted(plot.scatter.yData), sorted(t["value"] for t in trials))
    curves = view.parallel.curves
    assert len(curves) == 5 and all(len(c.xData) == 4 and np.isfinite(c.yData).all() for c in curves)
    assert max(c.opts["pen"].widthF() for c in curves) > min(c.opts["pen"].widthF() for c in curves)  # the best
    # Saved with the project and offered again after reopening it.
    saved = list(searches_folder(tmp_path / "moons.layerloom").glob("*.json"))
    assert len(saved) == 1 and view.shown["path"] == str(saved[0])
    # Apply the best: one undo step that the undo restores exactly.
    before = doc.project.to_dict()
    steps = doc.undo_stack.count()
    assert view.apply_best()
    assert doc.undo_stack.count() == steps + 1
    assert doc.graph.nodes["linear_1"].params["out_features"] == best["params"]["node:linear_1.out_features"]
    assert doc.project.optimizer["params"]["lr"] == best["params"]["optimizer.lr"]
    assert doc.project.training["batch_size"] == best["params"]["training.batch_size"]
    doc.undo_stack.undo()
    assert doc.project.to_dict() == before
    doc.undo_stack.redo()
    assert doc.project.optimizer["params"]["lr"] == best["params"]["optimizer.lr"]
    doc.undo_stack.undo()
    # Apply on another row of the table.
    other = next(t for t in trials if t["number"] != best["number"])
    assert view.select_trial(other["number"]) and view.apply_button.isEnabled()
    assert view.apply_selected()
    assert doc.graph.nodes["linear_1"].params["out_features"] == other["params"]["node:linear_1.out_features"]
    doc.undo_stack.undo()
    assert doc.project.to_dict() == before
    w.show_start_page()
    assert w.open_file(tmp_path / "moons.layerloom")
    view = w.search_view
    past = view.past_searches()
    assert len(past) == 1 and [t["number"] for t in past[0]["trials"]] == [t["number"] for t in trials]
    assert view.trial_count() == 5 and view.score_plot.point_count() > 0 and len(view.parallel.curves) == 5


def test_stop_ends_a_search_cleanly(window, qtbot, tmp_path):
    w = window
    budget = 500  # far more than run before Stop
    doc = open_moons(w, tmp_path, {"method": "random", "trials": budget, "seed": 0, "epochs": 2, "prune": False,
                                   "space": [{"target": "optimizer.lr", "kind": "float", "low": 1e-3, "high": 0.1,
                                              "log": True}]})
    view = w.search_view
    with qtbot.waitSignal(view.trial_done, timeout=90_000):
        assert view.start()
    assert view.progress.value() >= 1 and "ETA" in view.status_label.text()
    with qtbot.waitSignal(view.search_finished, timeout=30_000) as finished:
        view.stop()
        assert not view.stop_button.isEnabled()
    payload = finished.args[0]
    assert payload["status"] == "stopped", payload["message"]
    done = len(payload["result"]["trials"])
    assert done >= 1 and done < budget  # at least the trial that was running, and the search did end early
    assert not doc.locked and not view.running and w.training.train_action.isEnabled()
    assert "stopped" in view.status_label.text() and view.start_button.isEnabled()
    assert len(list(searches_folder(tmp_path / "moons.layerloom").glob("*.json"))) == 1


def test_a_project_that_cannot_search_says_why(window, qtbot, tmp_path):
    w = window
    doc = open_moons(w, tmp_path, {"method": "random", "trials": 2, "epochs": 1,
                                   "space": [{"target": "optimizer.lr", "kind": "float", "low": 1e-3, "high": 0.1}]})
    doc.set_section("data", None)
    view = w.search_view
    with qtbot.waitSignal(view.search_finished, timeout=60_000) as finished:
        assert view.start()
    assert finished.args[0]["status"] == "failed"
    assert "choose a data set" in view.error_text() and view.error_label.isVisible()
    assert not doc.locked and w.training.train_action.isEnabled() and view.start_button.isEnabled()
    # A target the project no longer has: the engine's message under the table, and Start refuses.
    doc.undo_stack.undo()  # the data back
    doc.set_extra("search", {"trials": 2, "space": [{"target": "node:linear_9.out_features", "kind": "int",
                                                     "low": 4, "high": 8}]})
    assert "no node 'linear_9'" in view.spec_message() and not view.start()
