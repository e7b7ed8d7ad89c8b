"""Sweeps on real Ray Tune, MLflow and GLUE data: the MiniLM-L6 ASHA sweep of the quickstart's
shape, Optuna refinement, a killed and resumed driver, retried errored trials, and the one-line
errors of ``isobn-tune run`` / ``resume``."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
import yaml
from helpers import (
    TINY_MODEL,
    cli,
    error_lines,
    experiment_state,
    poll,
    run_cli,
    runs_by_trial,
    session_pids,
    start_cli,
    trial_results,
)
from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial
from ray.tune.search.optuna import OptunaSearch

from isobn_tune import console
from isobn_tune.cli import main
from isobn_tune.data.batches import TaskData
from isobn_tune.errors import UserError
from isobn_tune.results.aggregate import TrialRecord
from isobn_tune.runner import EXCESSIVE_SNAPSHOT_WARNING_ENV, SweepOutcome, run_sweep
from isobn_tune.space import load_space, trial_configs
from isobn_tune.sweep.errored_trials import ERRORED_FILE
from isobn_tune.sweep.progress import ProgressLine, format_duration, format_progress
from isobn_tune.sweep.trainable import FAIL_AT_ENV, KILL_AT_ENV
from isobn_tune.tracking.names import ERROR_TAG, STATUS_TAG
from isobn_tune.tracking.readback import epoch_metrics
from isobn_tune.train.checkpoint_files import BEST_MODEL_FILE, ISOTROPY_FILE
from isobn_tune.train.isobn_params import (
    ISOBN_EPS_RATIO,
    ISOBN_NEAR_IDENTITY,
    ISOBN_SCALE_CV,
    ISOBN_SCALE_MAX_MIN,
)
from isobn_tune.train.loop import steps_per_epoch
from isobn_tune.train.metrics import BEST_OBJECTIVE

POLL_TIMEOUT_S = 600
PROGRESS = re.compile(
    r"^\[stsb \d\d:\d\d\] (\d+) running, (\d+) finished, (\d+) errored, (\d+) paused, (\d+) pending of (\d+)"
    r"(?: \| best (-?\d\.\d{4}) \((\w+)\))?(?: \| ETA (\w+))?$"
)
ISOBN_ACTIVITY = (ISOBN_SCALE_MAX_MIN, ISOBN_SCALE_CV, ISOBN_EPS_RATIO, ISOBN_NEAR_IDENTITY)
EPOCH_METRICS = ("objective", "dev_pearson", "dev_spearman", "dev_corr", "best_objective", "best_epoch",
                 "train_loss", "lr", "train_examples_per_s", "iso_mean_abs_corr", "iso_std_cv")


# ----- helpers: reading what a sweep left on disk ------------------------------------------------

def metric_steps(tracking_uri: str, run_id: str, key: str = "objective") -> list[int]:
    return sorted(m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, key))


# ----- the ASHA sweep, run once for the module ---------------------------------------------------

@dataclass
class Sweep:
    outcome: SweepOutcome
    root: Path
    task_dir: Path
    tracking_uri: str
    stdout: str
    data_puts: list[str]
    space_file: Path


@contextlib.contextmanager
def counting_puts() -> Iterator[list[str]]:
    """Record (by task) every TaskData the driver puts into Ray's object store; the put itself is
    Ray's own."""
    puts: list[str] = []
    real_put = ray.put

    def put(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, TaskData):
            puts.append(value.task)
        return real_put(value, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray, "put", put)
        yield puts


