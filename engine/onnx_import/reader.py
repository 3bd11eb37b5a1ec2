"""Reading an ONNX file safely: refuse what is not ONNX, and external data that lives outside the model's folder."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from .report import UNREADABLE, OnnxImportError

if TYPE_CHECKING:  # pragma: no cover
    import onnx


def _refuse(path: Path, why: str) -> OnnxImportError:
    return OnnxImportError(f"{path} is not an ONNX model: {why}", kind=UNREADABLE)


def _tensors(graph: "onnx.GraphProto") -> Iterator["onnx.TensorProto"]:
    """Every tensor a graph stores: initializers, sparse initializers, Constant values, and those of subgraphs."""
    import onnx

    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from _tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _tensors(g)


def check_external_data(model: "onnx.ModelProto", folder: Path, path: Path) -> int:
    """Raise OnnxImportError unless every tensor stored outside the file lives in a file inside `folder` (after
    resolving `..` and links) and the bytes it names are there. Returns how many tensors are external."""
    import onnx

    root = folder.resolve()
    count = 0
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        count += 1
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        name = tensor.name or "a tensor"
        if not location:
            raise OnnxImportError(f"{path}: {name} is stored as external data but names no file", kind=UNREADABLE)
        try:
            target = (root / location).resolve()
            target.is_file()
        except (ValueError, OSError):  # a NUL byte, a name longer than the system allows
            raise OnnxImportError(f"{path}: {name} names external data {location[:80]!r} that is not a file name",
                                  kind=UNREADABLE) from None
        if PurePath(location).is_absolute() or not target.is_relative_to(root):
            raise OnnxImportError(f"{path} refers to external data outside its folder: {location} (for {name}); "
                                  f"only files inside {root} are read. Move the data next to the model and "
                                  f"re-save it", kind=UNREADABLE)
        if not target.is_file():
            raise OnnxImportError(f"{path}: the external data file {location} (for {name}) is missing from "
                                  f"{root}", kind=UNREADABLE)
        try:
            offset, length = int(info.get("offset", 0) or 0), int(info.get("length", 0) or 0)
        except ValueError:
            raise OnnxImportError(f"{path}: {name} has an unreadable offset or length for {location}",
                                  kind=UNREADABLE) from None
        size = target.stat().st_size
        if offset < 0 or length < 0 or offset + length > size:
            raise OnnxImportError(f"{path}: {name} needs bytes {offset}…{offset + length} of {location}, which "
                                  f"has only {size}", kind=UNREADABLE)
    return count


def read_model(path: str | os.PathLike) -> "onnx.ModelProto":
    """The model in an ONNX file with its external data loaded; OnnxImportError (kind "unreadable") for a missing
    file, a folder, a file that is not ONNX, an invalid model, or external data outside the model's folder."""
    import onnx
    from onnx import external_data_helper

    p = Path(path)
    if not p.exists():
        raise OnnxImportError(f"there is no file {p}", kind=UNREADABLE)
    if p.is_dir():
        raise OnnxImportError(f"{p} is a folder, not an ONNX model file", kind=UNREADABLE)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise OnnxImportError(f"{p} cannot be read: {e.strerror or e}", kind=UNREADABLE) from None
    if not raw:
        raise _refuse(p, "the file is empty")
    try:
        model = onnx.load_model_from_string(raw)
    except Exception as e:  # protobuf raises DecodeError, RuntimeWarning-wrapped errors, ValueError ...
        kind = "a zip archive (a PyTorch .pt file?)" if raw[:2] == b"PK" else "not an ONNX protobuf"
        raise _refuse(p, f"the file is {kind} ({type(e).__name__})") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise _refuse(p, "it holds no ONNX graph (no IR version, opset or graph)")
    if not model.graph.output:
        raise _refuse(p, "its graph has no outputs")
    if check_external_data(model, p.parent, p):
        try:
            external_data_helper.load_external_data_for_model(model, str(p.parent))
        except Exception as e:
            raise OnnxImportError(f"{p}: its external data cannot be read ({e})", kind=UNREADABLE) from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OnnxImportError(f"{p} is not a valid ONNX model: {first[:300]}", kind=UNREADABLE) from None
    if model.functions:  # model-local functions (custom composite ops): inline them into plain operators
        from onnx import inliner
        model = inliner.inline_local_functions(model)
    return model
