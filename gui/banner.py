"""A banner across the top of the canvas for messages that must not be missed (a failed run, a broken file):
a title, the cause and what to try, and a close button. It never blocks the window."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout

from .colors import ERROR_COLOR, INFO_COLOR, WARNING_COLOR

_COLOURS = {"error": ERROR_COLOR, "warning": WARNING_COLOR, "info": INFO_COLOR}


class Banner(QFrame):
    """Hidden until show_message(); the close button (or hide()) dismisses it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.title = QLabel()
        self.title.setObjectName("bannerTitle")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        self.close_button = close
        column = QVBoxLayout()
        column.setSpacing(2)
        column.addWidget(self.title)
        column.addWidget(self.text)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 8, 8)
        row.addLayout(column, 1)
        row.addWidget(close, 0, Qt.AlignTop)
        self.level = ""
        self.hide()

    def show_message(self, title: str, text: str, level: str = "error") -> None:
        colour = _COLOURS.get(level, ERROR_COLOR)
        self.level = level
        c = QColor(colour)  # Qt reads "#rrggbbaa" as #aarrggbb: the tint's alpha goes through rgba()
        self.setStyleSheet(f"QFrame#banner {{ background: rgba({c.red()}, {c.green()}, {c.blue()}, 34); "
                           f"border-bottom: 2px solid {colour}; }}"
                           f"QLabel#bannerTitle {{ font-weight: 600; color: {colour}; }}")
        self.title.setText(title)
        self.text.setText(text)
        self.show()
