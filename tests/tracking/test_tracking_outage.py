"""A tracking server that goes away is never the sweep's point of failure.

The guard alone (default): a call to a server that is not there is said once on the console and
skipped, later calls are skipped without waiting on MLflow's retries, other errors still raise.

A real sweep (slow): a real ``mlflow server`` on 127.0.0.1 with a SQLite store is stopped after the
first epoch, for longer than MLflow's own HTTP retries (set short here), while trials report
epochs, end and start; it comes back on the same port and store before the sweep ends. Every
trial's per-epoch rows in Tune's results then equal its MLflow histories (none missing, none twice),
statuses and the parent's statistics are right, the console said once that tracking was
unreachable, and ``sync`` finds nothing left to log.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import mlflow_server, poll, runs_by_trial, tiny_space, trial_results, write_yaml
from mlflow.tracking import MlflowClient
from ray.tune.result import AUTO_RESULT_KEYS

from isobn_tune.results.aggregate import short_label
from isobn_tune.runner import SweepOutcome, run_sweep
from isobn_tune.tracking import outage as tracking_outage
from isobn_tune.tracking.names import STATUS_TAG, best_median_metric, group_metric
from isobn_tune.tracking.outage import Outage
from isobn_tune.tracking.sync import Synced, sync_command
from isobn_tune.tracking.ui import free_port
from isobn_tune.train.recipe import TrialConfig

UNREACHABLE = "is unreachable: the trials go on, and what they report is logged once it answers again"
QUICK_FAILURE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
MAX_EPOCHS = 4
MIN_OUTAGE_S = 20.0  # well past MLflow's retries as set here (one retry, 3 s timeout)


def test_an_unreachable_server_is_said_once_and_later_calls_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in QUICK_FAILURE.items():
        monkeypatch.setenv(name, value)
    url = f"http://127.0.0.1:{free_port()}"
    outage, calls = Outage(url), []
    assert not outage.attempt(MlflowClient(url).get_experiment, "0")
    assert (outage.behind, outage.missed) == (True, True)
    started = time.monotonic()
    assert not outage.attempt(calls.append, "skipped")
    assert not outage.catch_up(lambda: calls.append("sync"), now=True)  # still nobody there
    assert time.monotonic() - started < 2 and calls == []
    assert capsys.readouterr().out == f"MLflow at {url} {UNREACHABLE}\n"


def test_other_errors_still_end_the_sweep() -> None:
    def refused() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        Outage("http://127.0.0.1:1").attempt(refused)


# ----- real sweeps through an outage ---------------------------------------------------------------

@dataclass
class Through:
    """A sweep that ran through an outage of its tracking server, with the server back."""

    url: str
    outcome: SweepOutcome
    outage_s: float

    @property
    def sweep_dir(self) -> Path:
        return Path(self.outcome.sweep_dir.root)

    @property
    def log(self) -> str:
        return (self.sweep_dir / "sweep.log").read_text()


@contextmanager
def sweep_through_an_outage(tmp_path: Path, glue_dir: Path, data: dict[str, Any],
                            back_when: Callable[[dict[str, list[dict]], threading.Thread], bool]
                            ) -> Iterator[Through]:
    """Run a 4-trial sweep (2 at a time) on ``data`` against a real server that stops after the
    first epoch and, at least ``MIN_OUTAGE_S`` later, starts again on the same port and store once
    ``back_when(Tune's rows by trial, the sweep's thread)``; the server is up inside."""
    store, port = f"sqlite:///{tmp_path / 'server.db'}", free_port()
    url = f"http://127.0.0.1:{port}"
    space = tiny_space(glue_dir, tmp_path / "results", tracking_uri=url, recipe={"max_epochs": MAX_EPOCHS},
                       data={"glue_dir": str(glue_dir), **data})
    space_file = write_yaml(tmp_path / "space.yaml", space)
    task_dir = tmp_path / "results" / "outage" / "rte"
    outcome: list[SweepOutcome] = []
    sweep = threading.Thread(target=lambda: outcome.append(run_sweep(space_file, name="outage")))
    with mlflow_server(store, tmp_path, port=port):
        sweep.start()
        poll(lambda: any(trial_results(task_dir).values()), "a trial's first epoch")
    down_at = time.monotonic()
    poll(lambda: back_when(trial_results(task_dir), sweep), "the end of the outage", timeout_s=900)
    time.sleep(max(0.0, MIN_OUTAGE_S - (time.monotonic() - down_at)))
    with mlflow_server(store, tmp_path, port=port):
        outage_s = time.monotonic() - down_at
        sweep.join(timeout=900)
        assert outcome, "the sweep did not end"
        yield Through(url, outcome[0], outage_s)


def _per_epoch_keys(row: dict[str, Any]) -> set[str]:
    """The keys of a Tune result that a child run has at step = epoch."""
    return {k for k, v in row.items() if k not in AUTO_RESULT_KEYS and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v)}


def assert_mlflow_holds_tunes_results(through: Through) -> int:
    """Every trial's per-epoch rows in Tune's results are its MLflow histories, none missing or
    twice; statuses and the parent's statistics right. Returns how many epochs a catch-up logged
    (stamped with the time Tune received them, whole seconds)."""
    client = MlflowClient(through.url)
    tune_rows = trial_results(through.sweep_dir / "rte")
    runs = runs_by_trial(through.url, through.outcome.parent_run_id)
    assert sorted(runs) == sorted(tune_rows) and len(runs) == 4
    caught_up = 0
    for trial_id, trial_rows in tune_rows.items():
        run = runs[trial_id]
        assert [row["epoch"] for row in trial_rows] == list(range(1, MAX_EPOCHS + 1))
        for key in _per_epoch_keys(trial_rows[0]):
            history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            pretrained = [value for step, value in history if step == 0]  # isotropy before fine-tuning
            expected = [(row["epoch"], pytest.approx(row[key])) for row in trial_rows]
            assert history[len(pretrained):] == expected and len(pretrained) <= 1, (trial_id, key)
        stamps = {m.step: m.timestamp for m in client.get_metric_history(run.info.run_id, "epoch")}
        caught_up += sum(stamps[row["epoch"]] == int(row["timestamp"] * 1000) for row in trial_rows)
        assert (run.data.tags[STATUS_TAG], run.info.status) == ("finished", "FINISHED")

    parent = client.get_run(through.outcome.parent_run_id)
    assert (parent.info.status, parent.data.tags[STATUS_TAG]) == ("FINISHED", "finished")
    best: dict[str, list[float]] = {}
    for trial_rows in tune_rows.values():
        label = short_label(TrialConfig.from_dict(trial_rows[-1]["config"]))
        best.setdefault(label, []).append(trial_rows[-1]["best_objective"])
    medians = {label: statistics.median(values) for label, values in best.items()}
    for label, median in medians.items():
        assert parent.data.metrics[group_metric("rte", label, "median")] == pytest.approx(median)
    assert parent.data.metrics[best_median_metric("rte")] == pytest.approx(max(medians.values()))
    return caught_up


@pytest.fixture
def quick_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's retries short, and a catch-up tried at every callback once the server answers."""
    for name, value in QUICK_FAILURE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tracking_outage, "CATCH_UP_INTERVAL_S", 1.0)


