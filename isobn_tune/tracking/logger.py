"""MLflow tracking: one parent run per sweep, one nested child run per trial.

All logging happens in the driver (a Tune callback plus the runner's summaries), so trials that
finish at the same time never write to the store concurrently: a SQLite store sees one writer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial
from ray.tune.result import AUTO_RESULT_KEYS, EXPR_RESULT_FILE

from isobn_tune.console import say
from isobn_tune.redaction import redact, redact_mapping, redact_text
from isobn_tune.results.aggregate import (
    TrialRecord,
    best_groups,
    config_group,
    record_from_result,
    run_label,
    summarise_groups,
)
from isobn_tune.results.comparisons import points
from isobn_tune.results.figures import write_sweep_figures
from isobn_tune.results.groups import group_key
from isobn_tune.results.tables import SweepResults, sweep_results
from isobn_tune.schedulers.race_by_config import saved_race_stops
from isobn_tune.space import SweepSpace, trial_count
from isobn_tune.sweep.directory import stored_uri
from isobn_tune.sweep.errored_trials import EveryErroredTrial, last_error_line
from isobn_tune.tracking.names import (
    BEST_DEV_METRIC,
    CONFIRMATION_TAG,
    EPOCH_METRIC,
    ERROR_TAG,
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_KIND_TRAINING,
    FIGURES_ARTIFACT_DIR,
    GROUP_TAG,
    ISOTROPY_ARTIFACT_DIR,
    ISOTROPY_FIGURE,
    KIND_SWEEP,
    KIND_TAG,
    KIND_TRIAL,
    METHOD_TAG,
    NEAR_IDENTITY_TAG,
    NOTE_TAG,
    PARENT_TAG,
    RACE_DIFF_TAG,
    RACE_EPOCH_TAG,
    RACE_INCUMBENT_TAG,
    RACE_P_VALUE_TAG,
    RACE_PAIRS_TAG,
    RETRIED_TAG,
    SCHEDULER_TAG,
    SEED_TAG,
    SPACE_ARTIFACT,
    STATUS_TAG,
    SWEEP_ERRORED,
    SWEEP_TAG,
    TABLE_CSV_ARTIFACT,
    TABLE_MD_ARTIFACT,
    TASK_TAG,
    TASKS_TAG,
    TRIAL_CONFIG_ARTIFACT,
    TRIAL_TAG,
    best_group_tag,
    best_label_tag,
    best_median_metric,
    group_metric,
    groups_artifact,
    race_artifact,
    trial_configs_artifact,
)
from isobn_tune.tracking.outage import Outage
from isobn_tune.tracking.readback import epoch_metrics, find_child, records_from_mlflow
from isobn_tune.train.checkpoint_files import ISOTROPY_FILE
from isobn_tune.train.isobn_params import ISOBN_EPS_RATIO, ISOBN_NEAR_IDENTITY
from isobn_tune.train.isotropy import load_stats, plot_isotropy
from isobn_tune.train.metrics import OBJECTIVE
from isobn_tune.train.recipe import TrialConfig

_MLFLOW_STATUS = {"finished": "FINISHED", "stopped": "FINISHED", "errored": "FAILED"}
_TUNE_KEYS = frozenset(AUTO_RESULT_KEYS)  # what Tune adds to every result: not the trial's own


# Parent run id -> the full tracking URI this process opened it with, for the trackers Tune
# unpickles from the sweep directory (where they rest without credentials).
_OPENED_URIS: dict[str, str] = {}
_OUTAGES: dict[str, Outage] = {}  # parent run id -> its sweep's tracking outage state, in this process


class SweepTracker:
    """The sweep's parent run; picklable (Tune pickles callbacks into its experiment state)."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        _OPENED_URIS[parent_run_id] = tracking_uri
        _OUTAGES[parent_run_id] = Outage(tracking_uri)

    def __getstate__(self) -> dict[str, Any]:
        """As Tune saves it in the sweep directory (``tuner.pkl``): the URI without credentials."""
        return self.__dict__ | {"tracking_uri": stored_uri(self.tracking_uri)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restored by a resume, which opened the parent run with the full URI first."""
        opened = _OPENED_URIS.get(state["parent_run_id"], state["tracking_uri"])
        self.__dict__ = state | {"tracking_uri": opened}

    @property
    def outage(self) -> Outage:
        """The guard of every MLflow call of the sweep's driver (shared with the trackers Tune unpickles)."""
        return _OUTAGES.setdefault(self.parent_run_id, Outage(self.tracking_uri))

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    @classmethod
    def start(cls, tracking_uri: str, space: SweepSpace, sweep_name: str, space_text: str) -> SweepTracker:
        """Create the parent run in the space file's experiment, with the (redacted) space file."""
        client = MlflowClient(tracking_uri)
        experiment_id = _experiment_id(client, tracking_uri, space.experiment_name)
        run = client.create_run(
            experiment_id, run_name=sweep_name,
            tags={SWEEP_TAG: sweep_name, TASKS_TAG: ",".join(space.tasks),
                  SCHEDULER_TAG: space.scheduler.type, KIND_TAG: KIND_SWEEP, STATUS_TAG: "running"},
        )
        client.log_batch(run.info.run_id, params=[
            Param("model", redact(space.model.name_or_path)), Param("tasks", ",".join(space.tasks)),
            Param("scheduler", space.scheduler.type), Param("trials", str(trial_count(space))),
            Param("seeds", ",".join(map(str, space.grid.seeds))),
            Param("optuna", str(space.optuna is not None)),
        ])
        client.log_text(run.info.run_id, redact_text(space_text), SPACE_ARTIFACT)
        return cls(tracking_uri, experiment_id, run.info.run_id)

    @classmethod
    def of(cls, tracking_uri: str, parent_run_id: str) -> SweepTracker:
        """The parent run of an existing sweep, as it is."""
        return cls(tracking_uri, MlflowClient(tracking_uri).get_run(parent_run_id).info.experiment_id,
                   parent_run_id)

    @classmethod
    def resume(cls, tracking_uri: str, parent_run_id: str) -> SweepTracker:
        """Continue the parent run of an interrupted sweep (no new parent)."""
        tracker = cls.of(tracking_uri, parent_run_id)
        tracker.client.update_run(parent_run_id, status="RUNNING")
        return tracker

    def callback(self, task: str, *, confirmation: bool = False) -> TrialLogger:
        """The Tune callback that logs ``task``'s trials; ``confirmation``: they are an
        ``isobn-tune confirm`` extension's (tagged :data:`CONFIRMATION_TAG`)."""
        return TrialLogger(self, task, confirmation=confirmation)

    def note_near_identity(self, trial_id: str, result: dict[str, Any]) -> None:
        """Say once per sweep that IsoBN did next to nothing in a trial, so that nobody reads a
        null result of the sweep as a finding about IsoBN."""
        if self.__dict__.get("_near_identity_noted"):
            return
        self._near_identity_noted = True
        ratio = result.get(ISOBN_EPS_RATIO, float("nan"))
        say(f"note: IsoBN ended within 1% of the identity in trial {trial_id} (its eps is {ratio:.3g} x "
            "median(gamma * sigma)): a null result here says nothing about IsoBN; a smaller eps or "
            "grid.eps_mode: [relative] lets it act")

    def log_task_summary(self, task: str, records: list[TrialRecord]) -> None:
        """:meth:`write_task_summary`, unless MLflow is unreachable: then the sweep's end (or
        ``isobn-tune sync``) logs it from Tune's results."""
        self.outage.attempt(self.write_task_summary, task, records)

    def write_task_summary(self, task: str, records: list[TrialRecord]) -> None:
        """Per configuration group of ``task``: median and std over seeds of the best dev metric
        as parent metrics ``<task>/<label>/median|std|n_seeds``, the best group as tags and
        ``<task>/best_median``, the groups and the resolved trial configs as JSON artifacts."""
        records = [_redacted(r) for r in records]
        summaries = summarise_groups(r for r in records if not r.confirmation)  # what selects
        now = _now_ms()
        metrics = [
            Metric(group_metric(task, s.label, name), value, now, 0)
            for s in summaries if s.values
            for name, value in (("median", s.median), ("std", s.std), ("n_seeds", len(s.values)))
        ]
        tags = []
        best = best_groups(summaries).get(task)
        if best:
            metrics.append(Metric(best_median_metric(task), best.median, now, 0))
            tags = [RunTag(best_group_tag(task), best.group), RunTag(best_label_tag(task), best.label)]
        client = self.client
        client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)
        rows = [{"group": s.group, "label": s.label, "method": s.method, "median": s.median, "std": s.std,
                 "seeds": list(s.seeds), "values": list(s.values), "trials": s.n_trials} for s in summaries]
        _log_json(client, self.parent_run_id, rows, groups_artifact(task))
        configs = [r.config.to_dict() | {"trial_id": r.trial_id, "status": r.status} for r in records]
        _log_json(client, self.parent_run_id, configs, trial_configs_artifact(task))

    def finish(self) -> SweepResults | None:
        """:meth:`write_finish`, unless MLflow is unreachable (then None)."""
        logged: list[SweepResults] = []
        self.outage.attempt(lambda: logged.append(self.write_finish()))
        return logged[0] if logged else None

    def write_finish(self) -> SweepResults:
        """The task x method table with the paired comparisons as CSV and Markdown artifacts and as
        the parent run's description (its page shows it); the parent run ends. Computed from the
        trials as their child runs hold them, as ``isobn-tune report`` computes it, and returned
        (the end-of-run table)."""
        client, run_id = self.client, self.parent_run_id
        records = records_from_mlflow(self.tracking_uri, run_id)
        results = sweep_results(records)
        client.log_text(run_id, results.csv(), TABLE_CSV_ARTIFACT)
        client.log_text(run_id, results.table_markdown(), TABLE_MD_ARTIFACT)
        client.set_tag(run_id, NOTE_TAG, results.description())
        self._log_figures(records)
        errored = any(r.status == "errored" for r in records)
        client.set_tag(run_id, STATUS_TAG, SWEEP_ERRORED if errored else "finished")
        client.set_terminated(run_id, "FINISHED")
        return results

    def _log_figures(self, records: list[TrialRecord]) -> None:
        """Seed scores, learning curves and budget curves per task, as PNG with their CSV data."""
        histories = {
            trial_id: [(int(m.step), m.value) for m in metrics]
            for trial_id, metrics in epoch_metrics(self.tracking_uri, self.parent_run_id, OBJECTIVE).items()
        }
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_sweep_figures(records, histories, Path(tmp)):
                self.client.log_artifact(self.parent_run_id, str(path), FIGURES_ARTIFACT_DIR)


