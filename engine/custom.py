"""Custom layers: a node of type "Custom" whose parameters hold the source of a small PyTorch nn.Module class.

Parameters (plain JSON)::

    {"code": "class Swish(nn.Module):\\n    def __init__(self, beta=1.0): ...",
     "class_name": "Swish",
     "arguments": {"beta": 1.0}}          # keyword arguments of the class: whole numbers, numbers, true/false, text

An argument is also a parameter of the node by its own name: `graph.set_params("custom_1", beta=2.0)`. When the
class's __init__ takes `in_shape` (or `in_shapes`), it gets the input's shape without the batch (a list of them).
forward takes the node's inputs and returns one tensor with the batch first; its output shape (and its number of
parameters) is found by running it on PyTorch's meta device, which allocates nothing and runs no arithmetic.

Trust: the code is Python and can do anything the user can, so it runs only once trusted. `code_hash(code)` names
a piece of code; `trust(hash)` records it in the user's config folder (platformdirs, or $LAYERLOOM_TRUST_FILE);
`is_trusted(hash)` asks; `set_trust_all(True)` trusts everything in this process (the CLI's
--trust-custom-code). Until then the node shows the ShapeError UNTRUSTED and nothing of the code is run, parsed into
objects or imported. `define_class` is the one function that runs user code, only after that check; it gives the
code the names torch, nn, F (torch.nn.functional) and math. Python's builtins stay available (a class needs them):
this is not a sandbox, trust is the safeguard.
"""
from __future__ import annotations

import ast
import builtins
import hashlib
import json
import linecache
import math
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BuildError, ParamError, ShapeError
from .files import write_atomically

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

ENV_TRUST_FILE = "LAYERLOOM_TRUST_FILE"
TRUST_FORMAT = "layerloom-trusted-code"
UNTRUSTED = "this project holds custom code that has not been trusted"
UNTRUSTED_HINT = "open it in the app and press Trust, or pass --trust-custom-code"
SHAPE_ARGS = ("in_shape", "in_shapes")
MAX_CODE = 200_000
MAX_TEXT = 10_000
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
META_BATCH = 2  # the batch of the meta run (2: a size of 1 is special to some layers)

DEFAULT_CODE = '''class Swish(nn.Module):
    """x · sigmoid(beta · x): a smooth ReLU (write your own layer here)."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)
'''

_lock = threading.Lock()
_trust_all = False
_trusted_cache: tuple[str, int, int, frozenset[str]] | None = None


# ---- trust -----------------------------------------------------------------------------------------------------

def code_hash(code: str) -> str:
    """The SHA-256 of the code (UTF-8), in hex: what trust is given to."""
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


def trust_file() -> Path:
    """Where trusted hashes are kept: $LAYERLOOM_TRUST_FILE, else <user config folder>/LayerLoom/trusted_code.json."""
    env = os.environ.get(ENV_TRUST_FILE)
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_config_dir("LayerLoom", appauthor=False)) / "trusted_code.json"


def _read_trusted(path: Path) -> frozenset[str]:
    global _trusted_cache
    try:
        st = path.stat()
    except OSError:
        return frozenset()
    cached = _trusted_cache
    if cached is not None and cached[:3] == (str(path), st.st_mtime_ns, st.st_size):
        return cached[3]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        hashes = frozenset(h for h in data.get("trusted", []) if isinstance(h, str))
    except (OSError, ValueError, AttributeError, RecursionError):
        hashes = frozenset()  # an unreadable file trusts nothing
    _trusted_cache = (str(path), st.st_mtime_ns, st.st_size, hashes)
    return hashes


def is_trusted(hash_: str) -> bool:
    """True when code with this hash may run: trusted by the user, or everything trusted in this process."""
    return _trust_all or hash_ in _read_trusted(trust_file())


def trusted_hashes() -> frozenset[str]:
    return _read_trusted(trust_file())


def _write_trusted(hashes: set[str]) -> None:
    path = trust_file()
    text = json.dumps({"format": TRUST_FORMAT, "version": 1, "trusted": sorted(hashes)}, indent=1) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text, mode=0o600)  # private, as the temporary file it was made from
    except OSError as e:
        raise BuildError(f"cannot record the trusted code in {path}: {e.strerror or e}") from None


