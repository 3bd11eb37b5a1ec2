"""Hyper-parameter search: try many settings of a project (learning rate, batch size, layer sizes ...) with Optuna
and keep the best.

The search is plain data kept in the project file under the top-level key "search" (`Project.extra["search"]`)::

    {"method": "bayes", "trials": 20, "seed": 0, "epochs": 3, "metric": "auto", "direction": "auto",
     "prune": true,
     "space": [{"target": "optimizer.lr", "kind": "float", "low": 1e-4, "high": 0.1, "log": true},
               {"target": "training.batch_size", "kind": "choice", "values": [16, 32, 64]},
               {"target": "node:linear_1.out_features", "kind": "int", "low": 16, "high": 128, "step": 16}]}

method: bayes (Optuna's TPE sampler), random or grid. trials: the budget, shared by all worker processes (a grid
defaults to the whole grid). epochs: epochs per trial, replacing training.epochs. metric: val_loss, val_acc, loss,
acc, mae, r2 ... (auto: val_loss when the data has a validation split, else loss); direction: auto (maximise
accuracy and R², minimise the rest), minimize or maximize. prune: stop hopeless trials early (Optuna's
MedianPruner: after `startup_trials` complete trials, a trial whose figure after an epoch is worse than the median
of the others at that epoch stops), true, false or {"startup_trials": 3, "warmup_epochs": 0}.

Targets: optimizer.<parameter> (and optimizer.type), training.<parameter> (batch_size, lr, l1, grad_clip,
shuffle, seed), schedule.<parameter> (and schedule.type, null for none), node:<node id>.<parameter>. Kinds: float
(low, high, optional log, step, and n: the number of points a grid takes), int (low, high, optional step, log, n)
and choice (values). A parameter of some optimizers only (SGD's momentum, with optimizer.type searched) is used
only in the trials of those; a grid then tries each distinct combination once (queued trials, since Optuna's
GridSampler knows only plain products). `search_targets(project)` lists what can be searched with a sensible
range each; its entries can go into the space as they are (their label, group and current keys are ignored).

`apply_params(project, params)` writes chosen values into a copy of a project; `run_search(project)` runs the
trials (each: apply, `runner.prepare` with the data loaded once, train, report each epoch to Optuna) and returns a
`SearchResult` of plain data; `save_search` / `load_searches` keep finished searches as JSON in
`<project folder>/runs/searches/`. With workers > 1, that many spawned processes (cores // workers torch
threads each, their own copy of the data) share one study and one budget through Optuna's JournalStorage on a
file (no database server); they start their trials together and the result is read back from the shared study.

No Qt; torch and Optuna are imported only when a search runs.
"""
from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import math
import multiprocessing
import os
import queue as queue_module
import random
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .callbacks import Callback
from .errors import DataError, LayerLoomError, SpecError
from .params import BOOL, CHOICE, FLOAT, FLOATS, INT, INT_TUPLE, INTS, PADDING, Param
from .project import Project
from .runs import _plain, _safe_name, _write_json, runs_folder
from .shapes import analyze


class SearchError(SpecError):
    """A search that cannot run as described: a wrong search space, an unknown target, values that break the
    network; the message says what to change."""


METHODS = ("bayes", "random", "grid")
METHOD_ALIASES = {"tpe": "bayes", "bayesian": "bayes", "optuna": "bayes"}
KINDS = ("float", "int", "choice")
SPEC_KEYS = ("method", "trials", "seed", "epochs", "metric", "direction", "prune", "space")
ENTRY_KEYS = {"float": ("target", "kind", "low", "high", "log", "step", "n"),
              "int": ("target", "kind", "low", "high", "log", "step", "n"),
              "choice": ("target", "kind", "values")}
INFO_KEYS = ("label", "group", "current")  # what search_targets adds for people; ignored in a space
METRICS = ("loss", "acc", "mae", "r2")
MAX_TRIALS = 100_000
MAX_GRID = 10_000
MAX_POINTS = 1_000
DEFAULT_TRIALS = 20
DEFAULT_PRUNE = {"startup_trials": 3, "warmup_epochs": 0}
READY_TIMEOUT = 300.0  # seconds a worker waits for the others to be ready before it starts alone
SEARCHES_FOLDER = "searches"
SEARCH_FORMAT = "layerloom-search"

# training settings a search may vary, and why the others may not
TRAINING_TARGETS = ("batch_size", "lr", "l1", "grad_clip", "shuffle", "seed")
TRAINING_REFUSED = {
    "epochs": "the epochs of each trial are the search's own \"epochs\" setting",
    "device": "it changes where the network trains, not what it learns",
    "amp": "it changes how fast the network trains on a GPU, not what it learns",
    "eval_batch_size": "it changes how validation is batched, not what the network learns",
    "channels_last": "it changes the memory layout, not what the network learns",
}
# layer parameters search_targets leaves out: they tie nodes together or describe the data, not capacity
STRUCTURAL = {"dim", "start_dim", "end_dim", "groups", "num_embeddings", "padding_idx", "normalized_dims"}
NOT_OFFERED = {"eps", "mode"}  # a numerical safety margin, and what a plateau schedule watches: not offered

TRIAL_STATES = ("complete", "pruned", "failed")
STOPPED_MESSAGE = "the search was stopped during this trial"


# ---- targets -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Target:
    section: str            # optimizer | training | schedule | node
    name: str               # the parameter ("type" for optimizer.type and schedule.type)
    node: str | None = None

    @property
    def is_type(self) -> bool:
        return self.section in ("optimizer", "schedule") and self.name == "type"


def _parse_target(text: Any) -> _Target:
    how = ("write optimizer.<parameter>, training.<parameter>, schedule.<parameter> or node:<node id>.<parameter>, "
           "e.g. optimizer.lr or node:linear_1.out_features")
    if not isinstance(text, str) or not text.strip():
        raise SearchError(f"a search target must be text: {how}")
    text = text.strip()
    if text.startswith("node:"):
        node, _, name = text[5:].rpartition(".")
        if not node or not name:
            raise SearchError(f"{text!r} names no parameter: {how}")
        return _Target("node", name, node)
    section, _, name = text.partition(".")
    if section not in ("optimizer", "training", "schedule") or not name or "." in name:
        raise SearchError(f"{text!r} is not a search target: {how}")
    return _Target(section, name)


def _spec_of(section: str, type_name: Any):
    """The optimizer or schedule spec of `type_name`; SearchError (with the nearest names) when unknown."""
    from .optimizers import get_optimizer, get_schedule
    try:
        return (get_optimizer if section == "optimizer" else get_schedule)(type_name)
    except SpecError as e:
        raise SearchError(f"{section}.type: {e}") from None


