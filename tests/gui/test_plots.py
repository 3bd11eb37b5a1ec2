"""Live plots on real widgets: the doubling buffer, the vectorised EMA, TrainingPlots (data in its curves, one
setData per curve per tick, display-only smoothing, log axis, overlays, theme) and the LiveViews tabs fed with
snapshot dicts built from a real tiny convolution."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtGui import QPalette

from gui.live_views import (
    DRAW_QUEUE,
    DecisionBoundaryView,
    FeatureMapsView,
    FiltersView,
    HistogramsView,
    LiveViews,
    ReconstructionView,
    mosaic,
)
from gui.plots import GrowingBuffer, MinMaxPyramid, TrainingPlots, ema, steady_range
from gui.theme import apply_theme

# ---- data in the shape the worker sends -----------------------------------------------------------------------


def steps_chunk(start: int, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + start)
    s = np.arange(start + 1, start + n + 1)
    loss = 2.3 * np.exp(-s / 200.0) + 0.05 + rng.uniform(0.0, 0.1, n)
    return {"step": s, "epoch": np.ones(n), "loss": loss, "acc": np.clip(1 - loss / 2.4, 0, 1),
            "lr": np.full(n, 1e-3)}


def epoch_logs(epoch: int, step: int, val: bool = True) -> dict[str, float]:
    loss = 2.0 / epoch
    logs = {"epoch": float(epoch), "step": float(step), "loss": loss, "acc": 1 - loss / 3, "lr": 1e-3, "time": 1.5}
    if val:
        logs.update(val_loss=loss * 1.1, val_acc=1 - loss / 2.8)
    return logs


def layer_stats(t: torch.Tensor, grad: torch.Tensor | None) -> dict:
    w = t.detach().numpy().ravel()
    hist, edges = np.histogram(w, bins=30)
    entry = {"norm": float(np.linalg.norm(w)), "hist": hist, "edges": edges}
    if grad is not None:
        g = grad.numpy().ravel()
        gh, ge = np.histogram(g, bins=30)
        entry.update(grad_norm=float(np.linalg.norm(g)), grad_hist=gh, grad_edges=ge)
    return entry


def conv_snapshot(conv: torch.nn.Conv2d, step: int) -> dict:
    """A snapshot of a real conv layer after one backward pass on a digit-sized input."""
    torch.manual_seed(step)
    x = torch.randn(2, conv.in_channels, 28, 28)
    conv.zero_grad()
    out = conv(x)
    out.square().mean().backward()
    layers = {"conv1": {"weight": layer_stats(conv.weight, conv.weight.grad),
                        "bias": layer_stats(conv.bias, conv.bias.grad)}}
    return {"step": step, "epoch": 1, "layers": layers, "kernels": conv.weight.detach().numpy().copy(),
            "kernel_layer": "conv1", "feature_layer": "conv1", "features": out[0].detach().numpy().copy()}


@pytest.fixture
def conv():
    torch.manual_seed(0)
    return torch.nn.Conv2d(1, 8, 3)


@pytest.fixture
def restore_theme(qapp):
    palette, style = qapp.palette(), qapp.style().name()
    yield
    qapp.setStyle(style)
    qapp.setPalette(palette)


# ---- buffer and smoothing -------------------------------------------------------------------------------------


def test_growing_buffer_doubles_and_its_view_shares_memory():
    buf = GrowingBuffer(4)
    buf.append(np.arange(3))
    assert buf.capacity == 4 and len(buf) == 3
    buf.append(np.arange(3, 6))
    assert buf.capacity == 8
    buf.append(np.arange(6, 30))  # grows straight past 16 to 32 in one append
    assert buf.capacity == 32 and len(buf) == 30
    np.testing.assert_array_equal(buf.view(), np.arange(30))
    view = buf.view()
    assert np.shares_memory(view, buf.view())
    view[0] = 99.0
    assert buf.view()[0] == 99.0  # a view, not a copy
    buf.append(7.5)
    assert buf.last() == 7.5
    buf.clear()
    assert len(buf) == 0 and buf.capacity == 32


def test_ema_matches_the_recursion_in_chunks_and_skips_non_finite_values():
    rng = np.random.default_rng(1)
    x = rng.normal(size=5000) + 3.0
    for alpha in (0.0, 0.3, 0.9, 0.99):
        ref = np.empty_like(x)
        prev = x[0]
        for i, v in enumerate(x):
            prev = alpha * prev + (1 - alpha) * v
            ref[i] = prev
        np.testing.assert_allclose(ema(x, alpha), ref, rtol=1e-9, atol=1e-9)
        first = ema(x[:1234], alpha)
        rest = ema(x[1234:], alpha, initial=first[-1])
        np.testing.assert_allclose(np.concatenate([first, rest]), ref, rtol=1e-9, atol=1e-9)
    y = np.array([1.0, np.nan, 3.0, np.inf, 5.0])
    out = ema(y, 0.5)
    assert np.isnan(out[1]) and np.isinf(out[3])
    np.testing.assert_allclose(out[[0, 2, 4]], ema(np.array([1.0, 3.0, 5.0]), 0.5))


def test_min_max_pyramid_grows_in_chunks_and_keeps_the_envelope():
    rng = np.random.default_rng(2)
    y = rng.normal(size=100_003).cumsum()
    y[5000] = 1e3  # a spike that must survive any reduction
    x = np.arange(1, len(y) + 1, dtype=np.float64)
    whole, chunked = MinMaxPyramid(), MinMaxPyramid()
    whole.extend(y)
    for end in range(1000, len(y) + 1000, 1000):
        chunked.extend(y[:min(end, len(y))])
    assert len(whole.levels) == len(chunked.levels) == 16
    for (a_lo, a_hi), (b_lo, b_hi) in zip(whole.levels, chunked.levels):
        np.testing.assert_array_equal(a_lo.view(), b_lo.view())
        np.testing.assert_array_equal(a_hi.view(), b_hi.view())
    ex, ey = whole.envelope(x, y, 0, len(y), columns=500)
    assert len(ey) <= 2 * 4 * 500 + 2 and ey.max() == 1e3 and ey.min() == y.min()
    assert np.all(np.diff(ex) >= 0) and ex[0] == 1 and ex[-1] <= len(y)
    lo, hi = 40_000, 45_000
    ex, ey = whole.envelope(x, y, lo, hi, columns=500)
    assert ey.max() == y[lo:hi].max() and ey.min() == y[lo:hi].min()
    ex, ey = whole.envelope(x, y, lo, lo + 1500, columns=500)
    np.testing.assert_array_equal(ey, y[lo:lo + 1500])  # few points: drawn as they are


# ---- TrainingPlots --------------------------------------------------------------------------------------------


@pytest.fixture
def plots(qtbot):
    w = TrainingPlots()
    qtbot.addWidget(w)
    w.resize(900, 600)
    w.show()
    w.start_run({"metric": "accuracy", "total_steps": 400, "steps_per_epoch": 100})
    return w


def feed(plots: TrainingPlots, epochs: int = 2, per_epoch: int = 100, chunk: int = 25) -> None:
    for e in range(epochs):
        for start in range(e * per_epoch, (e + 1) * per_epoch, chunk):
            plots.add_steps(steps_chunk(start, chunk))
        plots.add_epoch(epoch_logs(e + 1, (e + 1) * per_epoch))


def test_curves_hold_the_data_after_a_tick(plots, qtbot):
    feed(plots)
    ticks = plots.updates
    qtbot.waitUntil(lambda: plots.updates > ticks, timeout=2000)  # the timer draws without being asked
    curves = plots.curves()
    assert len(curves["loss_step"].xData) == 200 and curves["loss_step"].xData[-1] == 200
    assert len(curves["metric_step"].yData) == 200 and len(curves["lr"].xData) == 200
    x, y = curves["loss_train"].getData()
    np.testing.assert_array_equal(x, [100, 200])
    np.testing.assert_allclose(y, [2.0, 1.0])
    assert len(curves["loss_val"].xData) == 2 and len(curves["metric_val"].xData) == 2
    assert "epoch 2 / 4" in plots.status_label.text() and "best val acc" in plots.status_label.text()
    # the per-step curves reduce what they draw to the view: clip, peak downsampling, no finite pass
    opts = curves["loss_step"].opts
    assert opts["clipToView"] and opts["autoDownsample"] and opts["downsampleMethod"] == "peak"
    assert opts["skipFiniteCheck"]


def test_one_set_data_per_curve_per_tick(plots):
    calls: dict[str, int] = {}
    for name, item in plots.curves().items():
        original = item.setData

        def counting(*args, _name=name, _original=original, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        item.setData = counting
    for start in range(0, 200, 10):  # 20 chunks between two ticks
        plots.add_steps(steps_chunk(start, 10))
    plots.add_epoch(epoch_logs(1, 200))
    plots.flush()
    assert calls == {"loss_step": 1, "loss_train": 1, "loss_val": 1, "metric_step": 1, "metric_train": 1,
                     "metric_val": 1, "lr": 1}
    calls.clear()
    assert plots.flush() == 0 and calls == {}  # nothing new: nothing drawn
    plots.add_steps(steps_chunk(200, 10))
    plots.flush()
    assert calls == {"loss_step": 1, "metric_step": 1, "lr": 1}


def test_steady_range_keeps_a_range_that_holds_the_data():
    assert steady_range(0.05, 2.3) == (0.0, 3.0)  # on a 1-2-5 grid around the data
    assert steady_range(0.1, 0.99) == (0.0, 1.0)
    assert steady_range(0.05, 2.3, (0.0, 2.5)) == (0.0, 2.5)  # still holds the data: kept
    lo, hi = steady_range(0.05, 0.6, (0.0, 2.5))  # more than three times too wide: a closer one
    assert lo <= 0.05 and 0.6 <= hi < 1.0
    assert steady_range(-0.5, 0.01, (0.0, 2.5))[0] <= -0.5  # data below it: a new one
    assert steady_range(1e-3, 1e-3) == (0.0, 1.5e-3)  # one value (a constant learning rate)


def test_plots_show_the_whole_run_and_rescale_only_when_the_data_outgrow_the_axes(plots, qtbot):
    plots.start_run({"metric": "acc", "total_steps": 1000, "steps_per_epoch": 100})
    plots.add_steps(steps_chunk(0, 100))
    plots.flush()
    box = plots.loss_plot.getViewBox()
    (x0, x1), (y0, y1) = box.viewRange()
    assert x0 <= 0 and 1000 <= x1 < 1050  # the run's length, known from the start: progress reads off the axis
    raw_y = plots.raw_steps("loss")[1]
    assert y0 <= raw_y.min() and raw_y.max() <= y1
    ranges = [box.viewRange()]
    for start in range(100, 1000, 50):  # the loss falls from 2.4 to 0.05
        plots.add_steps(steps_chunk(start, 50))
        plots.flush()
        (x0, x1), (y0, y1) = box.viewRange()
        assert y0 <= plots.raw_steps("loss")[1].min() and x1 >= 1000  # every value in view, all the time
        if box.viewRange() != ranges[-1]:
            ranges.append(box.viewRange())
    assert len(ranges) <= 3  # 18 frames, at most two rescales: the axes are not redrawn at every frame
    plots.add_steps({"step": np.array([1001]), "epoch": np.ones(1), "loss": np.array([9.0]),
                     "acc": np.array([0.5]), "lr": np.array([1e-3])})
    plots.flush()
    assert box.viewRange()[1][1] >= 9.0  # a value above them: the axis grows to show it
    assert plots.metric_plot.getViewBox().viewRange()[0] == box.viewRange()[0]  # x is shared


def test_a_zoom_with_the_wheel_stays_until_the_auto_button(plots, qtbot):
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    plots.start_run({"metric": "acc", "total_steps": 1000, "steps_per_epoch": 100})
    plots.add_steps(steps_chunk(0, 200))
    plots.flush()
    box = plots.loss_plot.getViewBox()
    before = box.viewRange()
    view = plots.graphics
    centre = view.mapFromScene(box.mapToScene(box.boundingRect().center()))
    wheel = QWheelEvent(QPointF(centre), QPointF(view.viewport().mapToGlobal(centre)), QPoint(0, 0),
                        QPoint(0, 120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), wheel)
    zoomed = box.viewRange()
    assert zoomed[0][1] - zoomed[0][0] < before[0][1] - before[0][0]  # the wheel zoomed in
    assert plots.following()[:2] == (False, False)
    plots.add_steps(steps_chunk(200, 100))
    plots.flush()
    assert box.viewRange() == zoomed  # new data do not undo the user's zoom
    plots.loss_plot.autoBtn.clicked.emit(plots.loss_plot.autoBtn)  # pyqtgraph's "A" button in the plot's corner
    assert plots.following()[:2] == (True, True)
    (x0, x1), _y = box.viewRange()
    assert x0 <= 0 and x1 >= 1000


def test_long_curves_draw_a_few_points_per_pixel_and_follow_the_view(plots):
    for start in range(0, 200_000, 5000):
        plots.add_steps(steps_chunk(start, 5000))
    plots.flush()
    step = plots.curves()["loss_step"]
    raw_x, raw_y = plots.raw_steps("loss")
    assert len(step.xData) < 10_000
    assert step.yData.max() == raw_y.max() and step.yData.min() == raw_y.min()
    plots.loss_plot.setXRange(100_000, 100_400, padding=0)  # zoomed in: the raw points there come back
    window = (raw_x >= 100_000) & (raw_x <= 100_400)
    assert np.isin(raw_x[window], step.xData).all()
    assert np.isin(raw_y[window], step.yData).all()
    drawn = step.xData
    plots.loss_plot.setXRange(100_010, 100_410, padding=0)  # a small pan stays within what was drawn
    assert step.xData is drawn


def test_smoothing_changes_what_is_shown_not_what_is_stored(plots):
    feed(plots, epochs=1)
    plots.flush()
    raw = plots.raw_steps("loss")[1].copy()
    step = plots.curves()["loss_step"]
    np.testing.assert_array_equal(step.yData, raw)
    plots.smoothing_slider.setValue(90)  # the slider drives it like the spin box
    assert plots.smoothing() == 0.9 and plots.smoothing_spin.value() == 0.9
    plots.flush()
    shown = step.yData
    assert not np.allclose(shown, raw)
    np.testing.assert_allclose(shown, ema(raw, 0.9))
    assert np.std(np.diff(shown)) < np.std(np.diff(raw)) / 3
    np.testing.assert_array_equal(plots.raw_steps("loss")[1], raw)
    np.testing.assert_array_equal(plots.curves()["loss_shadow"].yData, raw)  # raw stays faintly behind
    # chunks that arrive later are smoothed on from where the average stood
    plots.add_steps(steps_chunk(100, 30))
    plots.flush()
    np.testing.assert_allclose(step.yData, ema(plots.raw_steps("loss")[1], 0.9))
    plots.set_smoothing(0.0)
    plots.flush()
    np.testing.assert_array_equal(step.yData, plots.raw_steps("loss")[1])
    assert plots.curves()["loss_shadow"].xData is None


def test_log_scale_toggles(plots):
    feed(plots, epochs=1)
    plots.flush()
    plots.log_check.setChecked(True)
    assert plots.log_scale()
    plots.flush()
    assert plots.curves()["loss_step"].opts["logMode"] == [False, True] or \
        tuple(plots.curves()["loss_step"].opts["logMode"]) == (False, True)
    x, y = plots.curves()["loss_train"].getData()
    np.testing.assert_allclose(y, np.log10([2.0]))  # shown as log10, stored as is
    assert plots.epoch_series("loss")[1][0] == 2.0
    plots.set_log_scale(False)
    assert not plots.log_check.isChecked()
    assert tuple(plots.curves()["loss_step"].opts["logMode"]) == (False, False)


def test_regression_runs_show_mae_and_offer_r2(plots):
    plots.start_run({"metric": "regression", "total_steps": 100, "steps_per_epoch": 50})
    s = steps_chunk(0, 50)
    plots.add_steps({"step": s["step"], "loss": s["loss"], "mae": s["loss"] / 2, "lr": s["lr"]})
    plots.add_epoch({"epoch": 1.0, "loss": 0.5, "mae": 0.3, "r2": 0.8, "val_loss": 0.6, "val_mae": 0.35,
                     "val_r2": 0.75, "lr": 1e-3, "time": 1.0})
    plots.flush()
    assert plots.current_metric() == "mae"
    assert [plots.metric_combo.itemData(i) for i in range(plots.metric_combo.count())] == ["mae", "r2"]
    plots.set_metric("r2")
    plots.flush()
    np.testing.assert_allclose(plots.curves()["metric_val"].yData, [0.75])
    assert plots.curves()["metric_step"].xData is None  # R² has no per-step figure


def test_overlays_of_past_runs(plots):
    feed(plots, epochs=2)
    history = {"epochs": [{"epoch": e, "loss": 1.5 / e, "val_loss": 1.7 / e, "acc": 0.5 + e / 10,
                           "val_acc": 0.45 + e / 10} for e in (1, 2, 3)]}
    before = len(plots.loss_plot.listDataItems())
    plots.add_overlay("run 1", history)
    plots.add_overlay("run 2", {"epochs": history["epochs"][:2]})
    plots.flush()
    items = plots.loss_plot.listDataItems()
    assert len(items) == before + 4
    overlay = items[before]
    np.testing.assert_array_equal(overlay.xData, [100, 200, 300])  # epochs at steps_per_epoch × epoch
    assert overlay.opts["pen"].style() != items[0].opts["pen"].style()  # dashed
    assert overlay.opts["pen"].color() != items[before + 2].opts["pen"].color()  # a colour per run
    assert plots.overlay_names() == ["run 1", "run 2"]
    legend = [label.text for _sample, label in plots.loss_plot.legend.items]
    assert "run 1 · train" in legend and "run 2 · val" in legend
    plots.start_run({"metric": "accuracy", "steps_per_epoch": 100})  # a new run keeps them
    assert len(plots.loss_plot.listDataItems()) == before + 4
    plots.clear_overlays()
    assert len(plots.loss_plot.listDataItems()) == before and plots.overlay_names() == []


def test_compare_menu_offers_past_runs_from_disk(plots, tmp_path):
    from engine.runs import list_runs, write_history
    project = tmp_path / "p.layerloom"
    project.write_text("{}")
    runs = tmp_path / "runs"
    good, broken = runs / "2026-11-01_10-00-00", runs / "2026-11-02_10-00-00"
    good.mkdir(parents=True)
    write_history(good, {"epochs": [epoch_logs(1, 100), epoch_logs(2, 200)], "steps": []})
    broken.mkdir(parents=True)
    (broken / "history.json").write_text('{"epochs": [')  # cut off by a crash
    (broken / "settings.json").write_text("{}")
    plots.fill_compare_menu()  # no provider yet: one disabled line that says why
    [only] = plots.compare_menu.actions()
    assert not only.isEnabled() and "No past runs" in only.text()
    plots.runs_provider = lambda: list_runs(project)
    plots.fill_compare_menu()
    offered = [a for a in plots.compare_menu.actions() if a.isCheckable()]
    assert [a.text().split(" · ")[0] for a in offered] == [broken.name, good.name]  # newest first
    assert "val_acc" in offered[1].text()
    offered[1].setChecked(True)
    assert plots.overlay_names() == [good.name]
    offered[0].setChecked(True)  # the broken one: a message, no overlay, nothing else lost
    assert plots.overlay_names() == [good.name] and broken.name in plots.status_label.text()
    plots.fill_compare_menu()  # reopened: the overlaid run is ticked
    ticked = [a.text().split(" · ")[0] for a in plots.compare_menu.actions() if a.isChecked()]
    assert ticked == [good.name]
    clear = [a for a in plots.compare_menu.actions() if a.text() == "Clear comparison"][0]
    clear.trigger()
    assert plots.overlay_names() == []


def test_plots_follow_the_theme(plots, qapp, qtbot, restore_theme):
    def background():
        return plots.graphics.backgroundBrush().color()

    for mode in ("light", "dark"):
        apply_theme(qapp, mode)
        qtbot.waitUntil(lambda: background() == qapp.palette().color(QPalette.ColorRole.Base), timeout=2000)
    assert background().lightness() < 60
    axis = plots.loss_plot.getAxis("left")
    assert axis.textPen().color().lightness() > 120  # light text on the dark plot


# ---- live views -----------------------------------------------------------------------------------------------


def test_mosaic_lays_tiles_out_row_by_row():
    tiles = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    m = mosaic(tiles, cols=3, gap=1)
    assert m.shape == (2 * 3 - 1, 3 * 4 - 1)
    np.testing.assert_array_equal(m[0:2, 4:7], tiles[1])
    np.testing.assert_array_equal(m[3:5, 0:3], tiles[3])
    assert np.isnan(m[2]).all() and np.isnan(m[3:5, 8:11]).all()  # gaps and the empty sixth cell


def drawn(qtbot, view) -> None:
    """Wait for a live view's drawing of data that came within its drawing budget of the last one."""
    qtbot.waitUntil(lambda: not view.render_pending(), timeout=3000)


