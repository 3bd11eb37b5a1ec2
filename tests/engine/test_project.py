"""The `.layerloom` project file: format, round trips, atomic saves, migration, and refusing bad files.

Every test works on real files in tmp_path. Anything wrong with a file must surface as an
`engine.ProjectError` that says where in the file and what is wrong, never as another exception.
"""
from __future__ import annotations

import copy
import errno
import json
import os
import pickle
import re
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import engine
from engine import Graph, ProjectError, all_specs, analyze
from engine.project import (
    FORMAT,
    MAX_BYTES,
    SECTIONS,
    SUFFIX,
    VERSION,
    Project,
    dumps_project,
    load_project,
    loads_project,
    save_project,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "resources" / "templates"
TEMPLATES = sorted(TEMPLATE_DIR.glob(f"*{SUFFIX}"))
TEMPLATE_IDS = [p.stem for p in TEMPLATES]


def test_there_are_templates_to_test():
    assert SUFFIX == ".layerloom"
    assert len(TEMPLATES) >= 9


# ---- helpers ---------------------------------------------------------------------------------------------

def node(nid, ntype, params=None, position=(0.0, 0.0)):
    return {"id": nid, "type": ntype, "params": params or {}, "position": list(position)}


def edge(source, target):
    return {"source": source, "target": target}


DELETE = object()


def project_doc(nodes=None, edges=None, **top):
    """A small valid version-2 project (Input → ReLU), with top-level keys replaced (or DELETE'd)."""
    doc = {
        "format": FORMAT, "version": VERSION, "name": "t", "description": "",
        "graph": {"nodes": nodes if nodes is not None else [node("input_1", "Input", {"shape": [4]}),
                                                             node("relu_1", "ReLU")],
                  "edges": edges if edges is not None else [edge("input_1", "relu_1")]},
        "data": None, "loss": None, "optimizer": None, "schedule": None, "training": {},
    }
    for key, value in top.items():
        if value is DELETE:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def write(path: Path, content) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content, indent=2), encoding="utf-8")
    return path


def load_error(tmp_path: Path, content, name="bad.layerloom") -> ProjectError:
    path = write(tmp_path / name, content)
    with pytest.raises(ProjectError) as info:
        load_project(path)
    e = info.value
    assert isinstance(e, engine.ProjectError) and isinstance(e, engine.LayerLoomError)
    assert e.path == str(path)
    assert str(e).startswith(str(path) + ": ")
    assert e.reason and e.reason in str(e)
    return e


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ---- format ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", TEMPLATES, ids=TEMPLATE_IDS)
def test_template_files_are_versioned_readable_json_with_every_section(path):
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["format"] == FORMAT and doc["version"] == VERSION == 2
    for key in ("name", "description", "graph", *SECTIONS):
        assert key in doc, key
    assert set(SECTIONS) == {"data", "loss", "optimizer", "schedule", "training"}
    assert doc["graph"]["nodes"] and isinstance(doc["graph"]["edges"], list)
    for n in doc["graph"]["nodes"]:
        assert set(n) == {"id", "type", "params", "position"}
        assert len(n["position"]) == 2
    for e in doc["graph"]["edges"]:
        assert set(e) == {"source", "target"}
    # human-readable: one key per line, indented, short lists (shapes, positions) kept on one line
    assert text.count("\n") > 20
    assert '\n  "graph": {\n' in text
    assert re.search(r'"position": \[-?[\d.]+, -?[\d.]+\]', text)


def test_saved_file_is_indented_utf8_json_with_format_and_version(tmp_path):
    g = Graph()
    g.add_node("Input", shape=[1, 28, 28], node_id="input_1", position=(5, 7.5))
    g.add_node("Flatten", node_id="flatten_1")
    g.connect("input_1", "flatten_1")
    path = save_project(tmp_path / "net.layerloom", Project(graph=g, name="Modèle ✓ größe", description="ü"))
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    assert "Modèle ✓ größe" in text  # written as readable text, not \u escapes
    assert text.endswith("}\n")
    assert '"shape": [1, 28, 28]' in text and '"position": [5.0, 7.5]' in text
    doc = json.loads(text)
    assert doc["format"] == FORMAT and doc["version"] == VERSION
    assert list(doc)[:5] == ["format", "version", "name", "description", "graph"]
    for key in SECTIONS:
        assert key in doc
    assert doc["training"] == {}
    assert text == dumps_project(load_project(path))


def test_saving_a_bare_graph_makes_a_project(tmp_path):
    g = Graph()
    g.add_node("Input", shape=[3], node_id="input_1")
    path = save_project(tmp_path / "g.layerloom", g)
    p = load_project(path)
    assert p.name == "untitled" and p.graph.to_dict() == g.to_dict()
    assert p.loss is None and p.training == {}


