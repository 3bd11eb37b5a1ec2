"""Crashes and faults on real files: a save killed with SIGKILL at random moments leaves the previous complete file
or the new one (project files and run folders alike), a data file deleted or cut short during training, a disk that
fills up while a checkpoint or the best weights are written, and a step that raises. Nothing here is simulated: the
kills are real signals to a real process, the full disk is a real file-size limit set in a real process."""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.errors import DataError
from engine.project import Project, load_project, save_project

ROOT = Path(__file__).resolve().parents[2]


def _helper(tmp_path: Path, code: str) -> subprocess.Popen:
    """A Python process running `code` with the repository importable; stdin/stdout are its command channel."""
    script = tmp_path / "helper.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(code))
    return subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=tmp_path)


def _kill_rounds(proc: subprocess.Popen, kills: int, seed: int, check) -> list[float]:
    """`kills` rounds of: the helper forks a child that saves version after version, this process kills the child
    with SIGKILL after a random delay, the helper reaps it and `check(round)` inspects what is on disk."""
    ready = json.loads(proc.stdout.readline())
    save_s = ready["save_s"]
    rng = random.Random(seed)
    delays = []
    for i in range(kills):
        proc.stdin.write(f"{(i + 1) * 1000}\n")  # round i saves versions 1000(i+1), 1000(i+1)+1, ...
        proc.stdin.flush()
        pid = int(proc.stdout.readline())
        delay = rng.uniform(0, 3 * save_s) if i % 4 else rng.uniform(0, 0.3 * save_s)  # some kills land early
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        reaped = json.loads(proc.stdout.readline())
        assert reaped["signal"] == signal.SIGKILL, reaped  # killed by us, mid-work, not finished on its own
        delays.append(delay)
        check(i)
    proc.stdin.close()
    assert proc.wait(10) == 0
    return delays


FORK_SERVER = """
import json, os, time

def serve(save, first_version=0):
    save(first_version)                 # a complete previous version exists before the first kill
    t = time.perf_counter()
    save(first_version + 1)
    print(json.dumps({"save_s": time.perf_counter() - t}), flush=True)
    for line in sys.stdin:
        version = int(line)
        pid = os.fork()
        if pid == 0:                    # the child saves until it is killed (or, should the test die, for 60 s)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                save(version)
                version += 1
            os._exit(3)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}), flush=True)
"""


# ---- a project save killed at random moments ------------------------------------------------------------------

PROJECT_SAVER = FORK_SERVER + """
import engine
from engine.project import Project, save_project

def big_project():
    g = engine.Graph()
    prev = g.add_node("Input", shape=[8])
    for _ in range(100):
        nid = g.add_node("Linear", out_features=8)
        g.connect(prev, nid)
        prev = nid
    return Project(graph=g, name="big")

project = big_project()
target = sys.argv[1] if len(sys.argv) > 1 else "big.layerloom"

def save(version):
    project.name = f"version {version}"
    project.description = f"version {version} " * 300_000  # ~4 MB: writing and syncing take a while
    save_project(target, project)

serve(save)
"""


def test_a_project_save_killed_at_any_moment_leaves_a_complete_file(tmp_path):
    target = tmp_path / "big.layerloom"
    proc = _helper(tmp_path, PROJECT_SAVER)
    expected_graph = None
    versions, strays_seen = [], 0

    def check(i):
        nonlocal expected_graph, strays_seen
        project = load_project(target)  # complete: it parses and validates, never a partial file
        version = int(project.name.split()[1])
        assert project.description == f"version {version} " * 300_000  # the whole text, not a cut-off one
        graph = project.graph.to_dict()
        expected_graph = expected_graph or graph
        assert graph == expected_graph and len(project.graph) == 101
        assert version >= (versions[-1] if versions else 0)  # never older than what was there before
        assert version < (i + 2) * 1000  # this round's or an earlier one's
        versions.append(version)
        strays_seen += bool(list(tmp_path.glob(".big.layerloom.*.tmp")))

    try:
        delays = _kill_rounds(proc, kills=40, seed=7, check=check)
    finally:
        proc.kill()
    strays = list(tmp_path.glob(".big.layerloom.*.tmp"))
    # Some kills landed while a temporary file was being written, and some after a save completed:
    assert strays_seen >= 1 and len(set(versions)) >= 5, (strays_seen, versions)
    assert all(p.stat().st_size < target.stat().st_size + 1 for p in strays)
    # stray temporary files do not get in the way of the next save and load
    save_project(target, Project(name="after the crashes"))
    assert load_project(target).name == "after the crashes"
    print(f"\n{len(delays)} kills after 0-{max(delays) * 1000:.0f} ms; {strays_seen} mid-write, "
          f"{len(set(versions))} different versions seen, {len(strays)} stray temporary files left")


