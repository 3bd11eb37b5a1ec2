"""Optimizers and learning-rate schedules: one spec each, with PyTorch's names and defaults and a learner's explanation.

`import engine.optimizers` does not load torch; the spec's `build` imports it when an optimizer or schedule is made.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .catalog import Catalog, Described
from .errors import ParamError, SpecError
from .params import BOOL, CHOICE, FLOAT, FLOATS, INT, Param

if TYPE_CHECKING:  # pragma: no cover
    import torch


# ----------------------------------------------------------------------------------------------------
# Optimizers

@dataclass(frozen=True)
class OptimizerSpec(Described):
    """One optimizer.

    build(params, model_parameters) -> torch.optim.Optimizer imports torch only when called; `params` is a
    dict from `validate_params`, which also runs `check` (rules that tie several parameters together).
    """

    type: str
    summary: str
    doc: str
    formula: str
    params: tuple[Param, ...]
    build: Callable[[dict, Iterable], "torch.optim.Optimizer"]
    check: Callable[[dict], None] | None = None
    torch_name: str = ""

    formula_label = "Update"


OPTIMIZERS: Catalog[OptimizerSpec] = Catalog("optimizer", SpecError)


def _optim():
    import torch.optim as optim  # torch loads only when an optimizer is built
    return optim


_FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")


def _make(name: str, ps: Iterable, **kwargs: Any) -> torch.optim.Optimizer:
    """torch.optim.<name>(ps, **kwargs), with `fused=True` when every parameter can take PyTorch's fused
    update: one kernel per tensor instead of a dozen small operations each. The update is the same (equal
    within float rounding, and as deterministic); on the CPU it makes the MLP templates' steps about a quarter
    faster with Adam (bench/train_overhead.py). PyTorch's documentation calls fused the fastest but leaves it
    off by default while it beds in. Left off for sparse or non-float parameters and for devices without the
    kernel, where PyTorch would refuse it. `ps` may be tensors or parameter groups (dicts with "params")."""
    ps = [dict(g, params=_tensors(g["params"])) if isinstance(g, dict) else g for g in ps]
    tensors = [t for g in ps for t in (g["params"] if isinstance(g, dict) else [g])]
    if tensors and all(t.is_floating_point() and not t.is_sparse and t.device.type in _FUSED_DEVICES
                       for t in tensors):
        kwargs["fused"] = True
    return getattr(_optim(), name)(ps, **kwargs)


def _tensors(params: Any) -> list:
    """A group's "params" as a list: one tensor, or any iterable of them (a generator is read once)."""
    return [params] if hasattr(params, "is_floating_point") else list(params)


def _lr(default: float) -> Param:
    return Param("lr", FLOAT, default, "learning rate: the size of each step", min=0.0, exclusive_min=True,
                 effect="too high = the loss jumps around or explodes; too low = very slow learning")


_WEIGHT_DECAY = "pulls every weight slightly towards 0 each step (L2 regularisation)"
_EPS = "tiny number added to the denominator so it is never 0"


def _betas() -> Param:
    return Param("betas", FLOATS, [0.9, 0.999], "how slowly the averages of the gradient and of its square "
                 "forget (β₁, β₂), each below 1", min=0.0, max=1.0, length=2, min_length=2, max_length=2)


def _check_sgd(p: dict) -> None:
    if p["nesterov"] and (p["momentum"] <= 0 or p["dampening"] != 0):
        raise ParamError(f"SGD: nesterov needs momentum > 0 and dampening 0 (now momentum = {p['momentum']:g}, "
                         f"dampening = {p['dampening']:g}): set momentum to e.g. 0.9 and dampening to 0, or turn "
                         f"nesterov off", "nesterov")


def _check_betas(name: str):
    def check(p: dict) -> None:
        for i, b in enumerate(p["betas"], 1):
            if b >= 1.0:
                raise ParamError(f"{name}: β{'₁₂'[i - 1]} = {b:g} in betas must be below 1 (at 1 the average "
                                 f"never forgets and never learns from new gradients): 0.9 and 0.999 are usual",
                                 "betas")
    return check


