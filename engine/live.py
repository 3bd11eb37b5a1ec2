"""Live pictures of what a network has learnt so far, beside the Snapshots' kernels and histograms: the decision
boundary of a classifier on 2-D points (the TensorFlow-Playground view) and an autoencoder's reconstructions of a
few fixed samples. Plain NumPy out, no Qt; cheap enough to take every 50-100 steps."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .callbacks import Callback

if TYPE_CHECKING:  # pragma: no cover
    from .training import Trainer

GRID = 80
MAX_POINTS = 500
RECONSTRUCTIONS = 8


def _frozen(a: Any) -> Any:
    """The array made read-only: it goes out with every snapshot, to whichever thread draws it."""
    a.flags.writeable = False
    return a


class LiveExtras(Callback):
    """Every `every` steps, `sink` receives {"step", "epoch"} plus, when they apply:

    "boundary" (a classifier whose input is 2 numbers per sample):
        {"extent": [xmin, xmax, ymin, ymax] (the data's range with a `margin` on each side),
         "grid": float32 (grid, grid), row i at y = ymin + i·(ymax − ymin)/(grid − 1), column j likewise at x;
                 for two classes the probability of class 1, for more the predicted class index,
         "kind": "probability" | "class", "n_classes": int,
         "points": float32 (N ≤ 500, 2) validation samples (training ones without a validation split),
         "labels": int64 (N,)}
    "reconstruction" (an autoencoder, whose target is its input):
        {"inputs": (n, ...) the first `n_reconstructions` validation samples, "outputs": the network's outputs for
         them, same shape} — (n, C, H, W) for images.

    `take(trainer)` gives the same dict at any time (e.g. at an epoch end). The network runs in evaluation mode
    without gradients, then goes back to training mode."""

    def __init__(self, every: int = 50, sink: Callable[[dict[str, Any]], None] | None = None, grid: int = GRID,
                 margin: float = 0.1, max_points: int = MAX_POINTS, n_reconstructions: int = RECONSTRUCTIONS):
        self.every, self.sink = max(1, int(every)), sink
        self.grid_size, self.margin, self.max_points = int(grid), float(margin), int(max_points)
        self.n_reconstructions = int(n_reconstructions)
        self._boundary: dict[str, Any] | None = None   # extent, points, labels, the grid's inputs, binary mode
        self._recon: dict[str, Any] | None = None      # the fixed inputs (tensor and NumPy)
        self.seconds = 0.0
        self.count = 0

    @property
    def active(self) -> bool:
        """Whether this run gets any extra picture (known after fit starts)."""
        return self._boundary is not None or self._recon is not None

    def on_fit_start(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.setup(trainer)

    def setup(self, trainer: Trainer) -> None:
        """Decide which pictures apply to the trainer's model and data, and fix their inputs."""
        import numpy as np
        import torch

        from .training import REGRESSION

        self._boundary = self._recon = None
        data = trainer.data
        if data is None or len(data.train_x) == 0:
            return
        has_val = data.has_val
        x_show = data.val_x if has_val else data.train_x
        y_show = data.val_y if has_val else data.train_y
        if data.target_is_input:
            inputs = x_show[:self.n_reconstructions].detach().to(trainer.device, copy=True)
            self._recon = {"x": inputs, "inputs": _frozen(inputs.float().cpu().numpy().copy())}
            return
        x = data.train_x
        if trainer.metric == REGRESSION or x.dim() != 2 or x.shape[1] != 2 or not x.is_floating_point():
            return
        lo, hi = x.float().amin(0), x.float().amax(0)
        span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        lo, hi = lo - self.margin * span, hi + self.margin * span
        xmin, ymin, xmax, ymax = (float(v) for v in (lo[0], lo[1], hi[0], hi[1]))
        n = self.grid_size
        gy, gx = torch.meshgrid(torch.linspace(ymin, ymax, n), torch.linspace(xmin, xmax, n), indexing="ij")
        grid_x = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(trainer.device)
        out = self._forward(trainer, grid_x[:1])
        n_classes = int(out.shape[1]) if trainer.metric != REGRESSION and out.dim() == 2 and out.shape[1] > 1 else 2
        labels = y_show[:self.max_points].detach().cpu()
        labels = (labels.float().reshape(len(labels), -1)[:, 0] > 0.5).long() if labels.is_floating_point() else \
            labels.reshape(-1).long()
        self._boundary = {
            "extent": [xmin, xmax, ymin, ymax], "grid_x": grid_x, "n_classes": n_classes,
            "points": _frozen(x_show[:self.max_points].detach().float().cpu().numpy().astype(np.float32, copy=True)),
            "labels": _frozen(labels.numpy().astype(np.int64, copy=True))}

    def _forward(self, trainer: Trainer, x: Any) -> Any:
        import torch
        model = trainer.module
        was_training = model.training
        try:
            model.train(False)  # evaluation mode: dropout off, batch norm on its running statistics
            with torch.no_grad():
                out = model(x)
        finally:
            model.train(was_training)
        return (out[0] if isinstance(out, tuple) else out).float()

    def on_train_batch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if int(logs["step"]) % self.every or not self.active:
            return
        import time
        t = time.perf_counter()
        snap = self.take(trainer, logs)
        self.seconds += time.perf_counter() - t
        self.count += 1
        if self.sink is not None:
            self.sink(snap)

    def take(self, trainer: Trainer, logs: dict[str, float] | None = None) -> dict[str, Any]:
        """The pictures that apply now: {"step", "epoch"} plus "boundary" and/or "reconstruction"."""
        import numpy as np
        import torch

        from .training import BINARY_LOGIT, BINARY_PROB

        logs = logs or {}
        snap: dict[str, Any] = {"step": int(logs.get("step", trainer.global_step)),
                                "epoch": int(logs.get("epoch", trainer.epoch))}
        b = self._boundary
        if b is not None:
            out = self._forward(trainer, b["grid_x"])
            if trainer.metric == BINARY_LOGIT:
                values, kind = torch.sigmoid(out.reshape(-1)), "probability"
            elif trainer.metric == BINARY_PROB:
                values, kind = out.reshape(-1), "probability"
            elif b["n_classes"] == 2:
                values, kind = torch.softmax(out, dim=1)[:, 1], "probability"
            else:
                values, kind = out.argmax(dim=1).float(), "class"
            n = self.grid_size
            snap["boundary"] = {"extent": list(b["extent"]), "grid": values.cpu().numpy().astype(np.float32)
                                .reshape(n, n), "kind": kind, "n_classes": b["n_classes"],
                                "points": b["points"], "labels": b["labels"]}
        r = self._recon
        if r is not None:
            out = self._forward(trainer, r["x"])
            outputs = out.cpu().numpy().copy()
            if outputs.size == r["inputs"].size:
                outputs = outputs.reshape(r["inputs"].shape)
            snap["reconstruction"] = {"inputs": r["inputs"], "outputs": outputs}
        return snap
