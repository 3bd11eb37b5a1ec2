"""The PySide6 refcount workaround: many void Qt calls and signal emits no longer abort the interpreter."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import gui  # noqa: F401  (installs the workaround)
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtGui import QColor

    class Source(QObject):
        fired = Signal(int)

    source, color = Source(), QColor(1, 2, 3)
    source.fired.connect(lambda value: None)
    for _ in range(30_000):  # without the workaround None has about 6,000 references to spare
        color.setAlphaF(0.5)
        source.fired.emit(1)
    print("alive")
""")


def test_thousands_of_void_calls_and_emits_leave_the_interpreter_alive():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "alive"
