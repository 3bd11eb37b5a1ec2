"""Losses, optimizers and schedules: built from their specs they match hand-made PyTorch, and they refuse helpfully."""
from __future__ import annotations

import copy
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim import lr_scheduler

from engine.errors import ParamError, SpecError
from engine.losses import LossSpec, all_losses, check_loss_fit, get_loss
from engine.optimizers import OptimizerSpec, ScheduleSpec, all_optimizers, all_schedules, get_optimizer, get_schedule

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_specs_loads_no_torch():
    code = ("import sys, engine.losses, engine.optimizers\n"
            "engine.losses.get_loss('MSE').explain(); engine.optimizers.get_schedule('step').explain()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------------
# Every spec is complete

ALL_SPECS = all_losses() + all_optimizers() + all_schedules()


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.type)
def test_every_spec_explains_itself(spec):
    assert spec.summary and spec.formula and len(spec.doc) > 80
    assert spec.validate_params({}) == spec.defaults()
    text = spec.explain()
    assert text.startswith(f"{spec.type} — {spec.summary}")
    assert spec.doc in text and spec.formula in text
    for p in spec.params:
        assert p.doc and f"  {p.name} (default" in text


def test_registries_have_the_expected_names():
    assert [s.type for s in all_losses()] == ["MSE", "L1", "Huber", "CrossEntropy", "NLL", "BCE", "BCEWithLogits"]
    assert [s.type for s in all_optimizers()] == ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"]
    assert [s.type for s in all_schedules()] == ["step", "cosine", "one-cycle", "reduce-on-plateau"]
    assert all(isinstance(s, LossSpec) for s in all_losses())
    assert all(isinstance(s, OptimizerSpec) for s in all_optimizers())
    assert all(isinstance(s, ScheduleSpec) for s in all_schedules())


def test_lookups_are_case_insensitive_and_know_pytorch_names():
    assert get_loss("crossentropy") is get_loss("CrossEntropy") is get_loss("CrossEntropyLoss")
    assert get_loss("bcewithlogitsloss").type == "BCEWithLogits"
    assert get_loss("mse") is get_loss("MSELoss")
    assert get_optimizer("adamw").type == "AdamW"
    assert get_optimizer("rmsprop").type == "RMSprop"
    assert get_schedule("One-Cycle") is get_schedule("onecycle") is get_schedule("OneCycleLR")
    assert get_schedule("ReduceLROnPlateau").type == "reduce-on-plateau"
    assert get_schedule("Cosine").type == "cosine"


@pytest.mark.parametrize("getter, name, near", [
    (get_loss, "CrossEntropie", "CrossEntropy"),
    (get_loss, "MSEE", "MSE"),
    (get_optimizer, "Adamm", "Adam"),
    (get_optimizer, "sgdd", "SGD"),
    (get_schedule, "cosin", "cosine"),
    (get_schedule, "one_cycel", "one-cycle"),
])
def test_unknown_names_suggest_the_nearest(getter, name, near):
    with pytest.raises(SpecError, match="did you mean") as e:
        getter(name)
    assert repr(name) in str(e.value) and near in str(e.value)


@pytest.mark.parametrize("getter, what", [(get_loss, "losses"), (get_optimizer, "optimizers"),
                                          (get_schedule, "schedules")])
def test_unknown_names_without_a_near_one_list_them_all(getter, what):
    with pytest.raises(SpecError, match=f"The {what} are: ") as e:
        getter("zzzz")
    assert "did you mean" not in str(e.value)
    with pytest.raises(SpecError):
        getter(None)


# ----------------------------------------------------------------------------------------------------
# Losses

LOSS_CLASSES = {"MSE": nn.MSELoss, "L1": nn.L1Loss, "Huber": nn.HuberLoss, "CrossEntropy": nn.CrossEntropyLoss,
                "NLL": nn.NLLLoss, "BCE": nn.BCELoss, "BCEWithLogits": nn.BCEWithLogitsLoss}


@pytest.mark.parametrize("name", list(LOSS_CLASSES))
def test_every_loss_builds_from_its_defaults(name):
    spec = get_loss(name)
    module = spec.build(spec.defaults())
    assert type(module) is LOSS_CLASSES[name]
    assert module.reduction == "mean"
    assert spec.torch_name == "nn." + LOSS_CLASSES[name].__name__


