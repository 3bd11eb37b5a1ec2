"""The Trainer on real torch: hooks, controls from another thread, NaN and failing steps, determinism, exact
resume from checkpoints, snapshots, regularisation and metrics."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

import engine
from engine.callbacks import HOOKS, Callback, History, Snapshots
from engine.training import ACCURACY, REGRESSION, Status, TensorData, TrainConfig, Trainer


def blobs(n=192, seed=0):
    """Four separable Gaussian blobs in 2-D: a 64-sample-scale data set that trains in a blink."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    centres = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])
    x = centres[y] + 0.5 * torch.randn(n, 2, generator=g)
    return TensorData(x[: n * 3 // 4], y[: n * 3 // 4], x[n * 3 // 4:], y[n * 3 // 4:])


def mlp(seed=0, dropout=0.0):
    g = engine.Graph()
    x = g.add_node("Input", shape=[2])
    prev = x
    for layer, params in (("Linear", {"out_features": 16}), ("ReLU", {}), ("Dropout", {"p": dropout}),
                          ("Linear", {"out_features": 4})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    return engine.build_model(g, seed=seed)


def make(model=None, lr=0.05, callbacks=None, **cfg):
    model = model or mlp()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    config = TrainConfig(**{"epochs": 4, "batch_size": 16, **cfg})
    return Trainer(model, torch.nn.CrossEntropyLoss(), opt, config, metric=ACCURACY, callbacks=callbacks)


class Recorder(Callback):
    """Implements every hook and records the calls with their logs."""

    def __init__(self):
        self.calls = []


def _recording(name):
    return lambda self, trainer, arg: self.calls.append((name, arg if isinstance(arg, dict) else repr(arg)))


for _hook in (*HOOKS, "on_exception"):
    setattr(Recorder, _hook, _recording(_hook))


def test_learns_and_reports_plain_float_logs():
    rec = Recorder()
    trainer = make(callbacks=[rec], epochs=6)
    result = trainer.fit(blobs())
    assert result.status == Status.FINISHED and trainer.status == Status.FINISHED
    last = result.history["epochs"][-1]
    assert last["val_acc"] > 0.95 and last["loss"] < result.history["epochs"][0]["loss"]
    for _, logs in rec.calls:
        assert all(type(v) in (int, float) for v in logs.values()), logs
    assert result.steps_done == 6 * 9 and len(result.history["steps"]) == 54


def test_hook_order():
    rec = Recorder()
    make(callbacks=[rec], epochs=2).fit(blobs(n=64))  # 48 train samples = 3 steps, 16 validation = 1 batch
    names = [n for n, _ in rec.calls]
    epoch = (["on_train_epoch_start"] + ["on_train_batch_start", "on_train_batch_end"] * 3 +
             ["on_validation_epoch_start", "on_validation_batch_start", "on_validation_batch_end",
              "on_validation_epoch_end", "on_train_epoch_end"])
    assert names == ["on_fit_start"] + epoch * 2 + ["on_fit_end"]
    steps = [logs["step"] for n, logs in rec.calls if n == "on_train_batch_end"]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_same_seed_same_curve_different_seed_different_curve():
    def curve(seed):
        t = make(model=mlp(seed=seed, dropout=0.3), seed=seed)
        return [s["loss"] for s in t.fit(blobs()).history["steps"]]
    assert curve(3) == curve(3)
    assert curve(3) != curve(4)


def weights(trainer):
    return {k: v.clone() for k, v in trainer.module.state_dict().items()}


def run_uninterrupted(tmp_path, **cfg):
    t = make(model=mlp(dropout=0.3), checkpoint_dir=str(tmp_path / "full"), **cfg)
    torch.manual_seed(0)
    return t, t.fit(blobs())


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, logs):
        if logs["step"] == self.step:
            trainer.request_stop("test stop")


@pytest.mark.parametrize("stop_step", [9, 13], ids=["at-epoch-end", "mid-epoch"])
def test_resume_from_checkpoint_gives_the_same_curve(tmp_path, stop_step):
    full, full_result = run_uninterrupted(tmp_path)
    first = make(model=mlp(dropout=0.3), checkpoint_dir=str(tmp_path / "part"), callbacks=[StopAt(stop_step)])
    torch.manual_seed(0)
    r1 = first.fit(blobs())
    assert r1.status == Status.STOPPED and r1.steps_done == stop_step
    meta = json.loads((tmp_path / "part" / "last" / "meta.json").read_text())
    assert meta["global_step"] == stop_step
    torch.manual_seed(12345)  # resuming must not depend on whatever the RNG did in between
    second = make(model=mlp(seed=99, dropout=0.3), checkpoint_dir=str(tmp_path / "part"))
    r2 = second.fit(blobs(), resume_from=tmp_path / "part" / "last")
    assert r2.status == Status.FINISHED
    assert [s["loss"] for s in r2.history["steps"]] == [s["loss"] for s in full_result.history["steps"]]
    assert r2.history["epochs"] == full_result.history["epochs"] or all(
        {k: v for k, v in a.items() if k != "time"} == {k: v for k, v in b.items() if k != "time"}
        for a, b in zip(r2.history["epochs"], full_result.history["epochs"], strict=True))
    for k, v in weights(full).items():
        assert torch.equal(v, weights(second)[k]), k


def test_checkpoint_is_safetensors_plus_weights_only_state(tmp_path):
    from safetensors.torch import load_file
    t = make(checkpoint_dir=str(tmp_path), epochs=1)
    t.fit(blobs())
    folder = tmp_path / "last"
    names = ["meta.json", "model.safetensors", "state.pt", "steps.safetensors"]
    assert sorted(p.name for p in folder.iterdir()) == names
    w = load_file(str(folder / "model.safetensors"))
    assert set(w) == set(t.module.state_dict())
    state = torch.load(folder / "state.pt", weights_only=True)
    assert set(state) >= {"optimizer", "rng", "scheduler"}


def test_a_broken_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "ck").mkdir()
    t = make()
    with pytest.raises(engine.TrainingError, match="not a LayerLoom checkpoint"):
        t.fit(blobs(), resume_from=tmp_path / "ck")


def test_nan_loss_stops_with_advice_and_keeps_good_weights():
    t = make(lr=1e6, epochs=3)
    result = t.fit(blobs())
    assert result.status == Status.FAILED
    assert "NaN" in result.message or "infinite" in result.message
    assert "learning rate" in result.message and "too high" in result.message
    assert all(torch.isfinite(p).all() for p in t.module.parameters())


def test_all_finite_answers_like_isfinite_on_every_value():
    from engine.training import _all_finite
    ps = [torch.randn(64, 32), torch.randn(32), torch.full((3,), 3e38)]  # sums past float32's range: still finite
    assert _all_finite(ps) and _all_finite([])
    for bad in (float("nan"), float("inf"), -float("inf")):
        broken = [p.clone() for p in ps]
        broken[1][5] = bad
        assert not _all_finite(broken)


def test_weights_that_turn_non_finite_at_an_epochs_last_step_fail_the_run_and_roll_back():
    """A finite loss with weights already broken by the last update: the check at the epoch's end catches it
    and the weights from the end of the last good epoch come back."""
    class Spoil(Callback):
        def __init__(self):
            self.good = None

        def on_train_epoch_end(self, trainer, logs):
            self.good = {k: v.clone() for k, v in trainer.module.state_dict().items()}

        def on_train_batch_end(self, trainer, logs):
            if logs["epoch"] == 2 and logs["batch"] == trainer.steps_per_epoch:
                with torch.no_grad():
                    next(trainer.module.parameters())[0, 0] = float("inf")

    spoil = Spoil()
    t = make(epochs=3, callbacks=[spoil])
    result = t.fit(blobs())
    assert result.status == Status.FAILED and "at the end of epoch 2" in result.message
    assert result.epochs_done == 1
    for k, v in t.module.state_dict().items():
        assert torch.equal(v, spoil.good[k])


def test_exception_inside_a_step_fails_the_run_and_keeps_checkpoints(tmp_path):
    class Boom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = mlp()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 14:  # second epoch (9 train steps + 1 validation batch per epoch)
                raise RuntimeError("disk on fire")
            return self.inner(x)

    seen = []

    class OnError(Callback):
        def on_exception(self, trainer, error):
            seen.append(error)

    t = make(model=Boom(), checkpoint_dir=str(tmp_path), callbacks=[OnError()])
    result = t.fit(blobs())
    assert result.status == Status.FAILED and "disk on fire" in result.message and "epoch 2" in result.message
    assert len(seen) == 1 and isinstance(seen[0], RuntimeError)
    assert json.loads((tmp_path / "last" / "meta.json").read_text())["epoch"] == 1  # epoch 1's checkpoint stays


def test_pause_resume_and_stop_from_another_thread():
    gate = threading.Event()
    statuses = []

    class Slow(Callback):
        def on_train_batch_end(self, trainer, logs):
            if logs["step"] == 3:
                gate.set()
            statuses.append(trainer.status)

    t = make(callbacks=[Slow()], epochs=1000)
    result_box = {}
    worker = threading.Thread(target=lambda: result_box.setdefault("r", t.fit(blobs())))
    worker.start()
    assert gate.wait(10)
    t.pause()
    for _ in range(100):
        if t.status == Status.PAUSED:
            break
        threading.Event().wait(0.02)
    assert t.status == Status.PAUSED
    step = t.global_step
    threading.Event().wait(0.2)
    assert t.global_step == step  # nothing moves while paused
    t.resume()
    for _ in range(200):
        if t.global_step > step:
            break
        threading.Event().wait(0.02)
    assert t.global_step > step
    t.request_stop()
    worker.join(10)
    assert not worker.is_alive()
    assert result_box["r"].status == Status.STOPPED and t.status == Status.STOPPED
    assert result_box["r"].epochs_done < 1000
    assert t.eta_seconds is not None


def test_early_stopping_restores_the_best_weights():
    class Snap(Callback):
        def __init__(self):
            self.at = {}

        def on_train_epoch_end(self, trainer, logs):
            self.at[int(logs["epoch"])] = (logs["val_loss"], weights(trainer))

    snap = Snap()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 2, generator=g), torch.randint(0, 4, (96,), generator=g)  # labels are noise:
    noise = TensorData(x[:64], y[:64], x[64:], y[64:])  # the net can only memorise, so val_loss turns up
    t = make(model=mlp(), lr=0.2, epochs=60, callbacks=[snap],
             early_stopping={"monitor": "val_loss", "patience": 2, "restore_best": True})
    result = t.fit(noise)
    assert result.status == Status.FINISHED and "early stopping" in result.message
    assert result.epochs_done < 60
    best_epoch = min(snap.at, key=lambda e: snap.at[e][0])
    assert result.best_epoch == best_epoch
    for k, v in snap.at[best_epoch][1].items():
        assert torch.equal(v, weights(t)[k])