OPTIMIZERS.register(OptimizerSpec(
    type="SGD",
    summary="stochastic gradient descent: step downhill along the gradient, optionally with momentum",
    doc="The simplest optimizer: every weight moves against its gradient by lr times the gradient. With "
        "momentum (0.9 is usual) it keeps a running velocity, which speeds it up along consistent directions "
        "and damps zig-zagging; Nesterov momentum looks one step ahead and is often a little better. Plain SGD "
        "needs a well-chosen learning rate (try 0.01–0.1 with momentum) and usually a schedule, but when tuned "
        "it often generalises best; the classic choice for image CNNs.",
    formula="g = ∇θℓ + λ·θ;  v ← μ·v + (1 − τ)·g;  θ ← θ − η·v   (nesterov: θ ← θ − η·(g + μ·v))",
    params=(
        _lr(0.001),
        Param("momentum", FLOAT, 0.0, "how much of the previous step carries over (0 = none)", min=0.0, max=1.0,
              effect="higher = faster along steady slopes, but may overshoot"),
        Param("dampening", FLOAT, 0.0, "how much of the new gradient is held back from the velocity (τ)",
              min=0.0, max=1.0),
        Param("weight_decay", FLOAT, 0.0, _WEIGHT_DECAY, min=0.0, effect="higher = smaller weights, less overfitting"),
        Param("nesterov", BOOL, False, "use Nesterov momentum (needs momentum > 0 and dampening 0)"),
    ),
    build=lambda p, ps: _make("SGD", ps, lr=p["lr"], momentum=p["momentum"], dampening=p["dampening"],
                              weight_decay=p["weight_decay"], nesterov=p["nesterov"]),
    check=_check_sgd,
    torch_name="optim.SGD",
))

_ADAM_FORMULA = ("m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;  m̂ = m / (1 − β₁ᵗ);  v̂ = v / (1 − β₂ᵗ);  "
                 "θ ← θ − η·m̂ / (√v̂ + ε)")

OPTIMIZERS.register(OptimizerSpec(
    type="Adam",
    summary="adaptive moments: a step size for each weight, from running averages of its gradients",
    doc="Keeps a running average of each weight's gradient (momentum, m) and of its square (v), and divides "
        "one by the square root of the other, so every weight gets its own step size. It works well with "
        "little tuning (lr = 0.001 is a good start), which makes it the usual first choice. Its weight_decay "
        "is added to the gradient (plain L2), which interacts with the adaptive steps; for weight decay "
        "prefer AdamW. amsgrad keeps the largest v seen, which can help when training is unstable.",
    formula="g = ∇θℓ + λ·θ;  " + _ADAM_FORMULA,
    params=(
        _lr(0.001),
        _betas(),
        Param("eps", FLOAT, 1e-8, _EPS, min=0.0),
        Param("weight_decay", FLOAT, 0.0, _WEIGHT_DECAY + ", added to the gradient", min=0.0),
        Param("amsgrad", BOOL, False, "use the largest v seen so far (the AMSGrad variant)"),
    ),
    build=lambda p, ps: _make("Adam", ps, lr=p["lr"], betas=tuple(p["betas"]), eps=p["eps"],
                               weight_decay=p["weight_decay"], amsgrad=p["amsgrad"]),
    check=_check_betas("Adam"),
    torch_name="optim.Adam",
))

OPTIMIZERS.register(OptimizerSpec(
    type="AdamW",
    summary="Adam with weight decay done right (decoupled)",
    doc="Adam, but weight decay shrinks the weights directly instead of being mixed into the gradient, so "
        "it regularises every weight equally whatever its step size. The standard optimizer for transformers "
        "and a safe default whenever you want weight decay (0.01–0.1).",
    formula="θ ← θ − η·λ·θ;  then Adam with g = ∇θℓ:  " + _ADAM_FORMULA,
    params=(
        _lr(0.001),
        _betas(),
        Param("eps", FLOAT, 1e-8, _EPS, min=0.0),
        Param("weight_decay", FLOAT, 0.01, "shrinks every weight by lr × weight_decay of itself each step",
              min=0.0, effect="higher = smaller weights, less overfitting"),
        Param("amsgrad", BOOL, False, "use the largest v seen so far (the AMSGrad variant)"),
    ),
    build=lambda p, ps: _make("AdamW", ps, lr=p["lr"], betas=tuple(p["betas"]), eps=p["eps"],
                               weight_decay=p["weight_decay"], amsgrad=p["amsgrad"]),
    check=_check_betas("AdamW"),
    torch_name="optim.AdamW",
))