def test_filters_update_in_place(qtbot, conv):
    view = FiltersView()
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    view.set_snapshot(conv_snapshot(conv, 10))
    assert view.render_pending() and view.renders == 0  # drawn at the next turn of the event loop
    drawn(qtbot, view)
    item = view.canvas.image
    first = view.mosaic_image().copy()
    assert first.dtype == np.uint8 and first.ndim == 3
    assert "conv1 · 8 filters of 1×3×3 · step 10" in view.detail_label.text()
    with torch.no_grad():
        conv.weight.mul_(-1.0).add_(0.05)
    view.set_snapshot(conv_snapshot(conv, 20))
    # right after a drawing, the next waits for the view's drawing budget, then comes by itself
    assert view.render_pending() and view.renders == 1
    qtbot.waitUntil(lambda: view.renders == 2, timeout=3000)
    assert view.canvas.image is item and view.canvas.box.addedItems == [item]
    assert not np.array_equal(view.mosaic_image(), first)
    view.per_tile_check.setChecked(False)  # one scale for all: another picture of the same kernels
    assert view.renders == 3


def test_a_snapshot_reaching_several_views_is_drawn_one_view_per_turn(qtbot, conv):
    """Every view gets a snapshot at the same moment; each draws at its own turn of the event loop, so the
    window serves the user between two views' drawings instead of after all of them."""
    views = [FiltersView(), FeatureMapsView(), HistogramsView()]
    for v in views:
        qtbot.addWidget(v)
        v.resize(500, 400)
        v.show()
    snap = conv_snapshot(conv, 10)
    for v in views:
        v.set_snapshot(snap)
    assert all(v.render_pending() and v.renders == 0 for v in views)
    DRAW_QUEUE._next()  # one turn: the first view in line
    assert [v.renders for v in views] == [1, 0, 0] and views[1].render_pending()
    for v in views:
        drawn(qtbot, v)
    assert [v.renders for v in views] == [1, 1, 1]
    views[2].set_snapshot(conv_snapshot(conv, 11))  # within its budget: waits, then comes by itself
    views[2].draw_pending()  # the end of a run draws what waits at once
    assert views[2].renders == 2 and not views[2].render_pending()


