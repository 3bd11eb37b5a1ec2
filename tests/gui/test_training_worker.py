"""TrainingSession on real torch: signals arrive in the GUI thread with plain payloads, steps are throttled,
snapshots carry kernels, feature maps, the decision boundary and reconstructions, pause / resume / stop work from
the GUI thread, and NaN losses, failing callbacks, missing data and broken graphs end as `failed` with the app up."""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication
from safetensors.torch import load_file

import engine
from engine.callbacks import Callback
from engine.live import LiveExtras
from engine.runs import list_runs
from engine.templates import load_template
from gui import training_worker
from gui.training_worker import SWITCH_INTERVAL, TrainingSession

SIGNALS = ("started", "steps", "epoch_end", "snapshot", "progress", "failed", "finished")
PLAIN = (int, float, str, bool, type(None), np.ndarray, np.integer, np.floating)


def moons_project(epochs=3, batch_size=8, lr=0.02, optimizer="Adam", n_samples=300, data=None):
    g = engine.Graph()
    prev = g.add_node("Input", shape=[2])
    for layer, params in (("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 2})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    return engine.Project(graph=g, name="moons net",
                          data=data or {"source": "moons", "params": {"n_samples": n_samples, "noise": 0.15}},
                          loss={"type": "CrossEntropy", "params": {}},
                          optimizer={"type": optimizer, "params": {"lr": lr}},
                          training={"epochs": epochs, "batch_size": batch_size}).to_dict()


class Recorder:
    """Every signal of a session, in arrival order, with the thread it arrived in."""

    def __init__(self, session: TrainingSession):
        self.events: list[tuple[str, dict, int]] = []
        for name in SIGNALS:
            getattr(session, name).connect(lambda payload, name=name: self.events.append(
                (name, payload, threading.get_ident())))

    def of(self, name: str) -> list[dict]:
        return [p for n, p, _ in self.events if n == name]


@pytest.fixture
def make_session(qtbot):
    sessions = []

    def make(project_dict, base_dir, **kwargs):
        session = TrainingSession(project_dict, None if base_dir is None else str(base_dir), **kwargs)
        sessions.append(session)
        return session, Recorder(session)

    yield make
    for s in sessions:  # never leave a training thread behind
        s.stop()
        assert s.wait(20)


def finish(qtbot, session, timeout=30_000):
    with qtbot.waitSignal(session.finished, timeout=timeout) as blocker:
        if session._thread is None:
            session.start()
    assert session.wait(10)
    return blocker.args[0]


def assert_plain(value, where="payload"):
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), where
            assert_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            assert_plain(v, f"{where}[{i}]")
    else:
        assert isinstance(value, PLAIN), f"{where} is {type(value)}"