def test_grad_clip_and_l1_change_the_run():
    base = [s["loss"] for s in make(epochs=1).fit(blobs()).history["steps"]]
    clipped = [s["loss"] for s in make(epochs=1, grad_clip=0.01).fit(blobs()).history["steps"]]
    l1 = make(epochs=1, l1=0.01)
    l1_steps = [s["loss"] for s in l1.fit(blobs()).history["steps"]]
    assert base[0] == clipped[0] and base[1:] != clipped[1:]
    assert l1_steps[0] > base[0]  # the penalty is part of the reported loss


def test_regression_metrics_match_their_definitions():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(200, 1, generator=g)
    model = torch.nn.Linear(3, 1)
    t = Trainer(model, torch.nn.MSELoss(), torch.optim.Adam(model.parameters(), 0.05),
                TrainConfig(epochs=30, batch_size=20, shuffle=False), metric=REGRESSION)
    result = t.fit(TensorData(x[:150], y[:150], x[150:], y[150:]))
    last = result.history["epochs"][-1]
    with torch.no_grad():
        pred = model(x[150:])
    mae = float((pred - y[150:]).abs().mean())
    r2 = 1 - float(((pred - y[150:]) ** 2).sum() / ((y[150:] - y[150:].mean()) ** 2).sum())
    assert last["val_mae"] == pytest.approx(mae, rel=1e-5)
    assert last["val_r2"] == pytest.approx(r2, rel=1e-5) and r2 > 0.95