def _types(project: Project, section: str, space_types: dict[str, list]) -> list:
    """The optimizer or schedule types a trial may use: those searched, or the project's own."""
    if f"{section}.type" in space_types:
        return [_spec_of(section, v) for v in space_types[f"{section}.type"] if v is not None]
    current = getattr(project, section)
    if section == "optimizer" and not current:
        current = {"type": "Adam"}  # what runner.prepare uses when no optimizer is chosen
    return [_spec_of(section, current["type"])] if current else []


def _params_of(project: Project, target: _Target, space_types: dict[str, list]) -> list[tuple[str, Param]]:
    """(owner, Param) for each place `target` can land: one per candidate optimizer or schedule type. Raises
    SearchError naming what exists when the target does not."""
    text = target_text(target)
    if target.section == "node":
        nodes = project.graph.nodes
        if target.node not in nodes:
            raise SearchError(f"{text}: there is no node {target.node!r} in the graph; its nodes are: "
                              f"{', '.join(nodes) or 'none'}")
        node = nodes[target.node]
        if node.type == "Input":
            raise SearchError(f"{text}: the Input's shape and type come from the data, so a search cannot vary them")
        params = {p.name: p for p in node.spec.params}
        if target.name not in params:
            raise SearchError(f"{text}: a {node.type} layer has no parameter {target.name!r}; its parameters are: "
                              f"{', '.join(params) or 'none'}")
        return [(f"{target.node} ({node.type})", params[target.name])]
    if target.section == "training":
        from .runner import TRAINING_PARAMS
        if target.name in TRAINING_REFUSED:
            raise SearchError(f"{text} cannot be searched: {TRAINING_REFUSED[target.name]}")
        if target.name not in TRAINING_TARGETS:
            raise SearchError(f"{text}: the training settings a search can vary are: {', '.join(TRAINING_TARGETS)}")
        return [("training", next(p for p in TRAINING_PARAMS if p.name == target.name))]
    specs = _types(project, target.section, space_types)
    if not specs:
        raise SearchError(f"{text}: the project has no learning-rate schedule: choose one first, or search "
                          f"schedule.type as well")
    found = [(s.type, p) for s in specs for p in s.params if p.name == target.name]
    if not found:
        names = sorted({p.name for s in specs for p in s.params})
        kinds = " or ".join(s.type for s in specs)
        raise SearchError(f"{text}: {kinds} has no parameter {target.name!r}; its parameters are: "
                          f"{', '.join(names) or 'none'}")
    return found


def target_text(target: _Target) -> str:
    return f"node:{target.node}.{target.name}" if target.section == "node" else f"{target.section}.{target.name}"


# ---- the spec ----------------------------------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_value(where: str, places: list[tuple[str, Param]], value: Any) -> None:
    for owner, param in places:
        try:
            param.validate(owner, value)
        except LayerLoomError as e:
            raise SearchError(f"{where}: {e}") from None


def _check_entry(i: int, entry: Any, project: Project, space_types: dict[str, list]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise SearchError(f"search space entry {i + 1} must be an object with target and kind, not {entry!r}")
    target = _parse_target(entry.get("target"))
    text = target_text(target)
    where = f"search space entry {i + 1} ({text})"
    kind = entry.get("kind", "choice" if "values" in entry else None)
    if kind not in KINDS:
        raise SearchError(f"{where}: kind must be float, int or choice, not {kind!r}")
    unknown = [k for k in entry if k not in ENTRY_KEYS[kind] and k not in INFO_KEYS]
    if unknown:
        raise SearchError(f"{where}: a {kind} entry has no setting {unknown[0]!r}; its settings are: "
                          f"{', '.join(ENTRY_KEYS[kind][2:])}")
    out: dict[str, Any] = {"target": text, "kind": kind}
    if target.is_type:
        if kind != "choice":
            raise SearchError(f"{where}: the {target.section} type is a name: use kind choice with values, e.g. "
                              f"{['Adam', 'SGD'] if target.section == 'optimizer' else ['cosine', None]}")
        values = _choice_values(where, entry)
        canonical = []
        for v in values:
            if v is None and target.section == "schedule":
                canonical.append(None)
            elif isinstance(v, str):
                canonical.append(_spec_of(target.section, v).type)
            else:
                raise SearchError(f"{where}: {v!r} is not a {target.section} name")
        if len(set(canonical)) != len(canonical):
            raise SearchError(f"{where}: values name the same {target.section} twice")
        out["values"] = canonical
        return out
    places = _params_of(project, target, space_types)
    pkind = places[0][1].kind
    if pkind in (INTS, FLOATS):
        raise SearchError(f"{where}: {target.name} is a list of numbers, which a search cannot vary; search a "
                          f"single number instead")
    if kind == "choice":
        values = _choice_values(where, entry)
        for v in values:
            _check_value(where, places, v)
        out["values"] = values
        return out
    if pkind in (BOOL, CHOICE):
        example = "[false, true]" if pkind == BOOL else json.dumps(list(places[0][1].choices))
        raise SearchError(f"{where}: {target.name} is not a number: use kind choice with values such as {example}")
    if kind == "float" and pkind in (INT, INT_TUPLE, PADDING):
        raise SearchError(f"{where}: {target.name} is a whole number: use kind int")
    low, high = entry.get("low"), entry.get("high")
    number = _is_int if kind == "int" else _is_number
    what = "whole numbers" if kind == "int" else "numbers"
    if not number(low) or not number(high):
        raise SearchError(f"{where}: low and high must be {what}, not {low!r} and {high!r}")
    if low > high:
        raise SearchError(f"{where}: low ({low:g}) is above high ({high:g}): swap them")
    if low == high:
        raise SearchError(f"{where}: low and high are both {low:g}: a range needs two different ends (to fix a "
                          f"value, set it in the project instead)")
    for v in (low, high):
        _check_value(where, places, v)
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise SearchError(f"{where}: log must be true or false, not {log!r}")
    if log and low <= 0:
        raise SearchError(f"{where}: a log scale needs low above 0 (e.g. {1 if kind == 'int' else 1e-5}), "
                          f"not {low:g}")
    step = entry.get("step")
    if step is not None:
        if not number(step) or step <= 0:
            raise SearchError(f"{where}: step must be a {'whole ' if kind == 'int' else ''}number above 0, "
                              f"not {step!r}")
        if log and step != 1:
            raise SearchError(f"{where}: a log scale and a step cannot be combined: drop one of them")
        ratio = (high - low) / step
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, abs(ratio)):
            raise SearchError(f"{where}: high − low ({high - low:g}) must be a multiple of step ({step:g})")
    n = entry.get("n")
    if n is not None and (not _is_int(n) or not 2 <= n <= MAX_POINTS):
        raise SearchError(f"{where}: n (the number of grid points) must be a whole number from 2 to {MAX_POINTS}, "
                          f"not {n!r}")
    out.update(low=low, high=high, log=log)
    if step is not None:
        out["step"] = step
    if n is not None:
        out["n"] = n
    return out


