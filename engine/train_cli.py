"""`layerloom train`: progress with ETA, history and weights on disk, Ctrl-C to a resumable checkpoint, several
processes through PyTorch's own launcher (torchrun), and with --coach the training coach's warnings as they come
("coach: <what is wrong> Try: <the cure>")."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .callbacks import Callback
from .errors import LayerLoomError, ProjectError
from .project import load_project
from .runs import BestWeights, run_settings, save_run, save_weights, write_history  # noqa: F401  (re-exported)

EXIT_OK, EXIT_FAILED, EXIT_BAD_FILE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _say(msg: str, rank: int = 0) -> None:
    if rank == 0:
        print(msg, flush=True)


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _metrics(logs: dict[str, float], keys=("loss", "acc", "mae", "r2", "val_loss", "val_acc", "val_mae", "val_r2")):
    return "  ".join(f"{k} {logs[k]:.4f}" for k in keys if k in logs)


class ProgressPrinter(Callback):
    """A one-line progress bar with ETA and running metrics on a terminal; one line per epoch otherwise."""

    def __init__(self, stream=None, width: int = 24):
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.width = width
        self._last = 0.0
        self._t0 = time.perf_counter()
        self._steps0 = 0

    def on_fit_start(self, trainer, logs):
        self._t0, self._steps0 = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer, logs):
        now = time.perf_counter()
        if not self.tty or now - self._last < 0.1:
            return
        self._last = now
        done = trainer.progress
        bar = "█" * int(done * self.width) + "·" * (self.width - int(done * self.width))
        speed = (trainer.global_step - self._steps0) / max(1e-9, now - self._t0)
        line = (f"\repoch {int(logs['epoch'])}/{trainer.config.epochs} {bar} {done * 100:5.1f}%  "
                f"ETA {_fmt_time(trainer.eta_seconds)}  {speed:.1f} steps/s  "
                f"{_metrics(trainer.running_logs(), ('loss', 'acc', 'mae'))}")
        self.stream.write(line[:160].ljust(100))
        self.stream.flush()

    def on_train_epoch_end(self, trainer, logs):
        prefix = "\r" if self.tty else ""
        line = (f"epoch {int(logs['epoch'])}/{trainer.config.epochs}  {_metrics(logs)}  "
                f"({logs.get('time', 0):.1f} s, ETA {_fmt_time(trainer.eta_seconds)})")
        self.stream.write(prefix + line.ljust(100 if self.tty else 0) + "\n")
        self.stream.flush()


COACH_EVERY = 20  # steps between the coach's close looks (bench/coach.py: ~1-2 % of a small MLP's time, far less
#                   for anything bigger)


class CoachPrinter:
    """Prints each warning of the coach as it is given: "coach: <message> Try: <cure>" (on a terminal, over the
    progress bar's line, which the next step redraws)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.count = 0

    def __call__(self, warning: dict[str, Any]) -> None:
        self.count += 1
        line = coach_line(warning)
        self.stream.write(("\r" + line.ljust(100) if self.tty else line) + "\n")
        self.stream.flush()


def coach_line(warning: dict[str, Any]) -> str:
    """A coach warning as the CLI prints it."""
    return f"coach: {warning['message']} Try: {warning['cure']}"


def _relaunch_with_torchrun(args: argparse.Namespace, out: Path) -> int:
    argv = list(args.argv)
    cleaned: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        cleaned.append(a)
    if "--out" not in cleaned and not any(a.startswith("--out=") for a in cleaned):
        cleaned += ["--out", str(out)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           "-m", "engine.cli", *cleaned]
    print(f"layerloom: starting {args.nproc} processes: torchrun --standalone --nproc_per_node={args.nproc} "
          f"-m engine.cli {' '.join(cleaned)}", flush=True)
    proc = subprocess.Popen(cmd)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # torchrun passes Ctrl-C on to the workers; wait until they have saved and stopped


def _resume_command(args: argparse.Namespace, out: Path) -> str:
    """The command that continues this run: the same arguments, with --out and --resume pointing here."""
    words, skip = [], False
    for a in args.argv:
        if skip:
            skip = False
            continue
        if a in ("--out", "--resume"):
            skip = True
            continue
        if a.startswith(("--out=", "--resume=")):
            continue
        words.append(a)
    words += ["--out", str(out), "--resume", str(out / "checkpoints" / "last")]
    return "layerloom " + " ".join(words)


def _init_distributed() -> tuple[int, int]:
    """Join the process group torchrun set up (environment RANK / WORLD_SIZE); (rank, world)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return 0, 1
    import torch
    import torch.distributed as dist
    use_cuda = torch.cuda.is_available() and os.environ.get("LAYERLOOM_DEVICE", "auto") != "cpu"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def run(args: argparse.Namespace) -> int:
    from .cli import _project_path
    try:
        project_path = _project_path(args.project)
        project = load_project(project_path)
    except ProjectError as e:
        print(f"layerloom: cannot open the project: {e}", file=sys.stderr)
        return EXIT_BAD_FILE
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"{project.name or Path(project_path).stem}-{stamp}"
    if args.nproc and args.nproc > 1 and "RANK" not in os.environ:
        return _relaunch_with_torchrun(args, out)
    if args.device:
        os.environ["LAYERLOOM_DEVICE"] = args.device
    rank, world = _init_distributed()
    try:
        code = _train(args, project, Path(project_path).parent, out, rank, world)
        if world > 1:
            import gc

            import torch.distributed as dist
            # The DistributedDataParallel model (held in reference cycles) must go while its process group is
            # alive: collected at interpreter exit, its gloo work objects aborted the process after a
            # successful run ("terminate called without an active exception", 2 runs in 10 on a loaded machine).
            # The barrier lets every rank finish before any closes its connections.
            gc.collect()
            dist.barrier()
        return code
    finally:
        if world > 1:
            import torch.distributed as dist
            dist.destroy_process_group()


def _train(args, project, base_dir: Path, out: Path, rank: int, world: int) -> int:
    from .runner import prepare

    overrides: dict[str, Any] = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                                 "device": args.device, "seed": args.seed,
                                 "checkpoint_dir": str(out / "checkpoints")}
    if args.resume:  # continue with the batches the run was started with, unless told otherwise
        try:
            saved = json.loads((Path(args.resume) / "meta.json").read_text()).get("config", {})
        except (OSError, ValueError):
            saved = {}
        for key in ("epochs", "batch_size", "seed", "shuffle"):
            if overrides.get(key) is None and key in saved:
                overrides[key] = saved[key]
    callbacks: list[Callback] = []
    if rank == 0:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            print(f"layerloom: cannot create the output folder {out}: {e.strerror or e}", file=sys.stderr)
            return EXIT_FAILED
        if not args.quiet:
            callbacks.append(ProgressPrinter())
        callbacks.append(BestWeights(out))
    coach = None
    if getattr(args, "coach", False) and rank == 0:  # the gradients are the same on every rank: one coach speaks
        from .coach import Coach
        coach = Coach(every=COACH_EVERY, on_warning=CoachPrinter())
        callbacks.append(coach)
    try:
        run_ = prepare(project, overrides, callbacks, base_dir=base_dir)
    except LayerLoomError as e:
        print(f"layerloom: cannot start training: {e}", file=sys.stderr)
        return EXIT_FAILED
    trainer, bundle = run_.trainer, run_.bundle
    cfg = run_.config
    if rank == 0:
        procs = f" on {world} processes" if world > 1 else ""
        _say(f"training {project.name}: {len(bundle.train.x)} training and {len(bundle.val.x)} validation samples "
             f"of {bundle.name}, {cfg.epochs} epochs of batch {cfg.batch_size} on {trainer.device}{procs}; "
             f"output in {out}")
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame):
        trainer.request_stop("interrupted (Ctrl-C)")
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C aborts at once
    signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = trainer.fit(run_.data, resume_from=args.resume)
    except LayerLoomError as e:
        print(f"layerloom: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGINT, previous)
    if rank == 0:
        save_run(out, run_settings(project, overrides), result.history, trainer.module, result={
            "project": project.name, "status": str(result.status), "message": result.message,
            "epochs_done": result.epochs_done, "steps_done": result.steps_done, "world_size": world,
            "config": {k: v for k, v in vars(cfg).items()}, "notes": result.notes,
            "data": bundle.name, "last_epoch": (result.history.get("epochs") or [{}])[-1],
            **({"coach": coach.warnings} if coach is not None else {})})
        for note in result.notes:
            _say(f"note: {note}")
        if coach is not None:
            standing = len(coach.active)
            _say(f"coach: {len(coach.warnings)} warning{'s' if len(coach.warnings) != 1 else ''}"
                 + (f", {standing} still standing at the end" if standing else "")
                 + ("" if coach.warnings else ": nothing looked wrong"))
    last = (result.history.get("epochs") or [{}])[-1]
    if result.status.value == "failed":
        print(f"layerloom: {result.message}", file=sys.stderr)
        return EXIT_FAILED
    if result.status.value == "stopped":
        _say(f"stopped: {result.message}. Resume with: {_resume_command(args, out)}", rank)
        return EXIT_INTERRUPTED
    _say(f"done{': ' + result.message if result.message else ''}. {_metrics(last)}", rank)
    _say(f"weights: {out / 'final.safetensors'} (best: {out / 'best.safetensors'}), history: {out / 'history.csv'}",
         rank)
    return EXIT_OK
