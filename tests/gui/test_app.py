"""The main window as a user meets it: start page, templates, files, recent files, the unsaved-changes question,
autosave and recovery after a real kill -9, a broken file, remembered settings and the no-display message."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from engine.project import load_project
from engine.templates import template_names
from gui.app import CANCEL, DISCARD, MainWindow
from gui.autosave import Autosaver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLOOM_NO_DIALOGS", "1")

    def make(name: str = "settings") -> MainWindow:
        settings = QSettings(str(tmp_path / f"{name}.ini"), QSettings.IniFormat)
        w = MainWindow(settings=settings, autosaver=Autosaver(tmp_path / "autosave"))
        # Closing at the end of a test drops unsaved work instead of waiting on the question forever.
        monkeypatch.setattr(w, "ask_save_changes", lambda: DISCARD)
        qtbot.addWidget(w)
        return w
    return make


def test_starts_on_the_start_page_and_opens_a_template(make_window, qtbot):
    w = make_window()
    w.show()
    assert w.document is None and w.central.currentWidget() is w.start_page
    w.new_from_template("cnn_mnist")
    assert w.document is not None and w.central.currentWidget() is w.view
    nodes = [i for i in w.view.scene().items() if type(i).__name__ == "NodeItem"]
    assert len(nodes) == len(w.document.graph.nodes)
    assert w.windowTitle().startswith("cnn_mnist")
    assert "params" in w.totals_label.text()
    assert not w.isWindowModified()
    w.document.add_node("ReLU", position=(400, 0))
    assert w.isWindowModified()
    assert w.undo_action.isEnabled()
    w.undo_action.trigger()
    assert not w.isWindowModified()


def test_save_reopen_and_recent_files(make_window, tmp_path):
    w = make_window()
    w.new_from_template("mlp_mnist_128")
    w.document.add_node("Dropout", position=(300, 300))
    path = tmp_path / "mine.layerloom"
    assert w._save_to(path)
    assert not w.document.dirty and w.windowTitle().startswith("mine.layerloom")
    assert load_project(path).graph.to_dict() == w.document.graph.to_dict()
    assert w.recent_files()[0] == str(path.resolve())
    assert any("mine.layerloom" in a.text() for a in w.recent_menu.actions())
    saved = w.document.graph.to_dict()
    w.show_start_page()
    assert w.document is None
    assert w.open_file(path)
    assert w.document.graph.to_dict() == saved
    # Settings are remembered: a new window with the same settings file knows the recent file and theme.
    w.set_theme("dark")
    w.close()
    again = make_window()
    assert again.recent_files()[0] == str(path.resolve())
    assert again.theme_actions["dark"].isChecked()
    assert again.settings.value("last_project") == str(path)


def test_a_broken_file_says_why_and_loses_nothing(make_window, tmp_path):
    w = make_window()
    w.new_from_template("cnn_mnist")
    w.document.add_node("ReLU", position=(400, 0))
    before = w.document.graph.to_dict()
    bad = tmp_path / "broken.layerloom"
    bad.write_text("{ this is not json")
    assert not w.open_file(bad)
    assert w.document.graph.to_dict() == before and w.document.dirty
    assert "broken.layerloom" in w.statusBar().currentMessage()
    assert not w.open_file(tmp_path / "missing.layerloom")
    assert "no such file" in w.statusBar().currentMessage()


def test_the_unsaved_changes_question_guards_closing(make_window, monkeypatch):
    w = make_window()
    w.show()
    w.new_from_template("cnn_mnist")
    w.document.add_node("ReLU", position=(400, 0))
    monkeypatch.setattr(w, "ask_save_changes", lambda: CANCEL)
    assert not w.close()
    assert w.isVisible() and w.document is not None
    monkeypatch.setattr(w, "ask_save_changes", lambda: DISCARD)
    assert w.close()
    assert not w.isVisible()


def test_every_template_opens_in_the_window(make_window):
    w = make_window()
    for name in template_names():
        w.new_from_template(name)
        assert w.document.project.name == name
        assert w.document.analysis.ok, name


CRASHING_SESSION = """
import os, sys
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from gui.app import MainWindow
from gui.autosave import Autosaver
app = QApplication([])
w = MainWindow(settings=QSettings(sys.argv[1], QSettings.IniFormat), autosaver=Autosaver(sys.argv[2]))
w.new_from_template("cnn_mnist")
w.document.add_node("Dropout", {"p": 0.25}, position=(500, 500))
print(w.autosave(), flush=True)
print("EDITED", flush=True)
sys.stdin.readline()  # wait to be killed
"""


def test_autosave_survives_a_kill_and_is_offered_back(make_window, tmp_path, monkeypatch):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CRASHING_SESSION), str(tmp_path / "s.ini"),
                             str(tmp_path / "autosave")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[1].strip() == "EDITED", lines
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    autosave = Path(lines[0].strip())
    assert autosave.exists()
    w = make_window()
    asked = []
    monkeypatch.setattr(w, "ask_restore", lambda recovered, count: asked.append(recovered) or True)
    assert w.offer_recovery()
    assert len(asked) == 1 and asked[0].original is None
    dropout = [n for n in w.document.graph.nodes.values() if n.type == "Dropout"]
    assert dropout and dropout[0].params["p"] == 0.25
    assert w.document.dirty  # restored work is unsaved until the user saves it
    assert not autosave.exists()
    assert Autosaver(tmp_path / "autosave").pending() == []


def test_autosave_of_a_running_session_is_not_offered(make_window, tmp_path):
    w = make_window()
    w.new_from_template("cnn_mnist")
    w.document.add_node("ReLU", position=(400, 0))
    copy = w.autosave()
    assert copy is not None and copy.exists()
    meta = json.loads(copy.with_suffix(".json").read_text())
    assert meta["pid"] == os.getpid()
    assert Autosaver(tmp_path / "autosave").pending() == []  # this process is alive: not a crash
    w.document.undo_stack.undo()
    assert w.autosave() is None  # nothing unsaved, nothing written
    w._save_to(tmp_path / "saved.layerloom")
    assert not copy.exists()  # a save removes the autosave


def test_no_display_gives_one_sentence_not_a_qt_abort(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    out = subprocess.run([sys.executable, "-m", "gui.launcher"], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "no display" in out.stderr and "layerloom train" in out.stderr.replace("summary|train", "train")
    assert len(out.stderr.strip().splitlines()) == 1


def test_the_launcher_runs_headless_commands_without_qt():
    code = ("import sys; from gui.launcher import main; rc = main(['layers', 'Linear']); "
            "print('QT', any(m.startswith('PySide6') for m in sys.modules)); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Linear" in out.stdout and "QT False" in out.stdout


def test_the_startup_bench_reports_a_ratio():
    out = subprocess.run([sys.executable, "bench/startup.py", "--rounds", "1"], cwd=ROOT, capture_output=True,
                         text=True, timeout=180, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert out.returncode == 0, out.stderr
    assert "ratio LayerLoom / bare window" in out.stdout


def test_a_tall_template_opens_at_a_readable_zoom_and_f_fits_it_all(make_window, qtbot):
    from gui.canvas.view import READABLE_ZOOM
    w = make_window()
    w.resize(1200, 700)
    w.show()
    w.new_from_template("residual_block")  # too tall to fit whole at a zoom where names can be read
    qtbot.waitUntil(lambda: not w.view._fit_pending, timeout=5000)  # noqa: SLF001
    qtbot.wait(50)  # the window's own fit after the docks settle
    assert w.view.zoom() >= READABLE_ZOOM - 1e-9
    inputs = w.view.mapFromScene(w.view.scene().nodes["input_1"].sceneBoundingRect().center())
    assert w.view.viewport().rect().contains(inputs)  # the top of the network is what shows
    w.view.fit()  # F: everything, however small
    assert w.view.zoom() < READABLE_ZOOM
