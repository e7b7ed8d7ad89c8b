"""Tune's per-trial result files (``result.json``, ``progress.csv``) without lost rows.

When a trial that has a checkpoint starts, Ray 2.60's JSON and CSV logger callbacks copy the
trial's file from the storage over the driver's own copy (``LoggerCallback._restore_from_remote``),
which is right for a driver restarted on a fresh machine. A trial paused by a scheduler and
restarted by the same driver then loses every row written since the storage copy was last synced
(a group scheduler's paused trial lost its epoch-1 row). The driver's copy, where it exists, is the
newest; restore only where it is missing. Passing these callbacks keeps Tune from adding its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


class _KeepTheDriversCopy:
    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        if Path(trial.local_path, file_name).exists():
            return
        super()._restore_from_remote(file_name, trial)  # type: ignore[misc]  # LoggerCallback's


class JsonResults(_KeepTheDriversCopy, JsonLoggerCallback):
    """Tune's ``result.json`` writer, restoring from the storage only on a fresh driver."""


class CsvResults(_KeepTheDriversCopy, CSVLoggerCallback):
    """Tune's ``progress.csv`` writer, restoring from the storage only on a fresh driver."""


def result_file_callbacks() -> list[Any]:
    return [JsonResults(), CsvResults()]