def trust(hash_: str) -> None:
    """Trust code with this hash from now on (recorded in trust_file())."""
    if not (isinstance(hash_, str) and re.fullmatch(r"[0-9a-f]{64}", hash_)):
        raise ParamError(f"{hash_!r} is not a code hash (code_hash gives 64 hex digits)")
    with _lock:
        hashes = set(_read_trusted(trust_file()))
        if hash_ not in hashes:
            hashes.add(hash_)
            _write_trusted(hashes)
    clear_cache()


def untrust(hash_: str) -> None:
    """Stop trusting code with this hash."""
    with _lock:
        hashes = set(_read_trusted(trust_file()))
        if hash_ in hashes:
            hashes.discard(hash_)
            _write_trusted(hashes)
    clear_cache()


def set_trust_all(flag: bool) -> None:
    """Trust every custom layer in this process (the CLI's --trust-custom-code); False goes back to the file."""
    global _trust_all
    _trust_all = bool(flag)
    clear_cache()


def trust_all_enabled() -> bool:
    return _trust_all


def custom_nodes(graph: Any) -> list[tuple[str, str]]:
    """(dotted path, code hash) of every Custom node, inside blocks too (a Graph or a Project)."""
    g = getattr(graph, "graph", graph)
    out: list[tuple[str, str]] = []

    def walk(gr: Any, prefix: str) -> None:
        for nid, node in gr.nodes.items():
            if node.type == "Custom":
                out.append((prefix + nid, code_hash(node.params["code"])))
            elif node.type == "Block":
                from .blocks import inner
                walk(inner(node.params).graph, f"{prefix}{nid}.")
    walk(g, "")
    return out


def untrusted_code(graph: Any) -> list[tuple[str, str]]:
    """The Custom nodes whose code is not trusted: what the app's Trust button would trust."""
    return [(path, h) for path, h in custom_nodes(graph) if not is_trusted(h)]


def trust_graph(graph: Any) -> list[str]:
    """Trust the code of every Custom node of a graph (the app's Trust button); returns the hashes trusted."""
    hashes = sorted({h for _, h in untrusted_code(graph)})
    for h in hashes:
        trust(h)
    return hashes


# ---- parameters --------------------------------------------------------------------------------------------------

def default_custom_params() -> dict[str, Any]:
    return {"code": DEFAULT_CODE, "class_name": "Swish", "arguments": {"beta": 1.0}}


def _check_value(name: str, value: Any, where: str) -> Any:
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParamError(f"Custom: argument {name} must be a finite number, not {value!r}", where)
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ParamError(f"Custom: argument {name} is text of more than {MAX_TEXT:,} characters", where)
        return value
    raise ParamError(f"Custom: argument {name} must be a whole number, a number, true/false or text, not "
                     f"{value!r}", where)


