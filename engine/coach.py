"""The training coach: while a network trains, it watches for the classic problems a learner meets and says in
words what is wrong and what cures it.

    coach = Coach(every=20, on_warning=print)
    run = prepare(project, callbacks=[coach])
    run.trainer.fit(run.data)
    coach.warnings      # every warning given, as plain dicts
    coach.figures       # the latest per-layer figures: dead share, gradient, weight and update norms

What it watches:

* dead ReLUs: the share of a ReLU layer's units that never switched on over the last `window` sampled batches
  (a unit is a feature of a (N, F) output, a channel of an image or of a Conv1d's (N, C, L) output);
* vanishing gradients: the first weight layer's gradient orders of magnitude below the last one's;
* exploding gradients: non-finite gradients, gradients that are large (total norm over `exploding_norm`) and far
  larger than the weights they update (over `exploding_ratio` times), or that grew a hundredfold within the window
  to more than the weights' size. With gradient clipping on, the clipped gradients are the ones measured;
* overfitting: the validation loss rising for `overfit_epochs` epochs while the training loss keeps falling (a
  warning), or a large gap between the two that keeps growing (information);
* the learning rate: too high when the smoothed training loss climbs well above its best, ends up above the
  untrained network's, or swings wildly without going down; too low when, after `lr_low_steps` steps, the loss
  has barely moved although the gradients are healthy and each step changes the weights by a tiny fraction of
  their size.

Cost: the loss checks are a few float operations per step. Everything else happens on one step in `every`: forward
hooks on the ReLU layers are put in place for that one step only (and ignore passes without gradients, such as
validation or the live views), and the parameters are copied before it so that the step's update can be measured.

A warning is a plain dict (`CoachWarning` below documents the keys). Each kind is given once per node until its
condition clears; `active` lists those still standing. `on_warning(warning)` is called on the training thread.
Under DistributedDataParallel only rank 0 coaches (the gradients are the same on every rank).
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

from .callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from .training import Trainer

KINDS = ("dead_relu", "vanishing_gradients", "exploding_gradients", "overfitting", "lr_too_high", "lr_too_low")

START_STEPS = 10   # the loss at the start: the mean of this many first steps
LATE_STEPS = 50    # steps before a loss that stays high or swings counts against the learning rate
LR_FINDER = "run the learning-rate finder (an LR range test) to pick one"


class CoachWarning(TypedDict):
    """One warning as the Coach gives it (a plain dict at run time)."""

    kind: str            # one of KINDS
    severity: str        # "info" | "warning"
    node: str | None     # the node id it is about, or None for the whole network
    message: str         # what is wrong, in a sentence
    cure: str            # what to do about it, in a sentence
    step: int
    epoch: int
    figures: dict[str, float]


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _power_of_ten(x: float, lo: float, hi: float) -> float:
    """x rounded to a power of ten and kept within [lo, hi]."""
    if not math.isfinite(x) or x <= 0:
        return lo
    return float(min(hi, max(lo, 10.0 ** round(math.log10(x)))))


class Coach(Callback):
    """Watches a run and warns, with the cure, about dead ReLUs, vanishing or exploding gradients, overfitting and
    a learning rate that is too high or too low. See the module's documentation for what each check measures."""

    def __init__(self, every: int = 20, on_warning: Callable[[dict[str, Any]], None] | None = None, *,
                 window: int = 5, dead_share: float = 0.5, vanishing_ratio: float = 1e-3,
                 exploding_ratio: float = 10.0, exploding_norm: float = 100.0, exploding_growth: float = 100.0,
                 overfit_epochs: int = 3,
                 gap_ratio: float = 2.0, diverge: float = 2.0, smooth: float = 0.98, lr_low_steps: int = 100,
                 lr_low_update: float = 1e-5, lr_low_progress: float = 0.1, oscillation: float = 1.5,
                 min_steps: int = 8):
        self.every = max(1, int(every))
        self.on_warning = on_warning
        self.window = max(1, int(window))
        self.dead_share, self.vanishing_ratio = float(dead_share), float(vanishing_ratio)
        self.exploding_ratio, self.exploding_growth = float(exploding_ratio), float(exploding_growth)
        self.exploding_norm = float(exploding_norm)
        self.overfit_epochs, self.gap_ratio = max(1, int(overfit_epochs)), float(gap_ratio)
        self.diverge, self.beta = float(diverge), float(smooth)
        self.lr_low_steps, self.lr_low_update = int(lr_low_steps), float(lr_low_update)
        self.lr_low_progress, self.oscillation, self.min_steps = float(lr_low_progress), float(oscillation), \
            int(min_steps)
        self.warnings: list[dict[str, Any]] = []
        self.figures: dict[str, Any] = {"step": 0, "epoch": 0, "layers": {}}
        self.seconds = 0.0   # time spent coaching (sampled steps and checks)
        self.count = 0       # sampled steps
        self._active: dict[tuple[str, str | None], dict[str, Any]] = {}
        self._reset_run_state()

    # ---- what the app reads ----------------------------------------------------------------------------
    @property
    def active(self) -> list[dict[str, Any]]:
        """The warnings whose condition still holds (given, not yet cleared)."""
        return list(self._active.values())

    def layer_figures(self) -> dict[str, dict[str, float]]:
        """The latest per-layer figures, by node id: {"dead" (share of units never on in the window), "units",
        "batches" (sampled batches in the window)} for a ReLU layer, {"weight_norm", "grad_norm", "update_ratio"
        (the norm of the last sampled step's change over the weights' norm)} for a layer with parameters."""
        return {k: dict(v) for k, v in self.figures.get("layers", {}).items()}

    # ---- set-up --------------------------------------------------------------------------------------
    def _reset_run_state(self) -> None:
        self._on = True
        self._relus: list[tuple[str, Any, bool]] = []       # (node, module, channels first for 3-D outputs)
        self._hooks: list[Any] = []
        self._seen: dict[str, Any] = {}                     # node -> alive mask of the sampled step
        self._masks: dict[str, deque] = {}
        self._params: list[Any] = []
        self._nodes: list[tuple[str, list[int], bool, bool]] = []  # (node, indices into _params, has a weight
        #                                                               matrix, updated by the optimizer)
        self._before: list[Any] | None = None
        self._armed = False
        self._ratios: deque = deque(maxlen=self.window)       # first/last gradient ratio per sample
        self._totals: deque = deque(maxlen=self.window)       # total gradient norm per sample
        self._rel: deque = deque(maxlen=self.window)          # largest gradient/weight ratio per sample
        self._updates: deque = deque(maxlen=self.window)      # median update ratio of the weight layers
        self._ema = self._ema_diff = 0.0
        self._n = 0
        self._prev_loss: float | None = None
        self._first: float | None = None   # the first step's loss
        self._start: float | None = None   # the mean loss of the first START_STEPS steps
        self._start_sum = 0.0
        self._best = math.inf
        self._swing = math.nan
        self._dead_now = 0.0
        self._epochs: list[tuple[float, float | None]] = []  # (training loss, validation loss) per epoch

    def on_fit_start(self, trainer: Trainer, logs: dict[str, float]) -> None:
        import torch.nn as nn

        self._remove_hooks()
        self._reset_run_state()
        self._active = {}  # a new run (or a resumed one) is judged afresh; `warnings` keeps what was said before
        self._on = getattr(trainer, "rank", 0) == 0
        if not self._on:
            return
        model = trainer.module
        prev_weight: Any = None
        for name, module in model.named_modules():
            if not name or next(module.children(), None) is not None:
                continue  # the model itself and containers: their leaves are visited
            if isinstance(module, (nn.ReLU, nn.ReLU6)):
                channels_first = isinstance(prev_weight, (nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d,
                                                          nn.InstanceNorm1d, nn.GroupNorm))
                self._relus.append((name, module, channels_first))
                self._masks[name] = deque(maxlen=self.window)
            elif any(True for _ in module.parameters(recurse=False)):
                prev_weight = module
        optimizer = getattr(trainer, "optimizer", None)
        stepped = {id(p) for g in optimizer.param_groups for p in g["params"]} if optimizer is not None else None
        order: dict[str, tuple[list[int], bool, bool]] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            node = name.split(".")[0]  # the builder names each node's submodule by the node's id
            idx, weighty, trained = order.setdefault(node, ([], False, False))
            idx.append(len(self._params))
            order[node] = (idx, weighty or p.dim() > 1, trained or stepped is None or id(p) in stepped)
            self._params.append(p)
        # a node the optimizer does not update (frozen) gets no update ratio, which would read as "too slow"
        self._nodes = list((node, *v) for node, v in order.items())
        for e in trainer.history.epochs:  # a resumed run: the epochs before it count
            if "loss" in e:
                self._epochs.append((float(e["loss"]), e.get("val_loss")))
        if self._nodes or self._relus:
            self._arm()

    def _arm(self) -> None:
        """Get ready to measure the next step: hooks on the ReLUs and a copy of the parameters."""
        import torch
        self._remove_hooks()
        for node, module, channels_first in self._relus:
            self._hooks.append(module.register_forward_hook(self._relu_hook(node, channels_first)))
        if self._params:
            with torch.no_grad():
                self._before = [p.detach().clone() for p in self._params]
        self._armed = True

    def _relu_hook(self, node: str, channels_first: bool):
        import torch
        seen = self._seen

        def hook(module, inputs, out):
            if not (module.training and torch.is_grad_enabled()) or not isinstance(out, torch.Tensor):
                return  # validation, the live views, a snapshot's forward pass
            start = time.perf_counter()  # counted in `seconds`, which paces the sampling
            t = out.detach()
            if t.dim() < 2:
                alive = t > 0
            elif t.dim() == 2:
                alive = t.amax(0) > 0
            elif t.dim() >= 4 or channels_first:
                alive = t.amax(dim=(0, *range(2, t.dim()))) > 0
            else:
                alive = t.amax(dim=tuple(range(t.dim() - 1))) > 0
            old = seen.get(node)
            seen[node] = alive if old is None or old.shape != alive.shape else old | alive
            self.seconds += time.perf_counter() - start
        return hook

    def _remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # ---- per step ------------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if not self._on:
            return
        t = time.perf_counter()
        loss = logs.get("loss")
        if loss is not None and math.isfinite(loss):
            self._track_loss(trainer, float(loss), logs)
        if self._armed:
            self._sample(trainer, logs)
        if (int(logs["step"]) + 1) % self.every == 0:
            self._arm()
        self.seconds += time.perf_counter() - t

    def _track_loss(self, trainer: Trainer, loss: float, logs: dict[str, float]) -> None:
        """The smoothed loss (a bias-corrected moving average), its step-to-step swing, and the checks for a
        learning rate that is too high: the loss climbing well above its best, ending up above the untrained
        network's, or swinging wildly without going down."""
        b = self.beta
        n = self._n = self._n + 1
        self._ema = b * self._ema + (1 - b) * loss
        if self._prev_loss is not None:
            self._ema_diff = b * self._ema_diff + (1 - b) * abs(loss - self._prev_loss)
        self._prev_loss = loss
        smooth = self._ema / (1 - b ** n)
        if self._first is None:
            self._first = loss  # the untrained network's loss
        if n <= START_STEPS:
            self._start_sum += loss
            self._start = self._start_sum / n
        if n >= 3 and smooth < self._best:  # the best of averages over at least 3 steps
            self._best = smooth
        if n < self.min_steps:
            return
        best, first = self._best, self._first
        swing = self._ema_diff / max(1 - b ** (n - 1), 1e-12) / max(abs(smooth), 1e-12)
        self._swing = swing
        rising = smooth > self.diverge * best and smooth - best > 0.25 * max(first - best, 0.0)
        worse = n >= LATE_STEPS and smooth > 1.5 * first
        wild = n >= LATE_STEPS and swing > self.oscillation and smooth > 0.8 * first
        key = ("lr_too_high", None)
        if rising or worse or wild:
            if key not in self._active:
                lr = float(logs.get("lr", 0.0))
                if rising:
                    what = (f"The training loss is rising (smoothed: {_fmt(best)} at its best, {_fmt(smooth)} now): "
                            f"the learning rate {lr:g} is probably too high, so each step overshoots")
                elif worse:
                    what = (f"After {n} steps the training loss ({_fmt(smooth)}, smoothed) is higher than the "
                            f"untrained network's ({_fmt(first)}): the learning rate {lr:g} is probably too high")
                else:
                    what = (f"The training loss swings wildly from step to step (by {swing:.0%} of its level on "
                            f"average) without going down: the learning rate {lr:g} is probably too high")
                self._warn(trainer, "lr_too_high", None, "warning", what + ".",
                           f"Lower the learning rate about 10× (to {lr / 10:g}), or {LR_FINDER}; gradient clipping "
                           f"(e.g. 1.0) also steadies it.", logs,
                           {"loss": smooth, "best_loss": best, "first_loss": first, "swing": swing, "lr": lr})
        elif key in self._active and smooth < 1.5 * best and swing < self.oscillation:
            self._clear(key)

    def _sample(self, trainer: Trainer, logs: dict[str, float]) -> None:
        import torch

        self._remove_hooks()
        self._armed = False
        self.count += 1
        step, epoch = int(logs["step"]), int(logs["epoch"])
        layers: dict[str, dict[str, float]] = {}
        # dead units
        dead: dict[str, float] = {}
        self._dead_now = 0.0  # the largest share of units silent in this one batch
        for node, _module, _cf in self._relus:
            alive = self._seen.pop(node, None)
            if alive is None:
                continue
            masks = self._masks[node]
            if masks and masks[-1].shape != alive.shape:
                masks.clear()
            masks.append(alive)
            ever = masks[0]
            for m in list(masks)[1:]:
                ever = ever | m
            share = 1.0 - float(ever.float().mean())
            dead[node] = share
            self._dead_now = max(self._dead_now, 1.0 - float(alive.float().mean()))
            layers[node] = {"dead": share, "units": float(alive.numel()), "batches": float(len(masks))}
        # gradient, weight and update norms, with one transfer of all figures
        params = self._params
        grads = [p.grad for p in params]
        have = [i for i, g in enumerate(grads) if g is not None and not g.is_sparse]
        with torch.no_grad():
            norms = []
            if have:
                norms += torch._foreach_norm([grads[i] for i in have])
            if params:
                norms += torch._foreach_norm([p.detach() for p in params])
            before = self._before
            if before is not None and len(before) == len(params):
                norms += torch._foreach_norm(torch._foreach_sub([p.detach() for p in params], before))
            values = torch.stack([v.float().reshape(()) for v in norms]).cpu().tolist() if norms else []
        self._before = None
        gnorm = dict.fromkeys(range(len(params)), None)
        for j, i in enumerate(have):
            gnorm[i] = values[j]
        off = len(have)
        wnorm = values[off:off + len(params)]
        dnorm = values[off + len(params):] or None
        weight_layers: list[tuple[str, float, float, float | None]] = []
        for node, idx, weighty, trained in self._nodes:
            gs = [gnorm[i] for i in idx if gnorm[i] is not None]
            g = math.sqrt(sum(v * v for v in gs)) if gs else None
            w = math.sqrt(sum(wnorm[i] ** 2 for i in idx))
            u = math.sqrt(sum(dnorm[i] ** 2 for i in idx)) / max(w, 1e-12) if dnorm and trained else None
            entry = layers.setdefault(node, {})
            entry["weight_norm"] = w
            if g is not None:
                entry["grad_norm"] = g
            if u is not None:
                entry["update_ratio"] = u
            if weighty and g is not None:
                weight_layers.append((node, g, w, u))
        lr = float(logs.get("lr", 0.0))
        corr = 1 - self.beta ** self._n if self._n else 1.0
        self.figures = {"step": step, "epoch": epoch, "lr": lr,
                        "loss": self._ema / corr if self._n else math.nan, "loss_swing": self._swing,
                        "layers": layers}
        self._check_dead(trainer, logs, dead)
        self._check_gradients(trainer, logs, weight_layers)
        self._check_lr_low(trainer, logs, weight_layers, lr)

    # ---- the checks ----------------------------------------------------------------------------------
    def _check_dead(self, trainer: Trainer, logs: dict[str, float], dead: dict[str, float]) -> None:
        for node, share in dead.items():
            key = ("dead_relu", node)
            n = len(self._masks[node])
            if share > self.dead_share and n >= min(self.window, 2):
                if key not in self._active:
                    self._warn(trainer, "dead_relu", node, "warning",
                               f"In {node}, {share:.0%} of the units never switched on over the last {n} sampled "
                               f"batches: these dead ReLUs output 0 for every input, so they pass no gradient "
                               f"back and stop learning.",
                               "Lower the learning rate (e.g. 10×), use LeakyReLU or ELU instead of ReLU, check the "
                               "initialisation (He/Kaiming for ReLU; biases must not be strongly negative), or add "
                               "BatchNorm before the ReLU.", logs, {"dead_share": share, "batches": float(n)})
            elif key in self._active and share < 0.8 * self.dead_share:
                self._clear(key)

    def _check_gradients(self, trainer: Trainer, logs: dict[str, float],
                         weight_layers: list[tuple[str, float, float, float | None]]) -> None:
        if not weight_layers:
            return
        # exploding: non-finite, far larger than the weights, or growing fast
        scaled = getattr(trainer, "_scaler", None) is not None  # float16 AMP: the scaler skips inf steps itself
        bad = [node for node, g, _w, _u in weight_layers if not math.isfinite(g)]
        finite = [(node, g, w) for node, g, w, _u in weight_layers if math.isfinite(g)]
        total = math.sqrt(sum(g * g for _n, g, _w in finite)) if finite else math.nan
        worst = max(finite, key=lambda t: t[1] / max(t[2], 1e-12), default=None)
        rel = worst[1] / max(worst[2], 1e-12) if worst else math.nan
        growth = 1.0
        if math.isfinite(total):
            earlier = [t for t in self._totals if t > 0]
            if earlier and total > 0:
                growth = total / min(earlier)
            self._totals.append(total)
        if math.isfinite(rel):
            self._rel.append(rel)
        rel_med = sorted(self._rel)[len(self._rel) // 2] if self._rel else math.nan
        total_med = sorted(self._totals)[len(self._totals) // 2] if self._totals else math.nan
        key = ("exploding_gradients", None)
        big = len(self._rel) >= min(2, self.window) and rel_med > self.exploding_ratio and \
            total_med > self.exploding_norm
        # growing fast: a hundredfold within the window, to gradients now larger than the weights they update
        fast = growth > self.exploding_growth and len(self._totals) >= 3 and rel > 1.0
        if (bad and not scaled) or big or fast:
            if key not in self._active:
                if bad and not scaled:
                    what = f"The gradients of {', '.join(bad)} became infinite or NaN"
                elif big:
                    what = (f"The gradients are huge: in {worst[0]} the gradient is {_fmt(rel)}× as large as the "
                            f"weights it updates (norm {_fmt(worst[1])})")
                else:
                    what = (f"The gradients grew {growth:.0f}× within the last {len(self._totals)} samples "
                            f"(total norm {_fmt(total)})")
                self._warn(trainer, "exploding_gradients", None, "warning",
                           what + ": the steps blow the weights up (exploding gradients).",
                           "Turn on gradient clipping (e.g. 1.0 in the training settings), lower the learning rate "
                           "about 10×, add BatchNorm between the layers, and check the initialisation (weights far "
                           "too large make every layer multiply the signal).", logs,
                           {"grad_norm": total, "grad_to_weight": rel, "growth": growth,
                            "non_finite_layers": float(len(bad))})
        elif key in self._active and rel_med < 0.5 * self.exploding_ratio and growth < self.exploding_growth:
            self._clear(key)
        # vanishing: the first weight layer's gradient orders of magnitude below the last one's
        if len(finite) < 2:
            return
        (first, g0, _w0), (last, g1, _w1) = finite[0], finite[-1]
        if g1 <= 0:
            return  # no gradient anywhere (a solved batch): nothing to compare
        self._ratios.append(g0 / g1)
        ratio = sorted(self._ratios)[len(self._ratios) // 2]
        key = ("vanishing_gradients", first)
        # units that are dead (for good, or in this batch) explain a missing gradient better than vanishing does
        dead = self._dead_now > self.dead_share or any(k[0] == "dead_relu" for k in self._active)
        if ratio < self.vanishing_ratio and len(self._ratios) >= min(2, self.window) and not dead:
            if key not in self._active:
                how = "receives no gradient at all" if ratio == 0 else \
                    f"receives a gradient {ratio:.1e} times the size of the last one's ({last})"
                self._warn(trainer, "vanishing_gradients", first, "warning",
                           f"The first layer ({first}) {how}: the signal fades on its way back through the "
                           f"{len(finite)} layers, so the early layers hardly learn (vanishing gradients).",
                           "Use ReLU (or LeakyReLU) instead of Sigmoid or Tanh between the layers of a deep stack, "
                           "add BatchNorm, add residual (skip) connections, or make the network shallower.", logs,
                           {"ratio": ratio, "first_grad_norm": g0, "last_grad_norm": g1, "layers": float(len(finite))})
        elif key in self._active and ratio > 10 * self.vanishing_ratio:
            self._clear(key)

    def _check_lr_low(self, trainer: Trainer, logs: dict[str, float],
                      weight_layers: list[tuple[str, float, float, float | None]], lr: float) -> None:
        ups = sorted(u for _n, g, _w, u in weight_layers if u is not None and math.isfinite(g))
        if not ups:
            return
        self._updates.append(ups[len(ups) // 2])
        update = sorted(self._updates)[len(self._updates) // 2]
        key = ("lr_too_low", None)
        start = self._start
        if self._n < self.min_steps or start is None:
            return
        smooth = self._ema / (1 - self.beta ** self._n)
        progress = (start - smooth) / abs(start) if start else 0.0
        healthy = not any(k[0] in ("vanishing_gradients", "exploding_gradients", "dead_relu") for k in self._active)
        healthy = healthy and weight_layers[-1][1] > 0
        if self._n >= self.lr_low_steps and update < self.lr_low_update and progress < self.lr_low_progress \
                and healthy and lr > 0:
            if key not in self._active:
                factor = _power_of_ten(1e-3 / max(update, 1e-30), 10.0, 1e4)
                self._warn(trainer, "lr_too_low", None, "info",
                           f"After {self._n} steps the training loss has barely moved ({_fmt(start)} → "
                           f"{_fmt(smooth)}) although the gradients are healthy: each step changes the weights by "
                           f"only {update:.1e} of their size, so the learning rate {lr:g} is probably too low.",
                           f"Raise the learning rate about {factor:g}× (to {lr * factor:g}), or {LR_FINDER}.", logs,
                           {"update_ratio": update, "progress": progress, "loss": smooth, "start_loss": start,
                            "lr": lr, "factor": factor})
        elif key in self._active and (update > 10 * self.lr_low_update or progress > self.lr_low_progress):
            self._clear(key)

    def on_train_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if not self._on:
            return
        t = time.perf_counter()
        loss, val = logs.get("loss"), logs.get("val_loss")
        if loss is None or not math.isfinite(loss):
            return
        self._epochs.append((float(loss), float(val) if val is not None and math.isfinite(val) else None))
        self._check_overfitting(trainer, logs)
        self.seconds += time.perf_counter() - t

    def _check_overfitting(self, trainer: Trainer, logs: dict[str, float]) -> None:
        eps = [(i, tr, va) for i, (tr, va) in enumerate(self._epochs) if va is not None]
        k = self.overfit_epochs
        key = ("overfitting", None)
        if len(eps) < 2:
            return
        b, train_b, best = min(eps, key=lambda e: e[2])
        i, train_now, now = eps[-1]
        # rising: no new best for k epochs, now clearly above it and above the training loss, while the training
        # loss kept falling (a noisy validation loss that merely wobbles around the training loss does not count)
        rising = (i - b >= k and now > best * 1.02 + 1e-12 and now > eps[-1 - k][2] and train_now < 0.95 * train_b
                  and now - train_now > 0.1 * now)
        gaps = [va - tr for _i, tr, va in eps[-(k + 1):]]
        growing = (len(gaps) == k + 1 and all(y > x for x, y in zip(gaps, gaps[1:], strict=False))
                   and now > self.gap_ratio * train_now + 1e-12 and train_now < eps[-1 - k][1])
        epoch = int(logs.get("epoch", len(self._epochs)))
        figures = {"val_loss": now, "train_loss": train_now, "best_val_loss": best, "best_epoch": float(b + 1),
                   "gap": now - train_now}
        cure = ("Add Dropout, add L2 regularisation (weight decay), use data augmentation, turn on early stopping, "
                "get more training data, or use a smaller network.")
        current = self._active.get(key)
        if rising and (current is None or current["severity"] == "info"):
            if current is not None:
                self._clear(key)
            self._warn(trainer, "overfitting", None, "warning",
                       f"The validation loss has gone up for {i - b} epochs ({_fmt(best)} at epoch {b + 1}, "
                       f"{_fmt(now)} at epoch {epoch}) while the training loss kept falling ({_fmt(train_b)} → "
                       f"{_fmt(train_now)}): the network is learning the training samples by heart (overfitting).",
                       cure, logs, figures)
        elif growing and current is None:
            self._warn(trainer, "overfitting", None, "info",
                       f"The validation loss ({_fmt(now)}) is more than {self.gap_ratio:g}× the training loss "
                       f"({_fmt(train_now)}) and the gap has grown for {k} epochs: the network is starting to "
                       f"overfit.", cure, logs, figures)
        elif current is not None and b == i:  # a new best validation loss: it generalises better again
            self._clear(key)

    # ---- giving and clearing warnings -----------------------------------------------------------------
    def _warn(self, trainer: Trainer, kind: str, node: str | None, severity: str, message: str, cure: str,
              logs: dict[str, float], figures: dict[str, float]) -> None:
        warning = {"kind": kind, "severity": severity, "node": node, "message": message, "cure": cure,
                   "step": int(logs.get("step", getattr(trainer, "global_step", 0))),
                   "epoch": int(logs.get("epoch", getattr(trainer, "epoch", 0))),
                   "figures": {k: float(v) for k, v in figures.items()}}
        self._active[(kind, node)] = warning
        self.warnings.append(warning)
        if self.on_warning is not None:
            try:
                self.on_warning(dict(warning))
            except Exception as e:  # a broken listener must not end the run
                trainer.note(f"the coach's warning listener failed: {type(e).__name__}: {e}")

    def _clear(self, key: tuple[str, str | None]) -> None:
        self._active.pop(key, None)

    def on_fit_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self._remove_hooks()
        self._before = None
        self._armed = False

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._remove_hooks()
        self._before = None
        self._armed = False