def test_loss_modules_carry_the_given_values():
    assert get_loss("Huber").build(get_loss("Huber").validate_params({"delta": 2.5})).delta == 2.5
    ce = get_loss("CrossEntropy")
    m = ce.build(ce.validate_params({"label_smoothing": 0.1, "ignore_index": 3}))
    assert m.label_smoothing == pytest.approx(0.1) and m.ignore_index == 3
    assert ce.build(ce.defaults()).ignore_index == -100  # PyTorch's "not set"
    assert get_loss("NLL").build(get_loss("NLL").validate_params({"ignore_index": 0})).ignore_index == 0
    bce = get_loss("BCEWithLogits")
    assert bce.build(bce.defaults()).pos_weight is None
    assert torch.equal(bce.build(bce.validate_params({"pos_weight": 3})).pos_weight, torch.tensor([3.0]))


def test_targets_say_what_labels_are_expected():
    for name in ("CrossEntropy", "NLL"):
        assert "class indices" in get_loss(name).target and get_loss(name).target_dtype == "int64"
    for name in ("MSE", "L1", "Huber", "BCEWithLogits"):
        assert get_loss(name).target.startswith("same shape as the output, float")
        assert get_loss(name).target_dtype == "float32"
    assert "[0, 1]" in get_loss("BCE").target and "Sigmoid" in get_loss("BCE").target
    assert "Targets: " + get_loss("BCE").target in get_loss("BCE").explain()


PRED = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [3.0, 1.0, 0.2], [-2.0, 0.7, 0.1]])
REAL = torch.tensor([[0.0, -1.5, 2.0], [1.0, 0.3, 0.5], [0.0, 1.0, 0.0], [-1.0, 2.0, 0.1]])
LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [-0.3, 1.2, 0.4], [1.0, 1.0, 1.0]])
CLASSES = torch.tensor([0, 2, 1, 2])
BITS = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])


def _loss(name, **values):
    spec = get_loss(name)
    return spec.build(spec.validate_params(values))


def test_regression_losses_equal_their_references():
    d = PRED - REAL
    assert torch.allclose(_loss("MSE")(PRED, REAL), F.mse_loss(PRED, REAL))
    assert torch.allclose(_loss("MSE")(PRED, REAL), (d ** 2).mean())
    assert torch.allclose(_loss("L1")(PRED, REAL), F.l1_loss(PRED, REAL))
    assert torch.allclose(_loss("L1")(PRED, REAL), d.abs().mean())
    huber = _loss("Huber", delta=0.5)(PRED, REAL)
    assert torch.allclose(huber, F.huber_loss(PRED, REAL, delta=0.5))
    by_hand = torch.where(d.abs() < 0.5, 0.5 * d ** 2, 0.5 * (d.abs() - 0.5 * 0.5)).mean()
    assert torch.allclose(huber, by_hand)


def test_classification_losses_equal_their_references():
    ce = _loss("CrossEntropy")(LOGITS, CLASSES)
    assert torch.allclose(ce, F.cross_entropy(LOGITS, CLASSES))
    assert torch.allclose(ce, -F.log_softmax(LOGITS, dim=1)[torch.arange(4), CLASSES].mean())
    smoothed = _loss("CrossEntropy", label_smoothing=0.2, ignore_index=1)(LOGITS, CLASSES)
    assert torch.allclose(smoothed, F.cross_entropy(LOGITS, CLASSES, label_smoothing=0.2, ignore_index=1))
    assert not torch.allclose(smoothed, ce)
    logp = F.log_softmax(LOGITS, dim=1)
    assert torch.allclose(_loss("NLL")(logp, CLASSES), F.nll_loss(logp, CLASSES))
    assert torch.allclose(_loss("NLL")(logp, CLASSES), ce)  # LogSoftmax + NLL = CrossEntropy
    assert torch.allclose(_loss("NLL", ignore_index=2)(logp, CLASSES), F.nll_loss(logp, CLASSES, ignore_index=2))