def test_filters_show_three_channel_kernels_in_colour_and_conv1d_as_strips(qtbot):
    view = FiltersView()
    qtbot.addWidget(view)
    view.show()
    torch.manual_seed(1)
    rgb = torch.nn.Conv2d(3, 6, 5).weight.detach().numpy()
    view.set_snapshot({"step": 1, "kernels": rgb, "kernel_layer": "c"})
    drawn(qtbot, view)
    assert view.channel_combo.currentData() == "rgb" and view.channel_combo.isVisibleTo(view)
    image = view.mosaic_image()
    assert image.shape[2] == 3 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    view.channel_combo.setCurrentIndex(view.channel_combo.findData("mean"))
    assert not np.array_equal(view.mosaic_image(), image)
    strips = torch.nn.Conv1d(2, 4, 7).weight.detach().numpy()
    view.set_snapshot({"step": 2, "kernels": strips, "kernel_layer": "c1d"})
    drawn(qtbot, view)
    assert "4 filters of 2×7" in view.detail_label.text()


def test_feature_maps_show_one_tile_per_channel_and_ask_for_other_layers(qtbot, conv):
    view = FeatureMapsView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    view.start_run(["conv1", "relu1", "fc"], samples=100)
    snap = conv_snapshot(conv, 5)
    view.set_snapshot(snap)
    drawn(qtbot, view)
    assert view.channel_count() == 8 and view._grid.n == 8
    assert "8 maps of 26×26" in view.detail_label.text()
    with qtbot.waitSignal(view.feature_request) as blocker:
        view.layer_combo.setCurrentText("relu1")
    assert blocker.args == ["relu1", 0]
    with qtbot.waitSignal(view.feature_request) as blocker:
        view.sample_spin.setValue(7)
    assert blocker.args == ["relu1", 7]
    assert view.sample_spin.maximum() == 99
    view.set_snapshot({"step": 6, "feature_layer": "fc", "features": np.linspace(-1, 1, 10)})
    assert view.layer_combo.currentText() == "fc"
    np.testing.assert_allclose(view.bars.opts["height"], np.linspace(-1, 1, 10))
    view.set_snapshot({"step": 7, "feature_layer": "conv1d", "features": np.ones((4, 50))})
    assert view.heat.image.shape[:2] == (4, 50)


