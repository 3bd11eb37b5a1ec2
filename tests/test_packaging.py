"""The desktop package's pieces, checked without building (the build itself takes many minutes and belongs to
packaging/smoke.py): the bundle's lists name real modules, the spec reads them, the frozen entry point behaves like
the Python interpreter when asked to, the desktop entry is valid and the icon loads with Qt."""
from __future__ import annotations

import ast
import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"


def _load(name: str):
    """packaging/NAME.py as a module (packaging/ is no package: it would shadow PyPI's `packaging`)."""
    spec = importlib.util.spec_from_file_location(f"layerloom_packaging_{name}", PACKAGING / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bundle = _load("bundle")
build = _load("build")
entry = _load("entry")


# ---- what goes into the bundle ----------------------------------------------------------------------------------

def test_hidden_imports_and_packages_exist_in_the_venv():
    missing = [m for m in bundle.HIDDEN_IMPORTS + bundle.PACKAGES if not bundle.installed(m)]
    assert missing == []


def test_metadata_names_installed_distributions():
    missing = []
    for dist in bundle.METADATA:
        try:
            metadata.distribution(dist)
        except metadata.PackageNotFoundError:
            missing.append(dist)
    assert missing == []


def test_hidden_imports_cover_the_whole_engine_and_window():
    names = set(bundle.hidden_imports())
    assert set(bundle.HIDDEN_IMPORTS) <= names
    assert {"engine", "engine.cli", "engine.export.core", "engine.layers.catalogue", "gui", "gui.app",
            "gui.launcher", "gui.canvas"} <= names
    assert not any(n.endswith("__init__") or "__pycache__" in n for n in names)
    not_importable = [n for n in names if n.startswith(("engine", "gui")) and not bundle.installed(n)]
    assert not_importable == []


def test_data_files_are_where_the_engine_looks_for_them():
    (src, dest), = bundle.resource_datas()
    import engine.templates
    assert Path(src) == ROOT / "resources" and engine.templates.template_names()
    # engine/templates.py looks two folders above itself, which is the bundle's _internal/ when frozen
    assert engine.templates.templates_dir() == Path(engine.templates.__file__).resolve().parents[1] / dest / "templates"


def _imports_in(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_nothing_the_app_imports_is_excluded():
    used = _imports_in(ROOT / "engine") | _imports_in(ROOT / "gui")
    clash = sorted(u for u in used for x in bundle.EXCLUDES if u == x or u.startswith(x + "."))
    assert clash == [], f"the app imports {clash}; take them out of EXCLUDES in packaging/bundle.py"


@pytest.mark.parametrize("dest, gone", [
    ("torch/bin/test_api", True),
    ("torch/bin/TCPStoreTest", True),
    ("torch/bin/protoc-3.13.0.0", True),
    ("torch/lib/libtorchbind_test.so", True),
    ("PySide6/Qt/translations/qtbase_de.qm", True),
    ("PySide6/Qt/plugins/platforms/libqvnc.so", True),
    ("torch/bin/torch_shm_manager", False),
    ("torch/lib/libtorch_cpu.so", False),
    ("torch/lib/libgomp.so.1", False),
    ("PySide6/Qt/plugins/platforms/libqxcb.so", False),
    ("PySide6/Qt/plugins/platforms/libqoffscreen.so", False),
    ("PySide6/Qt/plugins/platforms/libqwayland.so", False),
    ("PySide6/Qt/plugins/imageformats/libqsvg.so", False),
    ("sklearn/datasets/data/digits.csv.gz", False),
    ("sklearn/datasets/descr/digits.rst", False),
    ("resources/templates/cnn_mnist.layerloom", False),
])
def test_pruning_drops_tests_and_keeps_what_runs(dest, gone):
    assert bundle.dropped(dest) is gone
    assert bundle.prune([(dest, "/src", "DATA")]) == ([] if gone else [(dest, "/src", "DATA")])


def test_kept_platform_plugins_exist_in_pyside6():
    import PySide6
    platforms = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms"
    for name in ("libqxcb.so", "libqoffscreen.so", "libqwayland.so"):
        assert (platforms / name).is_file(), name
        assert not bundle.dropped(f"PySide6/Qt/plugins/platforms/{name}")


def test_the_spec_builds_from_the_bundle_lists():
    text = (PACKAGING / "layerloom.spec").read_text(encoding="utf-8")
    tree = ast.parse(text)
    calls = {n.func.id: n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"Analysis", "PYZ", "EXE", "COLLECT"} <= set(calls)
    analysis = {k.arg: ast.unparse(k.value) for k in calls["Analysis"].keywords}
    assert analysis["hiddenimports"] == "bundle.hidden_imports()"
    assert analysis["datas"] == "bundle.datas()"
    assert analysis["excludes"] == "bundle.EXCLUDES"
    assert ast.unparse(calls["Analysis"].args[0]) == "[str(bundle.ENTRY)]"
    assert {k.arg: ast.unparse(k.value) for k in calls["EXE"].keywords}["exclude_binaries"] == "True"  # one folder
    assert analysis["runtime_hooks"] == "[str(bundle.RUNTIME_HOOK)]"
    assert "bundle.finish(" in text and "bundle.prune(a.binaries)" in text
    assert "a.scripts = bundle.startup_scripts(a.scripts)" in text
    for hook in ("hook-engine.py", "hook-gui.py"):
        assert "pyz+py" in (bundle.HOOKS / hook).read_text(encoding="utf-8")
    assert bundle.ENTRY.is_file() and bundle.ruff_binary() is not None


def test_startup_drops_the_hooks_that_load_qt_and_setuptools():
    scripts = [("pyi_rth_inspect", "/x/pyi_rth_inspect.py", "PYSOURCE"),
               ("pyi_rth_pyside6", "/x/pyi_rth_pyside6.py", "PYSOURCE"),
               ("pyi_rth_setuptools", "/x/pyi_rth_setuptools.py", "PYSOURCE"),
               ("pyi_rth_layerloom_qt", str(bundle.RUNTIME_HOOK), "PYSOURCE"),
               ("entry", str(bundle.ENTRY), "PYSOURCE")]
    assert [s[0] for s in bundle.startup_scripts(scripts)] == ["pyi_rth_inspect", "pyi_rth_layerloom_qt", "entry"]


def test_replacement_runtime_hook_sets_the_plugin_path_without_loading_qt(tmp_path):
    probe = ("import os, runpy, sys\n"
             f"sys._MEIPASS = {str(tmp_path)!r}\n"
             f"runpy.run_path({str(bundle.RUNTIME_HOOK)!r})\n"
             "print(os.environ['QT_PLUGIN_PATH'])\n"
             "print(any(m.startswith(('PySide6', 'shiboken6')) for m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "PySide6" / "Qt" / "plugins"), "False"]


# ---- the frozen entry point ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [[], ["train", "cnn_mnist"], ["layers"], ["--help"], ["-h"],
                                  ["project.layerloom"], ["-platform", "offscreen"], ["-style", "fusion"],
                                  ["-session", "x"], ["-reverse"], ["-display", ":0"], ["-name", "x"]])
def test_layerloom_command_lines_are_not_python_calls(argv):
    assert entry.parse_python_call(argv) is None


def test_python_command_lines_are_parsed_like_the_interpreter():
    call = entry.parse_python_call(["-u", "-m", "engine.cli", "train", "x", "--nproc", "2"])
    assert (call.flags, call.module, call.script, call.args) == (["-u"], "engine.cli", None,
                                                                 ["train", "x", "--nproc", "2"])
    call = entry.parse_python_call(["-I", "-B", "/tmp/runner.py", "a", "-m", "b"])
    assert (call.flags, call.module, call.script, call.args) == (["-I", "-B"], None, "/tmp/runner.py",
                                                                 ["a", "-m", "b"])
    call = entry.parse_python_call(["-IB", "-mtorch.distributed.run", "--standalone"])
    assert (call.flags, call.module, call.args) == (["-I", "-B"], "torch.distributed.run", ["--standalone"])
    with pytest.raises(ValueError, match="cannot run code given with -c"):
        entry.parse_python_call(["-I", "-c", "print(1)"])
    with pytest.raises(ValueError, match="needs a module name"):
        entry.parse_python_call(["-m"])


def _entry(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, str(bundle.ENTRY), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_entry_runs_a_script_like_python(tmp_path):
    script = tmp_path / "runner.py"
    script.write_text("import json, sys\n"
                      "print(json.dumps({'argv': sys.argv, 'name': __name__, 'path0': sys.path[0],\n"
                      "                  'engine': 'engine' in sys.modules, 'torch': 'torch' in sys.modules,\n"
                      "                  'bytecode': sys.dont_write_bytecode}))\n"
                      "sys.exit(int(sys.argv[2]))\n", encoding="utf-8")
    done = _entry(["-I", "-B", str(script), "hello", "3"], tmp_path)
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["argv"] == [str(script), "hello", "3"]
    assert report["name"] == "__main__" and report["bytecode"] is True
    assert report["path0"] != str(tmp_path)  # -I: the script's folder is not put on sys.path
    # codegen's runner refuses to run when the engine is loaded; the entry point loads nothing of LayerLoom's
    assert report["engine"] is False and report["torch"] is False


def test_entry_runs_a_module_like_python(tmp_path):
    (tmp_path / "data.json").write_text('{"b": 1, "a": [1, 2]}', encoding="utf-8")
    done = _entry(["-u", "-m", "json.tool", "--sort-keys", "data.json"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"a": [1, 2], "b": 1}
    assert done.stdout.index('"a"') < done.stdout.index('"b"')


def test_entry_refuses_what_it_cannot_run_in_a_sentence(tmp_path):
    done = _entry(["-c", "print(1)"], tmp_path)
    assert done.returncode == 2 and "write it to a .py file" in done.stderr
    done = _entry(["-I", str(tmp_path / "missing.py")], tmp_path)
    assert done.returncode == 2 and "there is no such file" in done.stderr


def test_entry_runs_layerloom_commands_headless(tmp_path):
    done = _entry(["layers"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Conv2d" in done.stdout


# ---- desktop entry and icon ----------------------------------------------------------------------------------

def _desktop(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    assert parser.sections() == ["Desktop Entry"]
    return dict(parser["Desktop Entry"])


MAIN_CATEGORIES = {"AudioVideo", "Audio", "Video", "Development", "Education", "Game", "Graphics", "Network",
                   "Office", "Science", "Settings", "System", "Utility"}


def test_desktop_entry_is_valid():
    d = _desktop(bundle.DESKTOP)
    for key in ("Type", "Name", "Exec", "Icon", "Categories"):
        assert d.get(key), key
    assert d["Type"] == "Application" and d["Name"] == "LayerLoom"
    program, *codes = d["Exec"].split()
    assert program == bundle.APP_NAME == d["TryExec"]
    assert codes == ["%f"]  # one file: the window opens a .layerloom project given on the command line
    assert d["Icon"] == bundle.ICON.stem  # an icon-theme name, installed as layerloom.png
    assert d["Categories"].endswith(";") and set(d["Categories"].split(";")[:-1]) & MAIN_CATEGORIES
    assert d["Terminal"] == "false" and d["StartupWMClass"] == "LayerLoom"  # Qt's WM_CLASS: the application name
    assert all(line == line.strip() and ("=" in line or line.startswith("[")) for line in
               bundle.DESKTOP.read_text(encoding="utf-8").splitlines())
    _validate(bundle.DESKTOP)


def _validate(path: Path) -> None:
    """freedesktop.org's own checker too, where it is installed (desktop-file-utils)."""
    tool = shutil.which("desktop-file-validate")
    if tool:
        done = subprocess.run([tool, str(path)], capture_output=True, text=True)
        assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_icon_loads_with_qt(qapp):
    from PySide6.QtGui import QIcon, QImage
    img = QImage(str(bundle.ICON))
    assert not img.isNull()
    assert (img.width(), img.height()) == (256, 256)
    assert img.hasAlphaChannel()
    assert img.pixelColor(0, 0).alpha() == 0  # rounded tile: transparent corners
    assert img.pixelColor(128, 128).alpha() == 255
    colours = {img.pixel(x, y) for x in range(0, 256, 8) for y in range(0, 256, 8)}
    assert len(colours) > 20  # a picture, not a flat square
    assert not QIcon(str(bundle.ICON)).isNull()


def test_icon_script_draws_the_same_picture(qapp):
    make_icon = _load("make_icon")
    drawn = make_icon.render(256)
    from PySide6.QtGui import QImage
    saved = QImage(str(bundle.ICON)).convertToFormat(drawn.format())
    same = sum(drawn.pixel(x, y) == saved.pixel(x, y) for x in range(0, 256, 4) for y in range(0, 256, 4))
    assert same / (64 * 64) > 0.95


def test_install_desktop_entry_points_at_the_built_program(tmp_path):
    folder = tmp_path / "my apps" / "LayerLoom"
    folder.mkdir(parents=True)
    program = folder / "LayerLoom"
    program.write_text("#!/bin/sh\n", encoding="utf-8")
    program.chmod(0o755)
    desktop, icon = build.install_desktop_entry(folder, tmp_path / "share")
    assert desktop == tmp_path / "share" / "applications" / "layerloom.desktop"
    assert icon == tmp_path / "share" / "icons" / "hicolor" / "256x256" / "apps" / "layerloom.png"
    d = _desktop(desktop)
    assert d["Exec"] == f'"{program}" %f' and d["TryExec"] == str(program)
    assert d["Icon"] == "layerloom" and icon.read_bytes() == bundle.ICON.read_bytes()
    _validate(desktop)
    with pytest.raises(build.BuildError, match="build it first"):
        build.install_desktop_entry(tmp_path / "nothing", tmp_path / "share")


def test_exec_quoting_follows_the_desktop_entry_rules():
    assert build._exec_quoted(Path('/a b/c"d$e/L')) == '"/a b/c\\\\"d\\\\$e/L"'


# ---- the scripts around the build ----------------------------------------------------------------------------

def test_build_runs_with_this_interpreter():
    build.check_interpreter()  # the suite's venv is the one the bundle is built from
    flavour = build.torch_flavour()
    assert flavour == "cpu" if "+cpu" in metadata.version("torch") else flavour.startswith(("cuda", "rocm"))
    assert build.SPEC.is_file() and build.DIST == ROOT / "dist" and build.WORK.parent == ROOT / "build"


@pytest.mark.parametrize("script", ["packaging/smoke.py", "bench/startup_bundle.py"])
def test_scripts_ask_for_a_build_when_there_is_none(script, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / script), "--bundle", str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "build it first" in done.stderr and "packaging/build.py" in done.stderr


def test_build_outputs_are_git_ignored():
    paths = ["dist/LayerLoom/LayerLoom", "build/pyinstaller/layerloom/x.toc"]
    done = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.split() == paths
