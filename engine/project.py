"""The `.layerloom` project file: versioned JSON, migrated when old, refused when newer, written atomically.

Loading never executes anything from the file: it is plain JSON, checked field by field, and every
problem becomes a ProjectError that says where in the file and what is wrong.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GraphError, LayerLoomError, ParamError, ProjectError, UnknownLayerError
from .files import write_atomically
from .graph import Graph, check_training_flags

FORMAT = "layerloom-project"
VERSION = 2
SUFFIX = ".layerloom"
MAX_BYTES = 64 * 1024 * 1024  # a project is a small text file; anything larger is not one of ours
MAX_DEPTH = 64  # a project nests about 6 levels; deeper JSON is not one of ours (and could not be written back)
MAX_NODES = 100_000  # layers in one graph: loading stays within seconds (the editor is made for a few thousand)
MAX_INPUTS = 1_000  # wires into one layer (Add, Concat): Graph.connect checks each new one against all before it

SECTIONS = ("data", "loss", "optimizer", "schedule", "training")


@dataclass
class Project:
    """A graph plus the settings for training it. Sections other than the graph are plain dicts
    (None when not chosen) that the training engine reads; unknown top-level keys are kept."""

    graph: Graph = field(default_factory=Graph)
    name: str = "untitled"
    description: str = ""
    data: dict[str, Any] | None = None
    loss: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": self.name,
                               "description": self.description, "graph": self.graph.to_dict()}
        for key in SECTIONS:
            out[key] = getattr(self, key)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any, path: str | os.PathLike | None = None) -> "Project":
        return _read(data, str(path) if path is not None else None)


# ---- migrations --------------------------------------------------------------------------------------

def _migrate_1_to_2(d: dict[str, Any], err: Callable[[str, str], ProjectError]) -> dict[str, Any]:
    """Version 1 (the first drafts) kept nodes and edges at the top level, positions as x/y, edges as
    [source, target] pairs, and had no training sections."""
    nodes, edges = d.get("nodes", []), d.get("edges", [])
    if not isinstance(nodes, list):
        raise err("must be a list of nodes", "nodes")
    if not isinstance(edges, list):
        raise err("must be a list of [source, target] pairs", "edges")
    new_nodes = []
    for i, n in enumerate(nodes):
        if not isinstance(n, dict):
            raise err("must be an object", f"nodes[{i}]")
        n = dict(n)
        x, y = n.pop("x", 0), n.pop("y", 0)
        n.setdefault("position", [x, y])
        new_nodes.append(n)
    new_edges = []
    for i, e in enumerate(edges):
        if not (isinstance(e, list) and len(e) == 2):
            raise err("must be a [source, target] pair", f"edges[{i}]")
        new_edges.append({"source": e[0], "target": e[1]})
    out = {k: v for k, v in d.items() if k not in ("nodes", "edges")}
    out.update(format=FORMAT, version=2, graph={"nodes": new_nodes, "edges": new_edges})
    return out


MIGRATIONS: dict[int, Callable[[dict[str, Any], Callable[[str, str], ProjectError]], dict[str, Any]]] = {
    1: _migrate_1_to_2,
}


# ---- reading -----------------------------------------------------------------------------------------

def _type_name(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _read(d: Any, path: str | None) -> Project:
    def err(msg: str, where: str | None = None) -> ProjectError:
        return ProjectError(_shorten(msg), path=path, where=_shorten(where, 120) if where else where)

    if not isinstance(d, dict):
        raise err(f"a project file holds one JSON object, not {_type_name(d)}")
    version = d.get("version")
    if "version" not in d:
        raise err("this is not a LayerLoom project: it has no format version", "version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise err(f"the format version must be a whole number from 1, not {version!r}", "version")
    if version > VERSION:
        raise err(f"this file is format version {version}, written by a newer LayerLoom; this one reads "
                  f"versions up to {VERSION}. Update LayerLoom to open it", "version")
    if version >= 2 and d.get("format") != FORMAT:
        raise err(f"this is not a LayerLoom project (format is {d.get('format')!r}, expected {FORMAT!r})",
                  "format")
    _check_plain(d, err)
    while version < VERSION:
        d = MIGRATIONS[version](d, err)
        version = d["version"]

    for key in ("name", "description"):
        if key in d and not isinstance(d[key], str):
            raise err(f"must be text, not {_type_name(d[key])}", key)
    if "graph" not in d:
        raise err("the project has no graph", "graph")
    graph = _read_graph(d["graph"], err)

    sections: dict[str, Any] = {}
    for key in SECTIONS:
        value = d.get(key, {} if key == "training" else None)
        if value is not None and not isinstance(value, dict):
            raise err(f"must be an object or null, not {_type_name(value)}", key)
        if key in ("loss", "optimizer", "schedule") and value is not None:
            _check_choice(key, value, err)
        sections[key] = value
    if sections["training"] is None:
        sections["training"] = {}
    known = {"format", "version", "name", "description", "graph", *SECTIONS}
    extra = {k: v for k, v in d.items() if k not in known}
    return Project(graph=graph, name=d.get("name", "untitled"), description=d.get("description", ""),
                   extra=extra, **sections)


def _shorten(text: str, limit: int = 400) -> str:
    """A message that quotes what the file holds stays readable: long quoted text or lists are cut to their
    start, and the whole to `limit` characters (its start and its end, which says what is allowed)."""
    if len(text) > 4000:  # the patterns below then stay cheap
        text = text[:2500] + text[-1000:]
    text = re.sub(r"('[^']{40})[^']{20,}'|(\"[^\"]{40})[^\"]{20,}\"|(\[[^\[\]]{40})[^\]]{20,}\]",
                  lambda m: next(g for g in m.groups() if g) + "…" + m.group(0)[-1], text)
    text = re.sub(r"\]{8,}", "…]]]", re.sub(r"\[{8,}", "[[[…", text))  # deeply nested lists
    if len(text) > limit:
        text = text[: limit * 2 // 3] + " … " + text[-(limit // 3):]
    return text


def _check_plain(data: Any, err: Callable[..., ProjectError]) -> None:
    """Refuse what Python's JSON reader accepts but a save could not write back the same: NaN and
    infinities, text with unpaired surrogates (\\ud800), and nesting deeper than MAX_DEPTH."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise err(f"the file nests deeper than {MAX_DEPTH} levels, too deep to be a project", where or None)
        if isinstance(value, float) and not math.isfinite(value):
            raise err(f"{value} is not a number a project can hold (NaN and infinities are not JSON)", where or None)
        texts = [value] if isinstance(value, str) else list(value) if isinstance(value, dict) else []
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise err(f"the text {text!r} holds an unpaired surrogate escape, which is not Unicode",
                          where or None) from None
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))


