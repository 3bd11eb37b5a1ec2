"""Training runs on disk: one folder per run with its settings, history, weights and outcome; listing past runs
and reading their histories back (to overlay curves). Used by `layerloom train` and the app's worker alike.

A run folder holds::

    settings.json        what was trained and how: the project's data/loss/optimizer/schedule/training sections
                         (training with the overrides applied) and the overrides themselves
    history.json         {"epochs": [logs per epoch], "steps": [logs per step]} (plain floats)
    history.csv          one row per epoch;  steps.csv: one row per step
    final.safetensors    the weights at the end (after a stop or a NaN loss: the last good ones)
    best.safetensors     the weights of the best epoch (lowest val_loss), when there was one
    run.json             the outcome: status, message, epochs and steps done, notes, time ...
    checkpoints/last/    an exact-resume checkpoint (Trainer.save_checkpoint)

Only plain data and files: no Qt, and torch only where weights are written.
"""
from __future__ import annotations

import csv
import datetime as dt
import errno
import json
import math
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .callbacks import Callback
from .errors import ProjectError

RUNS_FOLDER = "runs"
PROJECT_SUFFIX = ".layerloom"
FINAL, BEST, HISTORY, SETTINGS, RESULT = "final.safetensors", "best.safetensors", "history.json", "settings.json", \
    "run.json"
CHECKPOINT = Path("checkpoints") / "last"  # Trainer.save_checkpoint's folder in a run


# ---- folders ---------------------------------------------------------------------------------------------

def _safe_name(name: str) -> str:
    """A name usable as a folder name everywhere: letters, digits, '-', '_' and '.', at most 60 characters."""
    cleaned = re.sub(r"[^\w.-]+", "_", str(name or "").strip(), flags=re.ASCII).strip("._")
    return cleaned[:60] or "run"


def project_folder(base: str | os.PathLike) -> Path:
    """The folder of a project: `base` itself when it is a folder, the file's folder for a project file."""
    p = Path(base)
    if p.suffix == PROJECT_SUFFIX or p.is_file():
        return p.parent
    return p


def runs_folder(base: str | os.PathLike) -> Path:
    """Where the runs of the project at `base` (its file or folder) are kept: `<project folder>/runs`."""
    return project_folder(base) / RUNS_FOLDER


def new_run_dir(base: str | os.PathLike, name: str, when: dt.datetime | None = None) -> Path:
    """Create and return a new, empty run folder `<project folder>/runs/<name>-YYYYmmdd-HHMMSS`; a second run in
    the same second gets `-2`, `-3` ... `base` is the project file or its folder."""
    stamp = (when or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    parent = runs_folder(base)
    parent.mkdir(parents=True, exist_ok=True)
    stem = f"{_safe_name(name)}-{stamp}"
    for i in range(1, 10_000):
        folder = parent / (stem if i == 1 else f"{stem}-{i}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise ProjectError(f"cannot find a free run folder name in {parent}", str(parent))  # pragma: no cover


# ---- writing ---------------------------------------------------------------------------------------------

def _state_of(weights: Any) -> dict[str, Any]:
    """A state dict of contiguous CPU tensors from a module or a mapping of tensors / NumPy arrays."""
    import torch
    state = weights.state_dict() if hasattr(weights, "state_dict") else weights
    return {k: torch.as_tensor(v).detach().contiguous().cpu() for k, v in state.items()}


def save_weights(weights: Any, path: str | os.PathLike) -> Path:
    """Write a module's (or a state dict's) weights to `path` as safetensors, atomically (a reader never sees a
    half-written file). ProjectError when the disk is full or the folder cannot be written; the file that was
    there is kept."""
    from safetensors.torch import save_file
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    state = _state_of(weights)
    try:
        save_file(state, str(tmp))
        os.replace(tmp, path)
    except Exception as e:  # OSError, or safetensors' own error wrapping one ("I/O error: No space left ...")
        _discard(tmp)
        raise _write_error(path, e) from None
    return path


def _write_error(path: Path, error: BaseException) -> ProjectError:
    """A failed write in words: the reason (safetensors wraps it as "I/O error: ... (os error N)") and the cure."""
    if isinstance(error, OSError):
        code, reason = error.errno, error.strerror or str(error)
    else:
        found = re.search(r"I/O error: (.*?) \(os error (\d+)\)", str(error))
        code, reason = (int(found.group(2)), found.group(1)) if found else (None, str(error).strip()[:200])
    if code == errno.ENOENT:
        cure = "its folder no longer exists: choose another folder"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        cure = "choose a folder you can write to"
    else:
        try:
            free = f"{shutil.disk_usage(path.parent).free / 1e6:,.0f} MB are free there. "
        except OSError:
            free = ""
        cure = f"{free}Free some disk space or choose another folder"
    return ProjectError(f"cannot be written ({reason}); {cure}. The previous copy of the file, if any, is kept",
                        str(path))


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _replace_atomically(path: Path, write) -> None:
    """Write through `write(file)` into a temporary file beside `path`, sync it to disk and rename it over `path`:
    a process killed at any moment leaves either the previous complete file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        raise _write_error(path, e) from None


def _plain(value: Any) -> Any:
    """JSON-safe: NumPy scalars become Python numbers, NaN and infinities become null."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(_plain(data), indent=1, default=str)
    _replace_atomically(path, lambda f: f.write(text))


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]

    def write(f) -> None:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)

    _replace_atomically(path, write)


