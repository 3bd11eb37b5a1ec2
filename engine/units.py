"""How figures are written for people: counts (2.5M) and sizes in bytes (266.7 KB)."""
from __future__ import annotations


def format_count(n: int) -> str:
    """2,500,000 → 2.5M; below a thousand the number itself."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def format_bytes(n: int) -> str:
    """A size in binary units: 8 B, 266.7 KB, 1.5 MB, 2.0 GB."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
