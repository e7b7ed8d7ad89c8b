"""The Ray Tune function trainable: one trial = :func:`isobn_tune.train.loop.train` on the
resources Ray assigned, reporting each epoch with a checkpoint and resuming from the last one."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune
from ray.train._internal.session import get_session

from isobn_tune.data.tokenization import TaskData
from isobn_tune.sweep.checkpoint_storage import checkpoint_not_saved
from isobn_tune.train.loop import default_device, load_checkpoint, train
from isobn_tune.train.recipe import TrialConfig

FAIL_AT_ENV = "ISOBN_TUNE_FAIL_AT"
KILL_AT_ENV = "ISOBN_TUNE_KILL_AT"


def assigned_cpus() -> int:
    """Whole CPUs Ray gave this trial (at least one): torch's intra-op threads are sized to it,
    so concurrent trials do not oversubscribe the cores."""
    resources = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(resources.get("CPU", 1)))


def placement_metrics() -> dict[str, Any]:
    """Where the trial runs, reported with every result: the Ray node (its id: nodes on one
    host share ``node_ip``), torch's thread count and the GPU ids Ray assigned (comma-separated,
    empty on CPU; CUDA_VISIBLE_DEVICES lists the same ids)."""
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "torch_threads": torch.get_num_threads(),
        "gpu_ids": ",".join(map(str, ray.get_gpu_ids())),
    }


def check_injected_failure(cfg: TrialConfig, epoch: int) -> None:
    """Test hooks, set on the Ray nodes as ``SEED@EPOCH``: trials of that seed fail instead of
    reporting that epoch (and every later one), on every attempt (each retry resumes from the last
    checkpoint and fails again at the same epoch). ``ISOBN_TUNE_FAIL_AT`` raises, as a trial
    hitting a bad batch would; ``ISOBN_TUNE_KILL_AT`` kills the trial's worker process with
    SIGKILL, as the OOM killer or a lost node would."""
    if _injected_at(FAIL_AT_ENV, cfg, epoch):
        raise RuntimeError(f"injected failure at epoch {epoch} ({FAIL_AT_ENV}={os.environ[FAIL_AT_ENV]})")
    if _injected_at(KILL_AT_ENV, cfg, epoch):
        os.kill(os.getpid(), signal.SIGKILL)


def _injected_at(env: str, cfg: TrialConfig, epoch: int) -> bool:
    value = os.environ.get(env)
    if not value:
        return False
    seed, fail_epoch = map(int, value.split("@"))
    return cfg.seed == seed and epoch >= fail_epoch


class EndPreviousTrialOnReset:
    """Actor reuse that never errors a trial: Tune runs trial after trial in one actor
    (``reuse_actors``; a paused trial restarts in whichever cached actor is free), resetting it
    with ``reset_config``. Ray's ``FunctionTrainable.reset_config`` tells the previous trial's
    training thread to stop, gives it ``TUNE_FUNCTION_THREAD_TIMEOUT_S`` (2 s) to unwind and, if
    it is still alive, returns False, and Tune then errors the new trial instead of starting a
    fresh actor. Unwinding (the checkpoint folder deleted, the model and optimizer freed) can
    take longer on busy cores. So wait until the thread has ended: Tune resets an actor only
    between its tasks, when the thread waits inside ``tune.report`` (Ray's function trainables
    report synchronously); told to stop, it leaves from there without training another step.

    Ray's ``wrap_function`` puts a function's ``__mixins__`` before ``FunctionTrainable`` in the
    class it builds, and ``tune.with_parameters`` keeps them."""

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        get_session().finish()  # tell the previous trial's thread to stop, wait until it has
        return super().reset_config(new_config)  # type: ignore[misc]  # FunctionTrainable's


def fine_tune_trial(config: dict[str, Any], data: TaskData) -> None:
    """Tune entry point; ``data`` comes from ``tune.with_parameters`` (one object-store copy)."""
    cfg = TrialConfig.from_dict(config)
    torch.set_num_threads(assigned_cpus())
    device = default_device()  # Ray sets CUDA_VISIBLE_DEVICES to the trial's GPU(s)
    placement = placement_metrics()

    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            resume_state = load_checkpoint(Path(ckpt_dir), device)

    def report(metrics: dict[str, Any], ckpt_dir: Path | None) -> None:
        check_injected_failure(cfg, metrics["epoch"])
        if ckpt_dir is None:
            tune.report(metrics | placement)
            return
        try:
            tune.report(metrics | placement, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))
        except OSError as exc:  # the storage is full, or refuses the copy for another reason
            storage = tune.get_context().get_storage()
            raise checkpoint_not_saved(exc, metrics["epoch"], ckpt_dir, storage.storage_filesystem,
                                       storage.checkpoint_fs_path) from exc

    train(cfg, data, report=report, resume_state=resume_state, device=device)


fine_tune_trial.__mixins__ = (EndPreviousTrialOnReset,)  # type: ignore[attr-defined]
