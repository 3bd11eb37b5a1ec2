"""Run folders on real files: unique names under the project's runs/, what save_run writes, listing runs newest
first with their final figures, and histories read back for overlays (also from the CSV alone)."""
from __future__ import annotations

import datetime as dt
import json
import math
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import engine
from engine.callbacks import History
from engine.errors import ProjectError
from engine.runs import (
    BestWeights,
    history_columns,
    list_runs,
    load_history,
    new_run_dir,
    run_info,
    run_settings,
    save_run,
    save_weights,
    write_history,
)


def tiny_model():
    g = engine.Graph()
    x = g.add_node("Input", shape=[2])
    lin = g.add_node("Linear", {"out_features": 3})
    g.connect(x, lin)
    return engine.build_model(g, seed=0)


HISTORY = {"epochs": [{"epoch": 1, "loss": 1.0, "acc": 0.5, "val_loss": 1.1, "val_acc": 0.4},
                      {"epoch": 2, "loss": 0.5, "acc": 0.8, "val_loss": 0.6, "val_acc": 0.75}],
           "steps": [{"step": 1, "epoch": 1, "loss": 1.2}, {"step": 2, "epoch": 1, "loss": 0.9, "acc": 0.5}]}


def test_new_run_dir_is_unique_under_the_projects_runs_folder(tmp_path):
    project_file = tmp_path / "my net.layerloom"
    project_file.write_text("{}")
    when = dt.datetime(2024, 5, 6, 7, 8, 9)
    a = new_run_dir(project_file, "my net", when)
    b = new_run_dir(tmp_path, "my net", when)  # the folder works as well as the file; same second
    assert a == tmp_path / "runs" / "my_net-20240506-070809" and a.is_dir()
    assert b == tmp_path / "runs" / "my_net-20240506-070809-2" and b.is_dir()
    assert new_run_dir(tmp_path, "../../etc", when).parent == tmp_path / "runs"  # a name never escapes
    assert new_run_dir(tmp_path / "fresh", "", when).name == "run-20240506-070809"


def test_save_run_writes_settings_history_weights_and_outcome(tmp_path):
    model = tiny_model()
    best = {k: v * 0 for k, v in model.state_dict().items()}
    project = engine.Project(name="p", data={"source": "moons"}, loss={"type": "CrossEntropy", "params": {}},
                             training={"epochs": 5, "batch_size": 8})
    settings = run_settings(project, {"epochs": 2, "lr": None})
    assert settings["training"] == {"epochs": 2, "batch_size": 8} and settings["overrides"] == {"epochs": 2}
    folder = save_run(tmp_path / "r", settings, HISTORY, model, best_weights=best,
                      result={"status": "stopped", "message": "stopped by the user", "epochs_done": 2})
    names = {p.name for p in folder.iterdir()}
    assert {"settings.json", "history.json", "history.csv", "steps.csv", "final.safetensors", "best.safetensors",
            "run.json"} <= names and not any(n.endswith(".tmp") for n in names)
    assert json.loads((folder / "settings.json").read_text())["data"] == {"source": "moons"}
    final = load_file(str(folder / "final.safetensors"))
    for k, v in model.state_dict().items():
        assert torch.equal(final[k], v)
    assert all(float(v.abs().sum()) == 0 for v in load_file(str(folder / "best.safetensors")).values())
    lines = (folder / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,acc,val_loss,val_acc" and len(lines) == 3
    assert (folder / "steps.csv").read_text().splitlines()[0] == "step,epoch,loss,acc"
    outcome = json.loads((folder / "run.json").read_text())
    assert outcome["status"] == "stopped" and outcome["epochs_done"] == 2 and outcome["saved_at"] > 0


def test_history_json_stays_valid_json_with_nan(tmp_path):
    write_history(tmp_path, {"epochs": [{"epoch": 1, "loss": math.nan, "acc": np.float32(0.5)}], "steps": []})
    text = (tmp_path / "history.json").read_text()
    assert "NaN" not in text
    assert json.loads(text)["epochs"] == [{"epoch": 1, "loss": None, "acc": 0.5}]
    cols = history_columns(load_history(tmp_path)["epochs"])
    assert math.isnan(cols["loss"][0]) and cols["acc"][0] == 0.5


def test_list_runs_newest_first_with_final_metrics_and_status(tmp_path):
    model = tiny_model()
    old = save_run(new_run_dir(tmp_path, "net", dt.datetime(2024, 1, 1)), {}, HISTORY, model,
                   result={"status": "finished", "saved_at": 1000.0})
    new = save_run(new_run_dir(tmp_path, "net", dt.datetime(2024, 1, 2)), {},
                   {"epochs": HISTORY["epochs"][:1], "steps": []}, None,
                   result={"status": "failed", "message": "NaN", "saved_at": 2000.0})
    killed = new_run_dir(tmp_path, "net", dt.datetime(2024, 1, 3))
    (killed / "settings.json").write_text("{}")  # a run the app never finished writing: the folder's time
    os.utime(killed, (3000.0, 3000.0))
    (tmp_path / "runs" / "not-a-run").mkdir()
    runs = list_runs(tmp_path)
    assert [r.folder for r in runs] == [killed, new, old]
    by_folder = {r.folder: r for r in runs}
    assert set(by_folder) == {old, new, killed}
    assert by_folder[old].status == "finished" and by_folder[old].metrics["val_acc"] == 0.75
    assert by_folder[old].epochs_done == 2 and by_folder[old].weights == old / "final.safetensors"
    assert by_folder[new].status == "failed" and by_folder[new].message == "NaN" and by_folder[new].weights is None
    assert by_folder[killed].status == "incomplete" and by_folder[killed].metrics == {}
    assert by_folder[killed].time == 3000.0
    assert list_runs(tmp_path / "runs") == runs and list_runs(tmp_path / "nowhere") == []


def test_load_history_from_json_or_csv_and_a_clear_error(tmp_path):
    save_run(tmp_path / "a", {}, HISTORY, None)
    assert load_history(tmp_path / "a") == HISTORY
    (tmp_path / "a" / "history.json").unlink()
    back = load_history(tmp_path / "a")
    assert back["epochs"][1] == {"epoch": 2.0, "loss": 0.5, "acc": 0.8, "val_loss": 0.6, "val_acc": 0.75}
    assert back["steps"][0] == {"step": 1.0, "epoch": 1.0, "loss": 1.2}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProjectError, match="no training history"):
        load_history(tmp_path / "empty")
    assert run_info(tmp_path / "empty").status == "incomplete"


def test_best_weights_callback_and_save_weights_take_modules_or_state_dicts(tmp_path):
    model = tiny_model()
    save_weights({k: v.numpy() for k, v in model.state_dict().items()}, tmp_path / "w.safetensors")
    assert set(load_file(str(tmp_path / "w.safetensors"))) == set(model.state_dict())

    class FakeTrainer:
        module = model
        history = History()

    best = BestWeights(tmp_path)
    best.on_fit_start(FakeTrainer, {})
    assert best.path is None
    best.on_train_epoch_end(FakeTrainer, {"epoch": 1, "val_loss": 0.5})
    with torch.no_grad():
        model.linear_1.weight.add_(1.0)
    best.on_train_epoch_end(FakeTrainer, {"epoch": 2, "val_loss": 0.7})  # worse: the file keeps epoch 1
    assert best.best_epoch == 1 and best.path == tmp_path / "best.safetensors"
    assert not torch.equal(load_file(str(best.path))["linear_1.weight"], model.linear_1.weight)
