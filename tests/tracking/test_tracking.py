"""MLflow tracking of real sweeps, read back with ``MlflowClient``.

One module-scoped sweep does most of the work: 12 short STS-B trials of the tiny random-init
encoder at 0.25 CPU each (8 at a time on 2 CPUs, so results and completions arrive together),
under ASHA so that some trials are stopped early and others finish. STS-B's correlation metric
makes ties (which ASHA never stops) practically impossible. A second, one-trial sweep errors for
real: its model override ``type_vocab_size: 1`` leaves no embedding for the second segment of
RTE's sentence pairs.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import sqlite3
import sys
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import (
    REPO_ROOT,
    TINY_MODEL,
    artifact_bytes,
    artifact_files,
    kill_session,
    run_cli,
    runs_by_trial,
    start_cli,
    tiny_space,
    trial_runs,
    write_yaml,
)
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial
from ray.tune.result import AUTO_RESULT_KEYS

from isobn_tune.redaction import redact, redact_mapping, redact_text
from isobn_tune.results.aggregate import config_group, short_label
from isobn_tune.results.tables import NAMED_PER_STATUS
from isobn_tune.runner import SweepOutcome, run_sweep
from isobn_tune.space import effective_space_text, load_space, trial_configs
from isobn_tune.sweep.preflight import resolve_tracking_uri
from isobn_tune.tracking.logger import SweepTracker
from isobn_tune.tracking.names import EXPERIMENT_KIND_TAG, EXPERIMENT_KIND_TRAINING, NEAR_IDENTITY_TAG
from isobn_tune.tracking.readback import sweep_run
from isobn_tune.train.isobn_params import ISOBN_EPS_RATIO, ISOBN_NEAR_IDENTITY
from isobn_tune.train.isotropy import load_stats
from isobn_tune.train.recipe import TrialConfig

TASK = "stsb"
MAX_EPOCHS = 2
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = REPO_ROOT


@dataclass
class Sweep:
    """A finished sweep, its MLflow runs and Tune's own record of every trial."""

    space_file: Path
    storage: Path
    outcome: SweepOutcome
    client: MlflowClient
    parent: Run
    children: list[Run]

    def trial_dir(self, child: Run) -> Path:
        """Tune's directory of a child's trial."""
        return Path(self.outcome.sweep_dir.task_dir(child.data.tags["isobn.task"])) / _trial_id(child)

    def tune_results(self, child: Run) -> list[dict[str, Any]]:
        """The results Tune recorded for a child's trial, one per epoch."""
        lines = (self.trial_dir(child) / "result.json").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def tune_config(self, child: Run) -> TrialConfig:
        return TrialConfig.from_dict(json.loads((self.trial_dir(child) / "params.json").read_text()))

    def artifact_text(self, run: Run, path: str) -> str:
        return artifact_bytes(self.client, run.info.run_id, path).decode()


def _trial_id(run: Run) -> str:
    return run.data.tags["isobn.trial_id"]