# ---- round trips ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", TEMPLATES, ids=TEMPLATE_IDS)
def test_every_template_round_trips(path, tmp_path):
    first = load_project(path)
    assert first.to_dict() == json.loads(path.read_text(encoding="utf-8"))
    saved = save_project(tmp_path / path.name, first)
    second = load_project(saved)
    assert second.to_dict() == first.to_dict()
    assert second.graph.edges == first.graph.edges
    assert saved.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")  # byte-for-byte stable
    third = load_project(save_project(saved, second))
    assert third.to_dict() == first.to_dict()


def _merge_graph():
    """Two branches whose merges take their inputs in the reverse of node order."""
    g = Graph()
    g.add_node("Input", shape=[6], node_id="input_1", position=(0, 0))
    g.add_node("Linear", out_features=3, node_id="linear_a", position=(-100, 100))
    g.add_node("Linear", out_features=5, node_id="linear_b", position=(100, 100))
    g.add_node("Linear", out_features=3, node_id="linear_c", position=(200, 100))
    g.add_node("Concat", dim=1, node_id="concat_1", position=(0, 200))
    g.add_node("Add", node_id="add_1", position=(0, 300))
    g.add_node("Linear", out_features=3, node_id="linear_d", position=(0, 250))
    for t in ("linear_a", "linear_b", "linear_c"):
        g.connect("input_1", t)
    g.connect("linear_b", "concat_1")
    g.connect("linear_a", "concat_1")
    g.connect("concat_1", "linear_d")
    g.connect("linear_c", "add_1")
    g.connect("linear_d", "add_1")
    g.connect("linear_a", "add_1", index=0)  # inserted first
    return g


def test_merge_inputs_keep_their_order(tmp_path):
    g = _merge_graph()
    assert g.inputs_of("concat_1") == ["linear_b", "linear_a"]
    assert g.inputs_of("add_1") == ["linear_a", "linear_c", "linear_d"]
    path = save_project(tmp_path / "merge.layerloom", Project(graph=g))
    doc = json.loads(path.read_text(encoding="utf-8"))
    into_concat = [e["source"] for e in doc["graph"]["edges"] if e["target"] == "concat_1"]
    assert into_concat == ["linear_b", "linear_a"]
    loaded = load_project(path)
    assert loaded.graph.inputs_of("concat_1") == ["linear_b", "linear_a"]
    assert loaded.graph.inputs_of("add_1") == ["linear_a", "linear_c", "linear_d"]
    assert loaded.graph.to_dict() == g.to_dict()
    assert analyze(loaded.graph).nodes["concat_1"].shape == (8,)


def test_edge_order_in_a_hand_written_file_is_the_input_order(tmp_path):
    nodes = [node("input_1", "Input", {"shape": [4]}), node("linear_1", "Linear", {"out_features": 2}),
             node("linear_2", "Linear", {"out_features": 3}), node("concat_1", "Concat")]
    edges = [edge("linear_2", "concat_1"), edge("input_1", "linear_1"), edge("input_1", "linear_2"),
             edge("linear_1", "concat_1")]
    p = load_project(write(tmp_path / "c.layerloom", project_doc(nodes, edges)))
    assert p.graph.inputs_of("concat_1") == ["linear_2", "linear_1"]
    again = load_project(save_project(tmp_path / "c2.layerloom", p))
    assert again.graph.inputs_of("concat_1") == ["linear_2", "linear_1"]


def test_positions_and_all_params_of_every_layer_type_survive(tmp_path):
    g = Graph()
    for i, spec in enumerate(all_specs()):
        g.add_node(spec.type, node_id=f"n{i}_{spec.type.lower()}", position=(i * 12.5 - 40, -i * 0.25))
    # non-default values of every kind: int tuples, "same" padding, None, bools, floats, int lists
    g.add_node("Conv2d", {"out_channels": 7, "kernel_size": [3, 5], "stride": [1, 2], "padding": "same",
                          "dilation": 1, "groups": 1, "bias": False, "padding_mode": "reflect"},
               node_id="conv_custom", position=(1e6, -1e6))
    g.add_node("MaxPool2d", {"kernel_size": 3, "stride": None, "ceil_mode": True}, node_id="pool_custom",
               position=(0.1, 0.2))
    g.add_node("Dropout", {"p": 0.125}, node_id="drop_custom")
    g.add_node("Reshape", {"shape": [-1, 4, 2]}, node_id="reshape_custom")
    g.add_node("Embedding", {"num_embeddings": 50, "embedding_dim": 8, "padding_idx": 0}, node_id="emb_custom")
    g.add_node("Input", {"shape": [12], "dtype": "int64"}, node_id="input_custom")
    project = Project(graph=g, name="all", description="every layer", data={"source": "mnist", "split": 0.2},
                      loss={"type": "CrossEntropy", "params": {"label_smoothing": 0.1}},
                      optimizer={"type": "Adam", "params": {"lr": 0.01}}, schedule=None,
                      training={"epochs": 3, "batch_size": 16, "seed": 7})
    loaded = load_project(save_project(tmp_path / "all.layerloom", project))
    assert loaded.to_dict() == project.to_dict()
    for nid, n in g.nodes.items():
        m = loaded.graph.nodes[nid]
        assert (m.type, m.params, m.position) == (n.type, n.params, n.position), nid
    assert list(loaded.graph.nodes) == list(g.nodes)  # node order (which orders the Inputs) is kept
    assert loaded.graph.nodes["conv_custom"].params["kernel_size"] == [3, 5]
    assert loaded.graph.nodes["conv_custom"].params["padding"] == "same"
    assert loaded.graph.nodes["pool_custom"].params["stride"] is None
    assert loaded.graph.nodes["conv_custom"].position == (1e6, -1e6)
    assert (loaded.name, loaded.description, loaded.data, loaded.training) == \
        ("all", "every layer", {"source": "mnist", "split": 0.2}, {"epochs": 3, "batch_size": 16, "seed": 7})


