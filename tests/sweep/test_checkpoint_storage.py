"""A full storage: a sweep whose storage path is a small tmpfs, room for one checkpoint of the tiny
model but not two. Epoch 2's checkpoint cannot be written: the trial errors with one line naming
the checkpoint's path and the free space, the half-written checkpoint is gone and the saved state
still points at epoch 1's; once the tmpfs is grown, ``resume --retry-errored`` continues the trial
from epoch 1's checkpoint, every epoch reported once.

A tmpfs needs ``mount`` (root, or CAP_SYS_ADMIN in a container); without it the test is skipped.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import experiment_state, runs_by_trial, trial_results

from isobn_tune.cli import main
from isobn_tune.sweep.errored_trials import ERRORED_FILE
from isobn_tune.tracking.names import ERROR_TAG, STATUS_TAG
from isobn_tune.train.checkpoint_files import CHECKPOINT_PREFIX

# The tiny encoder's checkpoint: ~12 MB of trainer state (weights, AdamW's moments) and a ~4 MB
# best model; 24 MiB holds one checkpoint and the sweep's small files, not a second checkpoint.
FULL_SIZE, ROOMY_SIZE = "24m", "256m"


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of FULL_SIZE mounted for the test (skipped where mounting is not allowed)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", f"size={FULL_SIZE}", "isobn-full", str(mount_point))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


@pytest.mark.slow  # a storage failure path over a whole extra sweep
def test_a_checkpoint_the_full_storage_refuses_errors_its_trial_and_resume_continues_it(
    ray_session: Any, write_space: Any, small_filesystem: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    space_file = write_space(grid={"cls_norm": ["none"], "seeds": [1]},
                             data={"max_train_examples": 32, "max_dev_examples": 32},
                             run={"storage_path": str(small_filesystem), "max_failures": 0})
    root = small_filesystem / "full"
    task_dir = root / "rte"
    assert main(["run", str(space_file), "--name", "full"]) == 1
    assert "1 trial(s) errored" in capsys.readouterr().out

    [trial] = trial_results(task_dir)
    error = json.loads((root / ERRORED_FILE).read_text())["rte"][trial]
    refused = task_dir / trial / f"{CHECKPOINT_PREFIX}000001"
    assert error.startswith(
        "isobn_tune.sweep.checkpoint_storage.CheckpointNotSaved: the checkpoint of epoch 2 ("
    )
    assert f"could not be written to {refused}: " in error
    assert "No space left on device" in error and " free of 25.2 MB on that filesystem" in error
    # Consistent: epoch 1 reported and its checkpoint the saved one, nothing of epoch 2's left.
    assert [row["epoch"] for row in trial_results(task_dir)[trial]] == [1]
    assert experiment_state(task_dir)[trial] == {"status": "ERROR", "failures": 1, "epoch": 1}
    assert sorted(p.name for p in (task_dir / trial).glob(f"{CHECKPOINT_PREFIX}*")) == [
        f"{CHECKPOINT_PREFIX}000000"]

    manifest = json.loads((root / "sweep.json").read_text())
    run = runs_by_trial(manifest["tracking_uri"], manifest["parent_run_id"])[trial]
    assert run.data.tags[STATUS_TAG] == "errored"
    assert f"could not be written to {refused}" in run.data.tags[ERROR_TAG]

    assert _mount("-o", f"remount,size={ROOMY_SIZE}", str(small_filesystem)).returncode == 0
    assert main(["resume", str(root), "--retry-errored"]) == 0
    assert [row["epoch"] for row in trial_results(task_dir)[trial]] == [1, 2]  # from epoch 1's checkpoint
    assert experiment_state(task_dir)[trial]["status"] == "TERMINATED"
    run = runs_by_trial(manifest["tracking_uri"], manifest["parent_run_id"])[trial]
    assert run.data.tags[STATUS_TAG] == "finished"
