"""Undo commands: one small QUndoCommand per edit, whose redo/undo call only the engine's graph and project.

Compound edits (delete a selection, paste, add-and-connect) are a MacroCommand that runs its children in order on
redo and in reverse on undo. Commands never touch the canvas: it mirrors the graph.
"""
from __future__ import annotations

import copy
from typing import Any

from PySide6.QtGui import QUndoCommand

from engine.graph import Graph
from engine.project import Project

# Ids for mergeWith: consecutive edits of the same parameter (typing in a spin box) become one undo step.
SET_PARAMS_ID = 1001


class AddNodeCommand(QUndoCommand):
    """Add one layer; the id is chosen on the first redo and kept, so a redo after an undo gives the same id."""

    def __init__(self, graph: Graph, layer_type: str, params: dict[str, Any] | None = None,
                 position: tuple[float, float] = (0.0, 0.0), node_id: str | None = None,
                 parent: QUndoCommand | None = None, *, frozen: bool = False, lr_factor: float = 1.0):
        super().__init__(parent)
        self.graph, self.layer_type, self.params = graph, layer_type, dict(params or {})
        self.position, self.node_id = tuple(position), node_id
        self.frozen, self.lr_factor = frozen, lr_factor  # training flags (a pasted frozen layer stays frozen)
        self.setText(f"Add {layer_type}")

    def redo(self) -> None:
        self.node_id = self.graph.add_node(self.layer_type, self.params, node_id=self.node_id,
                                           position=self.position, frozen=self.frozen, lr_factor=self.lr_factor)

    def undo(self) -> None:
        self.graph.remove_node(self.node_id)


