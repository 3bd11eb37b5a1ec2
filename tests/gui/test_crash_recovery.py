"""Crash recovery for real: the app runs in its own process with its own settings and data folders (XDG_CONFIG_HOME,
XDG_DATA_HOME in tmp_path, the defaults a user's app uses), is edited through its Document, autosaves, and is killed
with SIGKILL, once while editing and once while a training run is going. A new window over the same data folder
then offers the work back (only the yes/no question is answered here) and restores exactly the edited project.
Damaged autosaves never stop the app from starting."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from engine.project import load_project
from engine.runs import list_runs, load_history
from gui.app import DISCARD, MainWindow, open_at_start
from gui.autosave import Autosaver

ROOT = Path(__file__).resolve().parents[2]

DRIVER = r"""
import json, sys, time
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from gui.app import MainWindow

mode, folder = sys.argv[1], Path(sys.argv[2])
app = QApplication([])
w = MainWindow()                       # the user's defaults: QSettings and Autosaver under the XDG folders
w.show()
w.new_from_template("cnn_mnist" if mode == "editing" else "linear_regression")
w._save_to(folder / "mine.layerloom")  # a saved project ...
doc = w.document
if mode == "editing":                  # ... then edits that are not saved
    first = next(iter(doc.graph.nodes))
    dropout = doc.add_node("Dropout", {"p": 0.3}, position=(420.0, 80.0), connect_from=first)
    conv = next(n for n, node in doc.graph.nodes.items() if node.type == "Conv2d")
    doc.set_params(conv, {"out_channels": 24})
    doc.move_nodes({conv: (doc.graph.node(conv).position, (15.0, 95.0))})
    doc.set_section("training", dict(doc.project.training, epochs=3))
    doc.set_section("description", "edited before the crash")
else:
    doc.set_section("training", dict(doc.project.training, epochs=400))
    doc.set_section("description", "edited, then trained")
    steps = []
    assert w.training.train()
    w.training.session.steps.connect(lambda payload: steps.append(len(payload["step"])))
    deadline = time.monotonic() + 90
    while not steps and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    assert steps and w.training.session.is_running, "the run did not start"
    moved = next(iter(doc.graph.nodes))    # moves stay allowed while the model is locked for the run
    doc.move_nodes({moved: (doc.graph.node(moved).position, (333.0, -44.0))})
copy = w.autosave()                    # the minute's timer, forced
(folder / "expected.json").write_text(json.dumps(doc.project.to_dict()))
(folder / "ready").write_text(str(copy))
QTimer.singleShot(120_000, app.quit)   # should the test die: never outlive it by long
app.exec()
"""


def _crash(tmp_path: Path, mode: str) -> tuple[Path, Path, dict]:
    """Run the app in `mode`, wait until it has autosaved, kill it with SIGKILL; returns the project file, the
    autosave copy and the project as it was when killed."""
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT), LAYERLOOM_NO_DIALOGS="1",
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, mode, str(work)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 150
        while not (work / "ready").exists():
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the app never got ready"
            time.sleep(0.05)
        if mode == "training":
            time.sleep(0.5)  # let it train on a little: the kill lands in the middle of the run
        assert proc.poll() is None  # still running (and training) when killed
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stdout.close()
    copy = Path((work / "ready").read_text())
    return work / "mine.layerloom", copy, json.loads((work / "expected.json").read_text())


@pytest.fixture
def window_over(qtbot, tmp_path, monkeypatch):
    """A fresh window over the killed app's autosave folder (XDG_DATA_HOME/LayerLoom/autosave)."""
    monkeypatch.setenv("LAYERLOOM_NO_DIALOGS", "1")

    def make() -> MainWindow:
        w = MainWindow(settings=QSettings(str(tmp_path / "after.ini"), QSettings.IniFormat),
                       autosaver=Autosaver(tmp_path / "data" / "LayerLoom" / "autosave"))
        monkeypatch.setattr(w, "ask_save_changes", lambda: DISCARD)
        qtbot.addWidget(w)
        return w
    return make


def _restore(window_over, monkeypatch, project_file: Path, copy: Path, expected: dict) -> MainWindow:
    assert copy.exists() and copy.parent == project_file.parent.parent / "data" / "LayerLoom" / "autosave"
    w = window_over()
    asked = []
    monkeypatch.setattr(w, "ask_restore", lambda recovered, count: asked.append((recovered, count)) or True)
    open_at_start(w, [])  # what the app does once its window is up
    assert len(asked) == 1 and asked[0][1] == 1
    assert asked[0][0].original == str(project_file)
    assert w.document is not None and w.document.project.to_dict() == expected  # exactly the edited project
    assert w.document.path == project_file and w.document.dirty  # unsaved until the user saves it
    assert not copy.exists() and w.autosaver.pending() == []  # taken back once, not offered again
    assert load_project(project_file).to_dict() != expected  # the file on disk is the saved one, untouched
    return w


