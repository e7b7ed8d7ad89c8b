"""How much disk a sweep's checkpoints need, from the model's parameter count (``isobn-tune show``).

A trial that may still run keeps ``run.checkpoints_to_keep`` checkpoints of fp32 weights, AdamW's
two moments and the best model; a finished one keeps the best model only
(:mod:`isobn_tune.sweep.checkpoint_thinning`). The count builds the model on torch's ``meta`` device:
no weights are read or allocated, only the model's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from isobn_tune.errors import UserError
from isobn_tune.space import SweepSpace, optuna_base_config, trial_configs, trials_per_task

WEIGHT_BYTES = 4  # fp32 model state, in the trainer state
ADAMW_BYTES = 8  # AdamW's first and second moments, fp32
BEST_MODEL_BYTES = 4  # the best epoch's fp32 model
RUNNING_BYTES = WEIGHT_BYTES + ADAMW_BYTES + BEST_MODEL_BYTES  # one checkpoint of a trial that may run


@dataclass(frozen=True)
class DiskEstimate:
    parameters: int  # the largest model of the sweep (head and normaliser included)
    live_trials: int  # trials of one task that may run at once, each keeping full checkpoints
    checkpoints_to_keep: int
    trials: int  # every trial of the sweep, each keeping its best model once finished

    @property
    def per_checkpoint(self) -> int:
        return RUNNING_BYTES * self.parameters

    @property
    def per_finished_trial(self) -> int:
        return BEST_MODEL_BYTES * self.parameters

    @property
    def total(self) -> int:
        """At most: the live trials' checkpoints plus every trial's best model (tasks run one
        after another, so only one task's trials are live)."""
        live = self.live_trials * self.checkpoints_to_keep * self.per_checkpoint
        return live + self.trials * self.per_finished_trial


def estimate_disk(space: SweepSpace) -> DiskEstimate:
    """The estimate for ``space``; a :class:`UserError` when the model's config is not at hand."""
    per_task = trials_per_task(space)
    return DiskEstimate(
        parameters=max(_parameter_count(config) for config in _model_variants(space)),
        live_trials=min(space.resources.max_concurrent_trials or per_task, per_task),
        checkpoints_to_keep=space.run.checkpoints_to_keep,
        trials=per_task * len(space.tasks),
    )


def format_disk_estimate(space: SweepSpace) -> str:
    """One line for ``show``: the estimate, or why there is none."""
    try:
        est = estimate_disk(space)
    except UserError as exc:
        return f"disk: no estimate ({exc})"
    limit = "" if space.resources.max_concurrent_trials else " (max concurrent trials unset: at worst)"
    return (
        f"disk: at most {_size(est.total)} ({est.parameters / 1e6:.1f}M parameters; "
        f"{est.live_trials} live trial(s){limit} x {est.checkpoints_to_keep} checkpoints x "
        f"{_size(est.per_checkpoint)}, plus {_size(est.per_finished_trial)} per finished trial)"
    )


def _model_variants(space: SweepSpace) -> list[dict[str, Any]]:
    """One trial config per task and normaliser: the only axes that change the parameter count."""
    variants: dict[tuple[str, str], dict[str, Any]] = {}
    for task in space.tasks:
        configs = [optuna_base_config(space, task)] if space.optuna else trial_configs(space, task)
        for config in configs:
            variants.setdefault((task, config["cls_norm"]), config)
    return list(variants.values())


def _parameter_count(config: dict[str, Any]) -> int:
    """Numbers in the model's state dict (what a checkpoint saves), counted on the meta device
    from the model's config alone: local files only, so ``show`` stays fast offline."""
    import torch
    from transformers import AutoConfig, AutoModel

    from isobn_tune.data.tasks import get_task
    from isobn_tune.train.model import build_model
    from isobn_tune.train.model_source import resolve_model_name
    from isobn_tune.train.recipe import TrialConfig

    cfg = TrialConfig.from_dict(config)
    try:
        hf_config = AutoConfig.from_pretrained(resolve_model_name(cfg.model), local_files_only=True,
                                               **cfg.model_overrides)
    except (OSError, ValueError):
        raise UserError(f"it needs the config of model {cfg.model!r}, which is not on this machine; "
                        "a local model directory or 'minilm' works offline") from None
    with torch.device("meta"):
        model = build_model(cfg, get_task(cfg.task).num_labels, encoder=AutoModel.from_config(hf_config))
    return sum(tensor.numel() for tensor in model.state_dict().values())


def _size(n_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000:
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.3g} TB"
