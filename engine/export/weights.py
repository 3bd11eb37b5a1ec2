"""Weights as safetensors with the project's layer names, and the check that weights fit a graph's network."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report import ExportError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.nn as nn

    from ..graph import Graph


def _shape(shape) -> str:
    return "×".join(str(int(s)) for s in shape) or "a scalar"


def _by_layer(names: list[str]) -> str:
    """`linear_2 (weight, bias), conv2d_1 (weight)`: tensor names grouped by their layer (node id)."""
    layers: dict[str, list[str]] = {}
    for name in names:
        layer, _, tensor = name.partition(".")
        layers.setdefault(layer, []).append(tensor or name)
    return ", ".join(f"{layer} ({', '.join(tensors)})" for layer, tensors in layers.items())


def check_state_dict(model: "nn.Module", state: dict[str, Any], source: str = "the weights") -> None:
    """Raises ExportError naming every layer whose weights are missing, unexpected or of the wrong shape."""
    import torch

    expected = model.state_dict()
    bad_type = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad_type:
        raise ExportError(f"{source}: {', '.join(bad_type[:5])} {'is' if len(bad_type) == 1 else 'are'} not "
                          f"tensors; give a state dict of tensors or a .safetensors file")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"missing: {_by_layer(missing)}")
    if unexpected:
        parts.append(f"not in this network: {_by_layer(unexpected)}")
    if wrong:
        parts.append("wrong shape: " + ", ".join(
            f"{k} is {_shape(state[k].shape)} in the weights but {_shape(expected[k].shape)} in the network"
            for k in wrong))
    raise ExportError(f"{source} do not fit this network: {'; '.join(parts)}. Use weights trained for this "
                      f"project, or change the layers to match", missing=missing, unexpected=unexpected,
                      wrong_shape=wrong)


def read_safetensors(path: str | os.PathLike) -> dict[str, "torch.Tensor"]:
    """The tensors of a .safetensors file (or of `model.safetensors` in a checkpoint folder); ExportError if it
    is missing or not a safetensors file. Reading runs no code."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir() and (p / "model.safetensors").is_file():
        p = p / "model.safetensors"
    if not p.exists():
        raise ExportError(f"there is no weights file {p}")
    if not p.is_file():
        raise ExportError(f"{p} is a folder, not a .safetensors weights file")
    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ExportError(f"{p} is not a readable .safetensors file ({e})") from None


def load_weights(graph: "Graph", path: str | os.PathLike) -> dict[str, "torch.Tensor"]:
    """The state dict in a .safetensors file, checked against the graph's network: raises ExportError saying
    which layers are missing, unexpected or of the wrong shape."""
    from .core import make_model

    state = read_safetensors(path)
    check_state_dict(make_model(graph), state, source=f"the weights in {Path(path).name}")
    return state


def write_safetensors(state: dict[str, "torch.Tensor"], path: str | os.PathLike,
                      metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path), metadata=metadata)
