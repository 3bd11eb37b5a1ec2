#!/usr/bin/env python3
"""Set up LayerLoom's virtual environment (.venv) if needed, then launch the app or run the tests.

    python3 run.py            set up, then launch LayerLoom (arguments go to `layerloom`)
    python3 run.py test       set up, then run the whole test suite (arguments go to pytest)

The set-up is idempotent: a stamp in .venv records what was installed, so the second run
starts at once. It picks the PyTorch build that suits the machine: the CPU build on a Linux
machine without an NVIDIA driver, the default build (CUDA on Linux, MPS on macOS) elsewhere.
Set LAYERLOOM_TORCH=cpu or LAYERLOOM_TORCH=default to override the choice.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / "layerloom-setup.stamp"
TORCH_VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI = "https://pypi.org/simple"
SETUP_VERSION = "1"  # bump to force a reinstall when this script's install steps change


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def say(msg: str) -> None:
    print(f"[layerloom setup] {msg}", flush=True)


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


def torch_flavour() -> str:
    choice = os.environ.get("LAYERLOOM_TORCH", "").strip().lower()
    if choice in {"cpu", "default"}:
        return choice
    if platform.system() == "Linux" and not has_nvidia_gpu():
        return "cpu"
    return "default"


def stamp_text() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return f"{SETUP_VERSION} {TORCH_VERSION} {torch_flavour()} {digest}\n"


def pip(*args: str) -> int:
    cmd = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    return subprocess.call(cmd)


def installed_torch() -> str | None:
    code = "import importlib.metadata as m; print(m.version('torch'))"
    out = subprocess.run([str(venv_python()), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def install_torch() -> None:
    have = installed_torch()
    flavour = torch_flavour()
    cpu_ok = flavour != "cpu" or "+cpu" in have or platform.system() != "Linux" if have else False
    if have and have.split("+")[0] == TORCH_VERSION and cpu_ok:
        return
    if flavour == "cpu":
        say(f"installing PyTorch {TORCH_VERSION} (CPU build: no NVIDIA driver found)")
        # A local wheel or the user's own index may already hold the CPU build; else PyTorch's CPU index.
        if pip(f"torch=={TORCH_VERSION}+cpu") == 0:
            return
        if pip(f"torch=={TORCH_VERSION}", "--index-url", CPU_INDEX, "--extra-index-url", PYPI) == 0:
            return
        sys.exit("Could not install the CPU build of PyTorch; check the network and try again.")
    say(f"installing PyTorch {TORCH_VERSION} (the default build for this machine)")
    if pip(f"torch=={TORCH_VERSION}") != 0:
        sys.exit("Could not install PyTorch; check the network and try again.")


def ensure_env() -> None:
    if sys.version_info[:2] != (3, 11):
        other = shutil.which("python3.11")
        if other and Path(other).resolve() != Path(sys.executable).resolve():
            os.execv(other, [other, str(Path(__file__).resolve()), *sys.argv[1:]])
        sys.exit(f"LayerLoom needs Python 3.11; this is {platform.python_version()}. Install python3.11 and retry.")
    if STAMP.exists() and STAMP.read_text() == stamp_text() and venv_python().exists():
        return
    if not venv_python().exists():
        say(f"creating the virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
    say("installing dependencies (the first run takes a few minutes)")
    install_torch()
    if pip("-e", f"{ROOT}[test]") != 0:
        sys.exit("Installing LayerLoom's dependencies failed; see the messages above.")
    STAMP.write_text(stamp_text())
    say("ready")


def main() -> int:
    args = sys.argv[1:]
    ensure_env()
    py = str(venv_python())
    env = dict(os.environ)
    if args[:1] == ["test"]:
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        return subprocess.call([py, "-m", "pytest", *args[1:]], cwd=ROOT, env=env)
    return subprocess.call([py, "-m", "gui.launcher", *args], env=env)


if __name__ == "__main__":
    sys.exit(main())