def _choice_values(where: str, entry: dict[str, Any]) -> list:
    values = entry.get("values")
    if not isinstance(values, list) or not values:
        raise SearchError(f"{where}: a choice needs a non-empty list of values, e.g. \"values\": [16, 32, 64]")
    seen = []
    for v in values:
        if not (v is None or isinstance(v, (bool, str)) or _is_number(v)):
            raise SearchError(f"{where}: each value must be a number, text, true/false or null, not {v!r}")
        if any(v == s and type(v) is type(s) for s in seen):
            raise SearchError(f"{where}: values holds {v!r} twice")
        seen.append(v)
    return list(values)


def grid_values(entry: dict[str, Any]) -> list:
    """The values a grid search takes for one checked space entry: a choice's values, every step of an int range
    (or n points), n points (or every step) of a float range."""
    if entry["kind"] == "choice":
        return list(entry["values"])
    low, high, log, step, n = entry["low"], entry["high"], entry.get("log"), entry.get("step"), entry.get("n")
    if n is not None:
        if log:
            points = [low * (high / low) ** (i / (n - 1)) for i in range(n)]
        else:
            points = [low + (high - low) * i / (n - 1) for i in range(n)]
        points[0], points[-1] = low, high
        if entry["kind"] == "int":
            if step:
                points = [low + round((p - low) / step) * step for p in points]
            return sorted({int(round(p)) for p in points})
        return [float(f"{p:.12g}") for p in points]
    if entry["kind"] == "int":
        count = (high - low) // (step or 1) + 1
        if count > MAX_GRID:
            raise SearchError(f"{entry['target']}: the grid would take {count:,} values: give \"n\" (how many points "
                              f"between low and high) or a larger step")
        return list(range(low, high + 1, step or 1))
    if step is None:
        raise SearchError(f"{entry['target']}: a grid needs a finite list of values, and a float range has "
                          f"endless ones: give \"n\" (how many points between low and high) or a \"step\"")
    count = int(round((high - low) / step)) + 1
    if count > MAX_GRID:
        raise SearchError(f"{entry['target']}: the grid would take {count:,} values: give a larger step or \"n\"")
    return [float(f"{low + i * step:.12g}") for i in range(count)]