def _check_choice(key: str, value: dict[str, Any], err: Callable[..., ProjectError]) -> None:
    """A loss / optimizer / schedule section names a known type and valid parameters."""
    if not isinstance(value.get("type"), str):
        raise err("needs a 'type' naming the choice", f"{key}.type")
    params = value.get("params", {})
    if not isinstance(params, dict):
        raise err(f"must be an object, not {_type_name(params)}", f"{key}.params")
    lookup = _registry(key)
    if lookup is None:
        return
    try:
        spec = lookup(value["type"])
        spec.validate_params(params)
    except ParamError as e:
        raise err(str(e), f"{key}.params") from None
    except LayerLoomError as e:
        raise err(str(e), f"{key}.type") from None


def _registry(key: str):
    try:
        if key == "loss":
            from .losses import get_loss
            return get_loss
        from .optimizers import get_optimizer, get_schedule
        return get_optimizer if key == "optimizer" else get_schedule
    except ImportError:  # the training catalogues are optional at this layer
        return None


def _read_graph(g: Any, err: Callable[..., ProjectError]) -> Graph:
    if not isinstance(g, dict):
        raise err(f"must be an object with nodes and edges, not {_type_name(g)}", "graph")
    nodes, edges = g.get("nodes"), g.get("edges", [])
    if not isinstance(nodes, list):
        raise err(f"must be a list, not {_type_name(nodes)}", "graph.nodes")
    if not isinstance(edges, list):
        raise err(f"must be a list, not {_type_name(edges)}", "graph.edges")
    if len(nodes) > MAX_NODES:
        raise err(f"holds {len(nodes):,} layers; a project holds at most {MAX_NODES:,}", "graph.nodes")
    if len(edges) > 4 * MAX_NODES:
        raise err(f"holds {len(edges):,} wires; a project holds at most {4 * MAX_NODES:,}", "graph.edges")
    graph = Graph()
    with graph.events.blocked():
        for i, n in enumerate(nodes):
            where = f"graph.nodes[{i}]"
            if not isinstance(n, dict):
                raise err(f"must be an object, not {_type_name(n)}", where)
            for key, kind in (("id", str), ("type", str)):
                if key not in n:
                    raise err(f"is missing its {key!r}", where)
                if not isinstance(n[key], kind):
                    raise err(f"must be text, not {_type_name(n[key])}", f"{where}.{key}")
            params = n.get("params", {})
            if not isinstance(params, dict):
                raise err(f"must be an object, not {_type_name(params)}", f"{where}.params")
            position = n.get("position", [0, 0])
            if not (isinstance(position, list) and len(position) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in position)):
                raise err("must be two numbers [x, y]", f"{where}.position")
            frozen, lr_factor = n.get("frozen", False), n.get("lr_factor", 1.0)
            try:
                check_training_flags(frozen, lr_factor)
            except ParamError as e:
                raise err(str(e), f"{where}.{e.param}") from None
            try:
                graph.add_node(n["type"], params, node_id=n["id"], position=position, frozen=frozen,
                               lr_factor=lr_factor)
            except UnknownLayerError as e:
                raise err(str(e), f"{where}.type") from None
            except ParamError as e:
                raise err(str(e), f"{where}.params.{e.param}" if e.param else f"{where}.params") from None
            except GraphError as e:
                raise err(str(e), f"{where}.position" if "position" in str(e) else f"{where}.id") from None
        pairs: list[tuple[str, str]] = []
        for i, e in enumerate(edges):
            where = f"graph.edges[{i}]"
            if not isinstance(e, dict):
                raise err(f"must be an object with source and target, not {_type_name(e)}", where)
            for key in ("source", "target"):
                if not isinstance(e.get(key), str):
                    raise err(f"needs a {key} node id", f"{where}.{key}")
                if e[key] not in graph:
                    raise err(f"refers to node {e[key]!r}, which is not in the graph", f"{where}.{key}")
            pairs.append((e["source"], e["target"]))
        _connect_all(graph, pairs, err)
    return graph


