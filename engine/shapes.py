"""Shape inference: each node's output shape, parameters, MACs and activation memory, or an error with its fix.

Pure Python rules from the catalogue (no torch), so a 200-node graph re-infers in well under a millisecond
per node; tests check every rule against real PyTorch modules.

A Block node is inferred by inferring its inner graph with the block's input shapes (blocks.infer_block): its
NodeInfo has the inner totals, `outputs` (one TensorInfo per output) and `inner` (the inner Analysis). A Pick takes
one of a block's outputs. A Custom layer runs its (trusted) code on PyTorch's meta device (custom.infer_custom).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ShapeError
from .graph import Graph
from .layers import INT64, TensorInfo, fmt, get_spec
from .layers.base import DTYPE_BYTES


@dataclass
class NodeInfo:
    """What inference found for one node. `memory` is the bytes of its output for one sample."""

    node_id: str
    type: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    params: int = 0
    macs: int = 0
    memory: int = 0
    error: ShapeError | None = None
    outputs: list[TensorInfo] | None = None  # a Block: each of its outputs (shape holds the first)
    inner: Analysis | None = None  # a Block: the analysis of its inner graph

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def waiting(self) -> bool:
        """True when this node is fine itself but waits on an error above it."""
        return self.error is not None and self.error.waiting_on is not None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "id": self.node_id, "type": self.type, "shape": list(self.shape) if self.shape else None,
            "dtype": self.dtype, "params": self.params, "macs": self.macs, "memory": self.memory,
            "error": str(self.error) if self.error else None}
        if self.outputs is not None and len(self.outputs) > 1:
            out["outputs"] = [list(t.shape) for t in self.outputs]
        if self.inner is not None:
            out["inner"] = [self.inner.nodes[n].to_dict() for n in self.inner.order]
        return out


@dataclass
class Analysis:
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.nodes) and all(n.ok for n in self.nodes.values())

    @property
    def errors(self) -> list[NodeInfo]:
        """Nodes with an error of their own (not those only waiting on one)."""
        return [n for n in self.nodes.values() if n.error is not None and not n.waiting]

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes.values())

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes.values())

    @property
    def total_memory(self) -> int:
        return sum(n.memory for n in self.nodes.values())

    @property
    def blocks(self) -> dict[str, NodeInfo]:
        """The Block nodes (of this level) by id; each NodeInfo's params, macs and memory are the block's totals."""
        return {nid: info for nid, info in self.nodes.items() if info.type == "Block"}

    def walk(self, prefix: str = "") -> Iterator[tuple[str, NodeInfo]]:
        """(path, NodeInfo) of every node in topological order, the nodes inside a block right after it with
        dotted paths (res_block_1.conv2d_1, as the weights are named)."""
        for nid in self.order:
            info = self.nodes[nid]
            yield prefix + nid, info
            if info.inner is not None:
                yield from info.inner.walk(f"{prefix}{nid}.")


def _dtype_check(spec, ins: list[TensorInfo]) -> ShapeError | None:
    if spec.accepts == "float" and any(t.dtype == INT64 for t in ins):
        return ShapeError(f"{spec.type} needs real numbers but gets int64 token ids",
                          hint="put an Embedding before it to turn ids into vectors, or set the Input dtype "
                               "to float32")
    if spec.accepts == "int" and any(t.dtype != INT64 for t in ins):
        got = next(t.dtype for t in ins if t.dtype != INT64)
        return ShapeError(f"{spec.type} needs integer token ids (int64) but gets {got} values",
                          hint="set the Input's dtype to int64 (ids in 0 … num_embeddings − 1)")
    return None


def _missing_inputs(spec, have: int) -> ShapeError | None:
    if have >= spec.min_inputs:
        return None
    if have == 0:
        return ShapeError(f"{spec.type} has no input", hint="connect a layer into it")
    return ShapeError(f"{spec.type} needs at least {spec.min_inputs} inputs but has {have}",
                      hint="connect another branch into it")


def infer_node(layer_type: str, params: dict, ins: list[TensorInfo], node_id: str = "") -> NodeInfo:
    """Infer one node from its inputs; never raises for a shape problem, it records it."""
    spec = get_spec(layer_type)
    if spec.type == "Block":
        from .blocks import infer_block
        info = infer_block(node_id or "block", params, ins)
        info.node_id = node_id
        return info
    if spec.type == "Custom":
        from .custom import infer_custom
        info = infer_custom(node_id or "custom", params, ins)
        info.node_id = node_id
        return info
    info = NodeInfo("", spec.type)
    err = _missing_inputs(spec, len(ins)) or _dtype_check(spec, ins)
    if err is None:
        try:
            out = spec.infer(params, ins)
            if out.shape and min(out.shape) < 1:
                raise ShapeError(f"the output {fmt(out.shape)} would be empty",
                                 hint="use a larger input or smaller kernels and strides")
            info.shape, info.dtype = out.shape, out.dtype
            info.params = spec.count_params(params, ins, out)
            info.macs = spec.count_macs(params, ins, out)
            info.memory = math.prod(out.shape) * DTYPE_BYTES[out.dtype]
        except ShapeError as e:
            err = e
        except Exception as e:  # a rule that breaks on an odd value must not take the editor down
            err = ShapeError(f"could not work out the output shape ({type(e).__name__}: {e})",
                             hint="check the parameters of this layer")
    info.error = err
    return info


def analyze(graph: Graph, ports: list[TensorInfo] | None = None) -> Analysis:
    """Infer every node in topological order. Nodes below an error wait on it instead of repeating it.
    `ports` are the tensors a block's inner graph receives (its BlockInput nodes, by index)."""
    result = Analysis(order=graph.topological_order())
    nodes = result.nodes
    for nid in result.order:
        node = graph.nodes[nid]
        srcs = graph.inputs_of(nid)
        blocked = next((s for s in srcs if nodes[s].error is not None), None)
        if blocked is not None:
            root = nodes[blocked].error.waiting_on or blocked
            info = NodeInfo(nid, node.type, error=ShapeError(
                f"waiting on {root}", hint="fix the error there first", waiting_on=root))
        elif node.type == "BlockInput" and ports is not None:
            info = _port(nid, node.params["index"], ports)
        elif node.type == "Pick":
            info = _pick(nid, node.params["index"], srcs, nodes)
        else:
            several = next((s for s in srcs if nodes[s].outputs is not None and len(nodes[s].outputs) > 1), None)
            if several is not None:
                info = NodeInfo(nid, node.type, error=ShapeError(
                    f"{several} gives {len(nodes[several].outputs)} outputs, so {nid} cannot take it whole",
                    hint=f"put a Pick (index 0, 1, …) after {several} to choose one output"))
            elif node.type == "BlockOutput" and ports is not None:  # the tensor leaves the block as it is
                info = NodeInfo(nid, node.type, shape=nodes[srcs[0]].shape, dtype=nodes[srcs[0]].dtype) if srcs \
                    else NodeInfo(nid, node.type, error=ShapeError(f"output {node.params['index']} of the block has "
                                                                   f"no input", hint="connect a layer into it"))
            else:
                ins = [TensorInfo(nodes[s].shape, nodes[s].dtype, s) for s in srcs]
                info = infer_node(node.type, node.params, ins, nid)
            info.node_id = nid
        if info.error is not None:
            info.error.node_id = nid
        nodes[nid] = info
    if ports is None:  # the model's outputs are tensors: a block's several outputs need a Pick each
        for nid in graph.sink_nodes():
            info = nodes[nid]
            if info.error is None and info.outputs is not None and len(info.outputs) > 1:
                info.error = ShapeError(f"{nid} gives {len(info.outputs)} outputs but nothing takes them",
                                        hint="put a Pick (index 0, 1, …) after it for each output the network "
                                             "gives", node_id=nid)
    return result