def grid_combinations(project: Project, space: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every combination a grid search tries over a checked space, in order. A parameter that the combination's
    optimizer or schedule type does not have is left out (SGD's momentum in an Adam trial), and combinations that
    then coincide are tried once."""
    values = [grid_values(e) for e in space]
    size = math.prod(len(v) for v in values)
    if size > MAX_GRID:
        raise SearchError(f"the grid holds {size:,} combinations, too many to try: use fewer values or the random "
                          f"or bayes method")
    targets = [(e["target"], _parse_target(e["target"])) for e in space]
    known: dict[tuple, bool] = {}

    def applies(target: _Target, chosen: dict[str, Any]) -> bool:
        key = (target, chosen.get(f"{target.section}.type", "?"))
        if key not in known:
            known[key] = _applies(target, chosen, project)
        return known[key]

    out, seen = [], set()
    for combo in itertools.product(*values):
        chosen = {name: v for (name, t), v in zip(targets, combo) if t.is_type}
        params = {name: v for (name, t), v in zip(targets, combo) if t.is_type or applies(t, chosen)}
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(params)
    return out


def validate_spec(project: Project, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The search spec (`spec`, or the project's "search" section) checked against the project and completed with
    the defaults. Every problem raises SearchError saying what to write instead."""
    if spec is None:
        spec = project.extra.get("search")
    if spec is None:
        raise SearchError("this project has no search settings: add a \"search\" section with a \"space\" list, "
                          "e.g. {\"space\": [{\"target\": \"optimizer.lr\", \"kind\": \"float\", \"low\": 0.0001, "
                          "\"high\": 0.1, \"log\": true}]}")
    if not isinstance(spec, dict):
        raise SearchError(f"the search settings must be an object, not {spec!r}")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise SearchError(f"the search settings have no {unknown[0]!r}; they are: {', '.join(SPEC_KEYS)}")
    method = spec.get("method", "bayes")
    method = METHOD_ALIASES.get(str(method).lower(), str(method).lower()) if isinstance(method, str) else method
    if method not in METHODS:
        raise SearchError(f"search method must be bayes, random or grid, not {spec.get('method')!r}")
    seed = spec.get("seed", 0)
    if not _is_int(seed) or seed < 0:
        raise SearchError(f"search seed must be a whole number from 0, not {seed!r}")
    epochs = spec.get("epochs")
    if epochs is not None and (not _is_int(epochs) or not 1 <= epochs <= 1_000_000):
        raise SearchError(f"search epochs (per trial) must be a whole number from 1, not {epochs!r}")
    metric = spec.get("metric", "auto")
    if metric != "auto" and metric not in METRICS and metric not in tuple(f"val_{m}" for m in METRICS):
        raise SearchError(f"search metric must be auto, loss, acc, mae, r2 or one of them on the validation split "
                          f"(val_loss, val_acc, val_mae, val_r2), not {metric!r}")
    direction = spec.get("direction", "auto")
    direction = {"min": "minimize", "max": "maximize"}.get(direction, direction) if isinstance(direction, str) \
        else direction
    if direction not in ("auto", "minimize", "maximize"):
        raise SearchError(f"search direction must be auto, minimize or maximize, not {spec.get('direction')!r}")
    prune = spec.get("prune", True)
    if prune is True:
        prune = dict(DEFAULT_PRUNE)
    elif isinstance(prune, dict):
        bad = [k for k in prune if k not in DEFAULT_PRUNE]
        if bad:
            raise SearchError(f"search prune has no setting {bad[0]!r}; its settings are: startup_trials, "
                              f"warmup_epochs")
        prune = {**DEFAULT_PRUNE, **prune}
        for k, v in prune.items():
            if not _is_int(v) or v < 0:
                raise SearchError(f"search prune {k} must be a whole number from 0, not {v!r}")
    elif prune is not False:
        raise SearchError(f"search prune must be true, false or {{\"startup_trials\": 3, \"warmup_epochs\": 0}}, "
                          f"not {prune!r}")
    space = spec.get("space")
    if not isinstance(space, list) or not space:
        raise SearchError("the search space is empty: add at least one entry to \"space\", e.g. {\"target\": "
                          "\"optimizer.lr\", \"kind\": \"float\", \"low\": 0.0001, \"high\": 0.1, \"log\": true}")
    # the optimizer and schedule types first: whether the other entries exist depends on them
    order = sorted(range(len(space)), key=lambda i: not (isinstance(space[i], dict) and str(
        space[i].get("target", "")).strip() in ("optimizer.type", "schedule.type")))
    entries: list[dict[str, Any] | None] = [None] * len(space)
    space_types: dict[str, list] = {}
    for i in order:
        entry = _check_entry(i, space[i], project, space_types)
        if any(e is not None and e["target"] == entry["target"] for e in entries):
            raise SearchError(f"the search space names {entry['target']} twice: keep one entry per target")
        if entry["target"] in ("optimizer.type", "schedule.type"):
            space_types[entry["target"]] = entry["values"]
        entries[i] = entry
    space = [e for e in entries if e is not None]
    grid_size = len(grid_combinations(project, space)) if method == "grid" else None
    trials = spec.get("trials", grid_size if grid_size is not None else DEFAULT_TRIALS)
    if not _is_int(trials) or not 1 <= trials <= MAX_TRIALS:
        raise SearchError(f"search trials must be a whole number from 1 to {MAX_TRIALS:,}, not {trials!r}")
    if grid_size is not None:
        trials = min(trials, grid_size)
    return {"method": method, "trials": trials, "seed": seed, "epochs": epochs, "metric": metric,
            "direction": direction, "prune": prune, "space": space}


# ---- applying values ---------------------------------------------------------------------------------------

def copy_project(project: Project) -> Project:
    """An independent copy of a project (its graph and every section), sharing nothing with the original."""
    return Project.from_dict(copy.deepcopy(project.to_dict()))


def _applies(target: _Target, chosen: dict[str, Any], project: Project) -> bool:
    """Whether an optimizer or schedule parameter exists for the type a trial uses (SGD's momentum does not
    apply to an Adam trial); node and training targets always apply."""
    if target.section not in ("optimizer", "schedule") or target.is_type:
        return True
    key = f"{target.section}.type"
    if key in chosen:
        type_name = chosen[key]
    else:
        section = getattr(project, target.section) or ({"type": "Adam"} if target.section == "optimizer" else None)
        type_name = section["type"] if section else None
    if type_name is None:
        return False
    return any(p.name == target.name for p in _spec_of(target.section, type_name).params)


def apply_params(project: Project, params: dict[str, Any]) -> Project:
    """A new Project (a deep copy; `project` is left as it was) with `params` ({target: value}, targets as in a
    search space) written in. Changing optimizer.type keeps the parameters the new optimizer shares with the old
    (lr ...). Raises SearchError when a target is unknown, a value is refused, or the values together break the
    network (checked with shapes.analyze)."""
    if not isinstance(params, dict):
        raise SearchError(f"the values to apply must be a mapping of targets to values, not {params!r}")
    new = copy_project(project)
    parsed = [(_parse_target(k), v) for k, v in params.items()]
    parsed.sort(key=lambda tv: not tv[0].is_type)
    sections_changed = set()
    for target, value in parsed:
        text = target_text(target)
        if not (value is None or isinstance(value, (bool, str)) or _is_number(value)):
            raise SearchError(f"{text}: a value must be a number, text, true/false or null, not {value!r}")
        if target.section == "node":
            node = new.graph.nodes.get(target.node)
            if node is None:
                raise SearchError(f"{text}: there is no node {target.node!r} in the graph")
            if node.type == "Input":
                raise SearchError(f"{text}: the Input's shape and type come from the data")
            try:
                new.graph.set_params(target.node, {target.name: value})
            except LayerLoomError as e:
                raise SearchError(f"{text} = {value!r}: {e}") from None
            continue
        if target.section == "training":
            (owner, param), = _params_of(new, target, {})
            _check_value(f"{text} = {value!r}", [(owner, param)], value)
            new.training = dict(new.training or {})
            new.training[target.name] = value
            continue
        section = target.section
        current = getattr(new, section)
        if section == "optimizer" and not current:
            current = {"type": "Adam", "params": {}}
        if target.is_type:
            if value is None:
                if section == "optimizer":
                    raise SearchError("optimizer.type: a network needs an optimizer; name one, e.g. Adam")
                new.schedule = None
            else:
                spec = _spec_of(section, value)
                names = {p.name for p in spec.params}
                kept = {k: v for k, v in ((current or {}).get("params") or {}).items() if k in names}
                setattr(new, section, {"type": spec.type, "params": kept})
            sections_changed.add(section)
            continue
        if not current:
            raise SearchError(f"{text}: the project has no learning-rate schedule: choose one first")
        spec = _spec_of(section, current["type"])
        param = next((p for p in spec.params if p.name == target.name), None)
        if param is None:
            raise SearchError(f"{text}: {spec.type} has no parameter {target.name!r}; its parameters are: "
                              f"{', '.join(p.name for p in spec.params)}")
        _check_value(f"{text} = {value!r}", [(spec.type, param)], value)
        setattr(new, section, {"type": spec.type, "params": {**(current.get("params") or {}), target.name: value}})
        sections_changed.add(section)
    # rules that tie several values together (SGD's nesterov needs momentum ...), once all are in
    for section in sections_changed:
        current = getattr(new, section)
        if current:
            try:
                _spec_of(section, current["type"]).validate_params(current.get("params") or {})
            except LayerLoomError as e:
                raise SearchError(f"these values do not work together: {e}") from None
    if any(t.section == "training" for t, _ in parsed):
        from .runner import training_config
        try:
            training_config(new.training)
        except LayerLoomError as e:
            raise SearchError(f"these training values do not work together: {e}") from None
    analysis = analyze(new.graph)
    if not analysis.ok:
        problems = "; ".join(f"{e.node_id}: {e.error}" for e in analysis.errors) or "the graph is empty"
        shown = ", ".join(f"{k} = {v!r}" for k, v in params.items())
        raise SearchError(f"these values break the network ({shown}): {problems}")
    return new


# ---- what can be searched ----------------------------------------------------------------------------------

def _round(v: float) -> float:
    return float(f"{v:.3g}")


def _number_range(param: Param, current: Any, section: str) -> dict[str, Any] | None:
    """A sensible default range for a number parameter of `section` (optimizer, training, schedule or node) around
    its current value."""
    name = param.name
    if param.kind == FLOAT:
        if name in ("p", "dropout"):
            return {"kind": "float", "low": 0.0, "high": 0.5}
        if name == "lr":
            cur = current if _is_number(current) and current > 0 else 1e-3
            return {"kind": "float", "low": _round(min(1e-4, cur / 3)), "high": _round(max(0.1, cur * 3)), "log": True}
        if name == "weight_decay":
            return {"kind": "float", "low": 1e-6, "high": 1e-2, "log": True}
        if name == "momentum" and section == "optimizer":
            return {"kind": "float", "low": 0.0, "high": 0.99}
        if name == "l1":
            return {"kind": "float", "low": 1e-6, "high": 1e-3, "log": True}
        if name == "grad_clip":
            return {"kind": "float", "low": 0.1, "high": 10.0, "log": True}
        if _is_number(current) and current > 0:
            low, high = current / 10, current * 10
            if param.max is not None:
                high = min(high, param.max)
            if param.min is not None:
                low = max(low, param.min)
            return {"kind": "float", "low": _round(low), "high": _round(high), "log": low > 0} if low < high else None
        if param.min is not None and param.max is not None:
            return {"kind": "float", "low": param.min, "high": _round(param.min + (param.max - param.min) / 2)}
        return None
    if param.kind == INT:
        if not _is_int(current):
            return None
        lo = int(param.min) if param.min is not None else 1
        hi = int(param.max) if param.max is not None else 1_000_000
        if current >= 8:
            low, high, log = max(lo, current // 4), min(hi, current * 4), True
        else:
            low, high, log = max(lo, 1), min(hi, max(current * 2, current + 2)), False
        return {"kind": "int", "low": low, "high": high, "log": log} if low < high else None
    return None


def _section_targets(project: Project, section: str) -> list[dict[str, Any]]:
    from .optimizers import all_optimizers
    out: list[dict[str, Any]] = []
    current = getattr(project, section)
    if section == "optimizer":
        current = current or {"type": "Adam", "params": {}}
        values = ["Adam", "AdamW", "SGD"]
        if current["type"] not in values and current["type"] in {s.type for s in all_optimizers()}:
            values.append(current["type"])
        out.append({"target": "optimizer.type", "kind": "choice", "values": values, "group": "optimizer",
                    "label": "optimizer", "current": current["type"]})
    if not current:
        return out
    spec = _spec_of(section, current["type"])
    values = spec.validate_params(current.get("params") or {})
    for param in spec.params:
        if param.name in NOT_OFFERED:
            continue
        entry: dict[str, Any] | None
        if param.kind == BOOL:
            entry = {"kind": "choice", "values": [False, True]}
        elif param.kind == CHOICE:
            entry = {"kind": "choice", "values": list(param.choices)}
        else:
            entry = _number_range(param, values.get(param.name), section)
        entry = _fitted(entry, lambda v, name=param.name: spec.validate_params({**values, name: v}))
        if entry is None:
            continue
        out.append({"target": f"{section}.{param.name}", **entry, "group": section,
                    "label": f"{param.name} ({spec.type}): {param.doc}", "current": values.get(param.name)})
    return out


def _fitted(entry: dict[str, Any] | None, check: Callable[[Any], Any]) -> dict[str, Any] | None:
    """`entry` with the ends of a range moved inwards (a tenth at a time) until `check` accepts them, e.g. a
    one-cycle pct_start below 1; a choice keeps the values `check` accepts. None when nothing is left."""
    def ok(v) -> bool:
        try:
            check(v)
        except LayerLoomError:
            return False
        return True
    if entry is None:
        return None
    if entry["kind"] == "choice":
        values = [v for v in entry["values"] if ok(v)]
        return {**entry, "values": values} if len(values) > 1 else None
    low, high = entry["low"], entry["high"]
    for _ in range(10):
        if ok(low) and ok(high):
            return {**entry, "low": low, "high": high}
        span = (high - low) / 10
        if not ok(low):
            low = low + span if entry["kind"] == "float" else low + max(1, int(span))
        if not ok(high):
            high = high - span if entry["kind"] == "float" else high - max(1, int(span))
        if entry["kind"] == "float":
            low, high = _round(low), _round(high)
        if low >= high:
            return None
    return None


def _range_fits(entry: dict[str, Any], places: list[tuple[str, Param]]) -> bool:
    ends = entry["values"] if entry["kind"] == "choice" else (entry["low"], entry["high"])
    try:
        for v in ends:
            for owner, param in places:
                param.validate(owner, v)
    except LayerLoomError:
        return False
    return True


def search_targets(project: Project) -> list[dict[str, Any]]:
    """What a search can vary in this project, each as a ready space entry with a sensible default range:
    {"target", "kind", "low"/"high"/"log" or "values", "group" (optimizer, training, schedule or node), "label"
    (for people), "current" (the project's value)}. Layer sizes are offered only where changing them alone keeps
    the network working and its output the same shape (the width of a hidden Linear, not of the last one)."""
    from .runner import TRAINING_PARAMS
    out = _section_targets(project, "optimizer")
    training = project.training or {}
    batch = training.get("batch_size", 32)
    sizes = sorted({16, 32, 64, 128} | ({batch} if _is_int(batch) and batch > 0 else set()))
    out.append({"target": "training.batch_size", "kind": "choice", "values": sizes, "group": "training",
                "label": "batch size: samples per step", "current": batch})
    for name in ("l1", "grad_clip"):
        param = next(p for p in TRAINING_PARAMS if p.name == name)
        entry = _number_range(param, training.get(name, param.default), "training")
        if entry:
            out.append({"target": f"training.{name}", **entry, "group": "training", "label": f"{name}: {param.doc}",
                        "current": training.get(name, param.default)})
    out += _section_targets(project, "schedule")
    graph = project.graph.copy()
    base = analyze(graph)
    sinks = {nid: base.nodes[nid].shape for nid in graph.sink_nodes()} if base.ok else {}
    for nid, node in project.graph.nodes.items():
        if node.type == "Input":
            continue
        for param in node.spec.params:
            if param.kind not in (INT, FLOAT) or param.name in STRUCTURAL or param.name in NOT_OFFERED:
                continue
            entry = _number_range(param, node.params.get(param.name), "node")
            if entry is None or not _range_fits(entry, [(nid, param)]):
                continue
            if param.kind == INT and not _keeps_network(graph, nid, param.name, node.params[param.name],
                                                         (entry["low"], entry["high"]), sinks):
                continue
            out.append({"target": f"node:{nid}.{param.name}", **entry, "group": "node",
                        "label": f"{nid} ({node.type}): {param.name}", "current": node.params.get(param.name)})
    return out


def _keeps_network(graph, nid: str, name: str, current: Any, values: tuple, sinks: dict) -> bool:
    """Whether setting `name` of node `nid` to each of `values` alone keeps the graph valid with the same output
    shapes (tried on `graph`, put back afterwards)."""
    if not sinks:
        return False
    try:
        for v in values:
            graph.set_params(nid, {name: v})
            analysis = analyze(graph)
            if not analysis.ok or any(analysis.nodes[s].shape != shape for s, shape in sinks.items()):
                return False
        return True
    except LayerLoomError:
        return False
    finally:
        graph.set_params(nid, {name: current})


# ---- results -----------------------------------------------------------------------------------------------

@dataclass
class SearchResult:
    """A finished (or stopped) search as plain data. `trials`: one dict per trial, in trial-number order:
    {"number", "params", "value", "state" (complete, pruned or failed), "epochs" (the metric after each epoch),
    "seconds", "message", "worker"}; `best`: the best complete trial (None when none completed)."""

    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    direction: str
    metric: str
    method: str = "bayes"
    budget: int = 0
    spec: dict[str, Any] = field(default_factory=dict)
    project: str = ""
    seconds: float = 0.0
    stopped: bool = False
    workers: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    saved_at: float | None = None
    path: Path | None = None     # where save_search wrote it, or load_searches read it

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for t in self.trials if t["state"] == s) for s in TRIAL_STATES}

    def to_dict(self) -> dict[str, Any]:
        return _plain({"format": SEARCH_FORMAT, "version": 1, "project": self.project, "method": self.method,
                       "metric": self.metric, "direction": self.direction, "budget": self.budget,
                       "seconds": self.seconds, "stopped": self.stopped, "spec": self.spec, "best": self.best,
                       "trials": self.trials, "workers": self.workers, "notes": self.notes,
                       "saved_at": self.saved_at})

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path | None = None) -> SearchResult:
        if not isinstance(d, dict) or d.get("format") != SEARCH_FORMAT or not isinstance(d.get("trials"), list):
            raise SearchError("this is not a saved LayerLoom search")
        return cls(trials=list(d["trials"]), best=d.get("best"), direction=str(d.get("direction", "minimize")),
                   metric=str(d.get("metric", "loss")), method=str(d.get("method", "")),
                   budget=int(d.get("budget") or 0), spec=dict(d.get("spec") or {}), project=str(d.get("project", "")),
                   seconds=float(d.get("seconds") or 0.0), stopped=bool(d.get("stopped")),
                   workers=list(d.get("workers") or []), notes=list(d.get("notes") or []),
                   saved_at=d.get("saved_at"), path=path)


