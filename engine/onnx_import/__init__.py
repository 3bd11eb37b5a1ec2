"""Import an ONNX model as a LayerLoom project: `layerloom import MODEL.onnx -o PROJECT.layerloom`.

    from engine.onnx_import import import_onnx
    result = import_onnx("model.onnx", "model.layerloom")   # also writes model.safetensors
    print("\\n".join(result.lines()))

Operators and the catalogue layers they become:

    ONNX                                                         LayerLoom
    Gemm (transA=0, any transB, alpha, beta)                     Linear
    MatMul by a constant matrix, + a constant Add (its bias)     Linear
    Conv 1-D / 2-D (symmetric pads; SAME_UPPER at stride 1)      Conv1d / Conv2d (padding, 'same')
    Pad (constant 0, reflect, edge, wrap) right before a Conv    the Conv's padding and padding_mode
    ConvTranspose 2-D (symmetric pads, output_padding)           ConvTranspose2d
    MaxPool, AveragePool 1-D / 2-D (symmetric pads)              MaxPool1d/2d, AvgPool1d/2d
    GlobalAveragePool; ReduceMean over every spatial axis        AdaptiveAvgPool1d/2d (output_size 1)
    BatchNormalization (inference), LayerNormalization           BatchNorm1d/2d, LayerNorm
    Relu, LeakyRelu, Elu, Gelu, Sigmoid, Tanh                    ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh
    Softmax, LogSoftmax; Mul(x, Sigmoid(x))                      Softmax, LogSoftmax; SiLU
    Gather of a constant table by int64 ids                      Embedding
    Add, Sum, Mul of two tensors; Concat                         Add, Multiply, Concat
    LSTM, GRU (linear_before_reset=1), RNN (tanh, relu):         LSTM, GRU, RNN; return_sequences after
      forward or bidirectional, from a zero state                  the outputs used (Y, Y_h)
    Reshape, Flatten, Transpose, Squeeze, Unsqueeze,             nothing, or the Reshape / Flatten / Permute
      a one-index Gather or Slice                                  a layer needs to get its data so
    Identity, Dropout, Cast to the same type                     dropped
    Constant, Shape, and arithmetic on constants and shapes      computed ahead (weights, Reshape targets)

Anything else raises OnnxImportError naming the operator and its node. Layout operators are followed as views of
the layers' outputs (values.py), so the time-major transposes ONNX puts around LSTM/GRU, or `h_n[-1]`, leave no
layers behind. The imported network is checked against onnxruntime on a random batch before anything is written.

Limits, each with its reason:
* PyTorch's exporter (dynamo) folds a BatchNorm that follows a convolution into that convolution's weights, and
  drops Dropout and Identity: those layers come back merged or absent (the outputs are the same).
* A multi-layer LSTM/GRU comes back as one single-layer layer per ONNX node (same outputs).
* nn.RNN is exported unrolled (per step a MatMul, Add and Tanh on a time-major slice of the sequence): no RNN
  operator is left to map, and a Linear cannot run over the time-major layout, so such files are refused at the
  first MatMul. ONNX files holding an RNN operator import.
* onnxruntime does not run LSTM/GRU/RNN with layout=1 (batch first), so such files cannot be checked and are
  refused by the check although the importer maps them.
* Embedding's padding_idx is not stored in ONNX. AdaptiveAvgPool with an output size above 1 exports as
  AveragePool when the sizes divide evenly (imported as AvgPool) and as GatherND otherwise (refused).
"""
from __future__ import annotations

import os

from .report import EXISTS, MISMATCH, UNREADABLE, UNSUPPORTED, ImportResult, NodeMapping, OnnxImportError


def import_onnx(path: str | os.PathLike, out: str | os.PathLike | None = None, *, overwrite: bool = False,
                name: str | None = None) -> ImportResult:
    """Import the ONNX model at `path`; with `out`, write PROJECT.layerloom and PROJECT.safetensors beside it.
    See core.import_onnx (loaded on first use: it imports ONNX, NumPy and torch)."""
    from .core import import_onnx as run
    return run(path, out, overwrite=overwrite, name=name)


__all__ = ["EXISTS", "MISMATCH", "UNREADABLE", "UNSUPPORTED", "ImportResult", "NodeMapping", "OnnxImportError",
           "import_onnx"]
