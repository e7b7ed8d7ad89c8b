"""``isobn-tune extend``: more seeds for a finished sweep's best configurations, or the grid points of
a compatible space file, in the same sweep directory and under the same MLflow parent run, never
re-running a trial; an interrupted extension continued by ``resume``.

One module-scoped tiny sweep (random-init encoder on 64 RTE examples, none vs isobn x seeds 1-2,
2 epochs), run in-process on the session's Ray with a real SQLite store, then extended twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import (
    artifact_bytes,
    experiment_state,
    merge,
    poll,
    runs_by_trial,
    session_pids,
    start_cli,
    tiny_space,
    trial_results,
    write_yaml,
)
from mlflow.tracking import MlflowClient

from isobn_tune.cli import main
from isobn_tune.results.aggregate import best_by_method, short_label, summarise_groups
from isobn_tune.sweep.extension import parse_seeds
from isobn_tune.tracking.names import CONFIRMATION_TAG, GROUP_TAG, SEED_TAG, STATUS_TAG, group_metric
from isobn_tune.tracking.readback import records_from_mlflow
from isobn_tune.tracking.report import print_report

# A sweep extended three times and confirmed (about 50 s): slow, to keep the default run within its
# budget; the confirmatory rows' logic is in results/test_verdicts.py and results/test_budget_matching.py.
pytestmark = pytest.mark.slow

TIMEOUT_S = 300


@dataclass
class Sweep:
    root: Path  # the sweep directory
    space: dict
    tracking_uri: str
    parent_run_id: str

    def manifest(self) -> dict:
        return json.loads((self.root / "sweep.json").read_text())

    def trial_files(self) -> dict[str, str]:
        """A digest of every file in every trial directory, by path: what running a trial again
        would change."""
        return {
            str(path.relative_to(self.root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(self.root.glob("**/*_0*/**/*")) if path.is_file()
        }


@pytest.fixture(scope="module")
def sweep(ray_session, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    tmp = tmp_path_factory.mktemp("extend")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    space = tiny_space(glue_dir, tmp / "results", tracking_uri=uri)
    assert main(["run", str(write_yaml(tmp / "space.yaml", space)), "--name", "sweep"]) == 0
    root = tmp / "results" / "sweep"
    return Sweep(root, space, uri, json.loads((root / "sweep.json").read_text())["parent_run_id"])


@pytest.fixture(scope="module")
def extended_by_seeds(sweep: Sweep) -> dict[str, dict[str, str]]:
    """``extend --top 1 --seeds 2-4``: seed 2 has run already, so seeds 3 and 4 are added."""
    before = sweep.trial_files()
    assert main(["extend", str(sweep.root), "--top", "1", "--seeds", "2-4"]) == 0
    return {"before": before, "after": sweep.trial_files()}


def test_extend_adds_the_new_seeds_of_the_best_configuration_and_reruns_nothing(sweep, extended_by_seeds):
    before, after = extended_by_seeds["before"], extended_by_seeds["after"]
    assert {path: after[path] for path in before} == before  # every file of the first trials as it was
    runs = runs_by_trial(sweep.tracking_uri, sweep.parent_run_id)
    new = [run for run in runs.values() if run.data.tags[SEED_TAG] in ("3", "4")]
    assert len(runs) == 6 and len(new) == 2
    assert {run.data.tags[STATUS_TAG] for run in runs.values()} == {"finished"}
    # The two new trials are of a configuration with the best seed median over seeds 1-2 (the
    # median of two seeds is their mean; the tiny encoder's two configurations may tie).
    records = records_from_mlflow(sweep.tracking_uri, sweep.parent_run_id)
    first = [r for r in records if r.config.seed in (1, 2)]
    means = {g: sum(r.best_objective for r in first if r.group == g) / 2 for g in {r.group for r in first}}
    (extended,) = {run.data.tags[GROUP_TAG] for run in new}
    assert means[extended] == max(means.values())
    extension = sweep.manifest()["extensions"][0]
    assert extension["name"] == "extend-1" and [p["seed"] for p in extension["trials"]["rte"]] == [3, 4]
    assert len(trial_results(sweep.root / "extend-1" / "rte")) == 2


def test_the_parent_statistics_count_the_new_seeds(sweep, extended_by_seeds):
    client = MlflowClient(sweep.tracking_uri)
    parent = client.get_run(sweep.parent_run_id)
    assert parent.info.status == "FINISHED"
    records = records_from_mlflow(sweep.tracking_uri, sweep.parent_run_id)
    extended = {r.group for r in records if r.config.seed == 3}.pop()
    label = next(r for r in records if r.group == extended)
    n_seeds = parent.data.metrics[group_metric("rte", short_label(label.config), "n_seeds")]
    assert n_seeds == 4
    other = next(r for r in records if r.group != extended)
    assert parent.data.metrics[group_metric("rte", short_label(other.config), "n_seeds")] == 2


def test_extending_with_seeds_it_has_run_adds_nothing(sweep, extended_by_seeds, capsys):
    assert main(["extend", str(sweep.root), "--top", "1", "--seeds", "1-4"]) == 2
    assert "nothing to add" in capsys.readouterr().err
    assert len(sweep.manifest()["extensions"]) == 1
    assert MlflowClient(sweep.tracking_uri).get_run(sweep.parent_run_id).info.status == "FINISHED"


@pytest.mark.slow  # the same extension path as the seeds above, through a file
def test_extend_with_a_space_file_adds_its_new_grid_points(sweep, extended_by_seeds, tmp_path):
    """lr 1e-3 has run at seeds 1-2; the file adds lr 5e-4 for isobn at the same seeds."""
    grid = {"cls_norm": ["isobn"], "lr": [1e-3, 5e-4], "batch_size": [16], "seeds": [1, 2]}
    space = write_yaml(tmp_path / "more.yaml", sweep.space | {"grid": grid})
    before = sweep.trial_files()
    assert main(["extend", str(sweep.root), "--space", str(space)]) == 0
    after = sweep.trial_files()
    assert {path: after[path] for path in before} == before
    extension = sweep.manifest()["extensions"][1]
    assert [(p["lr"], p["seed"]) for p in extension["trials"]["rte"]] == [(5e-4, 1), (5e-4, 2)]
    runs = runs_by_trial(sweep.tracking_uri, sweep.parent_run_id)
    assert len(runs) == 8
    assert sorted(run.data.params["lr"] for run in runs.values() if run.data.tags[SEED_TAG] in "12"
                  and run.data.params["cls_norm"] == "isobn") == ["0.0005", "0.0005", "0.001", "0.001"]


def test_a_space_file_with_another_recipe_is_refused_in_one_line(sweep, extended_by_seeds, tmp_path, capsys):
    space = write_yaml(tmp_path / "other.yaml", merge(sweep.space, {"recipe": {"max_epochs": 3},
                                                                    "data": {"max_seq_length": 64}}))
    assert main(["extend", str(sweep.root), "--space", str(space)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "max_epochs 3 is not the sweep's 2" in err
    assert "data.max_seq_length 64 is not the sweep's 32" in err


def test_confirm_runs_each_methods_best_at_fresh_seeds_and_only_they_confirm(sweep, extended_by_seeds,
                                                                             capsys):
    """After the extensions above, seeds 1-4 selected; ``confirm --seeds 5`` runs the best
    configuration of each method (by full-budget median over those seeds) once at seed 5."""
    manifest = sweep.manifest()
    assert main(["confirm", str(sweep.root), "--seeds", "4-5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--seeds: 4 selected this sweep's configurations" in err and "\n" not in err
    assert sweep.manifest() == manifest
    selection = records_from_mlflow(sweep.tracking_uri, sweep.parent_run_id)
    best = {m: s.group for (_, m), s in best_by_method(summarise_groups(selection)).items()}

    assert main(["confirm", str(sweep.root), "--seeds", "5"]) == 0
    capsys.readouterr()  # its console
    entry = sweep.manifest()["extensions"][-1]
    assert entry["confirmation"] is True and [p["seed"] for p in entry["trials"]["rte"]] == [5, 5]
    records = records_from_mlflow(sweep.tracking_uri, sweep.parent_run_id)
    confirmed = [r for r in records if r.confirmation]
    assert {r.config.seed for r in records if r.confirmation} == {5} and len(confirmed) == 2
    assert {r.method: r.group for r in confirmed} == best and not any(r.confirmation for r in selection)
    runs = runs_by_trial(sweep.tracking_uri, sweep.parent_run_id)
    tagged = {r.data.tags[SEED_TAG]: r.data.tags.get(CONFIRMATION_TAG) for r in runs.values()}
    assert {seed: tag for seed, tag in tagged.items() if tag} == {"5": "true"}
    print_report(sweep.parent_run_id, tracking_uri=sweep.tracking_uri, fmt="json")
    report = json.loads(capsys.readouterr().out)
    assert report["confirmed_on"] == {"rte": [5]} and report["selected_on"] == {"rte": [1, 2, 3, 4]}
    (row,) = [c for c in report["comparisons"] if c["role"] == "confirmatory"]
    assert row["seeds"] == [5] and row["confirmed"] is True and row["verdict"] is None  # 1 pair: no test
    print_report(sweep.parent_run_id, tracking_uri=sweep.tracking_uri, groups=True)
    listed = capsys.readouterr().out.split("\n\n")[-1].splitlines()  # the groups after the report
    assert listed and all(("seeds [5]" in line) == line.endswith("(confirmation)") for line in listed)
    assert sum(line.endswith("(confirmation)") for line in listed) == 2
    client = MlflowClient(sweep.tracking_uri)
    figure = artifact_bytes(client, sweep.parent_run_id, "figures/seed_scores_rte.csv")
    assert all(row["seed"] != "5" for row in csv.DictReader(io.StringIO(figure.decode())))


@pytest.mark.parametrize(("args", "message"), [
    (["--top", "1"], "--top and --seeds go together"),
    (["--top", "1", "--seeds", "4-2"], "the range 4-2 is empty"),
    (["--top", "1", "--seeds", "x"], "use ranges and numbers"),
    (["--top", "0", "--seeds", "3"], "--top 0 --seeds [3]: at least one configuration"),
    (["--top", "1", "--seeds", "3", "--task", "cola"], "--task cola: not in sweep"),
])
def test_bad_extend_arguments_are_one_line_errors(sweep, args, message, capsys):
    manifest = sweep.manifest()
    assert main(["extend", str(sweep.root), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert sweep.manifest() == manifest


def test_parse_seeds() -> None:
    assert parse_seeds("6-10") == [6, 7, 8, 9, 10]
    assert parse_seeds("6,8,11") == [6, 8, 11]
    assert parse_seeds("1-3,2,7") == [1, 2, 3, 7]


@pytest.mark.slow
def test_an_interrupted_extension_is_continued_by_resume(glue_dir, tmp_path):
    """``extend`` SIGKILLed with its local Ray once its first new trial has reported; ``resume``
    finishes the extension: the trials that ended before the kill are not run again."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    space = tiny_space(glue_dir, tmp_path / "results", tracking_uri=uri, recipe={"max_epochs": 3},
                       grid={"cls_norm": ["isobn"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2]},
                       resources={"cpus_per_trial": 1, "max_concurrent_trials": 1})
    assert main(["run", str(write_yaml(tmp_path / "space.yaml", space)), "--name", "sweep",
                 "--address", "local"]) == 0
    root = tmp_path / "results" / "sweep"
    extension_dir = root / "extend-1" / "rte"
    proc = start_cli("extend", str(root), "--top", "1", "--seeds", "3-5", "--address", "local",
                     log=tmp_path / "extend.log")
    try:
        poll(lambda: any(len(rows) == 3 for rows in trial_results(extension_dir).values()),
             "the extension's first trial to finish", proc, TIMEOUT_S)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    poll(lambda: not session_pids(proc.pid), "the killed driver's Ray processes to exit", timeout_s=TIMEOUT_S)
    at_kill = trial_results(extension_dir)
    done_at_kill = {trial for trial, rows in at_kill.items() if len(rows) == 3}
    assert len(at_kill) < 3 or experiment_state(extension_dir) is not None

    assert main(["resume", str(root), "--address", "local"]) == 0
    rows = trial_results(extension_dir)
    assert len(rows) == 3 and all([row["epoch"] for row in r] == [1, 2, 3] for r in rows.values())
    for trial in done_at_kill:
        assert rows[trial] == at_kill[trial]  # not run again
    runs = runs_by_trial(uri, json.loads((root / "sweep.json").read_text())["parent_run_id"])
    assert sorted(run.data.tags[SEED_TAG] for run in runs.values()) == ["1", "2", "3", "4", "5"]
    assert {run.data.tags[STATUS_TAG] for run in runs.values()} == {"finished"}
