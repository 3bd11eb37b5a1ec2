"""The learning-rate finder (Leslie Smith's LR range test, as fastai does it): train for a few dozen steps while
the learning rate grows exponentially from tiny to huge, record the loss, and suggest the rate at which the
smoothed loss fell fastest. The network and the optimizer are put back exactly as they were afterwards.

    result = lr_range_test(model, loss_fn, optimizer, (x, y))
    result.suggestion, result.reason          # e.g. 3.2e-3 and a sentence saying why
    result.lrs, result.losses, result.smoothed  # plain lists of floats, for a plot with a log-scale x axis

`find_lr(project)` does the same for a project: the network, loss, optimizer and data built as a run would be
(engine.runner.prepare).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import TrainingError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .project import Project
    from .training import TensorData


@dataclass
class LRFinderResult:
    """The range test's curve and its suggestion. Lists hold plain floats, one entry per step taken."""

    lrs: list[float]
    losses: list[float]          # each step's batch loss
    smoothed: list[float]        # the bias-corrected moving average of the losses
    suggestion: float            # the learning rate to train with
    reason: str                  # why, in a sentence or two
    diverged: bool = False       # the test stopped early because the loss blew up
    min_loss_lr: float | None = None   # the learning rate at the lowest smoothed loss
    steepest_lr: float | None = None   # the learning rate where the smoothed loss fell fastest
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split_data(data: Any) -> tuple[Any, Any]:
    import torch

    from .training import TensorData
    if isinstance(data, TensorData):
        x = data.train_x
        return x, (x if data.target_is_input else data.train_y)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data[0], data[1]
    raise TrainingError("the learning-rate finder needs its data as TensorData or as a pair of tensors (x, y)")


def _check(start: float, end: float, steps: int, batch_size: int, smooth: float, diverge: float) -> None:
    if not (start > 0 and math.isfinite(start)):
        raise TrainingError(f"the range test's start learning rate must be above 0, not {start!r}: try 1e-7")
    if not (end > start and math.isfinite(end)):
        raise TrainingError(f"the range test's end learning rate ({end!r}) must be larger than its start ({start!r}): "
                            f"try 10")
    if steps < 5:
        raise TrainingError(f"the range test needs at least 5 steps to draw a curve, not {steps}: try 100")
    if batch_size < 1:
        raise TrainingError(f"the batch size must be at least 1, not {batch_size}")
    if not 0 <= smooth < 1:
        raise TrainingError(f"smooth must be at least 0 and below 1 (e.g. 0.98), not {smooth!r}")
    if not diverge > 1:
        raise TrainingError(f"diverge must be above 1 (e.g. 4: stop when the loss is 4× its best), not {diverge!r}")


def lr_range_test(model: torch.nn.Module, loss_fn: Any, optimizer: torch.optim.Optimizer,
                  data: TensorData | tuple[torch.Tensor, torch.Tensor], *, start: float = 1e-7, end: float = 10.0,
                  steps: int = 100, batch_size: int = 32, smooth: float = 0.98, diverge: float = 4.0,
                  seed: int = 0) -> LRFinderResult:
    """Train `model` for up to `steps` steps with the learning rate rising exponentially from `start` to `end`
    (the first parameter group's; other groups keep their ratio to it, as layers with an lr factor), one batch of
    `batch_size` training samples per step (shuffled with `seed`). Stops early when the smoothed loss exceeds
    `diverge` × its best, or is not finite. The model's weights and buffers, its training mode and gradients, and
    the optimizer's state and learning rates are restored afterwards."""
    import torch

    _check(start, end, steps, batch_size, smooth, diverge)
    x, y = _split_data(data)
    n = len(x)
    if n == 0 or len(y) != n:
        raise TrainingError("the learning-rate finder needs training samples, as many targets as inputs")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("the network has no weights to train, so there is no learning rate to find")
    device = params[0].device
    saved_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_opt = _clone_state(optimizer.state_dict())
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    was_training = model.training
    gen = torch.Generator().manual_seed(seed)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    diverged, avg, best = False, 0.0, math.inf
    mult = (end / start) ** (1.0 / (steps - 1))
    # groups with their own learning rate (a layer's lr factor) keep their ratio to the first group's
    base = float(optimizer.param_groups[0]["lr"])
    factors = [float(g["lr"]) / base if base > 0 else 1.0 for g in optimizer.param_groups]
    bs = min(batch_size, n)
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)  # dropout draws the same masks on every run of the test
            model.train(True)
            order, pos = torch.randperm(n, generator=gen), 0
            for i in range(steps):
                lr = start * mult ** i
                for group, factor in zip(optimizer.param_groups, factors, strict=True):
                    group["lr"] = lr * factor
                if pos + bs > n:
                    order, pos = torch.randperm(n, generator=gen), 0
                idx = order[pos:pos + bs]
                pos += bs
                xb, yb = x[idx].to(device), y[idx].to(device)
                optimizer.zero_grad(set_to_none=True)
                out = model(xb)
                loss = loss_fn(out, yb)
                value = loss.detach().item()
                if not math.isfinite(value):
                    diverged = True
                    break
                loss.backward()
                optimizer.step()
                avg = smooth * avg + (1 - smooth) * value
                s = avg / (1 - smooth ** (i + 1))
                lrs.append(float(lr))
                losses.append(value)
                smoothed.append(float(s))
                best = min(best, s)
                if i > 0 and s > diverge * best:
                    diverged = True
                    break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        for p, g in zip(params, saved_grads, strict=True):
            p.grad = g
        model.train(was_training)
    return _suggest(lrs, losses, smoothed, diverged, steps)


