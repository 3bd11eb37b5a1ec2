"""Writing a small file so that a crash never leaves half of it: the project, a block file, the trusted-code list."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, data: bytes | str, *, mode: int | None = None) -> Path:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path` (and sync the
    folder), so a process killed at any moment leaves the previous complete file or the new one. `mode`: the new
    file's permissions (None: those of the file it replaces, else 0o644). Raises OSError, with the temporary file
    removed."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        if mode is None:
            mode = p.stat().st_mode & 0o777 if p.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, p)
        tmp = None
        fsync_dir(folder)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return p


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; nothing elsewhere or when the folder cannot be opened)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
