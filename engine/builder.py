"""Graph to nn.Module: one submodule per node, named by node id, run in topological order."""
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
            plan = []
            for nid in analysis.order:
                node = graph.nodes[nid]
                if node.type == "Input":
                    continue
                srcs = graph.inputs_of(nid)
                ins = [TensorInfo(analysis.nodes[s].shape, analysis.nodes[s].dtype) for s in srcs]
                if hasattr(self, nid) and nid not in self._modules:
                    raise BuildError(f"node id {nid!r} clashes with a name PyTorch modules use; rename the node")
                module = get_spec(node.type).build(node.params, ins)
                if node.frozen:
                    module.requires_grad_(False)
                self.add_module(nid, module)
                plan.append((nid, tuple(srcs)))
            self.frozen_ids = tuple(nid for nid in graph.frozen_nodes() if nid in self._modules)
            self.lr_factors = {nid: n.lr_factor for nid, n in graph.nodes.items()
                               if n.lr_factor != 1.0 and nid in self._modules}
            # Free each intermediate value after its last use, so long chains do not hold every activation.
            last_use: dict[str, int] = {}
            for i, (_, srcs) in enumerate(plan):
                for s in srcs:
                    last_use[s] = i
            keep = set(self.output_ids)
            self._plan = [(nid, srcs, tuple(s for s in srcs if last_use[s] == i and s not in keep))
                          for i, (nid, srcs) in enumerate(plan)]
            self.train(self.training)  # a frozen node's BatchNorm starts in evaluation mode too

        def train(self, mode: bool = True):
            """Training or evaluation mode; a frozen node's BatchNorm layers stay in evaluation mode, so its
            running statistics are not updated by the new data."""
            super().train(mode)
            if mode:
                for nid in self.frozen_ids:
                    for m in self._modules[nid].modules():
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

    return GraphModule