def _clone_state(state: Any) -> Any:
    """A deep copy of an optimizer's state dict (tensors cloned), so the test's steps cannot change it."""
    import torch
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _clone_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_clone_state(v) for v in state]
    if isinstance(state, tuple):
        return tuple(_clone_state(v) for v in state)
    return state


def _suggest(lrs: list[float], losses: list[float], smoothed: list[float], diverged: bool,
             steps: int) -> LRFinderResult:
    """The steepest descent of the smoothed loss against log10(lr), searched where the loss really falls: past the
    first tenth of the curve, after the smoothed loss last stood at the starting level (the median of the first
    fifth's losses, so noise on the flat start does not count as a descent), and before its minimum. Slopes are
    taken over a few steps either side. Without such a descent: a tenth of the lr at the lowest smoothed loss."""
    if not lrs:
        raise TrainingError("the loss was not finite from the very first step of the range test, so no learning "
                            "rate can be suggested: check the data (huge values or NaN) and the network's output")
    count = len(smoothed)
    stop = (f"the loss blew up at {lrs[-1]:.2g}, where the test stopped early" if diverged else
            f"the test ended at {lrs[-1]:.2g}")
    i_min = min(range(count), key=smoothed.__getitem__)
    min_lr = lrs[i_min]
    first = sorted(losses[:max(3, count // 5)])
    level = first[len(first) // 2]
    lo = max(1, count // 10)
    for i in range(lo, i_min + 1):
        if smoothed[i] >= level:
            lo = i
    half = max(1, count // 20)
    steepest, slope = None, 0.0
    if i_min - lo >= 2:
        logs = [math.log10(v) for v in lrs]
        for i in range(lo, i_min + 1):
            a, b = max(i - half, lo), min(i + half, i_min)
            d = (smoothed[b] - smoothed[a]) / (logs[b] - logs[a])
            if d < slope:
                steepest, slope = i, d
    result = LRFinderResult(lrs, losses, smoothed, min_lr / 10, "", diverged, min_lr,
                            lrs[steepest] if steepest is not None else None)
    if steepest is not None and lrs[steepest] < min_lr:
        result.suggestion = lrs[steepest]
        result.reason = (f"The smoothed loss fell fastest at a learning rate of {lrs[steepest]:.2g} (it was lowest "
                         f"at {min_lr:.2g}; {stop}): train with about {lrs[steepest]:.2g}, where the network "
                         f"learns quickly but still steadily.")
    else:
        how = ("fell fastest right where it was lowest, at" if steepest is not None else
               "never fell clearly below its starting level before its lowest point at")
        result.reason = (f"The smoothed loss {how} {min_lr:.2g} ({stop}), so the suggestion is a tenth of that, "
                         f"{min_lr / 10:.2g}, a safe distance below where the loss stops improving.")
        if count < 10:
            result.notes.append(f"only {count} steps were taken: a longer test (more steps, or a smaller start "
                                f"learning rate) gives a steadier curve")
    return result


def find_lr(project: Project, *, base_dir: str | os.PathLike | None = None,
            overrides: dict[str, Any] | None = None, **kw: Any) -> LRFinderResult:
    """The range test on a project: its network, loss, optimizer and training data as `engine.runner.prepare`
    builds them (so the same checks and errors), its batch size and seed unless given. `kw` goes to
    lr_range_test (start, end, steps, batch_size, smooth, diverge, seed)."""
    from .runner import prepare

    run = prepare(project, overrides, base_dir=base_dir)
    kw.setdefault("batch_size", run.config.batch_size)
    kw.setdefault("seed", run.config.seed)
    trainer = run.trainer
    return lr_range_test(trainer.module, trainer.loss_fn, trainer.optimizer, run.data, **kw)
