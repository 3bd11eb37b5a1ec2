"""What an import gives back (ImportResult) and what it raises (OnnxImportError); no torch or ONNX needed here."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import LayerLoomError

if TYPE_CHECKING:  # pragma: no cover
    from ..project import Project

# Kinds of refusal; the CLI exits 2 for UNREADABLE and 1 for the others.
UNREADABLE, UNSUPPORTED, MISMATCH, EXISTS = "unreadable", "unsupported", "mismatch", "exists"


class OnnxImportError(LayerLoomError):
    """An ONNX model that cannot be imported. `kind` is "unreadable" (not an ONNX file, external data outside its
    folder), "unsupported" (an operator or a layout no catalogue layer can express; `op_type` and `node` name
    it), "mismatch" (the imported network does not give onnxruntime's outputs) or "exists" (the project would
    overwrite a file)."""

    def __init__(self, message: str, *, kind: str = UNSUPPORTED, op_type: str | None = None,
                 node: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.op_type = op_type
        self.node = node


@dataclass
class NodeMapping:
    """What became of one ONNX node: the catalogue layers made from it (node ids), or how it was absorbed."""

    name: str
    op_type: str
    layers: list[str] = field(default_factory=list)  # node ids of the imported graph
    how: str = ""  # "layer", "folded into linear_1", "constant", "layout", "dropped", "unused"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op_type": self.op_type, "layers": list(self.layers), "how": self.how}


@dataclass
class ImportResult:
    """An imported model: the project (graph laid out, name, description), its weights under the node ids (the
    names build_model gives its submodules), what each ONNX operator became, and the check against onnxruntime."""

    project: "Project"
    state: dict[str, Any]
    mapping: list[NodeMapping]
    source: str
    opset: int | None = None
    max_abs_diff: float | None = None
    tolerance: float | None = None
    batch_size: int = 0
    check_passed: bool = False
    notes: list[str] = field(default_factory=list)
    project_path: str | None = None
    weights_path: str | None = None
    seconds: float = 0.0

    def op_summary(self) -> list[tuple[str, int, str]]:
        """(ONNX op type, how many, what they became) in the order the operators first appear."""
        types = {nid: n.type for nid, n in self.project.graph.nodes.items()}
        counts: Counter[str] = Counter()
        became: dict[str, list[str]] = {}
        for m in self.mapping:
            counts[m.op_type] += 1
            got = became.setdefault(m.op_type, [])
            kinds = [types[n] for n in m.layers if n in types] or [m.how.split(" ")[0] if m.how else "nothing"]
            for kind in kinds:
                if kind not in got:
                    got.append(kind)
        return [(op, counts[op], ", ".join(became[op])) for op in became]

    def lines(self) -> list[str]:
        """The result as a person reads it (what `layerloom import` prints)."""
        graph = self.project.graph
        out = [f"source:         {self.source}" + (f" (opset {self.opset})" if self.opset else ""),
               f"layers:         {len(graph.nodes)} nodes, {len(graph.edges)} wires"]
        if self.project_path:
            out.append(f"project:        {self.project_path}")
        if self.weights_path:
            out.append(f"weights:        {self.weights_path} ({len(self.state)} tensors)")
        diff = "—" if self.max_abs_diff is None else f"{self.max_abs_diff:.2e}"
        limit = f" (limit {self.tolerance:.0e})" if self.tolerance is not None else ""
        out.append(f"check passed:   {'yes' if self.check_passed else 'NO'} against onnxruntime on a random batch "
                   f"of {self.batch_size}")
        out.append(f"max difference: {diff}{limit}")
        out.append(f"time:           {self.seconds:.1f} s")
        out.append("operators:")
        rows = self.op_summary()
        width = max((len(f"{op} ×{n}") for op, n, _ in rows), default=0)
        out += [f"  {f'{op} ×{n}'.ljust(width)}  → {what}" for op, n, what in rows]
        out += [f"note: {note}" for note in self.notes]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "opset": self.opset, "project_path": self.project_path,
                "weights_path": self.weights_path, "check_passed": self.check_passed,
                "max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance, "batch_size": self.batch_size,
                "seconds": self.seconds, "notes": list(self.notes), "mapping": [m.to_dict() for m in self.mapping]}
