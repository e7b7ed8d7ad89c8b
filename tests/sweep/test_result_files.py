"""Tune's result files keep every row when a paused trial restarts in the same driver."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback

from isobn_tune.sweep.result_files import CsvResults, JsonResults

FILES = {JsonResults: "result.json", CsvResults: "progress.csv"}


def _restart_after_a_stale_sync(callback: object, tmp_path: Path) -> Trial:
    """Epoch 1 reported, the storage holding the file as synced before it, the trial paused at a
    checkpoint and restarted, epoch 2 reported: what a group scheduler's pause does."""
    storage = StorageContext(storage_path=str(tmp_path / "storage"), experiment_dir_name="exp",
                             trial_dir_name="trial")
    trial = Trial("__fake", config={}, storage=storage, stub=True)
    trial.init_local_path()
    callback.log_trial_start(trial)
    Path(trial.path).mkdir(parents=True)
    (Path(trial.path) / FILES.get(type(callback), "result.json")).write_text("")  # synced before epoch 1
    callback.log_trial_result(1, trial, {"epoch": 1})
    (tmp_path / "checkpoint").mkdir()
    trial.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(checkpoint=tune.Checkpoint(str(tmp_path / "checkpoint")), metrics={"epoch": 1}))
    callback.log_trial_start(trial)  # restarted from the checkpoint, by the same driver
    callback.log_trial_result(2, trial, {"epoch": 2})
    callback.log_trial_end(trial)
    return trial


@pytest.mark.parametrize("ours", [JsonResults, CsvResults])
def test_a_restarted_trial_keeps_the_rows_the_storage_copy_lacks(ours: type, ray_session,
                                                                 tmp_path: Path) -> None:
    trial = _restart_after_a_stale_sync(ours(), tmp_path)
    text = Path(trial.local_path, FILES[ours]).read_text()
    if ours is JsonResults:
        assert text.splitlines() == ['{"epoch": 1}', '{"epoch": 2}']
    else:
        assert text.splitlines() == ["epoch", "1", "2"]


def test_rays_own_json_logger_loses_the_row(ray_session, tmp_path: Path) -> None:
    """The defect the subclasses fix, still present in the installed Ray: if this fails, Ray fixed
    it and ``result_files`` can go."""
    trial = _restart_after_a_stale_sync(JsonLoggerCallback(), tmp_path)
    assert Path(trial.local_path, "result.json").read_text().splitlines() == ['{"epoch": 2}']


def test_a_fresh_driver_still_restores_from_the_storage(ray_session, tmp_path: Path) -> None:
    storage = StorageContext(storage_path=str(tmp_path / "storage"), experiment_dir_name="exp",
                             trial_dir_name="trial")
    trial = Trial("__fake", config={}, storage=storage, stub=True)
    trial.init_local_path()  # a new driver's empty staging folder
    Path(trial.path).mkdir(parents=True)
    (Path(trial.path) / "result.json").write_text('{"epoch": 1}\n')
    (tmp_path / "checkpoint").mkdir()
    trial.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(checkpoint=tune.Checkpoint(str(tmp_path / "checkpoint")), metrics={"epoch": 1}))
    callback = JsonResults()
    callback.log_trial_start(trial)
    callback.log_trial_result(2, trial, {"epoch": 2})
    callback.log_trial_end(trial)
    assert Path(trial.local_path, "result.json").read_text().splitlines() == ['{"epoch": 1}', '{"epoch": 2}']

