"""ONNX graph → LayerLoom graph: each ONNX operator becomes catalogue layers, a change of layout, a constant, or
is folded into its neighbour (the bias Add after a MatMul, the Pad before a Conv, Sigmoid·x as SiLU)."""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import GraphError, ParamError
from ..graph import Graph
from ..layers import TensorInfo
from ..shapes import infer_node
from .report import UNSUPPORTED, NodeMapping, OnnxImportError
from .values import BATCH, WORLDS, LayoutError, Missing, Padded, Pieces, Static, View, reshape_step, stack

_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT64: "int64"}
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
# What the importer maps, for the message that names an unsupported operator.
SUPPORTED = ("Gemm", "MatMul (+Add)", "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool",
             "ReduceMean (spatial)", "BatchNormalization", "LayerNormalization", "Relu", "LeakyRelu", "Elu", "Gelu",
             "Sigmoid", "Tanh", "Mul·Sigmoid (SiLU)", "Softmax", "LogSoftmax", "Gather (Embedding)", "Flatten",
             "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Add", "Sum", "Mul", "Pad (into Conv)",
             "LSTM", "GRU", "RNN", "Identity", "Dropout", "Cast", "Shape and constant arithmetic")
_ACTIVATIONS = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "LeakyRelu": "LeakyReLU", "Elu": "ELU",
                "Gelu": "GELU", "Softmax": "Softmax", "LogSoftmax": "LogSoftmax"}
_TORCH_NAMES: set[str] | None = None


def _reserved(name: str) -> bool:
    """True for names nn.Module itself uses (a node called `forward` or `training` cannot be a submodule)."""
    global _TORCH_NAMES
    if _TORCH_NAMES is None:
        import torch.nn as nn
        _TORCH_NAMES = set(dir(nn.Module())) | {"_plan", "input_ids", "output_ids", "input_shapes", "input_dtypes",
                                                "output_shapes", "example_inputs"}
    return name in _TORCH_NAMES


def _number(v: float) -> float:
    """A float32 attribute as people write it: 0.2, not 0.20000000298023224."""
    return float(str(np.float32(v)))


def _tup(values: Sequence[int]) -> int | list[int]:
    """A kernel, stride or padding: one number when all agree (as the templates write them)."""
    values = [int(v) for v in values]
    return values[0] if len(set(values)) == 1 else values


@dataclass
class Op:
    node: onnx.NodeProto
    index: int
    inputs: list[Any]
    attrs: dict[str, Any]
    mapping: NodeMapping

    @property
    def label(self) -> str:
        return f"node {self.mapping.name!r} ({self.node.op_type})"

    def input(self, k: int) -> Any:
        return self.inputs[k] if k < len(self.inputs) else None

    def fail(self, why: str) -> OnnxImportError:
        return OnnxImportError(f"{self.label}: {why}", kind=UNSUPPORTED, op_type=self.node.op_type,
                               node=self.mapping.name)


