"""The training coach and the learning-rate finder on real training: each warning is caused by a network built to
cause it (dead ReLUs from a very negative bias, vanishing gradients through a deep sigmoid stack, exploding
gradients from a huge initialisation, overfitting of a tiny training set, a learning rate of 10 or 1e-7) and is
absent from a healthy run; warnings come once until they clear; the figures are plain numbers. The LR finder
suggests a sensible rate, stops when the loss blows up and leaves the network and the optimizer as it found them."""
from __future__ import annotations

import json
import math

import pytest
import torch
from helpers.graphs import chain

import engine
from engine.callbacks import Callback, Snapshots
from engine.coach import KINDS, Coach
from engine.errors import TrainingError
from engine.lr_finder import LRFinderResult, find_lr, lr_range_test
from engine.runner import prepare
from engine.training import REGRESSION, TensorData, TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/engine/conftest.py


def mlp(n_in=2, width=16, n_out=2):
    return chain([n_in], ("Linear", {"out_features": width}), ("ReLU", {}), ("Linear", {"out_features": width}),
                 ("ReLU", {}), ("Linear", {"out_features": n_out}))


MOONS = {"source": "moons", "params": {"n_samples": 600, "noise": 0.2}, "split": {"val": 0.2, "test": 0.0}}
LINE = {"source": "line", "params": {}, "split": {"val": 0.2, "test": 0.0}}


def project(graph, data=MOONS, loss="CrossEntropy", opt="Adam", lr=1e-2, epochs=4, batch_size=32):
    return engine.Project(graph=graph, name="coached", data=data, loss={"type": loss, "params": {}},
                          optimizer={"type": opt, "params": {"lr": lr}},
                          training={"epochs": epochs, "batch_size": batch_size, "device": "cpu", "seed": 0})


def coached(proj, every=5, tweak=None, extra=(), **kw):
    """Train the project with a Coach; `tweak(model)` changes the built network before training."""
    heard = []
    coach = Coach(every=every, on_warning=heard.append, **kw)
    run = prepare(proj, callbacks=[coach, *extra])
    if tweak is not None:
        with torch.no_grad():
            tweak(run.trainer.module)
    result = run.trainer.fit(run.data)
    assert heard == coach.warnings  # the listener hears each warning as it is given
    return coach, run, result


def kinds(coach):
    return [(w["kind"], w["node"]) for w in coach.warnings]


def check_plain(warning):
    assert set(warning) == {"kind", "severity", "node", "message", "cure", "step", "epoch", "figures"}
    assert warning["kind"] in KINDS and warning["severity"] in ("info", "warning")
    assert type(warning["step"]) is int and type(warning["epoch"]) is int and warning["step"] >= 1
    assert all(type(v) is float for v in warning["figures"].values())
    for text in (warning["message"], warning["cure"]):
        assert text[0].isupper() and text.endswith(".") and len(text) > 40
    json.dumps(warning)


# ---- a healthy run ------------------------------------------------------------------------------------

def test_a_healthy_run_gets_no_warning_and_plain_figures_per_layer():
    coach, run, result = coached(project(mlp(), epochs=8))
    assert result.ok and result.history["epochs"][-1]["val_acc"] > 0.9
    assert coach.warnings == [] and coach.active == []
    assert coach.count == 1 + result.steps_done // 5  # the first step, then every 5th
    layers = coach.layer_figures()
    assert list(layers) == ["relu_1", "relu_2", "linear_1", "linear_2", "linear_3"]
    for relu in ("relu_1", "relu_2"):
        assert 0.0 <= layers[relu]["dead"] < 0.5 and layers[relu]["units"] == 16.0
    module = run.trainer.module
    for node in ("linear_1", "linear_2", "linear_3"):
        fig = layers[node]
        grads = [p.grad for p in getattr(module, node).parameters()]
        assert fig["grad_norm"] == pytest.approx(float(torch.sqrt(sum((g * g).sum() for g in grads))), rel=1e-4)
        weights = torch.sqrt(sum((p.detach() ** 2).sum() for p in getattr(module, node).parameters()))
        assert fig["weight_norm"] == pytest.approx(float(weights), rel=1e-4)
        assert 1e-4 < fig["update_ratio"] < 0.1  # Adam 1e-2: a healthy step changes weights by a fraction of a %
    assert coach.figures["step"] == result.steps_done and coach.figures["lr"] == pytest.approx(1e-2)
    json.dumps(coach.figures)
    # the hooks were only there for the sampled steps
    assert all(not m._forward_hooks for m in module.modules())