def test_histograms_show_bars_norms_and_a_table(qtbot, conv):
    view = HistogramsView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    first = conv_snapshot(conv, 10)
    view.set_snapshot(first)
    with torch.no_grad():
        conv.weight.mul_(1.5)
    second = conv_snapshot(conv, 20)
    view.set_snapshot(second)
    drawn(qtbot, view)
    weights, grads = view.bar_heights()
    np.testing.assert_array_equal(weights, second["layers"]["conv1"]["weight"]["hist"])
    np.testing.assert_array_equal(grads, second["layers"]["conv1"]["weight"]["grad_hist"])
    x, y = view.weight_norm_curve.getData()
    np.testing.assert_array_equal(x, [10, 20])
    assert y[1] == pytest.approx(1.5 * y[0], rel=1e-5)
    assert view.table.rowCount() == 2 and view.table.item(0, 1).text() == "weight"
    view.kind_combo.setCurrentText("bias")
    np.testing.assert_array_equal(view.bar_heights()[0], second["layers"]["conv1"]["bias"]["hist"])


def _view_range(plot) -> tuple[tuple[float, float], tuple[float, float]]:
    (x0, x1), (y0, y1) = plot.getViewBox().viewRange()
    return (x0, x1), (y0, y1)


def test_histogram_axes_hold_the_data_and_stay_while_they_still_fit(qtbot, conv):
    """Each histogram keeps its range from one snapshot to the next while the bars still fit it (pyqtgraph
    then redraws the bars, not the axes); weights that grow past it get a new, wider range."""
    view = HistogramsView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    view.set_snapshot(conv_snapshot(conv, 10))
    drawn(qtbot, view)
    first = _view_range(view.weight_plot)
    edges = view._layers["conv1"]["weight"]["edges"]
    heights = view.bar_heights()[0]
    assert first[0][0] <= edges[0] and edges[-1] <= first[0][1]  # every bar on screen
    assert first[1][0] <= 0 and heights.max() <= first[1][1]
    with torch.no_grad():
        conv.weight.mul_(1.02)  # a small step of training
    view.set_snapshot(conv_snapshot(conv, 20))
    drawn(qtbot, view)
    assert _view_range(view.weight_plot) == first
    with torch.no_grad():
        conv.weight.mul_(4.0)  # the weights spread four times as wide
    view.set_snapshot(conv_snapshot(conv, 30))
    drawn(qtbot, view)
    wider = _view_range(view.weight_plot)
    edges = view._layers["conv1"]["weight"]["edges"]
    assert wider[0][1] - wider[0][0] > 2 * (first[0][1] - first[0][0])
    assert wider[0][0] <= edges[0] and edges[-1] <= wider[0][1]
    x, y = view.weight_norm_curve.getData()  # the norms over time are on screen too
    (nx0, nx1), (ny0, ny1) = _view_range(view.norm_plot)
    assert nx0 <= 0 and x[-1] <= nx1 and ny0 <= y.min() and y.max() <= ny1