def validate_custom_params(values: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Custom node's parameters checked (the code is only text here: nothing runs). An argument may be set by
    its own name; its type must stay (a whole number stays one; a number accepts a whole number)."""
    if not isinstance(values, dict):
        raise ParamError(f"Custom: parameters must be a mapping of names to values, not {values!r}")
    out = dict(base) if base is not None else default_custom_params()
    for key in ("code", "class_name", "arguments"):
        if key in values:
            out[key] = values[key]
    code, cls, arguments = out.get("code"), out.get("class_name"), out.get("arguments", {})
    if not isinstance(code, str) or not code.strip() or len(code) > MAX_CODE:
        raise ParamError(f"Custom: code must be the Python source of an nn.Module class (at most {MAX_CODE:,} "
                         f"characters)", "code")
    try:
        code.encode("utf-8")
    except UnicodeEncodeError:
        raise ParamError("Custom: the code holds characters that are not Unicode", "code") from None
    if not isinstance(cls, str) or not _NAME_RE.match(cls):
        raise ParamError(f"Custom: class_name must be the name of the class in the code, not {cls!r}", "class_name")
    if not isinstance(arguments, dict):
        raise ParamError(f"Custom: arguments must map names to values, not {arguments!r}", "arguments")
    checked = {}
    for name, value in arguments.items():
        if not isinstance(name, str) or not _NAME_RE.match(name) or name in SHAPE_ARGS:
            raise ParamError(f"Custom: {name!r} cannot be an argument name (a Python name, not "
                             f"{' or '.join(SHAPE_ARGS)}, which LayerLoom fills in)", f"arguments.{name}")
        checked[name] = _check_value(name, value, f"arguments.{name}")
    for key, value in values.items():
        if key in ("code", "class_name", "arguments"):
            continue
        if key not in checked:
            known = ", ".join(["code", "class_name", "arguments", *checked])
            raise ParamError(f"Custom has no parameter {key!r}; its parameters are: {known}", key)
        old = checked[key]
        value = _check_value(key, value, key)
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(old):
            kind = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}[type(old)]
            raise ParamError(f"Custom: {key} must be {kind}, not {value!r}", key)
        checked[key] = value
    return {"code": code, "class_name": cls, "arguments": checked}


# ---- running the code ----------------------------------------------------------------------------------------------

class CustomCodeError(Exception):
    """The custom code failed: `message` in words with the line, `line` in the code (or None)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def _filename(node_id: str) -> str:
    return f"<custom layer {node_id}>"


def _code_line(error: BaseException, filename: str) -> int | None:
    """The last line of the custom code that the error went through."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None and isinstance(error, SyntaxError) and error.filename == filename:
        line = error.lineno
    return line


_CLASSES: OrderedDict[tuple[str, str, str], type] = OrderedDict()


def define_class(code: str, class_name: str, node_id: str = "custom") -> type:
    """The class `class_name` defined by the user's `code`: the ONE place where LayerLoom runs code from a project,
    and only code whose hash is trusted (CustomCodeError otherwise, before anything is parsed). The code is
    compiled under the name "<custom layer NODE_ID>" so that errors and tracebacks give its line numbers; its
    globals hold torch, nn, F and math (and Python's builtins). Classes are cached by hash, class and node."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    hash_ = code_hash(code)
    if not is_trusted(hash_):
        raise CustomCodeError(f"{UNTRUSTED}: {UNTRUSTED_HINT}")
    key = (hash_, class_name, node_id)
    with _lock:
        cached = _CLASSES.get(key)
    if cached is not None:
        return cached
    name = _filename(node_id)
    try:
        tree = ast.parse(code, name)
    except SyntaxError as e:
        raise CustomCodeError(f"the code has a syntax error on line {e.lineno}: {e.msg}", e.lineno) from None
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)  # tracebacks show the line
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": f"layerloom_custom_{node_id}",
                                 "torch": torch, "nn": nn, "F": F, "math": math}
    try:
        exec(compile(tree, name, "exec"), namespace)  # trusted-exec: the user's own custom layer, run only after trust
    except Exception as e:
        line = _code_line(e, name)
        at = f" on line {line}" if line else ""
        raise CustomCodeError(f"running the code failed{at}: {type(e).__name__}: {e}", line) from None
    cls = namespace.get(class_name)
    if not isinstance(cls, type):
        names = [k for k, v in namespace.items() if isinstance(v, type) and issubclass(v, nn.Module)]
        raise CustomCodeError(f"the code defines no class {class_name!r}" +
                              (f" (it defines {', '.join(names)})" if names else ""))
    if not issubclass(cls, nn.Module):
        raise CustomCodeError(f"{class_name} must derive from nn.Module (class {class_name}(nn.Module): …)")
    with _lock:
        _CLASSES[key] = cls
        if len(_CLASSES) > 256:
            _CLASSES.popitem(last=False)
    return cls


def clear_cache() -> None:
    """Forget defined classes and inferred shapes (after a change of trust)."""
    with _lock:
        _CLASSES.clear()
        _INFERRED.clear()


def _kwargs(cls: type, arguments: dict[str, Any], ins: list) -> dict[str, Any]:
    import inspect

    kwargs = dict(arguments)
    try:
        names = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return kwargs
    if "in_shape" in names:
        kwargs["in_shape"] = tuple(ins[0].shape) if ins else None
    if "in_shapes" in names:
        kwargs["in_shapes"] = [tuple(t.shape) for t in ins]
    return kwargs


def instantiate(params: dict[str, Any], ins: list, node_id: str, device: Any = None) -> "nn.Module":
    """An instance of the node's class (on `device`, e.g. "meta"); CustomCodeError with the line when it fails."""
    import torch

    cls = define_class(params["code"], params["class_name"], node_id)
    filename = _filename(node_id)
    kwargs = _kwargs(cls, params["arguments"], ins)
    try:
        if device is not None:
            with torch.device(device):
                return cls(**kwargs)
        return cls(**kwargs)
    except Exception as e:
        line = _code_line(e, filename)
        at = f" on line {line}" if line else ""
        raise CustomCodeError(f"{params['class_name']}(…) failed{at}: {type(e).__name__}: {e}", line) from None


_INFERRED: OrderedDict[str, Any] = OrderedDict()