def best_trial(trials: list[dict[str, Any]], direction: str) -> dict[str, Any] | None:
    done = [t for t in trials if t["state"] == "complete" and _is_number(t.get("value"))]
    if not done:
        return None
    sign = 1 if direction == "minimize" else -1
    return min(done, key=lambda t: (sign * t["value"], t["number"]))


# ---- one trial ---------------------------------------------------------------------------------------------

class _TrialWatch(Callback):
    """Reports the metric to Optuna after each epoch, stops a trial Optuna prunes, and stops when asked."""

    def __init__(self, trial, metric: str, epochs: int, prune: bool, should_stop: Callable[[], bool]):
        self.trial, self.metric, self.epochs, self.prune, self.should_stop = trial, metric, epochs, prune, should_stop
        self.values: list[float | None] = []
        self.pruned = self.stopped = False

    def on_train_batch_start(self, trainer, logs):
        if not self.stopped and self.should_stop():
            self.stopped = True
            trainer.request_stop("the search was stopped")

    def on_train_epoch_end(self, trainer, logs):
        value = logs.get(self.metric)
        value = float(value) if _is_number(value) else None
        self.values.append(value)
        epoch = int(logs["epoch"])
        if value is not None:
            self.trial.report(value, epoch)
        if epoch >= self.epochs:
            return
        if self.prune and value is not None and self.trial.should_prune():
            self.pruned = True
            trainer.request_stop(f"pruned after epoch {epoch}", finished=True)
        elif self.should_stop():
            self.stopped = True
            trainer.request_stop("the search was stopped")