def test_binary_losses_equal_their_references():
    p = torch.sigmoid(LOGITS)
    bce = _loss("BCE")(p, BITS)
    assert torch.allclose(bce, F.binary_cross_entropy(p, BITS))
    assert torch.allclose(bce, -(BITS * p.log() + (1 - BITS) * (1 - p).log()).mean())
    assert torch.allclose(_loss("BCEWithLogits")(LOGITS, BITS), bce)
    weighted = _loss("BCEWithLogits", pos_weight=2.0)(LOGITS, BITS)
    assert torch.allclose(weighted, F.binary_cross_entropy_with_logits(LOGITS, BITS, pos_weight=torch.tensor([2.0])))
    assert torch.allclose(weighted, -(2.0 * BITS * p.log() + (1 - BITS) * (1 - p).log()).mean())


@pytest.mark.parametrize("name, values, words", [
    ("Huber", {"delta": 0}, ["delta", "> 0"]),
    ("Huber", {"delta": "big"}, ["delta", "must be a number"]),
    ("CrossEntropy", {"label_smoothing": 1.5}, ["label_smoothing", "≤ 1"]),
    ("CrossEntropy", {"ignore_index": 1.5}, ["ignore_index", "whole number"]),
    ("BCEWithLogits", {"pos_weight": -1.0}, ["pos_weight", "> 0"]),
    ("MSE", {"reduction": "sum"}, ["no parameter 'reduction'", "none"]),
    ("Huber", {"beta": 1.0}, ["no parameter 'beta'", "delta"]),
])
def test_bad_loss_values_are_refused_with_what_is_allowed(name, values, words):
    with pytest.raises(ParamError) as e:
        get_loss(name).validate_params(values)
    for w in words:
        assert w in str(e.value)


# ----------------------------------------------------------------------------------------------------
# check_loss_fit

@pytest.mark.parametrize("loss, out, last, kwargs", [
    ("CrossEntropy", (10,), "Linear", {"num_classes": 10}),
    ("CrossEntropy", (5, 8, 8), "Conv2d", {"num_classes": 5}),
    ("crossentropy", (3,), "Linear", {}),
    ("NLL", (10,), "LogSoftmax", {"num_classes": 10}),
    ("BCE", (1,), "Sigmoid", {"target_shape": (1,)}),
    ("BCEWithLogits", (4,), "Linear", {"target_shape": (4,)}),
    ("MSE", (1,), "Linear", {"target_shape": (1,)}),
    ("Huber", (2, 3), "Linear", {}),
    ("L1", None, None, {"target_shape": (3,)}),
])
def test_a_fitting_end_gets_no_advice(loss, out, last, kwargs):
    assert check_loss_fit(loss, out, last, **kwargs) == []


@pytest.mark.parametrize("loss, out, last, kwargs, words", [
    ("CrossEntropy", (10,), "Softmax", {}, ["CrossEntropy applies log-softmax itself", "remove the Softmax"]),
    ("CrossEntropy", (10,), "LogSoftmax", {}, ["applies log-softmax itself", "NLL"]),
    ("CrossEntropy", (10,), "Sigmoid", {}, ["raw scores", "remove the Sigmoid"]),
    ("NLL", (10,), "Linear", {}, ["log-probabilities", "add a LogSoftmax", "CrossEntropy"]),
    ("NLL", (10,), None, {}, ["log-probabilities", "add a LogSoftmax"]),
    ("NLL", (10,), "Softmax", {}, ["replace the Softmax with a LogSoftmax"]),
    ("BCE", (1,), "Linear", {}, ["probabilities in [0, 1]", "add a Sigmoid", "BCEWithLogits"]),
    ("BCE", (1,), "ReLU", {}, ["the last layer is ReLU", "add a Sigmoid"]),
    ("BCEWithLogits", (1,), "Sigmoid", {}, ["applies the sigmoid itself", "remove the Sigmoid"]),
    ("BCEWithLogits", (3,), "Softmax", {}, ["raw scores", "remove the Softmax"]),
    ("CrossEntropy", (3,), "Linear", {"num_classes": 10},
     ["10 classes but the last layer gives 3", "set out_features of the last Linear to 10"]),
    ("NLL", (4,), "LogSoftmax", {"num_classes": 2}, ["2 classes but the last layer gives 4", "to 2"]),
    ("CrossEntropy", (20, 10), "Linear", {"num_classes": 10}, ["classes last", "Permute with dims [1, 0]"]),
    ("CrossEntropy", (1,), "Linear", {}, ["single output", "BCEWithLogits"]),
    ("CrossEntropy", (), "Linear", {}, ["single number", "out_features"]),
    ("MSE", (10,), "Linear", {"target_shape": (1,)},
     ["the targets have shape (1,) but the last layer gives (10,)", "set out_features of the last Linear to 1"]),
    ("L1", (3, 4), "Linear", {"target_shape": (12,)}, ["(12,)", "(3, 4)", "output is (12,)"]),
    ("Huber", (2,), "Linear", {"target_shape": (3,)}, ["Huber compares", "set out_features of the last Linear to 3"]),
    ("BCEWithLogits", (2,), "Linear", {"target_shape": (1,)}, ["set out_features of the last Linear to 1"]),
])
def test_a_misfit_gets_advice_with_the_fix(loss, out, last, kwargs, words):
    msgs = check_loss_fit(loss, out, last, **kwargs)
    assert len(msgs) == 1, msgs
    for w in words:
        assert w in msgs[0]


