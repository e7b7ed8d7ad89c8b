"""MLflow caught up with a sweep from what Tune saved: ``isobn-tune sync``, ``resume``, and the end
of a sweep whose tracking server was unreachable for a while.

Tune's per-trial results on disk are the source of truth. For every trial of every experiment of
the sweep (its own and its extensions'), the epochs missing from its child run's history are
logged, each one (a history may have a gap in the middle), and an ended trial's status and end
where its run does not show them yet (``TrialLogger.catch_up``); then the parent's statistics of
each task whose trials changed are logged again, and once every trial has ended the parent's table
and end. Running it twice changes nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from mlflow.environment_variables import MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT
from ray.tune import Tuner
from ray.tune.analysis import ExperimentAnalysis
from ray.tune.experiment import Trial

from isobn_tune.console import say
from isobn_tune.errors import UserError
from isobn_tune.redaction import redact_uri
from isobn_tune.results.aggregate import TrialRecord, record_from_result
from isobn_tune.results.tables import SweepResults
from isobn_tune.sweep.directory import (
    Experiment,
    SweepDir,
    filesystem,
    join,
    read_manifest,
    sweep_tracking_uri,
)
from isobn_tune.sweep.errored_trials import ERRORED_FILE
from isobn_tune.sweep.extension import is_confirmation
from isobn_tune.tracking.logger import SweepTracker, result_rows
from isobn_tune.tracking.outage import unreachable


@dataclass
class Synced:
    """What a sync logged."""

    epochs: int = 0
    ends: int = 0
    tasks: tuple[str, ...] = ()  # whose parent statistics were logged again
    finished: bool = False  # the parent's table and end
    results: SweepResults | None = field(default=None, compare=False)  # the table, when it was logged


def sync_sweep(tracker: SweepTracker, sweep_dir: SweepDir, manifest: dict) -> Synced:
    """Log what the sweep's MLflow runs lack of Tune's results (see the module's docstring)."""
    synced = Synced()
    records: dict[str, list[TrialRecord]] = {}
    changed: set[str] = set()
    complete: dict[str, bool] = {}  # per task: every experiment started, every trial ended
    for experiment in sweep_dir.experiments(manifest):
        task = experiment.task
        trials = _saved_trials(experiment)
        complete[task] = complete.get(task, True) and trials is not None
        if trials is None:
            continue
        errors = _recorded_errors(experiment)
        confirmation = is_confirmation(manifest, experiment.extension)
        logger = tracker.callback(task, confirmation=confirmation)
        for trial in trials:
            errored = trial.status == Trial.ERROR or trial.trial_id in errors
            ended = errored or trial.status == Trial.TERMINATED
            complete[task] = complete[task] and ended
            rows = result_rows(trial.storage.storage_filesystem, trial.path)
            records.setdefault(task, []).append(
                record_from_result(trial.trial_id, trial.config, trial.last_result, errored, rows,
                                   confirmation=confirmation))
            if trial.status == Trial.PENDING and not rows:
                continue  # never started: no run yet
            epochs, end = logger.catch_up(trial, trials, rows, ended=ended, errored=errored,
                                          error_line=errors.get(trial.trial_id, "error"),
                                          experiment_dir=experiment.path)
            synced.epochs += epochs
            synced.ends += end
            if epochs or end:
                changed.add(task)
        if task in changed:
            logger.log_race_stops(trials, experiment.path)
    done = all(complete.values())
    parent_ended = tracker.client.get_run(tracker.parent_run_id).info.status == "FINISHED"
    synced.tasks = tuple(task for task in records
                         if complete[task] and (task in changed or (done and not parent_ended)))
    for task in synced.tasks:
        tracker.write_task_summary(task, records[task])
    if done and (changed or not parent_ended):
        synced.results = tracker.write_finish()
        synced.finished = True
    return synced


def sync_command(path: str, tracking_uri: str | None = None) -> Synced:
    """``isobn-tune sync``: the sweep at ``path`` caught up in its tracking store (the manifest's,
    with the credentials it names from the environment, or ``tracking_uri``)."""
    sweep_dir = SweepDir.parse(path)
    manifest = read_manifest(sweep_dir)
    uri = sweep_tracking_uri(manifest, tracking_uri)
    os.environ.setdefault(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT.name, "true")  # one line, not one per run
    try:
        return sync_sweep(SweepTracker.of(uri, manifest["parent_run_id"]), sweep_dir, manifest)
    except Exception as exc:
        if not unreachable(exc):
            raise
        raise UserError(f"MLflow at {redact_uri(uri)} is unreachable: sync again once it answers") from exc


def finish_tracking(tracker: SweepTracker, sweep_dir: SweepDir) -> SweepResults | None:
    """The parent's table and end, returned; after an outage at any point of this run, the whole
    sweep caught up from Tune's results instead (a catch-up while it ran covered only its running
    experiment), if MLflow answers; else the console says how to catch up later (and None)."""
    outage = tracker.outage
    if not outage.missed:
        results = tracker.finish()
        if results is not None:
            return results
    synced: list[Synced] = []
    if not outage.settle(lambda: synced.append(sync_sweep(tracker, sweep_dir, read_manifest(sweep_dir)))):
        say(f"MLflow is still unreachable: `isobn-tune sync {sweep_dir.arg}` logs what it lacks once it "
            "answers (so does `isobn-tune resume`)")
        return None
    return synced[-1].results if synced else None


def _saved_trials(experiment: Experiment) -> list[Trial] | None:
    """The trials of a Tune experiment as last saved; None if it has not started."""
    if not Tuner.can_restore(experiment.path):
        return None
    return ExperimentAnalysis(experiment.path).trials


def _recorded_errors(experiment: Experiment) -> dict[str, str]:
    """The experiment's errored trials the sweep recorded (see errored_trials.py): id -> error line."""
    fs, path = filesystem(join(experiment.storage, ERRORED_FILE))
    try:
        with fs.open_input_stream(path) as f:
            return json.loads(f.read().decode()).get(experiment.task, {})
    except FileNotFoundError:
        return {}
