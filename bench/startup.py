"""Start-up time of the LayerLoom window against a bare PySide6 window, measured in the same run.

    .venv/bin/python bench/startup.py [--rounds 7]

Each round starts a fresh process of each (rounds interleaved) and takes the time from just before the process
is spawned to the window's first paint (the process prints the wall-clock time of its first paint). The app runs
with private settings folders, so no last project or autosave is opened. Prints the medians, the ratio
LayerLoom / bare window, and the goal (LayerLoom at most 1.3 s).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "LAYERLOOM_FIRST_PAINT"

BARE = f"""
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
w = QMainWindow()
w.resize(1400, 860)
class FirstPaint(QObject):
    seen = False
    def eventFilter(self, obj, event):
        if not self.seen and event.type() == QEvent.Type.Paint:
            self.seen = True
            QTimer.singleShot(0, self.report)
        return False
    def report(self):
        print("{MARK}", f"{{time.time():.6f}}", flush=True)
        app.quit()
probe = FirstPaint()
w.installEventFilter(probe)
w.show()
app.exec()
"""


def first_paint(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.time()
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    for line in out.stdout.splitlines():
        if line.startswith(MARK):
            return float(line.split()[1]) - t0
    raise RuntimeError(f"no first paint reported by {cmd}:\n{out.stdout}\n{out.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="layerloom-startup-")
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               XDG_CONFIG_HOME=f"{home}/config", XDG_DATA_HOME=f"{home}/data", XDG_CACHE_HOME=f"{home}/cache",
               LAYERLOOM_STARTUP_PROBE="quit", LAYERLOOM_NO_DIALOGS="1")
    py = sys.executable
    runs: dict[str, list[float]] = {"bare PySide6 window": [], "LayerLoom": []}
    for r in range(args.rounds + 1):  # round 0 warms the file cache
        for name in runs:
            cmd = [py, "-c", BARE] if name.startswith("bare") else [py, "-m", "gui.launcher"]
            t = first_paint(cmd, env)
            if r:
                runs[name].append(t)
    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = statistics.median(a / b for a, b in zip(runs["LayerLoom"], runs["bare PySide6 window"], strict=True))
    print(f"platform {env['QT_QPA_PLATFORM']}, {args.rounds} rounds, process spawn → first paint:")
    for k, v in runs.items():
        print(f"  {k:20s} median {med[k]:.3f} s  (min {min(v):.3f}, max {max(v):.3f})")
    verdict = "met" if med["LayerLoom"] <= 1.3 else "NOT met"
    print(f"ratio LayerLoom / bare window: {ratio:.2f}×; LayerLoom {med['LayerLoom']:.2f} s (goal ≤ 1.3 s: {verdict})")


if __name__ == "__main__":
    main()
