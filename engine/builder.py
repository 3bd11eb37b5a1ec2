"""Graph to nn.Module: one submodule per node, named by node id, run in topological order.

A Block node becomes a BlockModule (an nn.Module with one submodule per inner node, named by inner id, and the
same kind of plan), so its weights read `res_block_1.conv2d_1.weight`; a Custom node an instance of the user's
class (custom.py); a Pick a PickLayer taking one output of a block."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import BuildError
from .graph import Graph
from .layers import TensorInfo, get_spec
from .shapes import Analysis, analyze

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


def _check(graph: Graph, analysis: Analysis) -> None:
    if not graph.nodes:
        raise BuildError("the graph is empty: add an Input and some layers")
    if not graph.input_nodes():
        starts = [nid for nid in graph.topological_order() if not graph.inputs_of(nid)]
        raise BuildError(f"the graph has no Input node: add one and connect it to {', '.join(starts)}")
    errors = analysis.errors
    if errors:
        lines = "\n".join(f"  {e.node_id} ({e.type}): {e.error}" for e in errors)
        raise BuildError(f"the graph cannot be built; fix {'this node' if len(errors) == 1 else 'these nodes'} "
                         f"first:\n{lines}")


def build_model(graph: Graph, seed: int | None = None) -> "nn.Module":
    """A torch.nn.Module for the graph. forward takes one tensor per Input node (in node order) and
    returns the sink's output, or a tuple of the sinks' outputs in node order. `seed` fixes the initial
    weights. A frozen node's parameters have requires_grad=False and its BatchNorm layers stay in evaluation
    mode (running statistics fixed) when the model is put in training mode; `model.lr_factors` maps each node
    id whose lr_factor is not 1 to it."""
    analysis = analyze(graph)
    _check(graph, analysis)
    import torch

    if seed is None:
        return GraphModuleFactory.make(graph, analysis)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GraphModuleFactory.make(graph, analysis)


class GraphModuleFactory:
    """Creates the GraphModule class on first use, so `import engine` does not import torch."""

    _cls = None

    @classmethod
    def make(cls, graph: Graph, analysis: Analysis) -> "nn.Module":
        if cls._cls is None:
            cls._cls = _define()
        return cls._cls(graph, analysis)


def _define():
    import torch
    import torch.nn as nn

    class GraphModule(nn.Module):
        """The network of a LayerLoom graph; submodule names are node ids (stable across save and load)."""

        def __init__(self, graph: Graph, analysis: Analysis):
            super().__init__()
            self.input_ids: list[str] = graph.input_nodes()
            self.output_ids: list[str] = graph.sink_nodes()
            self.input_shapes = {nid: analysis.nodes[nid].shape for nid in self.input_ids}
            self.input_dtypes = {nid: analysis.nodes[nid].dtype for nid in self.input_ids}
            self.output_shapes = {nid: analysis.nodes[nid].shape for nid in self.output_ids}
            self._plan: list = []  # set first, so a node named "_plan" is caught by the clash check below
            self.frozen_ids: tuple[str, ...] = ()
            self.lr_factors: dict[str, float] = {}
            _fill(self, graph, analysis, ("Input",), self.output_ids)
            # Frozen nodes and learning-rate factors, inside blocks too (as dotted paths: res_block_1.conv2d_1).
            frozen, factors = _flags(self, graph, "", 1.0)
            self.frozen_ids = tuple(frozen)
            self.lr_factors = factors
            self.train(self.training)  # a frozen node's BatchNorm starts in evaluation mode too

        def train(self, mode: bool = True):
            """Training or evaluation mode; a frozen node's BatchNorm layers stay in evaluation mode, so its
            running statistics are not updated by the new data."""
            super().train(mode)
            if mode:
                for nid in self.frozen_ids:
                    for m in self.get_submodule(nid).modules():
                        if isinstance(m, nn.modules.batchnorm._BatchNorm):
                            m.train(False)
            return self

        def forward(self, *inputs: torch.Tensor):
            if len(inputs) != len(self.input_ids):
                raise TypeError(f"this model takes {len(self.input_ids)} input tensor(s) "
                                f"({', '.join(self.input_ids)}) but got {len(inputs)}")
            values = dict(zip(self.input_ids, inputs))
            for nid, srcs, free in self._plan:
                values[nid] = self._modules[nid](*[values[s] for s in srcs])
                for s in free:
                    del values[s]
            if len(self.output_ids) == 1:
                return values[self.output_ids[0]]
            return tuple(values[o] for o in self.output_ids)

        def example_inputs(self, batch_size: int = 2, device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
            """Random inputs of the right shape and dtype (token ids in [0, 2) for int64 Inputs)."""
            out = []
            for nid in self.input_ids:
                shape = (batch_size, *self.input_shapes[nid])
                if self.input_dtypes[nid] == "int64":
                    out.append(torch.randint(0, 2, shape, device=device))
                else:
                    out.append(torch.randn(shape, device=device))
            return tuple(out)

    class BlockModule(nn.Module):
        """One instance of a block: a submodule per inner node (named by inner id) run in the inner graph's
        topological order; forward takes one tensor per BlockInput (by index) and returns the BlockOutput's tensor,
        or a tuple of them in output order."""

        def __init__(self, params: dict, analysis: Analysis):
            super().__init__()
            from .blocks import inner

            parsed = inner(params)
            self.block_name: str = params["block"]
            self.input_ids: list[str] = list(parsed.inputs)
            self.output_ids: list[str] = list(parsed.outputs)
            self.output_sources: list[str] = parsed.output_sources()
            self._plan: list = []
            _fill(self, parsed.graph, analysis, ("BlockInput", "BlockOutput"), self.output_sources)

        def forward(self, *inputs: torch.Tensor):
            values = dict(zip(self.input_ids, inputs))
            for nid, srcs, free in self._plan:
                values[nid] = self._modules[nid](*[values[s] for s in srcs])
                for s in free:
                    del values[s]
            if len(self.output_sources) == 1:
                return values[self.output_sources[0]]
            return tuple(values[o] for o in self.output_sources)

        def extra_repr(self) -> str:
            return f"block={self.block_name!r}"

    def _fill(net: nn.Module, graph: Graph, analysis: Analysis, skip: tuple[str, ...], keep_ids: list[str]) -> None:
        """One submodule per node (those of the `skip` types excepted) and the plan: (id, input ids, values to
        free after it), each intermediate value freed after its last use so long chains do not hold them all."""
        plan = []
        for nid in analysis.order:
            node = graph.nodes[nid]
            if node.type in skip:
                continue
            srcs = graph.inputs_of(nid)
            ins = [TensorInfo(analysis.nodes[s].shape, analysis.nodes[s].dtype) for s in srcs]
            if hasattr(net, nid) and nid not in net._modules:
                raise BuildError(f"node id {nid!r} clashes with a name PyTorch modules use; rename the node")
            if node.type == "Block":
                module = BlockModule(node.params, analysis.nodes[nid].inner)
            elif node.type == "Custom":
                from .custom import build_custom
                module = build_custom(node.params, ins, nid)
            else:
                module = get_spec(node.type).build(node.params, ins)
            if node.frozen:
                module.requires_grad_(False)
            net.add_module(nid, module)
            plan.append((nid, tuple(srcs)))
        last_use: dict[str, int] = {}
        for i, (_, srcs) in enumerate(plan):
            for s in srcs:
                last_use[s] = i
        keep = set(keep_ids)
        net._plan = [(nid, srcs, tuple(s for s in srcs if last_use[s] == i and s not in keep))
                     for i, (nid, srcs) in enumerate(plan)]

    def _flags(net: nn.Module, graph: Graph, prefix: str, factor: float) -> tuple[list[str], dict[str, float]]:
        """Frozen node paths and {path: learning-rate factor} (a node's factor times its blocks'), for the nodes
        that have a submodule; a node inside a block is listed when its own flag is set."""
        frozen: list[str] = []
        factors: dict[str, float] = {}
        for nid, node in graph.nodes.items():
            if nid not in net._modules:
                continue
            path = prefix + nid
            if node.frozen:
                frozen.append(path)
            if node.lr_factor != 1.0:
                factors[path] = node.lr_factor * factor
            if node.type == "Block":
                from .blocks import inner
                f, fs = _flags(net._modules[nid], inner(node.params).graph, path + ".", node.lr_factor * factor)
                frozen += [p for p in f if not node.frozen]
                factors.update(fs)
        return frozen, factors

    return GraphModule