def _run_sweep(space_file: Path, name: str, overrides: tuple[str, ...] = ()) -> Sweep:
    """Run a sweep in-process (on the module's Ray) with no MLFLOW_TRACKING_URI set."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        outcome = run_sweep(space_file, name=name, overrides=overrides)
    storage = Path(outcome.sweep_dir.storage)
    manifest = json.loads((storage / name / "sweep.json").read_text())
    client = MlflowClient(manifest["tracking_uri"])
    parent = client.get_run(outcome.parent_run_id)
    return Sweep(space_file, storage, outcome, client, parent, trial_runs(client, parent))


@pytest.fixture(scope="module")
def sweep(ray_session, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    root = tmp_path_factory.mktemp("asha")
    space = tiny_space(
        glue_dir, root / "results",
        tasks=[TASK],
        grid={"cls_norm": ["none", "isobn"], "lr": [1e-3, 1e-4], "batch_size": [16], "seeds": [1, 2, 3]},
        recipe={"max_epochs": MAX_EPOCHS + 3},  # overridden below, as on the command line
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        resources={"cpus_per_trial": 1},
    )
    return _run_sweep(write_yaml(root / "space.yaml", space), "asha", OVERRIDES)


OVERRIDES = (f"recipe.max_epochs={MAX_EPOCHS}",)


@pytest.fixture(scope="module")
def errored(ray_session, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    root = tmp_path_factory.mktemp("errored")
    model = TINY_MODEL | {"overrides": TINY_MODEL["overrides"] | {"type_vocab_size": 1}}
    space = tiny_space(glue_dir, root / "results", model=model,
                       grid={"cls_norm": ["none"], "lr": [1e-3], "batch_size": [16], "seeds": [1]})
    return _run_sweep(write_yaml(root / "space.yaml", space), "errored")


def _history(sweep: Sweep, run: Run, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in sorted(sweep.client.get_metric_history(run.info.run_id, key),
                                              key=lambda m: (m.step, m.timestamp))]


def _groups(sweep: Sweep) -> dict[str, list[Run]]:
    """The trials that ran the full budget, by configuration: those a median holds."""
    by_group: dict[str, list[Run]] = defaultdict(list)
    for child in sweep.children:
        if child.data.tags["isobn.status"] == "finished":
            by_group[child.data.tags["isobn.config_group"]].append(child)
    return by_group


def _seed_stats(runs: list[Run]) -> tuple[float, float]:
    values = [r.data.metrics["best_dev_metric"] for r in runs]
    return float(np.median(values)), float(np.std(values))


# --- where the runs go -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("cli", "file", "env", "expected"),
    [
        ("sqlite:///cli.db", "sqlite:///file.db", "sqlite:///env.db", "sqlite:///cli.db"),
        (None, "sqlite:///file.db", "sqlite:///env.db", "sqlite:///file.db"),
        (None, None, "sqlite:///env.db", "sqlite:///env.db"),
        (None, None, None, "sqlite:////data/results/mlflow.db"),
    ],
)
def test_tracking_uri_precedence(monkeypatch, cli, file, env, expected) -> None:
    """--tracking-uri > the space file's mlflow.tracking_uri > $MLFLOW_TRACKING_URI > beside the results."""
    if env:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(cli, file, "/data/results") == expected


def test_default_store_is_sqlite_beside_the_results(sweep: Sweep) -> None:
    manifest = json.loads((sweep.storage / "asha" / "sweep.json").read_text())
    assert manifest["tracking_uri"] == f"sqlite:///{sweep.storage / 'mlflow.db'}"
    assert (sweep.storage / "mlflow.db").is_file()


def test_default_store_keeps_artifacts_in_mlartifacts(sweep: Sweep) -> None:
    experiment = sweep.client.get_experiment(sweep.parent.info.experiment_id)
    assert experiment.artifact_location == (sweep.storage / "mlartifacts").as_uri()
    assert list((sweep.storage / "mlartifacts").rglob("isotropy.png"))


# --- structure ---------------------------------------------------------------------------------

def test_one_experiment_named_after_the_space_file(sweep: Sweep) -> None:
    experiment = sweep.client.get_experiment_by_name(load_space(sweep.space_file).name)
    assert experiment is not None
    assert {r.info.experiment_id for r in [sweep.parent, *sweep.children]} == {experiment.experiment_id}
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND_TRAINING  # MLflow's UI opens its runs


def test_one_parent_run_per_sweep(sweep: Sweep) -> None:
    parents = sweep.client.search_runs([sweep.parent.info.experiment_id], "tags.`isobn.kind` = 'sweep'")
    assert [p.info.run_id for p in parents] == [sweep.outcome.parent_run_id]
    assert sweep.parent.info.run_name == "asha"
    assert sweep.parent.info.status == "FINISHED"


def test_one_child_run_per_trial(sweep: Sweep) -> None:
    tune_trials = sorted(p.name for p in (sweep.storage / "asha" / TASK).iterdir() if p.is_dir())
    assert len(tune_trials) == 12
    assert sorted(_trial_id(c) for c in sweep.children) == tune_trials