def test_several_problems_give_several_messages():
    msgs = check_loss_fit("CrossEntropy", (3,), "Softmax", num_classes=10)
    assert len(msgs) == 2
    assert "remove the Softmax" in msgs[0] and "set out_features of the last Linear to 10" in msgs[1]


def test_check_loss_fit_refuses_an_unknown_loss():
    with pytest.raises(SpecError, match="did you mean CrossEntropy"):
        check_loss_fit("CrossEntropie", (10,), "Linear")


# ----------------------------------------------------------------------------------------------------
# Optimizers

OPTIM_CLASSES = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW,
                 "RMSprop": torch.optim.RMSprop, "Adagrad": torch.optim.Adagrad}

CUSTOM = {
    "SGD": {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-3, "nesterov": True},
    "Adam": {"lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 1e-2, "amsgrad": True},
    "AdamW": {"lr": 0.02, "betas": (0.85, 0.95), "eps": 1e-7, "weight_decay": 0.1, "amsgrad": False},
    "RMSprop": {"lr": 0.005, "alpha": 0.9, "eps": 1e-6, "weight_decay": 1e-4, "momentum": 0.5, "centered": True},
    "Adagrad": {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 1e-3, "eps": 1e-9},
}


@pytest.mark.parametrize("name", list(OPTIM_CLASSES))
def test_optimizer_defaults_are_pytorchs(name):
    spec = get_optimizer(name)
    sig = inspect.signature(OPTIM_CLASSES[name].__init__).parameters
    for p in spec.params:
        want = sig[p.name].default
        assert (list(want) if isinstance(want, tuple) else want) == p.default, p.name


@pytest.mark.parametrize("name", list(OPTIM_CLASSES))
def test_every_optimizer_builds_with_the_given_values(name):
    spec = get_optimizer(name)
    model = nn.Linear(4, 3)
    opt = spec.build(spec.defaults(), model.parameters())
    assert type(opt) is OPTIM_CLASSES[name]
    values = spec.validate_params(CUSTOM[name])
    opt = spec.build(values, model.parameters())
    group = opt.param_groups[0]
    for k, v in CUSTOM[name].items():
        assert group[k] == (tuple(v) if isinstance(v, list) else v), k
    assert group["params"] == list(model.parameters())


def _train(model, opt, steps=3):
    torch.manual_seed(1)
    x, y = torch.randn(8, 4), torch.randn(8, 3)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("name", list(OPTIM_CLASSES))
@pytest.mark.parametrize("custom", [False, True], ids=["defaults", "custom"])
def test_an_optimizer_from_the_spec_steps_like_a_hand_made_one(name, custom):
    torch.manual_seed(0)
    ours = nn.Linear(4, 3)
    theirs, start = copy.deepcopy(ours), copy.deepcopy(ours)
    spec = get_optimizer(name)
    values = spec.validate_params(CUSTOM[name] if custom else {})
    opt = spec.build(values, ours.parameters())
    _train(ours, opt)
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in CUSTOM[name].items()} if custom else {}
    default = copy.deepcopy(theirs)
    # The same class with the same kernel choice steps identically ...
    _train(theirs, OPTIM_CLASSES[name](theirs.parameters(), **kwargs, **_kernel(opt)))
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)
    # ... and PyTorch's default kernel gives the same update, to float rounding
    _train(default, OPTIM_CLASSES[name](default.parameters(), **kwargs))
    for a, b in zip(ours.parameters(), default.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert not torch.equal(ours.weight, start.weight)  # it did move


def _kernel(opt) -> dict:
    return {"fused": True} if opt.param_groups[0].get("fused") else {}


@pytest.mark.parametrize("name", list(OPTIM_CLASSES))
def test_optimizers_take_pytorchs_fused_kernel_where_it_has_one(name):
    spec = get_optimizer(name)
    opt = spec.build(spec.defaults(), nn.Linear(4, 3).parameters())
    has_fused = "fused" in inspect.signature(OPTIM_CLASSES[name].__init__).parameters
    assert bool(opt.param_groups[0].get("fused")) == has_fused
    # parameter groups (layer-wise learning rates) get it as well
    a, b = nn.Linear(4, 3), nn.Linear(3, 2)
    opt = spec.build(spec.defaults(), [{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.5}])
    assert all(bool(g.get("fused")) == has_fused for g in opt.param_groups)
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2]  # generators are read once, not used up
    assert opt.param_groups[1]["lr"] == 0.5
    # a device without the kernel keeps PyTorch's default (the meta device has none)
    opt = spec.build(spec.defaults(), nn.Linear(4, 3, device="meta").parameters())
    assert not opt.param_groups[0].get("fused")


