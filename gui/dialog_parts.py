"""Pieces the window's task dialogs (export, transfer, learning-rate finder) and the inspector build alike: the
dialog's body with its title, small upper-case section headings, the thin busy bar, the rich-text status line,
the muted colour of secondary labels, and the worker's hand-back that tolerates a dialog closed meanwhile.

Imports nothing of the window's own modules but the palette helpers, so any view may use it.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget

from .palette import blend


def dialog_body(dialog: QWidget, title: str, spacing: int = 6) -> QVBoxLayout:
    """The dialog's top-level column (the common margins and `spacing`) with `title` in large bold type first."""
    body = QVBoxLayout(dialog)
    body.setContentsMargins(18, 16, 18, 14)
    body.setSpacing(spacing)
    label = QLabel(title, dialog)
    f = QFont(dialog.font())
    f.setPointSizeF(f.pointSizeF() * 1.35)
    f.setBold(True)
    label.setFont(f)
    body.addWidget(label)
    return body


def section_heading(text: str, parent: QWidget, top: int = 8) -> QLabel:
    """A small upper-case heading marked as a section (so style_muted_labels greys it), `top` pixels below what
    comes before."""
    label = QLabel(text.upper(), parent)
    f = QFont(parent.font())
    f.setBold(True)
    f.setPointSizeF(f.pointSizeF() * 0.85)
    f.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 108)
    label.setFont(f)
    label.setProperty("section", True)
    label.setContentsMargins(0, top, 0, 0)
    return label


def busy_bar(parent: QWidget) -> QProgressBar:
    """A thin indeterminate progress bar (the workers give no progress), hidden until the work starts."""
    bar = QProgressBar(parent)
    bar.setRange(0, 0)
    bar.setTextVisible(False)
    bar.setFixedHeight(6)
    bar.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    bar.hide()
    return bar


def status_label(parent: QWidget, object_name: str) -> QLabel:
    """The hidden, word-wrapped rich-text line a dialog says its outcome or error in."""
    label = QLabel(parent)
    label.setObjectName(object_name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.hide()
    return label


def muted_color(widget: QWidget) -> str:
    """The grey of secondary text in `widget`'s palette (text blended towards the base), as a colour name."""
    pal = widget.palette()
    return blend(pal.color(QPalette.ColorRole.Text), pal.color(QPalette.ColorRole.Base), 0.42).name()


def style_muted_labels(widget: QWidget, color: str) -> None:
    """Greys every label under `widget` marked "muted" or "section" in `color`."""
    for label in widget.findChildren(QLabel):
        if label.property("muted") or label.property("section"):
            label.setStyleSheet(f"color: {color};")


def emit_quietly(emit: Callable[[dict], None], payload: dict) -> None:
    """Hands a worker's `payload` to the GUI; the dialog may have been closed and deleted while the worker ran."""
    try:
        emit(payload)
    except RuntimeError:  # the dialog was closed while the worker ran
        pass


__all__ = ["busy_bar", "dialog_body", "emit_quietly", "muted_color", "section_heading", "status_label",
           "style_muted_labels"]
