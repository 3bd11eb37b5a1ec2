"""The inside of a block: a dialog with its own canvas on a copy of the block's inner graph, a breadcrumb
("network › res_block_1") and a palette. Edits inside have their own undo history; Apply (or Back) gives the
outer document the new inner graph as ONE undo step, Cancel drops them. A block inside the block opens the same
way, one level deeper.
"""
from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
)

from engine import blocks
from engine.errors import LayerLoomError
from engine.graph import Graph
from engine.layers import TensorInfo
from engine.project import Project
from engine.shapes import Analysis, analyze

from .canvas import GraphView
from .document import Document
from .palette import PaletteWidget


def block_ports(document: Document, block_id: str) -> list[TensorInfo] | None:
    """The tensors wired into a block as the outer analysis sees them (None when one of them is not known)."""
    graph, nodes = document.graph, document.analysis.nodes
    ports = []
    for src in graph.inputs_of(block_id):
        info = nodes.get(src)
        if info is None or info.error is not None or info.shape is None:
            return None
        ports.append(TensorInfo(info.shape, info.dtype, src))
    return ports


class InnerDocument(Document):
    """A block's inner graph being edited: a Document whose analysis feeds its BlockInput nodes the block's
    input tensors."""

    def __init__(self, graph: Graph, ports: list[TensorInfo] | None, name: str = "block", parent=None):
        super().__init__(Project(graph=graph, name=name), None, parent)
        self.ports = ports
        self.analysis = analyze(self.graph, ports=self.ports if self.ports is not None else [])

    def reanalyze(self) -> Analysis:
        self._timer.stop()
        self._revision = self.graph.revision
        self.analysis = analyze(self.graph, ports=self.ports if self.ports is not None else [])
        self.analyzed.emit(self.analysis)
        return self.analysis


class BlockEditorDialog(QDialog):
    """Edit the inside of block `block_id` of `document`. Signals: `message(str)` one sentence for the status bar
    (what was applied, or why not)."""

    message = Signal(str)

    def __init__(self, document: Document, block_id: str, path: tuple[str, ...] = ("network",), parent=None):
        super().__init__(parent)
        node = document.graph.node(block_id)
        if node.type != blocks.BLOCK:
            raise LayerLoomError(f"{block_id} is a {node.type}, not a block: only a block can be opened")
        self.document, self.block_id, self.path = document, block_id, tuple(path)
        self.inner_doc = InnerDocument(blocks.inner_graph(node.params), block_ports(document, block_id),
                                       node.params.get("block", "block"), self)
        self.setWindowTitle(f"Inside {block_id} ({node.params.get('block', 'block')})")
        self.setObjectName("BlockEditorDialog")
        self.resize(1000, 680)

        self.back_button = QPushButton("‹ Back", self)
        self.back_button.setToolTip(f"Apply the changes to {block_id} and go back to {self.path[-1]}")
        self.back_button.clicked.connect(self.back)
        self.breadcrumb = QLabel(" › ".join([*self.path, block_id]), self)
        self.breadcrumb.setObjectName("blockBreadcrumb")
        self.breadcrumb.setTextFormat(Qt.TextFormat.PlainText)
        font = self.breadcrumb.font()
        font.setBold(True)
        self.breadcrumb.setFont(font)
        top = QHBoxLayout()
        top.addWidget(self.back_button)
        top.addWidget(self.breadcrumb, 1)

        self.view = GraphView(self.inner_doc, self)
        self.palette = PaletteWidget(self)
        self.palette.add_requested.connect(self._add_layer)
        self.palette.block_requested.connect(self._add_block)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.palette)
        split.addWidget(self.view)
        split.setStretchFactor(1, 1)
        split.setSizes([230, 770])

        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.setToolTip(f"Give {block_id} this inner graph (one step in the History)")
        self.apply_button.clicked.connect(self.apply)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Close without changing the block")
        self.cancel_button.clicked.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.apply_button)
        bottom.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        layout.addLayout(bottom)

        for text, keys, slot in (("Undo", QKeySequence.StandardKey.Undo, self.inner_doc.undo_stack.undo),
                                 ("Redo", QKeySequence.StandardKey.Redo, self.inner_doc.undo_stack.redo)):
            act = QAction(text, self)
            act.setShortcuts(QKeySequence.keyBindings(keys))
            act.triggered.connect(lambda checked=False, s=slot: s())
            self.addAction(act)
        self.view.message.connect(self._say)
        self.view.node_activated.connect(self._on_node_activated)
        self.nested: BlockEditorDialog | None = None
        self._say(f"Inside {block_id}: data comes in through the BlockInput nodes and leaves through the "
                  f"BlockOutput nodes. Apply or Back puts the changes in the network as one undo step.")

    # ---- state -------------------------------------------------------------------------------------------
    @property
    def changed(self) -> bool:
        """Whether the inner graph differs from the block's now."""
        node = self.document.node_or_none(self.block_id)
        return node is not None and self.inner_doc.graph.to_dict() != node.params.get("graph")

    def inner_node_ids(self) -> list[str]:
        return list(self.inner_doc.graph.nodes)

    # ---- actions -----------------------------------------------------------------------------------------
    def apply(self) -> bool:
        """Give the block the edited inner graph as one undo step of the outer document; False (and why, in the
        dialog) when the inner graph does not make a block."""
        try:
            changed = self.document.set_inner_graph(self.block_id, self.inner_doc.graph.to_dict())
        except LayerLoomError as e:
            self._say(f"Cannot apply: {e}")
            return False
        self.inner_doc.undo_stack.setClean()
        text = f"Applied the changes inside {self.block_id}" if changed else f"{self.block_id} is unchanged"
        self._say(text)
        self.message.emit(text)
        return True

    def back(self) -> None:
        """Apply, then close (kept open, with the reason, when the inner graph cannot be applied)."""
        if self.apply():
            self.accept()

    def reject(self) -> None:
        if self.changed and not os.environ.get("LAYERLOOM_NO_DIALOGS"):
            answer = QMessageBox.question(self, "Discard the changes?", f"Close without applying the changes "
                                          f"made inside {self.block_id}?", QMessageBox.StandardButton.Discard
                                          | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
            if answer != QMessageBox.StandardButton.Discard:
                return
        super().reject()

    def done(self, result: int) -> None:
        super().done(result)
        self.view.set_document(None)
        self.inner_doc.close()

    def open_block(self, block_id: str) -> BlockEditorDialog:
        """A block inside this one: its own editor, one level deeper in the breadcrumb."""
        dialog = BlockEditorDialog(self.inner_doc, block_id, (*self.path, self.block_id), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.message.connect(self._say)
        dialog.setModal(True)
        dialog.show()
        self.nested = dialog
        return dialog

    def _on_node_activated(self, node_id: str) -> None:
        node = self.inner_doc.node_or_none(node_id)
        if node is not None and node.type == blocks.BLOCK:
            self.open_block(node_id)

    def _add_layer(self, layer_type: str) -> None:
        nid = self.view.add_layer(layer_type)
        if nid:
            self._say(f"Added {nid}")

    def _add_block(self, definition: Any) -> None:
        try:
            nid = self.inner_doc.add_block(definition)
        except LayerLoomError as e:
            self._say(str(e))
            return
        self.view.select_nodes([nid])
        self._say(f"Added {nid}")

    def _say(self, text: str) -> None:
        self.status.setText(text)
