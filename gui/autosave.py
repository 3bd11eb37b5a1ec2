"""Autosave and crash recovery: unsaved work is copied to the user's data folder every minute; copies left by a
session that did not close cleanly are offered back at the next start."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ProjectError
from engine.project import Project, load_project, save_project


def default_folder() -> Path:
    import platformdirs
    return Path(platformdirs.user_data_dir("LayerLoom", appauthor=False)) / "autosave"


@dataclass
class Recovered:
    """An autosave found at start: the copy, the file it belongs to (None for a never-saved project), when."""

    copy: Path
    original: str | None
    name: str
    saved_at: float

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        return f"{self.original or self.name + ' (never saved)'}, autosaved {when}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else
    return True


class Autosaver:
    """Writes `<key>.layerloom` plus `<key>.json` (original path, name, time, pid) into `folder`. The key is
    stable per file, so each project has one autosave; `discard` removes it after a save or a clean close."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder else default_folder()

    def key(self, path: str | os.PathLike | None, fallback: str) -> str:
        text = str(Path(path).resolve()) if path else f"untitled:{os.getpid()}:{fallback}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def write(self, key: str, project: Project, original: str | os.PathLike | None) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        copy = save_project(self.folder / f"{key}.layerloom", project)
        meta = {"original": str(original) if original else None, "name": project.name, "saved_at": time.time(),
                "pid": os.getpid()}
        tmp = self.folder / f".{key}.json.tmp"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self.folder / f"{key}.json")
        return copy

    def discard(self, key: str) -> None:
        for suffix in (".layerloom", ".json"):
            try:
                (self.folder / f"{key}{suffix}").unlink()
            except OSError:
                pass

    def pending(self) -> list[Recovered]:
        """Autosaves of sessions that are no longer running (crashed or killed), newest first."""
        found = []
        if not self.folder.is_dir():
            return found
        for meta_path in self.folder.glob("*.json"):
            copy = meta_path.with_suffix(".layerloom")
            try:
                meta = json.loads(meta_path.read_text())
                if not isinstance(meta, dict) or not copy.exists():
                    continue
                # A damaged description (a disk that filled up, a hand edit) must not stop the app from starting:
                # each field is used only when it has the right type, and the copy is still offered.
                pid = meta.get("pid")
                if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31 and _alive(pid):
                    continue
                saved = meta.get("saved_at")
                saved_at = float(saved) if isinstance(saved, (int, float)) and not isinstance(saved, bool) \
                    and 0 < saved < 1e11 else copy.stat().st_mtime
                original = meta.get("original") if isinstance(meta.get("original"), str) else None
                name = meta.get("name") if isinstance(meta.get("name"), str) and meta.get("name") else "untitled"
            except (OSError, ValueError, RecursionError):
                continue
            found.append(Recovered(copy, original or None, name, saved_at))
        return sorted(found, key=lambda r: -r.saved_at)

    def load(self, recovered: Recovered) -> Project:
        """The autosaved project; ProjectError when the copy itself is damaged."""
        try:
            return load_project(recovered.copy)
        except ProjectError as e:
            raise ProjectError(f"the autosave of {recovered.original or recovered.name} cannot be read: {e}"
                               ) from None

    def key_of(self, recovered: Recovered) -> str:
        return recovered.copy.stem
