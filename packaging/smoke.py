"""Smoke test of the BUILT program: runs dist/LayerLoom/LayerLoom offscreen, in an empty folder, with a PATH that
has no virtual environment on it, and checks what a user does first.

    .venv/bin/python packaging/smoke.py [--bundle dist/LayerLoom] [--keep] [--no-ddp]

Steps: the CLI's help and layer catalogue; the summary of a template by name, and that it loads no Qt; one epoch
of training of a template file copied out of the bundle; ONNX, TorchScript, torch.export, PyTorch-script and int8
ONNX exports of the trained weights (each export is read back and compared with PyTorch by the program itself); one
epoch on two processes through torchrun (the program stands in for the Python interpreter, see packaging/entry.py);
the window on Qt's offscreen platform until its first paint; and the window again on the project, watched from
inside, to show that it paints before PyTorch has loaded, opens the project and closes without an error. Prints one
line per step and exits 0 when all passed, 1 when one failed, 2 when there is no build.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_BUNDLE = ROOT / "dist" / "LayerLoom"
APP_NAME = "LayerLoom"
MARK = "LAYERLOOM_FIRST_PAINT"  # gui/startup_probe.py prints it with the wall-clock time of the first paint
TEMPLATE = "cnn_mnist"  # a convolutional network on the digits bundled with scikit-learn

# Run inside the frozen program as `LayerLoom -I probe.py PROJECT`: opens the window on PROJECT as `LayerLoom
# PROJECT` does, reports the first paint and the end of the torch warm-up (gui.app.TorchWarmUp runs on a thread
# named "torch-warm-up"), then closes the window the way a user does (which saves the settings) two seconds later.
WATCH_TORCH = r'''
import os, sys, threading, time
os.environ["LAYERLOOM_STARTUP_PROBE"] = "1"  # print the first paint, keep running

def watch():
    from PySide6.QtCore import QCoreApplication, QMetaObject, Qt
    seen = False
    deadline = time.time() + 180
    while time.time() < deadline:
        alive = any(t.name == "torch-warm-up" for t in threading.enumerate())
        if alive and not seen:
            seen = True
            print(f"WARMUP_STARTED {time.time():.6f} torch_loaded={'torch' in sys.modules}", flush=True)
        if seen and not alive:
            print(f"WARMUP_DONE {time.time():.6f} torch={getattr(sys.modules.get('torch'), '__version__', None)}",
                  flush=True)
            time.sleep(2.0)  # the project opens and the training views are built meanwhile
            QMetaObject.invokeMethod(QCoreApplication.instance(), "closeAllWindows",
                                     Qt.ConnectionType.QueuedConnection)
            return
        time.sleep(0.01)
    print("WARMUP_TIMEOUT", flush=True)
    os._exit(3)

print(f"STARTED {time.time():.6f} torch_loaded={'torch' in sys.modules}", flush=True)
threading.Thread(target=watch, daemon=True).start()
from gui.launcher import main
sys.exit(main(sys.argv[1:]))
'''

# Run as `LayerLoom -I probe.py`: a headless command through the launcher, then which Qt modules are loaded.
HEADLESS_QT = r'''
import sys
from gui.launcher import main
code = main(["summary", "cnn_mnist"])
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"))
print("QT_MODULES", len(qt), ",".join(qt[:5]))
sys.exit(code)
'''


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    note: str


def stamp(text: str, key: str) -> float | None:
    """The number after `key` at the start of a line of `text`."""
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[1])
    return None


class Smoke:
    def __init__(self, bundle: Path, work: Path, ddp: bool):
        self.bundle, self.work, self.ddp = bundle, work, ddp
        self.program = bundle / APP_NAME
        self.results: list[Result] = []
        home = work / "home"
        # no virtual environment on PATH: the bundle must carry its own ruff and Python
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QT_"))}
        self.env.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=str(home), XDG_CONFIG_HOME=str(home / "config"),
                        XDG_DATA_HOME=str(home / "data"), XDG_CACHE_HOME=str(home / "cache"),
                        QT_QPA_PLATFORM="offscreen", LAYERLOOM_NO_DIALOGS="1", LAYERLOOM_DEVICE="cpu")

    def run(self, name: str, args: list[str], check, note=None, timeout: float = 600, env: dict | None = None):
        """Runs the program with `args`; `check(output)` gives the problem or None, `note(output, t0)` the line to
        print when it passed."""
        t0 = time.time()
        try:
            done = subprocess.run([str(self.program), *args], cwd=self.work, env=env or self.env,
                                  capture_output=True, text=True, timeout=timeout)
            out, rc = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = f"{_text(e.stdout)}{_text(e.stderr)}\n(killed after {timeout:.0f} s)", -1
        seconds = time.time() - t0
        problem = f"exit status {rc}" if rc != 0 else check(out)
        text = problem if problem is not None else (note(out, t0) if note else "")
        self.results.append(Result(name, problem is None, seconds, text))
        print(f"{'ok  ' if problem is None else 'FAIL'} {seconds:6.1f} s  {name}: {text}", flush=True)
        if problem is not None:
            print("     " + "\n     ".join(out.strip().splitlines()[-25:]), flush=True)

    def steps(self) -> None:
        w = self.work
        template = self.bundle / "_internal" / "resources" / "templates" / f"{TEMPLATE}.layerloom"
        project = w / f"{TEMPLATE}.layerloom"

        self.run("help", ["--help"], lambda out: None if "train" in out and "export" in out
                 else "the help does not list train and export", lambda out, t0: "lists the headless commands")
        self.run("layers", ["layers"], lambda out: None if "Conv2d" in out and "LSTM" in out
                 else "the catalogue does not list Conv2d and LSTM",
                 lambda out, t0: f"{sum(1 for ln in out.splitlines() if ln.startswith('  '))} lines of catalogue")
        self.run(f"summary {TEMPLATE} (template by name)", ["summary", TEMPLATE],
                 lambda out: None if "conv2d_1" in out else "no table of the template's nodes",
                 lambda out, t0: (last_line(out, "total") or "").strip() or "table printed")
        headless = w / "headless_qt.py"
        headless.write_text(HEADLESS_QT, encoding="utf-8")
        self.run("headless commands load no Qt", ["-I", str(headless)],
                 lambda out: None if "QT_MODULES 0" in out else "Qt was loaded: " + (last_line(out, "QT_MODULES")
                                                                                    or "no report"),
                 lambda out, t0: "no PySide6, shiboken6 or pyqtgraph module after `summary`")
        if not template.is_file():
            self.results.append(Result("bundled template", False, 0.0, f"{template} is missing from the bundle"))
            print(f"FAIL    0.0 s  bundled template: {template} is missing", flush=True)
            return
        shutil.copy2(template, project)

        run_dir = w / "run"
        weights = run_dir / "final.safetensors"
        self.run(f"train {project.name} (1 epoch)", ["train", str(project), "--epochs", "1", "--seed", "0",
                                                     "--device", "cpu", "--out", str(run_dir)],
                 lambda out: None if weights.is_file() else f"no {weights.name} in {run_dir}",
                 lambda out, t0: last_line(out, "epoch 1/1") or "trained")

        for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.ts"), ("pt2", "model.pt2"),
                          ("python", "model.py"), ("int8", "model.int8.onnx")):
            target = w / name
            args = ["export", str(project), "--weights", str(weights), "--format", fmt, "-o", str(target)]
            self.run(f"export --format {fmt} -o {name}", args,
                     lambda out, target=target: None if target.is_file() and target.stat().st_size > 0
                     else f"{target.name} was not written",
                     lambda out, t0, target=target: f"{target.stat().st_size / 1024:.0f} KiB; "
                     + "; ".join(ln.strip() for ln in out.splitlines() if ln.strip().startswith("note:"))[:300])

        if self.ddp:
            ddp_dir = w / "ddp"
            self.run("train --nproc 2 (torchrun, gloo)", ["train", "mlp_784_64_10", "--epochs", "1", "--seed", "0",
                                                         "--device", "cpu", "--nproc", "2", "--out", str(ddp_dir)],
                     lambda out: None if (ddp_dir / "final.safetensors").is_file()
                     else "no final.safetensors from 2 processes",
                     lambda out, t0: last_line(out, "epoch 1/1") or "trained on 2 processes")

        self.run("window (offscreen, quit after the first paint)", [],
                 lambda out: None if stamp(out, MARK) is not None else f"no {MARK} line: the window never painted",
                 lambda out, t0: f"first paint {stamp(out, MARK) - t0:.2f} s after the start",
                 timeout=180, env=dict(self.env, LAYERLOOM_STARTUP_PROBE="quit"))

        probe = w / "watch_torch.py"
        probe.write_text(WATCH_TORCH, encoding="utf-8")

        settings = w / "home" / "config" / "LayerLoom" / "LayerLoom.conf"

        def window_session(out):
            paint, done = stamp(out, MARK), stamp(out, "WARMUP_DONE")
            if "Traceback" in out:
                return "the window raised an exception"
            if paint is None:
                return f"no {MARK} line: the window never painted"
            if done is None or "torch=None" in out:
                return "the torch warm-up never finished, or finished without loading torch"
            if "torch_loaded=True" in out.split("WARMUP_STARTED")[0]:
                return "torch was loaded before the window was made"
            if paint >= done:
                return "the window painted only after PyTorch had loaded"
            if not settings.is_file() or project.name not in settings.read_text(encoding="utf-8", errors="replace"):
                return f"the project was not opened (it is not among the recent files in {settings})"
            return None
        self.run(f"window on {project.name}: paints before PyTorch loads, closes cleanly",
                 ["-I", str(probe), str(project)], window_session,
                 lambda out, t0: f"first paint {stamp(out, MARK) - t0:.2f} s, PyTorch ready "
                                 f"{stamp(out, 'WARMUP_DONE') - t0:.2f} s after the start; project in recent files",
                 timeout=240)

        self.check_contents()

    def check_contents(self) -> None:
        """Files the bundle must (and must not) hold."""
        internal = self.bundle / "_internal"
        plugins = internal / "PySide6" / "Qt" / "plugins" / "platforms"
        need = [plugins / "libqoffscreen.so", plugins / "libqxcb.so", plugins / "libqwayland.so",
                internal / "sklearn" / "datasets" / "data" / "digits.csv.gz", self.bundle / "ruff",
                self.bundle / "layerloom.desktop", self.bundle / "layerloom.png"]
        missing = [str(p.relative_to(self.bundle)) for p in need if not p.exists()]
        cuda = sorted(p.name for p in internal.rglob("*") if p.name.startswith(("libcudart", "libcublas", "libcudnn")))
        tests = [str(p.relative_to(self.bundle)) for p in (internal / "torch" / "bin").glob("test_*")]
        problem = (f"missing: {', '.join(missing)}" if missing else
                   f"test programs left in: {', '.join(tests[:3])}" if tests else None)
        note = problem or f"platform plugins offscreen, xcb, wayland; digits data; ruff; no CUDA libraries" \
                          f"{'' if not cuda else ' (CUDA build: ' + ', '.join(cuda[:3]) + ')'}"
        self.results.append(Result("bundle contents", problem is None, 0.0, note))
        print(f"{'ok  ' if problem is None else 'FAIL'}    0.0 s  bundle contents: {note}", flush=True)
        ldd = shutil.which("ldd")
        if ldd and (plugins / "libqxcb.so").exists():
            out = subprocess.run([ldd, str(plugins / "libqxcb.so")], capture_output=True, text=True).stdout
            absent = sorted({line.split()[0] for line in out.splitlines() if "not found" in line})
            if absent:
                print(f"note          the X11 (xcb) platform needs system libraries this machine lacks: "
                      f"{', '.join(absent)} (on Debian/Ubuntu: apt install libxcb-cursor0 libxcb-icccm4 "
                      f"libxcb-keysyms1 libxkbcommon-x11-0)", flush=True)


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def last_line(text: str, start: str) -> str | None:
    lines = [ln.strip("\r") for ln in text.replace("\r", "\n").splitlines() if ln.startswith(start)]
    return lines[-1].strip() if lines else None


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Smoke-test the built LayerLoom program (offscreen).")
    ap.add_argument("--bundle", default=str(DEFAULT_BUNDLE), help=f"the built folder (default {DEFAULT_BUNDLE})")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (runs, exports) and print its path")
    ap.add_argument("--no-ddp", action="store_true", help="skip the two-process training step")
    args = ap.parse_args(argv)
    bundle = Path(args.bundle).resolve()
    if not (bundle / APP_NAME).is_file():
        print(f"smoke: there is no built program at {bundle / APP_NAME}; build it first with "
              f"`.venv/bin/python packaging/build.py`", file=sys.stderr)
        return 2
    info = bundle / "BUILD-INFO.json"
    facts = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}
    print(f"smoke: {bundle / APP_NAME} ({folder_size(bundle) / 2**20:.0f} MiB"
          f"{', torch ' + facts['torch'] if 'torch' in facts else ''}), offscreen", flush=True)
    work = Path(tempfile.mkdtemp(prefix="layerloom-smoke-"))
    t0 = time.time()
    try:
        smoke = Smoke(bundle, work, ddp=not args.no_ddp)
        smoke.steps()
    finally:
        if args.keep:
            print(f"smoke: work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r.name for r in smoke.results if not r.ok]
    total = len(smoke.results)
    if failed:
        print(f"smoke: {len(failed)} of {total} steps FAILED ({', '.join(failed)}) in {time.time() - t0:.0f} s")
        return 1
    print(f"smoke: all {total} steps passed in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