class Converter:
    """Walks an ONNX graph once, in topological order, building a LayerLoom Graph and its weights."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        self.g = Graph()
        self.info: dict[str, TensorInfo] = {}  # layer id → its per-sample output
        self.values: dict[str, Any] = {}
        self.weights: dict[str, np.ndarray] = {}
        self.mapping: list[NodeMapping] = []
        self.cache: dict[tuple, str] = {}
        self.input_ids: list[str] = []
        self.input_names: list[str] = []
        self.output_ids: list[str] = []
        self.static_batch: int | None = None
        self.notes: list[str] = []
        self.sigmoid_of: dict[str, tuple[str, NodeMapping]] = {}  # ONNX value → (value it is σ of, that node)
        self.biasless: dict[str, tuple[str, int, str]] = {}  # layer id → (ONNX value, channel axis, kind)
        self.consumers: dict[str, int] = {}
        self.graph_outputs: set[str] = set()
        self.named: set[str] = set()  # ids taken from the model's names (the rest are numbered, type_n)

    # ---- the walk ------------------------------------------------------------------------------------------
    def run(self) -> None:
        graph = self.model.graph
        if graph.sparse_initializer:
            raise OnnxImportError("the model stores sparse initializers, which the importer does not read",
                                  kind=UNSUPPORTED)
        for t in graph.initializer:
            self.values[t.name] = Static(numpy_helper.to_array(t), sources=frozenset({t.name}))
        inputs = [i for i in graph.input if i.name not in self.values]
        if not inputs:
            raise OnnxImportError("the model has no inputs: every tensor is a constant", kind=UNSUPPORTED)
        for i in inputs:
            self._add_input(i)
        nodes = self._live_nodes()
        live_index = {id(n): k for k, n in enumerate(nodes)}
        for k, node in enumerate(graph.node):
            m = NodeMapping(node.name or f"#{k} ({node.output[0] if node.output else node.op_type})", node.op_type)
            self.mapping.append(m)
            if id(node) not in live_index:
                m.how = "unused"
        index_of = {id(n): k for k, n in enumerate(graph.node)}
        for node in nodes:
            self._convert(node, index_of[id(node)])
        for out in graph.output:
            value = self.values.get(out.name)
            if value is None:
                raise OnnxImportError(f"the model output {out.name!r} is made by no node", kind=UNSUPPORTED)
            self.output_ids.append(self.materialize(value, None, f"the model output {out.name!r}"))

    def _live_nodes(self) -> list[onnx.NodeProto]:
        """The nodes the outputs depend on, in topological order; consumer counts of their values."""
        graph = self.model.graph
        made_by = {}
        for node in graph.node:
            for o in node.output:
                if o:
                    made_by[o] = node
        order: list[onnx.NodeProto] = []
        seen: set[int] = set()
        self.graph_outputs = {o.name for o in graph.output}
        for out in graph.output:  # iterative depth-first search, inputs before the node
            stack: list[tuple[onnx.NodeProto, bool]] = [(made_by[out.name], False)] if out.name in made_by else []
            while stack:
                node, done = stack.pop()
                if done:
                    order.append(node)
                    continue
                if id(node) in seen:
                    continue
                seen.add(id(node))
                stack.append((node, True))
                for name in reversed(node.input):
                    if name in made_by and id(made_by[name]) not in seen:
                        stack.append((made_by[name], False))
        for node in order:
            for name in node.input:
                if name:
                    self.consumers[name] = self.consumers.get(name, 0) + 1
        for name in self.graph_outputs:
            self.consumers[name] = self.consumers.get(name, 0) + 1
        return order

    def _add_input(self, vi: onnx.ValueInfoProto) -> None:
        t = vi.type.tensor_type
        name = vi.name
        if not vi.type.HasField("tensor_type"):
            raise OnnxImportError(f"the model input {name!r} is not a tensor", kind=UNSUPPORTED)
        dtype = _DTYPES.get(t.elem_type)
        if dtype is None:
            got = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type) if t.elem_type else "an unknown type"
            raise OnnxImportError(f"the model input {name!r} holds {got} values; LayerLoom inputs are float32 "
                                  f"(measurements, pixels) or int64 (token ids)", kind=UNSUPPORTED)
        if not t.HasField("shape"):
            raise OnnxImportError(f"the model input {name!r} has no shape: LayerLoom needs the size of each "
                                  f"sample", kind=UNSUPPORTED)
        dims = list(t.shape.dim)
        if len(dims) < 2:
            raise OnnxImportError(f"the model input {name!r} has {len(dims)} dimension(s); LayerLoom inputs are "
                                  f"(batch, …) with at least one dimension per sample", kind=UNSUPPORTED)
        shape = []
        for k, d in enumerate(dims[1:], 1):
            if not d.HasField("dim_value") or d.dim_value < 1:
                what = f"'{d.dim_param}'" if d.HasField("dim_param") else "unknown"
                raise OnnxImportError(f"the model input {name!r} has a dynamic size {what} in dimension {k}; "
                                      f"LayerLoom inputs have fixed sizes besides the batch (dimension 0). Fix the "
                                      f"size in the model (e.g. with onnxruntime's make_dynamic_shape_fixed tool)",
                                      kind=UNSUPPORTED)
            shape.append(int(d.dim_value))
        if dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            self.static_batch = self.static_batch or int(dims[0].dim_value)
        nid = name if _ID_RE.match(name) and name not in self.g and not _reserved(name) else None
        if nid is not None:
            self.named.add(nid)
        nid = self.g.add_node("Input", {"shape": shape, "dtype": dtype}, node_id=nid)
        self.info[nid] = TensorInfo(tuple(shape), dtype)
        self.input_ids.append(nid)
        self.input_names.append(name)
        self.values[name] = View.of(nid, shape, dtype)

    def _convert(self, node: onnx.NodeProto, index: int) -> None:
        mapping = self.mapping[index]
        if mapping.how.startswith("folded"):
            return
        inputs = []
        for name in node.input:
            if not name:
                inputs.append(None)
                continue
            if name not in self.values:
                raise OnnxImportError(f"node {mapping.name!r} ({node.op_type}) reads {name!r}, which no earlier "
                                      f"node makes and is no initializer or input", kind=UNSUPPORTED,
                                      op_type=node.op_type, node=mapping.name)
            value = self.values[name]
            inputs.append(value)
        attrs = {a.name: _attr(a) for a in node.attribute}
        op = Op(node, index, inputs, attrs, mapping)
        for value in inputs:
            if isinstance(value, Missing):
                raise op.fail(f"uses {value.reason}")
        domain = node.domain or ""
        present = [v for v in inputs if v is not None]
        if domain in ("", "ai.onnx") and all(isinstance(v, Static) for v in present) and node.op_type not in _NO_FOLD:
            outs: list[Any] = self._fold(op)
            mapping.how = "constant"
        else:
            handler: Callable[[Op], list[Any]] | None = getattr(self, f"op_{node.op_type}", None) \
                if domain in ("", "ai.onnx") else None
            if handler is None:
                shown = f"{domain}.{node.op_type}" if domain not in ("", "ai.onnx") else node.op_type
                raise OnnxImportError(f"unsupported operator {shown} at node {mapping.name!r}: no catalogue layer "
                                      f"does what it does. Supported: {', '.join(SUPPORTED)}", kind=UNSUPPORTED,
                                      op_type=node.op_type, node=mapping.name)
            if not mapping.how:
                mapping.how = "layer"
            outs = handler(op)
        for k, name in enumerate(node.output):
            if name:
                self.values[name] = outs[k] if k < len(outs) and outs[k] is not None else Missing(
                    f"output {k + 1} of {op.label} ({name}), which has no equivalent in LayerLoom")

    def _fold(self, op: Op) -> list[Static]:
        """Evaluate a node whose inputs are all known, for each trial batch size it depends on."""
        from onnx.reference import ReferenceEvaluator

        ins = [v for v in op.inputs]
        worlds = 2 if any(isinstance(v, Static) and v.batch_dependent for v in ins) else 1
        names = [n for n in op.node.input]
        try:
            evaluator = ReferenceEvaluator(op.node, opsets=self.opsets)
            results = [evaluator.run(None, {n: v.world(w) for n, v in zip(names, ins) if n and v is not None})
                       for w in range(worlds)]
        except Exception as e:
            raise op.fail(f"cannot be computed ahead of time ({type(e).__name__}: {str(e).strip()[:200]})") from None
        sources = frozenset().union(*[v.sources for v in ins if v is not None])
        outs = []
        for k in range(len(op.node.output)):
            a = np.asarray(results[0][k]) if k < len(results[0]) else None
            if a is None:
                outs.append(None)
                continue
            b = np.asarray(results[1][k]) if worlds == 2 else None
            if b is not None and a.shape == b.shape and np.array_equal(a, b):
                b = None
            if a.size > 50_000_000:
                raise op.fail(f"computes a constant of {a.size:,d} values, too large to fold")
            outs.append(Static(a, b, sources))
        return outs

    # ---- making layers ---------------------------------------------------------------------------------------
    def _name(self, sources: frozenset[str] | set[str]) -> str | None:
        """A node id from the weights' names (`conv2d_1.weight` → conv2d_1) when they agree and it is free."""
        prefixes = {s.rsplit(".", 1)[0] for s in sources if "." in s}
        if len(prefixes) != 1:
            return None
        name = prefixes.pop()
        if _ID_RE.match(name) and name not in self.g and not _reserved(name):
            return name
        return None

    def add_layer(self, op: Op | None, layer: str, params: dict[str, Any], inputs: Sequence[str],
                  weights: dict[str, np.ndarray] | None = None, sources: frozenset[str] = frozenset(),
                  mapping: NodeMapping | None = None) -> View:
        hint = self._name(sources)
        try:
            nid = self.g.add_node(layer, params, node_id=hint)
        except ParamError as e:
            raise self._fail(op, f"maps to {layer}, but {e}") from None
        for src in inputs:
            try:
                self.g.connect(src, nid)
            except GraphError as e:  # pragma: no cover - the importer wires only fresh nodes
                raise self._fail(op, f"cannot wire {src} into {nid}: {e}") from None
        ins = [TensorInfo(self.info[s].shape, self.info[s].dtype, s) for s in inputs]
        got = infer_node(layer, self.g.nodes[nid].params, ins)
        if got.error is not None:
            shapes = ", ".join(f"(batch, {', '.join(map(str, t.shape))})" for t in ins)
            raise self._fail(op, f"maps to {layer}, which cannot take its input {shapes}: {got.error}")
        self.info[nid] = TensorInfo(got.shape, got.dtype)
        if hint is not None:
            self.named.add(nid)
        for k, v in (weights or {}).items():
            self.weights[f"{nid}.{k}"] = v
        target = mapping or (op.mapping if op is not None else None)
        if target is not None:
            target.layers.append(nid)
        return View.of(nid, got.shape, got.dtype, op.index if op is not None else None)

    def _fail(self, op: Op | None, why: str) -> OnnxImportError:
        return op.fail(why) if op is not None else OnnxImportError(why, kind=UNSUPPORTED)

    def materialize(self, value: Any, op: Op | None, what: str = "") -> str:
        """The id of a layer whose output is exactly `value` (adding Reshape / Permute / Flatten / Concat layers
        when the value is a rearranged view)."""
        if isinstance(value, Missing):
            raise self._fail(op, f"{what or 'it'} uses {value.reason}")
        if isinstance(value, Static):
            raise self._fail(op, f"{what or 'its input'} is a constant tensor; LayerLoom layers take tensors that "
                                 f"flow from an Input")
        if isinstance(value, Padded):
            pad = self.mapping[value.producer]
            raise OnnxImportError(f"node {pad.name!r} (Pad) has no catalogue layer: padding is imported only as the "
                                  f"padding of the convolution right after it", kind=UNSUPPORTED, op_type="Pad",
                                  node=pad.name)
        if isinstance(value, Pieces):
            key = ("pieces", id(value))
            if key not in self.cache:
                concat = self._op_at(value.producer)
                srcs = [self.materialize(p, concat, what) for p in value.parts]
                if value.axis == 0:
                    raise concat.fail("joins tensors along the batch axis; LayerLoom joins samples' features only")
                self.cache[key] = self.add_layer(concat, "Concat", {"dim": value.axis}, srcs).node
            return self.cache[key]
        view: View = value
        key = view.key()
        if key in self.cache:
            return self.cache[key]
        try:
            steps = view.layout_steps()
        except LayoutError as e:
            who = self._op_at(view.producer) if view.producer is not None else None
            if who is None or op is None or who.index == op.index:
                raise self._fail(op or who, f"{what + ': ' if what else ''}{e}") from None
            raise self._fail(op, f"{what or 'its input'} comes from {who.label}, and no layer can give it: "
                                 f"{e}") from None
        cur = view.node
        producer = self._op_at(view.producer) if view.producer is not None else op
        for layer, params in steps:
            cur = self.add_layer(producer, layer, params, [cur]).node
        self.cache[key] = cur
        return cur

    def _op_at(self, index: int) -> Op:
        node = self.model.graph.node[index]
        return Op(node, index, [], {a.name: _attr(a) for a in node.attribute}, self.mapping[index])

    def tensor(self, op: Op, k: int = 0) -> str:
        """Input k of op as a layer id (its exact value), or an error naming the op."""
        value = op.input(k)
        if value is None:
            raise op.fail(f"input {k + 1} is missing")
        return self.materialize(value, op)

    def view(self, op: Op, k: int = 0) -> View:
        """Input k of op as a view (Pieces are joined by a Concat layer first)."""
        if op.input(k) is None:
            raise op.fail(f"input {k + 1} is missing")
        return self.as_view(op.input(k), op)

    def as_view(self, value: Any, op: Op) -> View:
        if isinstance(value, View):
            return value
        nid = self.materialize(value, op)
        return View.of(nid, self.info[nid].shape, self.info[nid].dtype)

    def const(self, op: Op, k: int, what: str, optional: bool = False) -> np.ndarray | None:
        value = op.input(k)
        if value is None:
            if optional:
                return None
            raise op.fail(f"has no {what}")
        if not isinstance(value, Static):
            raise op.fail(f"takes its {what} from the network's data; LayerLoom layers need it fixed (stored in "
                          f"the file)")
        if value.batch_dependent:
            raise op.fail(f"its {what} depends on the batch size")
        return value.a

    def ints(self, op: Op, k: int, what: str, attr: str | None = None) -> list[int] | None:
        """Integer list from input k, or from attribute `attr` in older opsets; None when absent."""
        if attr is not None and attr in op.attrs:
            return [int(v) for v in np.atleast_1d(op.attrs[attr])]
        arr = self.const(op, k, what, optional=True) if k < len(op.inputs) else None
        return None if arr is None else [int(v) for v in np.atleast_1d(arr)]

    def float_weights(self, arr: np.ndarray) -> np.ndarray:
        return np.array(arr, dtype=np.float32, copy=True)

    def sources(self, op: Op, *ks: int) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for k in ks:
            v = op.input(k)
            if isinstance(v, Static):
                out |= v.sources
        return out

    # ---- pass-through and layout -----------------------------------------------------------------------------
    def op_Identity(self, op: Op) -> list[Any]:
        op.mapping.how = "dropped"
        return [op.input(0)]

    def op_Dropout(self, op: Op) -> list[Any]:
        training = op.input(2)
        if isinstance(training, Static) and bool(np.any(training.a)):
            raise op.fail("runs in training mode (training_mode is true); import an inference-mode model")
        op.mapping.how = "dropped (inactive at inference)"
        return [op.input(0)]

    def op_Cast(self, op: Op) -> list[Any]:
        value = op.input(0)
        to = _DTYPES.get(int(op.attrs.get("to", 0)))
        if to is not None and to == getattr(value, "dtype", None):
            op.mapping.how = "dropped"
            return [value]
        target = onnx.helper.tensor_dtype_to_np_dtype(int(op.attrs.get("to", 1)))
        raise op.fail(f"converts {getattr(value, 'dtype', 'a tensor')} values to {target}; no catalogue layer "
                      f"changes the type of a tensor")

    def _shape_static(self, value: Any, start: int | None, end: int | None) -> Static:
        worlds = []
        for w in range(2):
            shape = [WORLDS[w] if s == BATCH else int(s) for s in value.shape]
            worlds.append(np.array(shape[slice(start, end)], dtype=np.int64))
        return Static(worlds[0], worlds[1] if not np.array_equal(worlds[0], worlds[1]) else None)

    def op_Shape(self, op: Op) -> list[Any]:
        op.mapping.how = "constant"
        return [self._shape_static(op.input(0), op.attrs.get("start"), op.attrs.get("end"))]

    def op_Size(self, op: Op) -> list[Any]:
        op.mapping.how = "constant"
        s = self._shape_static(op.input(0), None, None)
        return [Static(np.array(np.prod(s.a), dtype=np.int64),
                       None if s.b is None else np.array(np.prod(s.b), dtype=np.int64))]

    def op_Transpose(self, op: Op) -> list[Any]:
        op.mapping.how = "layout"
        v = self.view(op)
        perm = op.attrs.get("perm", list(range(v.rank))[::-1])
        try:
            return [_produced(v.transpose([int(p) for p in perm]), op)]
        except IndexError as e:
            raise op.fail(str(e)) from None

    def op_Squeeze(self, op: Op) -> list[Any]:
        op.mapping.how = "layout"
        v = self.view(op)
        axes = self.ints(op, 1, "axes", "axes" if self.opset < 13 else None)
        try:
            return [_produced(v.squeeze(axes), op)]
        except IndexError as e:
            raise op.fail(str(e)) from None

    def op_Unsqueeze(self, op: Op) -> list[Any]:
        op.mapping.how = "layout"
        v = self.view(op)
        axes = self.ints(op, 1, "axes", "axes" if self.opset < 13 else None)
        if not axes:
            raise op.fail("has no axes")
        try:
            return [_produced(v.unsqueeze(axes), op)]
        except IndexError as e:
            raise op.fail(str(e)) from None

    def _target(self, op: Op, shape: Sequence[Any], target: Static, allowzero: bool) -> list[Any]:
        """A Reshape target with the batch recognised (BATCH) and 0 / -1 worked out."""
        a, b = target.world(0), target.world(1)
        out: list[Any] = []
        for k in range(len(a)):
            x1, x2 = int(a[k]), int(b[k])
            if x1 == x2:
                if x1 == 0 and not allowzero:
                    if k >= len(shape):
                        raise op.fail(f"copies dimension {k} of an input that has only {len(shape)}")
                    out.append(shape[k])
                else:
                    out.append(x1)
            elif (x1, x2) == WORLDS:
                out.append(BATCH)
            else:
                raise op.fail("computes a size from the batch size that is not the batch itself (it merges the "
                              "batch with other dimensions)")
        if BATCH not in out and self.static_batch is not None and BATCH in shape and self.static_batch in out:
            out[out.index(self.static_batch)] = BATCH  # a file exported with a fixed batch size
        if out.count(-1) > 1:
            raise op.fail(f"has more than one -1 in its target shape {out}")
        per_sample = math.prod(s for s in shape if s != BATCH)
        known = math.prod(s for s in out if s not in (BATCH, -1))
        if -1 in out:
            if BATCH in out or BATCH not in shape:
                if known == 0 or per_sample % known:
                    raise op.fail(f"cannot reshape {_shape_text(shape)} to {_shape_text(out)}")
                out[out.index(-1)] = per_sample // known
            elif known == per_sample:
                out[out.index(-1)] = BATCH
            else:
                raise op.fail(f"reshapes {_shape_text(shape)} to {_shape_text(out)}, merging the batch with other "
                              f"dimensions; LayerLoom keeps the batch apart")
        if out.count(BATCH) != shape.count(BATCH) or math.prod(s for s in out if s != BATCH) != per_sample:
            raise op.fail(f"reshapes {_shape_text(shape)} to {_shape_text(out)}, which mixes the batch with other "
                          f"dimensions or changes the number of values")
        return out

    def _reshaped(self, op: Op, v: View, target: list[Any]) -> View:
        got = v.reshape(target)
        if got is not None:
            return _produced(got, op)
        if target[0] != BATCH:
            raise op.fail(f"reshapes to {_shape_text(target)}, moving the batch away from the front")
        nid = self.materialize(v, op)
        cur = [BATCH, *self.info[nid].shape]
        try:
            layer, params = reshape_step(cur, list(target))
        except LayoutError as e:
            raise op.fail(str(e)) from None
        return self.add_layer(op, layer, params, [nid])

    def op_Reshape(self, op: Op) -> list[Any]:
        op.mapping.how = "layout"
        v = self.view(op)
        shape = op.input(1)
        if not isinstance(shape, Static):
            raise op.fail("takes its target shape from the network's data")
        target = self._target(op, v.shape, shape, bool(op.attrs.get("allowzero", 0)))
        return [self._reshaped(op, v, target)]

    def op_Flatten(self, op: Op) -> list[Any]:
        op.mapping.how = "layout"
        v = self.view(op)
        axis = int(op.attrs.get("axis", 1))
        axis = axis + v.rank if axis < 0 else axis
        head, tail = v.shape[:axis], v.shape[axis:]
        if BATCH in tail or BATCH not in head or any(s != 1 for s in head if s != BATCH):
            raise op.fail(f"flattens {_shape_text(v.shape)} at axis {axis}, merging the batch with other dimensions")
        return [self._reshaped(op, v, [BATCH, math.prod(tail)])]

    def op_Expand(self, op: Op) -> list[Any]:
        v = op.input(0)
        shape = op.input(1)
        if isinstance(shape, Static) and not isinstance(v, Static):
            for w in range(2):
                want = shape.world(w)
                have = [WORLDS[w] if s == BATCH else s for s in v.shape]
                try:
                    if list(np.broadcast_shapes(tuple(have), tuple(int(x) for x in want))) != have:
                        break
                except ValueError:
                    break
            else:
                op.mapping.how = "dropped"
                return [v]
        raise op.fail("broadcasts a tensor to a larger shape; no catalogue layer repeats values")

    def op_Gather(self, op: Op) -> list[Any]:
        data, idx = op.input(0), op.input(1)
        axis = int(op.attrs.get("axis", 0))
        if isinstance(data, Static):  # a lookup table indexed by token ids: an Embedding
            table = self.const(op, 0, "table")
            if axis != 0 or table.ndim != 2:
                raise op.fail("looks up rows of a constant that is not a 2-D table along axis 0 (only an "
                              "Embedding does that)")
            ids = self.tensor(op, 1)
            if self.info[ids].dtype != "int64":
                raise op.fail("looks up a table with non-int64 indices; an Embedding takes int64 token ids")
            op.mapping.how = "layer"
            return [self.add_layer(op, "Embedding", {"num_embeddings": int(table.shape[0]),
                                                     "embedding_dim": int(table.shape[1])}, [ids],
                                   {"weight": self.float_weights(table)}, self.sources(op, 0))]
        if not isinstance(idx, Static) or idx.batch_dependent or idx.a.ndim > 1 or idx.a.size != 1:
            raise op.fail("picks several entries of a tensor, or entries chosen by the data; no catalogue layer "
                          "does (only one fixed index is followed)")
        op.mapping.how = "layout"
        k = int(idx.a.reshape(-1)[0])
        picked = self._pick(op, data, axis, k)
        return [picked.unsqueeze([axis]) if idx.a.ndim == 1 else picked]

    def _pick(self, op: Op, value: Any, axis: int, index: int) -> View:
        """`value[..., index, ...]` along axis, as a view (a piece of a deferred Concat when it is one)."""
        if isinstance(value, Pieces) and axis % len(value.shape) == value.axis:
            sizes = [p.shape[value.axis] for p in value.parts]
            if BATCH not in sizes:
                total = sum(sizes)
                index = index % total if -total <= index < total else index
                start = 0
                for part, size in zip(value.parts, sizes):
                    if start <= index < start + size:
                        return self._pick(op, part, axis, index - start)
                    start += size
        v = value if isinstance(value, View) else self.as_view(value, op)
        try:
            got = v.select(axis, index)
        except IndexError as e:
            raise op.fail(str(e)) from None
        if got is None:
            raise op.fail("picks one sample of the batch; LayerLoom layers work on whole batches")
        return _produced(got, op)

    def op_Slice(self, op: Op) -> list[Any]:
        value = op.input(0)
        if self.opset < 10:
            starts, ends = op.attrs.get("starts", []), op.attrs.get("ends", [])
            axes, steps = op.attrs.get("axes"), None
        else:
            starts, ends = self.ints(op, 1, "starts"), self.ints(op, 2, "ends")
            axes, steps = self.ints(op, 3, "axes"), self.ints(op, 4, "steps")
        shape = value.shape
        axes = list(range(len(starts))) if axes is None else axes
        steps = [1] * len(starts) if steps is None else steps
        op.mapping.how = "layout"
        out = value
        for s, e, a, st in zip(starts, ends, axes, steps):
            a %= len(shape)
            n = shape[a]
            if n == BATCH:
                if st == 1 and s == 0 and e >= 2 ** 31 - 1:
                    continue
                raise op.fail("slices the batch axis; LayerLoom layers work on whole batches")
            lo, hi, step = slice(s, e, st).indices(int(n))
            picked = list(range(lo, hi, step))
            if picked == list(range(int(n))):
                continue
            if isinstance(out, Pieces) and a == out.axis and step == 1:
                sizes = [p.shape[a] for p in out.parts]
                bounds = np.cumsum([0] + sizes).tolist()
                if lo in bounds and hi in bounds:
                    parts = out.parts[bounds.index(lo):bounds.index(hi)]
                    out = parts[0] if len(parts) == 1 else Pieces(tuple(parts), a, out.producer)
                    continue
            if len(picked) == 1:
                out = self._pick(op, out, a, picked[0]).unsqueeze([a])
                continue
            raise op.fail("cuts a range out of a tensor; no catalogue layer slices tensors")
        return [out]

    def op_Concat(self, op: Op) -> list[Any]:
        parts = [v for v in op.inputs if v is not None]
        if any(isinstance(v, Static) for v in parts):
            raise op.fail("joins a constant tensor to the network's data; LayerLoom has no layer holding "
                          "constant values")
        axis = int(op.attrs["axis"])
        rank = len(parts[0].shape)
        axis %= rank
        op.mapping.how = "layout"
        if len(parts) == 1:
            return [parts[0]]
        if all(isinstance(v, View) for v in parts):
            joined = stack(parts, axis)
            if joined is not None:
                return [_produced(joined, op)]
        flat: list[Any] = []
        for v in parts:  # Concat of Concats along the same axis: one list of pieces
            flat.extend(v.parts if isinstance(v, Pieces) and v.axis == axis else [v])
        return [Pieces(tuple(flat), axis, op.index)]

    def op_Pad(self, op: Op) -> list[Any]:
        v = self.view(op)
        mode = op.attrs.get("mode", "constant")
        if self.opset < 11:
            pads, value = list(op.attrs.get("pads", [])), float(op.attrs.get("value", 0.0))
            axes = None
        else:
            pads = self.ints(op, 1, "pads") or []
            c = self.const(op, 2, "padding value", optional=True)
            value = 0.0 if c is None else float(np.asarray(c).reshape(-1)[0]) if np.asarray(c).size else 0.0
            axes = self.ints(op, 3, "axes")
        rank = v.rank
        if axes is not None:
            full = [0] * (2 * rank)
            for k, a in enumerate(axes):
                a %= rank
                full[a], full[a + rank] = pads[k], pads[k + len(axes)]
            pads = full
        if len(pads) != 2 * rank:
            raise op.fail(f"has {len(pads)} pads for a tensor of {rank} dimensions")
        op.mapping.how = "layout"
        return [Padded(v, tuple(int(p) for p in pads), str(mode), value, op.index)]

    # ---- layers ------------------------------------------------------------------------------------------
    def _linear(self, op: Op, x: str, weight: np.ndarray, bias: np.ndarray | None, sources: frozenset[str]) -> View:
        params = {"out_features": int(weight.shape[0]), "bias": bias is not None}
        weights = {"weight": self.float_weights(weight)}
        if bias is not None:
            weights["bias"] = self.float_weights(bias)
        out = self.add_layer(op, "Linear", params, [x], weights, sources)
        if bias is None:
            self.biasless[out.node] = (op.node.output[0], -1, "Linear")
        return out

    def op_Gemm(self, op: Op) -> list[Any]:
        if int(op.attrs.get("transA", 0)):
            raise op.fail("transposes its data input (transA=1), which would move the batch")
        if not isinstance(op.input(1), Static):
            raise op.fail("multiplies two tensors of the network's data; a Linear layer multiplies by fixed weights")
        x = self.tensor(op, 0)
        if len(self.info[x].shape) != 1:
            raise op.fail(f"needs a matrix (batch, features) but gets {_shape_text((BATCH, *self.info[x].shape))}")
        w = self.const(op, 1, "weights").astype(np.float64)
        if w.ndim != 2:
            raise op.fail("has weights that are not a matrix")
        w = w if int(op.attrs.get("transB", 0)) else w.T
        w = w * float(op.attrs.get("alpha", 1.0))
        c = self.const(op, 2, "bias", optional=True)
        bias = None
        if c is not None:
            out = w.shape[0]
            try:
                full = np.broadcast_to(np.asarray(c, dtype=np.float64), (1, out))
            except ValueError:
                raise op.fail(f"adds a term of shape {list(c.shape)} that is not one bias per output") from None
            bias = full[0] * float(op.attrs.get("beta", 1.0))
        return [self._linear(op, x, w, bias, self.sources(op, 1, 2))]

    def op_MatMul(self, op: Op) -> list[Any]:
        if not isinstance(op.input(1), Static) or isinstance(op.input(0), Static):
            raise op.fail("multiplies two tensors of the network's data, or fixed values by the data; a Linear "
                          "layer multiplies the data by fixed weights")
        w = self.const(op, 1, "weights")
        if w.ndim != 2:
            raise op.fail(f"multiplies by a {w.ndim}-D constant; only a matrix (Linear's weights) is followed")
        x = self.tensor(op, 0)
        if self.info[x].shape[-1:] != (w.shape[0],):
            raise op.fail(f"multiplies (batch, {', '.join(map(str, self.info[x].shape))}) by a {w.shape[0]}×"
                          f"{w.shape[1]} matrix")
        return [self._linear(op, x, w.T, None, self.sources(op, 1))]

    def _fold_bias(self, op: Op) -> View | None:
        """Add(x, constant) right after a bias-less Linear or Conv whose only use it is: the layer's bias."""
        names = list(op.node.input)
        for k in (0, 1):
            v, c = op.input(k), op.input(1 - k)
            if not isinstance(v, View) or not isinstance(c, Static) or c.batch_dependent:
                continue
            rec = self.biasless.get(v.node)
            if rec is None or rec[0] != names[k] or self.consumers.get(names[k], 0) != 1:
                continue
            _, axis, kind = rec
            rank = v.rank
            arr = np.asarray(c.a, dtype=np.float64)
            if arr.ndim > rank:
                continue
            full = (1,) * (rank - arr.ndim) + arr.shape
            ax = axis % rank
            channels = v.shape[ax]
            if any(s != 1 for j, s in enumerate(full) if j != ax) or full[ax] not in (1, channels):
                continue
            bias = np.broadcast_to(arr.reshape(-1), (channels,)).copy()
            self.g.set_params(v.node, bias=True)
            self.weights[f"{v.node}.bias"] = self.float_weights(bias)
            del self.biasless[v.node]
            op.mapping.how = f"folded into {v.node}"
            return _produced(v, op)
        return None

    def op_Add(self, op: Op) -> list[Any]:
        folded = self._fold_bias(op)
        if folded is not None:
            return [folded]
        if any(isinstance(v, Static) for v in op.inputs):
            raise op.fail("adds a constant tensor; no catalogue layer adds fixed values (only a Linear or Conv bias "
                          "right after a MatMul or Conv is followed)")
        return [self.add_layer(op, "Add", {}, [self.tensor(op, 0), self.tensor(op, 1)])]

    def op_Sum(self, op: Op) -> list[Any]:
        if len(op.inputs) == 1:
            op.mapping.how = "dropped"
            return [op.input(0)]
        if any(isinstance(v, Static) for v in op.inputs):
            raise op.fail("adds a constant tensor; no catalogue layer adds fixed values")
        return [self.add_layer(op, "Add", {}, [self.tensor(op, k) for k in range(len(op.inputs))])]

    def op_Mul(self, op: Op) -> list[Any]:
        a, b = op.node.input[0], op.node.input[1]
        for x, s in ((a, b), (b, a)):
            rec = self.sigmoid_of.get(s)
            if rec is not None and rec[0] == x:  # x · σ(x): SiLU
                if self.consumers.get(s, 0) == 1:
                    rec[1].how = f"folded into the SiLU of node {op.mapping.name!r}"
                return [self.add_layer(op, "SiLU", {}, [self.tensor(op, 0 if x == a else 1)])]
        if any(isinstance(v, Static) for v in op.inputs):
            raise op.fail("multiplies by a constant tensor; no catalogue layer scales by fixed values")
        return [self.add_layer(op, "Multiply", {}, [self.tensor(op, 0), self.tensor(op, 1)])]

    def _activation(self, op: Op, params: dict[str, Any] | None = None) -> list[Any]:
        layer = _ACTIVATIONS[op.node.op_type]
        out = self.add_layer(op, layer, params or {}, [self.tensor(op)])
        if layer == "Sigmoid":
            self.sigmoid_of[op.node.output[0]] = (op.node.input[0], op.mapping)
        return [out]

    def op_Relu(self, op: Op) -> list[Any]:
        return self._activation(op)

    def op_Sigmoid(self, op: Op) -> list[Any]:
        return self._activation(op)

    def op_Tanh(self, op: Op) -> list[Any]:
        return self._activation(op)

    def op_LeakyRelu(self, op: Op) -> list[Any]:
        return self._activation(op, {"negative_slope": _number(op.attrs.get("alpha", 0.01))})

    def op_Elu(self, op: Op) -> list[Any]:
        return self._activation(op, {"alpha": _number(op.attrs.get("alpha", 1.0))})

    def op_Gelu(self, op: Op) -> list[Any]:
        return self._activation(op, {"approximate": str(op.attrs.get("approximate", "none"))})

    def _softmax(self, op: Op) -> list[Any]:
        x = self.tensor(op)
        rank = len(self.info[x].shape) + 1
        axis = int(op.attrs.get("axis", -1 if self.opset >= 13 else 1))
        if self.opset < 13 and axis % rank != rank - 1:
            raise op.fail(f"(opset {self.opset}) normalises over all dimensions from axis {axis} on, which only "
                          f"matches a LayerLoom {op.node.op_type} when the axis is the last")
        return [self.add_layer(op, _ACTIVATIONS[op.node.op_type], {"dim": axis}, [x])]

    def op_Softmax(self, op: Op) -> list[Any]:
        return self._softmax(op)

    def op_LogSoftmax(self, op: Op) -> list[Any]:
        return self._softmax(op)

    # ---- convolution and pooling -------------------------------------------------------------------------
    def _pads(self, op: Op, n: int, spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int], conv: bool) -> tuple[int, ...] | str:
        auto = str(op.attrs.get("auto_pad", "NOTSET"))
        if auto in ("NOTSET", ""):
            pads = [int(p) for p in op.attrs.get("pads", [0] * (2 * n))]
            if pads[:n] != pads[n:]:
                raise op.fail(f"pads unevenly (pads {pads}: begin {pads[:n]}, end {pads[n:]}); LayerLoom layers "
                              f"pad both sides alike")
            return tuple(pads[:n])
        if auto == "VALID":
            return (0,) * n
        totals = []
        for k in range(n):
            out = -(-spatial[k] // strides[k])
            totals.append(max((out - 1) * strides[k] + (kernel[k] - 1) * dilations[k] + 1 - spatial[k], 0))
        if all(t % 2 == 0 for t in totals):
            return tuple(t // 2 for t in totals)
        if conv and auto == "SAME_UPPER" and all(s == 1 for s in strides):
            return "same"
        raise op.fail(f"pads unevenly ({auto}); LayerLoom layers pad both sides alike")

    def _spatial(self, op: Op, x: str, what: str, dims: tuple[int, ...] = (1, 2)) -> int:
        shape = self.info[x].shape
        n = len(shape) - 1
        if n not in dims:
            raise op.fail(f"works on {n}-D data (input (batch, {', '.join(map(str, shape))})); the catalogue has "
                          f"{what} for {' and '.join(f'{d}-D' for d in dims)} data")
        return n

    def op_Conv(self, op: Op) -> list[Any]:
        src = op.input(0)
        pad_mode, extra = "zeros", None
        if isinstance(src, Padded):
            src, extra, pad_mode = self._absorb_pad(op, src)
        x = self.materialize(src, op)
        w = self.const(op, 1, "weights")
        n = self._spatial(op, x, "convolutions")
        if w.ndim != n + 2:
            raise op.fail(f"has {w.ndim}-D weights for {n}-D data")
        kernel = [int(k) for k in op.attrs.get("kernel_shape", w.shape[2:])]
        strides = [int(s) for s in op.attrs.get("strides", [1] * n)]
        dil = [int(d) for d in op.attrs.get("dilations", [1] * n)]
        padding = self._pads(op, n, self.info[x].shape[1:], kernel, strides, dil, conv=True)
        if extra is not None:
            if pad_mode == "zeros" and padding != "same":
                padding = tuple(p + e for p, e in zip(padding, extra))
            elif padding == "same" or any(padding):
                raise op.fail("pads twice (a Pad before it and padding of its own); LayerLoom convolutions pad once")
            else:
                padding = tuple(extra)
        b = self.const(op, 2, "bias", optional=True)
        params = {"out_channels": int(w.shape[0]), "kernel_size": _tup(kernel), "stride": _tup(strides),
                  "padding": padding if padding == "same" else _tup(padding), "dilation": _tup(dil),
                  "groups": int(op.attrs.get("group", 1)), "bias": b is not None, "padding_mode": pad_mode}
        weights = {"weight": self.float_weights(w)}
        if b is not None:
            weights["bias"] = self.float_weights(b)
        out = self.add_layer(op, f"Conv{n}d", params, [x], weights, self.sources(op, 1, 2))
        if b is None:
            self.biasless[out.node] = (op.node.output[0], 1, "Conv")
        return [out]

    def _absorb_pad(self, op: Op, padded: Padded) -> tuple[View, tuple[int, ...], str]:
        pad_map = self.mapping[padded.producer]
        n = len(padded.pads) // 2
        begin, end = padded.pads[:n], padded.pads[n:]
        where = f"the Pad node {pad_map.name!r} before it"
        if any(begin[:2]) or any(end[:2]):
            raise op.fail(f"{where} pads the batch or channel axis; only spatial padding is followed")
        if begin != end:
            raise op.fail(f"{where} pads unevenly ({list(padded.pads)}); LayerLoom convolutions pad both sides alike")
        modes = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
        mode = modes.get(padded.mode)
        if mode is None:
            raise op.fail(f"{where} pads in mode {padded.mode!r}, which no convolution padding_mode matches")
        if mode == "zeros" and padded.constant != 0.0:
            raise op.fail(f"{where} pads with the value {padded.constant}; convolutions pad with zeros")
        if self.consumers.get(op.node.input[0], 0) == 1:
            pad_map.how = f"folded into the convolution of node {op.mapping.name!r}"
        return padded.value, tuple(begin[2:]), mode

    def op_ConvTranspose(self, op: Op) -> list[Any]:
        x = self.tensor(op)
        w = self.const(op, 1, "weights")
        n = self._spatial(op, x, "transposed convolutions", (2,))
        if "output_shape" in op.attrs:
            raise op.fail("sets output_shape; only pads and output_padding are followed (re-export without it)")
        kernel = [int(k) for k in op.attrs.get("kernel_shape", w.shape[2:])]
        strides = [int(s) for s in op.attrs.get("strides", [1] * n)]
        dil = [int(d) for d in op.attrs.get("dilations", [1] * n)]
        auto = str(op.attrs.get("auto_pad", "NOTSET"))
        if auto not in ("NOTSET", "", "VALID"):
            raise op.fail(f"uses auto_pad {auto}; only explicit pads are followed for transposed convolutions")
        pads = [int(p) for p in op.attrs.get("pads", [0] * (2 * n))] if auto != "VALID" else [0] * (2 * n)
        if pads[:n] != pads[n:]:
            raise op.fail(f"pads unevenly (pads {pads}); LayerLoom layers pad both sides alike")
        group = int(op.attrs.get("group", 1))
        b = self.const(op, 2, "bias", optional=True)
        params = {"out_channels": int(w.shape[1]) * group, "kernel_size": _tup(kernel), "stride": _tup(strides),
                  "padding": _tup(pads[:n]), "output_padding": _tup(op.attrs.get("output_padding", [0] * n)),
                  "dilation": _tup(dil), "groups": group, "bias": b is not None}
        weights = {"weight": self.float_weights(w)}
        if b is not None:
            weights["bias"] = self.float_weights(b)
        return [self.add_layer(op, "ConvTranspose2d", params, [x], weights, self.sources(op, 1, 2))]

    def _pool(self, op: Op, kind: str) -> list[Any]:
        x = self.tensor(op)
        n = self._spatial(op, x, "pooling")
        kernel = [int(k) for k in op.attrs["kernel_shape"]]
        strides = [int(s) for s in op.attrs.get("strides", [1] * n)]
        dil = [int(d) for d in op.attrs.get("dilations", [1] * n)]
        pads = self._pads(op, n, self.info[x].shape[1:], kernel, strides, dil, conv=False)
        params: dict[str, Any] = {"kernel_size": _tup(kernel), "stride": None if strides == kernel else _tup(strides),
                                  "padding": _tup(pads), "ceil_mode": bool(op.attrs.get("ceil_mode", 0))}
        if kind == "Max":
            params["dilation"] = _tup(dil)
        else:
            if any(d != 1 for d in dil):
                raise op.fail("averages with dilation, which AvgPool layers do not have")
            params["count_include_pad"] = bool(op.attrs.get("count_include_pad", 0))
        return [self.add_layer(op, f"{kind}Pool{n}d", params, [x])]

    def op_MaxPool(self, op: Op) -> list[Any]:
        if self.consumers.get(_out(op, 1), 0):
            raise op.fail("gives the indices of the maxima, which no catalogue layer does")
        return self._pool(op, "Max")

    def op_AveragePool(self, op: Op) -> list[Any]:
        return self._pool(op, "Avg")

    def op_GlobalAveragePool(self, op: Op) -> list[Any]:
        x = self.tensor(op)
        n = self._spatial(op, x, "adaptive average pooling")
        return [self.add_layer(op, f"AdaptiveAvgPool{n}d", {"output_size": 1}, [x])]

    def op_ReduceMean(self, op: Op) -> list[Any]:
        """The mean over every spatial position (how AdaptiveAvgPool(1) exports): a global average pool."""
        v = self.view(op)
        axes = self.ints(op, 1, "axes", "axes" if self.opset < 18 else None)
        keep = bool(op.attrs.get("keepdims", 1))
        if not axes:
            raise op.fail("averages over every axis, the batch included")
        axes_set = {v.axis(a) for a in axes}
        dims = {v.order[a][0] for a in axes_set if v.order[a] is not None}
        rank = len(v.factors)
        # every axis of the reduced layer dims is reduced (so each is averaged whole), and only those
        ok = rank in (3, 4) and dims == set(range(2, rank)) and not any(d in dims for d, _, _ in v.fixed) and all(
            (k in axes_set) == (e[0] in dims) for k, e in enumerate(v.order) if e is not None)
        if not ok:
            raise op.fail(f"averages over axes {sorted(axes_set)} of {_shape_text(v.shape)}; only the mean over all "
                          f"spatial positions of (batch, channels, …) maps to a layer (global average pooling)")
        pool = self.add_layer(op, f"AdaptiveAvgPool{rank - 2}d", {"output_size": 1}, [v.node])
        factors = tuple((1,) * len(f) if d in dims else f for d, f in enumerate(v.factors))
        order = []
        for k, e in enumerate(v.order):
            if k in axes_set:
                if keep:
                    order.append(None)
            else:
                order.append(e)
        return [View(pool.node, v.dtype, factors, tuple(order), (), op.index)]

    def op_BatchNormalization(self, op: Op) -> list[Any]:
        if int(op.attrs.get("training_mode", 0)):
            raise op.fail("runs in training mode; import an inference-mode model")
        x = self.tensor(op)
        rank = len(self.info[x].shape)
        if rank not in (1, 2, 3):
            raise op.fail(f"normalises {rank}-D samples; the catalogue has BatchNorm1d and BatchNorm2d")
        scale, bias = self.const(op, 1, "scale"), self.const(op, 2, "bias")
        mean, var = self.const(op, 3, "running mean"), self.const(op, 4, "running variance")
        momentum = 1.0 - float(op.attrs.get("momentum", 0.9))
        params = {"eps": _number(op.attrs.get("epsilon", 1e-5)), "momentum": min(1.0, max(0.0, _number(momentum)))}
        weights = {"weight": self.float_weights(scale), "bias": self.float_weights(bias),
                   "running_mean": self.float_weights(mean), "running_var": self.float_weights(var),
                   "num_batches_tracked": np.array(0, dtype=np.int64)}
        return [self.add_layer(op, "BatchNorm2d" if rank == 3 else "BatchNorm1d", params, [x], weights,
                               self.sources(op, 1, 2, 3, 4))]

    def op_LayerNormalization(self, op: Op) -> list[Any]:
        x = self.tensor(op)
        shape = self.info[x].shape
        rank = len(shape) + 1
        axis = int(op.attrs.get("axis", -1)) % rank
        if axis == 0:
            raise op.fail("normalises over the batch axis too")
        normalized = shape[axis - 1:]
        scale = self.const(op, 1, "scale")
        b = self.const(op, 2, "bias", optional=True)
        try:
            weights = {"weight": self.float_weights(np.broadcast_to(scale, normalized))}
            if b is not None:
                weights["bias"] = self.float_weights(np.broadcast_to(b, normalized))
        except ValueError:
            raise op.fail(f"has a scale of shape {list(scale.shape)} that does not fit {list(normalized)}") from None
        params = {"normalized_dims": rank - axis, "eps": _number(op.attrs.get("epsilon", 1e-5)),
                  "elementwise_affine": True, "bias": b is not None}
        return [self.add_layer(op, "LayerNorm", params, [x], weights, self.sources(op, 1, 2))]

    # ---- recurrent layers --------------------------------------------------------------------------------
    def _recurrent(self, op: Op, kind: str) -> list[Any]:
        gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
        a = op.attrs
        hidden = int(a.get("hidden_size", 0))
        direction = str(a.get("direction", "forward"))
        if direction == "reverse":
            raise op.fail("reads the sequence only backwards; LayerLoom's recurrent layers read forwards (or both "
                          "ways when bidirectional)")
        dirs = 2 if direction == "bidirectional" else 1
        if "clip" in a:
            raise op.fail("clips its cell values (clip), which PyTorch's recurrent layers do not")
        if a.get("activation_alpha") or a.get("activation_beta"):
            raise op.fail("has activation parameters, which PyTorch's recurrent layers do not")
        acts = [s.lower() for s in a.get("activations", [])]
        defaults = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"], "RNN": ["tanh"]}[kind]
        extra: dict[str, Any] = {}
        if kind == "RNN":
            act = acts[0] if acts else "tanh"
            if act not in ("tanh", "relu") or (acts and acts != [act] * len(acts)):
                raise op.fail(f"uses the activations {a.get('activations')}; an RNN layer has tanh or relu")
            extra["nonlinearity"] = act
        elif acts and acts != defaults * (len(acts) // len(defaults)):
            raise op.fail(f"uses the activations {a.get('activations')} instead of {defaults}")
        if kind == "LSTM" and int(a.get("input_forget", 0)):
            raise op.fail("couples its input and forget gates (input_forget), which PyTorch's LSTM does not")
        if kind == "GRU" and not int(a.get("linear_before_reset", 0)):
            raise op.fail("applies its reset gate before the recurrent weights (linear_before_reset=0); PyTorch's "
                          "GRU (and so LayerLoom's) applies it after them")
        layout = int(a.get("layout", 0))
        w, r = self.const(op, 1, "input weights W"), self.const(op, 2, "recurrent weights R")
        b = self.const(op, 3, "bias B", optional=True)
        if w.ndim != 3 or r.ndim != 3 or w.shape[0] != dirs or r.shape != (dirs, gates * hidden, hidden) or \
                w.shape[1] != gates * hidden or (b is not None and b.shape != (dirs, 2 * gates * hidden)):
            raise op.fail(f"has weights of shapes {list(w.shape)} and {list(r.shape)} that do not fit "
                          f"hidden_size {hidden} and direction {direction}")
        view = self.view(op)
        if view.rank != 3:
            raise op.fail(f"reads a {view.rank}-D tensor; a sequence is 3-D")
        x = self.materialize(view.transpose([1, 0, 2]) if layout == 0 else view, op)
        steps = self.info[x].shape[0]
        lens = op.input(4)
        if lens is not None:
            if not isinstance(lens, Static) or any(not np.all(lens.world(k) == steps) for k in range(2)):
                raise op.fail("gives sequences of different lengths (sequence_lens); LayerLoom's recurrent layers "
                              "read whole sequences")
        for k, what in ((5, "initial hidden state"), (6, "initial cell state"), (7, "peephole weights")):
            v = op.input(k)
            if v is None:
                continue
            if not isinstance(v, Static) or any(np.any(v.world(i) != 0) for i in range(2)):
                raise op.fail(f"starts from a non-zero {what}; LayerLoom's recurrent layers start from zeros "
                              f"and have no peepholes")
        order = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2], "RNN": [0]}[kind]  # ONNX iofc / zrh → PyTorch ifgo / rzn

        def reorder(m: np.ndarray) -> np.ndarray:
            return np.concatenate([m[g * hidden:(g + 1) * hidden] for g in order])

        weights = {}
        for d in range(dirs):
            sfx = "_l0" + ("_reverse" if d else "")
            weights["weight_ih" + sfx] = self.float_weights(reorder(w[d]))
            weights["weight_hh" + sfx] = self.float_weights(reorder(r[d]))
            if b is not None:
                weights["bias_ih" + sfx] = self.float_weights(reorder(b[d][:gates * hidden]))
                weights["bias_hh" + sfx] = self.float_weights(reorder(b[d][gates * hidden:]))
        params = {"hidden_size": hidden, "num_layers": 1, "bidirectional": dirs == 2, "bias": b is not None, **extra}
        sources = self.sources(op, 1, 2, 3)
        outs: list[Any] = [None, None, None]
        if self.consumers.get(_out(op, 0), 0):  # Y: every step, (T, dirs, B, H) or (B, T, dirs, H)
            y = self.add_layer(op, kind, {**params, "return_sequences": True}, [x], dict(weights), sources)
            factors = ((BATCH,), (steps,), (dirs, hidden))
            ordr = [(1, 0, 1), (2, 0, 1), (0, 0, 1), (2, 1, 2)] if layout == 0 else \
                [(0, 0, 1), (1, 0, 1), (2, 0, 1), (2, 1, 2)]
            outs[0] = View(y.node, y.dtype, factors, tuple(ordr), (), op.index)
        if self.consumers.get(_out(op, 1), 0):  # Y_h: the last state, (dirs, B, H) or (B, dirs, H)
            h = self.add_layer(op, kind, {**params, "return_sequences": False}, [x], dict(weights), sources)
            factors = ((BATCH,), (dirs, hidden))
            ordr = [(1, 0, 1), (0, 0, 1), (1, 1, 2)] if layout == 0 else [(0, 0, 1), (1, 0, 1), (1, 1, 2)]
            outs[1] = View(h.node, h.dtype, factors, tuple(ordr), (), op.index)
        if kind == "LSTM" and self.consumers.get(_out(op, 2), 0):
            outs[2] = Missing(f"the cell state Y_c of {op.label}, and LayerLoom's LSTM gives only the hidden state")
        return outs

    def op_LSTM(self, op: Op) -> list[Any]:
        return self._recurrent(op, "LSTM")

    def op_GRU(self, op: Op) -> list[Any]:
        return self._recurrent(op, "GRU")

    def op_RNN(self, op: Op) -> list[Any]:
        return self._recurrent(op, "RNN")


def _out(op: Op, k: int) -> str:
    return op.node.output[k] if k < len(op.node.output) else ""


def _produced(v: View, op: Op) -> View:
    """The view, remembered as made by op (the layout layers it may need are attributed to op)."""
    return View(v.node, v.dtype, v.factors, v.order, v.fixed, op.index)


def _attr(a: onnx.AttributeProto) -> Any:
    value = onnx.helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8", "replace") for v in value]
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return value


def _shape_text(shape: Sequence[Any]) -> str:
    return "(" + ", ".join("batch" if s == BATCH else str(s) for s in shape) + ")"