def _connect_all(graph: Graph, pairs: list[tuple[str, str]], err: Callable[..., ProjectError]) -> None:
    """Connect the file's edges in linear time. Graph.connect looks for a loop by walking down from the target, so
    edges listed from the output back to the input made that walk longer at every edge (a 20,000-layer chain took
    minutes). Connected in the topological order of their targets (each target's inputs keep their file order),
    no target feeds anything yet when it is wired; a loop is found here, once, and named by its last edge."""
    indegree = dict.fromkeys(graph.nodes, 0)
    out_of: dict[str, list[str]] = {}
    for i, (s, t) in enumerate(pairs):
        indegree[t] += 1
        if indegree[t] > MAX_INPUTS:
            raise err(f"is one wire too many into {t}: a layer takes at most {MAX_INPUTS:,} inputs",
                      f"graph.edges[{i}]")
        out_of.setdefault(s, []).append(t)
    rank: dict[str, int] = {}
    ready = [nid for nid, d in indegree.items() if d == 0]
    while ready:
        nid = ready.pop()
        rank[nid] = len(rank)
        for t in out_of.get(nid, ()):
            indegree[t] -= 1
            if indegree[t] == 0:
                ready.append(t)
    order = sorted((i for i, (_, t) in enumerate(pairs) if t in rank), key=lambda i: (rank[pairs[i][1]], i))
    for i in order:
        try:
            graph.connect(*pairs[i])
        except GraphError as ex:
            raise err(str(ex), f"graph.edges[{i}]") from None
    if len(rank) < len(indegree):
        i = _loop_edge(pairs, rank)
        s, t = pairs[i]
        if s == t:
            raise err(f"{s} cannot feed itself", f"graph.edges[{i}]")
        raise err(f"connecting {s} → {t} would make a loop: {t} already feeds {s}. Networks here must flow one way",
                  f"graph.edges[{i}]")