def test_unknown_top_level_keys_are_kept(tmp_path):
    extra = {"gui": {"zoom": 1.5, "selected": ["relu_1"], "theme": None}, "x_future": [1, "two", {"3": True}]}
    path = write(tmp_path / "x.layerloom", project_doc(**extra))
    p = load_project(path)
    assert p.extra == extra
    saved = json.loads(save_project(tmp_path / "y.layerloom", p).read_text(encoding="utf-8"))
    for key, value in extra.items():
        assert saved[key] == value
    assert load_project(tmp_path / "y.layerloom").to_dict() == p.to_dict()


def test_missing_optional_parts_take_defaults(tmp_path):
    doc = project_doc(name=DELETE, description=DELETE, data=DELETE, loss=DELETE, optimizer=DELETE,
                      schedule=DELETE, training=DELETE)
    doc["graph"] = {"nodes": [{"id": "input_1", "type": "Input"}]}  # no params, position or edges
    p = load_project(write(tmp_path / "m.layerloom", doc))
    assert p.name == "untitled" and p.description == "" and p.training == {}
    assert p.data is p.loss is p.optimizer is p.schedule is None
    n = p.graph.nodes["input_1"]
    assert n.params == {"shape": [1, 28, 28], "dtype": "float32"} and n.position == (0.0, 0.0)
    doc = project_doc(training=None)
    assert load_project(write(tmp_path / "n.layerloom", doc)).training == {}


# ---- atomic saves ---------------------------------------------------------------------------------------

@pytest.fixture
def saved_template(tmp_path):
    folder = tmp_path / "projects"
    folder.mkdir()
    path = folder / "net.layerloom"
    path.write_bytes((TEMPLATE_DIR / "cnn_mnist.layerloom").read_bytes())
    return path


def _changed_project(path):
    p = load_project(path)
    p.name = "changed"
    p.graph.add_node("ReLU", node_id="relu_new")
    return p


@pytest.mark.parametrize("bad_value", [object(), float("nan"), float("inf"), {1, 2}, b"bytes", "\udc80"],
                         ids=["object", "nan", "inf", "set", "bytes", "lone-surrogate"])
def test_unstorable_value_leaves_old_file_intact(saved_template, bad_value):
    before = saved_template.read_bytes()
    p = _changed_project(saved_template)
    p.training["bad"] = bad_value
    with pytest.raises(ProjectError) as info:
        save_project(saved_template, p)
    assert info.value.path == str(saved_template)
    assert "cannot store" in str(info.value)
    assert saved_template.read_bytes() == before
    assert listing(saved_template.parent) == ["net.layerloom"]


def test_self_referencing_project_is_refused(saved_template):
    before = saved_template.read_bytes()
    p = _changed_project(saved_template)
    p.training["me"] = p.training
    with pytest.raises(ProjectError):
        save_project(saved_template, p)
    assert saved_template.read_bytes() == before
    assert listing(saved_template.parent) == ["net.layerloom"]


def test_failing_rename_leaves_old_file_and_no_temp(saved_template, monkeypatch):
    before = saved_template.read_bytes()
    seen = []

    def broken_replace(src, dst):
        seen.append(Path(src))
        assert Path(src).parent == saved_template.parent  # the temp file is in the same folder
        assert Path(src).read_text(encoding="utf-8").startswith("{")  # fully written before the rename
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ProjectError) as info:
        save_project(saved_template, _changed_project(saved_template))
    assert "No space left on device" in str(info.value)
    assert seen and not seen[0].exists()
    assert saved_template.read_bytes() == before
    assert listing(saved_template.parent) == ["net.layerloom"]