class TrialLogger(EveryErroredTrial):
    """A child run per trial: params, seed, group, per-epoch metrics (step = epoch), status and
    isotropy figures; with ``race_by_config``, why a race stopped it, and on the parent the list
    of a task's race stops. Runs in the driver, so trials finishing together are logged one after
    the other. On resume a trial that already has a child run keeps it, and epochs it already
    logged are not logged again.

    Every call goes through the sweep's :class:`Outage`: while MLflow is unreachable nothing is
    logged, and a later callback (or the experiment's end) catches up from Tune's results."""

    def __init__(self, tracker: SweepTracker, task: str, *, confirmation: bool = False) -> None:
        self.tracker = tracker
        self.task = task
        self.confirmation = confirmation
        self._runs: dict[str, str] = {}
        self._logged_epochs: dict[str, set[int]] = {}  # per trial, the steps its run holds
        self._ended: set[str] = set()  # trials whose end a catch-up logged

    def _run(self, trial: Trial) -> Run:
        """The trial's child run, created as at the trial's start if it has none (or given its
        params if an outage came between); the epochs it holds are remembered, each one (a
        history may have gaps)."""
        client, tr = self.tracker.client, self.tracker
        run = find_child(client, tr.experiment_id, tr.parent_run_id, trial.trial_id)
        if run is None:
            run = self._create_child(client, trial)
            logged = set()
        else:
            if not run.data.params:
                _log_config(client, run.info.run_id, trial)
            logged = {int(m.step) for m in client.get_metric_history(run.info.run_id, EPOCH_METRIC)}
        self._runs[trial.trial_id] = run.info.run_id
        self._logged_epochs[trial.trial_id] = logged
        return run

    def _child(self, trial: Trial) -> str:
        """The run of a trial that runs: a resumed trial's run is running again."""
        if trial.trial_id not in self._runs:
            run = self._run(trial)
            if run.info.status != "RUNNING":
                self.tracker.client.update_run(run.info.run_id, status="RUNNING")
        return self._runs[trial.trial_id]

    def _create_child(self, client: MlflowClient, trial: Trial) -> Run:
        cfg = _redacted_config(TrialConfig.from_dict(trial.config))
        tr = self.tracker
        run = client.create_run(
            tr.experiment_id, run_name=run_label(cfg),
            tags={PARENT_TAG: tr.parent_run_id, TRIAL_TAG: trial.trial_id, TASK_TAG: self.task,
                  SEED_TAG: str(cfg.seed), GROUP_TAG: config_group(cfg),
                  METHOD_TAG: cfg.cls_norm, STATUS_TAG: "running", KIND_TAG: KIND_TRIAL,
                  **({CONFIRMATION_TAG: "true"} if self.confirmation else {})},
        )
        _log_config(client, run.info.run_id, trial)
        return run

    def _track(self, trials: list[Trial], log: Callable[..., None], *args: Any) -> None:
        """``log(*args)`` through the outage guard; while MLflow is behind, first a catch-up when
        one is due (this callback's own result is not in Tune's files yet: it is logged after)."""
        outage = self.tracker.outage
        if outage.catch_up(lambda: self._catch_up_running(trials)):
            outage.attempt(log, *args)

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._track(trials, self._child, trial)

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        self._track(trials, self._log_result, trial, result)

    def _log_result(self, trial: Trial, result: dict) -> None:
        run_id = self._child(trial)
        logged = self._logged_epochs[trial.trial_id]
        step = int(result.get("epoch", 0))
        if step not in logged:
            self.tracker.client.log_batch(run_id, metrics=_epoch_metrics(result, _now_ms()))
            logged.add(step)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._track(trials, self._log_retried, trial)

    def _log_retried(self, trial: Trial) -> None:
        self.tracker.client.set_tag(self._child(trial), RETRIED_TAG, str(trial.run_metadata.num_failures))

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._track(trials, self._end, trial, trials, False)

    def errored(self, trials: list[Trial], trial: Trial) -> None:
        """The trial's run failed with its reason, whatever path errored it; a run that shows it
        already (a trial a restore brings back errored) is left as it is."""
        self._track(trials, self._end_errored, trial, trials)

    def _end_errored(self, trial: Trial, trials: list[Trial]) -> None:
        if trial.trial_id not in self._ended:
            rows = result_rows(pyarrow.fs.LocalFileSystem(), trial.local_path) if trial.local_path else []
            self.catch_up(trial, trials, rows, ended=True, errored=True, error_line=last_error_line(trial))

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        """The last catch-up of the task, if behind; the task's race stops on the parent (also when
        interrupted: a resume rewrites them)."""
        super().on_experiment_end(trials, **info)
        outage = self.tracker.outage
        if trials and outage.catch_up(lambda: self._catch_up_running(trials), now=True):
            outage.attempt(self.log_race_stops, trials, trials[0].storage.experiment_driver_staging_path)

    def log_race_stops(self, trials: list[Trial], experiment_dir: str) -> None:
        """The stops a race saved in ``experiment_dir``, as the parent's ``race/<task>.json``."""
        stops = saved_race_stops(experiment_dir)
        if stops is None:
            return
        names = _group_names(trials)
        rows = sorted(
            ({"configuration": names[group], "epoch": stop.epoch, "incumbent": names[stop.incumbent],
              "diff_points": 100 * stop.diff, "p_value": stop.p_value, "n_pairs": stop.n_pairs}
             for group, stop in stops.items()),
            key=lambda row: (row["epoch"], row["configuration"]),
        )
        _log_json(self.tracker.client, self.tracker.parent_run_id, rows, race_artifact(self.task))

    def _catch_up_running(self, trials: list[Trial]) -> None:
        """Catch up every started trial of the running experiment, from the driver's copy of Tune's
        results (the newest)."""
        for trial in trials:
            if trial.status != Trial.PENDING:
                errored = trial.status == Trial.ERROR
                rows = result_rows(pyarrow.fs.LocalFileSystem(), trial.local_path)
                self.catch_up(trial, trials, rows, ended=errored or trial.status == Trial.TERMINATED,
                              errored=errored, error_line=last_error_line(trial) if errored else "")

    def catch_up(self, trial: Trial, trials: list[Trial], rows: list[dict[str, Any]], *, ended: bool,
                 errored: bool, error_line: str, experiment_dir: str | None = None) -> tuple[int, bool]:
        """Log what MLflow lacks of one trial: its run, each epoch of ``rows`` (Tune's results)
        missing from the run's history (step = epoch, at the time Tune received it) and, once
        the trial has ended, its end unless the run shows it already (a race's stops read from
        ``experiment_dir``, by default the running experiment's). Returns the number of epochs
        logged and whether the end was."""
        run = self._run(trial)
        client, run_id = self.tracker.client, run.info.run_id
        logged = self._logged_epochs[trial.trial_id]
        missing = [row for row in first_per_epoch(rows) if int(row["epoch"]) not in logged]
        for row in missing:
            client.log_batch(run_id, metrics=_epoch_metrics(row, int(row.get("timestamp", 0) * 1000)))
            logged.add(int(row["epoch"]))
        if not ended:
            return len(missing), False
        self._ended.add(trial.trial_id)
        status = record_from_result(trial.trial_id, trial.config, trial.last_result, errored).status
        if run.data.tags.get(STATUS_TAG) == status and run.info.status == _MLFLOW_STATUS[status]:
            return len(missing), False
        self._log_end(trial, trials, errored, error_line, experiment_dir)
        return len(missing), True

    def _end(self, trial: Trial, trials: list[Trial], errored: bool) -> None:
        if trial.trial_id not in self._ended:  # else a catch-up logged it
            self._log_end(trial, trials, errored, last_error_line(trial) if errored else "")

    def _log_end(self, trial: Trial, trials: list[Trial], errored: bool, error_line: str,
                 experiment_dir: str | None = None) -> None:
        client, run_id = self.tracker.client, self._child(trial)
        record = record_from_result(trial.trial_id, trial.config, trial.last_result, errored)
        tags = [RunTag(STATUS_TAG, record.status)]
        if errored:
            tags.append(RunTag(ERROR_TAG, redact(error_line)))
        if record.status == "stopped":
            race_dir = experiment_dir or trial.storage.experiment_driver_staging_path
            tags.extend(_race_tags(trial, trials, race_dir))
        if trial.last_result.get(ISOBN_NEAR_IDENTITY) == 1:
            tags.append(RunTag(NEAR_IDENTITY_TAG, "true"))
            self.tracker.note_near_identity(trial.trial_id, trial.last_result)
        metrics = []
        if record.best_objective is not None:
            metrics = [Metric(BEST_DEV_METRIC, record.best_objective, _now_ms(), record.last_epoch)]
        client.log_batch(run_id, metrics=metrics, tags=tags)
        self._log_isotropy(trial, run_id)
        client.set_terminated(run_id, _MLFLOW_STATUS[record.status])

    def _log_isotropy(self, trial: Trial, run_id: str) -> None:
        """The [CLS] isotropy figure (before / after fine-tuning) and its statistics from the
        trial's last checkpoint; the pretrained model's summary numbers as metrics at step 0."""
        checkpoint = trial.checkpoint
        if checkpoint is None:
            return
        client = self.tracker.client
        with checkpoint.as_directory() as ckpt_dir, tempfile.TemporaryDirectory() as tmp:
            stats_file = Path(ckpt_dir) / ISOTROPY_FILE
            if not stats_file.exists():
                return
            before, after = load_stats(stats_file)
            png = plot_isotropy(before, after, Path(tmp) / ISOTROPY_FIGURE,
                                title=f"{self.task} {trial.trial_id}: [CLS] before / after fine-tuning")
            client.log_artifact(run_id, str(png), ISOTROPY_ARTIFACT_DIR)
            client.log_artifact(run_id, str(stats_file), ISOTROPY_ARTIFACT_DIR)
        now = _now_ms()
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in before.summary().items()])


