"""The network editor's canvas: GraphView (the widget) showing a GraphScene that mirrors a Document's graph."""
from __future__ import annotations

from .scene import GraphScene
from .view import GraphView

__all__ = ["GraphScene", "GraphView"]