def test_snapshots_are_numpy_and_do_not_change_the_run():
    def cnn():
        g = engine.Graph()
        x = g.add_node("Input", shape=[1, 8, 8])
        prev = x
        for layer, params in (("Conv2d", {"out_channels": 4, "kernel_size": 3}), ("BatchNorm2d", {}),
                              ("ReLU", {}), ("Dropout", {"p": 0.2}), ("Flatten", {}),
                              ("Linear", {"out_features": 2})):
            nid = g.add_node(layer, params)
            g.connect(prev, nid)
            prev = nid
        return engine.build_model(g, seed=0)

    gx = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=gx)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long()
    data = TensorData(x[:48], y[:48], x[48:], y[48:])

    def run(snapshots):
        model = cnn()
        torch.manual_seed(0)
        cbs = [snapshots] if snapshots else []
        t = Trainer(model, torch.nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), 0.01),
                    TrainConfig(epochs=2, batch_size=8), callbacks=cbs)
        return [s["loss"] for s in t.fit(data).history["steps"]], weights(t)

    got = []
    snaps = Snapshots(every=3, sink=got.append)
    with_snaps, w1 = run(snaps)
    without, w2 = run(None)
    assert with_snaps == without and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert len(got) == 4 and [s["step"] for s in got] == [3, 6, 9, 12]
    first = got[0]
    assert first["kernel_layer"] == "conv2d_1" and first["kernels"].shape == (4, 1, 3, 3)
    assert isinstance(first["kernels"], np.ndarray) and first["features"].shape == (4, 6, 6)
    assert not np.array_equal(got[0]["kernels"], got[-1]["kernels"])  # the filters learn
    lin = first["layers"]["linear_1"]["weight"]
    assert lin["hist"].sum() == 4 * 6 * 6 * 2 and lin["grad_norm"] > 0 and lin["norm"] > 0