def test_a_run_reports_plain_data_in_the_gui_thread_and_saves_its_folder(qtbot, make_session, tmp_path):
    session, rec = make_session(moons_project(), tmp_path, snapshot_every=5)
    sys.setswitchinterval(0.005)  # Python's default
    done = finish(qtbot, session)
    # the window's drawing holds Python's lock for at most half a millisecond while the training waits for it
    assert sys.getswitchinterval() <= SWITCH_INTERVAL
    main = threading.get_ident()
    assert {t for _, _, t in rec.events} == {main}  # queued into the GUI thread, lambdas included
    for name, payload, _ in rec.events:
        assert_plain(payload, name)
    names = [n for n, _, _ in rec.events]
    assert names[0] == "started" and names[-1] == "finished" and "failed" not in names

    started = rec.of("started")[0]
    assert started["metric"] == "acc" and started["task"] == "classification" and started["epochs"] == 3
    assert started["classes"] == ["upper moon", "lower moon"]
    assert started["sample_shape"] == [2] and started["layers"] == ["linear_1", "linear_2"]
    assert started["kernel_layer"] is None and started["train_samples"] + started["val_samples"] + \
        started["test_samples"] == 300
    total = started["total_steps"]
    assert total == 3 * started["steps_per_epoch"] > 50

    steps = rec.of("steps")
    joined = np.concatenate([s["step"] for s in steps])
    np.testing.assert_array_equal(joined, np.arange(1, total + 1))  # every step once, in order
    assert len(steps) <= done["seconds"] * 30 + 3 + 2  # at most ~30 a second, plus the flushes at epoch ends
    assert set(steps[0]) == {"step", "epoch", "loss", "acc", "lr"} and steps[0]["loss"].dtype == np.float64
    assert np.isfinite(np.concatenate([s["loss"] for s in steps])).all()

    epochs = rec.of("epoch_end")
    assert [e["epoch"] for e in epochs] == [1.0, 2.0, 3.0] and {"loss", "acc", "val_loss", "val_acc"} <= set(epochs[0])
    assert epochs[-1]["val_acc"] > 0.8
    # each epoch's steps arrive before its epoch_end
    order = [(n, p) for n, p, _ in rec.events if n in ("steps", "epoch_end")]
    first_end = next(i for i, (n, _) in enumerate(order) if n == "epoch_end")
    assert max(int(p["step"][-1]) for n, p in order[:first_end] if n == "steps") == started["steps_per_epoch"]

    snaps = rec.of("snapshot")
    # paced: the first at step 5, the last at the end of the run, and between them never more than their cost
    # allows (SNAPSHOT_SHARE of the time since the one before)
    assert snaps[0]["step"] == 5 and snaps[-1]["step"] == total and all(s["step"] % 5 == 0 or s["step"] % started[
        "steps_per_epoch"] == 0 for s in snaps)
    assert sum(s["seconds"] for s in snaps[1:-1]) <= training_worker.SNAPSHOT_SHARE * done["seconds"] + 0.05
    b = snaps[-1]["boundary"]
    assert b["grid"].shape == (80, 80) and b["kind"] == "probability" and len(b["points"]) == len(b["labels"])
    assert not np.array_equal(snaps[0]["boundary"]["grid"], b["grid"])
    assert "kernels" not in snaps[-1] and snaps[-1]["layers"]["linear_1"]["weight"]["hist"].sum() == 32

    progress = rec.of("progress")
    assert progress and progress[-1]["step"] == total and progress[-1]["status"] == "finished"
    assert all(p["steps_per_s"] is None or p["steps_per_s"] >= 0 for p in progress)

    assert done["status"] == "finished" and done["epochs_done"] == 3 and done["steps_done"] == total
    run_dir = Path(done["run_dir"])
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.startswith("moons_net-")
    assert Path(done["weights"]).is_file() and Path(done["best_weights"]).is_file()
    assert len(done["history"]) == 3 and session.status == "finished" and not session.is_running()
    assert [r.folder for r in list_runs(tmp_path)] == [run_dir] and list_runs(tmp_path)[0].status == "finished"


def test_steps_are_throttled_by_time_and_flushed_at_each_epoch_end(qtbot, make_session, tmp_path, monkeypatch):
    monkeypatch.setattr(training_worker, "STEPS_INTERVAL", 60.0)
    session, rec = make_session(moons_project(epochs=3), tmp_path, snapshot_every=1000)
    finish(qtbot, session)
    steps, per_epoch = rec.of("steps"), rec.of("started")[0]["steps_per_epoch"]
    # the first step goes at once, then nothing until the epoch ends
    assert [(int(s["step"][0]), int(s["step"][-1])) for s in steps] == \
        [(1, 1), (2, per_epoch), (per_epoch + 1, 2 * per_epoch), (2 * per_epoch + 1, 3 * per_epoch)]


