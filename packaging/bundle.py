"""What goes into LayerLoom's PyInstaller bundle, in one place: read by packaging/layerloom.spec and by
tests/test_packaging.py (which checks, without building, that every name here exists in the virtual environment).

The lists only extend or trim what PyInstaller finds by following imports from packaging/entry.py (its hooks
already collect torch, PySide6's Qt libraries and plugins, scikit-learn's data files, pyqtgraph and onnxruntime).
"""
from __future__ import annotations

import fnmatch
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APP_NAME = "LayerLoom"  # the folder dist/LayerLoom and the program in it
ENTRY = HERE / "entry.py"
HOOKS = HERE / "hooks"  # hook-engine.py, hook-gui.py, hook-onnxscript.py: sources go in beside the bytecode
ICON = HERE / "layerloom.png"
DESKTOP = HERE / "layerloom.desktop"

# Modules PyInstaller cannot see by following imports: the engine and window packages are added whole (below),
# so a module reached only through a name in a string is never missing; the rest are started or loaded by name.
HIDDEN_IMPORTS = [
    "torch.distributed.run",  # `layerloom train --nproc N` runs `LayerLoom -m torch.distributed.run` (entry.py)
    "onnxscript",  # torch.onnx.export (dynamo) imports it inside functions
    "onnx_ir",
    "onnxruntime",  # the ONNX export's check, the int8 ONNX quantiser and ONNX import
    "onnxruntime.quantization",
    "fusion_utils",  # onnxruntime/transformers/, imported by bare name (search_path below)
    "onnx_model",
    "safetensors.torch",
    "sklearn.datasets",  # the bundled data sets (digits, iris, wine, breast cancer, diabetes)
    "platformdirs",
    "pyqtgraph",
    "optuna",  # hyper-parameter search (engine/search.py)
    "captum",  # explanations (engine/explain.py)
]
PACKAGES = ["engine", "gui"]  # every submodule of these goes in, with their data files (*.json)

# Distributions whose metadata (importlib.metadata.version) is read at run time.
METADATA = ["onnxscript", "onnx", "onnxruntime", "torch", "numpy", "safetensors", "scikit-learn",
            "PySide6-Essentials", "pyqtgraph", "platformdirs", "optuna", "captum"]

# Left out: tests and developer tools, the Tk GUI toolkit, notebook front ends, and Qt modules LayerLoom never uses.
EXCLUDES = [
    "tkinter", "_tkinter", "turtle", "idlelib",
    "IPython", "ipykernel", "jupyter_client", "notebook",
    "pytest", "_pytest", "pytestqt", "hypothesis", "importlinter", "grimp", "pip",
    "tensorboard", "torch.utils.tensorboard", "torchvision", "torchaudio",
    "matplotlib.backends.backend_tkagg", "matplotlib.backends.backend_tkcairo", "matplotlib.backends._backend_tk",
    "matplotlib.backends.backend_wx", "matplotlib.backends.backend_wxagg", "matplotlib.backends.backend_gtk3",
    "matplotlib.backends.backend_gtk4", "matplotlib.backends.backend_webagg", "matplotlib.backends.backend_nbagg",
    "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets", "PySide6.QtQuickControls2",
    "PySide6.QtDesigner", "PySide6.QtUiTools", "PySide6.QtHelp", "PySide6.QtSql", "PySide6.QtTest",
    "PySide6.QtNetwork", "PySide6.QtDBus", "PySide6.QtXml", "PySide6.QtConcurrent",
]

# PyInstaller's run-time hooks that are left out (each one runs at every start, before the program):
DROPPED_RUNTIME_HOOKS = {
    # imports PySide6.QtCore, loading Qt in the headless commands too; replaced by RUNTIME_HOOK
    "pyi_rth_pyside6",
    # imports setuptools (about 0.1 s) to install its distutils shim; nothing in the app imports distutils
    "pyi_rth_setuptools",
}
RUNTIME_HOOK = HERE / "rthooks" / "pyi_rth_layerloom_qt.py"

# captum's visualisation imports matplotlib.pyplot; the app draws nothing with it, so only the Agg backend goes in.
HOOKS_CONFIG = {"matplotlib": {"backends": ["Agg"]}}

# Files dropped from what the hooks collected (destination paths inside the bundle, fnmatch patterns): PyTorch's
# C++ test programs and test libraries, its headers and CMake files, the protobuf compiler; Qt's translations (the
# app installs no translator) and platform plugins for framebuffers, VNC and EGL devices (the window runs on X11
# through xcb, on Wayland, or offscreen).
DROP = [
    "torch/bin/test_*", "torch/bin/*Test", "torch/bin/protoc*", "torch/bin/*.pt", "torch/bin/*.ptl",
    "torch/bin/upgrader_models/*",
    "torch/lib/libjitbackend_test.so", "torch/lib/libtorchbind_test.so", "torch/lib/libbackend_with_compiler.so",
    "torch/lib/libaoti_custom_ops.so",
    "torch/include/*", "torch/share/*", "torch/test/*",
    "PySide6/Qt/translations/*",
    "PySide6/Qt/plugins/platforms/libqvnc.so", "PySide6/Qt/plugins/platforms/libqlinuxfb.so",
    "PySide6/Qt/plugins/platforms/libqvkkhrdisplay.so", "PySide6/Qt/plugins/platforms/libqeglfs.so",
    "PySide6/Qt/plugins/platforms/libqminimalegl.so", "PySide6/Qt/plugins/egldeviceintegrations/*",
    "PySide6/Qt/plugins/qmltooling/*", "PySide6/Qt/plugins/designer/*", "PySide6/Qt/plugins/sqldrivers/*",
    "PySide6/Qt/lib/libQt6Designer*", "PySide6/Qt/lib/libQt6Quick*", "PySide6/Qt/lib/libQt6Qml*",
    "sklearn/datasets/tests/*", "*/tests/*", "onnx/backend/test/*", "onnxruntime/tools/*",
]
# ...but never these (the window's platforms, whatever a pattern above says)
KEEP = ["PySide6/Qt/plugins/platforms/libqxcb.so", "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/platforms/libqwayland*.so", "PySide6/Qt/plugins/platforms/libqminimal.so"]