def test_running_logs_are_the_epoch_so_far():
    seen = {}

    class Watch(Callback):
        def on_train_batch_end(self, trainer, logs):
            seen[int(logs["step"])] = trainer.running_logs()

    result = make(callbacks=[Watch()], epochs=1).fit(blobs())  # 144 training samples: 9 steps of 16
    steps = result.history["steps"]
    assert seen[1]["loss"] == pytest.approx(steps[0]["loss"])
    assert seen[3]["loss"] == pytest.approx(sum(s["loss"] for s in steps[:3]) / 3)
    assert seen[9]["loss"] == pytest.approx(result.history["epochs"][0]["loss"])
    assert seen[9]["acc"] == pytest.approx(result.history["epochs"][0]["acc"])


def test_a_stop_before_an_epoch_starts_records_no_epoch():
    class StopAtEpochEnd(Callback):
        def on_train_epoch_end(self, trainer, logs):
            if logs["epoch"] == 1:
                trainer.request_stop("stop between epochs")

    t = make(callbacks=[StopAtEpochEnd()], epochs=5)
    result = t.fit(blobs())
    assert result.status == Status.STOPPED and result.epochs_done == 1
    assert [e["epoch"] for e in result.history["epochs"]] == [1]


def test_weights_broken_at_the_end_of_an_epoch_are_not_kept_or_checkpointed(tmp_path):
    class Explode(Callback):
        def on_train_batch_end(self, trainer, logs):
            if logs["step"] == 18:  # the last step of epoch 2
                with torch.no_grad():
                    next(trainer.module.parameters()).fill_(float("nan"))

    t = make(callbacks=[Explode()], epochs=4, checkpoint_dir=str(tmp_path))
    result = t.fit(blobs())
    assert result.status == Status.FAILED and "end of epoch 2" in result.message
    assert all(torch.isfinite(p).all() for p in t.module.parameters())
    assert json.loads((tmp_path / "last" / "meta.json").read_text())["epoch"] == 1


