"""``isobn-tune report``: the paper-style table of a sweep, read back from MLflow."""

from __future__ import annotations

import json
from typing import Any

from mlflow.entities import Metric, Run
from mlflow.tracking import MlflowClient

from isobn_tune.aggregate import TrialRecord, method_table, summarise_groups, table_markdown
from isobn_tune.errors import UserError
from isobn_tune.metrics import BEST_OBJECTIVE
from isobn_tune.recipe import TrialConfig
from isobn_tune.tracking import STATUS_TAG, TRIAL_TAG, child_runs, redact_uri


def records_from_mlflow(tracking_uri: str, parent_run_id: str) -> list[TrialRecord]:
    """Every trial of a sweep, from its child runs' params, metrics and status tags."""
    client = MlflowClient(tracking_uri)
    return [_record(run) for run in _trial_runs(client, tracking_uri, parent_run_id)]


def epoch_metrics(tracking_uri: str, parent_run_id: str, key: str) -> dict[str, list[Metric]]:
    """One per-epoch metric of every trial of a sweep (step = epoch, with the time it was
    logged), by trial id."""
    client = MlflowClient(tracking_uri)
    return {
        _trial_id(run): client.get_metric_history(run.info.run_id, key)
        for run in _trial_runs(client, tracking_uri, parent_run_id)
    }


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


def _record(run: Run) -> TrialRecord:
    params = {k: _parse(v) for k, v in run.data.params.items()}
    metrics = run.data.metrics
    best = metrics.get("best_dev_metric", metrics.get(BEST_OBJECTIVE))
    return TrialRecord(
        trial_id=_trial_id(run),
        config=TrialConfig.from_dict(params),
        best_objective=best,
        last_epoch=int(metrics.get("epoch", 0)),
        status=run.data.tags.get(STATUS_TAG, "running"),
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


def print_report(target: str, *, tracking_uri: str | None = None, groups: bool = False) -> None:
    """The table for a sweep directory (its manifest names the run) or a parent run id."""
    if tracking_uri is None:
        from isobn_tune.sweep_dir import SweepDir, read_manifest

        manifest = read_manifest(SweepDir.parse(target))
        tracking_uri, run_id = manifest["tracking_uri"], manifest["parent_run_id"]
    else:
        run_id = target
    records = records_from_mlflow(tracking_uri, run_id)
    if not records:
        raise UserError(f"run {run_id} has no trial runs yet")
    summaries = summarise_groups(records)
    print(table_markdown(method_table(summaries)), end="")
    if groups:
        print()
        for s in summaries:
            print(f"{s.task:6s} {s.label:55s} median {s.median:.4f} std {s.std:.4f} "
                  f"seeds {list(s.seeds)}")
