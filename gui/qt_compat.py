"""Keeps PySide6 6.12.0 from crashing Python 3.10/3.11: its abi3 wheel returns None from every void method
(and True from Signal.emit) without taking a reference, so each call lowers the refcount of the singleton and,
a few thousand calls later, CPython aborts with "none_dealloc: deallocating None" (or "bool_dealloc").

Python 3.12 made these singletons immortal (PEP 683) and ignores their refcounts; on older versions we give
them a refcount so large that no run can spend it, which is what immortality amounts to. Imported first by
the `gui` package, so it is in place before any Qt call. pyproject.toml keeps 6.12.0 out of new installs
(6.11.3 does not leak); this guard protects an environment that has it anyway.
"""
from __future__ import annotations

import sys

_HEADROOM = 1 << 48  # a billion leaked references a second would take nine years to spend this


def _pyside_version() -> str:
    """The installed PySide6's version, read from its metadata so that the headless commands (which import
    the gui package only for its launcher) do not load Qt."""
    from importlib import metadata
    for dist in ("PySide6-Essentials", "PySide6"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return ""


def make_singletons_immortal(force: bool = False) -> bool:
    """Raise the refcounts of None, True and False far out of reach when the installed PySide6 is the leaking
    release (or `force`); does nothing (False) on Python 3.12+ or another interpreter. Safe to call twice."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if not force and _pyside_version() != "6.12.0":
        return False
    import ctypes
    for singleton in (None, True, False):
        # ob_refcnt is a Py_ssize_t at the start of every CPython object, whose id() is its address.
        refcnt = ctypes.c_ssize_t.from_address(id(singleton))
        if refcnt.value < _HEADROOM:
            refcnt.value += _HEADROOM
    return True


make_singletons_immortal()