OPTIMIZERS.register(OptimizerSpec(
    type="RMSprop",
    summary="divides each step by a running average of recent gradient sizes",
    doc="Keeps a running average of each weight's squared gradient and divides the gradient by its square "
        "root, so weights with big, noisy gradients take smaller steps. A predecessor of Adam, still popular "
        "for recurrent networks and reinforcement learning. centered also subtracts the average gradient, "
        "which can stabilise training at some extra cost.",
    formula="v ← α·v + (1 − α)·g²;  θ ← θ − η·g / (√v + ε)   (centered: √(v − ḡ²), ḡ the average gradient)",
    params=(
        _lr(0.01),
        Param("alpha", FLOAT, 0.99, "how slowly the average of squared gradients forgets", min=0.0, max=1.0),
        Param("eps", FLOAT, 1e-8, _EPS, min=0.0),
        Param("weight_decay", FLOAT, 0.0, _WEIGHT_DECAY, min=0.0),
        Param("momentum", FLOAT, 0.0, "how much of the previous step carries over (0 = none)", min=0.0, max=1.0),
        Param("centered", BOOL, False, "normalise by the variance of the gradient instead of its square"),
    ),
    build=lambda p, ps: _optim().RMSprop(ps, lr=p["lr"], alpha=p["alpha"], eps=p["eps"],
                                         weight_decay=p["weight_decay"], momentum=p["momentum"],
                                         centered=p["centered"]),
    torch_name="optim.RMSprop",
))

OPTIMIZERS.register(OptimizerSpec(
    type="Adagrad",
    summary="steps shrink for weights that have already moved a lot",
    doc="Adds up each weight's squared gradients over the whole of training and divides by the square root "
        "of the sum, so rarely updated weights (e.g. embeddings of rare words) keep larger steps. Because the "
        "sum only grows, the steps keep shrinking and learning can stall in long runs; Adam and RMSprop "
        "fix this with running averages.",
    formula="η̃ = η / (1 + (t − 1)·lr_decay);  s ← s + g²;  θ ← θ − η̃·g / (√s + ε)",
    params=(
        _lr(0.01),
        Param("lr_decay", FLOAT, 0.0, "how fast the learning rate itself shrinks with the step count", min=0.0),
        Param("weight_decay", FLOAT, 0.0, _WEIGHT_DECAY, min=0.0),
        Param("eps", FLOAT, 1e-10, _EPS, min=0.0),
    ),
    build=lambda p, ps: _make("Adagrad", ps, lr=p["lr"], lr_decay=p["lr_decay"],
                              weight_decay=p["weight_decay"], eps=p["eps"]),
    torch_name="optim.Adagrad",
))


def get_optimizer(name: str) -> OptimizerSpec:
    """The spec of an optimizer; case-insensitive. Raises SpecError with the nearest names."""
    return OPTIMIZERS.get(name)


def all_optimizers() -> list[OptimizerSpec]:
    return OPTIMIZERS.all()


# ----------------------------------------------------------------------------------------------------
# Learning-rate schedules

@dataclass(frozen=True)
class ScheduleSpec(Described):
    """One learning-rate schedule.

    build(params, optimizer, *, epochs=None, steps_per_epoch=None) -> a torch scheduler; raises SpecError when
    it needs the number of epochs or steps and they are not given. `per_batch`: call scheduler.step() after
    every batch (else after every epoch). `needs_metric`: pass the validation metric, scheduler.step(metric).
    """

    type: str
    summary: str
    doc: str
    formula: str
    params: tuple[Param, ...]
    build: Callable[..., Any]
    per_batch: bool = False
    needs_metric: bool = False
    check: Callable[[dict], None] | None = None
    torch_name: str = ""

    @property
    def interval(self) -> str:
        """"batch" or "epoch": when scheduler.step() is called."""
        return "batch" if self.per_batch else "epoch"

    def owner(self) -> str:
        return f"{self.type} schedule"

    def explain_extra(self) -> list[str]:
        when = "after every batch" if self.per_batch else "after every epoch"
        if self.needs_metric:
            when += ", given the validation metric it watches"
        return ["", f"Steps: {when}"]