def test_child_params_are_every_hyperparameter(sweep: Sweep) -> None:
    for child in sweep.children:
        cfg = sweep.tune_config(child).to_dict()
        expected = {k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v)
                    for k, v in cfg.items()}
        assert child.data.params == expected


def test_child_resolved_config_artifact(sweep: Sweep) -> None:
    for child in sweep.children:
        logged = json.loads(sweep.artifact_text(child, "trial_config.json"))
        assert logged == sweep.tune_config(child).to_dict()


def test_seed_is_param_and_tag(sweep: Sweep) -> None:
    for child in sweep.children:
        seed = str(sweep.tune_config(child).seed)
        assert child.data.params["seed"] == child.data.tags["isobn.seed"] == seed
    assert {c.data.tags["isobn.seed"] for c in sweep.children} == {"1", "2", "3"}


def test_child_runs_have_names_a_person_can_read(sweep: Sweep) -> None:
    for child in sweep.children:
        cfg = sweep.tune_config(child)
        norm = "none" if cfg.cls_norm == "none" else "isobn beta=0.5 alpha=0.95 eps=0.1"
        assert child.info.run_name == f"{TASK} · {norm} · lr {cfg.lr:g} · bs 16 · seed {cfg.seed}"
    assert "/" not in "".join(child.data.tags["isobn.config_group"] for child in sweep.children)


def test_config_group_tag_is_the_config_without_seed(sweep: Sweep) -> None:
    for child in sweep.children:
        assert child.data.tags["isobn.config_group"] == config_group(sweep.tune_config(child))
        assert "seed=" not in child.data.tags["isobn.config_group"]
    groups: dict[str, list[str]] = defaultdict(list)
    for child in sweep.children:
        groups[child.data.tags["isobn.config_group"]].append(child.data.tags["isobn.seed"])
    assert len(groups) == 4
    assert all(sorted(seeds) == ["1", "2", "3"] for seeds in groups.values())


def test_every_epoch_of_concurrent_trials_is_logged_with_step_epoch(sweep: Sweep) -> None:
    """Nothing is lost although 8 trials ran, reported and ended at the same time."""
    keys = ("objective", "dev_pearson", "dev_spearman", "train_loss", "lr", "best_objective", "best_epoch")
    for child in sweep.children:
        rows = sweep.tune_results(child)
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
        for key in keys:
            assert _history(sweep, child, key) == [(r["epoch"], pytest.approx(r[key])) for r in rows], key


def test_isotropy_summary_logged_every_epoch(sweep: Sweep) -> None:
    for child in sweep.children:
        rows = sweep.tune_results(child)
        for key in ("iso_mean_abs_corr", "iso_std_cv"):
            after_training = [(s, v) for s, v in _history(sweep, child, key) if s > 0]
            assert after_training == [(r["epoch"], pytest.approx(r[key])) for r in rows], key


def test_isotropy_before_fine_tuning_is_step_0(sweep: Sweep, tmp_path: Path) -> None:
    child = sweep.children[0]
    stats = tmp_path / "isotropy.npz"
    stats.write_bytes(artifact_bytes(sweep.client, child.info.run_id, "isotropy/isotropy.npz"))
    before, _ = load_stats(stats)
    assert _history(sweep, child, "iso_mean_abs_corr")[0] == (0, pytest.approx(before.mean_abs_corr))
    assert _history(sweep, child, "iso_std_cv")[0] == (0, pytest.approx(before.std_cv))


def test_isotropy_figure_per_trial(sweep: Sweep) -> None:
    for child in sweep.children:
        files = artifact_files(sweep.client, child.info.run_id)
        assert {"isotropy/isotropy.png", "isotropy/isotropy.npz"} <= set(files)
        assert artifact_bytes(sweep.client, child.info.run_id, "isotropy/isotropy.png").startswith(PNG_MAGIC)