def _suggest(trial, space: list[dict[str, Any]], project: Project) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for entry in space:
        target = _parse_target(entry["target"])
        if not _applies(target, params, project):
            continue
        name = entry["target"]
        if entry["kind"] == "choice":
            params[name] = trial.suggest_categorical(name, entry["values"])
        elif entry["kind"] == "int":
            params[name] = trial.suggest_int(name, entry["low"], entry["high"], step=entry.get("step") or 1,
                                             log=entry.get("log", False))
        else:
            params[name] = trial.suggest_float(name, entry["low"], entry["high"], step=entry.get("step"),
                                               log=entry.get("log", False))
    return params


def _run_trial(trial, project: Project, spec: dict[str, Any], metric: str, bundle: Any, base_dir: str | None,
               should_stop: Callable[[], bool], worker: int) -> dict[str, Any]:
    from .runner import prepare
    t0 = time.perf_counter()
    record: dict[str, Any] = {"number": trial.number, "params": {}, "value": None, "state": "failed", "epochs": [],
                              "seconds": 0.0, "message": "", "worker": worker}
    watch = None
    try:
        params = _suggest(trial, spec["space"], project)
        record["params"] = params
        candidate = apply_params(project, params)
        candidate.training.pop("checkpoint_dir", None)  # trials are thrown away: no checkpoints
        epochs = spec["epochs"] or int((candidate.training or {}).get("epochs", 10))
        watch = _TrialWatch(trial, metric, epochs, bool(spec["prune"]), should_stop)
        run = prepare(candidate, {"epochs": epochs}, callbacks=[watch], bundle=bundle, base_dir=base_dir)
        result = run.trainer.fit(run.data)
        del run
        record["epochs"] = list(watch.values)
        last = next((v for v in reversed(watch.values) if v is not None), None)
        if watch.stopped:
            record.update(state="failed", value=last, message=STOPPED_MESSAGE)
        elif result.status == "failed":
            record.update(state="failed", message=result.message)
        elif watch.pruned:
            record.update(state="pruned", value=last,
                          message=f"pruned after epoch {len(watch.values)}: its {metric} was worse than the "
                                  f"median of the other trials")
        elif not watch.values or watch.values[-1] is None:
            record.update(state="failed", message=f"training gave no {metric} to compare")
        else:
            record.update(state="complete", value=watch.values[-1])
    except LayerLoomError as e:
        record.update(state="failed", message=str(e))
    except Exception as e:  # a step that raised inside torch, a model too large ...: this trial fails, not the search
        record.update(state="failed", message=f"{type(e).__name__}: {e}")
    if watch is not None and not record["epochs"]:
        record["epochs"] = list(watch.values)
    record["seconds"] = round(time.perf_counter() - t0, 4)
    return _plain(record)


class _TrialFailed(Exception):
    """Raised to Optuna so it records the trial as failed (its message is in the trial's record)."""


def _optimize(study, project: Project, spec: dict[str, Any], metric: str, bundle: Any, base_dir: str | None,
              report: Callable[[dict], None], should_stop: Callable[[], bool], worker: int) -> None:
    import optuna
    budget = spec["trials"]

    def objective(trial):
        if trial.number >= budget or should_stop():
            trial.set_user_attr("skipped", True)  # past the shared budget, or stopped: not part of the result
            study.stop()
            raise optuna.TrialPruned()
        record = _run_trial(trial, project, spec, metric, bundle, base_dir, should_stop, worker)
        trial.set_user_attr("record", record)
        report(record)
        if record["state"] == "pruned":
            raise optuna.TrialPruned()
        if record["state"] == "failed":
            if record["message"] == STOPPED_MESSAGE:
                study.stop()
            raise _TrialFailed(record["message"])
        return record["value"]

    study.optimize(objective, n_trials=budget, catch=(_TrialFailed,))


