"""Start-up of the built program (dist/LayerLoom/LayerLoom) against running from source, measured in the same run.

    .venv/bin/python bench/startup_bundle.py [--rounds 7] [--bundle dist/LayerLoom]

Two measurements, each a fresh process per round with the rounds interleaved (frozen, source, frozen, ...):
* window: from just before the process is spawned to the window's first paint on Qt's offscreen platform (the
  process prints the wall-clock time of its first paint, gui/startup_probe.py, and quits);
* CLI: the whole run of `layerloom layers` (the layer catalogue, headless, no Qt, no torch).
Source means `.venv/bin/python -m gui.launcher`. Round 0 warms the file cache and is reported apart as the first
start; the medians and the ratio frozen / source are over the other rounds. Also prints the bundle's size and its
largest parts. Settings go to a private folder, so no last project or autosave is opened.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT / "dist" / "LayerLoom"
MARK = "LAYERLOOM_FIRST_PAINT"


def first_paint(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.time()
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    for line in out.stdout.splitlines():
        if line.startswith(MARK):
            return float(line.split()[1]) - t0
    raise RuntimeError(f"no first paint reported by {cmd}:\n{out.stdout}\n{out.stderr}")


def completed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    seconds = time.perf_counter() - t0
    if out.returncode != 0 or "Conv2d" not in out.stdout:
        raise RuntimeError(f"{cmd} failed (exit status {out.returncode}):\n{out.stdout}\n{out.stderr}")
    return seconds


def sizes(bundle: Path) -> tuple[int, list[tuple[str, int]]]:
    """The bundle's bytes, and the bytes of each top-level part of _internal, largest first."""
    def size(p: Path) -> int:
        if p.is_symlink():
            return 0
        if p.is_file():
            return p.stat().st_size
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
    total = size(bundle)
    internal = bundle / "_internal"
    parts = sorted(((p.name, size(p)) for p in internal.iterdir()), key=lambda kv: -kv[1]) if internal.is_dir() else []
    return total, parts


def main() -> int:
    ap = argparse.ArgumentParser(description="Start-up time of the built program against running from source.")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--bundle", default=str(DEFAULT_BUNDLE), help=f"the built folder (default {DEFAULT_BUNDLE})")
    args = ap.parse_args()
    bundle = Path(args.bundle).resolve()
    program = bundle / "LayerLoom"
    if not program.is_file():
        print(f"startup_bundle: there is no built program at {program}; build it first with "
              f"`.venv/bin/python packaging/build.py`", file=sys.stderr)
        return 2
    home = tempfile.mkdtemp(prefix="layerloom-startup-bundle-")
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"),
               XDG_CONFIG_HOME=f"{home}/config", XDG_DATA_HOME=f"{home}/data", XDG_CACHE_HOME=f"{home}/cache",
               LAYERLOOM_STARTUP_PROBE="quit", LAYERLOOM_NO_DIALOGS="1")
    source = [sys.executable, "-m", "gui.launcher"]
    kinds = {"frozen": [str(program)], "source": source}
    window: dict[str, list[float]] = {k: [] for k in kinds}
    cli: dict[str, list[float]] = {k: [] for k in kinds}
    first: dict[str, tuple[float, float]] = {}
    for r in range(args.rounds + 1):
        for name, cmd in kinds.items():
            w = first_paint(cmd, env)
            c = completed(cmd + ["layers"], env)
            if r == 0:
                first[name] = (w, c)
            else:
                window[name].append(w)
                cli[name].append(c)

    total, parts = sizes(bundle)
    info = bundle / "BUILD-INFO.json"
    facts = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}
    print(f"bundle {bundle}: {total / 2**20:.0f} MiB"
          + (f" (torch {facts['torch']}, built in {facts['seconds']:.0f} s)" if "torch" in facts else ""))
    print("  largest parts: " + ", ".join(f"{n} {b / 2**20:.0f} MiB" for n, b in parts[:8]))
    print(f"platform {env['QT_QPA_PLATFORM']}, {args.rounds} rounds after one warm-up round, interleaved:")
    for label, data in (("window: spawn → first paint", window), ("CLI: `layerloom layers` run", cli)):
        print(f"  {label}")
        for name, values in data.items():
            print(f"    {name:7s} median {statistics.median(values):.3f} s  (min {min(values):.3f}, "
                  f"max {max(values):.3f})")
        ratio = statistics.median(a / b for a, b in zip(data["frozen"], data["source"], strict=True))
        print(f"    ratio frozen / source: {ratio:.2f}×")
    print("  first start (round 0, file cache warming): " + ", ".join(
        f"{name} window {w:.2f} s, CLI {c:.2f} s" for name, (w, c) in first.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
