"""Composite blocks: a node of type "Block" that holds an inner graph, used as one layer.

Design
------
A Block node's parameters are its whole definition, inline (plain JSON, so a node is self-contained: copy and paste,
undo and the project file need nothing else)::

    {"block": "res_block",                      # the definition's name: ids (res_block_1), code classes (ResBlock)
     "description": "conv-bn-relu-conv-bn + skip",
     "exposed": {"channels": ["conv2d_1.out_channels", "conv2d_2.out_channels"]},
     "graph": {"nodes": [...], "edges": [...]}}  # the inner graph, as Graph.to_dict() writes it

- Ports: the inner graph takes its data from `BlockInput` nodes (`index` 0, 1, … : the block node's inputs in their
  order) and gives it through `BlockOutput` nodes (`index` 0, 1, …). Both are numbered without gaps; there is at
  least one of each. A block with one output is used like any layer; one with several gives a tuple, and a `Pick`
  node after it (`index`) takes one output. Inner nodes keep their own ids; an inner graph holds no `Input`.
- Exposed parameters: `exposed` maps a name to inner "node.param" targets; `graph.set_params(block_id,
  channels=32)` sets every target (a nested block's exposed name or a custom layer's argument can be a target).
  The value shown is the first target's (`exposed_values`); nothing is stored twice. `set_params` returns
  {"graph": the previous inner graph} for such a name, so undo is exact.
- Nesting: an inner node may be a Block (at most MAX_DEPTH levels).
- Instances: every instance holds its own copy (the choice made over definitions stored once and referenced): an
  instance can then diverge (another channel count) without a second definition, the project file has no
  cross-references to break, and old files load unchanged (they simply have no Block nodes). The exported PyTorch
  script still writes one class per definition, shared by the instances built the same way.
- The library: a definition saved as JSON (`{"format": "layerloom-block", "version": 1, "name", "description",
  "exposed", "graph"}`) in `blocks_dir()` (the user's data folder, or $LAYERLOOM_BLOCKS_DIR); blocks shipped with
  LayerLoom are in resources/blocks (`shipped_blocks()`).

Shape inference (shapes.py) infers the inner graph with the block's input shapes; an error inside is shown on the
block node as "inside res_block_1: conv2d_2: …" (the path is in `ShapeError.inner_path`), and the block's NodeInfo
carries the totals (params, MACs, memory) and the inner Analysis (`inner`). The builder makes each instance an
nn.Module with submodules named by inner id, so weights read `res_block_1.conv2d_1.weight`.

Editing (each returns plain data for the app's undo stack; `undo(graph, info)` and `redo(graph, info)` replay it)::

    block_id, info = group_into_block(graph, ["conv2d_1", "batchnorm2d_1", "relu_1"], name="conv_bn_relu")
    undo(graph, info)                    # the graph as it was, to_dict() identical
    info = ungroup(graph, block_id)      # the inner layers back in the graph, rewired
"""
from __future__ import annotations

import contextvars
import dataclasses
import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CycleError, GraphError, NodeNotFoundError, ParamError, ProjectError, ShapeError
from .files import write_atomically
from .graph import Graph, Node, id_prefix, node_dict
from .params import BOOL, FLOAT, INT, Param

BLOCK, PORT_IN, PORT_OUT, PICK, CUSTOM = "Block", "BlockInput", "BlockOutput", "Pick", "Custom"
STRUCTURAL = ("block", "description", "exposed", "graph")
FORMAT = "layerloom-block"
VERSION = 1
SUFFIX = ".json"
ENV_DIR = "LAYERLOOM_BLOCKS_DIR"
MAX_DEPTH = 8  # blocks inside blocks; JSON files nest at most 64 levels (project.MAX_DEPTH), about 14 blocks deep
MAX_DESCRIPTION = 10_000
MAX_TARGETS = 100
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\- ]{0,63}$")
_EXPOSED_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("layerloom_block_depth", default=0)


# ---- the inner graph -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Inner:
    """A block's inner graph (do not edit it: it is shared) with its port node ids in port order."""

    graph: Graph
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def output_sources(self) -> list[str]:
        """The inner node feeding each BlockOutput, in output order."""
        return [self.graph.inputs_of(o)[0] if self.graph.inputs_of(o) else o for o in self.outputs]


_CACHE: OrderedDict[str, Inner] = OrderedDict()
_CACHE_SIZE = 512


def inner(params: dict[str, Any]) -> Inner:
    """The parsed inner graph of a Block node's (validated) parameters; cached, so do not change it."""
    return _parse_cached(params["graph"])


def inner_graph(params: dict[str, Any]) -> Graph:
    """A copy of the inner graph of a Block node's parameters, free to change."""
    return inner(params).graph.copy()


def _parse_cached(data: Any) -> Inner:
    key = json.dumps(data, sort_keys=True, ensure_ascii=False)
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    parsed = _parse(data)
    _CACHE[key] = parsed
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return parsed


