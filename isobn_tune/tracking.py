"""MLflow tracking: one parent run per sweep, one nested child run per trial.

All logging happens in the driver (a Tune callback plus the runner's summaries), so trials that
finish at the same time never write to the store concurrently: a SQLite store sees one writer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback
from ray.tune.experiment import Trial

from isobn_tune.aggregate import (
    TrialRecord,
    best_groups,
    config_group,
    method_table,
    record_from_result,
    summarise_groups,
    table_csv,
    table_markdown,
)
from isobn_tune.isotropy import load_stats, plot_isotropy
from isobn_tune.preflight import (  # re-exported: the tracking URI is checked before MLflow is imported
    check_tracking_uri,
    default_tracking_uri,
    redact_uri,
    resolve_tracking_uri,
)
from isobn_tune.recipe import TrialConfig
from isobn_tune.space import SweepSpace

PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "isobn.trial_id"
SWEEP_TAG = "isobn.sweep"
STATUS_TAG = "isobn.status"  # trials: running, finished, stopped (by the scheduler), errored
KIND_TAG = "isobn.kind"  # sweep (the parent) or trial
SEED_TAG = "isobn.seed"
GROUP_TAG = "isobn.config_group"  # the configuration without its seed
ERROR_TAG = "isobn.error"
_MLFLOW_STATUS = {"finished": "FINISHED", "stopped": "FINISHED", "errored": "FAILED"}
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|api[_-]?key|access[_-]?key|credential)", re.I)
_URI_CREDENTIALS = re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@")
_TOKEN_SHAPES = re.compile(r"\bhf_[A-Za-z0-9]{20,}|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_METRIC_PREFIXES = ("dev_", "iso_")
_METRIC_KEYS = (
    "epoch", "objective", "best_objective", "best_epoch", "train_loss", "lr", "train_examples_per_s",
)


def redact(text: str) -> str:
    """``text`` as it may be logged: credentials in URIs, the values of secret-looking
    environment variables (HF_TOKEN, AWS_SECRET_ACCESS_KEY, ...) and Hugging Face / AWS key
    shapes masked."""
    text = _URI_CREDENTIALS.sub(r"\1***@", text)
    for value in _secret_env_values():
        text = text.replace(value, "***")
    return _TOKEN_SHAPES.sub("***", text)


def redact_text(text: str) -> str:
    """A space file as logged: :func:`redact`, and the values of secret-looking keys masked."""
    def mask(line: str) -> str:
        key = re.split("[:=]", line, maxsplit=1)[0]
        return re.sub(r"[:=]\s*\S.*$", ": '***'", line) if _SECRET_KEY.search(key) else line

    return "\n".join(mask(line) for line in redact(text).splitlines()) + "\n"


def redact_mapping(values: dict[str, Any]) -> dict[str, Any]:
    """A config as logged: values under secret-looking keys masked (nested too), strings redacted."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if _SECRET_KEY.search(key):
            out[key] = "***"
        elif isinstance(value, dict):
            out[key] = redact_mapping(value)
        else:
            out[key] = redact(value) if isinstance(value, str) else value
    return out


def _secret_env_values() -> list[str]:
    """Values of environment variables named like secrets; short or all-letter values (flags
    such as ``false`` or ``disabled``) are left alone so ordinary words are not masked."""
    values = {v for k, v in os.environ.items() if _SECRET_KEY.search(k) and len(v) >= 8 and not v.isalpha()}
    return sorted(values, key=len, reverse=True)