@pytest.mark.slow
def test_tracking_catches_up_while_the_sweep_runs(ray_session, glue_dir: Path, tmp_path: Path,
                                                  quick_failures: None) -> None:
    """Down while trials report epochs, the first two trials end and the next two start; back
    while those run (long enough epochs: all of RTE's training rows)."""
    data = {"max_train_examples": 2400, "max_dev_examples": 256, "max_seq_length": 128}
    with sweep_through_an_outage(
        tmp_path, glue_dir, data,
        back_when=lambda rows, _: sum(len(r) == MAX_EPOCHS for r in rows.values()) >= 2,
    ) as through:
        assert through.outage_s > MIN_OUTAGE_S
        caught_up = assert_mlflow_holds_tunes_results(through)
        assert 0 < caught_up < 4 * MAX_EPOCHS  # some epochs logged by a catch-up, the rest as they came
        log = through.log
        assert log.count(UNREACHABLE) == 1
        assert log.count("answers again: its tracking has caught up") == 1
        assert "still unreachable" not in log
        assert sync_command(str(through.sweep_dir)) == Synced()


@pytest.mark.slow
def test_a_sweep_that_ends_during_the_outage_is_caught_up_by_sync(
    ray_session, glue_dir: Path, tmp_path: Path, quick_failures: None
) -> None:
    data = {"max_train_examples": 1024, "max_dev_examples": 256, "max_seq_length": 64}
    with sweep_through_an_outage(tmp_path, glue_dir, data, back_when=lambda _, sweep: not sweep.is_alive()
                                 ) as through:
        assert through.log.count(UNREACHABLE) == 1
        assert f"MLflow is still unreachable: `isobn-tune sync {through.sweep_dir}`" in through.log
        synced = sync_command(str(through.sweep_dir))
        assert (synced.tasks, synced.finished) == (("rte",), True) and synced.epochs > 0
        assert assert_mlflow_holds_tunes_results(through) == synced.epochs
        assert sync_command(str(through.sweep_dir)) == Synced()
