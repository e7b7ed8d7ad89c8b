"""``isobn-tune sync`` on a real Tune experiment that MLflow missed entirely.

Stand-in trials (no model: each reports known numbers at once) of a real grid run in Tune with no
tracking callback, as if the tracking server had been down all along; the sweep's parent run is in
a SQLite store. Sync creates every child run and logs every epoch, status and statistic; an epoch
then deleted from the middle of a history is found and logged again alone; a second sync changes
no row of the store. The tests run in order on one sweep.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import runs_by_trial, tiny_space, trial_results, write_yaml
from mlflow.tracking import MlflowClient
from ray import cloudpickle, tune

from isobn_tune.cli import main as cli_main
from isobn_tune.results.aggregate import short_label
from isobn_tune.space import load_space
from isobn_tune.sweep.directory import SweepDir, write_manifest
from isobn_tune.sweep.errored_trials import ErroredTrialRecorder
from isobn_tune.sweep.search import build_param_space
from isobn_tune.tracking.logger import SweepTracker
from isobn_tune.tracking.names import ERROR_TAG, STATUS_TAG, SWEEP_ERRORED, group_metric
from isobn_tune.tracking.sync import Synced, sync_command
from isobn_tune.train.recipe import TrialConfig

TASK = "rte"
EPOCHS = 3
FAILING = ("isobn", 2, 3)  # this method's trial of this seed raises at this epoch


def stand_in_trial(config: dict[str, Any]) -> None:
    """Reports what a trial would, without training: known numbers per seed, method and epoch."""
    cfg = TrialConfig.from_dict(config)
    for epoch in range(1, cfg.max_epochs + 1):
        if (cfg.cls_norm, cfg.seed, epoch) == FAILING:
            raise RuntimeError("stand-in failure")
        objective = cfg.seed / 10 + epoch / 100 + (cfg.cls_norm == "isobn") / 1000
        tune.report({"epoch": epoch, "objective": objective, "best_objective": objective, "best_epoch": epoch,
                     "train_loss": 1 / epoch})


@dataclass
class Sweep:
    dir: SweepDir
    uri: str
    db: Path
    parent_run_id: str

    @property
    def rows(self) -> dict[str, list[dict[str, Any]]]:
        return trial_results(Path(self.dir.task_dir(TASK)))

    def sync(self) -> Synced:
        return sync_command(self.dir.root)


@pytest.fixture(scope="module")
def sweep(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    root = tmp_path_factory.mktemp("sync")
    db = root / "mlflow.db"
    uri = f"sqlite:///{db}"
    space_file = write_yaml(root / "space.yaml", tiny_space(root, root / "results", tracking_uri=uri,
                                                            recipe={"max_epochs": EPOCHS}))
    space = load_space(space_file)
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # trial workers cannot import a test module by name
    sweep_dir = SweepDir(str(root / "results"), "missed")
    tracker = SweepTracker.start(uri, space, sweep_dir.name, space_file.read_text())
    write_manifest(sweep_dir, {"name": sweep_dir.name, "space": space.model_dump(mode="json"),
                               "tracking_uri": uri, "parent_run_id": tracker.parent_run_id})
    tune.Tuner(
        stand_in_trial, param_space=build_param_space(space, TASK),
        # Trial directories named as the runner names them; one worker process for every trial.
        tune_config=tune.TuneConfig(trial_dirname_creator=lambda trial: trial.trial_id, reuse_actors=True),
        run_config=tune.RunConfig(name=TASK, storage_path=sweep_dir.root, callbacks=[ErroredTrialRecorder()],
                                  failure_config=tune.FailureConfig(max_failures=0), verbose=0),
    ).fit()
    cloudpickle.unregister_pickle_by_value(module)
    yield Sweep(sweep_dir, uri, db, tracker.parent_run_id)


def _histories(sweep: Sweep, key: str) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(sweep.uri)
    return {trial_id: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for trial_id, run in runs_by_trial(sweep.uri, sweep.parent_run_id).items()}


def _assert_histories_are_tunes_rows(sweep: Sweep) -> None:
    rows = sweep.rows
    for key in ("epoch", "objective", "train_loss"):
        assert _histories(sweep, key) == {
            trial_id: [(row["epoch"], pytest.approx(row[key])) for row in trial_rows]
            for trial_id, trial_rows in rows.items()
        }


def test_sync_logs_a_sweep_mlflow_missed(sweep: Sweep, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["sync", sweep.dir.root]) == 0
    assert capsys.readouterr().out == (
        "logged 11 epoch(s) and 4 trial end(s); statistics of rte logged again; the parent run ended\n"
    )
    _assert_histories_are_tunes_rows(sweep)
    runs = runs_by_trial(sweep.uri, sweep.parent_run_id).values()
    statuses = sorted((r.data.tags[STATUS_TAG], r.info.status, r.data.tags.get(ERROR_TAG, "")) for r in runs)
    errored = ("errored", "FAILED", "RuntimeError: stand-in failure")
    assert statuses == [errored, *[("finished", "FINISHED", "")] * 3]


def test_sync_logs_the_parents_statistics(sweep: Sweep) -> None:
    parent = MlflowClient(sweep.uri).get_run(sweep.parent_run_id)
    assert (parent.info.status, parent.data.tags[STATUS_TAG]) == ("FINISHED", SWEEP_ERRORED)
    best: dict[str, list[float]] = {}
    for trial_rows in sweep.rows.values():
        cfg = TrialConfig.from_dict(trial_rows[-1]["config"])
        if (cfg.cls_norm, cfg.seed) != FAILING[:2]:  # errored trials do not count
            best.setdefault(short_label(cfg), []).append(trial_rows[-1]["best_objective"])
    for label, values in best.items():
        median = statistics.median(values)
        assert parent.data.metrics[group_metric(TASK, label, "median")] == pytest.approx(median)
        assert parent.data.metrics[group_metric(TASK, label, "n_seeds")] == len(values)


def test_sync_finds_an_epoch_missing_from_the_middle_of_a_history(sweep: Sweep) -> None:
    trial_id = next(trial_id for trial_id, rows in sweep.rows.items() if len(rows) == EPOCHS)
    run = runs_by_trial(sweep.uri, sweep.parent_run_id)[trial_id]
    with closing(sqlite3.connect(sweep.db)) as db, db:
        db.execute("DELETE FROM metrics WHERE run_uuid = ? AND step = 2", (run.info.run_id,))
    assert [step for step, _ in _histories(sweep, "epoch")[trial_id]] == [1, 3]
    assert sweep.sync() == Synced(epochs=1, tasks=(TASK,), finished=True)
    _assert_histories_are_tunes_rows(sweep)


def test_a_second_sync_changes_nothing(sweep: Sweep) -> None:
    def store() -> dict[str, list[tuple]]:
        with closing(sqlite3.connect(sweep.db)) as db:
            return {table: sorted(map(repr, db.execute(f"SELECT * FROM {table}")))
                    for table in ("metrics", "latest_metrics", "tags", "params", "runs")}

    before = store()
    assert sweep.sync() == Synced()
    assert store() == before