SCHEDULES: Catalog[ScheduleSpec] = Catalog("schedule", SpecError)


def _sched():
    import torch.optim.lr_scheduler as lr_scheduler  # torch loads only when a schedule is built
    return lr_scheduler


def _cosine(p: dict, opt, *, epochs: int | None = None, steps_per_epoch: int | None = None):
    t_max = p["T_max"] if p["T_max"] is not None else epochs
    if t_max is None:
        raise SpecError("the cosine schedule needs T_max or the number of epochs of training: set T_max, or build "
                        "it with epochs")
    if t_max < 1:
        raise SpecError(f"the cosine schedule needs T_max ≥ 1, not {t_max}: train for at least one epoch")
    return _sched().CosineAnnealingLR(opt, T_max=t_max, eta_min=p["eta_min"])


def _uses_momentum(opt) -> bool:
    if "betas" in opt.defaults:
        return True
    return "momentum" in opt.defaults and any(g.get("momentum", 0) > 0 for g in opt.param_groups)


def _one_cycle(p: dict, opt, *, epochs: int | None = None, steps_per_epoch: int | None = None):
    if epochs is None or steps_per_epoch is None:
        raise SpecError("the one-cycle schedule needs the number of epochs and of batches per epoch, to know "
                        "where the cycle ends: build it with epochs and steps_per_epoch")
    total = epochs * steps_per_epoch
    if total < 1:
        raise SpecError(f"the one-cycle schedule needs at least one training step, not {epochs} epochs × "
                        f"{steps_per_epoch} batches")
    max_lr = p["max_lr"] if p["max_lr"] is not None else opt.defaults["lr"]
    return _sched().OneCycleLR(opt, max_lr=max_lr, total_steps=total, pct_start=p["pct_start"],
                               anneal_strategy=p["anneal_strategy"],
                               cycle_momentum=p["cycle_momentum"] and _uses_momentum(opt))


def _check_open_unit(owner: str, name: str, example: str):
    def check(p: dict) -> None:
        if not 0.0 < p[name] < 1.0:
            raise ParamError(f"{owner}: {name} = {p[name]:g} must be between 0 and 1 (exclusive): {example}", name)
    return check


SCHEDULES.register(ScheduleSpec(
    type="step",
    summary="multiply the learning rate by gamma every step_size epochs",
    doc="Keeps the learning rate constant for step_size epochs, then multiplies it by gamma (e.g. divides it "
        "by 10), and so on. Large steps early explore quickly; smaller steps later settle into a minimum. The "
        "classic schedule for SGD on image tasks; a drop often shows as a sudden fall of the loss.",
    formula="η = η₀ · γ^⌊epoch / step_size⌋",
    params=(
        Param("step_size", INT, 10, "epochs between two drops", min=1),
        Param("gamma", FLOAT, 0.1, "factor applied at each drop", min=0.0, max=1.0, exclusive_min=True,
              effect="smaller = sharper drops"),
    ),
    build=lambda p, opt, *, epochs=None, steps_per_epoch=None: _sched().StepLR(opt, step_size=p["step_size"],
                                                                               gamma=p["gamma"]),
    torch_name="optim.lr_scheduler.StepLR",
))

SCHEDULES.register(ScheduleSpec(
    type="cosine",
    summary="lower the learning rate smoothly along half a cosine wave",
    doc="Starts at the optimizer's learning rate and glides down to eta_min following a cosine curve: slow "
        "at first, fastest in the middle, gentle at the end. A strong, nearly tuning-free default; leave "
        "T_max empty to reach eta_min exactly at the last epoch.",
    formula="η = η_min + ½(η₀ − η_min)·(1 + cos(π·t / T_max))",
    params=(
        Param("T_max", INT, None, "epochs from the start to the lowest point (none = all of training)", min=1,
              optional=True),
        Param("eta_min", FLOAT, 0.0, "the lowest learning rate", min=0.0),
    ),
    build=_cosine,
    torch_name="optim.lr_scheduler.CosineAnnealingLR",
))

