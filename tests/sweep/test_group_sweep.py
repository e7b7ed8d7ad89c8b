"""A real group-ASHA sweep (``scheduler: asha_by_config``) through ``isobn-tune run``, killed with
SIGKILL to the driver's process group once the scheduler has decided a group and a trial has
ended, then finished with ``isobn-tune resume`` (in-process, on the test session's Ray).
Afterwards every seed of a kept group ran every epoch and every seed of a stopped group stopped
at the same rung, in Tune's results and in MLflow, the decisions taken before the kill still
stand, and the trials that had ended before it kept their rows byte for byte.

The same sweep at two sizes: the tiny random-init encoder (default run) and the pretrained
MiniLM-L6 (slow). 3 learning rates x 2 seeds on STS-B, whose continuous correlation makes ties
between groups unlikely; the learning rates are listed best first, so the groups decided later
fall below the earlier ones and get stopped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import TINY_MODEL, poll, saved_book, session_pids, trial_results
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from isobn_tune.cli import main
from isobn_tune.results.groups import group_key
from isobn_tune.tracking.names import STATUS_TAG, TRIAL_TAG
from isobn_tune.tracking.readback import child_runs

MAX_EPOCHS = 3
RUNGS = (1, 2)  # grace period 1, reduction factor 2, max_t 3
TIMEOUT_S = 900

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "model": TINY_MODEL,
        "data": {"max_train_examples": 32, "max_dev_examples": 32, "max_seq_length": 32},
        "lr": [1e-3, 3e-4, 1e-5],
    },
    "minilm": {
        "model": {"name_or_path": "minilm"},
        "data": {"max_train_examples": 64, "max_dev_examples": 64, "max_seq_length": 32},
        "lr": [5e-5, 1e-5, 1e-6],
    },
}


def space(size: str, glue_dir: Path, tmp: Path) -> dict[str, Any]:
    shape = SIZES[size]
    return {
        "name": f"group-{size}",
        "model": shape["model"],
        "tasks": ["stsb"],
        "data": {"glue_dir": str(glue_dir), **shape["data"]},
        "grid": {"cls_norm": ["none"], "lr": shape["lr"], "batch_size": [16], "seeds": [1, 2]},
        "recipe": {"max_epochs": MAX_EPOCHS},
        "scheduler": {"type": "asha_by_config", "grace_period": RUNGS[0], "reduction_factor": 2},
        "resources": {"cpus_per_trial": 1},
        "run": {"storage_path": str(tmp / "results"), "checkpoints_to_keep": 2, "max_failures": 0},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
    }


# ----- reading what the sweep left on disk -------------------------------------------------------

def trial_statuses(task_dir: Path) -> dict[str, str] | None:
    """Tune's saved status of each trial; None while the state file is missing or half-written."""
    files = sorted(task_dir.glob("experiment_state-*.json"))
    try:
        state = json.loads(files[-1].read_text()) if files else None
    except (OSError, json.JSONDecodeError):
        return None
    if state is None:
        return None
    trials = (json.loads(trial_json) for trial_json, _ in state["trial_data"])
    return {trial["trial_id"]: trial["status"] for trial in trials}


def last_epochs_by_group(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[int]]:
    """Group key (as the scheduler computes it) -> the last epoch of each of its seeds."""
    groups: dict[str, list[int]] = defaultdict(list)
    for trial in rows.values():
        groups[group_key(trial[-1]["config"])].append(trial[-1]["epoch"])
    return groups


# ----- driving the CLI ------------------------------------------------------------------------

def decided_with_trials_left(task_dir: Path) -> bool:
    """The saved state shows a group decision and an ended trial while some trial is still
    unfinished."""
    statuses, book = trial_statuses(task_dir), saved_book(task_dir)
    return bool(statuses and book and book.decisions and "TERMINATED" in statuses.values()
                and set(statuses.values()) != {"TERMINATED"})


EndedRows = tuple[bytes, dict[str, list[tuple[int, int, float]]]]


def ended_trial_rows(task_dir: Path, statuses: dict[str, str], client: MlflowClient, parent: Run
                     ) -> dict[str, EndedRows]:
    """Each ended (TERMINATED) trial's ``result.json`` as bytes and its MLflow child run's metric
    histories as (step, timestamp, value)."""
    ended = {tid for tid, status in statuses.items() if status == "TERMINATED"}
    runs = {run.data.tags[TRIAL_TAG]: run for run in child_runs(client, parent.info.experiment_id,
                                                                 parent.info.run_id)}
    return {tid: ((task_dir / tid / "result.json").read_bytes(),
                  {key: sorted((m.step, m.timestamp, m.value)
                               for m in client.get_metric_history(runs[tid].info.run_id, key))
                   for key in runs[tid].data.metrics})
            for tid in ended}


def run_until_decided_then_kill(space_file: Path, task_dir: Path, log: Path) -> None:
    """``isobn-tune run`` in its own session, SIGKILLed with its local Ray cluster (a crash of the
    job) once the first group decision is saved."""
    sweep = task_dir.parent
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "isobn_tune.cli", "run", str(space_file), "--storage", str(sweep.parent),
             "--name", sweep.name, "--address", "local"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        poll(lambda: decided_with_trials_left(task_dir), "a group decision", proc, TIMEOUT_S)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    poll(lambda: not session_pids(proc.pid), "the killed driver's Ray processes to exit",
         timeout_s=TIMEOUT_S)