def test_cnn_kernels_and_feature_maps_follow_the_views(qtbot, make_session, tmp_path):
    project = load_template("cnn_mnist").to_dict()
    session, rec = make_session(project, tmp_path, overrides={"epochs": 3, "batch_size": 32}, snapshot_every=2,
                                views={"sample_index": 3})
    with qtbot.waitSignal(session.started, timeout=20_000):
        session.start()
    started = rec.of("started")[0]
    assert started["kernel_layer"] == "conv2d_1" and started["feature_layer"] == "conv2d_1"
    assert tuple(started["image_shape"]) == (1, 28, 28) and started["layers"][:2] == ["conv2d_1", "conv2d_2"]
    qtbot.waitUntil(lambda: len(rec.of("snapshot")) >= 2, timeout=20_000)
    session.set_views(feature_layer="conv2d_2", sample_index=0)
    qtbot.waitUntil(lambda: rec.of("snapshot")[-1]["feature_layer"] == "conv2d_2", timeout=20_000)
    session.set_views({"feature_layer": "no_such_layer"})  # a dict, as a view's signal carries it
    qtbot.waitUntil(lambda: "view_error" in rec.of("snapshot")[-1], timeout=20_000)
    session.stop()
    done = finish(qtbot, session)

    snaps = rec.of("snapshot")
    a, b = snaps[0], snaps[1]
    assert a["kernels"].shape == b["kernels"].shape == (32, 1, 3, 3) and a["kernel_layer"] == "conv2d_1"
    assert not np.array_equal(a["kernels"], b["kernels"])  # the filters learn between two snapshots
    assert a["features"].shape == (32, 26, 26) and a["sample_index"] == 3 and a["sample"].shape == (1, 28, 28)
    assert a["sample_split"] == "val"
    later = next(s for s in snaps if s["feature_layer"] == "conv2d_2")
    assert later["sample_index"] == 0 and later["features"].shape == (64, 11, 11)
    assert not np.array_equal(later["sample"], a["sample"])
    assert snaps[-1]["feature_layer"] == "conv2d_2" and "no_such_layer" in snaps[-1]["view_error"]
    assert "boundary" not in a and "reconstruction" not in a

    assert done["status"] == "stopped" and Path(done["weights"]).is_file()
    run_dir = Path(done["run_dir"])
    assert (run_dir / "checkpoints" / "last" / "model.safetensors").is_file()  # a stop leaves a checkpoint
    assert set(load_file(done["weights"])) == set(engine.build_model(load_template("cnn_mnist").graph).state_dict())


def test_pause_holds_the_steps_and_resume_continues(qtbot, make_session, tmp_path):
    session, rec = make_session(moons_project(epochs=500, n_samples=400), tmp_path, snapshot_every=1000)
    session.start()
    qtbot.waitUntil(lambda: len(rec.of("steps")) >= 2, timeout=20_000)
    session.pause()
    assert session.status == "paused" and rec.of("progress")[-1]["status"] == "paused"  # said at once
    qtbot.waitUntil(lambda: session.trainer.status == "paused", timeout=5_000)
    held = session.trainer.global_step
    qtbot.wait(300)
    assert session.trainer.global_step == held and session.is_running()
    seen = len(rec.events)
    session.resume()
    assert rec.of("progress")[-1]["status"] == "running"
    qtbot.waitUntil(lambda: session.trainer.global_step > held + 5, timeout=10_000)
    qtbot.waitUntil(lambda: any(n == "steps" for n, _, _ in rec.events[seen:]), timeout=5_000)
    session.stop()
    done = finish(qtbot, session)
    assert done["status"] == "stopped" and done["steps_done"] > held and Path(done["weights"]).is_file()
    assert session.status == "stopped"


def test_a_nan_loss_fails_with_a_hint_and_keeps_the_last_good_weights(qtbot, make_session, tmp_path):
    session, rec = make_session(moons_project(lr=1e6, optimizer="SGD"), tmp_path)
    done = finish(qtbot, session)
    (failed,) = rec.of("failed")
    assert failed["kind"] == "nan" and "NaN" in failed["message"] and failed["message"].endswith(".")
    assert "learning rate" in failed["hint"] and "clipping" in failed["hint"]
    assert done["status"] == "failed" and done["message"] == failed["message"]
    names = [n for n, _, _ in rec.events]
    assert names.index("failed") == len(names) - 2  # failed comes just before finished
    weights = load_file(done["weights"])
    assert all(bool(np.isfinite(v.numpy()).all()) for v in weights.values())


