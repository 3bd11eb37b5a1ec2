"""The few nn.Modules PyTorch lacks as layers: merges, reshapes, and recurrent layers that give one tensor."""
from __future__ import annotations

import torch
import torch.nn as nn


class AddLayer(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class MultiplyLayer(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class ConcatLayer(nn.Module):
    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class ReshapeLayer(nn.Module):
    """Reshapes each sample; the batch dimension is kept."""

    def __init__(self, shape: list[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class PermuteLayer(nn.Module):
    """Permutes dimensions; `dims` includes the batch (always 0 first)."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class _Recurrent:
    """Mixin: batch-first recurrent layer returning every step, or the final hidden state of the last layer.

    Subclassing PyTorch's own class keeps parameter names (weight_ih_l0, ...) identical to nn.LSTM's,
    so weights load into hand-written PyTorch code unchanged.
    """

    def __init__(self, input_size: int, *, return_sequences: bool = False, **kw):
        super().__init__(input_size, batch_first=True, **kw)  # type: ignore[call-arg]
        self.return_sequences = return_sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out, state = super().forward(x)  # type: ignore[misc]
        if self.return_sequences:
            return out
        h = state[0] if isinstance(state, tuple) else state  # LSTM gives (h, c)
        dirs = 2 if self.bidirectional else 1
        # h: (num_layers * dirs, batch, hidden); the last layer's directions, side by side.
        return torch.cat([h[-dirs + i] for i in range(dirs)], dim=-1) if dirs > 1 else h[-1]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", return_sequences={self.return_sequences}"  # type: ignore[misc]


class RNNLayer(_Recurrent, nn.RNN):
    pass


class LSTMLayer(_Recurrent, nn.LSTM):
    pass


class GRULayer(_Recurrent, nn.GRU):
    pass


class ScaleLayer(nn.Module):
    """x · s, with s repeated (broadcast) along the dimensions where it has size 1."""

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return x * s


class MultiheadAttentionLayer(nn.MultiheadAttention):
    """nn.MultiheadAttention, batch first, that takes one to three tensors (query; key and value default to the
    query and the key: self-attention) and returns only the attended values (N, steps, embed_dim).

    Subclassing PyTorch's class keeps its parameter names (in_proj_weight, out_proj.weight, ...), so the weights
    load into hand-written PyTorch code unchanged."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 kdim: int | None = None, vdim: int | None = None):
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, kdim=kdim, vdim=vdim, batch_first=True)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None,  # type: ignore[override]
                value: torch.Tensor | None = None) -> torch.Tensor:
        key = query if key is None else key
        value = key if value is None else value
        out, _ = super().forward(query, key, value, need_weights=False)
        return out


class PickLayer(nn.Module):
    """One output of a block that gives several (a tuple): output `index`."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def forward(self, outputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return outputs[self.index]

    def extra_repr(self) -> str:
        return f"index={self.index}"
