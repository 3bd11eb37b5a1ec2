"""Training from the real window: Train locks the model and feeds the live views, Pause/Resume/Stop work, a NaN
run shows a banner and keeps the last good weights, the trained weights go with the project, Evaluate fills the
evaluation view, and Export from the dialog is checked."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.project import load_project
from gui.app import MainWindow
from gui.document import LockedError


def small_cnn(w: MainWindow, tmp_path, epochs: int = 1, lr: float | None = None) -> None:
    """cnn_mnist on digits 28×28, saved in tmp_path so that runs go into its folder."""
    w.new_from_template("cnn_mnist")
    doc = w.document
    doc.set_section("training", {**(doc.project.training or {}), "epochs": epochs, "batch_size": 64})
    if lr is not None:
        doc.set_section("optimizer", {**doc.project.optimizer, "params": {**doc.project.optimizer["params"],
                                                                            "lr": lr}})
    assert w._save_to(tmp_path / "cnn.layerloom")


def test_train_from_the_window_feeds_the_views_and_keeps_the_weights(window, qtbot, tmp_path, monkeypatch):
    import gui.plots
    # a machine so slow to draw that the curves' next frame would come only after the run
    monkeypatch.setattr(gui.plots, "DRAW_BUDGET", 1e-6)
    monkeypatch.setattr(gui.plots, "MAX_FRAME_MS", 600_000)
    w = window
    small_cnn(w, tmp_path, epochs=2)
    kernels, finished = [], []
    w.training.run_finished.connect(finished.append)  # collected from the start: nothing is missed
    assert w.training.train()
    session = w.training.session
    session.snapshot.connect(lambda s: kernels.append(np.array(s["kernels"])) if "kernels" in s else None)
    assert w.document.locked
    with pytest.raises(LockedError):
        w.document.add_node("ReLU")
    assert not w.training.train_action.isEnabled() and w.training.stop_action.isEnabled()
    assert w.training_panel.locked
    qtbot.waitUntil(lambda: bool(finished), timeout=180_000)
    w.training.run_finished.disconnect(finished.append)
    result = finished[0]
    assert result["status"] == "finished", result["message"]
    assert not w.document.locked and w.training.train_action.isEnabled()
    curves = w.live_views.view("curves")
    steps, loss = curves.raw_steps("loss")
    assert len(steps) == result["steps_done"] and np.isfinite(loss).all()
    # the end of the run is drawn at once, not at the curves' next paced frame
    assert curves.curves()["loss_step"].xData[-1] == steps[-1]
    assert len(curves.curves()["loss_train"].xData) == result["epochs_done"]
    assert len(kernels) >= 2 and not np.array_equal(kernels[0], kernels[-1])  # the filters learned
    # The trained weights are recorded in the project, relative to its folder, and saved with it.
    weights = w.training.weights_path()
    assert weights is not None and weights.is_file() and tmp_path in weights.parents
    assert w.document.dirty
    assert w.save()
    saved = load_project(tmp_path / "cnn.layerloom")
    assert saved.extra["trained"]["weights"].startswith("runs/")
    # Evaluate fills the evaluation view with a confusion matrix over the test split.
    with qtbot.waitSignal(w.training.evaluated, timeout=60_000) as ev:
        assert w.training.evaluate()
    evaluation = ev.args[0]
    assert "error" not in evaluation, evaluation.get("error")
    assert evaluation["confusion"].sum() == evaluation["n"]
    assert w.evaluation_view.result is evaluation
    # The run is offered for comparison: checked in the Compare menu, its epoch curves are overlaid.
    curves = w.live_views.view("curves")
    runs = w.past_runs()
    assert [r.folder.resolve() for r in runs] == [Path(result["run_dir"]).resolve()]
    curves.fill_compare_menu()
    offered = [a for a in curves.compare_menu.actions() if a.isCheckable()]
    assert len(offered) == 1 and runs[0].name in offered[0].text() and "2 epochs" in offered[0].text()
    offered[0].setChecked(True)
    assert curves.overlay_names() == [runs[0].name]
    curves.flush()
    drawn = [c.item for c in curves._overlays[0]["items"]]  # noqa: SLF001 - the drawn overlay curves
    assert drawn and all(item.xData is not None and len(item.xData) == 2 for item in drawn)
    offered[0].setChecked(False)
    assert curves.overlay_names() == []
    # Reopened later, the project is trained and ready to evaluate or export.
    w.show_start_page()
    assert w.open_file(tmp_path / "cnn.layerloom")
    assert w.training.weights_path() == weights and w.training.evaluate_action.isEnabled()


def test_pause_resume_and_stop(window, qtbot, tmp_path):
    w = window
    small_cnn(w, tmp_path, epochs=20)
    with qtbot.waitSignal(w.training.run_started, timeout=60_000):
        w.training.train()
    qtbot.waitUntil(lambda: w.training.session.trainer is not None and w.training.session.trainer.global_step > 3,
                    timeout=60_000)
    w.training.pause_action.trigger()
    qtbot.waitUntil(lambda: w.training.session.status == "paused", timeout=10_000)
    step = w.training.session.trainer.global_step
    qtbot.wait(300)
    assert w.training.session.trainer.global_step <= step + 1  # at most the step in flight
    w.training.pause_action.trigger()  # resume
    qtbot.waitUntil(lambda: w.training.session.trainer.global_step > step + 2, timeout=30_000)
    with qtbot.waitSignal(w.training.run_finished, timeout=60_000) as done:
        w.training.stop_action.trigger()
    assert done.args[0]["status"] == "stopped"
    assert done.args[0]["weights"] and w.training.weights_path() is not None
    assert not w.document.locked


def test_a_nan_loss_shows_a_banner_and_keeps_the_app_and_the_graph(window, qtbot, tmp_path):
    w = window
    small_cnn(w, tmp_path, epochs=2, lr=1e8)
    graph = w.document.graph.to_dict()
    with qtbot.waitSignal(w.training.run_finished, timeout=120_000) as done:
        w.training.train()
    assert done.args[0]["status"] == "failed"
    assert w.banner.isVisible() and w.banner.level == "error"
    assert "NaN" in w.banner.text.text() or "infinite" in w.banner.text.text()
    assert "learning rate" in w.banner.text.text()
    assert w.document.graph.to_dict() == graph and not w.document.locked


def test_missing_data_is_reported_before_training(window, qtbot, tmp_path):
    w = window
    w.new_from_template("linear_regression")
    doc = w.document
    doc.set_section("data", {"source": "csv", "params": {"path": str(tmp_path / "gone.csv"), "target": "y"}})
    with qtbot.waitSignal(w.training.run_finished, timeout=60_000) as done:
        w.training.train()
    assert done.args[0]["status"] == "failed"
    assert "gone.csv" in w.banner.text.text()
    assert not w.document.locked


def test_export_from_the_dialog_is_checked(window, qtbot, tmp_path):
    w = window
    w.new_from_template("mlp_784_64_10")
    w.training.export()
    dialog = w.training.export_dialog
    with qtbot.waitSignal(dialog.export_done, timeout=120_000) as done:
        assert dialog.export_now("onnx", str(tmp_path / "mlp.onnx"))
    assert done.args[0]["ok"], done.args[0].get("error")
    assert (tmp_path / "mlp.onnx").is_file()
    assert "check passed" in dialog.result_text().lower()
    dialog.close()


@pytest.mark.parametrize("start, grows", [(110, True), (420, False)])
def test_train_brings_the_live_dock_forward_tall_enough_for_its_curves(window, qtbot, tmp_path, start, grows):
    """Train shows the Live dock at once; a bottom dock squeezed to a strip grows to a share of the window so the
    curves can be read, and one the user made taller stays as it is."""
    from PySide6.QtCore import Qt

    from gui.training_controller import LIVE_DOCK_SHARE
    w = window
    w.resize(1400, 900)
    w.show()
    small_cnn(w, tmp_path, epochs=3)
    dock = w.live_dock
    dock.raise_()
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty(), timeout=5000)
    w.resizeDocks([dock], [start], Qt.Orientation.Vertical)
    qtbot.waitUntil(lambda: abs(dock.height() - start) < 40, timeout=5000)
    w.summary_dock.raise_()  # the Live dock behind another tab of the bottom area, as the window starts
    qtbot.waitUntil(lambda: dock.visibleRegion().isEmpty(), timeout=5000)
    finished = []
    w.training.run_finished.connect(finished.append)
    assert w.training.train()
    qtbot.waitUntil(lambda: not dock.visibleRegion().isEmpty(), timeout=5000)  # in front, before the run starts
    want = LIVE_DOCK_SHARE * w.height()
    if grows:
        qtbot.waitUntil(lambda: dock.height() >= 0.9 * want, timeout=5000)
    else:
        qtbot.wait(200)
        assert abs(dock.height() - start) < 40 and dock.height() > want
    w.training.stop()
    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)