def test_interrupted_save_leaves_old_file_and_no_temp(saved_template, monkeypatch):
    before = saved_template.read_bytes()

    def interrupted_fsync(fd):
        raise KeyboardInterrupt  # e.g. Ctrl+C while the data goes to disk

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        save_project(saved_template, _changed_project(saved_template))
    monkeypatch.undo()
    assert saved_template.read_bytes() == before
    assert listing(saved_template.parent) == ["net.layerloom"]


def test_write_failing_midway_leaves_old_file(saved_template, monkeypatch):
    before = saved_template.read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        """A real file that accepts half of the text and then reports a full disk."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(ProjectError):
        save_project(saved_template, _changed_project(saved_template))
    assert saved_template.read_bytes() == before
    assert listing(saved_template.parent) == ["net.layerloom"]


def test_successful_save_replaces_and_leaves_no_temp(saved_template):
    p = _changed_project(saved_template)
    assert save_project(saved_template, p) == saved_template
    assert listing(saved_template.parent) == ["net.layerloom"]
    assert load_project(saved_template).to_dict() == p.to_dict()


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664, 0o444])
def test_existing_file_permissions_are_kept(saved_template, mode):
    os.chmod(saved_template, mode)
    save_project(saved_template, _changed_project(saved_template))
    assert stat.S_IMODE(saved_template.stat().st_mode) == mode
    assert load_project(saved_template).name == "changed"


def test_new_file_is_readable_not_private_temp_mode(tmp_path):
    path = save_project(tmp_path / "new.layerloom", load_project(TEMPLATES[0]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_save_into_missing_folder_or_onto_a_folder_is_a_project_error(tmp_path):
    p = load_project(TEMPLATES[0])
    with pytest.raises(ProjectError, match="folder does not exist"):
        save_project(tmp_path / "nope" / "x.layerloom", p)
    (tmp_path / "dir.layerloom").mkdir()
    with pytest.raises(ProjectError):
        save_project(tmp_path / "dir.layerloom", p)
    assert listing(tmp_path) == ["dir.layerloom"]
    assert listing(tmp_path / "dir.layerloom") == []


# ---- versions -------------------------------------------------------------------------------------------

V1 = {
    "version": 1,
    "name": "old draft",
    "nodes": [
        {"id": "input_1", "type": "Input", "params": {"shape": [4]}, "x": 10, "y": 20},
        {"id": "linear_1", "type": "Linear", "params": {"out_features": 3}, "x": -5.5, "y": 120},
        {"id": "linear_2", "type": "Linear", "params": {"out_features": 3}, "x": 200, "y": 120},
        {"id": "add_1", "type": "Add", "params": {}, "x": 0, "y": 240},
    ],
    "edges": [["input_1", "linear_1"], ["linear_2", "add_1"], ["input_1", "linear_2"], ["linear_1", "add_1"]],
    "notes": "kept as an unknown key",
}


def test_version_1_migrates(tmp_path):
    p = load_project(write(tmp_path / "old.layerloom", V1))
    assert p.name == "old draft"
    assert list(p.graph.nodes) == ["input_1", "linear_1", "linear_2", "add_1"]
    assert p.graph.nodes["input_1"].position == (10.0, 20.0)
    assert p.graph.nodes["linear_1"].position == (-5.5, 120.0)
    assert p.graph.nodes["linear_1"].params == {"out_features": 3, "bias": True}
    assert p.graph.inputs_of("add_1") == ["linear_2", "linear_1"]
    assert p.graph.inputs_of("linear_2") == ["input_1"]
    assert p.data is p.loss is p.optimizer is p.schedule is None and p.training == {}
    assert p.extra == {"notes": "kept as an unknown key"}
    assert analyze(p.graph).ok
    saved = save_project(tmp_path / "old.layerloom", p)
    doc = json.loads(saved.read_text(encoding="utf-8"))
    assert doc["version"] == 2 and doc["format"] == FORMAT
    assert "nodes" not in doc and "edges" not in doc and "x" not in json.dumps(doc["graph"]["nodes"][0])
    assert doc["graph"]["nodes"][1]["position"] == [-5.5, 120.0]
    assert load_project(saved).to_dict() == p.to_dict()


def test_version_1_without_positions_or_edges(tmp_path):
    p = load_project(write(tmp_path / "v1.layerloom", {"version": 1, "nodes": [{"id": "a", "type": "Input"}]}))
    assert p.graph.nodes["a"].position == (0.0, 0.0) and p.graph.edges == []


@pytest.mark.parametrize("doc, where", [
    ({"version": 1, "nodes": {"a": 1}}, "nodes"),
    ({"version": 1, "nodes": [], "edges": "a->b"}, "edges"),
    ({"version": 1, "nodes": ["Input"]}, "nodes[0]"),
    ({"version": 1, "nodes": [{"id": "a", "type": "Input"}], "edges": [["a"]]}, "edges[0]"),
    ({"version": 1, "nodes": [{"id": "a", "type": "Input"}], "edges": [{"source": "a"}]}, "edges[0]"),
    ({"version": 1, "nodes": [{"id": "a", "type": "Input", "x": "left"}]}, "graph.nodes[0].position"),
    ({"version": 1, "nodes": [{"id": "a", "type": "Inptu"}]}, "graph.nodes[0].type"),
    ({"version": 1, "nodes": [{"id": "a", "type": "Input"}], "edges": [["a", "b"]]}, "graph.edges[0].target"),
], ids=["nodes-not-list", "edges-not-list", "node-not-object", "short-pair", "edge-object", "bad-x",
        "unknown-type", "dangling"])
def test_broken_version_1_files(tmp_path, doc, where):
    assert load_error(tmp_path, doc).where == where


@pytest.mark.parametrize("version", [3, 99, 10**6])
def test_newer_version_is_refused(tmp_path, version):
    doc = project_doc(version=version)
    doc["graph"] = {"something": "new"}
    e = load_error(tmp_path, doc)
    assert e.where == "version"
    assert "newer LayerLoom" in str(e) and f"version {version}" in str(e)


# ---- malformed files ------------------------------------------------------------------------------------

def _nodes(*extra):
    return [node("input_1", "Input", {"shape": [4]}), *extra]


MALFORMED = [
    # (id, content, where, words the message must contain)
    ("empty-file", b"", "line 1, column 1", "not valid JSON"),
    ("only-spaces", "  \n\n ", "line 3, column 2", "not valid JSON"),
    ("bad-json", '{\n  "version": 2,\n  "format": \n}', "line 4, column 1", "not valid JSON"),
    ("trailing-comma", '{"version": 2,}', "line 1, column 15", "not valid JSON"),
    ("two-values", '{"version": 2} {}', "line 1, column 16", "Extra data"),
    ("single-quotes", "{'version': 2}", "line 1, column 2", "not valid JSON"),
    ("latin-1", '{"format": "layerloom-project", "name": "café"}'.encode("latin-1"), None, "UTF-8"),
    ("binary", bytes(range(128, 256)), None, "UTF-8"),
    ("huge-int-literal", '{"version": 1' + "0" * 5000 + "}", None, "not valid JSON"),
    ("top-list", [project_doc()], None, "one JSON object, not a list"),
    ("top-string", '"project"', None, "not text"),
    ("top-null", "null", None, "not null"),
    ("no-version", project_doc(version=DELETE), "version", "no format version"),
    ("version-text", project_doc(version="2"), "version", "whole number"),
    ("version-bool", project_doc(version=True), "version", "whole number"),
    ("version-float", project_doc(version=2.0), "version", "whole number"),
    ("version-zero", project_doc(version=0), "version", "whole number"),
    ("no-format", project_doc(format=DELETE), "format", "not a LayerLoom project"),
    ("other-format", project_doc(format="keras"), "format", "'keras'"),
    ("name-number", project_doc(name=5), "name", "must be text"),
    ("description-list", project_doc(description=["a"]), "description", "must be text"),
    ("no-graph", project_doc(graph=DELETE), "graph", "no graph"),
    ("graph-list", project_doc(graph=[]), "graph", "not a list"),
    ("graph-no-nodes", project_doc(graph={"edges": []}), "graph.nodes", "must be a list, not null"),
    ("nodes-object", project_doc(graph={"nodes": {"input_1": {}}, "edges": []}), "graph.nodes", "not an object"),
    ("edges-object", project_doc(graph={"nodes": [], "edges": {}}), "graph.edges", "not an object"),
    ("node-string", project_doc(_nodes("ReLU"), []), "graph.nodes[1]", "not text"),
    ("node-no-id", project_doc(_nodes({"type": "ReLU"}), []), "graph.nodes[1]", "missing its 'id'"),
    ("node-no-type", project_doc(_nodes({"id": "relu_1"}), []), "graph.nodes[1]", "missing its 'type'"),
    ("id-number", project_doc(_nodes({"id": 7, "type": "ReLU"}), []), "graph.nodes[1].id", "must be text"),
    ("type-list", project_doc(_nodes({"id": "r", "type": ["ReLU"]}), []), "graph.nodes[1].type", "must be text"),
    ("bad-id", project_doc(_nodes(node("1st layer", "ReLU")), []), "graph.nodes[1].id", "must start with a letter"),
    ("unknown-type", project_doc(_nodes(node("conv_1", "Conv3d")), []), "graph.nodes[1].type", "'Conv3d'"),
    ("params-list", project_doc(_nodes({"id": "l", "type": "Linear", "params": [10]}), []),
     "graph.nodes[1].params", "must be an object"),
    ("unknown-param", project_doc(_nodes(node("l", "Linear", {"out_features": 3, "units": 3})), []),
     "graph.nodes[1].params.units", "no parameter 'units'"),
    ("out-of-range", project_doc(_nodes(node("l", "Linear", {"out_features": 0})), []),
     "graph.nodes[1].params.out_features", "out of range"),
    ("dropout-p", project_doc(_nodes(node("d", "Dropout", {"p": 1.5})), []), "graph.nodes[1].params.p",
     "out of range"),
    ("param-wrong-type", project_doc(_nodes(node("l", "Linear", {"bias": "yes"})), []),
     "graph.nodes[1].params.bias", "true or false"),
    ("param-bad-choice", project_doc([node("i", "Input", {"dtype": "float16"})], []), "graph.nodes[0].params.dtype",
     "not allowed"),
    ("shape-float", project_doc([node("i", "Input", {"shape": [1, 2.5]})], []), "graph.nodes[0].params.shape",
     "whole number"),
    ("position-text", project_doc([{"id": "i", "type": "Input", "position": "0,0"}], []),
     "graph.nodes[0].position", "two numbers"),
    ("position-three", project_doc([{"id": "i", "type": "Input", "position": [0, 0, 0]}], []),
     "graph.nodes[0].position", "two numbers"),
    ("position-bool", project_doc([{"id": "i", "type": "Input", "position": [0, True]}], []),
     "graph.nodes[0].position", "two numbers"),
    ("position-far", project_doc([{"id": "i", "type": "Input", "position": [1e300, 0]}], []),
     "graph.nodes[0].position", "finite"),
    ("duplicate-id", project_doc(_nodes(node("relu_1", "ReLU"), node("relu_1", "Tanh")), []),
     "graph.nodes[2].id", "already a node 'relu_1'"),
    ("edge-list", project_doc(_nodes(node("r", "ReLU")), [["input_1", "r"]]), "graph.edges[0]", "source and target"),
    ("edge-no-target", project_doc(_nodes(node("r", "ReLU")), [{"source": "input_1"}]), "graph.edges[0].target",
     "needs a target"),
    ("edge-source-number", project_doc(_nodes(node("r", "ReLU")), [edge(0, "r")]), "graph.edges[0].source",
     "needs a source"),
    ("dangling-target", project_doc(_nodes(node("r", "ReLU")), [edge("input_1", "r"), edge("r", "ghost")]),
     "graph.edges[1].target", "'ghost', which is not in the graph"),
    ("dangling-source", project_doc(_nodes(node("r", "ReLU")), [edge("phantom", "r")]), "graph.edges[0].source",
     "'phantom'"),
    ("cycle", project_doc(_nodes(node("add_1", "Add"), node("add_2", "Add")),
                          [edge("input_1", "add_1"), edge("add_1", "add_2"), edge("add_2", "add_1")]),
     "graph.edges[2]", "loop"),
    ("self-loop", project_doc(_nodes(node("add_1", "Add")), [edge("add_1", "add_1")]), "graph.edges[0]",
     "cannot feed itself"),
    ("duplicate-edge", project_doc(_nodes(node("add_1", "Add")), [edge("input_1", "add_1")] * 2),
     "graph.edges[1]", "already connected"),
    ("edge-into-input", project_doc(_nodes(node("input_2", "Input")), [edge("input_1", "input_2")]),
     "graph.edges[0]", "takes no input"),
    ("two-into-one", project_doc(_nodes(node("input_2", "Input"), node("r", "ReLU")),
                                 [edge("input_1", "r"), edge("input_2", "r")]), "graph.edges[1]", "disconnect"),
    ("data-list", project_doc(data=["mnist"]), "data", "object or null"),
    ("training-number", project_doc(training=10), "training", "object or null"),
    ("loss-no-type", project_doc(loss={"params": {}}), "loss.type", "needs a 'type'"),
    ("loss-unknown", project_doc(loss={"type": "Hinge"}), "loss.type", "'Hinge'"),
    ("loss-params-list", project_doc(loss={"type": "MSE", "params": [1]}), "loss.params", "must be an object"),
    ("loss-bad-param", project_doc(loss={"type": "CrossEntropy", "params": {"weight": [1, 2]}}), "loss.params",
     "'weight'"),
    ("optimizer-unknown", project_doc(optimizer={"type": "Adamw2"}), "optimizer.type", "'Adamw2'"),
    ("optimizer-bad-lr", project_doc(optimizer={"type": "Adam", "params": {"lr": -1}}), "optimizer.params", "lr"),
    ("schedule-string", project_doc(schedule="cosine"), "schedule", "object or null"),
    ("nan", '{"format": "layerloom-project", "version": 2, "graph": {"nodes": []}, "training": {"lr": NaN}}',
     "training.lr", "NaN"),
    ("infinity-position", '{"format": "layerloom-project", "version": 2, "graph": {"nodes": '
                          '[{"id": "i", "type": "Input", "position": [-Infinity, 0]}]}}',
     "graph.nodes[0].position[0]", "infinities"),
    ("overflow-float", '{"format": "layerloom-project", "version": 2, "graph": {"nodes": []}, "x": [1e999]}',
     "x[0]", "not a number"),
    ("lone-surrogate", '{"format": "layerloom-project", "version": 2, "graph": {"nodes": []}, "name": "a\\ud800"}',
     "name", "surrogate"),
    ("deep-nesting", "[" * 100_000 + "]" * 100_000, None, "nests too deeply"),
    ("deep-object", '{"format": "layerloom-project", "version": 2, "graph": {"nodes": []}, "gui": '
                    + '{"a": ' * 200 + "1" + "}" * 201, None, "nest"),
]


@pytest.mark.parametrize("content, where, words", [pytest.param(*m[1:], id=m[0]) for m in MALFORMED])
def test_malformed_file_is_a_project_error_saying_where_and_what(tmp_path, content, where, words):
    e = load_error(tmp_path, content)
    if where is not None:
        assert e.where == where
        assert f": {where}: " in str(e)
    assert words in e.reason, (words, str(e))
    assert "\n" not in str(e)


def test_missing_file(tmp_path):
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path / "gone.layerloom")
    assert info.value.path == str(tmp_path / "gone.layerloom") and "no such file" in str(info.value)


def test_directory(tmp_path):
    (tmp_path / "folder.layerloom").mkdir()
    with pytest.raises(ProjectError, match="folder, not a project file"):
        load_project(tmp_path / "folder.layerloom")


def test_file_over_the_size_limit_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.layerloom"
    with open(path, "wb") as f:  # a sparse file: big on paper, no disk used
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(ProjectError, match="too large to be a project"):
        load_project(path)


def test_large_valid_file_within_the_limit_loads(tmp_path):
    doc = project_doc(blob=list(range(300_000)))
    p = load_project(write(tmp_path / "big.layerloom", doc))
    assert p.extra["blob"][-1] == 299_999


def test_large_graph_with_a_late_error_names_the_node(tmp_path):
    nodes = [node("input_1", "Input", {"shape": [4]})] + [node(f"relu_{i}", "ReLU") for i in range(1, 3000)]
    nodes.append(node("relu_2999", "Nope"))
    e = load_error(tmp_path, project_doc(nodes, []))
    assert e.where == "graph.nodes[3000].type"


def test_unreadable_file():
    """A file the user may not read gives a clear ProjectError. Root reads anything, so when the tests run
    as root the loader runs in a child process that has dropped to the unprivileged user 'nobody'."""
    import shutil
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="layerloom-perm-"))
    try:
        os.chmod(folder, 0o755)
        path = write(folder / "locked.layerloom", project_doc())
        os.chmod(path, 0)
        code = ("import engine, sys\n"
                "try:\n    engine.load_project(sys.argv[1])\n"
                "except engine.ProjectError as e:\n    print(e)\n")
        drop = (lambda: os.setuid(65534)) if hasattr(os, "geteuid") and os.geteuid() == 0 else None
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2], preexec_fn=drop, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "permission denied" in out.stdout and "locked.layerloom" in out.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_loads_project_without_a_path_has_no_path_prefix():
    with pytest.raises(ProjectError) as info:
        loads_project('{"version": 99}')
    assert info.value.path is None and str(info.value).startswith("version: ")
    with pytest.raises(ProjectError) as info:
        Project.from_dict(["not", "a", "dict"])
    assert info.value.where is None


# ---- opening never executes anything --------------------------------------------------------------------

def test_engine_source_has_no_pickle_eval_or_exec():
    sources = sorted((ROOT / "engine").rglob("*.py"))
    assert len(sources) > 5
    for path in sources:
        code = path.read_text(encoding="utf-8")
        if path.name == "custom.py":  # the one trusted exec of a custom layer's code (tests/test_security.py)
            marked = [line for line in code.splitlines() if "# trusted-exec: " in line]
            assert len(marked) == 1
            code = code.replace(marked[0], "")
        assert not re.search(r"\bpickle\b|\bmarshal\b|\bshelve\b", code), path
        assert not re.search(r"(?<![\w.])(eval|exec)\s*\(", code), path  # model.eval() is fine


def test_python_code_in_a_file_is_only_text_that_fails_validation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    lambda_code = f"(lambda: open({str(marker)!r}, 'w'))()"
    for i, bad in enumerate([
        project_doc(_nodes(node("evil", code)), []),
        project_doc(_nodes(node("evil", "Linear", {"out_features": code})), []),
        project_doc(_nodes(node("evil", "Linear", {code: 1})), []),
        project_doc([node("i", "Input", {"dtype": lambda_code})], []),
        project_doc(loss={"type": code}),
        project_doc(optimizer={"type": "Adam", "params": {"lr": lambda_code}}),
        project_doc(version=code),
        project_doc(_nodes(node("r", "__class__")), []),
    ]):
        load_error(tmp_path, bad, name=f"evil{i}.layerloom")
    # text where text is allowed stays text, and is never run
    p = load_project(write(tmp_path / "ok.layerloom", project_doc(name=code, description=lambda_code, gui=code)))
    assert p.name == code and p.extra["gui"] == code
    # a pickle (which would run code on unpickling) is just not a project
    load_error(tmp_path, pickle.dumps({"version": 2, "format": FORMAT}), name="pickled.layerloom")
    assert not marker.exists()


# ---- property-based: malformed projects thrown at the loader --------------------------------------------

PROPERTY = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KEYS = ["format", "version", "name", "description", "graph", "nodes", "edges", "id", "type", "params",
        "position", "source", "target", *SECTIONS, "shape", "out_features", "lr"]
WORDS = [FORMAT, "Input", "Linear", "Add", "Concat", "ReLU", "Conv2d", "Adam", "CrossEntropy", "input_1",
         "linear_1", "relu_1", "same", "float32", "int64", "\ud800", "__class__", ""]
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, 2, -1, 99])
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=10) | st.sampled_from(WORDS))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def check_load(text: str, scratch: Path) -> Project | None:
    """The loader's whole contract: a Project that re-saves and re-loads equal, or a ProjectError."""
    try:
        project = loads_project(text)
    except ProjectError as e:
        assert str(e)
        event(f"refused at {(e.where or '-').split('[')[0]}")
        return None
    assert isinstance(project, Project)
    event("loaded")
    again = loads_project(dumps_project(project))
    assert again.to_dict() == project.to_dict()
    path = save_project(scratch / "fuzz.layerloom", project)
    assert load_project(path).to_dict() == project.to_dict()
    analysis = analyze(project.graph)  # a loaded graph can always be analysed (the CLI does it next)
    assert set(analysis.nodes) == set(project.graph.nodes)
    return project