def _parse(data: Any) -> Inner:
    """Read and check an inner graph; ParamError whose `param` is the path inside the block's parameters."""
    from .project import _read_graph  # the project reader's checks, with the block's paths

    def err(message: str, where: str | None = None) -> ParamError:
        return ParamError(message, where or "graph")

    graph = _read_graph(data, err)
    ins: dict[int, str] = {}
    outs: dict[int, str] = {}
    where = {nid: f"graph.nodes[{i}]" for i, nid in enumerate(graph.nodes)}
    for nid, node in graph.nodes.items():
        if node.type == "Input":
            raise ParamError(f"{nid} is an Input, which a block cannot hold: its data comes in through BlockInput "
                             f"nodes (index 0, 1, …)", f"{where[nid]}.type")
        if node.type in (PORT_IN, PORT_OUT):
            ports = ins if node.type == PORT_IN else outs
            index = node.params["index"]
            if index in ports:
                raise ParamError(f"{nid} and {ports[index]} are both {node.type} {index}: each port number is used "
                                 f"once", f"{where[nid]}.params.index")
            ports[index] = nid
    for kind, ports in ((PORT_IN, ins), (PORT_OUT, outs)):
        if not ports:
            what = "input" if kind == PORT_IN else "output"
            raise ParamError(f"a block needs at least one {kind} node (index 0): where its {what} "
                             f"{'comes in' if kind == PORT_IN else 'leaves'}", "graph.nodes")
        missing = [i for i in range(len(ports)) if i not in ports]
        if missing:
            worst = max(ports)
            raise ParamError(f"{kind} numbers must run 0, 1, … without gaps, but {ports[worst]} is {worst} and "
                             f"there is no {missing[0]}", f"{where[ports[worst]]}.params.index")
    return Inner(graph, tuple(ins[i] for i in range(len(ins))), tuple(outs[i] for i in range(len(outs))))


def default_block_params() -> dict[str, Any]:
    """An empty block: its one input passed straight to its one output."""
    return {"block": "block", "description": "", "exposed": {},
            "graph": {"nodes": [{"id": "in_1", "type": PORT_IN, "params": {"index": 0}, "position": [0.0, 0.0]},
                                {"id": "out_1", "type": PORT_OUT, "params": {"index": 0}, "position": [0.0, 120.0]}],
                      "edges": [{"source": "in_1", "target": "out_1"}]}}


def port_range(params: dict[str, Any]) -> tuple[int, int]:
    """A block takes exactly as many inputs as its inner graph has BlockInput nodes."""
    n = len(inner(params).inputs)
    return n, n


def output_count(params: dict[str, Any]) -> int:
    return len(inner(params).outputs)


# ---- parameters ----------------------------------------------------------------------------------------------

