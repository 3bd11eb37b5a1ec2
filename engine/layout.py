"""A layered (Sugiyama-style) layout of the network's DAG: data flows top to bottom, each node one row below
its deepest input, nodes in a row ordered to keep wires short. Used by the app's "Tidy" and the ONNX import."""
from __future__ import annotations

from .graph import Graph

ROW = 120.0     # vertical distance between rows (a node is about 70 high on the canvas)
COLUMN = 230.0  # horizontal distance between nodes in a row (a node is about 190 wide)


def layered_layout(graph: Graph, origin: tuple[float, float] = (0.0, 0.0), sweeps: int = 4
                   ) -> dict[str, tuple[float, float]]:
    """Positions for every node: row = longest path from an Input, order in a row by the barycentre of the
    neighbours in the rows above and below (a few sweeps), rows centred on one vertical axis."""
    order = graph.topological_order()
    row: dict[str, int] = {}
    for nid in order:
        ins = graph.inputs_of(nid)
        row[nid] = max((row[s] + 1 for s in ins), default=0)
    # A source that feeds a deep node only (e.g. a second Input) sits just above its first consumer.
    for nid in reversed(order):
        outs = graph.outputs_of(nid)
        if not graph.inputs_of(nid) and outs:
            row[nid] = max(row[nid], min(row[t] for t in outs) - 1)
    rows: list[list[str]] = [[] for _ in range(max(row.values(), default=-1) + 1)]
    for nid in order:
        rows[row[nid]].append(nid)

    place = {nid: float(i) for r in rows for i, nid in enumerate(r)}

    def sort_row(r: list[str], neighbours) -> None:
        def key(nid: str) -> float:
            ns = neighbours(nid)
            return sum(place[n] for n in ns) / len(ns) if ns else place[nid]
        r.sort(key=key)
        for i, nid in enumerate(r):
            place[nid] = float(i)

    for sweep in range(sweeps):
        if sweep % 2 == 0:
            for r in rows[1:]:
                sort_row(r, graph.inputs_of)
        else:
            for r in reversed(rows[:-1]):
                sort_row(r, graph.outputs_of)

    x0, y0 = origin
    out: dict[str, tuple[float, float]] = {}
    for i, r in enumerate(rows):
        left = -(len(r) - 1) * COLUMN / 2
        for j, nid in enumerate(r):
            out[nid] = (round(x0 + left + j * COLUMN, 1), round(y0 + i * ROW, 1))
    return out