def test_resuming_with_other_batches_is_refused(tmp_path):
    make(epochs=1, checkpoint_dir=str(tmp_path)).fit(blobs())
    t = make(epochs=2, batch_size=8)
    with pytest.raises(engine.TrainingError, match="batch size 16.*--batch-size 16"):
        t.fit(blobs(), resume_from=tmp_path / "last")


def test_early_stopping_restores_the_same_best_weights_after_a_resume(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 2, generator=g), torch.randint(0, 4, (96,), generator=g)
    noise = TensorData(x[:64], y[:64], x[64:], y[64:])
    es = {"monitor": "val_loss", "patience": 3, "restore_best": True}
    full = make(lr=0.2, epochs=40, early_stopping=es)
    r_full = full.fit(noise)
    part = make(lr=0.2, epochs=40, early_stopping=es, checkpoint_dir=str(tmp_path),
                callbacks=[StopAt(r_full.best_epoch * 4 + 5)])  # 4 steps an epoch: stop after the best one
    assert part.fit(noise).status == Status.STOPPED
    rest = make(lr=0.2, epochs=40, early_stopping=es, checkpoint_dir=str(tmp_path))
    r_rest = rest.fit(noise, resume_from=tmp_path / "last")
    assert r_rest.best_epoch == r_full.best_epoch and r_rest.epochs_done == r_full.epochs_done
    for k, v in weights(full).items():
        assert torch.equal(v, weights(rest)[k]), k


def test_a_last_batch_of_one_sample_joins_the_one_before():
    g = engine.Graph()
    prev = g.add_node("Input", shape=[2])
    for layer, params in (("Linear", {"out_features": 8}), ("BatchNorm1d", {}), ("ReLU", {}),
                          ("Linear", {"out_features": 4})):
        nid = g.add_node(layer, params)
        g.connect(prev, nid)
        prev = nid
    data = blobs(n=88)  # 66 training samples with batch 16: 4 batches of 16 and one of 2 ...
    data = TensorData(data.train_x[:65], data.train_y[:65], data.val_x, data.val_y)  # ... now 4 and one of 1
    t = make(model=engine.build_model(g, seed=0), epochs=2)
    result = t.fit(data)
    assert result.status == Status.FINISHED, result.message
    assert result.steps_done == 8  # 4 steps an epoch, the last of 17 samples


def test_the_checkpointed_step_history_reads_back_exactly(tmp_path):
    t = make(checkpoint_dir=str(tmp_path), epochs=2)
    t.fit(blobs())
    again = make(checkpoint_dir=str(tmp_path / "other"), epochs=2)
    again.load_checkpoint(tmp_path / "last")
    assert again.history.steps == t.history.steps  # ints stay ints, floats bit for bit
    assert all(isinstance(s["step"], int) and isinstance(s["loss"], float) for s in again.history.steps)
    assert again.history.epochs == t.history.epochs


def test_accuracy_leaves_out_the_targets_the_loss_ignores():
    from engine.training import ACCURACY, _Accum
    out = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 2, 1])
    y_pad = torch.tensor([0, 1, 2, 1, 2])  # a fifth, padding target (2 = the ignored label)
    out_pad = torch.cat([out, torch.tensor([[9.0, 0.0, 0.0]])])
    plain = _Accum().add(out, y, 0.0, 4, ACCURACY)
    assert plain["acc"] == 0.75
    a = _Accum()
    logs = a.add(out_pad, y_pad, 0.0, 5, ACCURACY, ignore=2)
    assert logs["acc"] == 2 / 3  # rows 0, 1 and 3 count; both rows with target 2 are left out
    assert a.epoch_logs("", ACCURACY)["acc"] == 2 / 3
    # The trainer takes the index from the loss, as CrossEntropyLoss(ignore_index=...) skips it in the loss.
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    assert Trainer(model, torch.nn.CrossEntropyLoss(ignore_index=2), opt)._ignore == 2
    assert Trainer(model, torch.nn.CrossEntropyLoss(), opt)._ignore is None


