"""The Trainer: fit a model on in-memory tensors with callbacks, pause / resume / stop flags, NaN guarding,
exact-resume checkpoints and DistributedDataParallel when launched by torchrun.

Only plain data leaves it: hooks get dicts of floats, snapshots NumPy arrays, so a GUI thread, the CLI and
tests use it the same way. torch is imported lazily (`import engine.training` stays light).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .callbacks import Callback, EarlyStopping, History
from .errors import LayerLoomError, TrainingError

if TYPE_CHECKING:  # pragma: no cover
    import torch

CHECKPOINT_FORMAT = 1


class Status(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"


# metric kinds: how outputs are scored beside the loss
ACCURACY, BINARY_PROB, BINARY_LOGIT, REGRESSION = "accuracy", "binary_prob", "binary_logit", "regression"


@dataclass
class TrainConfig:
    """Everything about a run except the model, loss, optimizer and data. Plain values only."""

    epochs: int = 10
    batch_size: int = 32
    device: str = "auto"              # auto | cpu | cuda
    seed: int = 0
    shuffle: bool = True
    l1: float = 0.0                   # L1 penalty on all weights, added to the loss
    grad_clip: float | None = None    # clip the gradients' global norm to this value
    amp: bool = True                  # mixed precision, used only on CUDA
    early_stopping: dict[str, Any] | None = None  # {patience, monitor, min_delta, restore_best}
    checkpoint_dir: str | None = None
    eval_batch_size: int | None = None
    channels_last: bool | None = None  # None: on for image batches (N, C, H, W), where it is faster

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TensorData:
    """Train and validation tensors already in memory (x and y per split); batches are taken by indexing."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    augment: dict[str, Any] | None = None
    target_is_input: bool = False  # an autoencoder's target is its (augmented) input

    @property
    def has_val(self) -> bool:
        return self.val_x is not None and len(self.val_x) > 0


@dataclass
class FitResult:
    status: Status
    message: str = ""
    epochs_done: int = 0
    steps_done: int = 0
    history: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    best_epoch: int | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.status in (Status.FINISHED, Status.STOPPED)


class _NonFinite(Exception):
    pass


