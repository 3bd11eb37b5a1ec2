"""Hyper-parameter search on real, tiny projects: the three methods, seeds, grids, pruning, failing trials, applying
values, checking the spec, what can be searched, saved searches, two worker processes and the `layerloom search`
command."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.search import (
    SearchError,
    SearchResult,
    apply_params,
    grid_values,
    load_searches,
    resolve_metric,
    run_search,
    save_search,
    search_targets,
    searches_folder,
    validate_spec,
)

ROOT = Path(__file__).resolve().parents[2]
LR = {"target": "optimizer.lr", "kind": "float", "low": 1e-3, "high": 0.1, "log": True}
UNITS = {"target": "node:linear_1.out_features", "kind": "int", "low": 4, "high": 32, "step": 4}


def moons(lr=0.05, optimizer="Adam", epochs=5, n=300, search=None) -> engine.Project:
    """Input(2) → Linear(16) → ReLU → Linear(2) on the two-moons data (300 samples: 210 train, 45 val)."""
    g = engine.Graph()
    prev = g.add_node("Input", shape=[2])
    for layer, params in (("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 2})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    extra = {"search": search} if search is not None else {}
    return engine.Project(graph=g, name="moons", data={"source": "moons", "params": {"n_samples": n}},
                          loss={"type": "CrossEntropy", "params": {}},
                          optimizer={"type": optimizer, "params": {"lr": lr}},
                          training={"epochs": epochs, "batch_size": 32}, extra=extra)


def residual(optimizer="SGD") -> engine.Project:
    """Input → linear_1(16) → linear_2(16), added to linear_1 → linear_3(2): linear_2's width must stay 16."""
    g = engine.Graph()
    x = g.add_node("Input", shape=[2])
    a = g.add_node("Linear", out_features=16)
    g.connect(x, a)
    b = g.add_node("Linear", out_features=16)
    g.connect(a, b)
    add = g.add_node("Add")
    g.connect(a, add)
    g.connect(b, add)
    out = g.add_node("Linear", out_features=2)
    g.connect(add, out)
    return engine.Project(graph=g, name="residual", data={"source": "moons", "params": {"n_samples": 200}},
                          loss={"type": "CrossEntropy", "params": {}},
                          optimizer={"type": optimizer, "params": {"lr": 0.05}}, training={"batch_size": 32})


def params_of(result: SearchResult) -> list[dict]:
    return [t["params"] for t in result.trials]


# ---- the three methods -------------------------------------------------------------------------------------

def test_random_search_is_seeded_and_reports_every_trial():
    project = moons()
    spec = {"method": "random", "trials": 4, "seed": 3, "epochs": 1, "prune": False, "space": [LR, UNITS]}
    seen = []
    first = run_search(project, spec, on_trial=seen.append)
    again = run_search(project, spec)
    other = run_search(project, dict(spec, seed=4))
    assert [t["number"] for t in first.trials] == [0, 1, 2, 3]
    assert seen == first.trials  # on_trial got each record, plain data, as it ended
    json.dumps(seen)
    assert params_of(first) == params_of(again)
    assert params_of(first) != params_of(other)
    for t in first.trials:
        assert t["state"] == "complete" and len(t["epochs"]) == 1 and t["value"] == t["epochs"][-1]
        assert 1e-3 <= t["params"]["optimizer.lr"] <= 0.1
        assert t["params"]["node:linear_1.out_features"] in range(4, 33, 4)
        assert t["seconds"] > 0
    assert first.metric == "val_loss" and first.direction == "minimize"
    assert first.best == min(first.trials, key=lambda t: t["value"])
    assert first.budget == 4 and first.method == "random" and not first.stopped


def test_bayes_search_is_seeded_and_maximises_accuracy():
    project = moons()
    spec = {"method": "bayes", "trials": 5, "seed": 0, "epochs": 1, "metric": "val_acc", "prune": False,
            "space": [LR, {"target": "training.batch_size", "kind": "choice", "values": [16, 32, 64]}]}
    first, again = run_search(project, spec), run_search(project, spec)
    assert params_of(first) == params_of(again)  # TPE's own trials (after 3 random ones) too
    assert len(first.trials) == 5 and first.direction == "maximize"
    assert first.best["value"] == max(t["value"] for t in first.trials)
    assert all(0.0 <= t["value"] <= 1.0 for t in first.trials)