def _log_config(client: MlflowClient, run_id: str, trial: Trial) -> None:
    """Every hyperparameter of the trial as a param, and its resolved config as JSON (redacted)."""
    values = _redacted_config(TrialConfig.from_dict(trial.config)).to_dict()
    client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in values.items()])
    _log_json(client, run_id, values, TRIAL_CONFIG_ARTIFACT)


def _race_tags(trial: Trial, trials: list[Trial], experiment_dir: str) -> list[RunTag]:
    """Why a race stopped the trial's configuration; none if no race stopped it."""
    stop = (saved_race_stops(experiment_dir) or {}).get(group_key(trial.config))
    if stop is None:
        return []
    return [RunTag(RACE_EPOCH_TAG, f"{stop.epoch:g}"),
            RunTag(RACE_INCUMBENT_TAG, _group_names(trials)[stop.incumbent]),
            RunTag(RACE_DIFF_TAG, points(stop.diff)), RunTag(RACE_P_VALUE_TAG, f"{stop.p_value:.4g}"),
            RunTag(RACE_PAIRS_TAG, str(stop.n_pairs))]


def _group_names(trials: list[Trial]) -> dict[str, str]:
    """The scheduler's group key of each configuration -> the configuration as GROUP_TAG names it."""
    return {group_key(t.config): config_group(_redacted_config(TrialConfig.from_dict(t.config)))
            for t in trials}


