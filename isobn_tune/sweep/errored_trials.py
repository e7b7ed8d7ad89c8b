"""Errored trials recorded by the sweep itself, so that ``resume`` leaves them errored.

Ray 2.60 does not save the ERROR status of a trial whose worker process died (OOM kill, lost
node) after its last retry: its saved state stays RUNNING, and ``Tuner.restore`` would continue
it. A driver callback records every trial that errors in ``errored_trials.json`` beside its
experiment's directory (task -> trial id -> its error's last line); before a restore,
:func:`keep_errored` writes ERROR into Tune's saved state for those trials (``Tuner.restore``
takes no per-trial choice), so Tune leaves them errored unless asked to retry them. The record
lives beside the task directories, not in them: Tune re-uploads a task directory from its staging
copy, which would bring back stale files.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pyarrow.fs
from ray.tune import Callback
from ray.tune.experiment import Trial

from isobn_tune.sweep.directory import Experiment, filesystem, join

ERRORED_FILE = "errored_trials.json"
_STATE_FILES = "experiment_state-*.json"  # Tune's saved experiment state, newest name last
_FINAL = (Trial.ERROR, Trial.TERMINATED)


class EveryErroredTrial(Callback):
    """Calls :meth:`errored` once for each trial that is in ERROR, whatever path put it there.

    Tune calls ``on_trial_error`` only for an exception in the trainable or a dead worker; a trial
    that errors when Tune restarts it (a reused actor whose reset failed) or that a restore brings
    back errored gets ERROR without that call. So the trials' states are also looked at after every
    step of Tune's loop and at the experiment's end."""

    def errored(self, trials: list[Trial], trial: Trial) -> None:
        raise NotImplementedError

    def _once(self, trials: list[Trial], trial: Trial) -> None:
        seen: set[str] = self.__dict__.setdefault("_errored_seen", set())
        if trial.trial_id not in seen:
            seen.add(trial.trial_id)
            self.errored(trials, trial)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._once(trials, trial)

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        for trial in trials:
            if trial.status == Trial.ERROR:
                self._once(trials, trial)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.on_step_end(0, trials)


class ErroredTrialRecorder(EveryErroredTrial):
    """Adds each trial that errors to the sweep's record, at once, on the storage itself."""

    def errored(self, trials: list[Trial], trial: Trial) -> None:
        storage = trial.storage  # its storage path is the sweep directory, its experiment the task
        fs, path = storage.storage_filesystem, f"{storage.storage_fs_path}/{ERRORED_FILE}"
        record = _read_json(fs, path, {})
        task = record.setdefault(storage.experiment_dir_name, {})
        line = last_error_line(trial)
        if task.get(trial.trial_id) != line:
            task[trial.trial_id] = line
            _write_json(fs, path, record)


def keep_errored(experiment: Experiment, *, retry: bool) -> None:
    """Mark the recorded trials of ``experiment`` errored in Tune's newest saved state; with
    ``retry`` (they are about to be resumed) forget them, so that an interrupted retry continues."""
    fs, path = filesystem(join(experiment.storage, ERRORED_FILE))
    record = _read_json(fs, path, {})
    recorded = record.get(experiment.task, {})
    if not recorded:
        return
    _mark_errored(experiment.path, set(recorded))
    if retry:
        del record[experiment.task]
        _write_json(fs, path, record)


def _mark_errored(task_dir: str, trial_ids: set[str]) -> None:
    fs, root = filesystem(task_dir)
    states = [info.path for info in fs.get_file_info(pyarrow.fs.FileSelector(root))
              if fnmatch.fnmatch(info.base_name, _STATE_FILES)]
    if not states:
        return
    state_path = max(states)
    state = _read_json(fs, state_path, None)
    marked = False
    for pair in state["trial_data"]:
        trial = json.loads(pair[0])
        if trial["trial_id"] in trial_ids and trial["status"] not in _FINAL:
            pair[0], marked = json.dumps(trial | {"status": Trial.ERROR}), True
    if marked:
        _write_json(fs, state_path, state)


def last_error_line(trial: Trial) -> str:
    """The exception line of the trial's error file (its traceback's last line)."""
    try:
        lines = [ln for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
    except (OSError, TypeError):
        return "error"
    return lines[-1][:500] if lines else "error"


def _read_json(fs: pyarrow.fs.FileSystem, path: str, missing: Any) -> Any:
    if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return missing
    with fs.open_input_stream(path) as f:
        return json.loads(f.read().decode())


def _write_json(fs: pyarrow.fs.FileSystem, path: str, value: Any) -> None:
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(value, indent=2).encode())
