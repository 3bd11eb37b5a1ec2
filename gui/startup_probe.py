"""Start-up measurement for bench/startup.py: prints the wall-clock time of the window's first paint."""
from __future__ import annotations

import sys
import time

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

MARK = "LAYERLOOM_FIRST_PAINT"


class FirstPaint(QObject):
    """Watches `window` for its first paint; prints `MARK <epoch seconds>` and optionally quits the app."""

    def __init__(self, window: QWidget, quit_after: bool = False):
        super().__init__(window)
        self.quit_after = quit_after
        self.seen = False
        window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if not self.seen and event.type() == QEvent.Type.Paint:
            self.seen = True
            # After the paint handlers ran: the frame is drawn when this timer fires.
            QTimer.singleShot(0, self._report)
        return False

    def _report(self) -> None:
        print(f"{MARK} {time.time():.6f}", flush=True)
        sys.stdout.flush()
        if self.quit_after:
            QApplication.instance().quit()
