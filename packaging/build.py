"""Builds LayerLoom's desktop program with PyInstaller: one folder, dist/LayerLoom/, run as dist/LayerLoom/LayerLoom.

    .venv/bin/python packaging/build.py            # build (installs PyInstaller into the venv when missing)
    .venv/bin/python packaging/build.py --smoke    # build, then run packaging/smoke.py on the result
    .venv/bin/python packaging/build.py --install-desktop   # add the built program to the desktop's menu

The bundle carries the PyTorch that is installed in the virtual environment: the CPU build here; install a CUDA
wheel into the venv first for a CUDA bundle (packaging/README.md). Intermediate files go to build/pyinstaller/,
the result to dist/LayerLoom/ (both git-ignored). What goes in is listed in packaging/bundle.py.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / "layerloom.spec"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"
APP_NAME = "LayerLoom"
PYINSTALLER_REQ = "pyinstaller>=6.10,<7"


class BuildError(Exception):
    """A build that cannot go on; the message says what to do."""


def check_interpreter() -> None:
    """The build must run with the project's Python 3.11 and its dependencies (what the bundle will carry)."""
    if sys.version_info[:2] != (3, 11):
        raise BuildError(f"LayerLoom is built with Python 3.11, but this is {sys.version.split()[0]}; run "
                         f"`.venv/bin/python packaging/build.py` (python3 run.py creates .venv)")
    missing = [m for m in ("torch", "PySide6", "engine", "gui", "onnx", "onnxruntime", "sklearn")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise BuildError(f"{', '.join(missing)} cannot be imported by {sys.executable}; run the build with the "
                         f"project's virtual environment (.venv/bin/python packaging/build.py) after "
                         f"`python3 run.py` has installed it")


def ensure_pyinstaller() -> str:
    """PyInstaller's version, installing it into this interpreter's environment first when it is missing."""
    if importlib.util.find_spec("PyInstaller") is None:
        print(f"build: installing {PYINSTALLER_REQ} into {sys.prefix}", flush=True)
        done = subprocess.run([sys.executable, "-m", "pip", "install", PYINSTALLER_REQ])
        if done.returncode != 0:
            raise BuildError(f"pip could not install {PYINSTALLER_REQ}; install it yourself with "
                             f"`{sys.executable} -m pip install \"{PYINSTALLER_REQ}\"` and build again")
        importlib.invalidate_caches()
    from importlib import metadata
    return metadata.version("pyinstaller")


def torch_flavour() -> str:
    """'cpu', 'cuda X.Y' or 'rocm ...' for the installed torch, read from its metadata without importing it."""
    from importlib import metadata
    version = metadata.version("torch")
    local = version.partition("+")[2]
    if local.startswith("cu"):
        return f"cuda {local[2:-1]}.{local[-1]}" if len(local) > 3 else f"cuda ({local})"
    if local.startswith("rocm"):
        return local
    requires = metadata.requires("torch") or []
    if any(r.startswith("nvidia-") and "platform_system == \"Linux\"" in r for r in requires):
        return "cuda (from PyPI's nvidia-* packages)"
    return "cpu"


def folder_size(path: Path) -> int:
    """Bytes in the files under `path` (links not followed, not counted twice)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def build(clean: bool = False, strip: bool = True) -> dict:
    """Runs PyInstaller on packaging/layerloom.spec; facts about the build (also written to BUILD-INFO.json in
    the bundle). BuildError when PyInstaller fails."""
    check_interpreter()
    pyinstaller = ensure_pyinstaller()
    if not (HERE / "layerloom.png").is_file():
        subprocess.run([sys.executable, str(HERE / "make_icon.py")], check=True)
    cmd = [sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm", "--log-level", "WARN",
           "--distpath", str(DIST), "--workpath", str(WORK)]
    if clean:
        cmd.append("--clean")
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    if not strip:
        env["LAYERLOOM_NO_STRIP"] = "1"
    flavour = torch_flavour()
    print(f"build: PyInstaller {pyinstaller}, torch {flavour}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env)
    seconds = time.perf_counter() - t0
    bundle = DIST / APP_NAME
    if done.returncode != 0 or not (bundle / APP_NAME).is_file():
        raise BuildError(f"PyInstaller failed (exit status {done.returncode}); its messages are above. Try again "
                         f"with --clean, which rebuilds from scratch")
    from importlib import metadata
    info = {"program": str(bundle / APP_NAME), "seconds": round(seconds, 1), "bytes": folder_size(bundle),
            "files": sum(len(f) for _d, _s, f in os.walk(bundle)), "torch": metadata.version("torch"),
            "torch_flavour": flavour, "pyinstaller": pyinstaller, "python": sys.version.split()[0],
            "built": time.strftime("%Y-%m-%d %H:%M:%S")}
    (bundle / "BUILD-INFO.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _exec_quoted(program: Path) -> str:
    """`program` as one quoted argument of an Exec key: the Desktop Entry Specification escapes ", `, $ and \\
    inside quotes with a backslash, and then every backslash of the value is doubled."""
    text = "".join("\\" + c if c in '"`$\\' else c for c in str(program))
    return '"' + text.replace("\\", "\\\\") + '"'


def desktop_entry_text(program: Path) -> str:
    """packaging/layerloom.desktop with Exec and TryExec pointing at `program` (an absolute path)."""
    lines = []
    for line in (HERE / "layerloom.desktop").read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = f"Exec={_exec_quoted(program)} %f"
        elif line.startswith("TryExec="):
            line = f"TryExec={program}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def install_desktop_entry(bundle: Path, data_home: Path) -> list[Path]:
    """Adds the built program at `bundle` to the desktop's menu for this user: the .desktop file into
    DATA_HOME/applications and the icon into DATA_HOME/icons/hicolor/256x256/apps; the files written."""
    program = bundle.resolve() / APP_NAME
    if not program.is_file():
        raise BuildError(f"there is no built program at {program}; build it first with "
                         f"`.venv/bin/python packaging/build.py`")
    apps = data_home / "applications"
    icons = data_home / "icons" / "hicolor" / "256x256" / "apps"
    apps.mkdir(parents=True, exist_ok=True)
    icons.mkdir(parents=True, exist_ok=True)
    desktop = apps / "layerloom.desktop"
    desktop.write_text(desktop_entry_text(program), encoding="utf-8")
    icon = icons / "layerloom.png"
    shutil.copy2(HERE / "layerloom.png", icon)
    return [desktop, icon]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build LayerLoom's desktop program (PyInstaller, one folder).")
    ap.add_argument("--clean", action="store_true", help="rebuild from scratch (empties PyInstaller's cache)")
    ap.add_argument("--no-strip", action="store_true", help="keep the symbol tables of the large libraries")
    ap.add_argument("--smoke", action="store_true", help="run packaging/smoke.py on the result")
    ap.add_argument("--install-desktop", action="store_true",
                    help="only add an existing build to the desktop's menu (XDG_DATA_HOME, ~/.local/share)")
    args = ap.parse_args(argv)
    try:
        if args.install_desktop:
            data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
            for path in install_desktop_entry(DIST / APP_NAME, data_home):
                print(f"wrote {path}")
            return 0
        info = build(clean=args.clean, strip=not args.no_strip)
    except BuildError as e:
        print(f"build: {e}", file=sys.stderr)
        return 1
    print(f"build: done in {info['seconds']:.0f} s: {info['program']} — {info['bytes'] / 2**20:.0f} MiB in "
          f"{info['files']} files (torch {info['torch']}, {info['torch_flavour']})", flush=True)
    if args.smoke:
        return subprocess.run([sys.executable, str(HERE / "smoke.py"), "--bundle", str(DIST / APP_NAME)]).returncode
    print("build: next, check it with `.venv/bin/python packaging/smoke.py`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