def _port(nid: str, index: int, ports: list[TensorInfo]) -> NodeInfo:
    """A block's BlockInput: the tensor wired into the block's input `index` (its memory is counted outside)."""
    if index >= len(ports):
        return NodeInfo(nid, "BlockInput", error=ShapeError(
            f"{nid} is input {index} of the block, which has only {len(ports)}",
            hint="number the BlockInput nodes 0, 1, … without gaps"))
    t = ports[index]
    return NodeInfo(nid, "BlockInput", shape=tuple(t.shape), dtype=t.dtype)


def _pick(nid: str, index: int, srcs: list[str], nodes: dict[str, NodeInfo]) -> NodeInfo:
    if len(srcs) != 1 or nodes[srcs[0]].outputs is None:
        return NodeInfo(nid, "Pick", error=ShapeError(
            "Pick takes one output of a block, but " + ("it has no input" if not srcs else
                                                       f"{srcs[0]} is not a block"),
            hint="connect a block into it, or delete the Pick"))
    outputs = nodes[srcs[0]].outputs
    if index >= len(outputs):
        return NodeInfo(nid, "Pick", error=ShapeError(
            f"Pick takes output {index} of {srcs[0]}, which gives only {len(outputs)}",
            hint=f"set index between 0 and {len(outputs) - 1}"))
    t = outputs[index]
    return NodeInfo(nid, "Pick", shape=tuple(t.shape), dtype=t.dtype)


def infer_shapes(graph: Graph) -> dict[str, tuple[int, ...] | ShapeError]:
    """{node_id: output shape (batch excluded)} or, for a node that cannot work, its ShapeError."""
    return {nid: (info.shape if info.error is None else info.error) for nid, info in analyze(graph).nodes.items()}