def test_isotropy_benchmark_reads_each_methods_best_configuration_at_its_best_epochs(
    sweep: Sweep, tmp_path: Path
) -> None:
    """benchmarks/isotropy.py reads what the sweep logged: per method, the isotropy and IsoBN's
    activity of its best configuration at each seed's best epoch (as Tune recorded them), median
    over seeds, after the pretrained encoder's; and copies the logged figure of the median seed."""
    bench = _benchmark("isotropy")
    tracking_uri, parent_run_id = sweep_run(sweep.outcome.sweep_dir.root)
    assert parent_run_id == sweep.parent.info.run_id
    rows = bench.gather(tracking_uri, parent_run_id)
    assert [(r.task, r.method) for r in rows] == [(TASK, "pretrained"), (TASK, "isobn"), (TASK, "none")]
    pretrained, *methods = rows
    assert pretrained.medians == pytest.approx(
        {k: np.median([_history(sweep, c, k)[0][1] for c in sweep.children]) for k in bench.ISOTROPY})
    keys = (*bench.ISOTROPY, *bench.ACTIVITY)
    for row in methods:
        mine = [runs for runs in _groups(sweep).values() if runs[0].data.tags["isobn.method"] == row.method]
        best = max(mine, key=lambda runs: _seed_stats(runs)[0])
        assert set(row.trial_ids) == {_trial_id(c) for c in best}
        at_best = [results[results[-1]["best_epoch"] - 1] for results in map(sweep.tune_results, best)]
        expected = {k: np.median([r[k] for r in at_best]) for k in keys if k in at_best[0]}
        assert row.medians == pytest.approx(expected)
        assert (ISOBN_EPS_RATIO in row.medians) == (row.method == "isobn")
        flags = [r[ISOBN_NEAR_IDENTITY] for r in at_best if ISOBN_NEAR_IDENTITY in r]
        assert row.near_identity == (sum(flags) if row.method == "isobn" else None)
        figure = bench.copy_figure(tracking_uri, parent_run_id, row, tmp_path)
        assert figure.read_bytes().startswith(PNG_MAGIC)


