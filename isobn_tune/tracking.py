"""MLflow tracking: one parent run per sweep, one nested child run per trial.

All logging happens in the driver (a Tune callback plus the runner's summaries), so trials that
finish at the same time never write to the store concurrently: a SQLite store sees one writer.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlflow.entities import Metric, Param, RunTag
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
from isobn_tune.errors import UserError
from isobn_tune.isotropy import load_stats, plot_isotropy
from isobn_tune.recipe import TrialConfig
from isobn_tune.space import SweepSpace
from isobn_tune.training import ISOTROPY_FILE

TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "file")
PARENT_TAG = "mlflow.parentRunId"
TRIAL_TAG = "isobn.trial_id"
SWEEP_TAG = "isobn.sweep"
STATUS_TAG = "isobn.status"
_MLFLOW_STATUS = {"finished": "FINISHED", "stopped": "FINISHED", "errored": "FAILED"}
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|api[_-]?key|access[_-]?key|credential)", re.I)
_METRIC_PREFIXES = ("dev_", "iso_")
_METRIC_KEYS = ("objective", "best_objective", "best_epoch", "train_loss", "lr", "train_examples_per_s")


def default_tracking_uri(storage: str) -> str:
    """A SQLite store beside the results (``<storage>/mlflow.db``), opened by
    ``mlflow ui --backend-store-uri sqlite:///<storage>/mlflow.db``."""
    if "://" in storage:
        return f"sqlite:///{Path('mlflow.db').resolve()}"
    return f"sqlite:///{Path(storage) / 'mlflow.db'}"


def check_tracking_uri(uri: str) -> None:
    """A one-line error for a tracking URI MLflow cannot use, before any run is created."""
    scheme = urlsplit(uri).scheme
    if scheme not in TRACKING_SCHEMES:
        raise UserError(f"tracking URI {redact_uri(uri)!r}: scheme {scheme!r} is not one of {list(TRACKING_SCHEMES)}")
    if scheme == "sqlite":
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.parent.is_dir() or not os.access(db.parent, os.W_OK):
            raise UserError(f"tracking URI {uri!r}: directory {db.parent} does not exist or is not writable")
    elif scheme in ("http", "https"):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise UserError(f"tracking server {redact_uri(uri)!r} is unreachable: {type(exc).__name__}") from exc


def redact_uri(uri: str) -> str:
    """The URI without user:password."""
    parts = urlsplit(uri)
    if parts.password or parts.username:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def redact_text(text: str) -> str:
    """A space file as logged: credentials in URIs and values of secret-looking keys masked."""
    text = re.sub(r"(\w+://)[^/\s:@]+:[^/\s@]+@", r"\1***@", text)
    return "\n".join(
        re.sub(r":\s*\S.*$", ": '***'", line) if _SECRET_KEY.search(line.split(":", 1)[0]) else line
        for line in text.splitlines()
    ) + "\n"


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
        client = MlflowClient(tracking_uri)
        experiment_id = _experiment_id(client, tracking_uri, space.experiment_name)
        run = client.create_run(
            experiment_id, run_name=sweep_name,
            tags={SWEEP_TAG: sweep_name, "isobn.tasks": ",".join(space.tasks),
                  "isobn.scheduler": space.scheduler.type, "isobn.kind": "sweep"},
        )
        tracker = cls(tracking_uri, experiment_id, run.info.run_id)
        client.log_batch(run.info.run_id, params=[
            Param("model", space.model.name_or_path), Param("tasks", ",".join(space.tasks)),
            Param("scheduler", space.scheduler.type), Param("trials", str(space.trial_count())),
            Param("seeds", ",".join(map(str, space.grid.seeds))), Param("optuna", str(space.optuna is not None)),
        ])
        client.log_text(run.info.run_id, redact_text(space_text), "space.yaml")
        return tracker

    @classmethod
    def resume(cls, tracking_uri: str, parent_run_id: str) -> SweepTracker:
        client = MlflowClient(tracking_uri)
        run = client.get_run(parent_run_id)
        client.update_run(parent_run_id, status="RUNNING")
        return cls(tracking_uri, run.info.experiment_id, parent_run_id)

    def callback(self, task: str) -> TrialLogger:
        return TrialLogger(self, task)

    def log_task_summary(self, task: str, records: list[TrialRecord]) -> None:
        """Per configuration group of ``task``: median and std over seeds as parent metrics, the
        group table as an artifact, the best group as a tag."""
        summaries = summarise_groups(records)
        metrics = []
        now = _now_ms()
        for s in summaries:
            if s.values:
                label = f"{task}/{s.label}"
                metrics += [Metric(f"{label}/median", s.median, now, 0), Metric(f"{label}/std", s.std, now, 0),
                            Metric(f"{label}/n_seeds", len(s.values), now, 0)]
        best = best_groups(summaries).get(task)
        tags = [RunTag(f"isobn.best_group.{task}", best.group)] if best else []
        if best:
            metrics.append(Metric(f"{task}/best_median", best.median, now, 0))
        self.client.log_batch(self.parent_run_id, metrics=metrics, tags=tags)
        rows = [{"group": s.group, "label": s.label, "method": s.method, "median": s.median, "std": s.std,
                 "seeds": list(s.seeds), "values": list(s.values), "trials": s.n_trials} for s in summaries]
        self.client.log_dict(self.parent_run_id, rows, f"groups/{task}.json")
        self.client.log_dict(self.parent_run_id, [r.config.to_dict() | {"trial_id": r.trial_id, "status": r.status}
                                                  for r in records], f"trial_configs/{task}.json")

    def finish(self, records: Iterable[TrialRecord]) -> None:
        rows = method_table(summarise_groups(records))
        client, run_id = self.client, self.parent_run_id
        client.log_text(run_id, table_csv(rows), "results/table.csv")
        client.log_text(run_id, table_markdown(rows), "results/table.md")
        errored = any(r.status == "errored" for r in records)
        client.set_tag(run_id, STATUS_TAG, "errored trials" if errored else "finished")
        client.set_terminated(run_id, "FINISHED")

    def child_runs(self) -> list[Any]:
        return self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}'",
            max_results=50_000,
        )