@pytest.fixture(scope="module")
def asha_sweep(ray_session: Any, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """The tiny random-init encoder (the real MiniLM tokenizer) on 128 STS-B training and 64 dev
    examples: none vs isobn x 3 seeds under ASHA, 2 epochs, one CPU per trial. (The pretrained
    MiniLM runs in test_cli_train.py and in the slow quickstart test.)"""
    tmp = tmp_path_factory.mktemp("asha-sweep")
    space_file = tmp / "asha.yaml"
    space_file.write_text(yaml.safe_dump({
        "name": "asha",
        "model": TINY_MODEL,
        "tasks": ["stsb"],  # a correlation: the tiny model's dev scores differ, so ASHA ranks them
        "data": {"glue_dir": str(glue_dir), "max_train_examples": 128, "max_dev_examples": 64,
                 "max_seq_length": 64},
        "grid": {"cls_norm": ["none", "isobn"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2, 3]},
        "recipe": {"max_epochs": 2},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "resources": {"cpus_per_trial": 1},
        "run": {"storage_path": str(tmp / "results"), "checkpoints_to_keep": 2},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
    }))
    stdout = io.StringIO()
    with counting_puts() as puts, contextlib.redirect_stdout(stdout):
        outcome = run_sweep(space_file, name="sweep")
    root = tmp / "results" / "sweep"
    return Sweep(outcome, root, root / "stsb", f"sqlite:///{tmp / 'mlflow.db'}", stdout.getvalue(), puts,
                 space_file)


def test_sweep_runs_exactly_the_grid(asha_sweep: Sweep) -> None:
    space = load_space(asha_sweep.space_file)
    ran = [json.dumps(r.config.to_dict(), sort_keys=True) for r in asha_sweep.outcome.records]
    assert sorted(ran) == sorted(json.dumps(c, sort_keys=True) for c in trial_configs(space, "stsb"))
    assert asha_sweep.outcome.errored == []


def test_every_trial_reports_every_epoch_it_ran(asha_sweep: Sweep) -> None:
    results = trial_results(asha_sweep.task_dir)
    assert len(results) == 6
    for rows in results.values():
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1)) and len(rows) <= 2
        for row in rows:
            assert all(np.isfinite(row[k]) for k in EPOCH_METRICS)
            # STS-B's objective is the mean of the two correlations
            assert row["objective"] == row["dev_corr"]
            assert row["dev_corr"] == pytest.approx((row["dev_pearson"] + row["dev_spearman"]) / 2)
            # How much IsoBN acts, in IsoBN trials only.
            isobn = row["config"]["grid_point"]["cls_norm"] == "isobn"
            assert all(bool(k in row and np.isfinite(row[k])) is isobn for k in ISOBN_ACTIVITY)
            if isobn:
                assert row[ISOBN_SCALE_MAX_MIN] >= 1 and row[ISOBN_NEAR_IDENTITY] in (0, 1)
        best_so_far = np.maximum.accumulate([r["objective"] for r in rows])
        assert [r["best_objective"] for r in rows] == list(best_so_far)


def test_asha_stops_some_trials_at_its_rung_and_lets_others_run_every_epoch(asha_sweep: Sweep) -> None:
    records = {r.trial_id: r for r in asha_sweep.outcome.records}
    last_epochs = {tid: rows[-1]["epoch"] for tid, rows in trial_results(asha_sweep.task_dir).items()}
    assert sorted(set(last_epochs.values())) == [1, 2]
    assert {tid: records[tid].status for tid in last_epochs} == {
        tid: "finished" if epoch == 2 else "stopped" for tid, epoch in last_epochs.items()}


def test_trials_size_torch_threads_to_their_cpus_and_run_on_cpu(asha_sweep: Sweep) -> None:
    rows = [row for rows in trial_results(asha_sweep.task_dir).values() for row in rows]
    assert {(row["torch_threads"], row["gpu_ids"]) for row in rows} == {(1, "")}


def test_finished_trials_keep_their_checkpoints_thinned_to_the_best_model(asha_sweep: Sweep) -> None:
    """Retention keeps a trial's last epochs' checkpoints (<= checkpoints_to_keep); once the trial
    finished or ASHA stopped it, none keeps the resume state, only the newest the best model."""
    for trial_id, rows in trial_results(asha_sweep.task_dir).items():
        *older, newest = sorted((asha_sweep.task_dir / trial_id).glob("checkpoint_*"))
        assert [c.name for c in [*older, newest]] == [r["checkpoint_dir_name"] for r in rows]
        assert sorted(f.name for f in newest.iterdir()) == sorted([BEST_MODEL_FILE, ISOTROPY_FILE])
        assert [[f.name for f in c.iterdir()] for c in older] == [[ISOTROPY_FILE]] * len(older)