def write_history(folder: str | os.PathLike, history: Mapping[str, list[dict[str, float]]]) -> None:
    """history.json ({"epochs": [...], "steps": [...]}), history.csv (one row per epoch) and steps.csv."""
    folder = Path(folder)
    history = {"epochs": list(history.get("epochs", [])), "steps": list(history.get("steps", []))}
    _write_json(folder / HISTORY, history)
    _write_csv(folder / "history.csv", history["epochs"])
    _write_csv(folder / "steps.csv", history["steps"])


def run_settings(project: Any, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What settings.json records: the project's name and settings sections, its training section with the
    overrides applied (None values ignored), and the overrides themselves."""
    from .runner import training_settings
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    return {"project": project.name, "data": project.data, "loss": project.loss, "optimizer": project.optimizer,
            "schedule": project.schedule, "training": training_settings(project, overrides),
            "overrides": overrides}


def save_run(folder: str | os.PathLike, settings: Mapping[str, Any], history: Mapping[str, list], weights: Any,
             best_weights: Any = None, result: Mapping[str, Any] | None = None) -> Path:
    """Write a finished (or stopped, or failed) run into `folder`: settings.json, the history files,
    final.safetensors (skipped when `weights` is None), best.safetensors when `best_weights` is given (a best
    file already there, e.g. from BestWeights, is kept otherwise) and run.json with `result` plus the time
    (`saved_at`, seconds since the epoch, unless `result` has it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / SETTINGS, dict(settings))
    write_history(folder, history)
    if weights is not None:
        save_weights(weights, folder / FINAL)
    if best_weights is not None:
        save_weights(best_weights, folder / BEST)
    outcome = dict(result or {})
    outcome.setdefault("status", "finished")
    outcome.setdefault("epochs_done", len(history.get("epochs", [])))
    outcome.setdefault("saved_at", time.time())
    outcome.setdefault("saved", dt.datetime.fromtimestamp(outcome["saved_at"]).isoformat(timespec="seconds"))
    _write_json(folder / RESULT, outcome)
    return folder


class BestWeights(Callback):
    """Keeps best.safetensors in `folder`: the weights of the epoch with the lowest monitored figure (val_loss,
    or the training loss without a validation split)."""

    def __init__(self, folder: str | os.PathLike, monitor: str = "val_loss"):
        self.folder, self.monitor = Path(folder), monitor
        self.best: float | None = None
        self.best_epoch: int | None = None

    @property
    def path(self) -> Path | None:
        """The best weights' file once one was written."""
        return self.folder / BEST if self.best_epoch is not None and (self.folder / BEST).is_file() else None

    def on_fit_start(self, trainer, logs):
        for epoch_logs in trainer.history.epochs:  # after a resume, the best so far is in the history
            self._consider(trainer, epoch_logs, save=False)

    def on_train_epoch_end(self, trainer, logs):
        self._consider(trainer, logs, save=True)

    def _consider(self, trainer, logs, save: bool) -> None:
        value = logs.get(self.monitor, logs.get(self.monitor.removeprefix("val_")))
        if value is None or value != value:
            return
        if self.best is None or value < self.best:
            self.best, self.best_epoch = value, int(logs["epoch"])
            if save:
                save_weights(trainer.module, self.folder / BEST)


# ---- reading ---------------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    """One run folder as a list shows it. `time` is when it was saved (seconds since the epoch; the folder's
    time for a run that never finished writing), `metrics` the last epoch's figures, `status` finished, stopped,
    failed or incomplete (no run.json: still running, or the app was killed)."""

    name: str
    folder: Path
    time: float
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    epochs_done: int = 0
    message: str = ""
    weights: Path | None = None
    best_weights: Path | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_info(folder: str | os.PathLike) -> RunInfo:
    """What a run folder holds, read from its run.json and history.json (missing files give defaults)."""
    folder = Path(folder)
    outcome = _read_json(folder / RESULT)
    outcome = outcome if isinstance(outcome, dict) else {}
    history = _read_json(folder / HISTORY)
    epochs = history.get("epochs", []) if isinstance(history, dict) else _checkpoint_epochs(folder)
    last = epochs[-1] if epochs and isinstance(epochs[-1], dict) else outcome.get("last_epoch") or {}
    metrics = {k: float(v) for k, v in last.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    saved = outcome.get("saved_at")
    if not isinstance(saved, (int, float)):
        try:
            saved = folder.stat().st_mtime
        except OSError:
            saved = 0.0
    return RunInfo(name=folder.name, folder=folder, time=float(saved),
                   status=str(outcome.get("status") or "incomplete"), metrics=metrics,
                   epochs_done=int(outcome.get("epochs_done", len(epochs)) or 0),
                   message=str(outcome.get("message") or ""),
                   weights=folder / FINAL if (folder / FINAL).is_file() else None,
                   best_weights=folder / BEST if (folder / BEST).is_file() else None)


def list_runs(base: str | os.PathLike) -> list[RunInfo]:
    """The runs of the project at `base` (its file or folder; a `runs` folder itself works too), newest first.
    A folder counts as a run when it holds run.json, history.json, settings.json or a checkpoint (a run killed
    before it finished: status "incomplete")."""
    base = Path(base)
    parent = base if base.name == RUNS_FOLDER and base.is_dir() else runs_folder(base)
    if not parent.is_dir():
        return []
    infos = [run_info(p) for p in parent.iterdir()
             if p.is_dir() and (any((p / f).is_file() for f in (RESULT, HISTORY, SETTINGS))
                                or (p / CHECKPOINT / "meta.json").is_file())]
    return sorted(infos, key=lambda r: (r.time, r.name), reverse=True)


def load_history(folder: str | os.PathLike) -> dict[str, list[dict[str, float]]]:
    """A run's history {"epochs": [...], "steps": [...]} from history.json (or history.csv when only that is
    left). ProjectError when the folder holds neither."""
    folder = Path(folder)
    data = _read_json(folder / HISTORY)
    if isinstance(data, dict):
        return {"epochs": list(data.get("epochs") or []), "steps": list(data.get("steps") or [])}
    rows: dict[str, list[dict[str, float]]] = {"epochs": [], "steps": []}
    found = False
    for key, name in (("epochs", "history.csv"), ("steps", "steps.csv")):
        try:
            with open(folder / name, newline="") as f:
                rows[key] = [{k: float(v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(f)]
            found = True
        except OSError:
            continue
        except ValueError as e:
            raise ProjectError(f"{name} holds a value that is not a number ({e})", str(folder / name)) from None
    if not found:
        epochs = _checkpoint_epochs(folder)
        if epochs:  # a run killed before it finished: its last checkpoint has the epochs
            return {"epochs": epochs, "steps": []}
        raise ProjectError("this folder holds no training history (history.json or history.csv)", str(folder))
    return rows


def _checkpoint_epochs(folder: Path) -> list[dict[str, float]]:
    """The epoch logs in the run's last checkpoint: all a run that was killed (the app, the machine) leaves."""
    meta = _read_json(folder / CHECKPOINT / "meta.json")
    history = meta.get("history") if isinstance(meta, dict) else None
    epochs = history.get("epochs") if isinstance(history, dict) else None
    return [e for e in epochs if isinstance(e, dict)] if isinstance(epochs, list) else []


def history_columns(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Rows of logs as one float64 NumPy array per key (NaN where a row lacks the key), for plotting."""
    import numpy as np
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    return {k: np.array([row.get(k, math.nan) if row.get(k) is not None else math.nan for row in rows],
                        dtype=np.float64) for k in keys}