class RemoveNodeCommand(QUndoCommand):
    """Remove one node with its edges; undo puts the node back at its place in node order and every edge
    back at its input slot."""

    def __init__(self, graph: Graph, node_id: str, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.node_id = graph, node_id
        self._saved: tuple[Any, int, list] | None = None
        self.setText(f"Delete {node_id}")

    def redo(self) -> None:
        index = list(self.graph.nodes).index(self.node_id)
        node, edges = self.graph.remove_node(self.node_id)
        self._saved = (node, index, edges)

    def undo(self) -> None:
        node, index, edges = self._saved
        self.graph.add_node(node.type, node.params, node_id=node.id, position=node.position, index=index,
                            frozen=node.frozen, lr_factor=node.lr_factor)
        for edge, slot in sorted(edges, key=lambda e: e[1]):
            self.graph.connect(edge.source, edge.target, index=slot)


class ConnectCommand(QUndoCommand):
    def __init__(self, graph: Graph, source: str, target: str, index: int | None = None,
                 parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.source, self.target, self.index = graph, source, target, index
        self.setText(f"Connect {source} → {target}")

    def redo(self) -> None:
        self.graph.connect(self.source, self.target, index=self.index)

    def undo(self) -> None:
        self.graph.disconnect(self.source, self.target)


class DisconnectCommand(QUndoCommand):
    def __init__(self, graph: Graph, source: str, target: str, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.source, self.target = graph, source, target
        self._slot = 0
        self.setText(f"Disconnect {source} → {target}")

    def redo(self) -> None:
        self._slot = self.graph.disconnect(self.source, self.target)

    def undo(self) -> None:
        self.graph.connect(self.source, self.target, index=self._slot)


class MoveNodesCommand(QUndoCommand):
    """Positions of several nodes, recorded once when a drag ends (or by the tidy layout)."""

    def __init__(self, graph: Graph, moves: dict[str, tuple[tuple[float, float], tuple[float, float]]],
                 text: str = "", parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.moves = graph, dict(moves)
        self.setText(text or (f"Move {next(iter(moves))}" if len(moves) == 1 else f"Move {len(moves)} nodes"))

    def redo(self) -> None:
        for nid, (_, new) in self.moves.items():
            self.graph.move(nid, *new)

    def undo(self) -> None:
        for nid, (old, _) in self.moves.items():
            self.graph.move(nid, *old)


class SetParamsCommand(QUndoCommand):
    """Change parameters of one node. The caller validates first (Document.set_params), so redo cannot fail."""

    def __init__(self, graph: Graph, node_id: str, params: dict[str, Any], parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.node_id, self.new = graph, node_id, dict(params)
        self.old: dict[str, Any] = {}
        keys = ", ".join(params)
        self.setText(f"Set {keys} of {node_id}")

    def id(self) -> int:  # noqa: A003 - Qt's name
        return SET_PARAMS_ID

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        """Typing 3, 32, 320 in one field is one edit; a different node or field is a new one."""
        if not isinstance(other, SetParamsCommand) or other.node_id != self.node_id or set(other.new) != set(self.new):
            return False
        self.new = dict(other.new)
        return True

    def redo(self) -> None:
        old = self.graph.set_params(self.node_id, self.new)
        if not self.old:
            self.old = old

    def undo(self) -> None:
        self.graph.set_params(self.node_id, self.old)


class SetSectionCommand(QUndoCommand):
    """Replace one settings section of the project (data, loss, optimizer, schedule, training, name ...)."""

    def __init__(self, project: Project, key: str, value: Any, on_change=None, text: str = "",
                 parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.project, self.key, self.on_change = project, key, on_change
        self.new = copy.deepcopy(value)
        self.old = copy.deepcopy(getattr(project, key))
        self.setText(text or f"Change {key}")

    def _set(self, value: Any) -> None:
        setattr(self.project, self.key, copy.deepcopy(value))
        if self.on_change is not None:
            self.on_change(self.key)

    def redo(self) -> None:
        self._set(self.new)

    def undo(self) -> None:
        self._set(self.old)


def flags_text(node_id: str, frozen: bool | None = None, lr_factor: float | None = None) -> str:
    """What the History shows for a change of a node's training flags."""
    parts = []
    if frozen is not None:
        parts.append(f"{'Freeze' if frozen else 'Unfreeze'} {node_id}")
    if lr_factor is not None:
        parts.append(f"{'set' if parts else 'Set'} the lr factor of {node_id} to {lr_factor:g}")
    return ", ".join(parts) or f"Training flags of {node_id}"


class SetTrainingFlagsCommand(QUndoCommand):
    """Freeze or unfreeze one node, or change its learning-rate factor (None leaves a flag as it is), through
    Graph.set_training_flags; undo gives back the values it returned. The caller validates first
    (Document.set_training_flags), so redo cannot fail."""

    def __init__(self, graph: Graph, node_id: str, frozen: bool | None = None, lr_factor: float | None = None,
                 parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self.node_id = graph, node_id
        self.new: dict[str, Any] = {k: v for k, v in (("frozen", frozen), ("lr_factor", lr_factor)) if v is not None}
        self.old: dict[str, Any] = {}
        self.setText(flags_text(node_id, frozen, lr_factor))

    def redo(self) -> None:
        self.old = self.graph.set_training_flags(self.node_id, **self.new)

    def undo(self) -> None:
        self.graph.set_training_flags(self.node_id, **self.old)


_MISSING = object()


class SetExtraCommand(QUndoCommand):
    """Set (or, with None, remove) one key of project.extra, the project file's other top-level entries, such as
    "init" (the starting weights of a transfer). `on_change(key)` runs after each change."""

    def __init__(self, project: Project, key: str, value: Any, on_change=None, text: str = "",
                 parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.project, self.key, self.on_change = project, key, on_change
        self.new = copy.deepcopy(value)
        old = project.extra.get(key, _MISSING)
        self.old = old if old is _MISSING else copy.deepcopy(old)
        self.setText(text or (f"Remove {key}" if value is None else f"Change {key}"))

    def _set(self, value: Any) -> None:
        if value is None or value is _MISSING:
            self.project.extra.pop(self.key, None)
        else:
            self.project.extra[self.key] = copy.deepcopy(value)
        if self.on_change is not None:
            self.on_change(self.key)

    def redo(self) -> None:
        self._set(self.new)

    def undo(self) -> None:
        self._set(self.old)


class MacroCommand(QUndoCommand):
    """Several commands as one undo step: redo runs them in order, undo in reverse. The children are plain
    Python references (not Qt child commands), so PySide never deletes a child's Python half under Qt."""

    def __init__(self, text: str, commands: list[QUndoCommand] | None = None):
        super().__init__()
        self.commands: list[QUndoCommand] = list(commands or [])
        self.setText(text)

    def add(self, command: QUndoCommand) -> QUndoCommand:
        self.commands.append(command)
        return command

    def redo(self) -> None:
        for c in self.commands:
            c.redo()

    def undo(self) -> None:
        for c in reversed(self.commands):
            c.undo()


class BlockEditCommand(QUndoCommand):
    """Group a selection into a block, or ungroup one (engine.blocks): the first redo runs `do(graph)`, which
    makes the edit and returns its info; undo and every later redo replay that info with engine.blocks.undo/redo,
    so the graph comes back exactly (to_dict() identical) and a redo gives the same ids."""

    def __init__(self, graph: Graph, do, text: str, parent: QUndoCommand | None = None):
        super().__init__(parent)
        self.graph, self._do = graph, do
        self.info: dict[str, Any] | None = None
        self.result: Any = None
        self.setText(text)

    def redo(self) -> None:
        from engine import blocks

        if self.info is None:
            self.result, self.info = self._do(self.graph)
        else:
            blocks.redo(self.graph, self.info)

    def undo(self) -> None:
        from engine import blocks

        blocks.undo(self.graph, self.info)


class SetInnerGraphCommand(SetParamsCommand):
    """Replace a block's inner graph (what its editor gives back) as one undo step; never merged with the edit
    before it, so two visits to a block are two steps."""

    def __init__(self, graph: Graph, node_id: str, inner: dict[str, Any], parent: QUndoCommand | None = None):
        super().__init__(graph, node_id, {"graph": inner}, parent)
        self.setText(f"Edit inside {node_id}")

    def id(self) -> int:  # noqa: A003 - Qt's name
        return -1