def test_a_stop_while_preparing_ends_stopped_in_the_user_data_folder(qtbot, make_session):
    session, rec = make_session(moons_project(epochs=50), None)  # a project never saved: no folder of its own
    session.start()
    session.stop()  # the data is still loading
    done = finish(qtbot, session)
    assert done["status"] == "stopped" and Path(done["weights"]).is_file()
    data_home = Path(os.environ["XDG_DATA_HOME"])  # tests keep the user's folders private (conftest.py)
    assert Path(done["run_dir"]).parent.parent.parent == data_home and Path(done["run_dir"]).parent.name == "runs"
    assert done["epochs_done"] < 50 and "failed" not in [n for n, _, _ in rec.events]


class Boom(Callback):
    def on_train_batch_end(self, trainer, logs):
        if logs["step"] == 3:
            raise RuntimeError("boom in a callback")


def test_an_exception_in_the_run_fails_as_error_and_the_app_stays_up(qtbot, make_session, tmp_path):
    session, rec = make_session(moons_project(), tmp_path, callbacks=[Boom()])
    done = finish(qtbot, session)
    (failed,) = rec.of("failed")
    assert failed["kind"] == "error" and "RuntimeError" in failed["message"] and "boom" in failed["message"]
    assert "epoch 1" in failed["message"] and "in on_train_batch_end" in failed["traceback"]
    assert done["status"] == "failed" and Path(done["weights"]).is_file()
    assert QApplication.instance() is not None
    again, rec2 = make_session(moons_project(epochs=1), tmp_path)  # the next run works
    assert finish(qtbot, again)["status"] == "finished"


def test_a_picture_that_fails_does_not_stop_the_training(qtbot, make_session, tmp_path, monkeypatch):
    def broken(self, trainer, logs=None):
        raise ValueError("cannot draw")
    monkeypatch.setattr(LiveExtras, "take", broken)
    session, rec = make_session(moons_project(epochs=1), tmp_path, snapshot_every=5)
    done = finish(qtbot, session)
    assert done["status"] == "finished" and rec.of("failed") == []
    assert "cannot draw" in rec.of("snapshot")[-1]["view_error"]