def test_grid_search_covers_the_whole_grid():
    project = moons()
    space = [{"target": "optimizer.type", "kind": "choice", "values": ["Adam", "SGD"]},
             {"target": "node:linear_1.out_features", "kind": "int", "low": 4, "high": 12, "n": 3}]
    result = run_search(project, {"method": "grid", "epochs": 1, "space": space})  # trials: the whole grid
    combos = {(p["optimizer.type"], p["node:linear_1.out_features"]) for p in params_of(result)}
    assert combos == set(itertools.product(["Adam", "SGD"], [4, 8, 12]))
    assert len(result.trials) == 6 and all(t["state"] == "complete" for t in result.trials)
    part = run_search(project, {"method": "grid", "trials": 2, "epochs": 1, "space": space})
    assert len(part.trials) == 2 and "6 combinations" in part.notes[0]


def test_grid_tries_each_optimizer_with_its_own_parameters_once():
    space = [{"target": "optimizer.type", "kind": "choice", "values": ["Adam", "SGD"]},
             {"target": "optimizer.momentum", "kind": "choice", "values": [0.0, 0.9]},
             {"target": "training.batch_size", "kind": "choice", "values": [32, 64]}]
    result = run_search(moons(), {"method": "grid", "epochs": 1, "space": space})
    tried = sorted(json.dumps(p, sort_keys=True) for p in params_of(result))
    expected = [{"optimizer.type": "Adam", "training.batch_size": b} for b in (32, 64)] + \
        [{"optimizer.type": "SGD", "optimizer.momentum": m, "training.batch_size": b} for m in (0.0, 0.9)
         for b in (32, 64)]
    assert tried == sorted(json.dumps(p, sort_keys=True) for p in expected)  # 6 trials, not 8 with 2 repeats
    assert all(t["state"] == "complete" for t in result.trials)


def test_grid_values():
    assert grid_values({"target": "t", "kind": "float", "low": 0.001, "high": 0.1, "log": True, "n": 3}) == \
        [0.001, 0.01, 0.1]
    assert grid_values({"target": "t", "kind": "float", "low": 0.0, "high": 0.5, "step": 0.25}) == [0.0, 0.25, 0.5]
    assert grid_values({"target": "t", "kind": "int", "low": 16, "high": 64, "step": 16}) == [16, 32, 48, 64]
    with pytest.raises(SearchError, match="give \"n\""):
        grid_values({"target": "t", "kind": "float", "low": 0.0, "high": 0.5})


# ---- pruning, failures, stopping ---------------------------------------------------------------------------

def test_pruning_stops_hopeless_trials_early():
    project = moons()
    spec = {"method": "random", "trials": 8, "seed": 0, "epochs": 3, "prune": {"startup_trials": 2},
            "space": [{"target": "optimizer.lr", "kind": "choice", "values": [1e-6, 0.02, 0.05, 0.1]}]}
    result = run_search(project, spec)
    completed = 0
    hopeless_after_startup = []
    for t in result.trials:
        if t["params"]["optimizer.lr"] == 1e-6 and completed >= 2:
            hopeless_after_startup.append(t)
        completed += t["state"] == "complete"
    assert hopeless_after_startup, "the seed should draw the hopeless learning rate after the startup trials"
    for t in hopeless_after_startup:
        assert t["state"] == "pruned" and "pruned after epoch 1" in t["message"]
        assert len(t["epochs"]) == 1  # its Trainer was stopped: 1 of 3 epochs
    assert all(len(t["epochs"]) == 3 for t in result.trials if t["state"] == "complete")
    assert result.best["state"] == "complete" and result.best["params"]["optimizer.lr"] > 1e-6
    assert result.counts()["pruned"] >= len(hopeless_after_startup)


def test_failing_trials_are_recorded_and_the_search_goes_on():
    project = residual(optimizer="SGD")
    space = [{"target": "node:linear_2.out_features", "kind": "choice", "values": [16, 8]},
             {"target": "optimizer.lr", "kind": "choice", "values": [0.05, 1e6]}]
    seen = []
    result = run_search(project, {"method": "grid", "epochs": 1, "space": space}, on_trial=seen.append)
    assert len(seen) == 4 and len(result.trials) == 4
    by = {(t["params"]["node:linear_2.out_features"], t["params"]["optimizer.lr"]): t for t in result.trials}
    for lr in (0.05, 1e6):
        broken = by[(8, lr)]
        assert broken["state"] == "failed" and "break the network" in broken["message"]
        assert "add_1" in broken["message"]
    assert by[(16, 1e6)]["state"] == "failed" and "NaN" in by[(16, 1e6)]["message"]
    assert by[(16, 0.05)]["state"] == "complete"
    assert result.best == by[(16, 0.05)]
    assert result.counts() == {"complete": 1, "pruned": 0, "failed": 3}


