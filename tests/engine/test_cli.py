"""The `layerloom` command, run for real as a subprocess: summary of projects, exit statuses and messages."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.project import FORMAT, load_project

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "resources" / "templates").glob("*.layerloom"))
TEMPLATE_IDS = [p.stem for p in TEMPLATES]
SCRIPT = Path(sys.executable).parent / ("layerloom.exe" if os.name == "nt" else "layerloom")


def run(*args: str, cwd: Path | None = None, exe: list[str] | None = None, env: dict | None = None):
    """The real command in a fresh interpreter; run from a folder other than the repository by default."""
    return subprocess.run([*(exe or [sys.executable, "-m", "engine.cli"]), *map(str, args)],
                          capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120,
                          cwd=cwd or ROOT.parent, env={**os.environ, **(env or {})})


def assert_no_traceback(result):
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def one_clear_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("layerloom: ")
    assert_no_traceback(result)
    return lines[0]


def node(nid, ntype, params=None):
    return {"id": nid, "type": ntype, "params": params or {}, "position": [0, 0]}


def edge(source, target):
    return {"source": source, "target": target}


def write_project(path: Path, nodes, edges, **top) -> Path:
    doc = {"format": FORMAT, "version": 2, "name": path.stem, "graph": {"nodes": nodes, "edges": edges}, **top}
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


# ---- templates --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", TEMPLATES, ids=TEMPLATE_IDS)
def test_summary_of_every_template(path):
    result = run("summary", path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    project = load_project(path)
    analysis = engine.analyze(project.graph)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(project.name)
    for nid, info in analysis.nodes.items():
        row = next((l for l in lines if l.split()[:1] == [nid]), None)
        assert row is not None, f"no row for {nid}"
        assert row.split()[1] == info.type
        assert f"{info.params:,d}" in row.split()
    total = analysis.total_params
    assert total > 0
    assert re.search(rf"^total: {total:,d} parameters", result.stdout, re.M), result.stdout


@pytest.mark.parametrize("path", TEMPLATES, ids=TEMPLATE_IDS)
def test_summary_json_of_every_template_equals_analyze_and_the_built_model(path):
    result = run("summary", path, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    graph = load_project(path).graph
    analysis = engine.analyze(graph)
    assert [n["id"] for n in out["nodes"]] == analysis.order
    for entry in out["nodes"]:
        assert {"id", "type", "shape", "params", "macs", "error"} <= set(entry)
        info = analysis.nodes[entry["id"]]
        assert entry["type"] == info.type
        assert entry["shape"] == list(info.shape)
        assert (entry["params"], entry["macs"], entry["error"]) == (info.params, info.macs, None)
    assert out["total_params"] == analysis.total_params == sum(n["params"] for n in out["nodes"])
    assert out["total_macs"] == analysis.total_macs == sum(n["macs"] for n in out["nodes"])
    model = engine.build_model(graph, seed=0)
    assert out["total_params"] == sum(p.numel() for p in model.parameters())
    if path.stem == "cnn_mnist":
        assert out["total_params"] == 121930


# ---- graph errors: exit 1 ---------------------------------------------------------------------------------

@pytest.fixture
def broken_graph(tmp_path):
    nodes = [node("input_1", "Input", {"shape": [1, 4, 4]}), node("conv2d_1", "Conv2d", {"kernel_size": 7}),
             node("relu_1", "ReLU"), node("linear_3", "Linear", {"out_features": 2}),
             node("input_2", "Input", {"shape": [5]}), node("linear_1", "Linear", {"out_features": 3}),
             node("linear_2", "Linear", {"out_features": 4}), node("add_1", "Add"), node("concat_1", "Concat")]
    edges = [edge("input_1", "conv2d_1"), edge("conv2d_1", "relu_1"), edge("input_1", "linear_3"),
             edge("input_2", "linear_1"), edge("input_2", "linear_2"), edge("linear_1", "add_1"),
             edge("linear_2", "add_1"), edge("linear_1", "concat_1")]
    return write_project(tmp_path / "shape_errors.layerloom", nodes, edges)


OWN_ERRORS = {"conv2d_1": "Conv2d", "linear_3": "Linear", "add_1": "Add", "concat_1": "Concat"}


def test_shape_errors_exit_1_and_print_every_node_error(broken_graph):
    result = run("summary", broken_graph)
    assert result.returncode == 1
    assert_no_traceback(result)
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(OWN_ERRORS), result.stderr
    analysis = engine.analyze(load_project(broken_graph).graph)
    for nid, ntype in OWN_ERRORS.items():
        line = next(l for l in errors if l.startswith(f"layerloom: {nid} ({ntype}): "))
        assert line == f"layerloom: {nid} ({ntype}): {analysis.nodes[nid].error}"
    assert "kernel 7" in result.stderr and "Flatten" in result.stderr and "same shape" in result.stderr
    assert "relu_1" not in result.stderr  # it only waits on conv2d_1; the table says so
    assert re.search(r"^relu_1 .*waiting on conv2d_1", result.stdout, re.M)
    assert re.search(r"^total: 42 parameters", result.stdout, re.M)  # the working part is still counted


def test_shape_errors_in_json(broken_graph):
    result = run("summary", broken_graph, "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    by_id = {n["id"]: n for n in out["nodes"]}
    for nid in OWN_ERRORS:
        assert by_id[nid]["error"] and by_id[nid]["shape"] is None
    assert by_id["relu_1"]["error"].startswith("waiting on conv2d_1")
    assert by_id["linear_1"] == {**by_id["linear_1"], "shape": [3], "params": 18, "error": None}
    assert out["total_params"] == 42
    assert len(result.stderr.strip().splitlines()) == len(OWN_ERRORS)


def test_empty_graph_exits_1_with_a_message(tmp_path):
    result = run("summary", write_project(tmp_path / "empty.layerloom", [], []))
    assert result.returncode == 1
    assert "graph is empty" in one_clear_line(result)


# ---- unreadable files: exit 2 -----------------------------------------------------------------------------

def test_missing_file_exits_2(tmp_path):
    path = tmp_path / "nowhere.layerloom"
    result = run("summary", path)
    assert result.returncode == 2 and result.stdout == ""
    line = one_clear_line(result)
    assert str(path) in line and "no such file" in line


def test_broken_json_exits_2_with_line_and_column(tmp_path):
    path = tmp_path / "broken.layerloom"
    path.write_text('{\n  "format": "layerloom-project",\n  "version": 2,\n  "graph": {,\n}', encoding="utf-8")
    for args in (("summary", path), ("summary", path, "--json")):
        result = run(*args)
        assert result.returncode == 2 and result.stdout == ""
        line = one_clear_line(result)
        assert str(path) in line and "line 4, column 13" in line and "not valid JSON" in line


@pytest.mark.parametrize("content, words", [
    (b"", "not valid JSON"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "UTF-8"),
    (json.dumps({"format": FORMAT, "version": 99, "graph": {}}).encode(), "newer LayerLoom"),
    (json.dumps({"format": FORMAT, "version": 2, "graph": {"nodes": [node("c", "Conv3d")]}}).encode(),
     "graph.nodes[0].type"),
    (json.dumps({"format": FORMAT, "version": 2, "graph": {"nodes": [node("l", "Linear", {"out_features": -3})]}}
                ).encode(), "graph.nodes[0].params.out_features"),
    (json.dumps({"format": FORMAT, "version": 2, "graph": {"nodes": [node("a", "Input")],
                                                           "edges": [edge("a", "b")]}}).encode(), "'b'"),
    (("[" * 50_000).encode(), "nests too deeply"),
    (b'{"format": "layerloom-project", "version": 1' + b"0" * 5000 + b"}", "not valid JSON"),
], ids=["empty", "binary", "newer", "unknown-type", "out-of-range", "dangling-edge", "deep", "huge-number"])
def test_broken_files_exit_2_with_one_clear_line(tmp_path, content, words):
    path = tmp_path / "bad.layerloom"
    path.write_bytes(content)
    result = run("summary", path)
    assert result.returncode == 2 and result.stdout == ""
    line = one_clear_line(result)
    assert line.startswith(f"layerloom: cannot open the project: {path}: ")
    assert words in line


def test_folder_exits_2(tmp_path):
    result = run("summary", tmp_path)
    assert result.returncode == 2
    assert "folder" in one_clear_line(result)


def test_summary_without_a_file_is_a_usage_error():
    result = run("summary")
    assert result.returncode == 2
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


# ---- no arguments, help, console script ------------------------------------------------------------------

def test_no_arguments_prints_a_template_summary():
    result = run()
    assert result.returncode == 0, result.stderr
    assert "templates:" in result.stdout
    for name in TEMPLATE_IDS:
        assert name in result.stdout
    assert re.search(r"^total: 121,930 parameters", result.stdout, re.M)
    assert "layerloom summary" in result.stdout
    assert_no_traceback(result)


def test_help():
    result = run("--help")
    assert result.returncode == 0 and "summary" in result.stdout


def test_console_script_exists_and_works(tmp_path):
    assert SCRIPT.is_file() and os.access(SCRIPT, os.X_OK), SCRIPT
    path = TEMPLATES[0]
    via_script = run("summary", path, "--json", exe=[str(SCRIPT)], cwd=tmp_path)
    via_module = run("summary", path, "--json")
    assert via_script.returncode == 0, via_script.stderr
    assert json.loads(via_script.stdout) == json.loads(via_module.stdout)
    # With no argument the command opens the window; where there is no display it says so in one sentence.
    bare = run(exe=[str(SCRIPT)], cwd=tmp_path, env={"DISPLAY": "", "WAYLAND_DISPLAY": "", "QT_QPA_PLATFORM": ""})
    assert bare.returncode == 2 and "no display" in bare.stderr and "layerloom train" not in bare.stdout
    missing = run("summary", tmp_path / "missing.layerloom", exe=[str(SCRIPT)], cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in one_clear_line(missing)


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_a_console_that_cannot_show_every_character_gets_no_traceback(broken_graph, encoding):
    """Names, descriptions and messages hold ×, —, → and ≥; a Windows pipe (cp1252) cannot show them all."""
    doc = json.loads(broken_graph.read_text(encoding="utf-8"))
    doc.update(name="Netz → ✓", description="über 28×28 — ≥ 1")
    broken_graph.write_text(json.dumps(doc), encoding="utf-8")
    result = run("summary", broken_graph, env={"PYTHONIOENCODING": encoding})
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "conv2d_1" in result.stdout and "total: 42 parameters" in result.stdout
    assert len(result.stderr.strip().splitlines()) == len(OWN_ERRORS)
