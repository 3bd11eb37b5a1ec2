"""LayerLoom's desktop window (PySide6): views and controllers over the engine. Arrives with the editor issue."""

from . import qt_compat  # noqa: F401  (before any Qt call: see its docstring)
