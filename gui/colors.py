"""The app's colours in one place: one per layer category, and the status colours for errors and warnings.

Plain hex strings (no Qt), mid-tone and saturated enough to read on light and dark backgrounds alike, so the
palette, the canvas and the panels can all use them as accents, fills under white glyphs, or text.
"""
from __future__ import annotations

CATEGORY_COLORS: dict[str, str] = {  # the canvas's node strips use the same values
    "Input": "#2e9e5b",          # green: where data comes in
    "Core": "#3b7dd8",           # blue
    "Convolution": "#8a56c9",    # violet
    "Pooling": "#17a2a8",        # teal
    "Normalisation": "#d49a1f",  # amber
    "Recurrent": "#d0508a",      # pink
    "Activation": "#e0702b",     # orange
    "Merge": "#1f9ed1",          # sky blue
    "Shape": "#7d8794",          # slate
}
FALLBACK_COLOR = "#8a8f98"  # a category the table does not know yet

ERROR_COLOR = "#d93b3b"    # text, borders and badges of errors
WARNING_COLOR = "#d99a06"  # warnings and nodes waiting on an error above them
OK_COLOR = "#2e9e5b"
INFO_COLOR = "#3b7dd8"


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