# ---- a run folder written while being killed ------------------------------------------------------------------

RUN_SAVER = FORK_SERVER + """
import numpy as np
import torch
from engine.runs import save_run

torch.set_num_threads(1)  # no OpenMP team in this process: a forked child could not use it
folder = sys.argv[1] if len(sys.argv) > 1 else "run"
STEPS = 5_000

def save(version):
    settings = {"version": version, "notes": "x" * 200_000}
    history = {"epochs": [{"epoch": e + 1, "loss": version + e / 100} for e in range(20)],
               "steps": [{"step": s, "loss": float(version), "lr": 0.001} for s in range(STEPS)]}
    weights = {"w": np.full((512, 512), float(version), dtype=np.float32)}
    save_run(folder, settings, history, weights, best_weights={"w": np.full(64, version + 0.5, dtype=np.float32)},
             result={"version": version})

serve(save)
"""


def _run_versions(folder: Path) -> dict[str, int]:
    """The version each file of a run folder holds; every file must be complete (AssertionError otherwise)."""
    from safetensors.numpy import load_file
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["notes"] == "x" * 200_000
    history = json.loads((folder / "history.json").read_text())
    assert len(history["epochs"]) == 20 and len(history["steps"]) == 5_000
    v_history = int(history["epochs"][0]["loss"])
    assert {s["loss"] for s in history["steps"]} == {v_history}
    with open(folder / "history.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    assert len(epochs) == 20 and epochs[-1]["epoch"] == "20"
    with open(folder / "steps.csv", newline="") as f:
        steps = list(csv.DictReader(f))
    assert len(steps) == 5_000 and steps[-1]["step"] == "4999" and steps[-1]["lr"] == "0.001"
    final = load_file(str(folder / "final.safetensors"))["w"]
    best = load_file(str(folder / "best.safetensors"))["w"]
    assert final.shape == (512, 512) and (final == final[0, 0]).all()
    result = json.loads((folder / "run.json").read_text())
    return {"settings": settings["version"], "history.json": v_history,
            "history.csv": int(float(epochs[0]["loss"])), "steps.csv": int(float(steps[0]["loss"])),
            "final": int(final[0, 0]), "best": int(best[0] - 0.5), "run.json": result["version"]}


def test_run_files_killed_while_being_written_are_each_complete(tmp_path):
    folder = tmp_path / "run"
    proc = _helper(tmp_path, RUN_SAVER)
    seen: list[dict[str, int]] = []

    def check(i):
        versions = _run_versions(folder)
        # save_run writes the files in this order, each one atomically: a later file is never newer
        order = list(versions.values())
        assert order == sorted(order, reverse=True), versions
        assert all(v >= prev for v, prev in zip(order, seen[-1].values())) if seen else True
        seen.append(versions)

    try:
        delays = _kill_rounds(proc, kills=30, seed=11, check=check)
    finally:
        proc.kill()
    mixed = sum(len(set(v.values())) > 1 for v in seen)  # killed between two files of one save
    assert mixed >= 1, seen
    from engine.runs import list_runs, load_history, save_run
    assert load_history(folder)["epochs"][0]["epoch"] == 1
    assert [r.name for r in list_runs(tmp_path / "runs")] == []  # (not a project's runs folder: nothing listed)
    save_run(folder, {"version": 0}, {"epochs": [], "steps": []}, None, result={"version": 0})  # strays harmless
    assert json.loads((folder / "run.json").read_text())["version"] == 0
    print(f"\n{len(delays)} kills after 0-{max(delays) * 1000:.0f} ms; {mixed} between two files of one save")


# ---- training faults -----------------------------------------------------------------------------------------

def _csv_project(folder: Path, epochs: int = 3) -> Project:
    import numpy as np
    rng = np.random.default_rng(0)
    rows = ["a,b,c,d,label"]
    for i in range(240):
        label = i % 3
        values = rng.normal(size=4) + label
        rows.append(",".join(f"{v:.4f}" for v in values) + f",{'xyz'[label]}")
    (folder / "data.csv").write_text("\n".join(rows) + "\n")
    import engine
    g = engine.Graph()
    prev = g.add_node("Input", shape=[4])
    for layer, params in (("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 3})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    project = Project(graph=g, name="table", data={"source": "csv", "params": {"path": "data.csv"}},
                      loss={"type": "CrossEntropy", "params": {}}, optimizer={"type": "Adam", "params": {"lr": 0.01}},
                      training={"epochs": epochs, "batch_size": 16, "seed": 0})
    save_project(folder / "table.layerloom", project)
    return project


@pytest.mark.parametrize("fault", ["deleted", "truncated", "emptied"])
def test_a_data_file_damaged_during_training(tmp_path, fault):
    from engine.callbacks import Callback
    from engine.evaluate import evaluate
    from engine.runner import prepare
    from engine.training import Status

    project = _csv_project(tmp_path)
    data_file = tmp_path / "data.csv"

    class Damage(Callback):
        def on_train_epoch_end(self, trainer, logs):
            if logs["epoch"] == 1:
                if fault == "deleted":
                    data_file.unlink()
                elif fault == "truncated":  # cut in the middle of a line, as a copy that stopped half-way
                    lines = data_file.read_text().splitlines()
                    data_file.write_text("\n".join(lines[:40]) + "\n" + lines[40].rsplit(",", 1)[0])
                else:
                    data_file.write_bytes(b"")

    run = prepare(project, {"checkpoint_dir": str(tmp_path / "ckpt")}, [Damage()], base_dir=tmp_path)
    result = run.trainer.fit(run.data)
    # the data was read once, before the first step: the run itself is not affected
    assert result.status == Status.FINISHED and result.epochs_done == 3, result.message
    weights = run.trainer.copy_weights()
    # ... but whatever reads the file again says what is wrong with it, in words
    with pytest.raises(DataError) as info:
        evaluate(project, weights, base_dir=tmp_path)
    message = str(info.value)
    expected = {"deleted": "no such file", "truncated": "has 4 values but the header has 5 columns",
                "emptied": "is empty"}[fault]
    assert expected in message and "data.csv" in message, message
    with pytest.raises(DataError, match=expected):  # a resumed run (the CLI's --resume) prepares again
        prepare(load_project(tmp_path / "table.layerloom"), base_dir=tmp_path)


DISK_FULL = """
import json, resource, signal
from pathlib import Path
import torch
torch.set_num_threads(1)
import engine
from engine.callbacks import Callback
from engine.runs import BestWeights
from engine.training import ACCURACY, TensorData, TrainConfig, Trainer

SOFT, HARD = resource.getrlimit(resource.RLIMIT_FSIZE)


class DiskFull(Callback):
    \"\"\"From the end of epoch 2 on, no file of this process may grow past 64 bytes: every write after that
    fails for real in the kernel (EFBIG, "File too large"), as on a full disk.\"\"\"

    def on_train_epoch_end(self, trainer, logs):
        if logs["epoch"] == 2:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
            resource.setrlimit(resource.RLIMIT_FSIZE, (64, HARD))


def trainer(folder, callbacks):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(192) % 4
    x = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])[y] + 0.5 * torch.randn(192, 2, generator=g)
    data = TensorData(x[:144], y[:144], x[144:], y[144:])
    graph = engine.Graph()
    prev = graph.add_node("Input", shape=[2])
    for layer, params in (("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 4})):
        nid = graph.add_node(layer, params)
        graph.connect(prev, nid)
        prev = nid
    model = engine.build_model(graph, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    config = TrainConfig(epochs=4, batch_size=16, checkpoint_dir=str(folder / "checkpoints"))
    return Trainer(model, torch.nn.CrossEntropyLoss(), opt, config, metric=ACCURACY, callbacks=callbacks), data


for case in ("checkpoint", "best"):
    folder = Path(case)
    folder.mkdir()
    callbacks = [BestWeights(folder), DiskFull()] if case == "checkpoint" else [DiskFull(), BestWeights(folder)]
    t, data = trainer(folder, callbacks)
    result = t.fit(data)
    resource.setrlimit(resource.RLIMIT_FSIZE, (SOFT, HARD))
    print(json.dumps({"case": case, "status": str(result.status), "message": result.message,
                      "epochs_done": result.epochs_done}), flush=True)
"""


def test_a_full_disk_while_writing_a_checkpoint_or_the_best_weights(tmp_path):
    from safetensors.torch import load_file

    from engine.runs import BEST
    script = tmp_path / "disk_full.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + DISK_FULL)
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    results = {r["case"]: r for r in map(json.loads, out.stdout.splitlines())}

    # the checkpoint cannot be written: the run fails and says why and what to do
    r = results["checkpoint"]
    assert r["status"] == "failed" and r["epochs_done"] == 2, r
    for words in ("checkpoint after epoch 2 could not be written", "File too large", "MB are free",
                  "Free some disk space", "previous checkpoint there is kept"):
        assert words in r["message"], r["message"]
    folder = tmp_path / "checkpoint" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["last"]  # no half-written last.tmp beside it
    meta = json.loads((folder / "last" / "meta.json").read_text())
    assert meta["epoch"] == 1  # epoch 1's checkpoint, whole
    assert load_file(str(folder / "last" / "model.safetensors")).keys() == {
        "linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"}
    assert (tmp_path / "checkpoint" / BEST).is_file()  # written before the disk filled up

    # the best weights cannot be written: the same, and the best file of epoch 1 is still whole
    r = results["best"]
    assert r["status"] == "failed" and r["epochs_done"] == 2, r
    assert "best.safetensors: cannot be written (File too large); " in r["message"], r["message"]
    assert "Free some disk space" in r["message"]
    best = tmp_path / "best" / BEST
    assert load_file(str(best))["linear_2.bias"].shape == (4,)
    assert not (tmp_path / "best" / (BEST + ".tmp")).exists()
    assert json.loads((tmp_path / "best" / "checkpoints" / "last" / "meta.json").read_text())["epoch"] == 1


def test_a_step_that_raises_fails_the_run_and_keeps_what_was_saved(tmp_path):
    import torch
    from safetensors.torch import load_file

    import engine
    from engine.callbacks import Callback
    from engine.runs import BEST, BestWeights
    from engine.training import ACCURACY, Status, TensorData, TrainConfig, Trainer

    def make(callbacks):
        g = torch.Generator().manual_seed(1)
        y = torch.arange(160) % 2
        x = torch.randn(160, 3, generator=g) + y[:, None] * 2.0
        graph = engine.Graph()
        prev = graph.add_node("Input", shape=[3])
        for layer, params in (("Linear", {"out_features": 8}), ("Tanh", {}), ("Linear", {"out_features": 2})):
            nid = graph.add_node(layer, params)
            graph.connect(prev, nid)
            prev = nid
        model = engine.build_model(graph, seed=1)
        config = TrainConfig(epochs=3, batch_size=16, checkpoint_dir=str(tmp_path / "checkpoints"))
        trainer = Trainer(model, torch.nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=0.01), config,
                          metric=ACCURACY, callbacks=callbacks)
        return trainer, TensorData(x[:128], y[:128], x[128:], y[128:])

    class Explodes(Callback):
        def on_train_batch_end(self, trainer, logs):
            if trainer.epoch == 1 and trainer.batch == 4:  # the middle of epoch 2
                raise OSError(5, "Input/output error")

    trainer, data = make([BestWeights(tmp_path), Explodes()])
    result = trainer.fit(data)
    assert result.status == Status.FAILED and result.epochs_done == 1
    assert "epoch 2" in result.message and "Input/output error" in result.message, result.message
    assert isinstance(result.error, OSError)
    # what was saved before the error is whole: the best weights load, the checkpoint resumes and finishes
    assert load_file(str(tmp_path / BEST)).keys() == {"linear_1.weight", "linear_1.bias", "linear_2.weight",
                                                      "linear_2.bias"}
    again, data = make([])
    resumed = again.fit(data, resume_from=tmp_path / "checkpoints" / "last")
    assert resumed.status == Status.FINISHED and resumed.epochs_done == 3
    assert [e["epoch"] for e in resumed.history["epochs"]] == [1, 2, 3]


def test_a_run_killed_before_it_finished_is_listed_with_its_checkpointed_epochs(tmp_path):
    """A run whose process died leaves only checkpoints/last (history and run.json are written at the end): it is
    listed as incomplete, with the epochs its checkpoint holds, instead of vanishing from the list."""
    from engine.runner import prepare
    from engine.runs import list_runs, load_history, new_run_dir

    project = _csv_project(tmp_path, epochs=2)
    folder = new_run_dir(tmp_path / "table.layerloom", "table")
    run = prepare(project, {"checkpoint_dir": str(folder / "checkpoints")}, base_dir=tmp_path)
    assert run.trainer.fit(run.data).ok  # (then "killed": save_run never ran)
    (info,) = list_runs(tmp_path / "table.layerloom")
    assert info.folder == folder and info.status == "incomplete" and info.epochs_done == 2
    assert info.metrics["loss"] > 0 and info.weights is None
    history = load_history(folder)
    assert [e["epoch"] for e in history["epochs"]] == [1, 2] and history["steps"] == []