def _loop_edge(pairs: list[tuple[str, str]], rank: dict[str, int]) -> int:
    """The index of the last-listed edge of one loop among the nodes left unranked (each has an unranked input,
    so walking back along inputs must come round)."""
    back: dict[str, tuple[str, int]] = {}
    for i, (s, t) in enumerate(pairs):
        if s not in rank and t not in rank:
            back[t] = (s, i)
    node, seen = next(iter(back)), {}
    while node not in seen:
        seen[node] = len(seen)
        node = back[node][0]
    loop, start = [], node
    while True:
        s, i = back[node]
        loop.append(i)
        node = s
        if node == start:
            return max(loop)


def loads_project(text: str | bytes, path: str | os.PathLike | None = None) -> Project:
    p = str(path) if path is not None else None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProjectError(f"the file is not valid JSON ({e.msg})", path=p,
                           where=f"line {e.lineno}, column {e.colno}") from None
    except UnicodeDecodeError:
        raise ProjectError("the file is not text (UTF-8 JSON expected)", path=p) from None
    except ValueError as e:  # e.g. an integer literal longer than Python converts (4300 digits)
        if "integer string conversion" in str(e):
            raise ProjectError("the file is not valid JSON for LayerLoom: a number in it has thousands of digits, "
                               "more than any project holds", path=p) from None
        raise ProjectError(_shorten(f"the file is not valid JSON ({e})"), path=p) from None
    except RecursionError:
        raise ProjectError("the file nests too deeply to be a project", path=p) from None
    try:
        return _read(data, p)
    except RecursionError:
        raise ProjectError("the file nests too deeply to be a project", path=p) from None


def load_project(path: str | os.PathLike) -> Project:
    """Read a project file. Every problem (missing, unreadable, malformed) raises ProjectError."""
    p = Path(path)
    try:
        if p.is_dir():
            raise ProjectError("this is a folder, not a project file", path=str(p))
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise ProjectError(f"the file is {size / 1e6:.0f} MB, too large to be a project", path=str(p))
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ProjectError("no such file", path=str(p)) from None
    except PermissionError:
        raise ProjectError("permission denied: the file cannot be read", path=str(p)) from None
    except OSError as e:
        raise ProjectError(f"the file cannot be read ({e.strerror or e})", path=str(p)) from None
    return loads_project(raw, p)


def dumps_project(project: "Project | Graph") -> str:
    if isinstance(project, Graph):
        project = Project(graph=project)
    return _pretty(project.to_dict(), "") + "\n"


def _pretty(value: Any, indent: str) -> str:
    """JSON indented for people, with short lists of plain values (shapes, positions) kept on one line."""
    step = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{step}{json.dumps(str(k), ensure_ascii=False)}: {_pretty(v, step)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            flat = "[" + ", ".join(_pretty(v, step) for v in value) + "]"
            if len(flat) <= 80:
                return flat
        return "[\n" + ",\n".join(step + _pretty(v, step) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def save_project(path: str | os.PathLike, project: "Project | Graph") -> Path:
    """Write atomically: a temporary file in the same folder, flushed to disk, then renamed over the
    target, so a crash mid-save leaves the previous file intact."""
    p = Path(path)
    try:
        data = dumps_project(project).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:  # NaN, a non-JSON object, a lone surrogate, a loop
        raise ProjectError(f"the project holds a value JSON cannot store ({e})", path=str(p)) from None
    try:
        write_atomically(p, data)
    except FileNotFoundError:
        raise ProjectError("the folder does not exist", path=str(p)) from None
    except PermissionError:
        raise ProjectError("permission denied: cannot write here", path=str(p)) from None
    except OSError as e:
        raise ProjectError(f"the file cannot be written ({e.strerror or e})", path=str(p)) from None
    return p
