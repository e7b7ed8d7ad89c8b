"""Reading a sweep back from MLflow: its child runs, their records and per-epoch histories.

No Ray and no torch: ``isobn-tune report`` and the benchmarks read results through this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mlflow.entities import Metric, Run
from mlflow.tracking import MlflowClient

from isobn_tune.errors import UserError
from isobn_tune.redaction import redact_uri
from isobn_tune.results.aggregate import TrialRecord, best_history
from isobn_tune.tracking.names import (
    BEST_DEV_METRIC,
    BEST_EPOCH_METRIC,
    CONFIRMATION_TAG,
    EPOCH_METRIC,
    PARENT_TAG,
    STATUS_TAG,
    TRIAL_TAG,
)
from isobn_tune.train.metrics import BEST_OBJECTIVE
from isobn_tune.train.recipe import TrialConfig


def sweep_run(target: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """(tracking URI, parent run id) of a sweep directory, whose manifest names both, or, with
    ``tracking_uri``, of the parent run id ``target``."""
    if tracking_uri is not None:
        return tracking_uri, target
    from isobn_tune.sweep.directory import (  # pyarrow: not for a run id
        SweepDir,
        read_manifest,
        sweep_tracking_uri,
    )

    manifest = read_manifest(SweepDir.parse(target))
    return sweep_tracking_uri(manifest), manifest["parent_run_id"]


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list[Run]:
    """Every trial run of a sweep."""
    return client.search_runs(
        [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'", max_results=50_000
    )


def find_child(client: MlflowClient, experiment_id: str, parent_run_id: str, trial_id: str) -> Run | None:
    """The child run of one trial, if it has one."""
    parent = f"tags.`{PARENT_TAG}` = '{parent_run_id}'"
    this_trial = f"tags.`{TRIAL_TAG}` = '{trial_id}'"
    found = client.search_runs([experiment_id], filter_string=f"{parent} and {this_trial}")
    return found[0] if found else None


def records_from_mlflow(tracking_uri: str, parent_run_id: str) -> list[TrialRecord]:
    """Every trial of a sweep, from its child runs' params, metrics (with the best dev metric's
    per-epoch history) and status tags."""
    client = MlflowClient(tracking_uri)
    return [_record(run, client.get_metric_history(run.info.run_id, BEST_OBJECTIVE))
            for run in _trial_runs(client, tracking_uri, parent_run_id)]


def epoch_metrics(tracking_uri: str, parent_run_id: str, key: str) -> dict[str, list[Metric]]:
    """One per-epoch metric of every trial of a sweep (step = epoch, with the time it was
    logged), by trial id."""
    client = MlflowClient(tracking_uri)
    return {
        _trial_id(run): client.get_metric_history(run.info.run_id, key)
        for run in _trial_runs(client, tracking_uri, parent_run_id)
    }


def metrics_at_epoch(tracking_uri: str, parent_run_id: str, keys: Iterable[str], epoch: int | None = None
                     ) -> dict[str, dict[str, float]]:
    """Some per-epoch metrics of every trial of a sweep at one epoch, by trial id: at ``epoch``, or
    with None at the trial's best epoch (its latest ``best_epoch``), where its model was kept. A
    metric the trial did not log there is left out, and so is a trial without a best epoch."""
    client = MlflowClient(tracking_uri)
    found = {}
    for run in _trial_runs(client, tracking_uri, parent_run_id):
        step = run.data.metrics.get(BEST_EPOCH_METRIC) if epoch is None else epoch
        if step is None:
            continue
        values = {}
        for key in keys:
            at_step = [m for m in client.get_metric_history(run.info.run_id, key) if m.step == step]
            if at_step:  # a resumed trial may log an epoch twice: the last counts
                values[key] = max(at_step, key=lambda m: m.timestamp).value
        found[_trial_id(run)] = values
    return found


def _trial_runs(client: MlflowClient, tracking_uri: str, parent_run_id: str) -> list[Run]:
    try:
        parent = client.get_run(parent_run_id)
    except Exception as exc:  # MLflow raises MlflowException or RestException subclasses
        raise UserError(
            f"no MLflow run {parent_run_id!r} at {redact_uri(tracking_uri)}: {str(exc).splitlines()[0]}"
        ) from exc
    return child_runs(client, parent.info.experiment_id, parent_run_id)


def _trial_id(run: Run) -> str:
    return run.data.tags.get(TRIAL_TAG, run.info.run_id)


def _record(run: Run, history: list[Metric]) -> TrialRecord:
    params = {k: _parse(v) for k, v in run.data.params.items()}
    metrics = run.data.metrics
    best = metrics.get(BEST_DEV_METRIC, metrics.get(BEST_OBJECTIVE))
    return TrialRecord(
        trial_id=_trial_id(run),
        config=TrialConfig.from_dict(params),
        best_objective=best,
        last_epoch=int(metrics.get(EPOCH_METRIC, 0)),
        status=run.data.tags.get(STATUS_TAG, "running"),
        history=best_history((m.step, m.value) for m in sorted(history, key=lambda m: m.timestamp)),
        confirmation=run.data.tags.get(CONFIRMATION_TAG) == "true",
    )


def _parse(value: str) -> Any:
    """MLflow params are strings: turn them back into the TrialConfig field values."""
    literals = {"None": None, "True": True, "False": False}
    if value in literals:
        return literals[value]
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