class SweepTracker:
    """The sweep's parent run; picklable (Tune pickles callbacks into its experiment state)."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id

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
            tags={SWEEP_TAG: sweep_name, "isobn.tasks": ",".join(space.tasks),
                  "isobn.scheduler": space.scheduler.type, KIND_TAG: "sweep", STATUS_TAG: "running"},
        )
        client.log_batch(run.info.run_id, params=[
            Param("model", redact(space.model.name_or_path)), Param("tasks", ",".join(space.tasks)),
            Param("scheduler", space.scheduler.type), Param("trials", str(space.trial_count())),
            Param("seeds", ",".join(map(str, space.grid.seeds))),
            Param("optuna", str(space.optuna is not None)),
        ])
        client.log_text(run.info.run_id, redact_text(space_text), "space.yaml")
        return cls(tracking_uri, experiment_id, run.info.run_id)

    @classmethod
    def resume(cls, tracking_uri: str, parent_run_id: str) -> SweepTracker:
        """Continue the parent run of an interrupted sweep (no new parent)."""
        client = MlflowClient(tracking_uri)
        run = client.get_run(parent_run_id)
        client.update_run(parent_run_id, status="RUNNING")
        return cls(tracking_uri, run.info.experiment_id, parent_run_id)

    def callback(self, task: str) -> TrialLogger:
        return TrialLogger(self, task)

    def log_task_summary(self, task: str, records: list[TrialRecord]) -> None:
        """Per configuration group of ``task``: median and std over seeds of the best dev metric
        as parent metrics ``<task>/<label>/median|std|n_seeds``, the best group as tags and
        ``<task>/best_median``, the groups and the resolved trial configs as JSON artifacts."""
        records = [_redacted(r) for r in records]
        summaries = summarise_groups(records)
        now = _now_ms()
        metrics = [
            Metric(f"{task}/{s.label}/{name}", value, now, 0)
            for s in summaries if s.values
            for name, value in (("median", s.median), ("std", s.std), ("n_seeds", len(s.values)))
        ]
        tags = []
        best = best_groups(summaries).get(task)
        if best:
            metrics.append(Metric(f"{task}/best_median", best.median, now, 0))
            tags = [RunTag(f"isobn.best_group.{task}", best.group),
                    RunTag(f"isobn.best_label.{task}", best.label)]
        client = self.client
        client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)
        rows = [{"group": s.group, "label": s.label, "method": s.method, "median": s.median, "std": s.std,
                 "seeds": list(s.seeds), "values": list(s.values), "trials": s.n_trials} for s in summaries]
        _log_json(client, self.parent_run_id, rows, f"groups/{task}.json")
        configs = [r.config.to_dict() | {"trial_id": r.trial_id, "status": r.status} for r in records]
        _log_json(client, self.parent_run_id, configs, f"trial_configs/{task}.json")

    def finish(self, records: Iterable[TrialRecord]) -> None:
        """The task x method table as CSV and Markdown artifacts; the parent run ends."""
        records = [_redacted(r) for r in records]
        rows = method_table(summarise_groups(records))
        client, run_id = self.client, self.parent_run_id
        client.log_text(run_id, table_csv(rows), "results/table.csv")
        client.log_text(run_id, table_markdown(rows), "results/table.md")
        errored = any(r.status == "errored" for r in records)
        client.set_tag(run_id, STATUS_TAG, "errored trials" if errored else "finished")
        client.set_terminated(run_id, "FINISHED")


class TrialLogger(Callback):
    """A child run per trial: params, seed, group, per-epoch metrics (step = epoch), status and
    isotropy figures. Runs in the driver, so trials finishing together are logged one after the
    other. On resume a trial that already has a child run keeps it, and epochs it already
    logged are not logged again."""

    def __init__(self, tracker: SweepTracker, task: str) -> None:
        self.tracker = tracker
        self.task = task
        self._runs: dict[str, str] = {}
        self._logged_epochs: dict[str, int] = {}

    def _child(self, trial: Trial) -> str:
        if trial.trial_id not in self._runs:
            client = self.tracker.client
            found = _find_child(client, self.tracker, trial.trial_id)
            if found is None:
                run_id = self._create_child(client, trial)
            else:
                run_id = found.info.run_id
                client.update_run(run_id, status="RUNNING")
                history = client.get_metric_history(run_id, "epoch")
                self._logged_epochs[trial.trial_id] = max((int(m.step) for m in history), default=0)
            self._runs[trial.trial_id] = run_id
        return self._runs[trial.trial_id]

    def _create_child(self, client: MlflowClient, trial: Trial) -> str:
        cfg = _redacted_config(TrialConfig.from_dict(trial.config))
        values = cfg.to_dict()
        tr = self.tracker
        run_id = client.create_run(
            tr.experiment_id, run_name=f"{self.task}-{trial.trial_id}",
            tags={PARENT_TAG: tr.parent_run_id, TRIAL_TAG: trial.trial_id, "isobn.task": self.task,
                  SEED_TAG: str(cfg.seed), GROUP_TAG: config_group(cfg),
                  "isobn.method": cfg.cls_norm, STATUS_TAG: "running", KIND_TAG: "trial"},
        ).info.run_id
        client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in values.items()])
        _log_json(client, run_id, values, "trial_config.json")
        return run_id

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._child(trial)

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        run_id = self._child(trial)
        step = int(result.get("epoch", 0))
        if step <= self._logged_epochs.get(trial.trial_id, 0):
            return
        now = _now_ms()
        metrics = [
            Metric(k, float(v), now, step) for k, v in result.items()
            if (k in _METRIC_KEYS or k.startswith(_METRIC_PREFIXES)) and _is_number(v)
        ]
        self.tracker.client.log_batch(run_id, metrics=metrics)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.tracker.client.set_tag(self._child(trial), "isobn.retried", str(trial.run_metadata.num_failures))

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._end(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._end(trial, errored=True)

    def _end(self, trial: Trial, errored: bool) -> None:
        client, run_id = self.tracker.client, self._child(trial)
        record = record_from_result(trial.trial_id, trial.config, trial.last_result, errored)
        tags = [RunTag(STATUS_TAG, record.status)]
        if errored:
            tags.append(RunTag(ERROR_TAG, redact(_last_error_line(trial))))
        metrics = []
        if record.best_objective is not None:
            metrics = [Metric("best_dev_metric", record.best_objective, _now_ms(), record.last_epoch)]
        client.log_batch(run_id, metrics=metrics, tags=tags)
        self._log_isotropy(trial, run_id)
        client.set_terminated(run_id, _MLFLOW_STATUS[record.status])

    def _log_isotropy(self, trial: Trial, run_id: str) -> None:
        """The [CLS] isotropy figure (before / after fine-tuning) and its statistics from the
        trial's last checkpoint; the pretrained model's summary numbers as metrics at step 0."""
        from isobn_tune.training import ISOTROPY_FILE  # here: `isobn-tune report` needs no torch

        checkpoint = trial.checkpoint
        if checkpoint is None:
            return
        client = self.tracker.client
        with checkpoint.as_directory() as ckpt_dir, tempfile.TemporaryDirectory() as tmp:
            stats_file = Path(ckpt_dir) / ISOTROPY_FILE
            if not stats_file.exists():
                return
            before, after = load_stats(stats_file)
            png = plot_isotropy(before, after, Path(tmp) / "isotropy.png",
                                title=f"{self.task} {trial.trial_id}: [CLS] before / after fine-tuning")
            client.log_artifact(run_id, str(png), "isotropy")
            client.log_artifact(run_id, str(stats_file), "isotropy")
        now = _now_ms()
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in before.summary().items()])


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[Run]:
    """Every trial run of a sweep."""
    return client.search_runs(
        [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=50_000
    )


def _find_child(client: MlflowClient, tracker: SweepTracker, trial_id: str) -> Run | None:
    parent = f"tags.`{PARENT_TAG}` = '{tracker.parent_run_id}'"
    this_trial = f"tags.`{TRIAL_TAG}` = '{trial_id}'"
    found = client.search_runs([tracker.experiment_id], filter_string=f"{parent} and {this_trial}")
    return found[0] if found else None


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
        return exp.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        # Keep artifacts beside the SQLite store rather than in the current directory.
        artifact_location = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=artifact_location)


def _param_value(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _last_error_line(trial: Trial) -> str:
    """The exception line of the trial's error file (its traceback's last line)."""
    try:
        lines = [ln for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
    except (OSError, TypeError):
        return "error"
    return lines[-1][:500] if lines else "error"


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = [
    "SweepTracker", "TrialLogger", "check_tracking_uri", "child_runs", "default_tracking_uri", "redact",
    "redact_mapping", "redact_text", "redact_uri", "resolve_tracking_uri",
]