@PROPERTY
@given(value=json_values)
def test_arbitrary_json_is_a_project_or_a_project_error(value, scratch):
    check_load(json.dumps(value), scratch)


@PROPERTY
@given(rest=st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), json_values, max_size=6),
       version=st.sampled_from([1, 2]))
def test_arbitrary_json_with_a_valid_header_is_a_project_or_a_project_error(rest, version, scratch):
    rest.update(version=version, format=FORMAT)
    check_load(json.dumps(rest), scratch)


TEMPLATE_DOCS = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in TEMPLATES}


@st.composite
def mutated_templates(draw):
    doc = copy.deepcopy(TEMPLATE_DOCS[draw(st.sampled_from(sorted(TEMPLATE_DOCS)))])
    replacement = st.sampled_from(WORDS) | json_values
    for _ in range(draw(st.integers(1, 3))):
        # walk down a random path to a container, then change something in it
        target, depth = doc, draw(st.integers(0, 6))
        for _ in range(depth):
            children = [k for k, v in (target.items() if isinstance(target, dict) else enumerate(target))
                        if isinstance(v, (dict, list)) and v]
            if not children:
                break
            target = target[draw(st.sampled_from(children))]
        if not target:
            continue
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        key = draw(st.sampled_from(keys))
        op = draw(st.sampled_from(["delete", "replace", "duplicate", "swap", "add"]))
        if op == "delete":
            del target[key]
        elif op == "replace":
            target[key] = draw(replacement)
        elif op == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(KEYS) | st.text(max_size=6))] = draw(replacement)
        elif isinstance(target, list) and op == "duplicate":
            target.insert(draw(st.integers(0, len(target))), copy.deepcopy(target[key]))
        elif isinstance(target, list) and op == "swap":
            other = draw(st.sampled_from(keys))
            target[key], target[other] = target[other], target[key]
        elif isinstance(target, list):
            target.append(draw(replacement))
    return doc


@PROPERTY
@given(doc=mutated_templates())
def test_mutated_templates_are_a_project_or_a_project_error(doc, scratch):
    project = check_load(json.dumps(doc), scratch)
    if project is not None:
        assert project.to_dict()["version"] == VERSION


@settings(max_examples=150, deadline=None)
@given(doc=mutated_templates())
def test_from_dict_never_raises_anything_but_a_project_error(doc):
    try:
        Project.from_dict(doc)
    except ProjectError:
        pass