def validate_block_params(values: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Block node's parameters checked and in canonical form: `values` (structural keys and exposed names) merged
    over `base` (or an empty block). Raises ParamError whose `param` says where (e.g.
    "graph.nodes[2].params.out_channels")."""
    if not isinstance(values, dict):
        raise ParamError(f"Block: parameters must be a mapping of names to values, not {values!r}")
    depth = _depth.get()
    if depth >= MAX_DEPTH:
        raise ParamError(f"blocks nest deeper than {MAX_DEPTH} levels: ungroup some of the inner blocks", "graph")
    token = _depth.set(depth + 1)
    try:
        return _validate(values, base)
    finally:
        _depth.reset(token)


def _validate(values: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(base) if base is not None else default_block_params()
    for key in STRUCTURAL:
        if key in values:
            out[key] = values[key]
    name = out.get("block")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ParamError(f"a block name must be 1 to 64 letters, digits, spaces, _ or -, starting with a letter, "
                         f"not {name!r}", "block")
    description = out.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ParamError(f"{name}: the description must be text of at most {MAX_DESCRIPTION:,} characters",
                         "description")
    exposed = _check_exposed(name, out.get("exposed", {}))
    if base is None or "graph" in values:
        parsed = _parse_cached(out.get("graph"))
    else:
        parsed = inner(base)
    graph = parsed.graph
    for exposed_name, targets in exposed.items():
        for i, target in enumerate(targets):
            _check_target(name, graph, exposed_name, target, f"exposed.{exposed_name}[{i}]")
    virtual = {k: v for k, v in values.items() if k not in STRUCTURAL}
    if virtual:
        unknown = [k for k in virtual if k not in exposed]
        if unknown:
            names = ", ".join([*STRUCTURAL, *exposed])
            raise ParamError(f"{name} has no parameter {unknown[0]!r}; its parameters are: {names}", unknown[0])
        graph = graph.copy()
        for key, value in virtual.items():
            for target in exposed[key]:
                nid, param = target.split(".", 1)
                try:
                    graph.set_params(nid, {param: value})
                except ParamError as e:
                    raise ParamError(f"{name}: {key} = {value!r} does not fit {target}: {e}", key) from None
    return {"block": name, "description": description, "exposed": exposed, "graph": graph.to_dict()}


def _check_exposed(name: str, exposed: Any) -> dict[str, list[str]]:
    if not isinstance(exposed, dict):
        raise ParamError(f"{name}: exposed must map a parameter name to a list of \"node.param\" targets, not "
                         f"{exposed!r}", "exposed")
    out: dict[str, list[str]] = {}
    for key, targets in exposed.items():
        if not isinstance(key, str) or not _EXPOSED_RE.match(key) or key in STRUCTURAL:
            raise ParamError(f"{name}: the exposed name {key!r} must be a word of letters, digits and _ (not "
                             f"{', '.join(STRUCTURAL)})", f"exposed.{key}")
        if isinstance(targets, str):
            targets = [targets]
        if not (isinstance(targets, list) and 1 <= len(targets) <= MAX_TARGETS
                and all(isinstance(t, str) and "." in t for t in targets)):
            raise ParamError(f"{name}: exposed {key} must list 1 to {MAX_TARGETS} inner parameters as "
                             f"\"node.param\" (e.g. \"conv2d_1.out_channels\"), not {targets!r}", f"exposed.{key}")
        if len(set(targets)) != len(targets):
            raise ParamError(f"{name}: exposed {key} lists a target twice", f"exposed.{key}")
        out[key] = list(targets)
    return out


def settable_names(node: Node) -> list[str]:
    """The parameters of a node that an exposed name may point at: its own (a Block's exposed names, a Custom
    layer's arguments); none for a block's ports."""
    if node.type == BLOCK:
        return list(node.params.get("exposed", {}))
    if node.type == CUSTOM:
        return list(node.params.get("arguments", {}))
    if node.type in (PORT_IN, PORT_OUT):
        return []
    return list(node.params)


def _check_target(name: str, graph: Graph, key: str, target: str, where: str) -> None:
    nid, param = target.split(".", 1)
    if nid not in graph.nodes:
        raise ParamError(f"{name}: exposed {key} points at {target}, but the block has no node {nid!r}", where)
    allowed = settable_names(graph.nodes[nid])
    if param not in allowed:
        listed = ", ".join(allowed) or "none that can be exposed"
        raise ParamError(f"{name}: exposed {key} points at {target}, but {nid} has no parameter {param!r} (its "
                         f"parameters: {listed})", where)


def _read_target(graph: Graph, target: str) -> Any:
    nid, param = target.split(".", 1)
    node = graph.nodes[nid]
    if node.type == BLOCK:
        return exposed_values(node.params)[param]
    if node.type == CUSTOM:
        return node.params["arguments"][param]
    return node.params[param]


def exposed_values(params: dict[str, Any]) -> dict[str, Any]:
    """{exposed name: its value}, read from the first inner target."""
    graph = inner(params).graph
    return {k: _read_target(graph, targets[0]) for k, targets in params.get("exposed", {}).items()}


@dataclass(frozen=True)
class ExposedParam:
    """One parameter a block shows: its name, value, the inner targets, and the Param that checks it (None for a
    text argument of a custom layer)."""

    name: str
    value: Any
    targets: tuple[str, ...]
    param: Param | None


def block_parameters(node_or_params: Node | dict[str, Any]) -> list[ExposedParam]:
    """The exposed parameters of a block node (or its parameters), for the inspector: editing one is
    `graph.set_params(block_id, {name: value})`."""
    params = node_or_params.params if isinstance(node_or_params, Node) else node_or_params
    graph = inner(params).graph
    out = []
    for key, targets in params.get("exposed", {}).items():
        out.append(ExposedParam(key, _read_target(graph, targets[0]), tuple(targets),
                                _target_param(graph, targets[0], key)))
    return out


def _target_param(graph: Graph, target: str, key: str) -> Param | None:
    nid, param = target.split(".", 1)
    node = graph.nodes[nid]
    if node.type == BLOCK:
        found = next((p for p in block_parameters(node) if p.name == param), None)
        return dataclasses.replace(found.param, name=key) if found and found.param else None
    if node.type == CUSTOM:
        value = node.params["arguments"][param]
        kind = BOOL if isinstance(value, bool) else INT if isinstance(value, int) else \
            FLOAT if isinstance(value, float) else None
        return Param(key, kind, value, f"{param} of {nid}") if kind else None
    spec_param = next((p for p in node.spec.params if p.name == param), None)
    return dataclasses.replace(spec_param, name=key) if spec_param else None


# ---- shapes ----------------------------------------------------------------------------------------------------

def infer_block(node_id: str, params: dict[str, Any], ins: list) -> Any:
    """The NodeInfo of a block node: its inner graph inferred with the block's input shapes. On an inner error the
    block's error names the inner node ("inside res_block_1: conv2d_2: …") and `error.inner_path` gives the path;
    the totals (params, MACs, memory) are the inner graph's, `outputs` the TensorInfo of each output and `inner`
    the inner Analysis."""
    from .layers import TensorInfo
    from .shapes import NodeInfo, analyze

    info = NodeInfo(node_id, BLOCK)
    parsed = inner(params)
    n = len(parsed.inputs)
    if len(ins) != n:
        ports = ", ".join(parsed.inputs)
        info.error = ShapeError(
            f"{node_id} takes {_inputs(n)} ({ports}) but {'has none' if not ins else f'gets {len(ins)}'}",
            hint="connect one wire per input, in the order of the block's BlockInput numbers")
        return info
    analysis = analyze(parsed.graph, ports=list(ins))
    info.inner = analysis
    errors = analysis.errors
    if errors:
        first = errors[0]
        inner_error = first.error
        path = [first.node_id, *getattr(inner_error, "inner_path", [])]
        more = f" (and {len(errors) - 1} more inside)" if len(errors) > 1 else ""
        reason = (f"inside {node_id}: {inner_error.reason}" if first.type == BLOCK else
                  f"inside {node_id}: {first.node_id}: {inner_error.reason}")
        info.error = ShapeError(reason + more, hint=inner_error.hint)
        info.error.inner_path = path  # type: ignore[attr-defined]
        return info
    outputs = []
    for o in parsed.outputs:
        out_info = analysis.nodes[o]
        outputs.append(TensorInfo(out_info.shape, out_info.dtype, o))
    info.outputs = outputs
    info.shape, info.dtype = outputs[0].shape, outputs[0].dtype
    info.params, info.macs, info.memory = analysis.total_params, analysis.total_macs, analysis.total_memory
    return info


def _inputs(n: int) -> str:
    return "one input" if n == 1 else f"{n} inputs"


# ---- editing: group, ungroup, undo, redo ----------------------------------------------------------------------------

class _Log:
    """Graph edits made through it are recorded as plain data, enough to replay them either way."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.ops: list[list[Any]] = []

    def add(self, data: dict[str, Any], index: int | None = None) -> str:
        nid = _add(self.graph, data, index)
        self.ops.append(["add", node_dict(self.graph.nodes[nid]), list(self.graph.nodes).index(nid)])
        return nid

    def remove(self, node_id: str) -> None:
        index = list(self.graph.nodes).index(node_id)
        data = node_dict(self.graph.nodes[node_id])
        _, edges = self.graph.remove_node(node_id)
        self.ops.append(["remove", data, index, [[e.source, e.target, i] for e, i in edges]])

    def connect(self, source: str, target: str, index: int | None = None) -> None:
        self.graph.connect(source, target, index)
        self.ops.append(["connect", source, target, self.graph.inputs_of(target).index(source)])

    def rollback(self) -> None:
        _apply(self.graph, self.ops, backwards=True)


def _add(graph: Graph, data: dict[str, Any], index: int | None) -> str:
    return graph.add_node(data["type"], data.get("params", {}), node_id=data["id"], position=data.get("position"),
                          index=index, frozen=data.get("frozen", False), lr_factor=data.get("lr_factor", 1.0))


def _apply(graph: Graph, ops: list[list[Any]], backwards: bool) -> None:
    for op in (reversed(ops) if backwards else ops):
        kind = op[0]
        if kind == "add":
            if backwards:
                graph.remove_node(op[1]["id"])
            else:
                _add(graph, op[1], op[2])
        elif kind == "remove":
            if backwards:
                _add(graph, op[1], op[2])
                for source, target, index in reversed(op[3]):
                    graph.connect(source, target, index)
            else:
                graph.remove_node(op[1]["id"])
        elif kind == "connect":
            if backwards:
                graph.disconnect(op[1], op[2])
            else:
                graph.connect(op[1], op[2], op[3])
        else:  # a bug, not a user error
            raise AssertionError(f"unknown edit {kind!r}")


def undo(graph: Graph, info: dict[str, Any]) -> None:
    """Undo what group_into_block or ungroup did (their returned `info`): afterwards graph.to_dict() is what it
    was before."""
    _apply(graph, info["ops"], backwards=True)


def redo(graph: Graph, info: dict[str, Any]) -> None:
    """Do again what `info` recorded, after undo(graph, info): the same ids, order and wiring."""
    _apply(graph, info["ops"], backwards=False)


def block_prefix(name: str) -> str:
    """The id prefix of a block's instances: res_block for "res_block" or "ResBlock", block when nothing fits."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name or "")
    slug = re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")[:48]
    return slug if slug and slug[0].isalpha() else "block"


def _centre(graph: Graph, ids: Iterable[str]) -> tuple[float, float]:
    ps = [graph.nodes[n].position for n in ids]
    if not ps:
        return 0.0, 0.0
    return sum(p[0] for p in ps) / len(ps), sum(p[1] for p in ps) / len(ps)


def group_into_block(graph: Graph, node_ids: Iterable[str], name: str = "block", description: str = "", *,
                     block_id: str | None = None, position: Iterable[float] | None = None,
                     exposed: dict[str, list[str]] | None = None) -> tuple[str, dict[str, Any]]:
    """Replace the selected nodes with one Block node holding them. The block's inputs are the outside nodes that
    fed the selection (one input each, in the order met going through the selection in node order), its outputs
    the selected nodes whose result leaves the selection (or that fed nothing: model outputs), in node order. Each
    wire keeps its place among its target's inputs. With several outputs, one Pick node per output follows the block.

    Returns (block id, info): `undo(graph, info)` restores the graph exactly, `redo(graph, info)` groups again.
    Raises GraphError (nothing changed) for an empty selection, an unknown id, an Input node, or a selection that
    an outside node sits in the middle of (grouping it would make a loop)."""
    selected = _selection(graph, node_ids)
    chosen = set(selected)
    for nid in selected:
        if graph.nodes[nid].type == "Input":
            raise GraphError(f"{nid} is an Input: a block takes its data from outside, so leave the Input nodes out "
                             f"of the selection")
    _check_convex(graph, chosen)
    for nid in selected:
        outside = [s for s in graph.inputs_of(nid) if s not in chosen]
        if graph.nodes[nid].type == PICK and outside:
            raise GraphError(f"{nid} takes one output of {outside[0]}: select {outside[0]} too, or leave {nid} out")
    for nid in graph.nodes:
        for src in graph.inputs_of(nid):
            crossing = (src in chosen) != (nid in chosen)
            if crossing and graph.nodes[src].type == BLOCK and output_count(graph.nodes[src].params) > 1:
                raise GraphError(f"{src} gives several outputs and its Pick nodes must go with it: select {src} and "
                                 f"every Pick after it, or neither")
    # The ports: outside sources (inputs) and selected nodes whose result leaves the selection (outputs).
    in_ports: list[str] = []
    for nid in selected:
        for src in graph.inputs_of(nid):
            if src not in chosen and src not in in_ports:
                in_ports.append(src)
    out_ports = [nid for nid in selected
                 if not graph.outputs_of(nid) or any(t not in chosen for t in graph.outputs_of(nid))]
    # The inner graph: BlockInput nodes, the selected nodes (ids kept), BlockOutput nodes.
    taken = set(selected)

    def port_id(prefix: str) -> str:
        n = 1
        while f"{prefix}_{n}" in taken:
            n += 1
        taken.add(f"{prefix}_{n}")
        return f"{prefix}_{n}"

    cx, cy = _centre(graph, selected)
    top = min(graph.nodes[n].position[1] for n in selected)
    bottom = max(graph.nodes[n].position[1] for n in selected)
    in_ids = [port_id("in") for _ in in_ports]
    out_ids = [port_id("out") for _ in out_ports]
    nodes = [{"id": pid, "type": PORT_IN, "params": {"index": i},
              "position": [graph.nodes[src].position[0], top - 120.0]} for i, (pid, src) in
             enumerate(zip(in_ids, in_ports))]
    nodes += [node_dict(graph.nodes[nid]) for nid in selected]
    nodes += [{"id": pid, "type": PORT_OUT, "params": {"index": i},
               "position": [graph.nodes[src].position[0], bottom + 120.0]} for i, (pid, src) in
              enumerate(zip(out_ids, out_ports))]
    edges = []
    for nid in selected:
        for src in graph.inputs_of(nid):
            edges.append({"source": src if src in chosen else in_ids[in_ports.index(src)], "target": nid})
    edges += [{"source": src, "target": pid} for pid, src in zip(out_ids, out_ports)]
    params = validate_block_params({"block": name, "description": description, "exposed": exposed or {},
                                    "graph": {"nodes": nodes, "edges": edges}})
    # Where each outside consumer took a selected node's result: (consumer, input index, output number).
    slots = sorted(((t, graph.inputs_of(t).index(src), out_ports.index(src))
                    for src in out_ports for t in graph.outputs_of(src) if t not in chosen),
                   key=lambda s: (s[0], s[1]))
    index = list(graph.nodes).index(selected[0])
    bid = block_id or graph.free_id(block_prefix(name))
    if block_id is not None and block_id in graph.nodes and block_id not in chosen:
        raise GraphError(f"there is already a node {block_id!r}")
    pos = tuple(position) if position is not None else (cx, cy)
    pick_x = [graph.nodes[src].position[0] for src in out_ports]
    log = _Log(graph)
    try:
        for nid in selected:
            log.remove(nid)
        log.add({"id": bid, "type": BLOCK, "params": params, "position": pos}, index)
        for src in in_ports:
            log.connect(src, bid)
        sources = [bid]
        if len(out_ports) > 1:
            sources = []
            for k in range(len(out_ports)):
                pid = graph.new_id(PICK)
                log.add({"id": pid, "type": PICK, "params": {"index": k}, "position": (pick_x[k], pos[1] + 120.0)},
                        index + 1 + k)
                log.connect(bid, pid)
                sources.append(pid)
        for target, i, k in slots:
            log.connect(sources[k], target, i)
    except Exception:
        log.rollback()
        raise
    return bid, {"kind": "group", "block": bid, "ops": log.ops}


def _selection(graph: Graph, node_ids: Iterable[str]) -> list[str]:
    if isinstance(node_ids, str):
        node_ids = [node_ids]
    wanted = list(dict.fromkeys(node_ids))
    if not wanted:
        raise GraphError("select the layers to group into a block first")
    for nid in wanted:
        graph.node(nid)  # NodeNotFoundError
    chosen = set(wanted)
    return [nid for nid in graph.nodes if nid in chosen]  # node order


def _check_convex(graph: Graph, chosen: set[str]) -> None:
    """No path may leave the selection and come back into it: the block would feed itself."""
    stack = [t for nid in chosen for t in graph.outputs_of(nid) if t not in chosen]
    seen: set[str] = set()
    while stack:
        nid = stack.pop()
        if nid in seen:
            continue
        seen.add(nid)
        for t in graph.outputs_of(nid):
            if t in chosen:
                raise CycleError(f"{nid} is fed by the selection and feeds it again, so the block would feed "
                                 f"itself: add {nid} to the selection, or leave out the layers after it")
            stack.append(t)


def ungroup(graph: Graph, block_id: str) -> dict[str, Any]:
    """Put a block's inner nodes back in the graph in its place (inner ids kept where free, else fresh ones such as
    conv2d_3), wired as the block was: its inputs into the inner layers its BlockInputs fed, the layers before its
    BlockOutputs into what the block (or its Pick nodes) fed, each wire at its place. Positions move with the block.

    Returns info: `undo(graph, info)` restores the graph exactly. Raises GraphError (nothing changed) when the node
    is not a block, or when ungrouping would wire one node into another twice."""
    node = graph.node(block_id)
    if node.type != BLOCK:
        raise GraphError(f"{block_id} is a {node.type}, not a block: only a block can be ungrouped")
    parsed = inner(node.params)
    g = parsed.graph
    srcs = graph.inputs_of(block_id)
    if len(srcs) != len(parsed.inputs):
        raise GraphError(f"{block_id} takes {_inputs(len(parsed.inputs))} but {len(srcs)} "
                         f"{'is' if len(srcs) == 1 else 'are'} connected: connect them before ungrouping")
    picks = [t for t in graph.outputs_of(block_id) if graph.nodes[t].type == PICK]
    n_out = len(parsed.outputs)
    if n_out > 1 and len(picks) != len(graph.outputs_of(block_id)):
        others = [t for t in graph.outputs_of(block_id) if t not in picks]
        raise GraphError(f"{block_id} gives {n_out} outputs but {others[0]} takes it whole: put a Pick between "
                         f"them before ungrouping")
    gone = {block_id, *picks}
    real = [nid for nid in g.nodes if g.nodes[nid].type not in (PORT_IN, PORT_OUT)]
    # Ids: the inner ones where free, else the lowest number with the same prefix that neither the graph nor the
    # block uses.
    outside = set(graph.nodes) - gone
    keep = outside | set(real)
    rename: dict[str, str] = {}
    for nid in real:
        new = nid
        if nid in outside:
            prefix, n = id_prefix(nid), 1
            while f"{prefix}_{n}" in keep:
                n += 1
            new = f"{prefix}_{n}"
            keep.add(new)
        rename[nid] = new
    port_source = {pid: srcs[i] for i, pid in enumerate(parsed.inputs)}

    def outer(inner_id: str) -> str:
        return port_source[inner_id] if inner_id in port_source else rename[inner_id]

    out_sources = [outer(s) for s in parsed.output_sources()]
    for o, s in zip(parsed.outputs, parsed.output_sources()):
        if s == o:
            raise GraphError(f"{block_id}'s output {o} is not connected inside the block: connect it first")
    # Outside consumers: (consumer, input index, which output).
    slots: list[tuple[str, int, int]] = []
    for t in graph.outputs_of(block_id):
        if t in picks:
            k = graph.nodes[t].params["index"]
            if k >= n_out:
                raise GraphError(f"{t} takes output {k} of {block_id}, which gives only {n_out}: fix the Pick first")
            slots += [(c, graph.inputs_of(c).index(t), k) for c in graph.outputs_of(t)]
        else:
            slots.append((t, graph.inputs_of(t).index(block_id), 0))
    slots.sort(key=lambda s: (s[0], s[1]))
    planned: set[tuple[str, str]] = set()
    for t in real:
        for s in g.inputs_of(t):
            planned.add((outer(s), rename[t]))
    for c, _, k in slots:
        pair = (out_sources[k], c)
        already = out_sources[k] in graph.inputs_of(c) and out_sources[k] not in gone
        if pair in planned or already:
            raise GraphError(f"ungrouping {block_id} would connect {pair[0]} to {c} twice: remove one of those "
                             f"wires first")
        planned.add(pair)
    # Positions: the inner layout moved so that its centre is the block's position.
    cx, cy = _centre(g, real)
    bx, by = node.position
    dx, dy = bx - cx, by - cy
    ids = list(graph.nodes)
    index = sum(1 for n in ids[:ids.index(block_id)] if n not in gone)  # the block's place once it is gone
    log = _Log(graph)
    try:
        for pid in picks:
            log.remove(pid)
        log.remove(block_id)
        for i, nid in enumerate(real):
            data = node_dict(g.nodes[nid])
            x, y = data["position"]
            data.update(id=rename[nid], position=(x + dx, y + dy))
            log.add(data, index + i)
        for t in real:
            for s in g.inputs_of(t):
                log.connect(outer(s), rename[t])
        for c, i, k in slots:
            log.connect(out_sources[k], c, i)
    except Exception:
        log.rollback()
        raise
    return {"kind": "ungroup", "block": block_id, "nodes": [rename[n] for n in real], "ops": log.ops}


def edit_inner(graph: Graph, block_id: str, edit: Callable[[Graph], Any]) -> dict[str, Any]:
    """Change a block's inner graph: `edit` gets a copy to change (add, connect, set_params ...); the result is
    checked and set. Returns the previous parameters to undo with `graph.set_params(block_id, old)`."""
    node = graph.node(block_id)
    if node.type != BLOCK:
        raise GraphError(f"{block_id} is a {node.type}, not a block")
    copy = inner_graph(node.params)
    edit(copy)
    return graph.set_params(block_id, {"graph": copy.to_dict()})


def set_inner_params(graph: Graph, path: str | list[str], values: dict[str, Any]) -> dict[str, Any]:
    """Set parameters of a node inside a block: path "res_block_1.conv2d_1" (or a list, deeper for nested blocks).
    Returns the previous parameters of the outermost block: `graph.set_params(path[0], old)` undoes it."""
    parts = path.split(".") if isinstance(path, str) else list(path)
    if len(parts) < 2:
        raise NodeNotFoundError(f"{path!r} does not name a node inside a block (block.node)")

    def apply(g: Graph, rest: list[str]) -> None:
        if len(rest) == 1:
            g.set_params(rest[0], values)
            return
        nested = g.node(rest[0])
        if nested.type != BLOCK:
            raise GraphError(f"{rest[0]} is a {nested.type}, not a block")
        copy = inner_graph(nested.params)
        apply(copy, rest[1:])
        g.set_params(rest[0], {"graph": copy.to_dict()})

    return edit_inner(graph, parts[0], lambda g: apply(g, parts[1:]))


# ---- definitions and the library --------------------------------------------------------------------------------

@dataclass
class BlockDefinition:
    """A reusable block: what a library file holds and what `instantiate_block` puts in a graph."""

    name: str
    description: str = ""
    exposed: dict[str, list[str]] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=lambda: default_block_params()["graph"])

    def params(self) -> dict[str, Any]:
        """Checked Block node parameters (ParamError when the definition does not hold together)."""
        return validate_block_params({"block": self.name, "description": self.description,
                                      "exposed": self.exposed, "graph": self.graph})

    def values(self) -> dict[str, Any]:
        """The exposed parameters' values."""
        return exposed_values(self.params())

    def to_dict(self) -> dict[str, Any]:
        p = self.params()
        return {"format": FORMAT, "version": VERSION, "name": p["block"], "description": p["description"],
                "exposed": p["exposed"], "graph": p["graph"]}

    @classmethod
    def from_dict(cls, data: Any, path: str | os.PathLike | None = None) -> "BlockDefinition":
        """Read a block file's content; ProjectError saying where (e.g. graph.nodes[2].params.out_channels)."""
        p = str(path) if path is not None else None

        def err(message: str, where: str | None = None) -> ProjectError:
            return ProjectError(message, path=p, where=where)

        if not isinstance(data, dict):
            raise err("a block file holds one JSON object")
        if data.get("format") != FORMAT:
            raise err(f"this is not a LayerLoom block (format is {data.get('format')!r}, expected {FORMAT!r})",
                      "format")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise err(f"the format version must be a whole number from 1, not {version!r}", "version")
        if version > VERSION:
            raise err(f"this block is format version {version}, written by a newer LayerLoom; this one reads "
                      f"versions up to {VERSION}. Update LayerLoom to use it", "version")
        if "graph" not in data:
            raise err("the block has no inner graph", "graph")
        from .project import _check_plain
        _check_plain(data, err)
        try:
            params = validate_block_params({"block": data.get("name"), "description": data.get("description", ""),
                                            "exposed": data.get("exposed", {}), "graph": data["graph"]})
        except ParamError as e:
            where = "name" if e.param == "block" else e.param
            raise err(str(e), where) from None
        except GraphError as e:
            raise err(str(e), "graph") from None
        return cls(params["block"], params["description"], params["exposed"], params["graph"])


def definition_of(graph: Graph, block_id: str) -> BlockDefinition:
    """The definition of a block node in a graph (to save it to the library or share it)."""
    node = graph.node(block_id)
    if node.type != BLOCK:
        raise GraphError(f"{block_id} is a {node.type}, not a block")
    p = node_dict(node)["params"]
    return BlockDefinition(p["block"], p["description"], p["exposed"], p["graph"])


def instantiate_block(graph: Graph, definition: "BlockDefinition | str", position: Iterable[float] | None = None,
                      *, values: dict[str, Any] | None = None, node_id: str | None = None,
                      index: int | None = None) -> str:
    """Add a block node made from a definition (or the name of a library or shipped block) with its exposed
    parameters set from `values`; returns its id (res_block_1, …). `graph.remove_node(id)` undoes it."""
    if isinstance(definition, str):
        definition = load_block(definition)
    params = definition.params()
    if values:
        params = validate_block_params(values, params)
    nid = node_id or graph.free_id(block_prefix(params["block"]))
    return graph.add_node(BLOCK, params, node_id=nid, position=position, index=index)


def blocks_dir() -> Path:
    """The user's block library: $LAYERLOOM_BLOCKS_DIR, else <user data folder>/LayerLoom/blocks."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_data_dir("LayerLoom", appauthor=False)) / "blocks"


def shipped_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "resources" / "blocks"


def block_file_name(name: str) -> str:
    return block_prefix(name) + SUFFIX


def read_block_file(path: str | os.PathLike) -> BlockDefinition:
    """A block file; ProjectError naming the file and what is wrong."""
    p = Path(path)
    try:
        if p.stat().st_size > 16 * 1024 * 1024:
            raise ProjectError("the file is too large to be a block", path=str(p))
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError("no such block file", path=str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProjectError(f"the block file cannot be read ({getattr(e, 'strerror', None) or e})",
                           path=str(p)) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ProjectError(f"the file is not valid JSON ({getattr(e, 'msg', e)})", path=str(p)) from None
    return BlockDefinition.from_dict(data, p)


def write_block_file(definition: BlockDefinition, path: str | os.PathLike) -> Path:
    """Write a definition to `path` (to share it); atomically, as projects are. ProjectError when it cannot."""
    from .project import _pretty

    p = Path(path)
    text = _pretty(definition.to_dict(), "") + "\n"
    try:
        write_atomically(p, text, mode=0o644)
    except OSError as e:
        raise ProjectError(f"the block cannot be written ({e.strerror or e})", path=str(p)) from None
    return p


def save_block(definition: BlockDefinition, folder: str | os.PathLike | None = None, *,
               overwrite: bool = False) -> Path:
    """Save a definition in the library (or `folder`) as <name>.json. ProjectError when a different block of that
    name is there already (unless `overwrite`) or the folder cannot be written."""
    where = Path(folder) if folder is not None else blocks_dir()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProjectError(f"the block library folder cannot be created ({e.strerror or e})", path=str(where)) \
            from None
    path = where / block_file_name(definition.name)
    if path.exists() and not overwrite:
        try:
            same = read_block_file(path).to_dict() == definition.to_dict()
        except ProjectError:
            same = False
        if not same:
            raise ProjectError(f"the library already has a block named {definition.name!r}: give this one another "
                               f"name, or replace it (overwrite)", path=str(path))
    return write_block_file(definition, path)


def list_blocks(folder: str | os.PathLike | None = None,
                problems: list[ProjectError] | None = None) -> list[BlockDefinition]:
    """The library's blocks by name; a file that cannot be read is left out (and added to `problems`)."""
    where = Path(folder) if folder is not None else blocks_dir()
    out = []
    for path in sorted(where.glob(f"*{SUFFIX}")) if where.is_dir() else []:
        try:
            out.append(read_block_file(path))
        except ProjectError as e:
            if problems is not None:
                problems.append(e)
    return sorted(out, key=lambda d: d.name.lower())


_SHIPPED: dict[str, BlockDefinition] | None = None


def shipped_blocks() -> dict[str, BlockDefinition]:
    """The blocks that come with LayerLoom (resources/blocks), by name: res_block, bottleneck_block,
    inception_block, se_block, transformer_encoder, lstm_encoder."""
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = {d.name: d for d in (read_block_file(p) for p in sorted(shipped_dir().glob(f"*{SUFFIX}")))}
    return {k: dataclasses.replace(v, exposed=json.loads(json.dumps(v.exposed)),
                                   graph=json.loads(json.dumps(v.graph))) for k, v in _SHIPPED.items()}


def load_block(source: str | os.PathLike) -> BlockDefinition:
    """A block from a file path, else by name from the library, else from the shipped blocks."""
    p = Path(source)
    if p.suffix == SUFFIX or len(p.parts) > 1 or isinstance(source, os.PathLike):
        return read_block_file(p)
    name = str(source)
    for definition in list_blocks():
        if definition.name == name or block_prefix(definition.name) == block_prefix(name):
            return definition
    shipped = shipped_blocks()
    for definition in shipped.values():
        if definition.name == name or block_prefix(definition.name) == block_prefix(name):
            return definition
    raise ProjectError(f"there is no block {name!r} in your library ({blocks_dir()}) or among the shipped blocks "
                       f"({', '.join(shipped)})")


def import_block_file(path: str | os.PathLike, folder: str | os.PathLike | None = None, *,
                      overwrite: bool = False) -> Path:
    """Add a shared block file to the library; returns where it was saved."""
    return save_block(read_block_file(path), folder, overwrite=overwrite)