# ---- dead ReLUs ---------------------------------------------------------------------------------------

def kill_first_relu(model):
    model.linear_1.bias.fill_(-10.0)  # pre-activations far below 0 for standardised inputs: relu_1 never fires


def test_dead_relus_are_found_per_layer_and_warned_once():
    coach, _, _ = coached(project(mlp(), epochs=3), tweak=kill_first_relu)
    dead = [w for w in coach.warnings if w["kind"] == "dead_relu"]
    assert [w["node"] for w in dead] == ["relu_1"]  # once, although every later sample sees it again
    w = dead[0]
    check_plain(w)
    assert w["severity"] == "warning" and w["figures"]["dead_share"] == 1.0 and w["step"] <= 10
    assert "100%" in w["message"] and "relu_1" in w["message"]
    assert "LeakyReLU" in w["cure"] and "learning rate" in w["cure"] and "BatchNorm" in w["cure"]
    assert coach.layer_figures()["relu_1"]["dead"] == 1.0
    assert coach.layer_figures()["linear_1"]["grad_norm"] == 0.0
    # the missing gradient is put down to the dead units, not to vanishing gradients
    assert ("vanishing_gradients", "linear_1") not in kinds(coach)
    assert coach.active == [w]


class SetBias(Callback):
    """At the given steps, set linear_1's bias: a dead layer comes back to life, or dies again."""

    def __init__(self, plan):
        self.plan = plan

    def on_train_batch_end(self, trainer, logs):
        if logs["step"] in self.plan:
            with torch.no_grad():
                trainer.module.linear_1.bias.fill_(self.plan[logs["step"]])


def test_a_warning_clears_when_the_problem_goes_and_comes_back_when_it_returns():
    coach, _, _ = coached(project(mlp(), epochs=5), tweak=kill_first_relu, window=3,
                          extra=[SetBias({20: 0.5, 45: -10.0})])
    dead = [w for w in coach.warnings if w["kind"] == "dead_relu"]
    assert [w["node"] for w in dead] == ["relu_1", "relu_1"]
    assert dead[0]["step"] <= 10 and 45 < dead[1]["step"] <= 65
    assert len(coach.warnings) == len(set((w["kind"], w["node"], w["step"]) for w in coach.warnings))


def test_dead_units_are_channels_of_convolutions():
    torch.manual_seed(0)
    g = chain([1, 8, 8], ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), ("ReLU", {}),
              ("Flatten", {}), ("Linear", {"out_features": 2}))
    model = engine.build_model(g, seed=0)
    with torch.no_grad():
        model.conv2d_1.bias[:3] = -50.0  # three of the four channels never fire
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 2, (64,))
    coach = Coach(every=2)
    trainer = Trainer(model, torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=1e-3),
                      TrainConfig(epochs=2, batch_size=16, device="cpu"), callbacks=[coach])
    assert trainer.fit(TensorData(x, y)).ok
    fig = coach.layer_figures()["relu_1"]
    assert fig["units"] == 4.0 and fig["dead"] == 0.75
    assert [w["node"] for w in coach.warnings if w["kind"] == "dead_relu"] == ["relu_1"]


# ---- gradients -----------------------------------------------------------------------------------------

def test_a_deep_sigmoid_stack_has_vanishing_gradients():
    layers = []
    for _ in range(10):
        layers += [("Linear", {"out_features": 32}), ("Sigmoid", {})]
    coach, _, _ = coached(project(chain([2], *layers, ("Linear", {"out_features": 2})), epochs=1))
    assert kinds(coach) == [("vanishing_gradients", "linear_1")]
    w = coach.warnings[0]
    check_plain(w)
    assert w["figures"]["ratio"] < 1e-5 and w["figures"]["layers"] == 11.0
    assert "linear_1" in w["message"] and "ReLU" in w["cure"] and "residual" in w["cure"]
    figs = coach.layer_figures()
    assert figs["linear_1"]["grad_norm"] < 1e-3 * figs["linear_11"]["grad_norm"]


