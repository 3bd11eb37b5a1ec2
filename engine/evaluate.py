"""Score trained weights on a data split: overall figures, a confusion matrix, per-sample losses and the worst
samples, all as plain Python numbers and NumPy arrays for the app's evaluation views, scripts and tests."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .data import BINARY, CLASSIFICATION, RECONSTRUCTION, REGRESSION
from .errors import DataError, SpecError
from .project import Project

SPLITS = ("test", "val", "train")
WORST = 64          # how many of the worst samples are listed
RECONSTRUCTIONS = 16


def _project(project: Project | dict[str, Any]) -> Project:
    return project if isinstance(project, Project) else Project.from_dict(project)


def _state(weights: Any, model: Any) -> dict[str, Any]:
    """A checked state dict from a path (a .safetensors file or a checkpoint folder) or a mapping of tensors or
    NumPy arrays; ExportError naming the layers that do not fit."""
    import torch

    from .export.weights import check_state_dict, read_safetensors

    if isinstance(weights, (str, os.PathLike)):
        source = f"the weights in {Path(weights).name}"
        state = read_safetensors(weights)
    else:
        source = "the weights"
        state = {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for k, v in dict(weights).items()}
    check_state_dict(model, state, source=source)
    return state


def choose_split(bundle: Any, split: str = "test") -> str:
    """`split` when it holds samples, else the first of test, val, train that does."""
    if split not in SPLITS:
        raise DataError(f"there is no split {split!r}: choose test, val or train")
    for name in (split, *SPLITS):
        if len(getattr(bundle, name)) > 0:
            return name
    raise DataError("the data has no samples in any split")  # pragma: no cover - load_data refuses empty data


def image_shape(bundle: Any) -> tuple[int, ...] | None:
    """(C, H, W) of the samples when they are images, also when an image source gives them flattened."""
    if bundle.is_image:
        return tuple(bundle.sample_shape)
    settings = getattr(bundle, "settings", None) or {}
    if not (settings.get("params") or {}).get("flatten") or len(bundle.sample_shape) != 1:
        return None
    from .data import get_source
    try:
        if not get_source(settings["source"]).image:
            return None
    except Exception:
        return None
    n = bundle.sample_shape[0]
    for c in (1, 3):
        side = math.isqrt(n // c)
        if n % c == 0 and side * side * c == n:
            return (c, side, side)
    return None


def evaluate(project: Project | dict[str, Any], weights: Any, split: str = "test",
             base_dir: str | os.PathLike | None = None, bundle: Any = None, max_samples: int = 5000,
             batch_size: int = 256, device: str = "cpu") -> dict[str, Any]:
    """Run the project's network with `weights` (a state dict, or a .safetensors path) on a split of its data.

    Returns plain data:
      split         the split used: `split` when it has samples, else test, val or train (requested_split: asked)
      n             samples scored (the first `max_samples` of the split; n_total: all of it)
      task          classification | binary | regression | reconstruction
      metrics       {"loss", and "acc" (classification, binary) or "mae", "rmse", "r2" (regression,
                    reconstruction: mae, rmse)}; figures in the units the network was trained on
      classes       class names (classification, binary), else None
      confusion     int64 (C, C), rows = true class, columns = predicted (classification, binary), else None
      y_true        int64 (n,) classes, or float32 targets (regression); None for reconstruction
      y_pred        int64 (n,) predicted classes, or float32 outputs (regression); None for reconstruction
      confidence    float32 (n,) probability of the predicted class (classification, binary), else None
      losses        float32 (n,) each sample's loss (the loss module with reduction "none", averaged per sample)
      worst         int64 indices into the scored samples, highest loss first (at most 64)
      x             the scored inputs, as the network sees them (images float32 (n, C, H, W))
      is_image      whether x holds images; image_shape: (C, H, W) to show a sample (also for flattened ones)
      reconstructions  float32 outputs for the first 16 inputs (reconstruction), else None
      output_shape  shape of one output
    The model runs in evaluation mode without gradients, in batches of `batch_size`."""
    import numpy as np
    import torch

    from .builder import build_model
    from .data import load_data
    from .losses import get_loss

    project = _project(project)
    if not project.loss:
        raise SpecError("choose a loss before evaluating: it scores the predictions")
    if bundle is None:
        if not project.data:
            raise DataError("choose a data set before evaluating (a bundled set, a generated one or a file)")
        bundle = load_data(project.data, base_dir=base_dir)
    used = choose_split(bundle, split)
    part = getattr(bundle, used)
    n_total = len(part)
    n = min(n_total, max(1, int(max_samples)))
    x_np, y_np = part.x[:n], part.y[:n]

    model = build_model(project.graph)
    model.load_state_dict(_state(weights, model))
    model.to(device)
    model.train(False)  # evaluation mode: dropout off, batch norm on its running statistics
    loss_spec = get_loss(project.loss["type"])
    loss_fn = loss_spec.build(loss_spec.validate_params(project.loss.get("params", {}))).to(device)
    loss_fn.reduction = "none"
    x_dtype = torch.int64 if bundle.dtype == "int64" else torch.float32
    y_dtype = torch.int64 if loss_spec.target_dtype == "int64" else torch.float32

    outs, losses = [], []
    with torch.no_grad():
        for i in range(0, n, batch_size):
            xb = torch.as_tensor(x_np[i:i + batch_size], dtype=x_dtype, device=device)
            yb = xb if bundle.task == RECONSTRUCTION else \
                torch.as_tensor(y_np[i:i + batch_size], dtype=y_dtype, device=device)
            out = model(xb)
            if isinstance(out, tuple):
                out = out[0]
            out = out.float()
            per = loss_fn(out, yb)
            losses.append(per.reshape(len(xb), -1).mean(1).cpu())
            outs.append(out.cpu())
    out = torch.cat(outs)
    per_sample = torch.cat(losses).numpy().astype(np.float32)
    finite = np.where(np.isfinite(per_sample), per_sample, np.inf)
    worst = np.argsort(-finite, kind="stable")[:WORST].astype(np.int64)

    result: dict[str, Any] = {
        "split": used, "requested_split": split, "n": n, "n_total": n_total, "task": bundle.task,
        "metrics": {"loss": float(per_sample.mean())}, "classes": None, "confusion": None, "y_true": None,
        "y_pred": None, "confidence": None, "losses": per_sample, "worst": worst, "x": np.asarray(x_np),
        "is_image": bool(bundle.is_image), "image_shape": image_shape(bundle), "reconstructions": None,
        "output_shape": tuple(int(s) for s in out.shape[1:]), "data": bundle.name,
    }
    metrics = result["metrics"]
    if bundle.task == CLASSIFICATION:
        scores = out if out.dim() == 2 else out.movedim(1, -1).reshape(-1, out.shape[1])
        probs = torch.softmax(scores, dim=1)
        confidence, pred = probs.max(dim=1)
        truth = torch.as_tensor(np.asarray(y_np), dtype=torch.int64).reshape(-1)
        c = max(int(bundle.num_classes or 0), int(scores.shape[1]))
        result["classes"] = list(bundle.class_names or [str(i) for i in range(c)])
        result["classes"] += [str(i) for i in range(len(result["classes"]), c)]
        valid = (truth >= 0) & (truth < c)
        result["confusion"] = torch.bincount(truth[valid] * c + pred[valid], minlength=c * c).reshape(c, c).numpy()
        result.update(y_true=truth.numpy(), y_pred=pred.numpy(), confidence=confidence.numpy().astype(np.float32))
        metrics["acc"] = float((pred[valid] == truth[valid]).float().mean()) if bool(valid.any()) else 0.0
    elif bundle.task == BINARY:
        p = torch.sigmoid(out) if loss_spec.type == "BCEWithLogits" else out
        p = p.reshape(-1)
        pred = (p > 0.5).to(torch.int64)
        truth = (torch.as_tensor(np.asarray(y_np), dtype=torch.float32).reshape(-1) > 0.5).to(torch.int64)
        result["classes"] = list(bundle.class_names or ("0", "1"))[:2]
        result["confusion"] = torch.bincount(truth * 2 + pred, minlength=4).reshape(2, 2).numpy()
        result.update(y_true=truth.numpy(), y_pred=pred.numpy(),
                      confidence=torch.where(pred == 1, p, 1 - p).numpy().astype(np.float32))
        metrics["acc"] = float((pred == truth).float().mean())
    else:
        target = torch.as_tensor(np.asarray(x_np if bundle.task == RECONSTRUCTION else y_np), dtype=torch.float32)
        diff = out - target.reshape(out.shape)
        metrics["mae"] = float(diff.abs().mean())
        metrics["rmse"] = float(diff.pow(2).mean().sqrt())
        if bundle.task == REGRESSION:
            total = float((target - target.mean()).pow(2).sum())
            metrics["r2"] = 1.0 - float(diff.pow(2).sum()) / total if total > 1e-12 else 0.0
            result.update(y_true=target.reshape(out.shape).numpy(), y_pred=out.numpy())
        else:
            result["reconstructions"] = out[:RECONSTRUCTIONS].numpy()
    return result
