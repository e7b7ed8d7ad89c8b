"""Disk: a finished trial keeps its best-epoch model, not the state to resume it.

A running trial's checkpoints hold the model, AdamW's moments and the best model (16 bytes per
parameter each). Tune never restarts a trial it completed, so once ``on_trial_complete`` fires,
the resume state is dead weight: the newest registered checkpoint keeps the best model (what
``export`` reads) and every checkpoint its isotropy statistics. Paused, running and errored trials
(which ``--retry-errored`` resumes) are never touched.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pyarrow.fs
from ray.tune import Callback
from ray.tune.experiment import Trial

from isobn_tune.train.checkpoint_files import BEST_MODEL_FILE, CHECKPOINT_FILE, CHECKPOINT_PREFIX


class ThinFinishedTrials(Callback):
    """Thins each trial as it completes; with PBT, every completed trial when the task's run ends,
    since an exploit may still be restoring a trial's checkpoint just as that trial finishes."""

    def __init__(self, *, at_end: bool) -> None:
        self.at_end = at_end

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if not self.at_end:
            thin_trial(trial)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        if self.at_end:
            for trial in trials:
                if trial.status == Trial.TERMINATED:
                    thin_trial(trial)


def thin_trial(trial: Trial) -> None:
    """Delete a completed trial's resume state, and best models but the newest registered one."""
    keep = PurePosixPath(trial.checkpoint.path).name if trial.checkpoint is not None else None
    thin_checkpoints(trial.storage.storage_filesystem, trial.path, keep)


def thin_checkpoints(fs: pyarrow.fs.FileSystem, trial_dir: str, keep: str | None) -> None:
    """In every checkpoint directory of ``trial_dir``: delete the trainer state, and the best
    model unless the directory is named ``keep`` (an unregistered one a stopped worker wrote
    after its last reported epoch loses it too, so ``export`` reads the epoch MLflow logged)."""
    found = fs.get_file_info(pyarrow.fs.FileSelector(trial_dir, allow_not_found=True, recursive=True))
    for info in found:
        checkpoint = PurePosixPath(info.path).parent.name
        if not checkpoint.startswith(CHECKPOINT_PREFIX):
            continue
        if info.base_name == CHECKPOINT_FILE or (info.base_name == BEST_MODEL_FILE and checkpoint != keep):
            fs.delete_file(info.path)