def _grid_plan(project: Project, spec: dict[str, Any]) -> list[dict[str, Any]] | None:
    """For a grid whose parameters depend on the optimizer or schedule type (which Optuna's GridSampler, made for
    plain products, would repeat): the combinations to queue, in a seeded order, within the budget. None for a
    plain grid, which the GridSampler covers."""
    if spec["method"] != "grid":
        return None
    combos = grid_combinations(project, spec["space"])
    if len(combos) == math.prod(len(grid_values(e)) for e in spec["space"]):
        return None
    random.Random(spec["seed"]).shuffle(combos)
    return combos[:spec["trials"]]


def _sampler(spec: dict[str, Any], worker: int, queued: bool = False):
    import optuna
    seed = spec["seed"] + 7919 * worker  # each worker its own stream: equal seeds would try the same values
    if spec["method"] == "grid" and not queued:
        return optuna.samplers.GridSampler({e["target"]: grid_values(e) for e in spec["space"]}, seed=spec["seed"])
    if spec["method"] in ("random", "grid"):  # a queued grid's trials have all their values fixed already
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(3, min(10, spec["trials"] // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def _pruner(spec: dict[str, Any]):
    import optuna
    if not spec["prune"]:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=spec["prune"]["startup_trials"],
                                       n_warmup_steps=spec["prune"]["warmup_epochs"], interval_steps=1)


def _journal(path: str):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def _quiet_optuna():
    import optuna
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return level


# ---- worker processes --------------------------------------------------------------------------------------

def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _worker_main(job: dict[str, Any], messages, stop, ready) -> None:
    """One worker process: its own torch threads, its own copy of the data, the shared study. The workers start
    their trials together (`ready`, a barrier), so one that took longer to start still gets its share."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops the search
    worker = job["worker"]
    try:
        import optuna
        import torch
        torch.set_num_threads(job["threads"])
        _quiet_optuna()
        from .data import load_data
        from .runner import prepare
        project = Project.from_dict(job["project"])
        bundle = load_data(project.data, base_dir=job["base_dir"]) if project.data else None
        # a first model and optimizer outside any trial: the one-off imports they cost (a second or more) would
        # otherwise count as the first trial's time
        warm = copy_project(project)
        warm.training.pop("checkpoint_dir", None)
        prepare(warm, {"epochs": 1}, bundle=bundle, base_dir=job["base_dir"])
        study = optuna.load_study(study_name=job["study"], storage=_journal(job["storage"]),
                                  sampler=_sampler(job["spec"], worker, job["queued"]), pruner=_pruner(job["spec"]))
        try:
            ready.wait(timeout=READY_TIMEOUT)
        except threading.BrokenBarrierError:  # a worker failed to start: the others go on without it
            pass
        _optimize(study, project, job["spec"], job["metric"], bundle, job["base_dir"], messages.put, stop.is_set,
                  worker)
        messages.put({"_done": worker, "threads": torch.get_num_threads(), "pid": os.getpid()})
    except BaseException as e:  # noqa: BLE001 - whatever ends a worker is reported to the parent in words
        text = str(e) if isinstance(e, LayerLoomError) else f"{type(e).__name__}: {e}"
        messages.put({"_error": worker, "message": text, "pid": os.getpid()})


def _run_workers(project: Project, spec: dict[str, Any], metric: str, study_name: str, storage: str,
                 base_dir: str | None, workers: int, queued: bool, on_trial, should_stop,
                 notes: list[str]) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked torch threads
    messages, stop, ready = ctx.Queue(), ctx.Event(), ctx.Barrier(workers)
    threads = max(1, _cores() // workers)
    procs = []
    for w in range(workers):
        job = {"worker": w, "threads": threads, "project": project.to_dict(), "spec": spec, "metric": metric,
               "study": study_name, "storage": storage, "base_dir": base_dir, "queued": queued}
        proc = ctx.Process(target=_worker_main, args=(job, messages, stop, ready), name=f"layerloom-search-{w}",
                           daemon=True)
        proc.start()
        procs.append(proc)
    finished: list[dict] = []
    reported: set[int] = set()
    try:
        while len(reported) < workers:
            if should_stop is not None and not stop.is_set() and should_stop():
                stop.set()
                ready.abort()  # workers still waiting to start do not start
            try:
                msg = messages.get(timeout=0.1)
            except queue_module.Empty:
                gone = [w for w, p in enumerate(procs) if w not in reported and not p.is_alive()]
                if not gone:
                    continue
                try:
                    msg = messages.get(timeout=1.0)  # a last message may still be in the pipe
                except queue_module.Empty:
                    for w in gone:
                        reported.add(w)
                        notes.append(f"worker {w} ended without reporting (exit code {procs[w].exitcode}): see its "
                                     f"error output; a script that starts a search with several workers must do "
                                     f"so under `if __name__ == \"__main__\":`, since each worker imports it")
                    ready.abort()  # the others stop waiting for it
                    continue
            if "_done" in msg:
                reported.add(msg["_done"])
                finished.append({"worker": msg["_done"], "threads": msg["threads"], "pid": msg["pid"]})
            elif "_error" in msg:
                reported.add(msg["_error"])
                ready.abort()
                notes.append(f"worker {msg['_error']} stopped: {msg['message']}")
            elif on_trial is not None:
                on_trial(msg)
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():  # pragma: no cover - a worker stuck past its stop flag
                p.terminate()
                p.join(timeout=5)
    return sorted(finished, key=lambda w: w["worker"])


# ---- the search --------------------------------------------------------------------------------------------

def resolve_metric(spec: dict[str, Any], loss_type: str, has_val: bool) -> tuple[str, str]:
    """(metric, direction) for a checked spec: auto picks val_loss with a validation split, else loss; the
    direction maximises accuracy and R² and minimises the rest. SearchError for a figure training never gives."""
    from .runner import METRIC_OF_LOSS
    from .training import REGRESSION
    kinds = ["loss", "mae", "r2"] if METRIC_OF_LOSS.get(loss_type, REGRESSION) == REGRESSION else ["loss", "acc"]
    metric = spec["metric"]
    if metric == "auto":
        metric = "val_loss" if has_val else "loss"
    if metric.startswith("val_") and not has_val:
        raise SearchError(f"search metric {metric} needs a validation split, and this data has none: set the "
                          f"data's split val above 0 (e.g. 0.15), or use metric {metric[4:]}")
    if metric.removeprefix("val_") not in kinds:
        raise SearchError(f"training with the {loss_type} loss gives {', '.join(kinds)} (and val_ of each with a "
                          f"validation split), not {metric.removeprefix('val_')}: choose one of those as the metric")
    direction = spec["direction"]
    if direction == "auto":
        direction = "maximize" if metric.removeprefix("val_") in ("acc", "r2") else "minimize"
    return metric, direction


def run_search(project: Project, spec: dict[str, Any] | None = None, *, base_dir: str | os.PathLike | None = None,
               on_trial: Callable[[dict[str, Any]], None] | None = None,
               should_stop: Callable[[], bool] | None = None, workers: int = 1,
               storage_path: str | os.PathLike | None = None) -> SearchResult:
    """Search the space of `spec` (default: the project's "search" section) with a budget of spec["trials"].

    Each trial writes its values into a copy of the project (apply_params), builds a run with runner.prepare on
    the data loaded once, trains spec["epochs"] epochs and reports the metric after each to Optuna, which may prune
    it (the Trainer is stopped). A trial that fails (NaN, values that break the network) is recorded as failed
    with its message and the search goes on. `on_trial(dict)` gets each trial's record as soon as it ends;
    `should_stop()` is polled between epochs, batches and trials. `workers` > 1 runs that many processes on one
    study in a JournalStorage file (`storage_path`, a temporary file by default), each with its share of the
    cores. `base_dir` is where relative data paths start (the project's folder). Raises SearchError (or the
    engine's error for a project that cannot train at all) before any trial when the search cannot run."""
    import optuna

    from .data import load_data
    from .runner import prepare

    spec = validate_spec(project, spec)
    if not _is_int(workers) or workers < 1:
        raise SearchError(f"workers must be a whole number from 1, not {workers!r}")
    if not project.data:
        raise DataError("choose a data set before searching (a bundled set, a generated one or a file)")
    if not project.loss:
        raise SpecError("choose a loss before searching (e.g. CrossEntropy for classes, MSE for numbers)")
    base = None if base_dir is None else str(base_dir)
    bundle = load_data(project.data, base_dir=base)
    check = copy_project(project)
    check.training.pop("checkpoint_dir", None)
    prepare(check, {"epochs": spec["epochs"]} if spec["epochs"] else None, bundle=bundle,
            base_dir=base)  # can it train at all? (raises the engine's error in words when not)
    has_val = bundle.val is not None and len(bundle.val) > 0
    metric, direction = resolve_metric(spec, project.loss["type"], has_val)
    stop_now = should_stop or (lambda: False)
    notes: list[str] = []
    t0 = time.perf_counter()
    level = _quiet_optuna()
    temp_dir = None
    try:
        study_name = f"layerloom-{uuid.uuid4().hex[:12]}"
        if workers > 1 or storage_path is not None:
            if storage_path is None:
                temp_dir = tempfile.mkdtemp(prefix="layerloom-search-")
                storage_path = os.path.join(temp_dir, "study.journal")
            storage_path = str(storage_path)
            Path(storage_path).parent.mkdir(parents=True, exist_ok=True)
            storage = _journal(storage_path)
        else:
            storage = optuna.storages.InMemoryStorage()
        plan = _grid_plan(project, spec)
        study = optuna.create_study(storage=storage, study_name=study_name, direction=direction,
                                    sampler=_sampler(spec, 0, plan is not None), pruner=_pruner(spec))
        for params in plan or ():
            study.enqueue_trial(params)
        if workers == 1:
            _optimize(study, project, spec, metric, bundle, base, on_trial or (lambda r: None), stop_now, 0)
            worker_info = [{"worker": 0, "threads": _torch_threads(), "pid": os.getpid()}]
        else:
            worker_info = _run_workers(project, spec, metric, study_name, storage_path, base, workers,
                                       plan is not None, on_trial, should_stop, notes)
            study = optuna.load_study(study_name=study_name, storage=storage)
        trials = _records(study, spec["trials"])
    finally:
        optuna.logging.set_verbosity(level)
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
    if not trials and notes:
        raise SearchError(notes[0])
    stopped = bool(stop_now()) and len(trials) < spec["trials"]
    if not stopped and any(t["message"] == STOPPED_MESSAGE for t in trials):
        stopped = True
    if spec["method"] == "grid" and spec["trials"] < len(grid_combinations(project, spec["space"])):
        notes.append(f"the grid holds {len(grid_combinations(project, spec['space']))} combinations; the budget of "
                     f"{spec['trials']} tried a seeded random part of it")
    return SearchResult(trials=trials, best=best_trial(trials, direction), direction=direction, metric=metric,
                        method=spec["method"], budget=spec["trials"], spec=spec, project=project.name,
                        seconds=round(time.perf_counter() - t0, 3), stopped=stopped, workers=worker_info, notes=notes)


def _torch_threads() -> int:
    import torch
    return torch.get_num_threads()


def _records(study, budget: int) -> list[dict[str, Any]]:
    """Every worker's trials from the shared storage, in number order, within the budget."""
    import optuna
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.number >= budget or t.user_attrs.get("skipped"):
            continue
        record = t.user_attrs.get("record")
        if record is None:  # a trial whose worker died before it ended
            record = {"number": t.number, "params": dict(t.params), "value": None, "state": "failed",
                      "epochs": [], "seconds": 0.0, "worker": None,
                      "message": "this trial did not finish (its worker process ended)"
                      if t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING) else
                      "this trial ended without a result"}
        out.append(dict(record))
    return sorted(out, key=lambda r: r["number"])


# ---- saved searches ----------------------------------------------------------------------------------------

def searches_folder(project_path: str | os.PathLike) -> Path:
    """Where the searches of the project at `project_path` (its file or folder) are kept:
    `<project folder>/runs/searches`."""
    return runs_folder(project_path) / SEARCHES_FOLDER


def save_search(result: SearchResult, project_path: str | os.PathLike, when: dt.datetime | None = None) -> Path:
    """Write `result` as JSON into `<project folder>/runs/searches/<name>-YYYYmmdd-HHMMSS.json` (a second one in
    the same second gets -2, -3 ...), atomically; sets and returns result.path."""
    now = when or dt.datetime.now()
    folder = searches_folder(project_path)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{_safe_name(result.project or 'search')}-search-{now.strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 10_000):
        path = folder / (f"{stem}.json" if i == 1 else f"{stem}-{i}.json")
        try:
            with open(path, "x"):
                pass
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover
        raise SearchError(f"cannot find a free file name for the search in {folder}")
    result.saved_at = result.saved_at or now.timestamp()
    _write_json(path, result.to_dict())
    result.path = path
    return path


def load_searches(project_path: str | os.PathLike) -> list[SearchResult]:
    """The saved searches of the project at `project_path` (its file or folder), newest first; files that are
    not saved searches are passed over."""
    folder = searches_folder(project_path)
    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob("*.json"):
        try:
            out.append(SearchResult.from_dict(json.loads(path.read_text(encoding="utf-8")), path))
        except (OSError, ValueError, TypeError, LayerLoomError):
            continue
    return sorted(out, key=lambda r: (r.saved_at or 0.0, r.path.name), reverse=True)


__all__ = ["SearchError", "SearchResult", "apply_params", "best_trial", "copy_project", "grid_values",
           "load_searches", "resolve_metric", "run_search", "save_search", "search_targets", "searches_folder",
           "validate_spec"]