def test_tokenised_data_is_put_in_the_object_store_once(asha_sweep: Sweep) -> None:
    assert len(trial_results(asha_sweep.task_dir)) == 6
    assert asha_sweep.data_puts == ["stsb"]


def test_progress_line_is_printed_while_the_sweep_runs(asha_sweep: Sweep) -> None:
    lines = [m for m in map(PROGRESS.match, asha_sweep.stdout.splitlines()) if m]
    assert len(lines) >= 2  # in a pipe: the first, then at most one a minute, and the last
    assert all(int(m[6]) == 6 for m in lines)
    best = max(r.best_objective for r in asha_sweep.outcome.records)
    assert lines[-1].groups()[:5] == ("0", "6", "0", "0", "0")
    assert float(lines[-1][7]) == pytest.approx(best, abs=5e-5)


def test_mlflow_has_one_run_per_trial_with_its_epochs(asha_sweep: Sweep) -> None:
    runs = runs_by_trial(asha_sweep.tracking_uri, asha_sweep.outcome.parent_run_id)
    results = trial_results(asha_sweep.task_dir)
    records = {r.trial_id: r for r in asha_sweep.outcome.records}
    assert runs.keys() == results.keys()
    for trial_id, run in runs.items():
        epochs = [r["epoch"] for r in results[trial_id]]
        assert metric_steps(asha_sweep.tracking_uri, run.info.run_id) == epochs
        assert run.data.tags[STATUS_TAG] == records[trial_id].status and run.info.status == "FINISHED"


def test_epoch_metrics_reads_every_trials_epochs_back_from_mlflow(asha_sweep: Sweep) -> None:
    results = trial_results(asha_sweep.task_dir)
    read = epoch_metrics(asha_sweep.tracking_uri, asha_sweep.outcome.parent_run_id, "objective")
    assert read.keys() == results.keys()
    for trial_id, history in read.items():
        by_step = {m.step: m.value for m in history}
        assert by_step == pytest.approx({r["epoch"]: r["objective"] for r in results[trial_id]})
    with pytest.raises(UserError, match="no MLflow run 'nope'"):
        epoch_metrics(asha_sweep.tracking_uri, "nope", "objective")


