"""The Ray Tune function trainable: one trial = :func:`isobn_tune.training.train` on the
resources Ray assigned, reporting each epoch with a checkpoint and resuming from the last one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from isobn_tune.batches import TaskData
from isobn_tune.recipe import TrialConfig
from isobn_tune.training import default_device, load_checkpoint, train


def assigned_cpus() -> int:
    """Whole CPUs Ray gave this trial (at least one): torch's intra-op threads are sized to it,
    so concurrent trials do not oversubscribe the cores."""
    resources = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(resources.get("CPU", 1)))


def fine_tune_trial(config: dict[str, Any], data: TaskData) -> None:
    """Tune entry point; ``data`` comes from ``tune.with_parameters`` (one object-store copy)."""
    cfg = TrialConfig.from_dict(config)
    torch.set_num_threads(assigned_cpus())
    device = default_device()  # Ray sets CUDA_VISIBLE_DEVICES to the trial's GPU(s)

    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            resume_state = load_checkpoint(Path(ckpt_dir), device)

    def report(metrics: dict[str, Any], ckpt_dir: Path | None) -> None:
        ckpt = tune.Checkpoint.from_directory(ckpt_dir) if ckpt_dir is not None else None
        tune.report(metrics, checkpoint=ckpt)

    train(cfg, data, report=report, resume_state=resume_state, device=device)
