"""The app's colours in one place: one per layer category, and the status colours for errors and warnings.

Plain hex strings (no Qt), mid-tone and saturated enough to read on light and dark backgrounds alike, so the
palette, the canvas and the panels can all use them as accents, fills under white glyphs, or text.
"""
from __future__ import annotations

CATEGORY_COLORS: dict[str, str] = {
    "Input": "#2f7fe0",          # blue: where data comes in
    "Core": "#7a5af5",           # violet
    "Convolution": "#e46f2e",    # orange
    "Pooling": "#c9930e",        # amber
    "Normalisation": "#16a06e",  # green
    "Recurrent": "#d0437e",      # magenta
    "Activation": "#de3f44",     # red
    "Merge": "#0c9fb3",          # teal
    "Shape": "#6f7b8a",          # slate
}
FALLBACK_COLOR = "#8a8f98"  # a category the table does not know yet

ERROR_COLOR = "#e5484d"    # text, borders and badges of errors
WARNING_COLOR = "#d99a06"  # warnings and nodes waiting on an error above them
OK_COLOR = "#2fa46b"


def category_color(category: str) -> str:
    return CATEGORY_COLORS.get(category, FALLBACK_COLOR)


def layer_color(layer_type: str) -> str:
    """The colour of a layer type's category (the fallback for a type the catalogue does not know)."""
    from engine.errors import UnknownLayerError
    from engine.layers import get_spec
    try:
        return category_color(get_spec(layer_type).category)
    except UnknownLayerError:
        return FALLBACK_COLOR