def _benchmark(name: str) -> ModuleType:
    """A script of benchmarks/ as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_best_epoch_and_best_dev_metric(sweep: Sweep) -> None:
    for child in sweep.children:
        objective = _history(sweep, child, "objective")
        best_epoch, best = max(objective, key=lambda sv: sv[1])
        assert child.data.metrics["best_dev_metric"] == pytest.approx(best)
        assert child.data.metrics["best_epoch"] == best_epoch


def test_status_finished_or_stopped_by_scheduler(sweep: Sweep) -> None:
    statuses = {}
    for child in sweep.children:
        epochs = len(sweep.tune_results(child))
        statuses[_trial_id(child)] = child.data.tags["isobn.status"]
        assert child.data.tags["isobn.status"] == ("finished" if epochs == MAX_EPOCHS else "stopped")
        assert child.info.status == "FINISHED"
    assert set(statuses.values()) == {"finished", "stopped"}, statuses


def test_errored_trial_status(errored: Sweep) -> None:
    (child,) = errored.children
    assert child.data.tags["isobn.status"] == "errored"
    assert child.info.status == "FAILED"
    assert "index out of range" in child.data.tags["isobn.error"]


def test_parent_notes_errored_trials(errored: Sweep) -> None:
    assert errored.parent.data.tags["isobn.status"] == "errored trials"
    assert errored.parent.info.status == "FINISHED"


# --- the parent's aggregate ----------------------------------------------------------------------

def test_parent_group_median_and_std_over_seeds(sweep: Sweep) -> None:
    metrics = sweep.parent.data.metrics
    for runs in _groups(sweep).values():
        median, std = _seed_stats(runs)
        label = f"{TASK}/{short_label(sweep.tune_config(runs[0]))}"
        assert metrics[f"{label}/median"] == pytest.approx(median)
        assert metrics[f"{label}/std"] == pytest.approx(std)
        assert metrics[f"{label}/n_seeds"] == len(runs)


def test_parent_best_group(sweep: Sweep) -> None:
    groups = _groups(sweep)
    best = max(groups, key=lambda g: _seed_stats(groups[g])[0])
    assert sweep.parent.data.tags[f"isobn.best_group.{TASK}"] == best
    assert sweep.parent.data.metrics[f"{TASK}/best_median"] == pytest.approx(_seed_stats(groups[best])[0])


def _best_runs_per_method(sweep: Sweep) -> dict[str, list[Run]]:
    best: dict[str, list[Run]] = {}
    for runs in _groups(sweep).values():
        method = runs[0].data.params["cls_norm"]
        if method not in best or _seed_stats(runs)[0] > _seed_stats(best[method])[0]:
            best[method] = runs
    return best


def _best_per_method(sweep: Sweep) -> dict[str, tuple[float, float]]:
    return {method: _seed_stats(runs) for method, runs in _best_runs_per_method(sweep).items()}


def test_parent_table_csv(sweep: Sweep) -> None:
    rows = list(csv.DictReader(io.StringIO(sweep.artifact_text(sweep.parent, "results/table.csv"))))
    (best,) = [r for r in rows if r["role"] == "confirmatory"]
    runs = _best_runs_per_method(sweep)
    assert (best["task"], best["method"], best["budget_epochs"]) == (TASK, "isobn", str(MAX_EPOCHS))
    assert 0 < int(best["n_pairs"]) <= min(len(r) for r in runs.values())
    assert {r["role"] for r in rows} <= {"confirmatory", "exploratory"}


def test_parent_table_markdown(sweep: Sweep) -> None:
    table = sweep.artifact_text(sweep.parent, "results/table.md")
    header, _, row, budget, left_out = table.splitlines()
    assert header == "| task | isobn | none | isobn − none |"
    best, runs = _best_per_method(sweep), _best_runs_per_method(sweep)
    cells = [f"{100 * med:.2f} ± {100 * std:.2f} (n={len(runs[m])})"
             for m, (med, std) in sorted(best.items())]
    assert row.startswith(f"| {TASK} | {cells[0]} | {cells[1]} | ")
    assert "too few seeds for a test at α = 0.05: need ≥ 6 paired seeds" in row
    assert budget.startswith(f"Medians over the selection seeds that ran the full budget ({MAX_EPOCHS} ")
    stopped = [c for c in sweep.children if c.data.tags["isobn.status"] == "stopped"]
    assert stopped and left_out.startswith(f"{TASK}, in no median: stopped by the scheduler: ")
    if len(stopped) > NAMED_PER_STATUS:  # how many ASHA stops at its first rung depends on timing
        assert f"stopped by the scheduler: {len(stopped)} trials, at epoch 1 ({len(stopped)})" in left_out
        return
    for child in stopped:  # ASHA stopped them at its first rung
        params = child.data.params
        assert f"{_trial_id(child)} ({params['cls_norm']} seed {params['seed']}, epoch 1)" in left_out


def test_parent_has_each_figure_with_its_data(sweep: Sweep) -> None:
    files = artifact_files(sweep.client, sweep.parent.info.run_id, "figures")
    stems = ("seed_scores", "learning_curves", "budget_curves")
    assert sorted(files) == sorted(f"figures/{stem}_{TASK}.{ext}" for stem in stems for ext in ("csv", "png"))
    for stem in stems:
        png = artifact_bytes(sweep.client, sweep.parent.info.run_id, f"figures/{stem}_{TASK}.png")
        assert png.startswith(PNG_MAGIC)
    seed_csv = sweep.artifact_text(sweep.parent, f"figures/seed_scores_{TASK}.csv")
    rows = list(csv.DictReader(io.StringIO(seed_csv)))
    logged = sorted(round(child.data.metrics["best_dev_metric"], 6) for child in sweep.children
                    if child.data.tags["isobn.status"] == "finished")  # the seeds a median holds
    assert sorted(round(float(r["score"]), 6) for r in rows) == logged
    curves = list(csv.DictReader(io.StringIO(
        sweep.artifact_text(sweep.parent, f"figures/learning_curves_{TASK}.csv"))))
    assert {int(r["epoch"]) for r in curves} == {1, 2}


def test_parent_description_is_the_table_with_the_paired_comparisons(sweep: Sweep) -> None:
    description = sweep.parent.data.tags["mlflow.note.content"]
    assert description.startswith(sweep.artifact_text(sweep.parent, "results/table.md"))
    comparisons_table = description.split("| task | role | A | B |")[1]
    comparisons = [ln for ln in comparisons_table.splitlines() if ln.startswith(f"| {TASK} | ")]
    assert len(comparisons) == 2  # each isobn configuration against the best baseline
    assert f"{TASK}: selected on seeds" in description and "not confirmed" in description


def test_parent_space_file_artifact_is_the_effective_space(sweep: Sweep) -> None:
    logged = sweep.artifact_text(sweep.parent, "space.yaml")
    assert logged == redact_text(effective_space_text(sweep.space_file, OVERRIDES))
    assert load_space(sweep.space_file, OVERRIDES).recipe.max_epochs == MAX_EPOCHS
    assert yaml.safe_load(logged)["recipe"]["max_epochs"] == MAX_EPOCHS
    assert max(r.last_epoch for r in sweep.outcome.records) == MAX_EPOCHS


def test_every_finite_number_a_trial_reports_reaches_its_child_run(sweep: Sweep) -> None:
    for child in sweep.children:
        results = sweep.tune_results(child)
        reported = {k for k, v in results[-1].items() if k not in AUTO_RESULT_KEYS
                    and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}
        assert {"torch_threads", "dev_pearson", "train_loss"} <= reported
        for key in reported:
            per_epoch = [(step, value) for step, value in _history(sweep, child, key) if step >= 1]
            assert per_epoch == [(r["epoch"], pytest.approx(r[key])) for r in results], key


def test_parent_resolved_trial_configs_artifact(sweep: Sweep) -> None:
    logged = json.loads(sweep.artifact_text(sweep.parent, f"trial_configs/{TASK}.json"))
    by_trial = {entry.pop("trial_id"): entry for entry in logged}
    assert set(by_trial) == {_trial_id(c) for c in sweep.children}
    for child in sweep.children:
        entry = by_trial[_trial_id(child)]
        assert entry.pop("status") == child.data.tags["isobn.status"]
        assert entry == sweep.tune_config(child).to_dict()


# --- redaction -----------------------------------------------------------------------------------

def test_redact_masks_uri_credentials_env_secrets_and_token_shapes(monkeypatch) -> None:
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "s3cr3t-Pa55")
    text = "http://alice:pw@host:5000 s3cr3t-Pa55 hf_abcdefghijklmnopqrstuvwx AKIAABCDEFGHIJKLMNOP"
    assert redact(text) == "http://***@host:5000 *** *** ***"


def test_redact_masks_secret_looking_query_values() -> None:
    text = "s3://b/p?access_key=AK1&secret_key=a/b+c&region=eu postgresql://h/db?password=x&sslmode=on"
    assert redact(text) == "s3://b/p?access_key=***&secret_key=***&region=eu postgresql://h/db?password=***&sslmode=on"


def test_redact_leaves_flag_values_alone(monkeypatch) -> None:
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("SOME_TOKEN_MODE", "disabled")
    text = '{"random_init": false, "mode": "disabled"}'
    assert redact(text) == text


def test_redact_mapping_masks_secret_keys_nested() -> None:
    config = {"lr": 1e-3, "model_overrides": {"token": "abc", "hidden_size": 32}}
    assert redact_mapping(config) == {"lr": 1e-3, "model_overrides": {"token": "***", "hidden_size": 32}}


def test_redact_text_masks_secret_keys_and_comments() -> None:
    text = "name: tiny\n# export HF_TOKEN=abc\napi_key: xyz\n"
    assert redact_text(text) == "name: tiny\n# export HF_TOKEN: '***'\napi_key: '***'\n"


# --- resume ----------------------------------------------------------------------------------------

FINISHED_TRIALS = (
    "SELECT count(*) FROM tags s JOIN tags k ON s.run_uuid = k.run_uuid WHERE s.key = 'isobn.status' "
    "AND s.value = 'finished' AND k.key = 'isobn.kind' AND k.value = 'trial'"
)


def _finished_trials(db: Path) -> int:
    """Child runs tagged finished, read from the SQLite file without creating an MLflow store."""
    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            return con.execute(FINISHED_TRIALS).fetchone()[0]
    except sqlite3.Error:  # tables not created yet
        return 0


@pytest.mark.slow
def test_resume_continues_the_same_parent_and_children(glue_dir: Path, tmp_path: Path) -> None:
    """SIGKILL `isobn-tune run` (and its Ray) once a trial has finished, `isobn-tune resume`:
    still one parent run, one child per trial, and every epoch of every trial logged once."""
    grid = {"cls_norm": ["none", "isobn"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2, 3]}
    content = tiny_space(glue_dir, tmp_path / "results", recipe={"max_epochs": 3}, grid=grid)
    space = write_yaml(tmp_path / "space.yaml", content)
    db = tmp_path / "results" / "mlflow.db"
    proc = start_cli("run", str(space), "--name", "kr", log=tmp_path / "run.log")
    deadline = time.monotonic() + 900
    while _finished_trials(db) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    assert not kill_session(proc.pid)
    proc.wait(timeout=30)
    assert 1 <= _finished_trials(db) < 6, "the sweep was not interrupted after a trial finished"

    result = run_cli("resume", str(tmp_path / "results" / "kr"))
    assert result.returncode == 0, result.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{db}")
    experiment_id = client.get_experiment_by_name("tiny").experiment_id
    parents = client.search_runs([experiment_id], "tags.`isobn.kind` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = trial_runs(client, parents[0])
    trial_ids = [_trial_id(c) for c in children]
    assert len(trial_ids) == len(set(trial_ids)) == 6
    for child in children:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "objective")]
        assert sorted(steps) == [1, 2, 3]
        assert child.data.tags["isobn.status"] == "finished"


def test_a_trial_where_isobn_stayed_the_identity_is_tagged_and_the_console_says_so_once(
    write_space: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The driver's logger on Tune's own Trial objects (no training needed to set the figures an
    IsoBN trial reports): two IsoBN trials near the identity, one acting."""
    grid = {"cls_norm": ["isobn"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2, 3]}
    space_file = write_space(grid=grid)
    space = load_space(space_file)
    tracker = SweepTracker.start(space.mlflow.tracking_uri, space, "identity", space_file.read_text())
    logger = tracker.callback("rte")
    trials: list[Trial] = []
    for seed, near_identity in zip((1, 2, 3), (1.0, 0.0, 1.0), strict=True):
        trial = Trial("fine_tune_trial", config=trial_configs(space, "rte")[seed - 1],
                      trial_id=f"seed{seed}", stub=True)
        trials.append(trial)
        logger.on_trial_start(0, trials, trial)
        trial.update_last_result({"epoch": 2, "best_epoch": 2, "best_objective": 0.6, "objective": 0.6,
                                  ISOBN_NEAR_IDENTITY: near_identity, ISOBN_EPS_RATIO: 960.0})
        trial.set_status(Trial.TERMINATED)
        logger.on_trial_complete(0, trials, trial)
    runs = runs_by_trial(space.mlflow.tracking_uri, tracker.parent_run_id)
    assert {t: run.data.tags.get(NEAR_IDENTITY_TAG) for t, run in runs.items()} == {
        "seed1": "true", "seed2": None, "seed3": "true"}
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: IsoBN")]
    assert said == [("note: IsoBN ended within 1% of the identity in trial seed1 (its eps is 960 x "
                     "median(gamma * sigma)): a null result here says nothing about IsoBN; a smaller eps "
                     "or grid.eps_mode: [relative] lets it act")]