def _redacted_config(cfg: TrialConfig) -> TrialConfig:
    """The config as logged (see :func:`redact_mapping`); the trial itself runs with ``cfg``."""
    return TrialConfig.from_dict(redact_mapping(cfg.to_dict()))


def _redacted(record: TrialRecord) -> TrialRecord:
    return dataclasses.replace(record, config=_redacted_config(record.config))


def _log_json(client: MlflowClient, run_id: str, value: Any, path: str) -> None:
    client.log_text(run_id, redact(json.dumps(value, indent=2)), path)


def _experiment_id(client: MlflowClient, tracking_uri: str, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if EXPERIMENT_KIND_TAG not in exp.tags:  # created by MLflow's UI or an older isobn-tune
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND_TRAINING)
        return exp.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        # Keep artifacts beside the SQLite store rather than in the current directory.
        artifact_location = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=artifact_location,
                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND_TRAINING})


def result_rows(fs: pyarrow.fs.FileSystem, trial_dir: str) -> list[dict[str, Any]]:
    """Tune's results of a trial, one row per report (``result.json``); none before its first."""
    path = f"{trial_dir}/{EXPR_RESULT_FILE}"
    if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
        return []
    with fs.open_input_stream(path) as f:
        return [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]


def first_per_epoch(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first row of each epoch, as the live logging keeps it (a PBT exploit or a retry from
    an older checkpoint reports an epoch again)."""
    seen: set[int] = set()
    firsts = []
    for row in rows:
        epoch = row.get("epoch")
        if isinstance(epoch, int) and epoch not in seen:
            seen.add(epoch)
            firsts.append(row)
    return firsts


def _epoch_metrics(result: dict[str, Any], timestamp_ms: int) -> list[Metric]:
    """Every finite number a trial reported for an epoch, at step = epoch."""
    step = int(result.get("epoch", 0))
    return [Metric(k, float(v), timestamp_ms, step) for k, v in result.items()
            if k not in _TUNE_KEYS and _is_number(v)]


def _param_value(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