def test_report_prints_the_median_table_of_the_sweep(
    asha_sweep: Sweep, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(asha_sweep.root)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| task | isobn | none | isobn − none |"
    cells = table[2].split(" | ")
    assert cells[0] == "| stsb"
    for method, cell in zip(("isobn", "none"), cells[1:3], strict=True):  # no stopped trial in a median
        finished = sum(r.status == "finished" and r.method == method for r in asha_sweep.outcome.records)
        assert cell.endswith(f"(n={finished})") if finished else cell == "–"
    report = "\n".join(table).split("\n\n")[0] + "\n"  # the table and the trials it leaves out
    assert report in asha_sweep.stdout  # the end-of-run table is report's
    pairs = min(int(c.split("(n=")[1].rstrip(")")) if "(n=" in c else 0 for c in cells[1:3])
    if pairs >= 6:  # a test: a verdict
        assert table[2].endswith(("A better |", "B better |", "not distinguishable from seed noise |"))
    else:  # no test: why, in the cell
        assert any(why in cells[3] for why in ("too few seeds for a test", "no seed with a score in both"))


# ----- the progress line on Tune's Trial objects ---------------------------------------------------

def trial(trial_id: str, status: str, best: float | None = None) -> Trial:
    t = Trial("fine_tune_trial", config={}, trial_id=trial_id, stub=True)
    t.set_status(status)
    if best is not None:
        t.update_last_result({BEST_OBJECTIVE: best, "epoch": 1})
    return t


def test_progress_line_counts_trials_by_state_and_names_the_best() -> None:
    trials = [trial("a_00000", Trial.RUNNING, 0.5), trial("a_00001", Trial.TERMINATED, 0.75),
              trial("a_00002", Trial.ERROR), trial("a_00003", Trial.PENDING),
              trial("a_00004", Trial.PAUSED, 0.6)]
    assert format_progress("rte", trials, 75.9) == (
        "[rte 01:15] 1 running, 1 finished, 1 errored, 1 paused, 1 pending of 5 | best 0.7500 (a_00001)")


def test_progress_line_without_results_has_no_best() -> None:
    assert format_progress("mrpc", [trial("a_00000", Trial.PENDING)], 3) == (
        "[mrpc 00:03] 0 running, 0 finished, 0 errored, 0 paused, 1 pending of 1")


def test_progress_line_counts_trials_tune_has_not_created_yet_as_pending() -> None:
    trials = [trial("a_00000", Trial.RUNNING, 0.5)]  # max_concurrent_trials 1: Tune creates one at a time
    assert format_progress("rte", trials, 0, total=4) == (
        "[rte 00:00] 1 running, 0 finished, 0 errored, 0 paused, 3 pending of 4 | best 0.5000 (a_00000)")
    assert format_progress("rte", trials, 0, total=0).endswith("0 pending of 1 | best 0.5000 (a_00000)")


def test_progress_line_in_a_pipe_is_a_new_line_at_first_then_throttled_and_at_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = ProgressLine("rte", total=3, max_epochs=4)
    trials = [trial("a_00000", Trial.RUNNING), trial("a_00001", Trial.RUNNING)]
    for t, best in zip(trials, (0.5, 0.6), strict=True):  # Tune reports before it updates last_result
        progress.on_trial_result(0, trials, t, {BEST_OBJECTIVE: best, "epoch": 1, "time_this_iter_s": 10.0})
    trials[0].set_status(Trial.TERMINATED)
    progress.on_trial_complete(0, trials, trials[0])
    progress.on_experiment_end(trials)
    lines = [line[12:] for line in capsys.readouterr().out.splitlines()]
    # Epochs left at the first line: a_00000 3, a_00001 4, the trial not created yet 4: 55 s.
    assert lines == [
        "2 running, 0 finished, 0 errored, 0 paused, 1 pending of 3 | best 0.5000 (a_00000) | ETA 55s",
        "1 running, 1 finished, 0 errored, 0 paused, 1 pending of 3 | best 0.6000 (a_00001)",  # the end
    ]
    # Epochs left after the end line's state: a_00001 3, the trial not created yet 4; 10 s each, two
    # at a time.
    assert progress.eta_s(trials) == 35.0


def test_progress_line_on_a_terminal_is_redrawn_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    console.status("[rte 00:01] first")
    monkeypatch.setattr(console, "TTY_STATUS_INTERVAL_S", 0.0)
    console.status("[rte 00:02] second")
    console.say("trial a_00000 errored: ValueError: boom")
    console.status("[rte 00:03] done", final=True)
    assert screen.getvalue() == (
        "\r\033[K[rte 00:01] first\r\033[K[rte 00:02] second"
        "\r\033[Ktrial a_00000 errored: ValueError: boom\n\r\033[K[rte 00:03] done\n"
    )


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.4, 59, 61, 3599, 3600, 7 * 3600 + 125)] == [
        "0s", "59s", "1m01s", "59m59s", "1h00m", "7h02m"]


# ----- Tune's per-trial schedulers and the recipe's patience (tiny random-init model) -------------

def expected_lr(peak: float, epoch: int, max_epochs: int, n_train: int, batch_size: int) -> float:
    """The learning rate after ``epoch`` epochs: linear warm-up over 6% of the steps, then linear
    decay to 0 (transformers' schedule), for the peak lr the trial has at that epoch."""
    per_epoch = steps_per_epoch(n_train, batch_size)
    total, step = max_epochs * per_epoch, epoch * per_epoch
    warmup = int(0.06 * total)
    return peak * (step / max(1, warmup) if step < warmup else (total - step) / max(1, total - warmup))