# Large libraries shipped with their symbol tables; stripping them saves about 90 MB and changes no code.
STRIP = ["torch/lib/libtorch_cpu.so", "torch/lib/libtorch_python.so", "torch/lib/libc10.so",
         "onnxruntime/capi/onnxruntime_pybind11_state*.so"]

# Copied next to the program after the build: `export --format python` checks the script it writes with the ruff
# that sits next to sys.executable (engine/export/codegen.py); the desktop entry and icon for installing.
EXTRA_TOP_LEVEL = ["ruff", "layerloom.desktop", "layerloom.png"]


def onnxruntime_transformers() -> Path:
    """onnxruntime/transformers/, found without importing onnxruntime. Its modules import each other by bare name
    (`from fusion_utils import ...`, after putting their folder on sys.path), and the int8 ONNX export reaches
    them through onnxruntime.quantization; with the folder on the Analysis's path, PyInstaller finds them."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("onnxruntime is not installed in the environment that builds; run python3 run.py")
    return Path(list(spec.submodule_search_locations)[0]) / "transformers"


def search_path() -> list[str]:
    """The Analysis's pathex: the repository (engine, gui) and onnxruntime's transformers folder."""
    return [str(ROOT), str(onnxruntime_transformers())]


def installed(name: str) -> bool:
    """Whether module `name` can be found here, on sys.path and the Analysis's search path (its parent packages
    are imported to find it)."""
    saved = list(sys.path)
    sys.path.extend(p for p in search_path() if p not in sys.path)
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
    finally:
        sys.path[:] = saved


def package_modules(package: str) -> list[str]:
    """Every module of one of LayerLoom's own packages, from its files (nothing is imported)."""
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def hidden_imports() -> list[str]:
    """All hidden imports for the Analysis: the fixed list and every module of the engine and the window."""
    names = list(HIDDEN_IMPORTS)
    for package in PACKAGES:
        names += package_modules(package)
    return sorted(set(names))


def resource_datas() -> list[tuple[str, str]]:
    """resources/ (templates and anything added later) goes to the bundle's resources/, where
    engine/templates.py looks for it (two folders above engine/templates.py)."""
    return [(str(ROOT / "resources"), "resources")]


def datas() -> list[tuple[str, str]]:
    """Data files for the Analysis: resources/, data files inside the engine and window packages, and the
    metadata that libraries read about themselves (needs PyInstaller)."""
    from PyInstaller.utils.hooks import collect_data_files, copy_metadata
    out = resource_datas()
    for package in PACKAGES:
        out += collect_data_files(package, excludes=["**/__pycache__/**"])
    for dist in METADATA:
        out += copy_metadata(dist)
    return out


def dropped(dest: str) -> bool:
    """Whether a file that would go to `dest` (its path inside the bundle) is left out."""
    dest = dest.replace(os.sep, "/")
    if any(fnmatch.fnmatch(dest, k) for k in KEEP):
        return False
    return any(fnmatch.fnmatch(dest, d) for d in DROP)


def prune(toc):
    """A PyInstaller TOC (list of (dest, source, kind)) without the entries `dropped` names."""
    return [entry for entry in toc if not dropped(entry[0])]


def startup_scripts(scripts):
    """The Analysis's scripts (run-time hooks, then the entry point) without DROPPED_RUNTIME_HOOKS."""
    return [entry for entry in scripts if entry[0] not in DROPPED_RUNTIME_HOOKS]


def ruff_binary() -> Path | None:
    """The ruff program of the virtual environment that builds (next to its python), else one on PATH."""
    here = Path(sys.executable).parent / "ruff"
    if here.is_file():
        return here
    found = shutil.which("ruff")
    return Path(found) if found else None


def strip_libraries(contents: Path) -> list[str]:
    """Strips the symbol tables of the libraries STRIP names inside `contents` (the bundle's _internal folder);
    the paths stripped. Skipped without a `strip` program (binutils)."""
    tool = shutil.which("strip")
    if tool is None:
        return []
    done = []
    for pattern in STRIP:
        for lib in sorted(contents.glob(pattern)):
            if lib.is_file() and not lib.is_symlink():
                subprocess.run([tool, "--strip-unneeded", str(lib)], check=True)
                done.append(str(lib.relative_to(contents)))
    return done


def finish(bundle_dir: Path, strip: bool = True) -> None:
    """After COLLECT: strip the large libraries and put ruff, the desktop entry and the icon next to the
    program."""
    if strip:
        for lib in strip_libraries(bundle_dir / "_internal"):
            print(f"layerloom.spec: stripped {lib}")
    ruff = ruff_binary()
    if ruff is None:
        print("layerloom.spec: WARNING: ruff was not found, so `export --format python` will need ruff on PATH; "
              "install it into the virtual environment (pip install ruff) and build again")
    else:
        shutil.copy2(ruff, bundle_dir / "ruff")
    shutil.copy2(DESKTOP, bundle_dir / DESKTOP.name)
    shutil.copy2(ICON, bundle_dir / ICON.name)
