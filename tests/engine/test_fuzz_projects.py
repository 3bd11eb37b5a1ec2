"""The project loader under fuzzing, a few hundred cases of bench/fuzz_projects.py (which runs 10,000): every
mutation of every template, Hypothesis-drawn cases, and the failures the full run found (a quadratic load of long
graphs, a quadratic wide merge, messages quoting megabytes of the file), each kept as a regression test."""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from engine.errors import ProjectError
from engine.project import FORMAT, MAX_INPUTS, loads_project

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import fuzz_projects as fuzz  # noqa: E402


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def assert_contract(data: bytes, scratch: Path, label: str) -> fuzz.Outcome:
    outcome = fuzz.check_case(data, scratch, limit=20)
    assert outcome.kind in ("loaded", "refused"), f"{label}: {outcome.detail}\n{outcome.error}"
    return outcome


@pytest.mark.parametrize("template", sorted(fuzz.TEMPLATES))
def test_every_byte_mutation_of_every_template(template, scratch):
    outcomes = []
    for name in sorted(fuzz.BYTE_MUTATIONS):
        for seed in range(2):
            data = fuzz.apply_byte_mutation(name, template, random.Random(seed))
            outcomes.append(assert_contract(data, scratch, f"{name} of {template} (seed {seed})").kind)
    assert "refused" in outcomes  # the mutations do break files ...
    assert "loaded" in outcomes   # ... and some (a BOM, CRLF line ends) leave them readable


@pytest.mark.parametrize("template", sorted(fuzz.TEMPLATES))
def test_every_structure_mutation_of_every_template(template, scratch):
    kinds = []
    for name in sorted(set(fuzz.STRUCT_MUTATIONS) - set(fuzz.LARGE)):
        data = fuzz.apply_struct_mutations([name], template, random.Random(len(kinds)))
        kinds.append(assert_contract(data, scratch, f"{name} of {template}").kind)
    assert kinds.count("refused") > len(kinds) // 2


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=fuzz.cases(large=False))
def test_drawn_cases_load_or_are_refused_clearly(case, scratch):
    family, label, data = case
    assert_contract(data, scratch, f"[{family}] {label}")


# ---- what the full run found ----------------------------------------------------------------------------------

def _chain(n: int, order: str) -> str:
    nodes = [{"id": "input_1", "type": "Input", "params": {"shape": [4]}, "position": [0, 0]}]
    nodes += [{"id": f"relu_{i}", "type": "ReLU", "params": {}, "position": [0, i]} for i in range(1, n)]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in zip(nodes, nodes[1:])]
    if order == "backwards":
        edges.reverse()
    elif order == "shuffled":
        random.Random(0).shuffle(edges)
    return json.dumps({"format": FORMAT, "version": 2, "name": "chain", "graph": {"nodes": nodes, "edges": edges}})


def _timed_load(text: str) -> float:
    t = time.perf_counter()
    project = loads_project(text)
    assert len(project.graph) == 6000 and len(project.graph.edges) == 5999
    return time.perf_counter() - t


def test_a_long_graph_loads_in_linear_time_whatever_the_order_of_its_edges():
    """Edges listed from the output back to the input made each connect walk the whole chain built so far:
    a 20,000-layer file took 107 s. They are connected in the order of their targets now."""
    forward = min(_timed_load(_chain(6000, "forwards")) for _ in range(2))
    for order in ("backwards", "shuffled"):
        took = min(_timed_load(_chain(6000, order)) for _ in range(2))
        assert took < 4 * forward + 0.3, (order, took, forward)  # quadratic: ~40× slower at this size
    project = loads_project(_chain(50, "backwards"))
    assert project.graph.topological_order() == list(project.graph.nodes)
    assert [e.target for e in project.graph.edges] == list(project.graph.nodes)[1:]