def test_a_huge_initialisation_gives_exploding_gradients():
    layers = []
    for _ in range(6):
        layers += [("Linear", {"out_features": 64}), ("ReLU", {})]
    graph = chain([1], *layers, ("Linear", {"out_features": 1}))

    def blow_up(model):
        for p in model.parameters():
            p.mul_(5.0)  # every layer now multiplies the signal about 2×, and no normalisation rescues it

    coach, _, _ = coached(project(graph, LINE, loss="MSE", opt="SGD", lr=1e-6, epochs=2), tweak=blow_up)
    assert ("exploding_gradients", None) in kinds(coach)
    w = next(w for w in coach.warnings if w["kind"] == "exploding_gradients")
    check_plain(w)
    assert w["figures"]["grad_norm"] > 1e3 and w["figures"]["grad_to_weight"] > 10
    assert "clipping" in w["cure"] and "BatchNorm" in w["cure"]
    # the same network at its normal initialisation is fine
    calm, _, _ = coached(project(graph, LINE, loss="MSE", opt="SGD", lr=1e-2, epochs=2))
    assert "exploding_gradients" not in [k for k, _ in kinds(calm)]


# ---- overfitting -----------------------------------------------------------------------------------------

def test_a_big_network_on_a_tiny_training_set_overfits():
    tiny = {"source": "moons", "params": {"n_samples": 80, "noise": 0.35}, "split": {"val": 0.5, "test": 0.0}}
    coach, _, result = coached(project(mlp(width=128), tiny, epochs=15, batch_size=64))
    over = [w for w in coach.warnings if w["kind"] == "overfitting"]
    assert len(over) == 1
    w = over[0]
    check_plain(w)
    assert w["severity"] == "warning" and w["node"] is None and w["epoch"] >= 4
    epochs = result.history["epochs"]
    f = w["figures"]
    assert f["val_loss"] == pytest.approx(epochs[w["epoch"] - 1]["val_loss"])
    assert f["val_loss"] > f["best_val_loss"] and f["train_loss"] < epochs[int(f["best_epoch"]) - 1]["loss"]
    assert "Dropout" in w["cure"] and "weight decay" in w["cure"] and "early stopping" in w["cure"]


def test_a_growing_gap_is_information_then_a_rise_a_warning_and_a_new_best_clears_it():
    # The epoch figures are given to the coach directly (a real Trainer, a real Coach), so each case is exact.
    model = engine.build_model(mlp(), seed=0)
    trainer = Trainer(model, torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                      TrainConfig(epochs=1, device="cpu"))
    coach = Coach(overfit_epochs=3)
    coach.on_fit_start(trainer, {"epoch": 0, "step": 0})
    said = []
    for epoch, (train, val) in enumerate([(1.0, 0.9), (0.6, 0.7), (0.4, 0.65), (0.25, 0.6), (0.15, 0.62),
                                          (0.1, 0.64), (0.08, 0.66), (0.06, 0.7), (0.05, 0.55)], 1):
        coach.on_train_epoch_end(trainer, {"epoch": epoch, "step": 10 * epoch, "loss": train, "val_loss": val})
        said.append([(w["severity"], w["epoch"]) for w in coach.active])
    # epoch 4: the gap grew for 3 epochs and val is more than 2x train, but val is at its best: information only
    assert said[:4] == [[], [], [], [("info", 4)]]
    # epoch 7: 3 epochs past the best (epoch 4), clearly above it, while training kept falling: a warning
    assert said[4:8] == [[("info", 4)], [("info", 4)], [("warning", 7)], [("warning", 7)]]
    # epoch 9: a new best validation loss clears it
    assert said[8] == []
    assert [(w["severity"], w["epoch"]) for w in coach.warnings] == [("info", 4), ("warning", 7)]
    assert "3 epochs" in coach.warnings[1]["message"] and "epoch 4" in coach.warnings[1]["message"]


def test_without_validation_there_is_no_overfitting_check():
    data = dict(MOONS, split={"val": 0.0, "test": 0.0})
    coach, _, _ = coached(project(mlp(width=64), data, epochs=3))
    assert coach.warnings == []


# ---- the learning rate ------------------------------------------------------------------------------------

def test_a_learning_rate_of_10_on_a_regression_is_too_high():
    coach, run, result = coached(project(chain([1], ("Linear", {"out_features": 1})), LINE, loss="MSE", opt="SGD",
                                         lr=10.0, epochs=3))
    high = [w for w in coach.warnings if w["kind"] == "lr_too_high"]
    assert len(high) == 1 and high[0]["step"] <= 10  # early: long before the loss overflows
    w = high[0]
    check_plain(w)
    assert w["figures"]["lr"] == 10.0 and w["figures"]["loss"] > 2 * w["figures"]["best_loss"]
    assert "to 1" in w["cure"] and "learning-rate finder" in w["cure"]


