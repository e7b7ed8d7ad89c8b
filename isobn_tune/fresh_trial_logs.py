"""A trial that starts again from scratch starts a fresh result file (a gap in Ray 2.60).

Tune's loggers write a trial's ``result.json`` and ``progress.csv`` in the driver's staging
directory, which the experiment state names, and upload them with each snapshot. A trial restored
*with* a checkpoint gets its files back from the storage; one restored *without* (it reported an
epoch, but the driver died before the snapshot that would have saved its checkpoint) reopens the
staging file in append mode. On the same Ray cluster that file still holds the killed driver's
unsaved rows, so the re-run epochs follow them: ``result.json`` read 1, 1, 2, 3 (seen in one of
about ten killed sweeps on S3 storage). A retry after an error before any checkpoint appends the
same way. The re-run reproduces those epochs, so the stale rows are removed before the loggers
reopen the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.air.constants import EXPR_PROGRESS_FILE, EXPR_RESULT_FILE
from ray.tune import Callback
from ray.tune.experiment import Trial


class FreshLogsFromScratch(Callback):
    """Removes a trial's staged result files when it starts without a checkpoint.

    Must come before Tune's loggers in the callback list (Tune appends its default loggers after
    the callbacks it is given)."""

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        if trial.checkpoint is not None:
            return
        for name in (EXPR_RESULT_FILE, EXPR_PROGRESS_FILE):
            Path(trial.local_path, name).unlink(missing_ok=True)