def test_decision_boundary_draws_grid_and_points(qtbot):
    view = DecisionBoundaryView()
    qtbot.addWidget(view)
    view.resize(600, 500)
    view.show()
    xs, ys = np.linspace(-2, 3, 50), np.linspace(-1, 1, 40)
    gx, gy = np.meshgrid(xs, ys)
    grid = (1 / (1 + np.exp(-(gx - gy) * 3))).astype(np.float32)  # (40, 50): rows run up the y axis
    rng = np.random.default_rng(0)
    points = rng.uniform([-2, -1], [3, 1], size=(120, 2)).astype(np.float32)
    labels = (points[:, 0] > points[:, 1]).astype(np.int64)
    view.set_snapshot({"step": 3, "boundary": {"extent": [-2, 3, -1, 1], "grid": grid, "n_classes": 2,
                                               "points": points, "labels": labels}})
    drawn(qtbot, view)
    assert view.image.image.shape == (40, 50, 3)
    rect = view.image.mapRectToParent(view.image.boundingRect())
    dx, dy = 5 / 49, 2 / 39  # values sit on the extent's corners: cells reach half a step beyond
    assert (rect.left(), rect.right(), rect.top(), rect.bottom()) == pytest.approx(
        (-2 - dx / 2, 3 + dx / 2, -1 - dy / 2, 1 + dy / 2))
    assert view.point_count() == 120
    assert [len(s.data) for s in view.scatters] == [int((labels == 0).sum()), int((labels == 1).sum())]
    # several classes: a tint per region, more scatter items, the same image
    image = view.image
    classes = np.clip((gx + 2).round(), 0, 3).astype(np.float32)
    view.set_snapshot({"step": 4, "boundary": {"extent": [-2, 3, -1, 1], "grid": classes, "n_classes": 4,
                                               "points": points, "labels": labels % 4}})
    drawn(qtbot, view)
    assert view.image is image and len(view.scatters) == 4
    assert len(np.unique(view.image.image.reshape(-1, 3), axis=0)) == 4


