"""A real race (``scheduler: race_by_config``) through ``run_sweep``: the tiny random-init encoder
on STS-B, lr 1e-3 (first) against 1e-7 (which leaves the model at its initialisation), 3 seeds
created together. The race stops a configuration with all its seeds at one epoch, each of those
seeds' child runs says why in MLflow, and the parent run lists the stops.

With 3 seeds the exact one-sided test's p-values are 1/8, 2/8, 3/8, 5/8, ...; alpha 0.5 stops a
configuration behind the incumbent on at least 2 seeds (unless its one better seed is the largest
difference), so the test does not hinge on how far apart a tiny model's seeds land.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import artifact_bytes, merge, runs_by_trial, tiny_space, trial_results, write_yaml
from mlflow.tracking import MlflowClient

from isobn_tune.results.groups import group_key
from isobn_tune.runner import run_sweep
from isobn_tune.schedulers.race_by_config import saved_race_stops
from isobn_tune.tracking.names import (
    GROUP_TAG,
    RACE_DIFF_TAG,
    RACE_EPOCH_TAG,
    RACE_INCUMBENT_TAG,
    RACE_P_VALUE_TAG,
    RACE_PAIRS_TAG,
    STATUS_TAG,
    race_artifact,
)

# A whole real sweep; the default run has the race's decisions through Tune on known curves
# (schedulers/test_group_schedulers.py) and a replayed race against the live one (sweep/test_replay_live.py).
pytestmark = pytest.mark.slow

SEEDS = [1, 2, 3]
MAX_EPOCHS = 3
RACE_TAGS = (RACE_EPOCH_TAG, RACE_INCUMBENT_TAG, RACE_DIFF_TAG, RACE_P_VALUE_TAG, RACE_PAIRS_TAG)


@pytest.fixture(scope="module")
def race_sweep(ray_session, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("race-sweep")
    space = merge(tiny_space(glue_dir, tmp / "results", tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}"), {
        "tasks": ["stsb"],
        "grid": {"cls_norm": ["none"], "lr": [1e-3, 1e-7], "seeds": SEEDS},
        "recipe": {"max_epochs": MAX_EPOCHS},
        "scheduler": {"type": "race_by_config", "min_epochs": 1, "alpha": 0.5},
        "resources": {"max_concurrent_trials": len(SEEDS)},
    })
    outcome = run_sweep(write_yaml(tmp / "space.yaml", space), name="race")
    task_dir = Path(outcome.sweep_dir.task_dir("stsb"))
    tracking_uri = space["mlflow"]["tracking_uri"]
    return outcome, saved_race_stops(task_dir), trial_results(task_dir), tracking_uri


def test_the_race_stops_a_configuration_with_all_its_seeds_at_one_epoch(race_sweep) -> None:
    outcome, stops, rows, _ = race_sweep
    assert not outcome.errored and len(rows) == 2 * len(SEEDS)
    (stopped, stop), = stops.items()
    ends = {}
    for trial in rows.values():
        ends.setdefault(group_key(trial[-1]["config"]), []).append(trial[-1]["epoch"])
    assert ends[stopped] == [stop.epoch] * len(SEEDS)
    assert [epochs for group, epochs in ends.items() if group != stopped] == [[MAX_EPOCHS] * len(SEEDS)]
    assert stop.incumbent != stopped and stop.n_pairs == len(SEEDS)
    assert stop.diff < 0 and stop.p_value <= 0.5


def test_stopped_seeds_say_in_mlflow_why_and_the_parent_lists_the_stops(race_sweep) -> None:
    outcome, stops, rows, tracking_uri = race_sweep
    (stopped, stop), = stops.items()
    runs = runs_by_trial(tracking_uri, outcome.parent_run_id)
    names = {group_key(rows[tid][-1]["config"]): run.data.tags[GROUP_TAG] for tid, run in runs.items()}
    expected = {RACE_EPOCH_TAG: f"{stop.epoch:g}", RACE_INCUMBENT_TAG: names[stop.incumbent],
                RACE_DIFF_TAG: f"{100 * stop.diff:+.2f}", RACE_P_VALUE_TAG: f"{stop.p_value:.4g}",
                RACE_PAIRS_TAG: str(len(SEEDS))}
    for tid, run in runs.items():
        tags = {key: run.data.tags[key] for key in RACE_TAGS if key in run.data.tags}
        if group_key(rows[tid][-1]["config"]) == stopped:
            assert (run.data.tags[STATUS_TAG], tags) == ("stopped", expected)
        else:
            assert (run.data.tags[STATUS_TAG], tags) == ("finished", {})

    client = MlflowClient(tracking_uri)
    listed = json.loads(artifact_bytes(client, outcome.parent_run_id, race_artifact("stsb")))
    assert listed == [{"configuration": names[stopped], "epoch": stop.epoch,
                       "incumbent": names[stop.incumbent], "diff_points": pytest.approx(100 * stop.diff),
                       "p_value": stop.p_value, "n_pairs": len(SEEDS)}]