def test_a_classifier_made_worse_than_untrained_by_its_learning_rate():
    coach, _, _ = coached(project(mlp(), opt="SGD", lr=10.0, epochs=4))
    w = next(w for w in coach.warnings if w["kind"] == "lr_too_high")
    assert w["figures"]["loss"] > w["figures"]["first_loss"]
    assert "too high" in w["message"]


def test_a_learning_rate_of_1e_7_is_too_low():
    coach, _, _ = coached(project(mlp(), lr=1e-7, epochs=8))
    assert kinds(coach) == [("lr_too_low", None)]
    w = coach.warnings[0]
    check_plain(w)
    assert w["severity"] == "info" and w["step"] >= 100
    assert w["figures"]["update_ratio"] < 1e-5 and abs(w["figures"]["progress"]) < 0.1
    factor = w["figures"]["factor"]
    assert factor >= 100 and f"{factor:g}×" in w["cure"] and f"{1e-7 * factor:g}" in w["cure"]


# ---- costs and manners ------------------------------------------------------------------------------------

def test_forward_passes_without_gradients_are_not_counted_and_no_hook_is_left():
    # Snapshots runs the network at every step (no gradients, evaluation mode) on a sample so large that it switches
    # units of the dead layer on; validation runs too. The layer must still read 100 % dead, and a sampled step's
    # hooks must be gone when the run ends, also on failure.
    snaps = Snapshots(every=1, feature_layer="relu_1", sample=torch.full((1, 2), 50.0))
    coach, run, _ = coached(project(mlp(), epochs=2), tweak=kill_first_relu, every=3, extra=[snaps])
    assert coach.layer_figures()["relu_1"]["dead"] == 1.0 and snaps.count > 0
    assert (snaps.last["features"] > 0).any()  # the sample did switch units on
    assert all(not m._forward_hooks for m in run.trainer.module.modules())

    class Boom(Callback):
        def on_train_batch_end(self, trainer, logs):
            if logs["step"] == 5:
                raise RuntimeError("boom")

    coach, run, result = coached(project(mlp(), epochs=2), every=5, extra=[Boom()])
    assert not result.ok and all(not m._forward_hooks for m in run.trainer.module.modules())


def test_a_broken_listener_does_not_end_the_run():
    def broken(warning):
        raise ValueError("listener bug")

    coach = Coach(every=5, on_warning=broken)
    run = prepare(project(mlp(), epochs=2), callbacks=[coach])
    with torch.no_grad():
        kill_first_relu(run.trainer.module)
    result = run.trainer.fit(run.data)
    assert result.ok and coach.warnings and any("listener failed" in n for n in result.notes)


def test_regression_trainer_without_relus_still_gets_gradient_figures():
    x = torch.linspace(-1, 1, 64).reshape(-1, 1)
    model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    coach = Coach(every=2)
    trainer = Trainer(model, torch.nn.MSELoss(), torch.optim.Adam(model.parameters(), lr=1e-2),
                      TrainConfig(epochs=2, batch_size=16, device="cpu"), metric=REGRESSION, callbacks=[coach])
    assert trainer.fit(TensorData(x, 3 * x)).ok
    figs = coach.layer_figures()
    assert set(figs) == {"0", "2"} and coach.warnings == [] and figs["0"]["update_ratio"] > 0


def test_a_layer_the_optimizer_does_not_update_has_no_update_ratio():
    x = torch.linspace(-1, 1, 64).reshape(-1, 1)
    model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    coach = Coach(every=2)
    trainer = Trainer(model, torch.nn.MSELoss(), torch.optim.Adam(model[2].parameters(), lr=1e-2),  # 0 is frozen
                      TrainConfig(epochs=2, batch_size=16, device="cpu"), metric=REGRESSION, callbacks=[coach])
    assert trainer.fit(TensorData(x, 3 * x)).ok
    figs = coach.layer_figures()
    assert "update_ratio" not in figs["0"] and figs["0"]["grad_norm"] > 0 and figs["2"]["update_ratio"] > 0


# ---- the LR finder ----------------------------------------------------------------------------------------

def moons_tensors(n=400, seed=0):
    run = prepare(project(mlp(), dict(MOONS, params={"n_samples": n, "noise": 0.2, "seed": seed})))
    return run.data