class TrialLogger(Callback):
    """A child run per trial: params, seed, group, per-epoch metrics (step = epoch), status and
    isotropy figures; on resume a trial that already has a child run keeps it."""

    def __init__(self, tracker: SweepTracker, task: str) -> None:
        self.tracker = tracker
        self.task = task
        self._runs: dict[str, str] = {}

    def _child(self, trial: Trial) -> str:
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        client, tr = self.tracker.client, self.tracker
        found = client.search_runs(
            [tr.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{tr.parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial.trial_id}'",
        )
        if found:
            run_id = found[0].info.run_id
            client.update_run(run_id, status="RUNNING")
        else:
            cfg = TrialConfig.from_dict(trial.config)
            run_id = client.create_run(
                tr.experiment_id, run_name=f"{self.task}-{trial.trial_id}",
                tags={PARENT_TAG: tr.parent_run_id, TRIAL_TAG: trial.trial_id, "isobn.task": self.task,
                      "isobn.seed": str(cfg.seed), "isobn.config_group": config_group(cfg),
                      "isobn.method": cfg.cls_norm, STATUS_TAG: "running", "isobn.kind": "trial"},
            ).info.run_id
            client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in cfg.to_dict().items()])
            client.log_dict(run_id, cfg.to_dict(), "trial_config.json")
        self._runs[trial.trial_id] = run_id
        return run_id

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._child(trial)

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        step = int(result.get("epoch", 0))
        now = _now_ms()
        metrics = [
            Metric(k, float(v), now, step) for k, v in result.items()
            if (k in _METRIC_KEYS or k.startswith(_METRIC_PREFIXES)) and _is_number(v)
        ]
        self.tracker.client.log_batch(self._child(trial), metrics=metrics)

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
        if errored and trial.error_file:
            tags.append(RunTag("isobn.error", _first_error_line(trial)))
        metrics = []
        if record.best_objective is not None:
            metrics = [Metric("best_dev_metric", record.best_objective, _now_ms(), record.last_epoch)]
        client.log_batch(run_id, metrics=metrics, tags=tags)
        self._log_isotropy(trial, run_id)
        client.set_terminated(run_id, _MLFLOW_STATUS[record.status])

    def _log_isotropy(self, trial: Trial, run_id: str) -> None:
        checkpoint = trial.checkpoint
        if checkpoint is None:
            return
        with checkpoint.as_directory() as ckpt_dir, tempfile.TemporaryDirectory() as tmp:
            stats_file = Path(ckpt_dir) / ISOTROPY_FILE
            if not stats_file.exists():
                return
            before, after = load_stats(stats_file)
            png = plot_isotropy(before, after, Path(tmp) / "isotropy.png",
                                title=f"{self.task} {trial.trial_id}: [CLS] before / after fine-tuning")
            self.tracker.client.log_artifact(run_id, str(png), "isotropy")
            self.tracker.client.log_artifact(run_id, str(stats_file), "isotropy")


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


def _first_error_line(trial: Trial) -> str:
    try:
        lines = [ln for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
        return lines[-1][:500] if lines else "error"
    except OSError:
        return "error"


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["SweepTracker", "TrialLogger", "check_tracking_uri", "default_tracking_uri", "redact_text", "redact_uri"]
