"""The trainable under Tune's actor reuse (issue #26): trials a group scheduler pauses restart in
whichever cached actor is free, and none of them errors for it.

Ray's ``FunctionTrainable.reset_config`` gives the previous trial's training thread
``TUNE_FUNCTION_THREAD_TIMEOUT_S`` (2 s) to end, and Tune errors the new trial when it has not.
On busy cores a trial's unwinding once took longer; here the workers get 0 s (through the
environment of the Ray that ``run`` starts, hence a subprocess), so every reuse finds the previous
thread still ending, deterministically.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import experiment_state, run_cli, trial_results

REUSE_TIMEOUT_ENV = "TUNE_FUNCTION_THREAD_TIMEOUT_S"  # read by Ray in the trial's actor
SEEDS = [1, 2, 3]
MAX_EPOCHS = 3
MIN_RESTARTS = 5
TIMEOUT_S = 300  # about 60 s; where a reset fails, Tune also never frees the trial's concurrency slot


@pytest.mark.slow  # a minute; the default run pauses and restarts trials in reused actors through
# schedulers/test_group_schedulers.py, and sweep/test_result_files.py keeps their rows
def test_trials_paused_by_a_group_scheduler_restart_in_reused_actors_without_errors(
    write_space: Callable[..., Path], tmp_path: Path
) -> None:
    """``median_by_config`` with 2 groups (fewer than the 3 it needs for a median) stops none
    and waits at epochs 1 and 2 for each group's seeds: the first two of 3 pause there, 8 pauses
    in all, with half-CPU trials and 3 at a time. Each paused trial restarts from its checkpoint
    (Tune's ``iterations_since_restore`` counts from 1 again), in an actor an earlier trial used."""
    space_file = write_space(
        grid={"seeds": SEEDS},
        recipe={"max_epochs": MAX_EPOCHS},
        scheduler={"type": "median_by_config", "grace_period": 1},
        resources={"cpus_per_trial": 0.5, "max_concurrent_trials": len(SEEDS)},
    )
    run = run_cli("run", str(space_file), "--name", "paused", env=os.environ | {REUSE_TIMEOUT_ENV: "0"},
                  timeout_s=TIMEOUT_S)

    assert run.returncode == 0, run.stdout + run.stderr
    task_dir = tmp_path / "results" / "paused" / "rte"
    assert {s["status"] for s in experiment_state(task_dir).values()} == {"TERMINATED"}
    rows = trial_results(task_dir)
    assert len(rows) == 2 * len(SEEDS)
    expected = list(range(1, MAX_EPOCHS + 1))
    assert {trial: [row["epoch"] for row in trial_rows] for trial, trial_rows in rows.items()} == {
        trial: expected for trial in rows}
    every = [row for trial_rows in rows.values() for row in trial_rows]
    restarts = [row for row in every if row["iterations_since_restore"] == 1 and row["epoch"] > 1]
    assert len(restarts) >= MIN_RESTARTS
    starts = len(rows) + len(restarts)
    assert len({row["pid"] for row in every}) < starts  # actors were reused