@pytest.mark.parametrize("name, values, param, words", [
    ("SGD", {"nesterov": True}, "nesterov", ["nesterov needs momentum > 0 and dampening 0", "set momentum"]),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "nesterov", ["dampening 0"]),
    ("Adam", {"betas": [0.9, 1.0]}, "betas", ["must be below 1", "0.9 and 0.999"]),
    ("AdamW", {"betas": [1.0, 0.999]}, "betas", ["β₁", "below 1"]),
    ("Adam", {"betas": [0.9]}, "betas", ["must have 2 values"]),
    ("Adam", {"betas": 0.9}, "betas", ["must be a list"]),
    ("Adam", {"lr": -0.1}, "lr", ["lr = -0.1 is out of range", "> 0"]),
    ("SGD", {"lr": 0}, "lr", ["> 0"]),
    ("SGD", {"momentum": 1.5}, "momentum", ["≤ 1"]),
    ("RMSprop", {"centered": "yes"}, "centered", ["true or false"]),
    ("Adagrad", {"momentum": 0.9}, "momentum", ["no parameter 'momentum'", "lr, lr_decay, weight_decay, eps"]),
])
def test_bad_optimizer_values_are_refused_with_the_fix(name, values, param, words):
    with pytest.raises(ParamError) as e:
        get_optimizer(name).validate_params(values)
    assert e.value.param == param
    for w in words:
        assert w in str(e.value)


def test_nesterov_with_momentum_is_fine_and_checks_see_the_merged_values():
    sgd = get_optimizer("SGD")
    base = sgd.validate_params({"momentum": 0.9})
    assert sgd.validate_params({"nesterov": True}, base)["nesterov"] is True
    with pytest.raises(ParamError):
        sgd.validate_params({"momentum": 0.0}, sgd.validate_params({"nesterov": True}, base))


# ----------------------------------------------------------------------------------------------------
# Schedules

def _opt(lr=0.1, kind=torch.optim.SGD, **kw):
    torch.manual_seed(0)
    return kind(nn.Linear(2, 2).parameters(), lr=lr, **kw)


def _lrs(sched, opt, n, metrics=None):
    out = []
    for i in range(n):
        opt.step()
        sched.step(metrics[i]) if metrics is not None else sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


