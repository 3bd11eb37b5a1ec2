"""The app's look: the Fusion style with a tuned light or dark palette, chosen by the user or following the
operating system's colour scheme as it changes."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

MODES = ("system", "light", "dark")
_MODE_PROPERTY = "layerloom_theme_mode"
_FOLLOWING_PROPERTY = "layerloom_theme_follows_system"

Role = QPalette.ColorRole
Group = QPalette.ColorGroup

# One table per scheme: (role, normal colour, disabled colour or None for the same). Neutral greys with a
# slight blue cast; text contrast ≥ 12:1 on the window, disabled text about 3:1 (readable, clearly off).
_DARK = [
    (Role.Window, "#1f2023", None),
    (Role.WindowText, "#e6e7ea", "#6c6f76"),
    (Role.Base, "#17181b", "#1b1c1f"),
    (Role.AlternateBase, "#24262a", None),
    (Role.Button, "#2c2e33", "#25272b"),
    (Role.ButtonText, "#e6e7ea", "#6c6f76"),
    (Role.Text, "#e6e7ea", "#6c6f76"),
    (Role.BrightText, "#ffffff", None),
    (Role.PlaceholderText, "#878b93", "#5b5e64"),
    (Role.Highlight, "#3b7ce6", "#34373d"),
    (Role.HighlightedText, "#ffffff", "#8a8e96"),
    (Role.Accent, "#4c8dff", "#3a3d44"),
    (Role.ToolTipBase, "#2e3035", None),
    (Role.ToolTipText, "#eceef1", None),
    (Role.Link, "#79a8ff", "#5a6f96"),
    (Role.LinkVisited, "#b59cff", "#6f6496"),
    (Role.Light, "#3d4046", None),
    (Role.Midlight, "#33353a", None),
    (Role.Mid, "#26282c", None),
    (Role.Dark, "#121315", None),
    (Role.Shadow, "#000000", None),
]
_LIGHT = [
    (Role.Window, "#f3f4f6", None),
    (Role.WindowText, "#1d2026", "#9ca1aa"),
    (Role.Base, "#ffffff", "#f6f7f9"),
    (Role.AlternateBase, "#f2f4f7", None),
    (Role.Button, "#fbfbfc", "#f1f2f4"),
    (Role.ButtonText, "#1d2026", "#9ca1aa"),
    (Role.Text, "#1d2026", "#9ca1aa"),
    (Role.BrightText, "#ffffff", None),
    (Role.PlaceholderText, "#7d838d", "#b1b5bc"),
    (Role.Highlight, "#2b6de0", "#d5d8de"),
    (Role.HighlightedText, "#ffffff", "#8b9099"),
    (Role.Accent, "#2b6de0", "#c9cdd4"),
    (Role.ToolTipBase, "#ffffff", None),
    (Role.ToolTipText, "#1d2026", None),
    (Role.Link, "#1a5fd0", "#8aa6d6"),
    (Role.LinkVisited, "#7440c8", "#a993cf"),
    (Role.Light, "#ffffff", None),
    (Role.Midlight, "#eceef1", None),
    (Role.Mid, "#c4c9d1", None),
    (Role.Dark, "#9ea5b0", None),
    (Role.Shadow, "#5a606b", None),
]


def make_palette(effective: str) -> QPalette:
    """The light or dark palette (every group filled, disabled colours dimmed)."""
    palette = QPalette()
    for role, normal, disabled in _DARK if effective == "dark" else _LIGHT:
        color = QColor(normal)
        palette.setColor(Group.Active, role, color)
        palette.setColor(Group.Inactive, role, color)
        palette.setColor(Group.Disabled, role, QColor(disabled) if disabled else color)
    # An unfocused window keeps a visible but calmer selection, as native apps do.
    inactive = QColor(palette.color(Group.Active, Role.Highlight))
    inactive.setAlphaF(0.55)
    palette.setColor(Group.Inactive, Role.Highlight, _over(inactive, palette.color(Role.Base)))
    return palette


def is_dark(palette: QPalette) -> bool:
    """Whether text is drawn light on dark in this palette."""
    return palette.color(Role.Window).lightness() < palette.color(Role.WindowText).lightness()


def system_scheme() -> str:
    """The operating system's colour scheme, "light" when it does not say."""
    hints = QGuiApplication.styleHints()
    return "dark" if hints.colorScheme() == Qt.ColorScheme.Dark else "light"


def current_mode(app: QApplication) -> str:
    """The mode last given to apply_theme ("system" before any)."""
    mode = app.property(_MODE_PROPERTY)
    return mode if mode in MODES else "system"


def apply_theme(app: QApplication, mode: str = "system") -> str:
    """Use Fusion with our palette for `mode` ("system", "light" or "dark"); returns the scheme in effect."""
    if mode not in MODES:
        raise ValueError(f"unknown theme {mode!r}; choose one of {', '.join(MODES)}")
    app.setProperty(_MODE_PROPERTY, mode)
    hints = app.styleHints()
    # Telling the platform (6.8+) makes native parts agree, e.g. the window title bar on Windows; for "system"
    # the request is withdrawn first so that colorScheme() reports the OS again rather than our last choice.
    if hasattr(hints, "setColorScheme"):
        wanted = {"light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}.get(mode, Qt.ColorScheme.Unknown)
        if hints.colorScheme() != wanted or mode == "system":
            hints.setColorScheme(wanted)
    effective = system_scheme() if mode == "system" else mode
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    app.setPalette(make_palette(effective))
    return effective


def follow_system(app: QApplication) -> None:
    """Re-apply the theme whenever the OS scheme changes while the mode is "system" (connects once)."""
    if app.property(_FOLLOWING_PROPERTY):
        return
    app.setProperty(_FOLLOWING_PROPERTY, True)
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: _on_color_scheme_changed(app))


def _on_color_scheme_changed(app: QApplication) -> None:
    if current_mode(app) != "system":
        return
    wanted = make_palette(system_scheme())
    # setColorScheme inside apply_theme can echo this signal; the palette is only set when it differs.
    if app.palette().color(Role.Window) != wanted.color(Role.Window):
        app.setPalette(wanted)


def _over(color: QColor, background: QColor) -> QColor:
    """`color` with its alpha composited onto an opaque `background`."""
    a = color.alphaF()
    return QColor.fromRgbF(*(a * c + (1 - a) * b for c, b in zip(color.getRgbF()[:3], background.getRgbF()[:3])))