def test_should_stop_ends_the_search_between_trials():
    project = moons()
    seen = []
    result = run_search(project, {"method": "random", "trials": 10, "epochs": 1, "space": [LR]},
                        on_trial=seen.append, should_stop=lambda: len(seen) >= 2)
    assert len(result.trials) == 2 and result.stopped
    assert result.best in result.trials


# ---- applying values ---------------------------------------------------------------------------------------

def test_apply_params_writes_a_copy_and_leaves_the_project_alone():
    project = moons(lr=0.01)
    before = json.dumps(project.to_dict(), sort_keys=True)
    new = apply_params(project, {"node:linear_1.out_features": 48, "optimizer.lr": 0.003,
                                 "training.batch_size": 16, "optimizer.weight_decay": 1e-4})
    assert json.dumps(project.to_dict(), sort_keys=True) == before
    assert new is not project and new.graph is not project.graph
    assert new.graph.nodes["linear_1"].params["out_features"] == 48
    assert new.optimizer == {"type": "Adam", "params": {"lr": 0.003, "weight_decay": 1e-4}}
    assert new.training["batch_size"] == 16 and new.training["epochs"] == 5
    assert engine.analyze(new.graph).nodes["linear_2"].params == 48 * 2 + 2
    switched = apply_params(project, {"optimizer.type": "SGD", "optimizer.momentum": 0.9})
    assert switched.optimizer == {"type": "SGD", "params": {"lr": 0.01, "momentum": 0.9}}  # lr carried over


@pytest.mark.parametrize("params, message", [
    ({"node:linear_9.out_features": 8}, "no node 'linear_9'"),
    ({"node:linear_1.units": 8}, "no parameter 'units'"),
    ({"node:linear_1.out_features": 0}, "out of range"),
    ({"optimizer.momentum": 0.9}, "Adam has no parameter 'momentum'"),
    ({"optimizer.type": "Adamm"}, "did you mean Adam"),
    ({"training.batch_size": 0}, "out of range"),
    ({"schedule.gamma": 0.5}, "no learning-rate schedule"),
])
def test_apply_params_refuses_what_cannot_be(params, message):
    with pytest.raises(SearchError, match=message):
        apply_params(moons(), params)


def test_apply_params_refuses_values_that_break_the_network():
    project = residual()
    with pytest.raises(SearchError, match="break the network.*add_1"):
        apply_params(project, {"node:linear_2.out_features": 8})
    assert project.graph.nodes["linear_2"].params["out_features"] == 16