SCHEDULES.register(ScheduleSpec(
    type="one-cycle",
    summary="warm the learning rate up to max_lr, then anneal it far below the start",
    doc="Over the whole run, the learning rate rises from max_lr/25 to max_lr during the first pct_start of "
        "the batches, then falls to max_lr/250000. The warm-up avoids early blow-ups, the high middle "
        "explores, and the long descent settles; it often trains much faster ('super-convergence'). "
        "Momentum moves the opposite way (0.95 → 0.85 → 0.95) when the optimizer uses it. It steps after "
        "every batch and needs the number of epochs and batches in advance.",
    formula="η rises from max_lr/25 to max_lr over pct_start·T steps, then falls to max_lr/(25·10⁴) at T "
            "(along a cosine, or linearly);  T = epochs × batches per epoch",
    params=(
        Param("max_lr", FLOAT, None, "the peak learning rate (none = the optimizer's lr)", min=0.0,
              exclusive_min=True, optional=True, effect="the most important knob: too high diverges"),
        Param("pct_start", FLOAT, 0.3, "share of the run spent warming up (below 1)", min=0.0, max=1.0,
              exclusive_min=True),
        Param("anneal_strategy", CHOICE, "cos", "shape of the curves: cosine or straight lines",
              choices=("cos", "linear")),
        Param("cycle_momentum", BOOL, True, "also cycle momentum inversely, when the optimizer uses momentum"),
    ),
    build=_one_cycle,
    per_batch=True,
    check=_check_open_unit("one-cycle schedule", "pct_start", "0.3 spends the first 30 % of training warming up"),
    torch_name="optim.lr_scheduler.OneCycleLR",
))

SCHEDULES.register(ScheduleSpec(
    type="reduce-on-plateau",
    summary="cut the learning rate when the validation metric stops improving",
    doc="Watches a metric after every epoch (usually the validation loss, with mode 'min'; or accuracy, with "
        "'max'). When it has not improved for patience epochs, the learning rate is multiplied by factor. "
        "Reacts to how training actually goes rather than to a fixed plan, so it is a safe choice when you do "
        "not know how many epochs you need.",
    formula="if the metric has not improved by more than threshold (relative) for patience epochs: "
            "η ← max(η · factor, min_lr)",
    params=(
        Param("mode", CHOICE, "min", "'min' for a loss (lower is better), 'max' for accuracy",
              choices=("min", "max")),
        Param("factor", FLOAT, 0.1, "what the learning rate is multiplied by at each cut (below 1)", min=0.0,
              exclusive_min=True, max=1.0),
        Param("patience", INT, 10, "epochs without improvement to wait before cutting", min=0,
              effect="lower = reacts sooner, but also to noise"),
        Param("threshold", FLOAT, 1e-4, "the smallest relative change that counts as an improvement", min=0.0),
        Param("min_lr", FLOAT, 0.0, "the learning rate never goes below this", min=0.0),
    ),
    build=lambda p, opt, *, epochs=None, steps_per_epoch=None: _sched().ReduceLROnPlateau(
        opt, mode=p["mode"], factor=p["factor"], patience=p["patience"], threshold=p["threshold"],
        min_lr=p["min_lr"]),
    needs_metric=True,
    check=_check_open_unit("reduce-on-plateau schedule", "factor",
                           "0.1 divides the learning rate by 10, 0.5 halves it"),
    torch_name="optim.lr_scheduler.ReduceLROnPlateau",
))



def get_schedule(name: str) -> ScheduleSpec:
    """The spec of a schedule; case-insensitive ("one-cycle", "OneCycle", "OneCycleLR"). Raises SpecError with
    the nearest names."""
    return SCHEDULES.get(name)


def all_schedules() -> list[ScheduleSpec]:
    return SCHEDULES.all()


__all__ = ["OptimizerSpec", "ScheduleSpec", "all_optimizers", "all_schedules", "get_optimizer", "get_schedule"]
