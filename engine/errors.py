"""One family of typed errors for everything the engine refuses, each worded for a person."""
from __future__ import annotations


class LayerLoomError(Exception):
    """Base of every error the engine raises on purpose; its message is meant for the user."""


class GraphError(LayerLoomError):
    """An edit of the graph was refused; the graph is unchanged."""


class UnknownLayerError(GraphError):
    """A layer type that the catalogue does not have."""


class ParamError(GraphError):
    """An unknown parameter, a value of the wrong type, or a value out of range."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class NodeNotFoundError(GraphError):
    """A node or edge id that is not in the graph."""


class CycleError(GraphError):
    """A connection that would make the graph loop back on itself."""


class PortError(GraphError):
    """A connection into a port that cannot take it (full, duplicate, or no such port)."""


class ShapeError(LayerLoomError):
    """A node that cannot work with the shapes it receives; `hint` says how to fix it.

    `waiting_on` names the node whose error this one only inherits (the node itself is fine).
    """

    def __init__(self, message: str, node_id: str | None = None, hint: str = "", waiting_on: str | None = None):
        super().__init__(message if not hint else f"{message}: {hint}")
        self.reason = message
        self.hint = hint
        self.node_id = node_id
        self.waiting_on = waiting_on


class ProjectError(LayerLoomError):
    """A project file that cannot be read or written; says where in the file and what is wrong."""

    def __init__(self, message: str, path: str | None = None, where: str | None = None):
        parts = []
        if path:
            parts.append(str(path))
        if where:
            parts.append(where)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.reason = message
        self.path = path
        self.where = where


class BuildError(LayerLoomError):
    """The graph cannot be turned into a model (it has shape errors, or no input)."""


class DataError(LayerLoomError):
    """Data that cannot be read, or does not fit the network or the loss; says what to change."""


class TrainingError(LayerLoomError):
    """A run that cannot start or had to stop (NaN loss, a failing step); says the likely cause and the cure."""


class SpecError(LayerLoomError):
    """An unknown loss, optimizer or schedule, or parameters that do not fit it."""