def infer_custom(node_id: str, params: dict[str, Any], ins: list) -> Any:
    """The NodeInfo of a Custom node: untrusted code gives the UNTRUSTED error and runs nothing; trusted code is
    instantiated on the meta device and run on meta tensors of the input shapes (batch 2). A syntax error, an
    exception in __init__ or forward (with the line of the code), or an output that is not one tensor with the
    batch first is the node's ShapeError."""
    from .layers.base import DTYPE_BYTES
    from .shapes import NodeInfo

    info = NodeInfo(node_id, "Custom")
    if not is_trusted(code_hash(params["code"])):
        info.error = ShapeError(UNTRUSTED, hint=UNTRUSTED_HINT)
        return info
    key = json.dumps([code_hash(params["code"]), params["class_name"], params["arguments"], node_id,
                      [[list(t.shape), t.dtype] for t in ins]], sort_keys=True)
    with _lock:
        hit = _INFERRED.get(key)
    if hit is None:
        hit = _run_meta(node_id, params, ins)
        with _lock:
            _INFERRED[key] = hit
            if len(_INFERRED) > 1024:
                _INFERRED.popitem(last=False)
    if isinstance(hit, ShapeError):
        info.error = ShapeError(hit.reason, hint=hit.hint)
        info.error.line = getattr(hit, "line", None)  # type: ignore[attr-defined]
        return info
    shape, dtype, n_params = hit
    info.shape, info.dtype, info.params = shape, dtype, n_params
    info.memory = math.prod(shape) * DTYPE_BYTES[dtype]
    return info


def _fix_hint(line: int | None, error: str = "") -> str:
    hint = f"fix line {line} of the custom code" if line else "fix the custom code"
    if "meta" in error.lower():
        hint += " (shapes are worked out on PyTorch's meta device, which holds no values: .item(), .tolist() or " \
                "printing values cannot work there)"
    return hint


def _run_meta(node_id: str, params: dict[str, Any], ins: list) -> Any:
    import torch

    if not ins:
        return ShapeError("Custom has no input", hint="connect a layer into it")
    try:
        module = instantiate(params, ins, node_id, device="meta")
    except CustomCodeError as e:
        err = ShapeError(str(e), hint=_fix_hint(e.line, str(e)))
        err.line = e.line  # type: ignore[attr-defined]
        return err
    xs = [torch.empty((META_BATCH, *t.shape), dtype=torch.int64 if t.dtype == "int64" else torch.float32,
                      device="meta") for t in ins]
    filename = _filename(node_id)
    cls = params["class_name"]
    try:
        with torch.no_grad(), torch.device("meta"):  # tensors made inside forward stay on the meta device too
            out = module(*xs)
    except Exception as e:
        line = _code_line(e, filename)
        at = f" on line {line}" if line else ""
        err = ShapeError(f"{cls}.forward failed{at}: {type(e).__name__}: {_first(e)}", hint=_fix_hint(line, str(e)))
        err.line = line  # type: ignore[attr-defined]
        return err
    if not isinstance(out, torch.Tensor):
        return ShapeError(f"{cls}.forward must return one tensor, but it returned {type(out).__name__}",
                          hint="return a single tensor (for several results, use several Custom layers)")
    if out.dim() == 0 or out.shape[0] != META_BATCH:
        return ShapeError(f"{cls}.forward must keep the batch as the first dimension: for a batch of {META_BATCH} "
                          f"it gave {tuple(out.shape)}", hint="keep dimension 0 for the samples of the batch")
    dtypes = {torch.float32: "float32", torch.int64: "int64"}
    if out.dtype not in dtypes:
        return ShapeError(f"{cls}.forward returned {str(out.dtype).replace('torch.', '')} values; LayerLoom passes "
                          f"float32 (or int64 token ids) between layers", hint="convert with .float() or .long()")
    n_params = sum(p.numel() for p in module.parameters())
    shape = tuple(int(s) for s in out.shape[1:])
    if shape and min(shape) < 1:
        return ShapeError(f"the output {shape} of {cls} would be empty", hint="check the shape arithmetic")
    return shape, dtypes[out.dtype], n_params


def _first(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else ""


def build_custom(params: dict[str, Any], ins: list, node_id: str) -> "nn.Module":
    """The real module of a Custom node (BuildError when the code is not trusted or fails)."""
    try:
        return instantiate(params, ins, node_id)
    except CustomCodeError as e:
        raise BuildError(f"{node_id}: {e}") from None


def class_source(params: dict[str, Any]) -> str:
    return params["code"]