# ---- the spec ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ({"space": []}, "search space is empty"),
    ({}, "search space is empty"),
    ({"space": [{"target": "node:dense_1.units", "kind": "int", "low": 1, "high": 4}]}, "no node 'dense_1'"),
    ({"space": [{"target": "node:linear_1.units", "kind": "int", "low": 1, "high": 4}]},
     "Linear layer has no parameter 'units'"),
    ({"space": [{"target": "optimizer.lr", "kind": "float", "low": 0.1, "high": 0.01}]}, r"low \(0.1\) is above high"),
    ({"space": [{"target": "optimizer.lr", "kind": "float", "low": 0.1, "high": 0.1}]}, "two different ends"),
    ({"method": "grid", "space": [LR]}, "a grid needs a finite list of values"),
    ({"method": "annealing", "space": [LR]}, "bayes, random or grid"),
    ({"space": [{"target": "optimizer.lr", "kind": "real", "low": 0.1, "high": 1}]}, "kind must be"),
    ({"space": [{"target": "optimizer.weight_decay", "kind": "float", "low": 0.0, "high": 0.1, "log": True}]},
     "log scale needs low above 0"),
    ({"space": [{"target": "node:linear_1.out_features", "kind": "float", "low": 4, "high": 8}]}, "use kind int"),
    ({"space": [{"target": "optimizer.amsgrad", "kind": "int", "low": 0, "high": 1}]}, "use kind choice"),
    ({"space": [{"target": "optimizer.momentum", "kind": "float", "low": 0, "high": 0.9}]},
     "Adam has no parameter 'momentum'"),
    ({"space": [{"target": "schedule.gamma", "kind": "float", "low": 0.1, "high": 0.9}]}, "no learning-rate schedule"),
    ({"space": [{"target": "training.epochs", "kind": "int", "low": 1, "high": 9}]}, "search's own \"epochs\""),
    ({"space": [{"target": "lr", "kind": "float", "low": 0.1, "high": 1}]}, "not a search target"),
    ({"space": [LR, LR]}, "names optimizer.lr twice"),
    ({"space": [LR], "trails": 5}, "no 'trails'"),
    ({"space": [{**LR, "hgih": 1}]}, "no setting 'hgih'"),
    ({"space": [{"target": "training.batch_size", "kind": "choice", "values": []}]}, "non-empty list"),
    ({"space": [{"target": "training.batch_size", "kind": "choice", "values": [16, 16]}]}, "holds 16 twice"),
    ({"space": [{"target": "training.batch_size", "kind": "choice", "values": [16, 0]}]}, "out of range"),
    ({"space": [{"target": "node:input_1.shape", "kind": "choice", "values": [2]}]}, "come from the data"),
    ({"space": [{"target": "node:linear_1.out_features", "kind": "int", "low": 4, "high": 30, "step": 4}]},
     "multiple of step"),
    ({"space": [LR], "trials": 0}, "trials must be"),
    ({"space": [LR], "metric": "f1"}, "metric must be"),
    ({"space": [LR], "prune": "yes"}, "prune must be"),
])
def test_spec_errors_say_what_to_change(spec, message):
    with pytest.raises(SearchError, match=message):
        validate_spec(moons(), spec)


def test_spec_defaults_and_conditional_optimizer_parameters():
    project = moons(search={"space": [LR]})
    spec = validate_spec(project)  # the project's own "search" section
    assert spec["method"] == "bayes" and spec["trials"] == 20 and spec["metric"] == "auto"
    assert spec["prune"] == {"startup_trials": 3, "warmup_epochs": 0}
    # momentum exists for SGD, one of the searched types: accepted, and used only in SGD trials
    spec = validate_spec(project, {"method": "grid", "space": [
        {"target": "optimizer.momentum", "kind": "choice", "values": [0.0, 0.9]},
        {"target": "optimizer.type", "kind": "choice", "values": ["adam", "SGD"]}]})
    assert spec["trials"] == 3 and spec["space"][1]["values"] == ["Adam", "SGD"]  # Adam once, SGD with each
    with pytest.raises(SearchError, match="no search settings"):
        validate_spec(moons())


def test_metric_follows_the_loss_and_the_split():
    spec = {"metric": "auto", "direction": "auto"}
    assert resolve_metric(spec, "CrossEntropy", True) == ("val_loss", "minimize")
    assert resolve_metric(spec, "MSE", False) == ("loss", "minimize")
    assert resolve_metric({**spec, "metric": "val_r2"}, "MSE", True) == ("val_r2", "maximize")
    with pytest.raises(SearchError, match="needs a validation split"):
        resolve_metric({**spec, "metric": "val_acc"}, "CrossEntropy", False)
    with pytest.raises(SearchError, match="gives loss, mae, r2"):
        resolve_metric({**spec, "metric": "acc"}, "MSE", True)


def test_search_targets_offer_working_ranges():
    project = moons()
    targets = {t["target"]: t for t in search_targets(project)}
    for name in ("optimizer.type", "optimizer.lr", "training.batch_size", "node:linear_1.out_features"):
        assert name in targets, name
    assert "node:linear_2.out_features" not in targets  # the last layer's width is the number of classes
    assert targets["node:linear_1.out_features"]["current"] == 16
    lr = targets["optimizer.lr"]
    assert lr["kind"] == "float" and lr["log"] and lr["low"] < 0.05 < lr["high"]
    spec = validate_spec(project, {"method": "random", "space": list(targets.values())})  # usable as they are
    assert len(spec["space"]) == len(targets)
    tied = {t["target"] for t in search_targets(residual())}
    assert not any(t.startswith("node:") for t in tied)  # linear_1 and linear_2 meet in an Add


# ---- saved searches ----------------------------------------------------------------------------------------

