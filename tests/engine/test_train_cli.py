"""`layerloom train` as a user runs it: real subprocesses, real files, Ctrl-C, resume, failures, --nproc."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import engine

ROOT = Path(__file__).resolve().parents[2]


def layerloom(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=kw.pop("cwd", ROOT), timeout=timeout, **kw)


def moons_project(tmp_path: Path, name="moons", data=None, lr=0.05, shape=(2,), epochs=3, optimizer="Adam") -> Path:
    g = engine.Graph()
    prev = g.add_node("Input", shape=list(shape))
    for layer, params in (("Linear", {"out_features": 16}), ("ReLU", {}), ("Linear", {"out_features": 2})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    project = engine.Project(graph=g, name=name,
                             data=data or {"source": "moons", "params": {"n_samples": 400}},
                             loss={"type": "CrossEntropy", "params": {}},
                             optimizer={"type": optimizer, "params": {"lr": lr}},
                             training={"epochs": epochs, "batch_size": 32})
    path = tmp_path / f"{name}.layerloom"
    engine.save_project(path, project)
    return path


def test_train_writes_history_weights_and_checkpoints(tmp_path):
    project = moons_project(tmp_path)
    out = tmp_path / "run"
    r = layerloom("train", project, "--out", out, "--epochs", 4, "--seed", 1)
    assert r.returncode == 0, r.stderr
    assert "epoch 4/4" in r.stdout and "done." in r.stdout
    for name in ("history.csv", "history.json", "steps.csv", "final.safetensors", "best.safetensors", "run.json"):
        assert (out / name).is_file(), name
    assert (out / "checkpoints" / "last" / "model.safetensors").is_file()
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3, 4]
    assert history["epochs"][-1]["val_acc"] > 0.8
    csv_lines = (out / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("loss,acc,val_loss,val_acc") and len(csv_lines) == 5
    model = engine.build_model(engine.load_project(project).graph)
    model.load_state_dict(load_file(str(out / "final.safetensors")), strict=True)
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


def test_resume_continues_to_the_same_result(tmp_path):
    project = moons_project(tmp_path)
    full, part = tmp_path / "full", tmp_path / "part"
    assert layerloom("train", project, "--out", full, "--epochs", 4).returncode == 0
    assert layerloom("train", project, "--out", part, "--epochs", 2).returncode == 0
    r = layerloom("train", project, "--out", part, "--epochs", 4, "--resume", part / "checkpoints" / "last")
    assert r.returncode == 0, r.stderr
    a, b = load_file(str(full / "final.safetensors")), load_file(str(part / "final.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert len(json.loads((part / "history.json").read_text())["epochs"]) == 4


def test_ctrl_c_leaves_a_resumable_checkpoint(tmp_path):
    project = moons_project(tmp_path, data={"source": "moons", "params": {"n_samples": 20000}}, epochs=200)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "train", str(project), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoints" / "last").exists():
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted (Ctrl-C)" in stdout and "--resume" in stdout
    meta = json.loads((out / "checkpoints" / "last" / "meta.json").read_text())
    assert meta["global_step"] > 0
    r = layerloom("train", project, "--out", out, "--epochs", meta["epoch"] + 1, "--resume",
                  out / "checkpoints" / "last")
    assert r.returncode == 0, r.stderr
    assert len(json.loads((out / "history.json").read_text())["epochs"]) == meta["epoch"] + 1


def test_nan_loss_is_a_clear_failure(tmp_path):
    project = moons_project(tmp_path, lr=1e30, optimizer="SGD")  # the weights overflow float32 at once
    r = layerloom("train", project, "--out", tmp_path / "run")
    assert r.returncode == 1
    assert "learning rate" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("case", ["missing-file", "wrong-shape", "broken-project"])
def test_problems_before_training_are_clear(tmp_path, case):
    if case == "missing-file":
        project = moons_project(tmp_path, data={"source": "csv", "params": {"path": "nowhere.csv"}})
        expect, code = "no such file", 1
    elif case == "wrong-shape":
        project = moons_project(tmp_path, shape=(3,))
        expect, code = "Input expects (3,) but the data gives (2,)", 1
    else:
        project = tmp_path / "broken.layerloom"
        project.write_text("{not json")
        expect, code = "not valid JSON", 2
    r = layerloom("train", project, "--out", tmp_path / "run")
    assert r.returncode == code, r.stdout + r.stderr
    assert expect in r.stderr and "Traceback" not in r.stderr


def test_nproc_2_trains_on_two_processes_and_only_rank_0_writes(tmp_path):
    project = moons_project(tmp_path)
    out = tmp_path / "run"
    r = layerloom("train", project, "--out", out, "--nproc", 2, "--epochs", 2)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "on 2 processes" in r.stdout
    assert r.stdout.count("done.") == 1
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    assert (out / "final.safetensors").is_file()


def test_a_wrong_training_setting_is_named(tmp_path):
    path = moons_project(tmp_path)
    project = engine.load_project(path)
    project.training["early_stopping"] = {"restore_best_weights": True}
    engine.save_project(path, project)
    r = layerloom("train", path, "--out", tmp_path / "run")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no parameter 'restore_best_weights'" in r.stderr and "restore_best" in r.stderr


def test_coach_prints_each_warning_with_its_cure(tmp_path, capsys):
    """`layerloom train --coach`: a learning rate of 10 on a line fit makes the loss climb within a few steps, and
    the coach says so as it happens, with the cure, and keeps its warnings in run.json. Run in this process through the
    command's own parser."""
    from engine import train_cli
    from engine.cli import build_parser
    g = engine.Graph()
    g.connect(g.add_node("Input", shape=[1]), g.add_node("Linear", {"out_features": 1}))
    path = tmp_path / "steep.layerloom"
    engine.save_project(path, engine.Project(graph=g, name="steep", data={"source": "line", "params": {}},
                                             loss={"type": "MSE", "params": {}},
                                             optimizer={"type": "SGD", "params": {"lr": 10.0}},
                                             training={"epochs": 2, "batch_size": 32}))

    def train(out, coach):
        flags = ["--coach"] if coach else []
        args = build_parser().parse_args(["train", str(path), "--out", str(out), "--seed", "0", *flags])
        args.argv = []
        code = train_cli.run(args)
        return code, capsys.readouterr().out

    code, printed = train(tmp_path / "coached", True)
    assert code == 0, printed
    lines = [line for line in printed.splitlines() if line.startswith("coach: ")]
    assert lines[0].startswith("coach: The training loss is rising") and "the learning rate 10 is probably too high" \
        in lines[0]
    assert " Try: Lower the learning rate about 10× (to 1)" in lines[0] and "learning-rate finder" in lines[0]
    assert printed.index(lines[0]) < printed.index("epoch 2/2")  # as it happens, not at the end
    assert lines[-1] == "coach: 1 warning, 1 still standing at the end"
    saved = json.loads((tmp_path / "coached" / "run.json").read_text())
    assert [w["kind"] for w in saved["coach"]] == ["lr_too_high"] and saved["coach"][0]["figures"]["lr"] == 10.0
    # without the flag the coach stays silent
    code, printed = train(tmp_path / "plain", False)
    assert code == 0 and "coach:" not in printed and "coach" not in json.loads(
        (tmp_path / "plain" / "run.json").read_text())