def test_work_is_restored_after_the_app_is_killed_while_editing(window_over, tmp_path, monkeypatch):
    project_file, copy, expected = _crash(tmp_path, "editing")
    assert expected["description"] == "edited before the crash"
    w = _restore(window_over, monkeypatch, project_file, copy, expected)
    graph = w.document.graph
    assert any(n.type == "Dropout" and n.params["p"] == 0.3 for n in graph.nodes.values())
    assert [n.params["out_channels"] for n in graph.nodes.values() if n.type == "Conv2d"][0] == 24
    assert w.document.project.training["epochs"] == 3
    w.document.add_node("ReLU", position=(600.0, 0.0))  # the restored project is an ordinary, editable one
    assert w._save_to(project_file) and load_project(project_file).description == "edited before the crash"


def test_work_is_restored_after_the_app_is_killed_while_training(window_over, tmp_path, monkeypatch):
    project_file, copy, expected = _crash(tmp_path, "training")
    assert expected["training"]["epochs"] == 400
    runs = list_runs(project_file)
    assert len(runs) == 1 and runs[0].status == "incomplete"  # the killed run left its folder, unfinished ...
    assert runs[0].epochs_done >= 1 and len(load_history(runs[0].folder)["epochs"]) == runs[0].epochs_done
    w = _restore(window_over, monkeypatch, project_file, copy, expected)
    # the app starts cleanly: nothing is running or locked, and the restored project can be edited and run
    assert not w.training.running and not w.document.locked and w.training.train_action.isEnabled()
    assert [r.status for r in w.past_runs()] == ["incomplete"]  # ... with the epochs of its last checkpoint
    w.document.add_node("ReLU", position=(0.0, 900.0))


def test_damaged_autosaves_never_stop_the_app_from_starting(window_over, tmp_path, monkeypatch):
    folder = tmp_path / "data" / "LayerLoom" / "autosave"
    folder.mkdir(parents=True)
    good = load_project(ROOT / "resources" / "templates" / "mlp_mnist_128.layerloom")
    from engine.project import save_project
    metas = {
        "a": {"pid": 2**40, "saved_at": "yesterday", "original": 7, "name": ["x"]},   # every field wrong
        "b": ["not", "an", "object"],
        "c": {"pid": True, "saved_at": float("1e300"), "name": ""},
        "d": {"pid": -1, "saved_at": 1_700_000_000, "name": "half written"},
    }
    for key, meta in metas.items():
        save_project(folder / f"{key}.layerloom", good)
        (folder / f"{key}.json").write_text(json.dumps(meta))
    (folder / "d.layerloom").write_text('{"format": "layerloom-project", "version": 2, "graph": {"nod')
    (folder / "e.json").write_text("{ cut short")
    (folder / "f.json").write_text(json.dumps({"pid": 1, "saved_at": 1.0}))  # no copy beside it
    w = window_over()
    pending = w.autosaver.pending()
    assert sorted(r.copy.stem for r in pending) == ["a", "c", "d"]
    assert all(r.original is None and isinstance(r.name, str) and r.describe() for r in pending)
    monkeypatch.setattr(w, "ask_restore", lambda recovered, count: True)
    restored = []
    while w.autosaver.pending():  # each is offered in turn: a damaged copy is named and the app goes on
        restored.append(w.offer_recovery())
        if not restored[-1]:
            w.autosaver.discard(w.autosaver.pending()[0].copy.stem)
    assert restored.count(True) == 2 and restored.count(False) == 1
    said = [w.messages.list.item(i).text() for i in range(w.messages.list.count())]
    assert any("the autosave of half written cannot be read" in line for line in said), said
    assert w.document is not None and w.document.project.to_dict() == good.to_dict()


def test_a_full_disk_when_the_run_is_saved_fails_in_words_and_the_app_stays_up(qtbot, tmp_path):
    """The run folder's settings file is written through a link to /dev/full: the kernel answers ENOSPC, as on a
    full disk. The run ends as failed with the cure, the weights already trained are still saved, the app is up."""
    import engine
    from gui.training_worker import DISK, TrainingSession

    g = engine.Graph()
    prev = g.add_node("Input", shape=[2])
    for layer, params in (("Linear", {"out_features": 8}), ("ReLU", {}), ("Linear", {"out_features": 2})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    project = engine.Project(graph=g, name="moons", data={"source": "moons", "params": {"n_samples": 200}},
                             loss={"type": "CrossEntropy", "params": {}}, training={"epochs": 2, "batch_size": 16})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "settings.json.tmp").symlink_to("/dev/full")
    session = TrainingSession(project.to_dict(), str(tmp_path), run_dir=str(run_dir), coach=False)
    failures = []
    session.failed.connect(failures.append)
    with qtbot.waitSignal(session.finished, timeout=60_000) as blocker:
        session.start()
    assert session.wait(10)
    done = blocker.args[0]
    assert done["status"] == "failed" and len(failures) == 1
    failed = failures[0]
    assert failed["kind"] == DISK, failed
    assert "settings.json: cannot be written (No space left on device)" in failed["message"]
    assert "Free some disk space" in failed["message"] and "kept" in failed["hint"]
    assert done["message"] == failed["message"]
    assert Path(done["weights"]).is_file()  # the trained weights are saved all the same
    assert not (run_dir / "settings.json.tmp").exists() and not (run_dir / "settings.json").exists()