@dataclass
class Interrupted:
    """A sweep as the kill left it and as the resume finished it."""

    statuses_at_kill: dict[str, str]
    book_at_kill: Any
    ended_at_kill: dict[str, EndedRows]  # the trials Tune had saved as ended at the kill
    ended_after: dict[str, EndedRows]  # the same trials after the resume
    resume: subprocess.CompletedProcess
    statuses: dict[str, str]
    book: Any
    rows: dict[str, list[dict[str, Any]]]
    runs: list[Run]

    def kept_and_stopped(self) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """Last epochs of each seed, for the groups the scheduler kept and those it stopped."""
        groups = last_epochs_by_group(self.rows)
        stopped = {g: ends for g, ends in groups.items() if g in self.book.stopped_at}
        kept = {g: ends for g, ends in groups.items() if g not in self.book.stopped_at}
        return kept, stopped


@pytest.fixture(
    scope="module", params=["tiny", pytest.param("minilm", marks=pytest.mark.slow)]
)
def interrupted(
    request: pytest.FixtureRequest, ray_session: Any, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Interrupted:
    tmp = tmp_path_factory.mktemp(f"group-sweep-{request.param}")
    space_file = tmp / "space.yaml"
    space_file.write_text(yaml.safe_dump(space(request.param, glue_dir, tmp), sort_keys=False))
    task_dir = tmp / "results" / "sweep" / "stsb"
    run_until_decided_then_kill(space_file, task_dir, tmp / "run.log")
    statuses_at_kill, book_at_kill = trial_statuses(task_dir), saved_book(task_dir)
    manifest = json.loads((task_dir.parent / "sweep.json").read_text())
    client = MlflowClient(manifest["tracking_uri"])
    parent = client.get_run(manifest["parent_run_id"])
    ended_at_kill = ended_trial_rows(task_dir, statuses_at_kill, client, parent)

    out, err = io.StringIO(), io.StringIO()  # resumed in-process, on the session's Ray (a restart of the job)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["resume", str(task_dir.parent)])
    resume = subprocess.CompletedProcess(["isobn-tune", "resume"], code, out.getvalue(), err.getvalue())
    runs = child_runs(client, parent.info.experiment_id, parent.info.run_id)
    return Interrupted(statuses_at_kill, book_at_kill, ended_at_kill,
                       ended_trial_rows(task_dir, statuses_at_kill, client, parent), resume,
                       trial_statuses(task_dir), saved_book(task_dir), trial_results(task_dir), runs)


# ----- the tests ---------------------------------------------------------------------------------

def test_resume_finishes_a_sweep_killed_after_a_group_decision(interrupted: Interrupted) -> None:
    assert interrupted.book_at_kill.decisions
    assert set(interrupted.statuses_at_kill.values()) != {"TERMINATED"}
    assert interrupted.resume.returncode == 0, interrupted.resume.stdout + interrupted.resume.stderr
    assert len(interrupted.statuses) == 6 and set(interrupted.statuses.values()) == {"TERMINATED"}


def test_decisions_taken_before_the_kill_stand_after_the_resume(interrupted: Interrupted) -> None:
    before, after = interrupted.book_at_kill.decisions, interrupted.book.decisions
    assert {key: after.get(key) for key in before} == before


def test_trials_ended_before_the_kill_keep_their_rows_byte_for_byte(interrupted: Interrupted) -> None:
    """The resume neither re-runs nor re-logs a trial that had ended: its Tune result file and its
    MLflow metric histories (timestamps included) are as they were at the kill."""
    assert interrupted.ended_at_kill
    for tid, (result_json, histories) in interrupted.ended_at_kill.items():
        assert interrupted.ended_after[tid][0] == result_json, f"{tid}: result.json changed by the resume"
        assert interrupted.ended_after[tid][1] == histories, f"{tid}: MLflow histories changed by the resume"


def test_every_seed_of_a_kept_group_runs_every_epoch(interrupted: Interrupted) -> None:
    kept, _ = interrupted.kept_and_stopped()
    assert kept
    assert all(ends == [MAX_EPOCHS, MAX_EPOCHS] for ends in kept.values()), kept


def test_every_seed_of_a_stopped_group_stops_at_its_group_s_rung(interrupted: Interrupted) -> None:
    _, stopped = interrupted.kept_and_stopped()
    assert stopped
    for group, ends in stopped.items():
        rung = interrupted.book.stopped_at[group]
        assert rung in RUNGS and ends == [rung, rung], (group, ends)


def test_mlflow_records_each_seed_as_its_group_ended(interrupted: Interrupted) -> None:
    kept, stopped = interrupted.kept_and_stopped()
    expected = {g: "finished" for g in kept} | {g: "stopped" for g in stopped}
    by_trial = {tid: rows[-1] for tid, rows in interrupted.rows.items()}
    assert len(interrupted.runs) == 6
    for run in interrupted.runs:
        last = by_trial[run.data.tags[TRIAL_TAG]]
        assert run.data.tags[STATUS_TAG] == expected[group_key(last["config"])]
        assert run.data.metrics["epoch"] == last["epoch"]