@pytest.mark.slow  # the pause and restart path is in the default run through the group scheduler tests
def test_pbt_exploits_and_the_schedule_follows_the_new_lr(
    ray_session: Any, write_space: Callable[..., Path], tmp_path: Path
) -> None:
    max_epochs = 3
    space_file = write_space(
        tasks=["stsb"],  # a correlation: the tiny model's dev scores differ, so PBT has a ranking
        grid={"cls_norm": ["none", "isobn"], "lr": [1e-3], "batch_size": [16], "seeds": [1]},
        recipe={"max_epochs": max_epochs},
        # 1e-3 sits between the other two: an explore step always moves a trial off it. Synchronous
        # PBT ranks both trials at every epoch, so the lower one exploits whatever the timing.
        scheduler={"type": "pbt", "perturbation_interval": 1, "synch": True,
                   "hyperparam_mutations": {"lr": [3e-4, 1e-3, 3e-3]}},
        resources={"cpus_per_trial": 0.5},
        run={"checkpoints_to_keep": 4},
    )
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_sweep(space_file, name="pbt")
    assert outcome.errored == []
    task_dir = tmp_path / "results" / "pbt" / "stsb"
    exploits = (task_dir / "pbt_global.txt").read_text().splitlines()  # Ray's own log of exploits
    assert len(exploits) >= max_epochs - 1
    rows = [row for rows in trial_results(task_dir).values() for row in rows]
    peaks = [row["config"]["grid_point"]["lr"] for row in rows]
    assert {3e-4, 3e-3} & set(peaks), "PBT never moved a trial to another lr"
    for row, peak in zip(rows, peaks, strict=True):
        assert row["lr"] == pytest.approx(expected_lr(peak, row["epoch"], max_epochs, 64, 16), rel=1e-6)


@pytest.mark.slow  # Tune's own per-trial rule; the ASHA module sweep keeps per-trial stopping
def test_median_rule_stops_trials_early_and_keeps_the_recent_checkpoints(
    ray_session: Any, write_space: Callable[..., Path], tmp_path: Path
) -> None:
    max_epochs = 4
    space_file = write_space(
        tasks=["stsb"],  # a correlation: the tiny model's dev scores differ by trial and epoch
        grid={"cls_norm": ["none", "isobn"], "lr": [3e-3, 3e-4], "batch_size": [16], "seeds": [1, 2]},
        recipe={"max_epochs": max_epochs},
        scheduler={"type": "median", "grace_period": 1, "min_samples_required": 2},
        resources={"cpus_per_trial": 0.5},
    )
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_sweep(space_file, name="median")
    task_dir = tmp_path / "results" / "median" / "stsb"
    results = trial_results(task_dir)
    status = {r.trial_id: r.status for r in outcome.records}
    ended_early = [trial_id for trial_id, rows in results.items() if rows[-1]["epoch"] < max_epochs]
    assert ended_early, "the median rule stopped no trial"
    for trial_id in results:
        assert status[trial_id] == ("stopped" if trial_id in ended_early else "finished")
    # Retention keeps the two most recent checkpoints Tune registered (run.checkpoints_to_keep: 2):
    # every older one is deleted. (A trial stopped while its worker ran ahead also leaves its next
    # epoch's unregistered checkpoint, and Ray may drop a stopped trial's last row from
    # result.json, so the checkpoints on disk are compared with themselves.)
    for trial_id, rows in results.items():
        kept = sorted(path.name for path in (task_dir / trial_id).glob("checkpoint_*"))
        last = int(kept[-1].removeprefix("checkpoint_"))
        assert last + 1 >= len(rows)
        assert kept == [f"checkpoint_{i:06d}" for i in range(last + 1 - len(kept), last + 1)]
        assert min(last + 1, 2) <= len(kept) <= 3


@pytest.mark.slow  # a recipe setting over Tune's plumbing the module sweep already covers
def test_patience_ends_a_trial_as_finished_not_stopped(
    ray_session: Any, write_space: Callable[..., Path], tmp_path: Path
) -> None:
    max_epochs, patience = 6, 1
    space_file = write_space(
        tasks=["stsb"],  # at lr 3e-3 the tiny model's dev correlation stalls within six epochs
        grid={"cls_norm": ["none"], "lr": [3e-3], "batch_size": [16], "seeds": [1, 2]},
        recipe={"max_epochs": max_epochs, "patience": patience},
        resources={"cpus_per_trial": 1},
    )
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_sweep(space_file, name="patience")
    results = trial_results(tmp_path / "results" / "patience" / "stsb")
    assert {r.trial_id: r.status for r in outcome.records} == dict.fromkeys(results, "finished")
    for rows in results.values():
        last = rows[-1]
        assert last["epoch"] < max_epochs and last["epoch"] - last["best_epoch"] == patience


# ----- Optuna refinement (tiny random-init model) ------------------------------------------------

