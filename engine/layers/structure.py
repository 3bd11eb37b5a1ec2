"""Node types that are not layers of the palette: composite blocks and their ports, and custom code layers.

- `Block`: a node that holds an inner graph (engine/blocks.py has the design, validation and editing).
- `BlockInput` / `BlockOutput`: the ports of a block's inner graph, numbered by their `index`.
- `Pick`: takes output `index` of a block that gives several.
- `Custom`: a small PyTorch nn.Module written by the user (engine/custom.py runs it, only once trusted).

Their parameters are not a fixed list: a Block's are its definition (name, description, exposed parameters, inner
graph) plus the exposed parameters by name, a Custom layer's its code, class name and arguments plus each argument by
name. So their specs validate through functions of blocks.py and custom.py (imported when first used), and they
live in their own registry, out of `all_specs()` (the palette and the per-layer tests list real layers only);
`get_spec` finds them all the same. Shape inference and the builder treat them specially (shapes.py, builder.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ShapeError
from ..params import INT, Param
from .base import LayerSpec, TensorInfo, fail


@dataclass(frozen=True)
class StructuralSpec(LayerSpec):
    """A LayerSpec whose parameters are validated by a function (`validator(values, base) -> params`), may have
    virtual names (`virtual_owner(name)`: the real parameter that holds it, or None), and whose number of inputs
    may depend on its parameters (`ports(params) -> (min, max)`)."""

    validator: Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]] | None = None
    owner_of: Callable[[str], str | None] | None = None
    port_range: Callable[[dict[str, Any]], tuple[int, int | None]] | None = None
    default_params: Callable[[], dict[str, Any]] | None = None

    def validate_params(self, values: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.validator is not None:
            return self.validator(values, base)
        return super().validate_params(values, base)

    def defaults(self) -> dict[str, Any]:
        if self.default_params is not None:
            return self.default_params()
        return super().defaults()

    def virtual_owner(self, name: str) -> str | None:
        """The real parameter that holds the virtual parameter `name` (a Block's exposed parameter lives in its
        "graph", a Custom layer's argument in its "arguments")."""
        return self.owner_of(name) if self.owner_of is not None else None

    def ports(self, params: dict[str, Any]) -> tuple[int, int | None]:
        if self.port_range is not None:
            return self.port_range(params)
        return self.min_inputs, self.max_inputs


def _blocks():
    from .. import blocks
    return blocks


def _custom():
    from .. import custom
    return custom


def _outside_block(kind: str):
    def infer(p: dict, ins: list[TensorInfo]) -> TensorInfo:
        raise fail(f"a {kind} only works inside a block's inner graph",
                   "delete it here, or group the layers it belongs to into a block")
    return infer


def _pick_alone(p: dict, ins: list[TensorInfo]) -> TensorInfo:
    raise fail("Pick takes one output of a block that gives several, but its input is not such a block",
               "connect the block's output into it, or delete the Pick")


def _block_infer(p: dict, ins: list[TensorInfo]) -> TensorInfo:
    info = _blocks().infer_block("block", p, ins)
    if info.error is not None:
        raise info.error
    return TensorInfo(info.shape, info.dtype)


def _custom_infer(p: dict, ins: list[TensorInfo]) -> TensorInfo:
    info = _custom().infer_custom("custom", p, ins)
    if info.error is not None:
        raise info.error
    return TensorInfo(info.shape, info.dtype)


def _no_build(kind: str):
    def build(p: dict, ins: list[TensorInfo]):
        raise ShapeError(f"a {kind} is built by the graph's builder, not on its own")
    return build


SPECS: dict[str, StructuralSpec] = {}


def _register(spec: StructuralSpec) -> None:
    SPECS[spec.type.lower()] = spec


_INDEX_DOC = "its place among the block's {} (0 = the first)"

_register(StructuralSpec(
    type="Block", category="Core",
    summary="a group of layers used as one node (a composite block)",
    doc="Holds an inner graph of layers whose data comes in through BlockInput nodes and leaves through "
        "BlockOutput nodes. Group a selection into a block to tidy a large network or to reuse a pattern (a "
        "residual block, an inception module); save it to your block library to use it in other projects. A block "
        "can expose inner parameters under one name (channels → the out_channels of two convolutions), shown on the "
        "block node. Its weights are named after the block and the inner layer: res_block_1.conv2d_1.weight.",
    formula="y = f_inner(x₁, x₂, …)",
    params=(), infer=_block_infer, build=_no_build("Block"), min_inputs=1, max_inputs=None, accepts="any",
    validator=lambda values, base: _blocks().validate_block_params(values, base),
    owner_of=lambda name: "graph",
    port_range=lambda p: _blocks().port_range(p),
    default_params=lambda: _blocks().default_block_params(),
))

_register(StructuralSpec(
    type="BlockInput", category="Input",
    summary="where data enters a block (inside its inner graph)",
    doc="One input port of a block: it gives the tensor wired into the block's input number `index` (0 is the "
        "first). Only meaningful inside a block's inner graph.",
    formula="y = the block's input[index]",
    params=(Param("index", INT, 0, _INDEX_DOC.format("inputs"), min=0, max=1000),),
    infer=_outside_block("BlockInput"), build=_no_build("BlockInput"), min_inputs=0, max_inputs=0, accepts="any",
    key_params=("index",),
))

_register(StructuralSpec(
    type="BlockOutput", category="Shape",
    summary="where data leaves a block (inside its inner graph)",
    doc="One output port of a block: the tensor wired into it becomes the block's output number `index` (0 is the "
        "first). A block with several outputs gives a tuple; a Pick after the block takes one of them.",
    formula="the block's output[index] = x",
    params=(Param("index", INT, 0, _INDEX_DOC.format("outputs"), min=0, max=1000),),
    infer=_outside_block("BlockOutput"), build=_no_build("BlockOutput"), accepts="any", key_params=("index",),
))

_register(StructuralSpec(
    type="Pick", category="Shape",
    summary="takes one output of a block that gives several",
    doc="A block whose inner graph has several BlockOutput nodes gives several tensors; each Pick after it passes "
        "one of them on: output `index` (0 is the first). Grouping a selection whose results leave it from several "
        "layers makes one Pick per result.",
    formula="y = block outputs[index]",
    params=(Param("index", INT, 0, "which output of the block (0 = the first)", min=0, max=1000),),
    infer=_pick_alone, build=lambda p, ins: _modules().PickLayer(p["index"]), accepts="any", key_params=("index",),
))

_register(StructuralSpec(
    type="Custom", category="Core",
    summary="your own PyTorch layer, written as a small nn.Module class",
    doc="Runs the code you write: a class deriving from nn.Module (torch, nn, F = torch.nn.functional and math "
        "are at hand) whose forward takes the node's inputs and returns one tensor with the batch first. Its "
        "arguments are given by name; an argument called in_shape (or in_shapes) receives the input's shape "
        "without the batch. The output shape is found by running it on PyTorch's meta device (no data, no time). "
        "The code runs only once you trust it: a project from someone else shows an error until you press Trust "
        "(or pass --trust-custom-code to the command line), since code can do anything your account can.",
    formula="y = YourLayer(**arguments)(x₁, …)",
    params=(), infer=_custom_infer, build=_no_build("Custom"), min_inputs=1, max_inputs=None, accepts="any",
    validator=lambda values, base: _custom().validate_custom_params(values, base),
    owner_of=lambda name: "arguments",
    default_params=lambda: _custom().default_custom_params(),
))


def _modules():
    from . import modules
    return modules


def find_structural(layer_type: Any) -> StructuralSpec | None:
    """The structural spec of that name in any case ("block"), or None."""
    return SPECS.get(layer_type.lower()) if isinstance(layer_type, str) else None


def structural_specs() -> list[StructuralSpec]:
    return list(SPECS.values())