def test_the_range_test_suggests_a_sensible_rate_and_restores_everything():
    data = moons_tensors()
    model = engine.build_model(mlp(), seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    # some optimizer state and gradients to be kept
    loss_fn = torch.nn.CrossEntropyLoss()
    loss_fn(model(data.train_x[:32]), data.train_y[:32]).backward()
    opt.step()
    model.train(False)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {k: v.clone() for k, v in opt.state[model.linear_1.weight].items()}
    grad = model.linear_1.weight.grad.clone()

    result = lr_range_test(model, loss_fn, opt, data, steps=80)
    assert isinstance(result, LRFinderResult)
    assert 1e-4 <= result.suggestion <= 1.0 and result.suggestion < result.min_loss_lr
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) > 20
    assert all(type(v) is float for v in result.lrs + result.losses + result.smoothed)
    assert result.lrs[0] == pytest.approx(1e-7)
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:]))  # exponential: constant ratio
    ratio = result.lrs[1] / result.lrs[0]
    assert ratio == pytest.approx((10 / 1e-7) ** (1 / 79)) and result.lrs[5] / result.lrs[4] == pytest.approx(ratio)
    assert f"{result.suggestion:.2g}" in result.reason
    json.dumps(result.to_dict())
    # untouched: weights, optimizer moments and learning rate, gradients, mode
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for k, v in opt.state[model.linear_1.weight].items():
        assert torch.equal(v, moments[k]), k
    assert opt.param_groups[0]["lr"] == 1e-3 and torch.equal(model.linear_1.weight.grad, grad)
    assert not model.training
    # the same seed gives the same curve
    again = lr_range_test(model, loss_fn, opt, (data.train_x, data.train_y), steps=80)
    assert again.losses == result.losses and again.suggestion == result.suggestion


def test_the_range_test_stops_when_the_loss_blows_up_and_keeps_the_groups_ratios():
    x = torch.linspace(-1, 1, 256).reshape(-1, 1)
    model = torch.nn.Linear(1, 1)
    # two groups, as a layer with an lr factor gives: the bias learns at a tenth of the weight's rate
    opt = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.01}], lr=0.1)
    seen = []
    model.register_forward_pre_hook(lambda m, i: seen.append([g["lr"] for g in opt.param_groups]))
    result = lr_range_test(model, torch.nn.MSELoss(), opt, (x, 2 * x + 1), start=1e-4, end=1e3, steps=100)
    assert len(result.lrs) <= len(seen) <= len(result.lrs) + 1  # a step whose loss is not finite is not kept
    for (w, b), lr in zip(seen, result.lrs, strict=False):
        assert w == pytest.approx(lr) and b == pytest.approx(lr / 10)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    # SGD on this line diverges for lr above about 3: the test stops soon after, far from 1000
    assert result.diverged and len(result.lrs) < 100 and 2 < result.lrs[-1] < 50
    assert result.smoothed[-1] > 4 * min(result.smoothed)
    assert 1e-3 < result.suggestion < 3 and "blew up" in result.reason
    assert all(math.isfinite(v) for v in result.losses)


def test_find_lr_on_a_project():
    result = find_lr(project(mlp()), steps=60)
    assert 1e-4 <= result.suggestion <= 1.0 and len(result.lrs) == len(result.smoothed)


@pytest.mark.parametrize("kw, words", [({"start": 0.0}, "above 0"), ({"start": 1.0, "end": 0.1}, "larger"),
                                       ({"steps": 2}, "at least 5"), ({"smooth": 1.0}, "below 1"),
                                       ({"diverge": 1.0}, "above 1")])
def test_the_range_test_refuses_settings_that_cannot_work(kw, words):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(TrainingError, match=words):
        lr_range_test(model, torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                      (torch.randn(8, 2), torch.zeros(8, dtype=torch.long)), **kw)
    with pytest.raises(TrainingError, match="TensorData"):
        lr_range_test(model, torch.nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), [1, 2, 3])


def test_the_time_the_relu_hooks_take_counts_as_coaching():
    """On a sampled step the coach watches every ReLU's output during the forward pass; that time is part of
    `seconds`, which the app uses to keep the coach near 1 % of a run."""
    run = prepare(project(mlp()), callbacks=[])
    coach = Coach(every=5)
    coach.on_fit_start(run.trainer, {"epoch": 0, "step": 0})  # armed for the next step
    model = run.trainer.module
    model.train()
    before = coach.seconds
    with torch.enable_grad():
        model(torch.randn(64, 2))
    assert coach.seconds > before and len(coach._seen) == 2  # both ReLUs seen, their time counted
    seen = coach.seconds
    with torch.no_grad():  # a snapshot's or the validation's forward pass is not watched
        model(torch.randn(64, 2))
    assert coach.seconds == seen