def test_reconstructions_put_inputs_above_outputs(qtbot):
    view = ReconstructionView()
    qtbot.addWidget(view)
    view.resize(700, 400)
    view.show()
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0, 1, size=(6, 1, 12, 12)).astype(np.float32)
    view.set_snapshot({"step": 9, "reconstruction": {"inputs": inputs, "outputs": inputs * 0.5}})
    drawn(qtbot, view)
    image = view.mosaic_image()
    assert image.ndim == 3 and image.shape[0] > 2 * 12
    assert "6 samples" in view.detail_label.text() and "MSE" in view.detail_label.text()
    assert sum(label.isVisible() for label in view._labels) >= 2


def test_live_views_disable_the_tabs_that_do_not_apply(qtbot, conv):
    views = LiveViews()
    qtbot.addWidget(views)
    views.resize(1000, 650)
    views.show()
    views.start_run({"metric": "accuracy", "total_steps": 200, "steps_per_epoch": 100, "input_shape": [1, 28, 28],
                     "task": "classification", "conv_layers": ["conv1"]})
    assert views.is_applicable("curves") and views.is_applicable("filters")
    assert not views.is_applicable("boundary") and not views.is_applicable("reconstructions")
    index = views.indexOf(views.boundary)
    assert "2-D input" in views.tabToolTip(index)
    views.add_steps(steps_chunk(0, 50))
    views.add_epoch(epoch_logs(1, 50))
    views.add_snapshot(conv_snapshot(conv, 50))
    views.setCurrentWidget(views.filters)
    assert views.filters.renders >= 1 and views.filters.message() == ""
    # a view off screen keeps the data and draws when shown
    before = views.histograms.renders
    views.add_snapshot(conv_snapshot(conv, 60))
    assert views.histograms.renders == before
    views.setCurrentWidget(views.histograms)
    assert views.histograms.renders == before + 1

    # nothing known up front: the first snapshot decides, and data arriving later switch a view back on
    views.start_run({"metric": "accuracy"})
    assert all(views.is_applicable(k) for k in ("filters", "boundary", "reconstructions"))
    snap = conv_snapshot(conv, 1)
    del snap["kernels"]
    views.add_snapshot(snap)
    assert not views.is_applicable("filters") and not views.is_applicable("boundary")
    assert views.is_applicable("features") and views.is_applicable("histograms")
    views.add_snapshot({"step": 2, "epoch": 1, "layers": {}, "reconstruction": {
        "inputs": np.zeros((2, 1, 8, 8), np.float32), "outputs": np.zeros((2, 1, 8, 8), np.float32)}})
    assert views.is_applicable("reconstructions")


