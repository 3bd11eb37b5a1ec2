"""The open project: the engine's Project, its QUndoStack, file path and dirty flag. The only place that pushes
undo commands; views call its methods and mirror the graph's events.

Every edit is validated before a command is pushed, so a refused edit raises the engine's typed error and leaves
both the graph and the undo stack unchanged.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.errors import GraphError, NodeNotFoundError
from engine.graph import Graph, check_training_flags
from engine.layers import get_spec
from engine.layout import layered_layout
from engine.project import Project, load_project, save_project
from engine.shapes import Analysis, analyze

from .commands import (
    AddNodeCommand,
    ConnectCommand,
    DisconnectCommand,
    MacroCommand,
    MoveNodesCommand,
    RemoveNodeCommand,
    SetParamsCommand,
    SetSectionCommand,
)

CLIPBOARD_MIME = "application/x-layerloom-nodes"
LAYER_MIME = "application/x-layerloom-layer"  # the palette's drag: the layer type as UTF-8


class LockedError(GraphError):
    """An edit refused because the model is in use (a training run): the message says why and what to do."""


class Document(QObject):
    """A project being edited. Signals: `analyzed(Analysis)` after any change that can alter shapes (coalesced:
    many edits in one event-loop turn give one analysis), `dirty_changed(bool)`, `path_changed(str)`,
    `section_changed(str)` when a settings section (data, loss, ...) changes."""

    analyzed = Signal(object)
    dirty_changed = Signal(bool)
    path_changed = Signal(str)
    section_changed = Signal(str)

    def __init__(self, project: Project | None = None, path: str | os.PathLike | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.project = project or Project()
        self.path: Path | None = Path(path) if path else None
        self.undo_stack = QUndoStack(self)
        self._locked = ""
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self.analysis: Analysis = analyze(self.graph)
        self._revision = self.graph.revision
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.reanalyze)
        self.graph.events.connect("changed", self._on_changed)

    # ---- state -----------------------------------------------------------------------------------------
    @property
    def graph(self) -> Graph:
        return self.project.graph

    @property
    def dirty(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def title(self) -> str:
        return self.path.name if self.path else (self.project.name or "untitled")

    def _on_clean_changed(self, clean: bool) -> None:
        self.dirty_changed.emit(not clean)

    def _on_changed(self) -> None:
        if self.graph.revision != self._revision:  # a move changes no shape
            self._timer.start()

    def reanalyze(self) -> Analysis:
        """Shapes and errors of every node now (normally called by the coalescing timer)."""
        self._timer.stop()
        self._revision = self.graph.revision
        self.analysis = analyze(self.graph)
        self.analyzed.emit(self.analysis)
        return self.analysis

    def close(self) -> None:
        self._timer.stop()
        self.graph.events.disconnect("changed", self._on_changed)

    # ---- files -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, parent: QObject | None = None) -> Document:
        """Read a project file; raises ProjectError (with the path and what is wrong) and builds nothing."""
        project = load_project(path)
        return cls(project, path, parent)

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write atomically to `path` (or the current path); raises ProjectError when it cannot."""
        target = Path(path) if path else self.path
        if target is None:
            raise ValueError("no path to save to: use Save As")
        if self.path is None or target != self.path or self.project.name in ("", "untitled"):
            if self.project.name in ("", "untitled"):
                self.project.name = target.stem
        save_project(target, self.project)
        if target != self.path:
            self.path = target
            self.path_changed.emit(str(target))
        self.undo_stack.setClean()
        return target

    # ---- edits (each one command) ------------------------------------------------------------------------
    @property
    def locked(self) -> str:
        """Why the model cannot change now ("" when it can): set while a training run uses it."""
        return self._locked

    def lock(self, reason: str) -> None:
        """Refuse every edit that would change the model (moves and tidying stay allowed) until unlock()."""
        self._locked = reason
        self.undo_stack.setActive(False)

    def unlock(self) -> None:
        self._locked = ""
        self.undo_stack.setActive(True)

    def push(self, command: QUndoCommand) -> None:
        if self._locked and not isinstance(command, MoveNodesCommand):
            raise LockedError(self._locked)
        self.undo_stack.push(command)

    def undo(self) -> None:
        self._check_history("undo")
        self.undo_stack.undo()

    def redo(self) -> None:
        self._check_history("redo")
        self.undo_stack.redo()

    def _check_history(self, what: str) -> None:
        if self._locked:
            raise LockedError(f"cannot {what} now: {self._locked}")

    def add_node(self, layer_type: str, params: dict[str, Any] | None = None,
                 position: tuple[float, float] = (0.0, 0.0), connect_from: str | None = None) -> str:
        """Add a layer (and optionally wire `connect_from` into it) as one undo step; returns its id."""
        spec = get_spec(layer_type)  # UnknownLayerError before anything is pushed
        spec.validate_params(dict(params or {}))
        if connect_from is not None:
            self.graph.node(connect_from)
            if spec.max_inputs == 0:
                raise GraphError(f"an {spec.type} node takes no input, so it cannot follow {connect_from}")
        if connect_from is None:
            cmd = AddNodeCommand(self.graph, spec.type, params, position)
            self.push(cmd)
            return cmd.node_id
        macro = MacroCommand(f"Add {spec.type} after {connect_from}")
        node_id = self.graph.new_id(spec.type)  # chosen now so that the child connect knows it
        macro.add(AddNodeCommand(self.graph, spec.type, params, position, node_id=node_id))
        macro.add(ConnectCommand(self.graph, connect_from, node_id))
        self.push(macro)
        return node_id

    def remove_nodes(self, node_ids: list[str]) -> None:
        ids = list(dict.fromkeys(node_ids))
        for nid in ids:
            self.graph.node(nid)
        if not ids:
            return
        if len(ids) == 1:
            self.push(RemoveNodeCommand(self.graph, ids[0]))
            return
        macro = MacroCommand(f"Delete {len(ids)} nodes")
        for nid in ids:
            macro.add(RemoveNodeCommand(self.graph, nid))
        self.push(macro)

    def connect(self, source: str, target: str) -> None:
        """Raises CycleError / PortError / NodeNotFoundError (and pushes nothing) when the wire is refused."""
        self.graph.check_connect(source, target)
        self.push(ConnectCommand(self.graph, source, target))

    def disconnect(self, source: str, target: str) -> None:
        if source not in self.graph.inputs_of(target):
            raise GraphError(f"{source} is not connected to {target}")
        self.push(DisconnectCommand(self.graph, source, target))

    def remove_edges(self, edges: list[tuple[str, str]]) -> None:
        for s, t in edges:
            if s not in self.graph.inputs_of(t):
                raise GraphError(f"{s} is not connected to {t}")
        if len(edges) == 1:
            self.push(DisconnectCommand(self.graph, *edges[0]))
        elif edges:
            macro = MacroCommand(f"Delete {len(edges)} wires")
            for s, t in edges:
                macro.add(DisconnectCommand(self.graph, s, t))
            self.push(macro)

    def delete(self, node_ids: list[str], edges: list[tuple[str, str]]) -> None:
        """Delete a selection of nodes and wires as one undo step (wires of deleted nodes go with them)."""
        node_ids = [n for n in dict.fromkeys(node_ids) if n in self.graph]
        edges = [(s, t) for s, t in dict.fromkeys(edges) if s not in node_ids and t not in node_ids]
        if not node_ids and not edges:
            return
        macro = MacroCommand(_delete_text(node_ids, edges))
        for s, t in edges:
            macro.add(DisconnectCommand(self.graph, s, t))
        for nid in node_ids:
            macro.add(RemoveNodeCommand(self.graph, nid))
        self.push(macro)

    def move_nodes(self, moves: dict[str, tuple[tuple[float, float], tuple[float, float]]],
                   text: str = "") -> None:
        """Record moves (old, new) that the canvas already shows, e.g. at the end of a drag: one undo step."""
        moves = {nid: (tuple(old), tuple(new)) for nid, (old, new) in moves.items() if tuple(old) != tuple(new)}
        for nid in moves:
            self.graph.node(nid)
        if moves:
            self.push(MoveNodesCommand(self.graph, moves, text))

    def set_params(self, node_id: str, params: dict[str, Any]) -> None:
        """Validate, then push; a bad value raises ParamError (with the allowed range) and changes nothing."""
        node = self.graph.node(node_id)
        checked = node.spec.validate_params(dict(params), base=node.params)
        if checked == node.params:
            return
        # a block's exposed name or a custom layer's argument is not itself a key of the checked parameters: it is
        # handed on as given (the graph maps it to what it stands for)
        changed = {k: checked[k] if k in checked else v for k, v in params.items()
                   if k not in checked or node.params.get(k) != checked[k]}
        if changed:
            self.push(SetParamsCommand(self.graph, node_id, changed))

    def set_section(self, key: str, value: Any, text: str = "") -> None:
        """Replace a project settings section (data, loss, optimizer, schedule, training, name, description)."""
        if not hasattr(self.project, key) or key == "graph":
            raise KeyError(f"a project has no section {key!r}")
        if getattr(self.project, key) == value:
            return
        self.push(SetSectionCommand(self.project, key, value, on_change=self.section_changed.emit, text=text))

    # ---- training flags, starting weights and the head (transfer learning) ---------------------------------
    def has_weights(self, node_id: str) -> bool:
        """Whether training changes anything in a node (weights, or BatchNorm's running statistics), so that
        freezing it or giving it a learning-rate factor means something."""
        node = self.graph.node(node_id)
        info = self.analysis.nodes.get(node_id)
        if info is not None and info.error is None:
            return info.params > 0 or "BatchNorm" in node.type
        from engine.layers import base as layer_base  # no analysis yet: whether the layer type counts weights
        return node.spec.count_params is not getattr(layer_base, "_zero", None)

    def set_training_flags(self, node_id: str, frozen: bool | None = None, lr_factor: float | None = None) -> bool:
        """Freeze or unfreeze a node, or set its learning-rate factor (None leaves a flag as it is), as one undo
        step. A bad value raises ParamError saying what is allowed, and a locked document LockedError; nothing is
        pushed then. Returns whether anything changed."""
        from engine.graph import check_training_flags

        from .commands import SetTrainingFlagsCommand

        node = self.graph.node(node_id)
        new_frozen, new_factor = check_training_flags(node.frozen if frozen is None else frozen,
                                                      node.lr_factor if lr_factor is None else lr_factor)
        frozen = None if frozen is None or new_frozen == node.frozen else new_frozen
        lr_factor = None if lr_factor is None or new_factor == node.lr_factor else new_factor
        if frozen is None and lr_factor is None:
            return False
        self.push(SetTrainingFlagsCommand(self.graph, node_id, frozen, lr_factor))
        return True

    def set_frozen(self, node_ids: list[str], frozen: bool = True) -> list[str]:
        """Freeze (or unfreeze) several nodes as one undo step; nodes without weights are left alone when
        freezing. Returns the ids that changed ([] and nothing pushed when none did)."""
        from .commands import SetTrainingFlagsCommand

        ids = list(dict.fromkeys(node_ids))
        for nid in ids:
            self.graph.node(nid)
        changed = [nid for nid in ids if self.graph.nodes[nid].frozen != frozen
                   and (not frozen or self.has_weights(nid))]
        if not changed:
            return []
        if len(changed) == 1:
            self.push(SetTrainingFlagsCommand(self.graph, changed[0], frozen=frozen))
            return changed
        macro = MacroCommand(f"{'Freeze' if frozen else 'Unfreeze'} {len(changed)} layers")
        for nid in changed:
            macro.add(SetTrainingFlagsCommand(self.graph, nid, frozen=frozen))
        self.push(macro)
        return changed

    def set_extra(self, key: str, value: Any, text: str = "") -> None:
        """Set (None: remove) one of the project file's other top-level entries (project.extra), as one undo
        step; section_changed(key) follows each change, its undo and its redo."""
        from .commands import SetExtraCommand

        if key in ("graph", "name", "description", "format", "version") or hasattr(self.project, key):
            raise KeyError(f"{key!r} is not an extra entry of a project: use set_section")
        if self.project.extra.get(key) == value:
            return
        self.push(SetExtraCommand(self.project, key, value, on_change=self.section_changed.emit, text=text))

    def init_weights_file(self) -> Path:
        """Where apply_transfer writes next: PROJECT.init.safetensors beside the project, or PROJECT.2.init...
        when that file exists already (an earlier transfer that an undo step or a saved copy may still name is
        never overwritten). ProjectError for a project never saved."""
        from engine.transfer import init_weights_path

        return init_weights_path(self._init_stem())

    def _init_stem(self) -> Path:
        """The project path whose init_weights_path is the next free starting-weights file."""
        from engine.errors import ProjectError
        from engine.transfer import init_weights_path

        if self.path is None:
            raise ProjectError("save the project first: the starting weights are written to a file beside it")
        n, stem = 1, self.path
        while init_weights_path(stem).exists():
            n += 1
            stem = self.path.with_name(f"{self.path.stem}.{n}{self.path.suffix}")
        return stem

    def apply_transfer(self, weights: dict[str, Any], report, source: str | os.PathLike,
                       freeze: bool = False) -> Path:
        """Start training from transferred weights (a state dict of the network's tensors, as
        engine.transfer.matched_weights gives): write them beside the project with save_init_weights, then, as ONE
        undo step, set project.extra["init"] to that file and, with `freeze`, freeze every layer that took
        weights. Undo removes the setting (the file stays). Returns the file written. LockedError while training,
        ProjectError when the project was never saved or the file cannot be written."""
        from engine.transfer import INIT_KEY, save_init_weights

        from .commands import SetExtraCommand, SetTrainingFlagsCommand

        if self._locked:
            raise LockedError(self._locked)
        scratch = Project()  # save_init_weights sets scratch.extra; the document changes only by the command
        path = save_init_weights(scratch, self._init_stem(), weights, source=str(source), report=report)
        entry = scratch.extra[INIT_KEY]
        loaded = list(dict.fromkeys(name.split(".", 1)[0] for name in weights))
        macro = MacroCommand(f"Load weights from {Path(source).name}")
        macro.add(SetExtraCommand(self.project, INIT_KEY, entry, on_change=self.section_changed.emit))
        if freeze:
            for nid in loaded:
                if nid in self.graph and not self.graph.nodes[nid].frozen:
                    macro.add(SetTrainingFlagsCommand(self.graph, nid, frozen=True))
        self.push(macro)
        return path

    def remove_init(self) -> bool:
        """Stop starting training from transferred weights, as one undo step (the file stays). Returns whether
        there was a setting to remove."""
        from engine.transfer import INIT_KEY

        if not self.project.extra.get(INIT_KEY):
            return False
        self.set_extra(INIT_KEY, None, text="Stop starting from the loaded weights")
        return True

    def replace_head(self, num_classes: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Give the network `num_classes` outputs (engine.transfer.replace_head, worked out on a copy of the graph)
        as ONE undo step of parameter changes. Returns [(node id, old params, new params)], [] when the count is
        right already. GraphError, with what to do, when no layer decides the outputs or a later layer would
        break; LockedError while training."""
        from engine.transfer import replace_head

        changes = replace_head(self.graph.copy(), num_classes)
        if not changes:
            return []
        macro = MacroCommand(f"Replace the head: {num_classes} output{'s' if num_classes != 1 else ''}")
        for nid, _old, new in changes:
            macro.add(SetParamsCommand(self.graph, nid, new))
        self.push(macro)
        return changes

    def tidy(self) -> None:
        """The layered layout of the whole graph as one undo step."""
        positions = layered_layout(self.graph)
        self.move_nodes({nid: (self.graph.nodes[nid].position, pos) for nid, pos in positions.items()},
                        text="Tidy layout")

    # ---- composite blocks (engine.blocks) -------------------------------------------------------------------
    def group_into_block(self, node_ids: list[str], name: str = "block", description: str = "") -> str:
        """Replace the selected nodes with one Block node holding them, as one undo step; returns its id. A refused
        selection (an Input in it, a loop, nothing selected …) raises the engine's GraphError and pushes nothing."""
        from engine import blocks

        from .commands import BlockEditCommand

        if self._locked:
            raise LockedError(self._locked)
        ids = [n for n in dict.fromkeys(node_ids)]
        blocks.group_into_block(self.graph.copy(), ids, name, description)  # refuses before anything changes
        cmd = BlockEditCommand(self.graph, lambda g: blocks.group_into_block(g, ids, name, description),
                               f"Group {len(ids)} node{'s' if len(ids) != 1 else ''} into {name}")
        self.push(cmd)
        return cmd.result

    def ungroup(self, block_id: str) -> list[str]:
        """Put a block's inner layers back in the graph in its place, as one undo step; returns their ids.
        GraphError (nothing pushed) when the node is not a block or cannot be ungrouped as it is wired."""
        from engine import blocks

        from .commands import BlockEditCommand

        if self._locked:
            raise LockedError(self._locked)
        blocks.ungroup(self.graph.copy(), block_id)  # refuses before anything changes

        def do(g: Graph):
            info = blocks.ungroup(g, block_id)
            return info["nodes"], info

        cmd = BlockEditCommand(self.graph, do, f"Ungroup {block_id}")
        self.push(cmd)
        return list(cmd.result)

    def set_inner_graph(self, block_id: str, inner: dict[str, Any]) -> bool:
        """Give a block a new inner graph (Graph.to_dict() form, as its editor returns it) as one undo step.
        ParamError (nothing pushed) when the inner graph does not make a block. Returns whether it changed."""
        from .commands import SetInnerGraphCommand

        node = self.graph.node(block_id)
        if node.type != "Block":
            raise GraphError(f"{block_id} is a {node.type}, not a block")
        checked = node.spec.validate_params({"graph": inner}, base=node.params)
        if checked["graph"] == node.params.get("graph"):
            return False
        self.push(SetInnerGraphCommand(self.graph, block_id, checked["graph"]))
        return True

    def add_block(self, definition, position: tuple[float, float] = (0.0, 0.0),
                  values: dict[str, Any] | None = None) -> str:
        """Add an instance of a block definition (engine.blocks.BlockDefinition), its exposed parameters set from
        `values`, as one undo step; returns its id. ParamError when the definition or a value does not fit."""
        from engine.blocks import BLOCK, block_prefix, validate_block_params

        params = definition.params()
        if values:
            params = validate_block_params(dict(values), params)
        node_id = self.graph.free_id(block_prefix(params["block"]))
        cmd = AddNodeCommand(self.graph, BLOCK, params, position, node_id=node_id)
        cmd.setText(f"Add the block {params['block']}")
        self.push(cmd)
        return cmd.node_id

    # ---- clipboard ---------------------------------------------------------------------------------------
    def copy_nodes(self, node_ids: list[str]) -> dict[str, Any]:
        """Plain data for the clipboard: the nodes and the wires between them."""
        chosen = set(node_ids)
        ids = [nid for nid in self.graph.nodes if nid in chosen]
        keep = set(ids)
        nodes = [{"type": self.graph.nodes[n].type, "params": copy.deepcopy(self.graph.nodes[n].params),
                  "position": list(self.graph.nodes[n].position), "id": n,
                  "frozen": self.graph.nodes[n].frozen, "lr_factor": self.graph.nodes[n].lr_factor} for n in ids]
        edges = [{"source": e.source, "target": e.target} for e in self.graph.edges
                 if e.source in keep and e.target in keep]
        return {"nodes": nodes, "edges": edges}

    def paste(self, data: dict[str, Any], offset: tuple[float, float] = (40.0, 40.0), text: str = "Paste"
              ) -> list[str]:
        """Add copies of clipboard nodes (fresh ids) and their inner wires as one undo step; returns the ids."""
        nodes = data.get("nodes") or []
        if not nodes:
            return []
        for n in nodes:  # refuse the whole paste before anything is added
            get_spec(n["type"]).validate_params(dict(n.get("params") or {}))
            check_training_flags(bool(n.get("frozen", False)), n.get("lr_factor", 1.0))
        macro = MacroCommand(f"{text} {len(nodes)} node{'s' if len(nodes) != 1 else ''}")
        scratch = self.graph.copy()
        new_ids: dict[str, str] = {}
        for n in nodes:
            x, y = n.get("position", (0.0, 0.0))
            pos = (float(x) + offset[0], float(y) + offset[1])
            nid = scratch.add_node(n["type"], n.get("params"), position=pos)
            new_ids[n.get("id", nid)] = nid
            macro.add(AddNodeCommand(self.graph, n["type"], n.get("params"), pos, node_id=nid,
                                     frozen=bool(n.get("frozen", False)), lr_factor=n.get("lr_factor", 1.0)))
        for e in data.get("edges") or []:
            s, t = new_ids.get(e["source"]), new_ids.get(e["target"])
            if s and t:
                scratch.connect(s, t)
                macro.add(ConnectCommand(self.graph, s, t))
        self.push(macro)
        return list(new_ids.values())

    def duplicate(self, node_ids: list[str]) -> list[str]:
        return self.paste(self.copy_nodes(node_ids), text="Duplicate")

    def node_or_none(self, node_id: str):
        try:
            return self.graph.node(node_id)
        except NodeNotFoundError:
            return None


def _delete_text(node_ids: list[str], edges: list[tuple[str, str]]) -> str:
    """What the History shows: the node or wire by name when it is one, else how many."""
    if len(node_ids) + len(edges) == 1:
        return f"Delete {node_ids[0]}" if node_ids else f"Delete the wire {edges[0][0]} → {edges[0][1]}"
    parts = []
    if node_ids:
        parts.append(f"{len(node_ids)} node{'s' if len(node_ids) != 1 else ''}")
    if edges:
        parts.append(f"{len(edges)} wire{'s' if len(edges) != 1 else ''}")
    return "Delete " + " and ".join(parts)
