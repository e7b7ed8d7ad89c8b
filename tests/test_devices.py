"""Trials on GPUs, declared to a local Ray instance (``num_gpus=2``; no CUDA needed): each trial
gets the GPU ids Ray assigned, and how many trials run at once follows the GPUs per trial."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ray
from mlflow.tracking import MlflowClient

from isobn_tune.runner import run_sweep
from isobn_tune.tracking import PARENT_TAG, TRIAL_TAG


@pytest.fixture(scope="module")
def fake_gpus() -> Any:
    """Two CPUs and two (declared) GPUs for this module; shut down afterwards."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def sweep_on_gpus(write_space: Callable[..., Path], gpus_per_trial: float) -> list[dict[str, Any]]:
    """Three tiny trials at half a CPU each (CPUs allow all at once); per trial: its GPU ids over
    every result and its [start, end] in ms (its MLflow run, opened and closed by the driver when
    Tune starts and ends the trial)."""
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
        rows = (trial_dir / "result.json").read_text().splitlines()
        gpu_ids = {json.loads(row)["gpu_ids"] for row in rows}
        trials.append({"gpu_ids": gpu_ids, "span": (run.info.start_time, run.info.end_time)})
    assert len(trials) == 3
    return trials


def most_at_once(trials: list[dict[str, Any]]) -> int:
    events = sorted([(t["span"][0], 1) for t in trials] + [(t["span"][1], -1) for t in trials],
                    key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["span"][0] < b["span"][1] and b["span"][0] < a["span"][1]


def test_whole_gpu_trials_get_distinct_gpus_and_at_most_two_run(
    fake_gpus: Any, write_space: Callable
) -> None:
    trials = sweep_on_gpus(write_space, gpus_per_trial=1)
    assert all(len(t["gpu_ids"]) == 1 and t["gpu_ids"] <= {"0", "1"} for t in trials)
    assert most_at_once(trials) == 2
    for i, a in enumerate(trials):
        for b in trials[i + 1:]:
            if overlap(a, b):
                assert a["gpu_ids"] != b["gpu_ids"]


def test_half_gpu_trials_share_gpus_and_more_run_at_once(fake_gpus: Any, write_space: Callable) -> None:
    trials = sweep_on_gpus(write_space, gpus_per_trial=0.5)
    assert all(len(t["gpu_ids"]) == 1 and t["gpu_ids"] <= {"0", "1"} for t in trials)
    assert most_at_once(trials) == 3
