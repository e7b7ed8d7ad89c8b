"""Trials on GPUs, declared to a local Ray instance (``num_gpus=2``; no CUDA needed): each trial
gets the GPU ids Ray assigned, and how many trials run at once follows the GPUs per trial.

Three tiny trials at half a CPU each, so CPUs never limit them. Tune reuses a finished trial's
actor (worker process) for a waiting trial, and starts a new actor only when the resources for
one are free: the number of distinct worker pids is how many trials the resources let start
together, and every actor holds its GPU(s) for its whole life.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from isobn_tune.errors import UserError
from isobn_tune.runner import run_sweep
from isobn_tune.tracking.names import PARENT_TAG, TRIAL_TAG


def sweep_on_gpus(write_space: Callable[..., Path], gpus_per_trial: float) -> list[dict[str, Any]]:
    """Per trial: the worker pids and GPU ids of its results, and its [start, end] in ms (its
    MLflow run, opened and closed by the driver when Tune starts and ends the trial)."""
    space_file = write_space(grid={"cls_norm": ["none", "batchnorm", "isobn"], "seeds": [1]},
                             resources={"cpus_per_trial": 0.5, "gpus_per_trial": gpus_per_trial})
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_sweep(space_file, name="gpus")
    assert outcome.errored == []
    client = MlflowClient(f"sqlite:///{space_file.parent / 'mlflow.db'}")
    parent = client.get_run(outcome.parent_run_id)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`{PARENT_TAG}` = '{outcome.parent_run_id}'")
    trials = []
    for run in runs:
        trial_dir = space_file.parent / "results" / "gpus" / "rte" / run.data.tags[TRIAL_TAG]
        rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        trials.append({"placement": {(row["pid"], row["gpu_ids"]) for row in rows},
                       "span": (run.info.start_time, run.info.end_time)})
    assert len(trials) == 3
    return trials


def gpus_by_actor(trials: list[dict[str, Any]]) -> dict[int, set[str]]:
    """The GPU ids each worker process reported, over all the trials it ran."""
    gpus: dict[int, set[str]] = defaultdict(set)
    for trial in trials:
        for pid, gpu_ids in trial["placement"]:
            gpus[pid].add(gpu_ids)
    return dict(gpus)


def most_at_once(trials: list[dict[str, Any]]) -> int:
    events = sorted([(t["span"][0], 1) for t in trials] + [(t["span"][1], -1) for t in trials])
    running = peak = 0
    for _, change in events:  # at the same instant an end (-1) sorts before a start (+1)
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.slow  # GPU allocation over a whole sweep; the one-line resource errors stay in the default run
def test_whole_gpu_trials_get_distinct_gpus_and_at_most_two_run(
    ray_session: Any, write_space: Callable
) -> None:
    trials = sweep_on_gpus(write_space, gpus_per_trial=1)
    assert most_at_once(trials) <= 2
    assert sorted(gpus_by_actor(trials).values(), key=sorted) == [{"0"}, {"1"}]  # two actors, a GPU each


@pytest.mark.slow
def test_half_gpu_trials_share_gpus_and_all_start_together(ray_session: Any, write_space: Callable) -> None:
    trials = sweep_on_gpus(write_space, gpus_per_trial=0.5)
    gpus = gpus_by_actor(trials)
    assert len(gpus) == 3  # three actors at once: half a GPU each fits three on two GPUs
    assert all(len(ids) == 1 for ids in gpus.values())
    assert set().union(*gpus.values()) <= {"0", "1"}


@pytest.mark.parametrize(
    ("resources", "kind"), [({"gpus_per_trial": 3}, "GPU"), ({"cpus_per_trial": 4}, "CPU")]
)
def test_a_trial_larger_than_every_node_is_a_one_line_error_that_creates_nothing(
    ray_session: Any, write_space: Callable, tmp_path: Path, resources: dict[str, float], kind: str
) -> None:
    """Tune would keep such a trial pending for ever, only warning about it. (The session's Ray:
    2 CPUs and 2 GPUs on its one node.)"""
    space_file = write_space(resources=resources)
    with pytest.raises(UserError) as err:
        run_sweep(space_file, name="too-big")
    ((key, need),) = resources.items()
    assert str(err.value) == (f"resources.{key}: {need} {kind}s per trial, but the largest node of the "
                              "Ray cluster has 2")
    results = tmp_path / "results"
    assert not results.exists() or not any(results.iterdir())
    assert not (tmp_path / "mlflow.db").exists()
