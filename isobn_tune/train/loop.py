"""One fine-tuning trial, the paper's recipe as one readable loop.

setup (seed -> model -> AdamW -> linear warm-up/decay) -> optional restore -> isotropy of the
pretrained [CLS] embedding -> per epoch: train, evaluate on dev, report (with a checkpoint),
early-stop on patience. The same function runs from the CLI and as the Ray Tune trainable: only
the ``report`` hook differs.
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from isobn_tune.data.batches import TaskData, TokenizedSplit, length_chunks, train_batches
from isobn_tune.data.tasks import get_task
from isobn_tune.train.checkpoint_files import BEST_MODEL_FILE, CHECKPOINT_FILE, ISOTROPY_FILE
from isobn_tune.train.isotropy import IsotropyStats, isotropy_stats, save_stats
from isobn_tune.train.metrics import OBJECTIVE, compute_metrics, selection_value
from isobn_tune.train.model import ClsNormClassifier, build_model
from isobn_tune.train.recipe import TrialConfig

ReportFn = Callable[[dict[str, Any], "Path | None"], None]

CPU_CHUNK_COST_TOKENS = 64
"""What one more encoder pass costs on a CPU, in padded tokens, for ``length_chunks: auto``. At 64,
random RTE batches of MiniLM-L6 train in 0.56 of the time and length-grouped ones stay whole; 16
cuts too finely, 256 too coarsely (benchmarks/length_chunks.py). GPUs run small chunks less
efficiently and are not measured yet, so ``auto`` keeps their batches whole."""


@dataclass
class TrialResult:
    best_objective: float
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    # The best epoch's model state dict on the CPU: checkpoints keep only the newest epochs.
    best_model: dict[str, torch.Tensor] | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """The GPU Ray (or the user) made visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(
    model: torch.nn.Module, cfg: TrialConfig, *, fused: bool | None = None
) -> torch.optim.AdamW:
    """AdamW; with weight decay, biases and normalisation weights (1-d tensors) are excluded.

    The fused kernel is the default on CUDA and CPU (as in ``transformers.Trainer``): on CUDA a
    BERT step is bound by kernel launches, which it replaces by a handful
    (benchmarks/gpu_throughput.py); on CPU it makes one pass over the parameters instead of
    several (benchmarks/vs_hf_trainer.py).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    if fused is None:
        fused = all(p.device.type in ("cuda", "cpu") for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, eps=cfg.adam_eps, fused=fused)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Batches per epoch; a trailing batch of one example is dropped (batch statistics need n >= 2)."""
    full, rest = divmod(n_train, batch_size)
    return full + (1 if rest > 1 else 0)


