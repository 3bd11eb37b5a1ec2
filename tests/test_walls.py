"""The architecture's first wall: the engine knows no screen, and does not even load torch on import."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> list[str]:
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_engine_loads_no_torch_qt_or_gui():
    mods = _modules_after("import engine, engine.project, engine.cli, engine.templates")
    heavy = [m for m in mods if m.split(".")[0] in {"torch", "PySide6", "pyqtgraph", "gui", "numpy"}]
    assert heavy == []


def test_shape_inference_needs_no_torch():
    mods = _modules_after(
        "import engine\n"
        "p = engine.project.load_project('resources/templates/cnn_mnist.layerloom')\n"
        "assert engine.analyze(p.graph).ok")
    assert not any(m.split(".")[0] == "torch" for m in mods)


def test_building_a_model_loads_torch_but_no_qt():
    mods = _modules_after(
        "import engine\n"
        "p = engine.project.load_project('resources/templates/cnn_mnist.layerloom')\n"
        "engine.build_model(p.graph)")
    tops = {m.split(".")[0] for m in mods}
    assert "torch" in tops
    assert not tops & {"PySide6", "pyqtgraph", "gui"}


def test_import_linter_contract_holds():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is part of the test dependencies"
    out = subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "The engine knows no screen KEPT" in out.stdout


def test_code_passes_ruff():
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert exe, "ruff is part of the test dependencies"
    out = subprocess.run([exe, "check", "--no-cache", "engine", "gui", "tests", "bench", "scripts", "run.py"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