SCHED_CLASSES = {"step": lr_scheduler.StepLR, "cosine": lr_scheduler.CosineAnnealingLR,
                 "one-cycle": lr_scheduler.OneCycleLR, "reduce-on-plateau": lr_scheduler.ReduceLROnPlateau}


@pytest.mark.parametrize("name", list(SCHED_CLASSES))
def test_every_schedule_builds_from_its_defaults(name):
    spec = get_schedule(name)
    sched = spec.build(spec.defaults(), _opt(), epochs=5, steps_per_epoch=4)
    assert type(sched) is SCHED_CLASSES[name]
    assert spec.torch_name.endswith(SCHED_CLASSES[name].__name__)


def test_schedules_say_when_they_step():
    assert [(s.type, s.interval, s.needs_metric) for s in all_schedules()] == [
        ("step", "epoch", False), ("cosine", "epoch", False), ("one-cycle", "batch", False),
        ("reduce-on-plateau", "epoch", True)]
    assert get_schedule("one-cycle").per_batch and "after every batch" in get_schedule("one-cycle").explain()
    assert "validation metric" in get_schedule("reduce-on-plateau").explain()


def test_step_schedule_matches_steplr():
    spec = get_schedule("step")
    o1, o2 = _opt(), _opt()
    s1 = spec.build(spec.validate_params({"step_size": 2, "gamma": 0.5}), o1, epochs=8)
    assert (s1.step_size, s1.gamma) == (2, 0.5)
    ours = _lrs(s1, o1, 8)
    assert ours == _lrs(lr_scheduler.StepLR(o2, step_size=2, gamma=0.5), o2, 8)
    assert ours[:4] == pytest.approx([0.1, 0.05, 0.05, 0.025])


def test_cosine_schedule_takes_t_max_from_the_epochs_unless_given():
    spec = get_schedule("cosine")
    o1, o2 = _opt(), _opt()
    s1 = spec.build(spec.validate_params({"eta_min": 0.01}), o1, epochs=6, steps_per_epoch=100)
    assert s1.T_max == 6
    ours = _lrs(s1, o1, 6)
    assert ours == _lrs(lr_scheduler.CosineAnnealingLR(o2, T_max=6, eta_min=0.01), o2, 6)
    assert ours[-1] == pytest.approx(0.01)
    o1, o2 = _opt(), _opt()
    s1 = spec.build(spec.validate_params({"T_max": 3}), o1, epochs=6)
    assert s1.T_max == 3
    assert _lrs(s1, o1, 6) == _lrs(lr_scheduler.CosineAnnealingLR(o2, T_max=3), o2, 6)


def test_one_cycle_uses_the_optimizers_lr_and_the_run_length():
    spec = get_schedule("one-cycle")
    o1, o2 = _opt(0.2, torch.optim.Adam), _opt(0.2, torch.optim.Adam)
    values = spec.validate_params({"pct_start": 0.25, "anneal_strategy": "linear"})
    s1 = spec.build(values, o1, epochs=3, steps_per_epoch=4)
    assert s1.total_steps == 12
    s2 = lr_scheduler.OneCycleLR(o2, max_lr=0.2, total_steps=12, pct_start=0.25, anneal_strategy="linear")
    betas1, betas2 = [], []
    lrs1, lrs2 = [o1.param_groups[0]["lr"]], [o2.param_groups[0]["lr"]]
    for _ in range(11):
        lrs1 += _lrs(s1, o1, 1)
        lrs2 += _lrs(s2, o2, 1)
        betas1.append(o1.param_groups[0]["betas"])
        betas2.append(o2.param_groups[0]["betas"])
    assert lrs1 == lrs2 and betas1 == betas2
    assert lrs1[0] == pytest.approx(0.2 / 25) and max(lrs1) == pytest.approx(0.2)


def test_one_cycle_with_a_given_max_lr_matches_onecyclelr():
    spec = get_schedule("one-cycle")
    o1, o2 = _opt(0.01, momentum=0.9), _opt(0.01, momentum=0.9)
    s1 = spec.build(spec.validate_params({"max_lr": 0.5}), o1, epochs=2, steps_per_epoch=5)
    s2 = lr_scheduler.OneCycleLR(o2, max_lr=0.5, total_steps=10)
    assert _lrs(s1, o1, 9) == _lrs(s2, o2, 9)
    assert o1.param_groups[0]["momentum"] == o2.param_groups[0]["momentum"]