def _dist():
    """(rank, world_size, torch.distributed or None) when running under torchrun with a process group."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dist
    return 0, 1, None


def _dense(t, device: str):
    """`t` on `device` with the strides of a freshly allocated row-major tensor (a copy only when needed)."""
    import torch
    if t is None:
        return None
    t = t.to(device)
    expected, acc = [], 1
    for size in reversed(t.shape):
        expected.append(acc)
        acc *= size
    if tuple(reversed(expected)) != t.stride():
        t = t.clone(memory_format=torch.contiguous_format)
    return t


def _all_finite(tensors) -> bool:
    """Whether every value in `tensors` is finite. A NaN or an infinity makes a sum non-finite, and summing in
    float64 cannot overflow for float32 weights, so one summed scalar answers for all of them: about a tenth of
    the cost of isfinite().all() on each. Only a non-finite sum is confirmed value by value."""
    import torch
    if not tensors:
        return True
    total = torch.stack([t.detach().sum(dtype=torch.float64) for t in tensors]).sum()
    if math.isfinite(float(total)):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _channels_last(t) -> bool:
    """A batch of images stored channels-last with more than one channel (with one, both layouts are the same
    bytes and row-major indexing is as good)."""
    import torch
    return t.dim() == 4 and t.shape[1] > 1 and not t.is_contiguous() and \
        t.is_contiguous(memory_format=torch.channels_last)


def pick_device(name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for but no CUDA GPU is available: use --device cpu or auto")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise TrainingError(f"unknown device {name!r}: use auto, cpu or cuda")
    return name


class Trainer:
    """Fits `model` with `loss_fn` and `optimizer` on TensorData.

    Thread-safe controls (call from any thread): pause(), resume(), request_stop(). They are checked between
    steps. `status`, `eta_seconds` and `progress` can be read at any time.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 config: TrainConfig | None = None, *, scheduler: Any = None, schedule_per_batch: bool = False,
                 schedule_needs_metric: bool = False, schedule_monitor: str = "val_loss", metric: str = ACCURACY,
                 callbacks: list[Callback] | None = None, lr_hint: float | None = None):
        import torch

        self.config = config or TrainConfig()
        self.device = pick_device(self.config.device)
        self.rank, self.world, self._dist = _dist()
        if self.world > 1 and self.device == "cuda":  # each process drives the GPU torchrun gave it
            self.device = f"cuda:{torch.cuda.current_device()}"
        self.model = model.to(self.device)
        self.module = self.model  # the bare model, also under DDP
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel
            ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
            self.model = DistributedDataParallel(self.model, device_ids=ids)
        self.loss_fn = loss_fn.to(self.device)
        # A class index the loss skips (CrossEntropy's ignore_index when set; -100 is PyTorch's "not set").
        ignore = getattr(loss_fn, "ignore_index", -100)
        self._ignore = ignore if isinstance(ignore, int) and ignore != -100 else None
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.schedule_per_batch = schedule_per_batch
        self.schedule_needs_metric = schedule_needs_metric
        self.schedule_monitor = schedule_monitor
        self.metric = metric
        self.history = History()
        self.callbacks: list[Callback] = [self.history, *(callbacks or [])]
        self.early_stopping: EarlyStopping | None = None
        if self.config.early_stopping:
            self.early_stopping = EarlyStopping(**self.config.early_stopping)
            self.callbacks.append(self.early_stopping)
        self.lr_hint = lr_hint
        self.data: TensorData | None = None
        self.status = Status.IDLE
        self.notes: list[str] = []
        self._stop = threading.Event()
        self._stop_finished = False
        self._stop_reason = ""
        self._pause = threading.Event()
        self._lock = threading.Lock()
        self.epoch = 0            # epochs completed
        self.batch = 0            # batches completed in the current epoch
        self.global_step = 0
        self.steps_per_epoch = 0
        self.total_steps = 0
        self._accum = _Accum()
        self._step_time = 0.0
        self._stepping = 0  # the step (from 1) running now, its batch hooks included: where an error is reported
        self._aug_gen = None
        self._good_weights: dict[str, torch.Tensor] | None = None
        self._amp_dtype = None
        self._scaler = None

    # ---- controls (any thread) ----------------------------------------------------------------------
    def request_stop(self, reason: str = "stopped by the user", finished: bool = False) -> None:
        with self._lock:
            self._stop_reason, self._stop_finished = reason, finished
        self._stop.set()
        self._pause.clear()

    def pause(self) -> None:
        if self.status == Status.RUNNING:
            self._pause.set()

    def resume(self) -> None:
        self._pause.clear()

    @property
    def eta_seconds(self) -> float | None:
        if not self._step_time or not self.total_steps:
            return None
        return max(0.0, (self.total_steps - self.global_step) * self._step_time)

    @property
    def progress(self) -> float:
        return self.global_step / self.total_steps if self.total_steps else 0.0

    def running_logs(self) -> dict[str, float]:
        """This epoch's figures so far (mean loss, accuracy or MAE over the steps done): steadier than the last
        batch's for a progress display."""
        return self._accum.epoch_logs("", self.metric)

    def note(self, text: str) -> None:
        self.notes.append(text)

    # ---- weights -----------------------------------------------------------------------------------
    def copy_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(weights)

    def features(self, layer: str, sample: torch.Tensor) -> Any:
        """The output of `layer` for `sample` (a batch of one), as a NumPy array, without changing anything
        the training depends on (eval mode and no gradients, then back)."""
        import torch
        captured = {}
        handle = getattr(self.module, layer).register_forward_hook(
            lambda m, i, o: captured.__setitem__("out", o[0] if isinstance(o, tuple) else o))
        was_training = self.module.training
        try:
            self.module.train(False)  # evaluation mode
            with torch.no_grad():
                self.module(sample.to(self.device))
        finally:
            handle.remove()
            self.module.train(was_training)
        return captured["out"][0].detach().float().cpu().numpy().copy()

    # ---- the run -----------------------------------------------------------------------------------
    def _call(self, hook: str, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, logs)

    def _listeners(self, hook: str) -> list:
        """The callbacks that really implement `hook` (not the base's no-op), as bound methods: the hot loop
        calls only these and builds no logs for a hook nobody listens to."""
        base = getattr(Callback, hook)
        return [getattr(cb, hook) for cb in self.callbacks if getattr(type(cb), hook, base) is not base]

    def _shard(self, idx: torch.Tensor) -> torch.Tensor:
        return idx.tensor_split(self.world)[self.rank] if self.world > 1 else idx

    def fit(self, data: TensorData, resume_from: str | os.PathLike | None = None) -> FitResult:
        """Train for config.epochs (counting epochs done before a resume). Never raises for a failing run:
        the result says how it ended (finished, stopped, failed) and why."""
        import torch

        cfg = self.config
        self.data = data
        self._stop.clear()
        self._pause.clear()
        n = len(data.train_x)
        bs = cfg.batch_size
        if n == 0:
            raise TrainingError("the training split is empty: use more data or a smaller validation/test split")
        # A last batch of a single sample would break BatchNorm ("more than 1 value per channel"): it joins the
        # batch before it instead.
        self.steps_per_epoch = math.ceil(n / bs) - (1 if n % bs == 1 and n > bs else 0)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if self.device.startswith("cuda") and cfg.amp:
            self._amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if self._amp_dtype == torch.float16:
                self._scaler = torch.amp.GradScaler("cuda")
        # One copy on the device with plain row-major strides: batches are then slices of it. (Arrays from
        # NumPy can carry odd strides on size-1 dimensions, which index_select keeps and which make convolutions
        # pick a slower channels-last path.)
        data = TensorData(*(_dense(t, self.device) for t in (data.train_x, data.train_y, data.val_x, data.val_y)),
                          augment=data.augment, target_is_input=data.target_is_input)
        channels_last = cfg.channels_last
        if channels_last is None:  # convolutions run 5-40 % faster on this layout (bench/train_overhead.py)
            channels_last = data.train_x.dim() == 4 and data.train_x.is_floating_point() and self.world == 1
        if channels_last:
            self.module.to(memory_format=torch.channels_last)
            data.train_x = data.train_x.contiguous(memory_format=torch.channels_last)
            if data.val_x is not None:
                data.val_x = data.val_x.contiguous(memory_format=torch.channels_last)
        self._aug_gen = torch.Generator(device="cpu")
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        else:
            # Dropout and other randomness start the same way for the same seed. On the CPU only its generator
            # draws; torch.manual_seed would also queue seeds for every accelerator (about 0.2 ms of stack capture).
            if self.device == "cpu":
                torch.default_generator.manual_seed(cfg.seed)
            else:
                torch.manual_seed(cfg.seed)
        self.status = Status.RUNNING
        result_status, message, error = Status.FINISHED, "", None
        self._good_weights = self.copy_weights()
        try:
            self._call("on_fit_start", {"epoch": self.epoch, "step": self.global_step})
            while self.epoch < cfg.epochs and not self._stop.is_set():
                self._train_epoch(data, n, bs)
                if self._stop.is_set() and self.batch < self.steps_per_epoch:  # stopped inside the epoch
                    break
                logs = self._accum.epoch_logs("", self.metric, self._dist)
                if data.has_val:
                    logs.update(self._validate(data))
                logs.update(epoch=self.epoch + 1, lr=self._lr(), time=self._accum.seconds, step=self.global_step)
                if self.scheduler is not None and not self.schedule_per_batch:
                    if self.schedule_needs_metric:
                        m = self.schedule_monitor
                        self.scheduler.step(logs.get(m, logs.get(m.removeprefix("val_"), logs["loss"])))
                    else:
                        self.scheduler.step()
                if not all(math.isfinite(v) for k, v in logs.items() if k.endswith("loss")) or \
                        not _all_finite(list(self.module.parameters())):
                    self._non_finite(float("nan"), self.batch - 1, when="at the end of")
                self.epoch += 1
                self.batch = 0
                self._accum = _Accum()
                self._good_weights = self.copy_weights()
                self._call("on_train_epoch_end", logs)
                if cfg.checkpoint_dir and self.rank == 0:
                    self.save_checkpoint(Path(cfg.checkpoint_dir) / "last")
            if self._stop.is_set():
                result_status = Status.FINISHED if self._stop_finished else Status.STOPPED
                message = self._stop_reason
                if cfg.checkpoint_dir and self.rank == 0 and self.batch:
                    self.save_checkpoint(Path(cfg.checkpoint_dir) / "last")
        except _NonFinite as e:
            result_status, message = Status.FAILED, str(e)
            error = TrainingError(message)
            self._call_exception(error)
        except Exception as e:  # a failing step ends the run as failed; what was saved before stays
            result_status = Status.FAILED
            if self._stepping:
                where = f"in epoch {self.epoch + 1}, step {self._stepping}"
            else:  # validation, the schedule, a callback or the checkpoint after an epoch
                where = f"at the end of epoch {self.epoch + 1 if self.batch else self.epoch}"
            what = str(e) if isinstance(e, LayerLoomError) else f"{type(e).__name__}: {e}"
            message = f"training stopped by an error {where}: {what}"
            error = e
            self._call_exception(e)
        self.status = result_status
        end_logs = {"epoch": self.epoch, "step": self.global_step}
        try:
            self._call("on_fit_end", end_logs)
        except Exception as e:  # pragma: no cover - a broken callback must not hide the run's result
            self.note(f"a callback failed at the end of the run: {e}")
        return FitResult(result_status, message, self.epoch, self.global_step, self.history.state(),
                         list(self.notes), self.early_stopping.best_epoch if self.early_stopping else None, error)

    def _call_exception(self, error: BaseException) -> None:
        for cb in self.callbacks:
            try:
                cb.on_exception(self, error)
            except Exception:  # pragma: no cover
                pass

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _epoch_order(self, n: int):
        import torch
        if not self.config.shuffle:
            return torch.arange(n)
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.epoch)
        return torch.randperm(n, generator=gen)

    def _train_epoch(self, data: TensorData, n: int, bs: int) -> None:
        import torch

        cfg = self.config
        model, loss_fn, opt = self.model, self.loss_fn, self.optimizer
        model.train()
        order = self._epoch_order(n)
        if self.batch == 0:
            self._aug_gen.manual_seed(self.config.seed * 7_919 + self.epoch)
            self._call("on_train_epoch_start", {"epoch": self.epoch + 1, "step": self.global_step})
        x_all, y_all = data.train_x, data.train_y
        # index_select gives row-major rows; indexing keeps a channels-last batch channels-last, as the model is
        keep_layout = _channels_last(x_all)
        params = [p for p in self.module.parameters() if p.requires_grad]
        augment = data.augment if data.augment and any(data.augment.values()) else None
        if augment is not None:
            from .data import augment_batch
        amp = self._amp_dtype
        on_start, on_end = self._listeners("on_train_batch_start"), self._listeners("on_train_batch_end")
        accum, metric, world, clip, scaler = self._accum, self.metric, self.world, cfg.grad_clip, self._scaler
        ignore = self._ignore
        per_batch_schedule = self.scheduler if self.schedule_per_batch else None
        on_device = x_all.device.type != "cpu"
        epoch = self.epoch + 1
        t_epoch = time.perf_counter()
        for b in range(self.batch, self.steps_per_epoch):
            if self._stop.is_set():
                break
            if self._pause.is_set():
                self.status = Status.PAUSED
                while self._pause.is_set() and not self._stop.is_set():
                    time.sleep(0.05)
                self.status = Status.RUNNING
                if self._stop.is_set():
                    break
            t0 = time.perf_counter()
            self._stepping = b + 1
            global_idx = order[b * bs:(b + 1) * bs if b + 1 < self.steps_per_epoch else n]
            idx = self._shard(global_idx) if world > 1 else global_idx
            if on_device:
                idx = idx.to(x_all.device)
            xb = x_all[idx] if keep_layout else x_all.index_select(0, idx)
            yb = y_all.index_select(0, idx)
            if augment is not None:
                xb = augment_batch(xb, augment, self._aug_gen)
                if data.target_is_input:
                    yb = xb
            if on_start:
                start_logs = {"epoch": epoch, "batch": b + 1, "step": self.global_step + 1}
                for hook in on_start:
                    hook(self, start_logs)
            opt.zero_grad(set_to_none=True)
            if amp is not None:
                with torch.autocast(device_type="cuda", dtype=amp):
                    out = model(xb)
                out = out.float()  # the loss in float32: CUDA autocast refuses BCE, and it is more accurate
                loss = loss_fn(out, yb)
            else:
                out = model(xb)
                loss = loss_fn(out, yb)
            if cfg.l1:
                loss = loss + cfg.l1 * sum(p.abs().sum() for p in params if p.dim() > 1)
            loss_value = loss.item()
            if not math.isfinite(loss_value) and len(xb):
                self._non_finite(loss_value, b)
            if world > 1:
                # DDP averages gradients over ranks; weigh each rank by its share of the global batch so the
                # update equals one process on the whole batch, also when the last batch splits unevenly.
                loss = loss * (len(xb) * self.world / len(global_idx)) if len(xb) else \
                    sum(p.sum() * 0.0 for p in params)
            if scaler is not None:
                scaler.scale(loss).backward()
                if clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params, clip)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                if clip:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                opt.step()
            if per_batch_schedule is not None:
                per_batch_schedule.step()
            logs = accum.add(out, yb, loss_value, len(xb), metric, ignore)  # no autograd: argmax, comparisons
            self.batch = b + 1
            self.global_step += 1
            dt = time.perf_counter() - t0
            self._step_time = dt if not self._step_time else 0.9 * self._step_time + 0.1 * dt
            if on_end:
                logs.update(epoch=epoch, batch=b + 1, step=self.global_step, lr=self._lr(),
                            eta=self.eta_seconds or 0.0)
                for hook in on_end:
                    hook(self, logs)
            self._stepping = 0
        self._accum.seconds += time.perf_counter() - t_epoch

    def _non_finite(self, value: float, b: int, when: str = "in") -> None:
        finite = _all_finite(list(self.module.parameters()))
        if (not finite or when != "in") and self._good_weights is not None:
            self.load_weights(self._good_weights)
            kept = "the weights from the end of the last good epoch are kept"
        else:
            kept = "the last good weights are kept"
        lr = self._lr()
        cause = (f"the learning rate ({lr:g}) is probably too high: try {lr / 10:g}" if lr > 1e-3 or
                 (self.lr_hint and lr >= self.lr_hint) else
                 "the inputs may hold huge values or NaN: standardise them, or check the data")
        where = f"at epoch {self.epoch + 1}, step {b + 1}" if when == "in" else f"{when} epoch {self.epoch + 1}"
        raise _NonFinite(f"the loss became {'NaN' if math.isnan(value) else 'infinite'} {where}: {cause}; "
                         f"gradient clipping (e.g. 1.0) also helps. Training stopped and {kept}")

    def _validate(self, data: TensorData) -> dict[str, float]:
        import torch
        model, loss_fn = self.model, self.loss_fn
        acc = _Accum()
        bs = self.config.eval_batch_size or max(self.config.batch_size, 256)
        n = len(data.val_x)
        self._call("on_validation_epoch_start", {"epoch": self.epoch + 1})
        model.train(False)  # evaluation mode
        with torch.no_grad():
            order = torch.arange(n)
            keep_layout = _channels_last(data.val_x)
            for b in range(math.ceil(n / bs)):
                idx = self._shard(order[b * bs:(b + 1) * bs])
                if data.val_x.device.type != "cpu":
                    idx = idx.to(data.val_x.device)
                xb = data.val_x[idx] if keep_layout else data.val_x.index_select(0, idx)
                yb = data.val_y.index_select(0, idx)
                self._call("on_validation_batch_start", {"epoch": self.epoch + 1, "batch": b + 1})
                if self._amp_dtype is not None:
                    with torch.autocast(device_type="cuda", dtype=self._amp_dtype):
                        out = model(xb)
                    out = out.float()
                    loss = loss_fn(out, yb)
                else:
                    out = model(xb)
                    loss = loss_fn(out, yb)
                logs = acc.add(out, yb, float(loss), len(xb), self.metric, self._ignore)
                logs.update(epoch=self.epoch + 1, batch=b + 1)
                self._call("on_validation_batch_end", logs)
        model.train()
        out_logs = acc.epoch_logs("val_", self.metric, self._dist)
        self._call("on_validation_epoch_end", dict(out_logs, epoch=self.epoch + 1))
        return out_logs

    # ---- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, folder: str | os.PathLike) -> Path:
        """Write weights (safetensors), optimizer / schedule / RNG state (tensors and plain containers, read
        back with weights_only), the step history (steps.safetensors), and the position and epoch history (JSON)
        into `folder`, atomically. TrainingError when it cannot be written (a full disk): the previous checkpoint
        stays as it was, and no half-written folder is left."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        try:
            self._write_checkpoint(folder, tmp)
        except Exception as e:  # a full disk, a read-only folder: OSError, or safetensors' or torch's own errors
            shutil.rmtree(tmp, ignore_errors=True)
            when = f"epoch {self.epoch}" if not self.batch else f"step {self.batch} of epoch {self.epoch + 1}"
            raise TrainingError(_checkpoint_write_error(folder, when, e)) from None
        return folder

    def _write_checkpoint(self, folder: Path, tmp: Path) -> None:
        import torch
        from safetensors.torch import save_file

        old = folder.with_name(folder.name + ".old")
        if not folder.exists() and old.is_dir():  # killed between the two renames last time: that one is complete
            old.rename(folder)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        weights = {k: v.detach().contiguous().cpu() for k, v in self.module.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        state = {"optimizer": self.optimizer.state_dict(), "rng": torch.get_rng_state(),
                 "aug_rng": self._aug_gen.get_state() if self._aug_gen is not None else None,
                 "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                 "scaler": self._scaler.state_dict() if self._scaler is not None else None,
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
        torch.save(state, tmp / "state.pt")
        # The step history grows with the run and is written at every epoch: binary columns (steps.safetensors)
        # cost a fraction of the same figures as JSON rows.
        arrays, whole = self.history.step_arrays()
        save_file({k: torch.from_numpy(v) for k, v in arrays.items()}, str(tmp / "steps.safetensors"))
        meta = {"format": CHECKPOINT_FORMAT, "epoch": self.epoch, "batch": self.batch,
                "global_step": self.global_step, "config": asdict(self.config), "accum": self._accum.state(),
                "history": {"epochs": self.history.epochs, "whole": whole},
                "early_stopping": self.early_stopping.state() if self.early_stopping else None}
        if self.early_stopping is not None and self.early_stopping.best_weights is not None:
            save_file({k: v.contiguous().cpu() for k, v in self.early_stopping.best_weights.items()},
                      str(tmp / "best.safetensors"))
        (tmp / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, folder: str | os.PathLike) -> None:
        """Restore everything save_checkpoint wrote; the run then continues exactly where it stopped."""
        import torch
        from safetensors.torch import load_file

        folder = Path(folder)
        old = folder.with_name(folder.name + ".old")
        if not folder.exists() and old.is_dir():  # a crash between save_checkpoint's two renames
            folder = old
        try:
            meta = json.loads((folder / "meta.json").read_text())
            weights = load_file(str(folder / "model.safetensors"))
            state = torch.load(folder / "state.pt", weights_only=True, map_location="cpu")
        except FileNotFoundError as e:
            raise TrainingError(f"{folder} is not a LayerLoom checkpoint (missing {Path(e.filename).name})") from None
        except Exception as e:
            raise TrainingError(f"the checkpoint {folder} cannot be read: {e}") from None
        saved = meta.get("config") or {}
        for key, flag in (("batch_size", "--batch-size"), ("seed", "--seed"), ("shuffle", None)):
            if key in saved and saved[key] != getattr(self.config, key):
                how = f"resume with {flag} {saved[key]}" if flag else f"set {key} back to {saved[key]}"
                raise TrainingError(f"the checkpoint {folder} was made with {key.replace('_', ' ')} {saved[key]}, "
                                    f"this run has {getattr(self.config, key)}: {how} to continue it exactly")
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise TrainingError(f"the checkpoint {folder} has format {meta.get('format')!r}; this LayerLoom reads "
                                f"format {CHECKPOINT_FORMAT}")
        try:
            self.module.load_state_dict(weights)
        except RuntimeError as e:
            raise TrainingError(f"the checkpoint's weights do not fit this network: {e}") from None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self._scaler is not None and state.get("scaler") is not None:
            self._scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if state.get("aug_rng") is not None and self._aug_gen is not None:
            self._aug_gen.set_state(state["aug_rng"])
        self.epoch, self.batch, self.global_step = meta["epoch"], meta["batch"], meta["global_step"]
        self._accum = _Accum.from_state(meta.get("accum") or {})
        history = meta.get("history") or {}
        if "steps" in history:  # written by a LayerLoom from before steps.safetensors
            self.history.load_state(history)
        else:
            steps = load_file(str(folder / "steps.safetensors")) if (folder / "steps.safetensors").is_file() else {}
            self.history.load_step_arrays({k: v.numpy() for k, v in steps.items()}, history.get("whole", []),
                                          history.get("epochs", []))
        if self.early_stopping is not None and meta.get("early_stopping"):
            self.early_stopping.load_state(meta["early_stopping"])
            if (folder / "best.safetensors").is_file():
                self.early_stopping.best_weights = load_file(str(folder / "best.safetensors"))


def _checkpoint_write_error(folder: Path, when: str, error: BaseException) -> str:
    """Why a checkpoint could not be written, and what to do, in one message."""
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    else:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        # safetensors: "Error while serializing: I/O error: No space left on device (os error 28)"
        reason = text.split("I/O error: ")[-1].split(" (os error")[0][:160]
    try:
        free = f"; {shutil.disk_usage(folder.parent if folder.parent.exists() else '.').free / 1e6:,.0f} MB are " \
               f"free on that disk"
    except OSError:
        free = ""
    return (f"the checkpoint after {when} could not be written to {folder} ({reason}){free}. Free some "
            f"disk space or choose another folder for the run; the previous checkpoint there is kept")


class _Accum:
    """Running sums for a (partial) epoch: loss, accuracy or regression errors. Plain floats, so they go
    into a checkpoint's JSON and across processes with one all-reduce."""

    KEYS = ("n", "m", "loss", "correct", "abs_err", "sq_err", "y_sum", "y_sq")  # m: values scored

    def __init__(self) -> None:
        self.sums = dict.fromkeys(self.KEYS, 0.0)
        self.seconds = 0.0

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums, "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Accum:
        a = cls()
        a.sums.update(state.get("sums", {}))
        a.seconds = state.get("seconds", 0.0)
        return a

    def add(self, out, y, loss: float, n: int, metric: str, ignore: int | None = None) -> dict[str, float]:
        """Add one batch; returns its own figures (loss, acc or mae). Targets equal to `ignore` (the loss's
        ignore_index, e.g. a padding label) are left out of the accuracy as the loss leaves them out."""
        if n == 0:  # a rank's empty share of a tiny last batch
            return {"loss": 0.0}
        s = self.sums
        s["n"] += n
        s["loss"] += loss * n
        logs = {"loss": loss}
        if metric == REGRESSION:
            out = out.detach()
            diff = out.float() - y.float().reshape(out.shape)
            yf = y.float()
            m = diff.numel()
            abs_err = float(diff.abs().sum())
            s["abs_err"] += abs_err
            s["sq_err"] += float((diff * diff).sum())
            s["y_sum"] += float(yf.sum())
            s["y_sq"] += float((yf * yf).sum())
            logs["mae"] = abs_err / m
        else:
            if metric == ACCURACY and ignore is not None:
                valid = y != ignore
                m = int(valid.sum())
                correct = float(((out.argmax(1) == y) & valid).sum())
                s["correct"] += correct
                s["m"] += m
                logs["acc"] = correct / m if m else 0.0
                return logs
            if metric == ACCURACY and out.device.type == "cpu" and out.dim() == 2:
                # NumPy's argmax and count on a small CPU batch cost half of torch's three dispatches
                import numpy as np
                correct = float(np.count_nonzero(out.detach().numpy().argmax(1) == y.numpy()))
                s["correct"] += correct
                s["m"] += n
                logs["acc"] = correct / n
                return logs
            if metric == ACCURACY:
                pred, truth = out.argmax(1), y
            else:  # binary: a probability above 0.5, or a logit above 0, means "yes"
                pred, truth = out.detach() > (0.5 if metric == BINARY_PROB else 0.0), y.reshape(out.shape) > 0.5
            m = pred.numel()
            correct = float((pred == truth).sum())
            s["correct"] += correct
            logs["acc"] = correct / m
        s["m"] += m
        return logs

    def epoch_logs(self, prefix: str, metric: str, dist=None) -> dict[str, float]:
        s = dict(self.sums)
        if dist is not None:  # every rank saw its own shard: add them up
            import torch
            device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors only
            t = torch.tensor([s[k] for k in self.KEYS], dtype=torch.float64, device=device)
            dist.all_reduce(t)
            s = dict(zip(self.KEYS, t.tolist()))
        n, m = max(1.0, s["n"]), max(1.0, s["m"])
        logs = {f"{prefix}loss": s["loss"] / n}
        if metric == REGRESSION:
            logs[f"{prefix}mae"] = s["abs_err"] / m
            total = s["y_sq"] - s["y_sum"] ** 2 / m  # Σ(y − ȳ)²
            logs[f"{prefix}r2"] = 1.0 - s["sq_err"] / total if total > 1e-12 else 0.0
        else:
            logs[f"{prefix}acc"] = s["correct"] / m
        return logs
