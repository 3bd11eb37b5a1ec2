"""LayerSpec: what one layer type is — parameters, ports, explanation, shape rule, cost and builder."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ..catalog import Described
from ..errors import ShapeError
from ..params import Param

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

FLOAT32, INT64 = "float32", "int64"
DTYPE_BYTES = {FLOAT32: 4, INT64: 8}

CATEGORIES = ("Input", "Core", "Convolution", "Pooling", "Normalisation", "Recurrent", "Activation", "Merge",
              "Shape")


class TensorInfo(NamedTuple):
    """The shape of one sample (batch dimension excluded) and its dtype name."""

    shape: tuple[int, ...]
    dtype: str = FLOAT32
    source: str = ""  # the node it comes from, so merge errors can name it

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def fmt(shape: tuple[int, ...]) -> str:
    """A shape as people write it: (1, 28, 28), (784,)."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def fail(reason: str, hint: str = "") -> ShapeError:
    return ShapeError(reason, hint=hint)


def _zero(p: dict, ins: list[TensorInfo], out: TensorInfo) -> int:
    return 0


@dataclass(frozen=True)
class LayerSpec(Described):
    """One layer type of the catalogue.

    infer(params, inputs) -> TensorInfo raises ShapeError (via `fail`) in words a learner can act on.
    build(params, inputs) -> nn.Module imports torch only when called.
    count_params / count_macs give the parameter count and multiply-accumulates for one sample.
    """

    type: str
    category: str
    summary: str
    doc: str
    formula: str
    params: tuple[Param, ...]
    infer: Callable[[dict, list[TensorInfo]], TensorInfo]
    build: Callable[[dict, list[TensorInfo]], "nn.Module"] | None
    count_params: Callable[[dict, list[TensorInfo], TensorInfo], int] = _zero
    count_macs: Callable[[dict, list[TensorInfo], TensorInfo], int] = _zero
    min_inputs: int = 1
    max_inputs: int | None = 1
    accepts: str = "float"  # "float": real numbers only; "int": token ids only; "any"
    key_params: tuple[str, ...] = ()  # shown on the node in the canvas