def autocast_context(cfg: TrialConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if cfg.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    model: ClsNormClassifier,
    chunks: list[dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrialConfig,
    device: torch.device,
) -> torch.Tensor:
    """One optimisation step on one batch, given as one or more chunks (forward under autocast,
    backward, clipping, AdamW, schedule); returns the detached loss."""
    with autocast_context(cfg, device):
        logits, _ = model(*chunks)
    loss = model.loss(logits, torch.cat([chunk["labels"] for chunk in chunks]))
    loss.backward()
    if cfg.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def evaluate(
    model: ClsNormClassifier, split: TokenizedSplit, cfg: TrialConfig, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions (class ids or regression values) and the pooled [CLS] embeddings of a split,
    in the split's order.

    The batches hold examples of similar length (longest first, so an out-of-memory shows at
    once): in eval mode an example's outputs do not depend on its batch, and the padding is a
    fraction of random order's (RTE dev: 20k padded tokens instead of 35k).
    """
    model.eval()
    order = np.argsort(-split.lengths, kind="stable")
    preds, pooled_all = [], []
    for start in range(0, len(order), cfg.eval_batch_size):
        batch = _to_device(split.collate(order[start : start + cfg.eval_batch_size]), device)
        with autocast_context(cfg, device):
            logits, pooled = model(batch)
        logits = logits.float()
        preds.append(logits.squeeze(-1) if model.num_labels == 1 else logits.argmax(-1))
        pooled_all.append(pooled.float())
    restore = np.argsort(order)
    return torch.cat(preds).cpu().numpy()[restore], torch.cat(pooled_all).cpu().numpy()[restore]


def dev_metrics(
    model: ClsNormClassifier, data: TaskData, cfg: TrialConfig, device: torch.device
) -> tuple[dict[str, float], IsotropyStats]:
    """Metrics on every dev split (``dev_<metric>``), the objective on the first one, and the
    isotropy of the first split's pooled [CLS] embeddings."""
    task = get_task(data.task)
    metrics: dict[str, float] = {}
    first_pooled = None
    for name, split in data.dev.items():
        preds, pooled = evaluate(model, split, cfg, device)
        values = compute_metrics(task, preds, split.labels, split=name)
        metrics.update({f"dev_{k}": v for k, v in values.items()})
        if first_pooled is None:
            metrics[OBJECTIVE] = selection_value(task, values)
            first_pooled = pooled
    return metrics, isotropy_stats(first_pooled)


def normaliser_activity(model: ClsNormClassifier) -> dict[str, float]:
    """How much the [CLS] normaliser acts, if it measures that (IsoBN's ``activity``)."""
    activity = getattr(model.cls_norm, "activity", None)
    return activity() if activity is not None else {}


def _train_batches(data: TaskData, cfg: TrialConfig, epoch: int) -> Iterator[np.ndarray]:
    """The epoch's batches (random or length-grouped); the order depends only on (seed, epoch), so
    a resumed trial sees the same data order as an uninterrupted one."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    return train_batches(data.train, cfg.batch_size, batching=cfg.batching, generator=gen)


def train(
    cfg: TrialConfig,
    data: TaskData,
    *,
    report: ReportFn = lambda metrics, checkpoint: None,
    resume_state: dict[str, Any] | None = None,
    device: torch.device | None = None,
    save_checkpoints: bool = True,
) -> TrialResult:
    """Fine-tune one configuration; ``report(metrics, checkpoint_dir)`` is called after each epoch.

    The checkpoint directory handed to ``report`` (when ``save_checkpoints``) holds model,
    optimizer, scheduler, IsoBN buffers, epoch, RNG state, the best metric so far and the best
    epoch's model (``result.best_model``, for export: older checkpoints get deleted); it is
    deleted after ``report`` returns, so the hook must copy it (Tune's ``report`` does).
    """
    device = device or default_device()
    task = get_task(data.task)

    # 1. Seed before building the model: the head's initialisation depends on it.
    seed_everything(cfg.seed)
    model = build_model(cfg, task.num_labels).to(device)
    optimizer = make_optimizer(model, cfg)

    # 2. Linear warm-up over the first warmup_ratio of all steps, then linear decay to 0.
    total_steps = cfg.max_epochs * steps_per_epoch(len(data.train), cfg.batch_size)
    warmup_steps = math.floor(cfg.warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)

    result = TrialResult(best_objective=-math.inf, best_epoch=0)
    start_epoch = 1
    if resume_state is not None:
        state = resume_state
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        # PBT may hand us another trial's checkpoint with a mutated lr: the schedule follows cfg.
        scheduler.base_lrs = [cfg.lr for _ in scheduler.base_lrs]
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"])
        result = TrialResult(state["best_objective"], state["best_epoch"], state["history"],
                             best_model=state["best_model"])
        start_epoch = state["epoch"] + 1
        # A scheduler can pause a trial right after it reported the epoch that ended its patience,
        # before the loop saw it: resumed from that checkpoint, it is already done.
        if cfg.patience_exhausted(state["epoch"], result.best_epoch):
            result.stopped_early = state["epoch"] < cfg.max_epochs
            return result
        iso_before = IsotropyStats(state["iso_before_std"], state["iso_before_corr"])
    else:
        # 3. Isotropy of the pretrained [CLS] embedding on dev, before any update (epoch 0).
        _, iso_before = dev_metrics(model, data, cfg, device)

    chunk_cost = CPU_CHUNK_COST_TOKENS if cfg.length_chunks == "auto" and device.type == "cpu" else None
    for epoch in range(start_epoch, cfg.max_epochs + 1):
        # 4. One epoch of training; each batch whole, or in chunks of similar length.
        model.train()
        t0 = time.perf_counter()
        loss_sum, n_seen = torch.zeros((), device=device), 0
        for idx in _train_batches(data, cfg, epoch):
            chunks = [idx] if chunk_cost is None else length_chunks(idx, data.train.lengths, chunk_cost)
            batch = [_to_device(data.train.collate(chunk), device) for chunk in chunks]
            loss = train_step(model, batch, optimizer, scheduler, cfg, device)
            loss_sum += loss * len(idx)  # stays on the device: no sync per step
            n_seen += len(idx)
        train_loss = loss_sum.item() / max(n_seen, 1)
        train_time = time.perf_counter() - t0

        # 5. Evaluate on dev; keep the best epoch (the paper's early stopping by best checkpoint).
        metrics, iso = dev_metrics(model, data, cfg, device)
        improved = metrics[OBJECTIVE] > result.best_objective
        if improved:
            result.best_objective, result.best_epoch = metrics[OBJECTIVE], epoch
            result.best_model = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        metrics.update(
            epoch=epoch,
            train_loss=train_loss,
            lr=scheduler.get_last_lr()[0],
            best_objective=result.best_objective,
            best_epoch=result.best_epoch,
            train_examples_per_s=n_seen / train_time if train_time > 0 else 0.0,
            **iso.summary(),
            **normaliser_activity(model),
        )
        result.history.append(metrics)

        # 6. Report, with a checkpoint to resume (or for PBT to exploit) from.
        if save_checkpoints:
            with tempfile.TemporaryDirectory(prefix="isobn-ckpt-") as ckpt:
                _save_checkpoint(
                    Path(ckpt), model, optimizer, scheduler, epoch, result, iso_before, iso, device
                )
                report(metrics, Path(ckpt))
        else:
            report(metrics, None)
        if cfg.patience_exhausted(epoch, result.best_epoch):
            result.stopped_early = epoch < cfg.max_epochs
            break
    return result


def load_checkpoint(path: Path, device: torch.device | None = None) -> dict[str, Any]:
    """The state saved by :func:`train` in a checkpoint directory, for ``resume_state``."""
    state = torch.load(Path(path) / CHECKPOINT_FILE, map_location=device or "cpu", weights_only=False)
    return state | {"best_model": torch.load(Path(path) / BEST_MODEL_FILE, map_location="cpu")}


def _save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    result: TrialResult,
    iso_before: IsotropyStats,
    iso_now: IsotropyStats,
    device: torch.device,
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "best_objective": result.best_objective,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None,
        "iso_before_std": iso_before.per_dim_std,
        "iso_before_corr": iso_before.corr,
    }
    torch.save(state, path / CHECKPOINT_FILE)
    torch.save(result.best_model, path / BEST_MODEL_FILE)
    save_stats(path / ISOTROPY_FILE, iso_before, iso_now)