def test_live_views_read_the_workers_payloads(qtbot, conv):
    """The shapes gui/training_worker.py sends: "started" names the sample shape, the convolution shown (None
    when there is none), the classes; a snapshot carries the input array as "sample" beside "sample_index"."""
    views = LiveViews()
    qtbot.addWidget(views)
    views.show()
    views.start_run({"metric": "acc", "task": "binary", "steps_per_epoch": 10, "total_steps": 100,
                     "sample_shape": [2], "image_shape": None, "kernel_layer": None, "feature_layer": None,
                     "layers": ["linear_1", "linear_2"], "classes": ["inside", "outside"], "train_samples": 160,
                     "val_samples": 40})
    assert views.is_applicable("boundary") and not views.is_applicable("filters")
    assert not views.is_applicable("reconstructions")
    assert views.features.sample_spin.maximum() == 39
    assert [views.features.layer_combo.itemText(i) for i in range(2)] == ["linear_1", "linear_2"]
    views.add_snapshot({"step": 1, "epoch": 1, "layers": {}})  # no convolution: no layer shown by default
    assert views.is_applicable("features") and "Choose a layer" in views.features.message()
    xs = np.linspace(-1, 1, 20)
    gx, gy = np.meshgrid(xs, xs)
    grid = (gx > gy).astype(np.float32)
    grid.flags.writeable = False  # the worker freezes what it sends
    views.add_snapshot({"step": 10, "epoch": 1, "layers": {}, "feature_layer": "linear_1",
                        "features": np.arange(16, dtype=np.float32), "sample": np.array([0.1, 0.2], np.float32),
                        "sample_index": 3, "view_error": "",
                        "boundary": {"extent": [-1, 1, -1, 1], "grid": grid, "kind": "probability", "n_classes": 2,
                                     "points": np.zeros((4, 2), np.float32), "labels": np.array([0, 1, 1, 0])}})
    assert views.features.sample_spin.value() == 3
    views.setCurrentWidget(views.boundary)
    assert [label.text for _sample, label in views.boundary.legend.items] == ["inside", "outside"]
    assert "probability of outside" in views.boundary.detail_label.text()
    views.start_run({"metric": "mae", "task": "reconstruction", "sample_shape": [784], "image_shape": [1, 28, 28],
                     "kernel_layer": "conv2d_1"})
    assert views.is_applicable("reconstructions") and views.is_applicable("filters")
    assert not views.is_applicable("boundary")
    flat = np.random.default_rng(0).uniform(size=(4, 784)).astype(np.float32)
    views.add_snapshot({"step": 5, "epoch": 1, "layers": {}, "reconstruction": {"inputs": flat, "outputs": flat}})
    views.setCurrentWidget(views.reconstructions)
    assert views.reconstructions.mosaic_image().shape[1] >= 4 * 28  # drawn as 28×28 images


def test_live_views_forward_feature_requests(qtbot):
    views = LiveViews()
    qtbot.addWidget(views)
    views.start_run({"metric": "accuracy", "feature_layers": ["conv1", "conv2"]})
    with qtbot.waitSignal(views.feature_request) as blocker:
        views.features.layer_combo.setCurrentText("conv2")
    assert blocker.args == ["conv2", 0]