def test_one_cycle_leaves_momentum_alone_when_the_optimizer_has_none():
    spec = get_schedule("one-cycle")
    sgd = _opt(0.1)  # momentum 0: PyTorch would otherwise switch momentum on at 0.95
    spec.build(spec.defaults(), sgd, epochs=1, steps_per_epoch=10)
    assert sgd.param_groups[0]["momentum"] == 0.0
    adagrad = _opt(0.1, torch.optim.Adagrad)  # PyTorch refuses cycle_momentum for it
    o2 = _opt(0.1, torch.optim.Adagrad)
    s1 = spec.build(spec.defaults(), adagrad, epochs=1, steps_per_epoch=10)
    s2 = lr_scheduler.OneCycleLR(o2, max_lr=0.1, total_steps=10, cycle_momentum=False)
    assert _lrs(s1, adagrad, 9) == _lrs(s2, o2, 9)


def test_reduce_on_plateau_matches_pytorch_given_the_metric():
    spec = get_schedule("reduce-on-plateau")
    values = spec.validate_params({"factor": 0.5, "patience": 1, "threshold": 0.01, "min_lr": 0.02})
    o1, o2 = _opt(), _opt()
    s1 = spec.build(values, o1)
    s2 = lr_scheduler.ReduceLROnPlateau(o2, factor=0.5, patience=1, threshold=0.01, min_lr=0.02)
    metrics = [1.0, 0.9, 0.9, 0.9, 0.899, 0.95, 0.95, 0.95, 0.95, 0.95]
    ours = _lrs(s1, o1, 10, metrics)
    assert ours == _lrs(s2, o2, 10, metrics)
    assert ours[0] == 0.1 and ours[-1] == 0.02
    o1, o2 = _opt(), _opt()
    s1 = spec.build(spec.validate_params({"mode": "max", "patience": 0}), o1)
    s2 = lr_scheduler.ReduceLROnPlateau(o2, mode="max", patience=0)
    acc = [0.5, 0.6, 0.55, 0.7, 0.65]
    assert _lrs(s1, o1, 5, acc) == _lrs(s2, o2, 5, acc)


def test_schedules_that_need_the_run_length_say_so():
    with pytest.raises(SpecError, match="steps_per_epoch"):
        get_schedule("one-cycle").build(get_schedule("one-cycle").defaults(), _opt(), epochs=3)
    with pytest.raises(SpecError, match="at least one training step"):
        get_schedule("one-cycle").build(get_schedule("one-cycle").defaults(), _opt(), epochs=0, steps_per_epoch=5)
    with pytest.raises(SpecError, match="T_max or the number of epochs"):
        get_schedule("cosine").build(get_schedule("cosine").defaults(), _opt())


@pytest.mark.parametrize("name, values, param, words", [
    ("step", {"step_size": 0}, "step_size", ["step schedule: step_size = 0 is out of range", "≥ 1"]),
    ("step", {"gamma": 0.0}, "gamma", ["> 0"]),
    ("cosine", {"T_max": 2.5}, "T_max", ["whole number"]),
    ("cosine", {"eta_min": -1}, "eta_min", ["≥ 0"]),
    ("one-cycle", {"pct_start": 1.0}, "pct_start", ["between 0 and 1", "30 %"]),
    ("one-cycle", {"anneal_strategy": "exp"}, "anneal_strategy", ["'cos', 'linear'"]),
    ("one-cycle", {"max_lr": 0}, "max_lr", ["> 0"]),
    ("reduce-on-plateau", {"factor": 1.0}, "factor", ["between 0 and 1", "halves"]),
    ("reduce-on-plateau", {"mode": "minimum"}, "mode", ["'min', 'max'"]),
    ("reduce-on-plateau", {"patience": -1}, "patience", ["≥ 0"]),
])
def test_bad_schedule_values_are_refused_with_what_is_allowed(name, values, param, words):
    with pytest.raises(ParamError) as e:
        get_schedule(name).validate_params(values)
    assert e.value.param == param
    for w in words:
        assert w in str(e.value)