def test_an_error_is_placed_in_its_step_or_after_its_epoch():
    """A failing batch hook names its step; one after the epoch (validation, a callback, the checkpoint) names the
    epoch it ended, and the engine's own errors keep their message without a class name."""
    import torch

    from engine.callbacks import Callback
    from engine.errors import DataError
    from engine.training import TensorData, TrainConfig, Trainer

    class Boom(Callback):
        def __init__(self, where: str):
            self.where = where

        def on_train_batch_end(self, trainer, logs):
            if self.where == "batch" and logs["batch"] == 2:
                raise RuntimeError("bad batch hook")

        def on_train_epoch_end(self, trainer, logs):
            if self.where == "epoch":
                raise DataError("the data file vanished")

    messages = []
    for where in ("batch", "epoch"):
        torch.manual_seed(0)
        m = torch.nn.Linear(3, 2)
        trainer = Trainer(m, torch.nn.CrossEntropyLoss(), torch.optim.SGD(m.parameters(), 0.1),
                          TrainConfig(epochs=2, batch_size=4), callbacks=[Boom(where)])
        result = trainer.fit(TensorData(torch.randn(16, 3), torch.randint(0, 2, (16,))))
        assert result.status == "failed"
        messages.append(result.message)
    assert messages == ["training stopped by an error in epoch 1, step 2: RuntimeError: bad batch hook",
                        "training stopped by an error at the end of epoch 1: the data file vanished"]


def test_history_keeps_steps_whose_figures_change():
    """A step may log a figure the others do not (a callback's extra key) or leave one out: each column stays
    aligned with the steps, None where a step did not log it."""
    h = History()
    h.on_train_batch_end(None, {"loss": 1.0, "acc": 0.5, "step": 1})
    h.on_train_batch_end(None, {"loss": 0.9, "acc": 0.6, "step": 2})
    h.on_train_batch_end(None, {"loss": 0.8, "step": 3, "grad": 2.0})
    h.on_train_batch_end(None, {"loss": 0.7, "acc": 0.8, "step": 4, "grad": 1.5})
    h.on_train_batch_end(None, {"acc": 0.9, "loss": 0.6, "step": 5, "grad": 1.0})  # another order
    assert h.column("loss") == [1.0, 0.9, 0.8, 0.7, 0.6]
    assert h.column("acc") == [0.5, 0.6, None, 0.8, 0.9]
    assert h.column("grad") == [None, None, 2.0, 1.5, 1.0]
    assert h.steps[2] == {"loss": 0.8, "step": 3, "grad": 2.0}
    assert h.steps[4] == {"loss": 0.6, "acc": 0.9, "step": 5, "grad": 1.0}


@pytest.mark.parametrize("channels", [1, 3])
def test_image_batches_reach_the_model_in_its_layout(channels):
    """The Trainer turns image training into channels-last (faster convolutions on the CPU): every batch, in
    training and in validation, must reach the first convolution in that layout too, or it runs a slow mixed
    path. (index_select would hand back row-major rows of a 3-channel batch.)"""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(channels, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3))
    seen = []
    model[0].register_forward_pre_hook(lambda m, args: seen.append(
        args[0].is_contiguous(memory_format=torch.channels_last)))
    x, y = torch.randn(40, channels, 8, 8), torch.randint(0, 3, (40,))
    trainer = Trainer(model, torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                      TrainConfig(epochs=1, batch_size=16))
    result = trainer.fit(TensorData(x[:30], y[:30], x[30:], y[30:]))
    assert result.status == Status.FINISHED
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert len(seen) == 3 and all(seen)  # 2 training batches (16 + 14) and 1 validation batch


def test_channels_last_can_be_turned_off():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    seen = []
    model[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous()))
    x, y = torch.randn(20, 3, 8, 8), torch.randint(0, 3, (20,))
    trainer = Trainer(model, torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                      TrainConfig(epochs=1, batch_size=10, channels_last=False))
    assert trainer.fit(TensorData(x, y)).status == Status.FINISHED
    assert seen == [True, True] and model[0].weight.is_contiguous()
