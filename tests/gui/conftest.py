"""GUI tests run on Qt's offscreen platform, with settings, recent files and autosaves in a private folder so
that they never read or change the user's own."""
from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_home = tempfile.mkdtemp(prefix="layerloom-gui-tests-")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_home, "config")
os.environ["XDG_DATA_HOME"] = os.path.join(_home, "data")
os.environ["XDG_CACHE_HOME"] = os.path.join(_home, "cache")


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The real main window with settings, recent files, autosaves, the block library and trusted-code hashes of
    its own in tmp_path; closing it never asks about unsaved work; at the end every thread it started (training,
    search, explanations, the learning-rate finder) is stopped."""
    from PySide6.QtCore import QSettings

    from gui.app import DISCARD, MainWindow
    from gui.autosave import Autosaver

    monkeypatch.setenv("LAYERLOOM_NO_DIALOGS", "1")
    monkeypatch.setenv("LAYERLOOM_BLOCKS_DIR", str(tmp_path / "library"))
    monkeypatch.setenv("LAYERLOOM_TRUST_FILE", str(tmp_path / "trusted_code.json"))
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat),
                   autosaver=Autosaver(tmp_path / "autosave"))
    monkeypatch.setattr(w, "ask_save_changes", lambda: DISCARD)
    qtbot.addWidget(w)
    w.resize(1400, 1000)
    w.show()
    yield w
    finder = getattr(w.training, "lr_finder_dialog", None)
    if finder is not None:
        try:
            finder.cancel()
        except RuntimeError:  # already deleted with the window
            pass
    explain = getattr(w, "explain_dialog", None)
    if explain is not None:
        explain.panel.runner.wait()
    if "search" in w._lazy:  # noqa: SLF001 - only stop a search the test built
        w.search_view.shutdown()
    w.training.shutdown()
