"""From a project to a ready Trainer: data loaded and checked against the network, model, loss, optimizer and
schedule built from the project's settings. Shared by `layerloom train`, the app's worker and scripts."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import BuildError, DataError, SpecError, TrainingError
from .params import BOOL, CHOICE, FLOAT, INT, Param, validate_params
from .project import Project
from .shapes import analyze
from .training import ACCURACY, BINARY_LOGIT, BINARY_PROB, REGRESSION, TensorData, TrainConfig, Trainer
from .transfer import INIT_KEY

METRIC_OF_LOSS = {"CrossEntropy": ACCURACY, "NLL": ACCURACY, "BCE": BINARY_PROB, "BCEWithLogits": BINARY_LOGIT}

TRAINING_PARAMS = (
    Param("epochs", INT, 10, "passes over the training data", min=1, max=1_000_000),
    Param("batch_size", INT, 32, "samples per step", min=1, max=1_000_000),
    Param("lr", FLOAT, None, "learning rate, replacing the optimizer's", min=0.0, exclusive_min=True, optional=True),
    Param("device", CHOICE, "auto", "where to train", choices=("auto", "cpu", "cuda")),
    Param("seed", INT, 0, "random seed: the same seed gives the same run", min=0, max=2**63 - 1),
    Param("shuffle", BOOL, True, "shuffle the training samples every epoch"),
    Param("l1", FLOAT, 0.0, "L1 penalty on the weights, added to the loss", min=0.0),
    Param("grad_clip", FLOAT, None, "clip the gradients' norm to this", min=0.0, exclusive_min=True, optional=True),
    Param("amp", BOOL, True, "mixed precision on a GPU"),
    Param("eval_batch_size", INT, None, "samples per validation batch", min=1, optional=True),
    Param("channels_last", BOOL, None, "image batches channels-last (empty: automatic)", optional=True),
)
EARLY_STOPPING_PARAMS = (
    Param("monitor", CHOICE, "val_loss", "the figure to watch",
          choices=("val_loss", "val_acc", "val_mae", "val_r2", "loss", "acc", "mae", "r2")),
    Param("patience", INT, 5, "epochs without improvement before stopping", min=1, max=100_000),
    Param("min_delta", FLOAT, 0.0, "smallest change that counts as an improvement", min=0.0),
    Param("mode", CHOICE, "auto", "min or max (auto: max for accuracy and R²)", choices=("auto", "min", "max")),
    Param("restore_best", BOOL, True, "put back the best epoch's weights at the end"),
)


def training_config(settings: dict[str, Any]) -> TrainConfig:
    """Checked training settings (the project's section with overrides) as a TrainConfig; a wrong name or value
    raises ParamError saying what is allowed."""
    settings = dict(settings)
    early = settings.pop("early_stopping", None)
    folder = settings.pop("checkpoint_dir", None)
    if folder is not None and not isinstance(folder, str):
        raise TrainingError(f"training: checkpoint_dir must be a folder path, not {folder!r}")
    values = validate_params("training", TRAINING_PARAMS, settings)
    values["checkpoint_dir"] = folder
    if early is not None and early is not False:
        if early is True:
            early = {}
        values["early_stopping"] = validate_params("early_stopping", EARLY_STOPPING_PARAMS, early)
    values.pop("lr")
    return TrainConfig.from_dict(values)


@dataclass
class Run:
    """Everything a training run needs, built from one project."""

    project: Project
    trainer: Trainer
    data: TensorData
    bundle: Any            # the engine.data bundle (sample shape, classes, test split, ...)
    config: TrainConfig


def training_settings(project: Project, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The project's training section with command-line style overrides (None values ignored)."""
    settings = dict(project.training or {})
    for k, v in (overrides or {}).items():
        if v is not None:
            settings[k] = v
    return settings


def prepare(project: Project, overrides: dict[str, Any] | None = None, callbacks: list | None = None,
            bundle: Any = None, base_dir: str | os.PathLike | None = None) -> Run:
    """Check and build everything before any training starts; every problem raises a LayerLoomError whose
    message says what to change (graph errors, data that does not fit, unknown loss ...)."""
    import torch

    from .builder import build_model
    from .data import check_fit, load_data
    from .losses import get_loss
    from .optimizers import get_optimizer, get_schedule

    settings = training_settings(project, overrides)
    graph = project.graph
    analysis = analyze(graph)
    if not analysis.ok:
        problems = "; ".join(f"{e.node_id}: {e.error}" for e in analysis.errors) or "the graph is empty"
        raise BuildError(f"the network cannot train until its errors are fixed: {problems}")
    inputs, sinks = graph.input_nodes(), graph.sink_nodes()
    if len(inputs) != 1 or len(sinks) != 1:
        raise TrainingError(f"training needs a network with one Input and one output; this one has {len(inputs)} "
                            f"Input(s) and {len(sinks)} output(s)")
    if not project.loss:
        raise SpecError("choose a loss before training (e.g. CrossEntropy for classes, MSE for numbers)")
    if not project.data:
        raise DataError("choose a data set before training (a bundled set, a generated one or a file)")
    loss_spec = get_loss(project.loss["type"])
    loss_params = loss_spec.validate_params(project.loss.get("params", {}))

    if bundle is None:
        bundle = load_data(project.data, base_dir=base_dir)  # relative file paths start at the project
    x_info, y_info = analysis.nodes[inputs[0]], analysis.nodes[sinks[0]]
    check_fit(bundle, x_info.shape, x_info.dtype, y_info.shape, loss_spec.type)

    config = training_config(settings)
    model = build_model(graph, seed=config.seed)
    init_note = None
    if project.extra.get(INIT_KEY):
        from .transfer import load_init_weights
        init_note = load_init_weights(project, model, base_dir=base_dir)

    opt_section = project.optimizer or {"type": "Adam", "params": {}}
    opt_spec = get_optimizer(opt_section["type"])
    opt_overrides = dict(opt_section.get("params", {}))
    if settings.get("lr") is not None:
        opt_overrides["lr"] = settings["lr"]
    opt_params = opt_spec.validate_params(opt_overrides)
    groups = parameter_groups(model, opt_params["lr"])
    optimizer = opt_spec.build(opt_params, model.parameters() if groups is None else groups)

    scheduler, per_batch, needs_metric, monitor = None, False, False, "val_loss"
    if project.schedule:
        sched_spec = get_schedule(project.schedule["type"])
        sched_params = sched_spec.validate_params(project.schedule.get("params", {}))
        steps = -(-len(bundle.train.x) // config.batch_size)
        scheduler = sched_spec.build(sched_params, optimizer, epochs=config.epochs, steps_per_epoch=steps)
        _keep_factors(scheduler, optimizer)
        per_batch, needs_metric = sched_spec.per_batch, sched_spec.needs_metric
        if sched_params.get("mode") == "max":  # a plateau in a figure that should rise: accuracy or R²
            monitor = "val_acc" if METRIC_OF_LOSS.get(loss_spec.type, REGRESSION) != REGRESSION else "val_r2"

    y_dtype = torch.int64 if loss_spec.target_dtype == "int64" else torch.float32
    x_dtype = torch.int64 if bundle.dtype == "int64" else torch.float32

    def tensors(split):
        if split is None or len(split.x) == 0:
            return None, None
        return torch.as_tensor(split.x, dtype=x_dtype), torch.as_tensor(split.y, dtype=y_dtype)

    tx, ty = tensors(bundle.train)
    vx, vy = tensors(bundle.val)
    augment = (project.data or {}).get("augment")
    data = TensorData(tx, ty, vx, vy, augment=augment, target_is_input=bundle.task == "reconstruction")
    metric = METRIC_OF_LOSS.get(loss_spec.type, REGRESSION)
    trainer = Trainer(model, loss_spec.build(loss_params), optimizer, config, scheduler=scheduler,
                      schedule_per_batch=per_batch, schedule_needs_metric=needs_metric, schedule_monitor=monitor,
                      metric=metric,
                      callbacks=callbacks, lr_hint=opt_params.get("lr"))
    if init_note:
        trainer.note(init_note)
    return Run(project, trainer, data, bundle, config)


def parameter_groups(model: Any, lr: float) -> list[dict[str, Any]] | None:
    """The optimizer's parameter groups for a model whose nodes have training flags: a frozen node's parameters
    are left out, and each distinct lr_factor gets its own group with lr × factor (the factor-1 group first, so
    the learning rate shown is the optimizer's). None when no node is frozen or has a factor (one plain group).
    Raises TrainingError when every parameter is frozen."""
    factors: dict[str, float] = dict(getattr(model, "lr_factors", {}) or {})
    named = list(model.named_parameters())
    trainable = [(name, p) for name, p in named if p.requires_grad]
    if named and not trainable:
        frozen = ", ".join(getattr(model, "frozen_ids", ()) or ()) or "every layer"
        raise TrainingError(f"every layer with weights is frozen ({frozen}), so training would change nothing: "
                            f"unfreeze at least one layer (e.g. the last Linear)")
    if len(trainable) == len(named) and not factors:
        return None
    by_factor: dict[float, list[Any]] = {}
    for name, p in trainable:  # the longest node path the weight sits under: a layer inside a block has its own
        parts = name.split(".")
        factor = next((factors[".".join(parts[:i])] for i in range(len(parts) - 1, 0, -1)
                       if ".".join(parts[:i]) in factors), 1.0)
        by_factor.setdefault(factor, []).append(p)
    order = sorted(by_factor, key=lambda f: f != 1.0)  # stable: the others in order of first appearance
    return [{"params": by_factor[f], "lr": lr * f, "lr_factor": f} for f in order]


def _keep_factors(scheduler: Any, optimizer: Any) -> None:
    """Schedules that set every group's learning rate from one peak (one-cycle: max_lr) lose the groups' lr
    factors; scale each group's peak, start and end back by its factor."""
    for i, group in enumerate(optimizer.param_groups):
        f = group.get("lr_factor", 1.0)
        if f == 1.0 or "max_lr" not in group:
            continue
        for key in ("initial_lr", "max_lr", "min_lr", "lr"):
            group[key] *= f
        if hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs[i] *= f
        if getattr(scheduler, "_last_lr", None) is not None:
            scheduler._last_lr[i] = group["lr"]