def test_a_loop_in_a_long_graph_is_refused_at_its_last_edge_in_words():
    doc = json.loads(_chain(3000, "backwards"))
    edges = doc["graph"]["edges"]
    edges.append({"source": "relu_2999", "target": "relu_10"})
    t = time.perf_counter()
    with pytest.raises(ProjectError) as info:
        loads_project(json.dumps(doc))
    assert time.perf_counter() - t < 5
    e = info.value
    assert e.where == f"graph.edges[{len(edges) - 1}]"
    assert "connecting relu_2999 → relu_10 would make a loop: relu_10 already feeds relu_2999" in str(e)
    edges.append({"source": "relu_5", "target": "relu_5"})
    edges.pop(-2)
    with pytest.raises(ProjectError, match="relu_5 cannot feed itself") as info:
        loads_project(json.dumps(doc))
    assert info.value.where == f"graph.edges[{len(edges) - 1}]"


def _merge(n: int) -> str:
    nodes = [{"id": f"input_{i}", "type": "Input", "params": {"shape": [2]}, "position": [i, 0]}
             for i in range(1, n + 1)]
    nodes.append({"id": "add_1", "type": "Add", "params": {}, "position": [0, 100]})
    edges = [{"source": f"input_{i}", "target": "add_1"} for i in range(1, n + 1)]
    return json.dumps({"format": FORMAT, "version": 2, "name": "wide", "graph": {"nodes": nodes, "edges": edges}})


def test_a_layer_with_thousands_of_inputs_is_refused_before_a_quadratic_load():
    """Each new input of a merge was checked against all before it: 50,000 inputs took 49 s (a 7 MB file)."""
    assert len(loads_project(_merge(MAX_INPUTS)).graph.inputs_of("add_1")) == MAX_INPUTS
    t = time.perf_counter()
    with pytest.raises(ProjectError) as info:
        loads_project(_merge(20_000))
    assert time.perf_counter() - t < 5
    assert info.value.where == f"graph.edges[{MAX_INPUTS}]"
    assert f"one wire too many into add_1: a layer takes at most {MAX_INPUTS:,} inputs" in str(info.value)


@pytest.mark.parametrize("doc, where, words", [
    ({"format": "x" * 10_000, "version": 2}, "format", "this is not a LayerLoom project (format is 'xxx"),
    ({"format": [[[[[[[[[[[[1]]]]]]]]]]]], "version": 2}, "format", "format is [[[…1…]]]"),
    ({"format": FORMAT, "version": 2, "graph": {"nodes": [
        {"id": "input_1", "type": "Input", "params": {"dtype": "y" * 1000}}]}},
     "graph.nodes[0].params.dtype", "dtype = 'yyy"),
    ({"format": FORMAT, "version": 2, "name": "n", "graph": {"nodes": [], "edges": []}, "x" * 5000: float("nan")},
     "xxx", "NaN"),
])
def test_messages_quote_only_the_start_of_long_values(doc, where, words):
    with pytest.raises(ProjectError) as info:
        loads_project(json.dumps(doc))
    message = str(info.value)
    assert words in message and len(message) < 600 and info.value.where.startswith(where), message
    assert fuzz.message_problem(info.value) is None


def test_a_number_with_thousands_of_digits_is_refused_in_words():
    with pytest.raises(ProjectError) as info:
        loads_project('{"version": 2, "format": "layerloom-project", "name": 1' + "0" * 5000 + "}")
    assert "a number in it has thousands of digits" in str(info.value)
    assert "sys." not in str(info.value)  # not Python's advice to call sys.set_int_max_str_digits()


# ---- the harness itself ---------------------------------------------------------------------------------------

def test_the_harness_reports_unclear_messages_and_hangs(scratch):
    assert "not a sentence" in fuzz.message_problem(ProjectError("bad"))
    assert "characters long" in fuzz.message_problem(ProjectError("too long " * 200))
    assert "Python internals" in fuzz.message_problem(ProjectError("refused <function f at 0x7f>, sorry"))
    big = _chain(20_000, "forwards").encode()
    outcome = fuzz.check_case(big, scratch, limit=0.05)  # 20,000 layers cannot load in 50 ms
    assert outcome.kind == "FAILED" and outcome.detail.startswith("hang")
    assert fuzz.check_case(big[:5000], scratch).kind == "refused"
    assert fuzz.check_case(fuzz.TEMPLATES["cnn_mnist"], scratch).kind == "loaded"