@pytest.mark.parametrize("case", ["missing csv", "graph", "no loss", "wrong input"])
def test_problems_before_training_fail_with_their_kind(qtbot, make_session, tmp_path, case):
    missing = tmp_path / "data" / "gone.csv"
    project = moons_project()
    kind, words = "data", str(missing)
    if case == "missing csv":
        project["data"] = {"source": "csv", "params": {"path": str(missing), "target": "y"}}
    elif case == "graph":
        conv = {"id": "conv2d_1", "type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3}}
        project["graph"]["nodes"].append(conv)
        project["graph"]["edges"] = [e for e in project["graph"]["edges"] if e["target"] != "relu_1"] + \
            [{"source": "linear_1", "target": "conv2d_1"}, {"source": "conv2d_1", "target": "relu_1"}]
        kind, words = "graph", "conv2d_1"
    elif case == "no loss":
        project["loss"] = None
        kind, words = "settings", "loss"
    else:
        project["data"] = {"source": "iris"}
        words = "Input"
    session, rec = make_session(project, tmp_path)
    done = finish(qtbot, session)
    (failed,) = rec.of("failed")
    assert failed["kind"] == kind and words in failed["message"] and failed["hint"], failed
    assert "started" not in [n for n, _, _ in rec.events] and rec.of("steps") == []
    assert done["status"] == "failed" and done["run_dir"] is None and done["weights"] is None
    assert not (tmp_path / "runs").exists()  # no run folder for a run that never started


def test_autoencoder_snapshots_carry_reconstructions(qtbot, make_session, tmp_path):
    project = load_template("conv_autoencoder").to_dict()
    session, rec = make_session(project, tmp_path, overrides={"epochs": 2, "batch_size": 32}, snapshot_every=2)
    session.start()
    qtbot.waitUntil(lambda: len(rec.of("snapshot")) >= 2, timeout=20_000)
    session.stop()
    done = finish(qtbot, session)
    first, second = rec.of("snapshot")[:2]
    r = second["reconstruction"]
    assert r["inputs"].shape == r["outputs"].shape == (8, 1, 28, 28)
    np.testing.assert_array_equal(first["reconstruction"]["inputs"], r["inputs"])  # the same fixed samples
    assert not np.array_equal(first["reconstruction"]["outputs"], r["outputs"])
    assert rec.of("started")[0]["task"] == "reconstruction" and rec.of("started")[0]["metric"] == "mae"
    assert done["status"] == "stopped"
    assert math.isfinite(rec.of("steps")[0]["mae"][0])


class Niceness(Callback):
    """Records the scheduling priority of the thread that trains."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, logs):
        import os
        import threading
        self.seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is a Linux feature")
def test_the_training_thread_yields_to_the_window(qtbot, make_session, tmp_path):
    import os
    import threading
    probe = Niceness()
    session, _ = make_session(moons_project(epochs=1), tmp_path, callbacks=[probe])
    assert finish(qtbot, session)["status"] == "finished"
    window = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert probe.seen and all(p > window for p in probe.seen)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == window  # the window's thread is untouched


def _busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_busy_window_asks_for_fewer_pictures_and_an_idle_one_for_more(qtbot, make_session, tmp_path):
    """The session measures the window's thread between snapshots: when it used more than WINDOW_SHARE of a core,
    the next pictures wait longer (so drawing them does not slow the training down); when it idles, the wait
    shrinks back to none."""
    session, _ = make_session(moons_project(epochs=1), tmp_path)
    session.pace_pictures()  # the first arrival only marks the time
    assert session.picture_gap == 0.0
    _busy(0.06)  # the window's thread busy all through a 60 ms interval: a full core
    session.pace_pictures()
    busy_gap = session.picture_gap
    assert 0.5 < busy_gap <= training_worker.MAX_PICTURE_GAP  # ~ 0.06 s × 1.0 / WINDOW_SHARE
    for _ in range(3):  # keeps being busy: the gap grows, up to its ceiling
        _busy(0.06)
        session.pace_pictures()
    assert busy_gap < session.picture_gap <= training_worker.MAX_PICTURE_GAP
    for _ in range(40):  # idle intervals: it shrinks to nothing
        time.sleep(0.03)
        session.pace_pictures()
    assert session.picture_gap == 0.0


def test_the_training_thread_leaves_the_gap_the_window_asks_for(qtbot, make_session, tmp_path, monkeypatch):
    """With a long picture gap, a run sends the first snapshot and the one at its end, none between (they would
    have come every few steps); the live curves still get every step."""
    monkeypatch.setattr(TrainingSession, "pace_pictures", lambda self: None)  # the gaps below stay as set
    monkeypatch.setattr(training_worker, "SNAPSHOT_SHARE", 1.0)  # paced by the gap alone
    counts = {}
    for gap in (0.0, 60.0):
        session, rec = make_session(moons_project(epochs=4), tmp_path, snapshot_every=2)
        session.picture_gap = gap
        done = finish(qtbot, session)
        assert done["status"] == "finished"
        snaps = rec.of("snapshot")
        total = rec.of("started")[0]["total_steps"]
        counts[gap] = len(snaps)
        assert snaps[0]["step"] == 2 and snaps[-1]["step"] == total
        assert np.concatenate([s["step"] for s in rec.of("steps")]).tolist() == list(range(1, total + 1))
    assert counts[60.0] == 2 and counts[0.0] > 10
