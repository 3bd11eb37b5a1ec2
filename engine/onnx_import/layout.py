"""A readable layered layout for an imported graph: data flows top to bottom, one row per step of the longest
path from an Input, nodes of a row side by side in the order that crosses the fewest wires (barycentre sweeps)."""
from __future__ import annotations

from ..graph import Graph

DX, DY = 200.0, 100.0  # the spacing of the bundled templates' rows (100) with room for wide node labels


def layered_positions(graph: Graph, dx: float = DX, dy: float = DY) -> dict[str, tuple[float, float]]:
    """{node id: (x, y)} with no two nodes on one spot; rows are dy apart, nodes of a row dx apart."""
    order = graph.topological_order()
    depth: dict[str, int] = {}
    for nid in order:
        ins = graph.inputs_of(nid)
        depth[nid] = 1 + max(depth[s] for s in ins) if ins else 0
    rows: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for nid in graph.nodes:  # node order within each row to start with
        rows[depth[nid]].append(nid)
    x: dict[str, float] = {}

    def place(row: list[str]) -> None:
        for k, nid in enumerate(row):
            x[nid] = k - (len(row) - 1) / 2

    for row in rows:
        place(row)

    def sweep(indices, neighbours) -> None:
        for r in indices:
            row = rows[r]
            key = {}
            for k, nid in enumerate(row):
                near = [x[n] for n in neighbours(nid)]
                key[nid] = (sum(near) / len(near) if near else x[nid], k)
            row.sort(key=key.__getitem__)
            place(row)

    for _ in range(4):
        sweep(range(1, len(rows)), graph.inputs_of)
        sweep(range(len(rows) - 2, -1, -1), graph.outputs_of)
    sweep(range(1, len(rows)), graph.inputs_of)
    left = min(x.values(), default=0.0)
    return {nid: ((x[nid] - left) * dx, depth[nid] * dy) for nid in graph.nodes}


def lay_out(graph: Graph) -> None:
    """Move every node of `graph` to its place in the layered layout."""
    for nid, (px, py) in layered_positions(graph).items():
        graph.move(nid, px, py)