@pytest.mark.slow  # four trials one at a time; the Optuna section's validation is in space/test_space.py
def test_optuna_refinement_runs_points_in_range_at_every_seed_judged_by_the_median(
    ray_session: Any, write_space: Callable[..., Path], tmp_path: Path
) -> None:
    space_file = write_space(
        grid={"cls_norm": ["isobn"], "seeds": [1, 2], "eps_mode": ["relative"]},
        optuna={"cls_norm": "isobn", "n_points": 2, "max_concurrent": 1, "seed": 3,
                "params": {"beta": {"low": 0.2, "high": 1.2}, "alpha": {"low": 0.85, "high": 0.99}}},
    )
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_sweep(space_file, name="optuna")
    assert outcome.errored == []
    points: dict[tuple[float, float], list[TrialRecord]] = {}
    for record in outcome.records:
        cfg = record.config
        assert 0.2 <= cfg.beta <= 1.2 and 0.85 <= cfg.alpha <= 0.99
        assert (cfg.cls_norm, cfg.lr, cfg.batch_size, cfg.eps_mode) == ("isobn", 1e-3, 16, "relative")
        points.setdefault((cfg.beta, cfg.alpha), []).append(record)
    assert len(points) == 2
    assert all(sorted(r.config.seed for r in records) == [1, 2] for records in points.values())

    searcher = OptunaSearch()  # the study as Tune saved it with the experiment
    searcher.restore_from_dir(str(tmp_path / "results" / "optuna" / "rte"))
    told = {(t.params["beta"], t.params["alpha"]): t.value for t in searcher._ot_study.trials}
    medians = {p: float(np.median([r.best_objective for r in records])) for p, records in points.items()}
    assert told == pytest.approx(medians)


# ----- interrupted sweeps: kill the driver, resume; retry errored trials -------------------------

def some_finished_some_running(task_dir: Path, max_epochs: int) -> dict[str, tuple[str, int]] | None:
    state = experiment_state(task_dir)
    if not state:
        return None
    finished = [t for t, s in state.items() if s["status"] == "TERMINATED" and s["epoch"] == max_epochs]
    running = [t for t, s in state.items() if s["status"] == "RUNNING" and 1 <= s["epoch"] < max_epochs]
    return state if finished and running else None


@pytest.mark.slow
def test_killed_sweep_resumes_without_rerunning_finished_trials(
    write_space: Callable[..., Path], tmp_path: Path
) -> None:
    max_epochs = 6
    space_file = write_space(grid={"seeds": [1, 2, 3]}, recipe={"max_epochs": max_epochs})
    task_dir = tmp_path / "results" / "killed" / "rte"
    proc = start_cli("run", str(space_file), "--name", "killed", "--address", "local",
                     log=tmp_path / "run.log")
    try:
        poll(lambda: some_finished_some_running(task_dir, max_epochs), "a finished and a running trial", proc,
             POLL_TIMEOUT_S)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    poll(lambda: not session_pids(proc.pid), "the killed driver's Ray processes to exit",
         timeout_s=POLL_TIMEOUT_S)

    before = experiment_state(task_dir)
    finished = {t for t, s in before.items() if s["status"] == "TERMINATED"}
    started = {t for t, s in before.items() if s["status"] != "TERMINATED" and s["epoch"] >= 1}
    assert finished and started
    results_before = {t: (task_dir / t / "result.json").read_text() for t in finished | started}

    resumed = cli("resume", str(task_dir.parent), "--address", "local")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    after = experiment_state(task_dir)
    assert {s["status"] for s in after.values()} == {"TERMINATED"} and len(after) == 6
    rows = trial_results(task_dir)
    for trial_id in finished:
        assert (task_dir / trial_id / "result.json").read_text() == results_before[trial_id]
    for trial_id in started:
        old = len(results_before[trial_id].splitlines())
        new_epochs = [r["epoch"] for r in rows[trial_id][old:]]
        assert 1 < new_epochs[0] <= rows[trial_id][old - 1]["epoch"] + 1  # from its checkpoint
        assert new_epochs == list(range(new_epochs[0], max_epochs + 1))
    assert all(r[-1]["epoch"] == max_epochs for r in rows.values())

    manifest = json.loads((task_dir.parent / "sweep.json").read_text())
    runs = runs_by_trial(manifest["tracking_uri"], manifest["parent_run_id"])
    for trial_id in finished:
        steps = metric_steps(manifest["tracking_uri"], runs[trial_id].info.run_id)
        assert steps == list(range(1, max_epochs + 1))
    assert {run.data.tags[STATUS_TAG] for run in runs.values()} == {"finished"}


