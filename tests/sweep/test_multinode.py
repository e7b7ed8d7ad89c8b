"""A real two-node Ray cluster on this machine, driven through the CLI with ``--address``.

Each node is a ``ray start`` (1 CPU, token authentication, its own temp dir) in its own session,
so a node is killed -- or the cluster stopped -- by SIGKILLing its session, without touching any
other Ray on the machine (no ``ray stop``). Nodes on one host share an IP; trials report the Ray
node id they ran on. The nodes are started with ``ISOBN_TUNE_FAIL_AT=13@2`` (the trainable's test
hook): trials of seed 13 raise instead of reporting epoch 2, on every attempt.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    Cluster,
    experiment_state,
    kill_session,
    poll,
    resumed_after_a_kill,
    tiny_space,
    trial_results,
    trial_runs,
    two_node_cluster,
    write_yaml,
)
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from isobn_tune.sweep.trainable import FAIL_AT_ENV
from isobn_tune.tracking.names import STATUS_TAG, TRIAL_TAG
from isobn_tune.train.recipe import TrialConfig

# two Ray nodes and a sweep across them: minutes on 2 cores; `-m cluster` runs them
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

FAIL_SEED, FAIL_EPOCH = 13, 2
MAX_EPOCHS = 3
ALL_EPOCHS = list(range(1, MAX_EPOCHS + 1))
START_TIMEOUT_S = 300
POLL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def cluster(glue_dir: Path) -> Iterator[Cluster]:
    """A head node and one worker node on 127.0.0.1, 1 CPU each, token authentication."""
    env = os.environ | {FAIL_AT_ENV: f"{FAIL_SEED}@{FAIL_EPOCH}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with two_node_cluster(env) as cluster:
        yield cluster


# ----- reading what a sweep left behind -----------------------------------------------------------

def trial_seeds(task_dir: Path) -> dict[str, int]:
    return {d.name: TrialConfig.from_dict(json.loads((d / "params.json").read_text())).seed
            for d in task_dir.iterdir() if (d / "params.json").is_file()}


@dataclass
class Tracked:
    client: MlflowClient
    parent: Run
    children: dict[str, Run]  # by trial id

    def epochs(self, trial_id: str) -> list[int]:
        history = self.client.get_metric_history(self.children[trial_id].info.run_id, "epoch")
        return sorted(int(m.step) for m in history)


def tracked(sweep_dir: Path) -> Tracked:
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    client = MlflowClient(manifest["tracking_uri"])
    parent = client.get_run(manifest["parent_run_id"])
    return Tracked(client, parent, {r.data.tags[TRIAL_TAG]: r for r in trial_runs(client, parent)})


def epochs(rows: list[dict[str, Any]]) -> list[int]:
    return [row["epoch"] for row in rows]


def space_file(root: Path, glue_dir: Path, *, seeds: list[int], max_epochs: int, max_failures: int,
               max_train_examples: int = 512) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    space = tiny_space(
        glue_dir, root / "results",
        data={"glue_dir": str(glue_dir), "max_train_examples": max_train_examples, "max_dev_examples": 64,
              "max_seq_length": 32},
        grid={"cls_norm": ["none"], "lr": [1e-3], "batch_size": [16], "seeds": seeds},
        recipe={"max_epochs": max_epochs},
        run={"storage_path": str(root / "results"), "max_failures": max_failures},
    )
    return write_yaml(root / "space.yaml", space)


# ----- a sweep over both nodes --------------------------------------------------------------------

@dataclass
class Sweep:
    task_dir: Path
    proc: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def two_node_sweep(cluster: Cluster, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """4 trials of 3 epochs at 1 CPU each: two run at a time, one per node (trials of a few
    seconds each, so the node whose trial actor starts last still gets work)."""
    root = tmp_path_factory.mktemp("two-node")
    space = space_file(root, glue_dir, seeds=[1, 2, 3, 4], max_epochs=MAX_EPOCHS, max_failures=1)
    proc = cluster.cli("run", str(space), "--address", cluster.address, "--name", "sweep")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Sweep(root / "results" / "sweep" / "rte", proc)


def test_trials_ran_on_both_nodes(cluster: Cluster, two_node_sweep: Sweep) -> None:
    node_ids = {row["node_id"] for rows in trial_results(two_node_sweep.task_dir).values() for row in rows}
    assert node_ids == {cluster.head.node_id, cluster.nodes[1].node_id}


def test_every_trial_reported_every_epoch_once(two_node_sweep: Sweep) -> None:
    results = trial_results(two_node_sweep.task_dir)
    assert sorted(trial_seeds(two_node_sweep.task_dir).values()) == [1, 2, 3, 4]
    assert {t: epochs(rows) for t, rows in results.items()} == {t: ALL_EPOCHS for t in results}
    assert {s["status"] for s in experiment_state(two_node_sweep.task_dir).values()} == {"TERMINATED"}


def test_every_trial_has_a_finished_mlflow_run_with_every_epoch(two_node_sweep: Sweep) -> None:
    runs = tracked(two_node_sweep.task_dir.parent)
    assert set(runs.children) == set(trial_results(two_node_sweep.task_dir))
    for trial_id, run in runs.children.items():
        assert (run.info.status, run.data.tags[STATUS_TAG]) == ("FINISHED", "finished")
        assert runs.epochs(trial_id) == ALL_EPOCHS
    assert runs.parent.info.status == "FINISHED"


# ----- token authentication -----------------------------------------------------------------------

def without_token(env: dict[str, str], home: Path) -> dict[str, str]:
    """``env`` without the cluster's token, and with a HOME holding no ``~/.ray/auth_token``."""
    kept = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"}
    return kept | {"RAY_AUTH_MODE": "disabled", "HOME": str(home)}