def test_saved_searches_come_back_newest_first(tmp_path):
    import datetime as dt
    path = tmp_path / "moons.layerloom"
    engine.save_project(path, moons())
    trial = {"number": 0, "params": {"optimizer.lr": 0.01}, "value": 0.3, "state": "complete", "epochs": [0.3],
             "seconds": 0.1, "message": "", "worker": 0}
    older = SearchResult(trials=[trial], best=trial, direction="minimize", metric="val_loss", budget=1,
                         project="moons")
    newer = SearchResult(trials=[trial, {**trial, "number": 1, "value": float("nan"), "state": "failed"}],
                         best=trial, direction="minimize", metric="val_loss", budget=2, project="moons")
    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    first = save_search(older, path, when=when)
    second = save_search(newer, path, when=when + dt.timedelta(seconds=1))
    assert first.parent == second.parent == searches_folder(path) == tmp_path / "runs" / "searches"
    (first.parent / "notes.json").write_text("[1, 2]")  # not a search: passed over
    loaded = load_searches(path)
    assert [r.path for r in loaded] == [second, first]
    assert loaded[0].trials[1]["value"] is None  # NaN is written as null
    assert loaded[1].to_dict() == older.to_dict()
    assert load_searches(tmp_path / "elsewhere" / "other.layerloom") == []


# ---- several processes -------------------------------------------------------------------------------------

def test_two_workers_share_one_budget(tmp_path):
    project = moons(n=200)
    journal = tmp_path / "study.journal"
    seen = []
    result = run_search(project, {"method": "random", "trials": 6, "epochs": 2, "prune": False, "space": [LR]},
                        workers=2, storage_path=journal, on_trial=seen.append)
    assert [t["number"] for t in result.trials] == list(range(6))  # the union of both workers, within the budget
    assert sorted(t["number"] for t in seen) == list(range(6))
    assert all(t["state"] == "complete" for t in result.trials)
    assert {t["worker"] for t in result.trials} == {0, 1}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert [(w["worker"], w["threads"]) for w in result.workers] == [(0, max(1, cores // 2)), (1, max(1, cores // 2))]
    assert len({w["pid"] for w in result.workers} | {os.getpid()}) == 3
    assert journal.is_file() and journal.stat().st_size > 0


# ---- the command -------------------------------------------------------------------------------------------

def layerloom(*args, cwd):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=300, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_search_prints_trials_saves_and_applies_the_best(tmp_path):
    path = tmp_path / "moons.layerloom"
    engine.save_project(path, moons(search={"method": "grid", "space": [
        {"target": "node:linear_1.out_features", "kind": "choice", "values": [4, 24]},
        {"target": "optimizer.lr", "kind": "choice", "values": [1e-5, 0.05]}]}))
    before = path.read_text()
    r = layerloom("search", path, "--epochs", 2, "--seed", 1, "-o", tmp_path / "best.layerloom", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "searching moons: grid, 4 trials of 2 epochs"
    trial_lines = [line for line in lines if line.startswith("trial ")]
    assert len(trial_lines) == 4 and all(" s  node:linear_1.out_features=" in line for line in trial_lines)
    assert "4 trials in" in r.stdout and "best: trial" in r.stdout
    saved = load_searches(path)
    assert len(saved) == 1 and f"saved: {saved[0].path}" in r.stdout
    best = saved[0].best
    assert best["params"]["optimizer.lr"] == 0.05  # 1e-5 cannot learn in 2 epochs
    written = engine.load_project(tmp_path / "best.layerloom")
    assert written.graph.nodes["linear_1"].params["out_features"] == best["params"]["node:linear_1.out_features"]
    assert written.optimizer["params"]["lr"] == 0.05
    assert path.read_text() == before  # -o leaves the project itself alone


def test_cli_search_errors_are_one_clear_line(tmp_path):
    path = tmp_path / "plain.layerloom"
    engine.save_project(path, moons())
    r = layerloom("search", path, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("layerloom: cannot search: this project has no search settings")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"space": [{"target": "optimizer.lr", "kind": "float", "low": 1, "high": 0.1}]}))
    r = layerloom("search", path, "--spec", spec, cwd=tmp_path)
    assert r.returncode == 1 and "low (1) is above high (0.1): swap them" in r.stderr
    r = layerloom("search", tmp_path / "missing.layerloom", cwd=tmp_path)
    assert r.returncode == 2 and "cannot open the project" in r.stderr
    assert not (tmp_path / "runs").exists()