def broken_model_copy(folder: Path, minilm_path: Path) -> Path:
    """MiniLM's tokenizer and config (no weights) with an unknown activation: the driver loads the
    tokenizer fine, every trial fails building its encoder."""
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        (folder / name).write_bytes((minilm_path / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"hidden_act": "no-such-activation"}))
    return folder


@pytest.mark.slow  # the killed-worker test (slow) covers --retry-errored as well
def test_errored_trials_are_retried_only_on_request(
    ray_session: Any, write_space: Callable[..., Path], minilm_path: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_dir = broken_model_copy(tmp_path / "model", minilm_path)
    space_file = write_space(model={"name_or_path": str(model_dir)}, grid={"seeds": [1]},
                             run={"max_failures": 0})
    root = tmp_path / "results" / "retry"
    assert main(["run", str(space_file), "--name", "retry"]) == 1
    errors = {d.name: (d / "error.txt").read_text() for d in (root / "rte").glob("*_0000?")}
    assert len(errors) == 2 and all("no-such-activation" in e for e in errors.values())
    hint = f"2 trial(s) errored; retry them with `isobn-tune resume {root} --retry-errored`"
    assert hint in capsys.readouterr().out

    assert main(["resume", str(root)]) == 1
    errors_now = {d.name: (d / "error.txt").read_text() for d in (root / "rte").glob("*_0000?")}
    assert errors_now == errors  # not re-run

    (model_dir / "config.json").write_bytes((minilm_path / "config.json").read_bytes())  # the cause is fixed
    assert main(["resume", str(root), "--retry-errored"]) == 0
    state = experiment_state(root / "rte")
    assert {t: (s["status"], s["epoch"]) for t, s in state.items()} == {t: ("TERMINATED", 2) for t in errors}


@pytest.mark.slow  # three sweeps; the default run errors a trial by an exception (test_quickstart.py)
def test_trials_errored_by_a_killed_worker_and_by_an_exception_stay_errored_and_are_named(
    ray_session: Any, write_space: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Two ways to error, in one sweep, on both attempts: seed 1's worker is SIGKILLed at epoch 2
    and seed 3 raises there (the hooks reach workers only through the environment Ray starts
    with, so `run` is a subprocess). Ray 2.60 saves the killed trial as unfinished, yet resume
    (without the hooks) leaves both errored, failed in MLflow with their reasons; only
    --retry-errored finishes them. The console names each with its cause and traceback file on
    the run and on the resume, and the end-of-run table is `report`'s, both trials named, in no
    median."""
    space_file = write_space(grid={"cls_norm": ["none"], "seeds": [1, 2, 3]}, run={"max_failures": 1})
    root = tmp_path / "results" / "killed"
    hooks = {KILL_AT_ENV: "1@2", FAIL_AT_ENV: "3@2"}
    run = run_cli("run", str(space_file), "--name", "killed", env=os.environ | hooks)
    assert run.returncode == 1, run.stdout + run.stderr
    task_dir = root / "rte"
    seeds = {t: rows[-1]["config"]["grid_point"]["seed"] for t, rows in trial_results(task_dir).items()}
    killed = next(t for t, seed in seeds.items() if seed == 1)
    raised = next(t for t, seed in seeds.items() if seed == 3)
    results_before = {t: (task_dir / t / "result.json").read_text() for t in (killed, raised)}
    for text in results_before.values():
        assert [json.loads(row)["epoch"] for row in text.splitlines()] == [1]
    causes = {killed: "worker process has died", raised: "RuntimeError: injected failure at epoch 2"}
    recorded = json.loads((root / ERRORED_FILE).read_text())
    assert list(recorded) == ["rte"] and set(recorded["rte"]) == set(causes)
    for trial, cause in causes.items():
        assert cause in recorded["rte"][trial]
    named = error_lines(run.stdout)
    assert set(named) == set(causes)
    for trial, (reason, traceback_file) in named.items():
        assert causes[trial] in reason and traceback_file.is_file() and trial in str(traceback_file)
    assert "Traceback" not in run.stdout

    report = run_cli("report", str(root))
    assert report.returncode == 0, report.stderr
    table = report.stdout.split("\n\n")[0] + "\n"  # the table and the trials it leaves out
    assert table in run.stdout
    assert "(n=1)" in table
    assert f"errored: {killed} (none seed 1, epoch 1), {raised} (none seed 3, epoch 1)" in table

    assert main(["resume", str(root)]) == 1
    out = capsys.readouterr().out
    assert "2 trial(s) errored" in out and set(error_lines(out)) == set(causes)
    state = experiment_state(task_dir)
    assert {t: s["status"] for t, s in state.items()} == {
        t: "ERROR" if t in causes else "TERMINATED" for t in seeds}
    for trial, text in results_before.items():
        assert (task_dir / trial / "result.json").read_text() == text  # not continued
    manifest = json.loads((root / "sweep.json").read_text())
    runs = runs_by_trial(manifest["tracking_uri"], manifest["parent_run_id"])
    for trial, cause in causes.items():
        assert (runs[trial].info.status, runs[trial].data.tags[STATUS_TAG]) == ("FAILED", "errored")
        assert cause in runs[trial].data.tags[ERROR_TAG]

    assert main(["resume", str(root), "--retry-errored"]) == 0
    state = experiment_state(task_dir)
    finished = {t: (state[t]["status"], state[t]["epoch"]) for t in causes}
    assert finished == {t: ("TERMINATED", 2) for t in causes}
    runs = runs_by_trial(manifest["tracking_uri"], manifest["parent_run_id"])
    for trial in causes:
        assert (runs[trial].info.status, runs[trial].data.tags[STATUS_TAG]) == ("FINISHED", "finished")
    assert json.loads((root / ERRORED_FILE).read_text()) == {}


# ----- one-line errors of run / resume ------------------------------------------------------------

def test_unreachable_address_fails_fast_with_one_line(
    write_space: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    assert main(["run", str(write_space()), "--address", "127.0.0.1:1"]) == 2
    assert time.monotonic() - start < 30  # ray.init alone would retry for many minutes
    assert capsys.readouterr().err == "error: cannot connect to Ray at '127.0.0.1:1': Connection refused\n"


def test_unwritable_storage_is_one_line(
    write_space: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["run", str(write_space()), "--storage", str(blocker / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: storage path {str(blocker / 'results')!r} is not writable")


def test_resuming_a_directory_that_is_not_a_sweep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {tmp_path} is not a sweep directory (no sweep.json); "
                   "pass the directory `isobn-tune run` printed\n")


def test_existing_sweep_name_is_refused(write_space: Callable[..., Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results" / "again").mkdir(parents=True)
    (tmp_path / "results" / "again" / "sweep.json").write_text("{}")
    assert main(["run", str(write_space()), "--name", "again"]) == 2
    assert "already exists: resume it with `isobn-tune resume" in capsys.readouterr().err


@pytest.mark.slow  # a console regression check over a whole extra sweep
def test_short_epochs_do_not_flood_the_console_with_tune_snapshot_warnings(
    ray_session: Any, write_space: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiny epochs with one checkpoint kept make Tune snapshot its experiment state after every
    epoch; by default it warns for each pair within 5 s (several for this 2-trial sweep)."""
    monkeypatch.delenv(EXCESSIVE_SNAPSHOT_WARNING_ENV, raising=False)
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    state_logger = logging.getLogger("ray.tune.execution.experiment_state")
    state_logger.addHandler(handler)
    try:
        space_file = write_space(recipe={"max_epochs": 4}, run={"checkpoints_to_keep": 2},
                                 grid={"seeds": [1]})
        outcome = run_sweep(space_file, name="quiet")
    finally:
        state_logger.removeHandler(handler)
    assert [r.last_epoch for r in outcome.records] == [4] * 2
    assert not [w for w in warnings if "snapshotting has been triggered" in w]