def test_driver_without_the_token_gets_a_one_line_error(
    cluster: Cluster, glue_dir: Path, tmp_path: Path
) -> None:
    space = space_file(tmp_path, glue_dir, seeds=[1], max_epochs=1, max_failures=0)
    env = without_token(cluster.env, tmp_path)
    proc = cluster.cli("run", str(space), "--address", cluster.address, env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: cannot connect to Ray at '{cluster.address}': ")
    assert "Authentication token is missing or incorrect" in proc.stderr and proc.stderr.count("\n") == 1
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.slow
def test_node_without_the_token_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    env = without_token(cluster.env, tmp_path)
    log = tmp_path / "ray-start.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["ray", "start", f"--address={cluster.address}", "--num-cpus=1",
                                 f"--temp-dir={tmp_path / 'ray'}", "--disable-usage-stats"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        returncode = proc.wait(timeout=START_TIMEOUT_S)
    assert not kill_session(proc.pid)
    assert returncode != 0
    assert "Authentication token is missing or incorrect" in log.read_text()


# ----- faults -------------------------------------------------------------------------------------

def finished_and_running(task_dir: Path, node_id: str | None = None) -> bool:
    """Some trial has finished, and another has reported an epoch (from ``node_id``, if given)
    and has epochs left."""
    last = {t: rows[-1] for t, rows in trial_results(task_dir).items()}
    finished = [t for t, row in last.items() if row["epoch"] == MAX_EPOCHS]
    running = [t for t, row in last.items()
               if row["epoch"] < MAX_EPOCHS and node_id in (None, row["node_id"])]
    return bool(finished and running)


@pytest.mark.slow
def test_trials_of_a_killed_node_continue_on_the_other_from_their_checkpoints(
    cluster: Cluster, glue_dir: Path, tmp_path: Path
) -> None:
    worker = cluster.workers()[-1]
    space = space_file(tmp_path, glue_dir, seeds=[1, 2, 3, 4, 5, 6], max_epochs=MAX_EPOCHS, max_failures=2)
    task_dir = tmp_path / "results" / "node-lost" / "rte"
    driver = cluster.start_cli(tmp_path / "run.log", "run", str(space), "--address", cluster.address,
                               "--name", "node-lost")
    try:
        poll(lambda: finished_and_running(task_dir, worker.node_id), "a trial running on the worker", driver)
        worker.kill()
        before = trial_results(task_dir)
        assert driver.wait(timeout=POLL_TIMEOUT_S) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        assert not kill_session(driver.pid)
        cluster.add_worker()

    after = trial_results(task_dir)
    assert len(after) == 6
    assert {t: epochs(rows) for t, rows in after.items()} == {t: ALL_EPOCHS for t in after}
    for trial_id, rows in before.items():
        assert after[trial_id][: len(rows)] == rows  # nothing reported before the kill is lost or redone
    moved = [t for t, rows in before.items()
             if rows[-1]["node_id"] == worker.node_id and len(rows) < MAX_EPOCHS]
    assert moved
    for trial_id in moved:
        assert {r["node_id"] for r in after[trial_id][len(before[trial_id]):]} == {cluster.head.node_id}
    runs = tracked(task_dir.parent)
    assert {t: runs.epochs(t) for t in after} == {t: ALL_EPOCHS for t in after}
    assert {run.data.tags[STATUS_TAG] for run in runs.children.values()} == {"finished"}
    assert all(int(runs.children[t].data.tags["isobn.retried"]) >= 1 for t in moved)


@pytest.mark.slow
def test_a_raising_trial_is_retried_then_errored_and_the_sweep_goes_on(
    cluster: Cluster, glue_dir: Path, tmp_path: Path
) -> None:
    space = space_file(tmp_path, glue_dir, seeds=[1, FAIL_SEED], max_epochs=MAX_EPOCHS, max_failures=1,
                       max_train_examples=64)
    proc = cluster.cli("run", str(space), "--address", cluster.address, "--name", "raises")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 trial(s) errored" in proc.stdout

    task_dir = tmp_path / "results" / "raises" / "rte"
    by_seed = {seed: t for t, seed in trial_seeds(task_dir).items()}
    state, results = experiment_state(task_dir), trial_results(task_dir)
    failing, healthy = by_seed[FAIL_SEED], by_seed[1]
    assert (state[failing]["status"], state[failing]["failures"]) == ("ERROR", 2)  # the run and its retry
    assert epochs(results[failing]) == list(range(1, FAIL_EPOCH))  # retries resumed after the last good epoch
    assert "injected failure" in (task_dir / failing / "error.txt").read_text()
    assert (state[healthy]["status"], epochs(results[healthy])) == ("TERMINATED", ALL_EPOCHS)

    runs = tracked(task_dir.parent)
    errored, finished = runs.children[failing], runs.children[healthy]
    assert (errored.info.status, errored.data.tags[STATUS_TAG]) == ("FAILED", "errored")
    assert "injected failure" in errored.data.tags["isobn.error"]
    assert errored.data.tags["isobn.retried"] == "1"
    assert (finished.info.status, finished.data.tags[STATUS_TAG]) == ("FINISHED", "finished")


@pytest.mark.slow
def test_killed_driver_resumes_on_the_cluster(cluster: Cluster, glue_dir: Path, tmp_path: Path) -> None:
    space = space_file(tmp_path, glue_dir, seeds=[1, 2, 3, 4, 5, 6], max_epochs=MAX_EPOCHS, max_failures=1)
    task_dir = tmp_path / "results" / "driver-lost" / "rte"
    driver = cluster.start_cli(tmp_path / "run.log", "run", str(space), "--address", cluster.address,
                               "--name", "driver-lost")
    try:
        poll(lambda: finished_and_running(task_dir), "a finished and a running trial", driver)
    finally:
        assert not kill_session(driver.pid)
    before = trial_results(task_dir)
    finished = {t for t, rows in before.items() if epochs(rows) == ALL_EPOCHS}
    started = {t for t, rows in before.items() if t not in finished}

    resumed = cluster.cli("resume", str(task_dir.parent), "--address", cluster.address)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    after = trial_results(task_dir)
    assert len(after) == 6 and all(epochs(rows)[-1] == MAX_EPOCHS for rows in after.values())
    assert {s["status"] for s in experiment_state(task_dir).values()} == {"TERMINATED"}
    for trial_id in finished:
        assert after[trial_id] == before[trial_id]
    for trial_id in started:
        kept = before[trial_id]
        assert after[trial_id][:len(kept)] == kept
        assert resumed_after_a_kill(epochs(after[trial_id]), len(kept), MAX_EPOCHS), epochs(after[trial_id])
    runs = tracked(task_dir.parent)
    assert {t: runs.epochs(t) for t in after} == {t: ALL_EPOCHS for t in after}
    assert {run.data.tags[STATUS_TAG] for run in runs.children.values()} == {"finished"}
