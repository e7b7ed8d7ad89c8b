"""Sweep figures (isobn_tune.results.figures): each PNG is a real PNG and its CSV holds exactly the data
plotted. Records are built directly; no Ray, fixed RNGs."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from isobn_tune.results.aggregate import TrialRecord, short_label, summarise_groups
from isobn_tune.results.figures import (
    ALL_TRIALS,
    BEST_SEEDS,
    budget_curves_figure,
    learning_curves_figure,
    seed_scores_figure,
    write_sweep_figures,
)
from isobn_tune.results.tuning_curves import tuning_curve
from isobn_tune.train.recipe import TrialConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEEDS = (1, 2, 3, 4, 5)
CONFIGS = (("none", 2e-5), ("isobn", 2e-5), ("isobn", 3e-5))


def _record(task: str, cls_norm: str, lr: float, seed: int, best: float | None,
            status: str = "finished") -> TrialRecord:
    cfg = TrialConfig(task=task, model="m", cls_norm=cls_norm, lr=lr, seed=seed)
    return TrialRecord(f"{task}_{cls_norm}_{lr:g}_{seed}", cfg, best, 3, status)


def _sweep(task: str = "rte", seed: int = 0) -> list[TrialRecord]:
    """Three configurations x five seeds, plus a configuration scored on two seeds only and trials
    that must not count: an errored one (with a score) and one without a best metric."""
    rng = np.random.default_rng(seed)
    records = [_record(task, norm, lr, s, float(rng.uniform(0.55, 0.75)))
               for norm, lr in CONFIGS for s in SEEDS]
    records += [_record(task, "layernorm", 2e-5, s, float(rng.uniform(0.55, 0.75))) for s in (1, 2)]
    records.append(_record(task, "layernorm", 2e-5, 3, 0.99, status="errored"))
    records.append(_record(task, "layernorm", 2e-5, 4, None, status="stopped"))
    return records


def _counted(records: list[TrialRecord]) -> list[TrialRecord]:
    return [r for r in records if r.status != "errored" and r.best_objective is not None]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _assert_png(path: Path) -> None:
    assert path.suffix == ".png"
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_seed_scores_csv_has_one_row_per_scored_seed(tmp_path: Path) -> None:
    records = _sweep()
    png, csv_path = seed_scores_figure(summarise_groups(records), tmp_path, task="rte")
    assert (png.name, csv_path.name) == ("seed_scores_rte.png", "seed_scores_rte.csv")
    _assert_png(png)
    rows = _read_csv(csv_path)
    got = sorted((r["task"], r["config"], r["method"], int(r["seed"]), float(r["score"])) for r in rows)
    expected = sorted(("rte", short_label(r.config), r.config.cls_norm, r.config.seed, r.best_objective)
                      for r in _counted(records))
    assert got == expected  # exact: the raw scores, no x100, no errored or unscored trial
    assert len(rows) == 3 * len(SEEDS) + 2


def test_seed_scores_only_for_the_task_and_raises_when_nothing_scored(tmp_path: Path) -> None:
    summaries = summarise_groups(_sweep("rte") + _sweep("mrpc", seed=1))
    _, csv_path = seed_scores_figure(summaries, tmp_path, task="mrpc")
    assert {r["task"] for r in _read_csv(csv_path)} == {"mrpc"}
    with pytest.raises(ValueError, match="sst2"):
        seed_scores_figure(summaries, tmp_path, task="sst2")


def test_learning_curves_are_medians_over_the_seeds_with_that_epoch(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    records = _sweep()
    histories: dict[str, list[tuple[int, float]]] = {}
    for i, rec in enumerate(records):
        epochs = [1, 2, 3] if i % 3 else [1, 3]  # every third trial misses epoch 2
        points = [(e, float(rng.uniform(0.5, 0.8))) for e in epochs]
        histories[rec.trial_id] = points[::-1]  # unsorted
    png, csv_path = learning_curves_figure(records, histories, tmp_path, task="rte")
    assert png.name == "learning_curves_rte.png"
    _assert_png(png)
    rows = _read_csv(csv_path)
    counted = _counted(records)
    labels = {short_label(r.config) for r in counted}
    assert {r["config"] for r in rows} == labels
    assert len(rows) == 3 * len(labels)
    for row in rows:
        curves = [dict(histories[r.trial_id]) for r in counted if short_label(r.config) == row["config"]]
        values = [c[int(row["epoch"])] for c in curves if int(row["epoch"]) in c]
        assert row["task"] == "rte"
        assert int(row["n_seeds"]) == len(values)
        assert float(row["median"]) == pytest.approx(np.median(values), abs=1e-12)
        assert float(row["q25"]) == pytest.approx(np.percentile(values, 25), abs=1e-12)
        assert float(row["q75"]) == pytest.approx(np.percentile(values, 75), abs=1e-12)
    epoch2 = {r["config"]: int(r["n_seeds"]) for r in rows if r["epoch"] == "2"}
    epoch1 = {r["config"]: int(r["n_seeds"]) for r in rows if r["epoch"] == "1"}
    assert all(epoch2[c] < epoch1[c] for c in labels)  # every configuration has a trial without epoch 2


def test_budget_curves_are_tuning_curves_of_their_draws_inside_their_bands(tmp_path: Path) -> None:
    records = _sweep()
    summaries = summarise_groups(records)
    png, csv_path = budget_curves_figure(summaries, tmp_path, task="rte")
    assert png.name == "budget_curves_rte.png"
    _assert_png(png)
    rows = _read_csv(csv_path)
    for method in ("none", "isobn", "layernorm"):
        pooled = [r.best_objective for r in _counted(records) if r.config.cls_norm == method]
        best = max((s for s in summaries if s.task == "rte" and s.method == method), key=lambda s: s.median)
        for over, draws in ((ALL_TRIALS, pooled), (BEST_SEEDS, list(best.values))):
            mine = [r for r in rows if r["method"] == method and r["over"] == over]
            assert [int(r["budget"]) for r in mine] == list(range(1, len(draws) + 1))
            assert {int(r["n_trials"]) for r in mine} == {len(draws)}
            curve = np.array([float(r["median_best"]) for r in mine])
            assert curve.tolist() == tuning_curve(draws, bounds=(0.0, 1.0)).median.tolist()
            assert min(draws) <= curve[0] <= np.median(draws) and np.all(np.diff(curve) >= 0)
            assert curve[-1] <= max(draws)
            assert all(0 <= float(r["low"]) <= float(r["median_best"]) <= float(r["high"]) <= 1 for r in mine)
            assert {r["confidence"] for r in mine} == {"0.95"}


def test_write_sweep_figures_writes_three_figures_per_task(tmp_path: Path) -> None:
    records = _sweep("rte")
    histories = {r.trial_id: [(1, 0.6), (2, 0.7)] for r in records}
    written = write_sweep_figures(records, histories, tmp_path / "one")
    assert len(written) == 6 and all(p.is_file() for p in written)
    assert sorted(p.suffix for p in written) == [".csv"] * 3 + [".png"] * 3
    for png in (p for p in written if p.suffix == ".png"):
        _assert_png(png)

    two = records + _sweep("mrpc", seed=2)
    histories |= {r.trial_id: [(1, 0.5)] for r in two}
    written = write_sweep_figures(two, histories, tmp_path / "two")
    assert len(written) == 12 == len({p.name for p in written})


def test_write_sweep_figures_ignores_errored_trials(tmp_path: Path) -> None:
    crashed = [_record("mrpc", "isobn", 2e-5, s, 0.9, status="errored") for s in SEEDS]
    records = _sweep("rte") + crashed
    histories = {r.trial_id: [(1, 0.6)] for r in records}
    written = write_sweep_figures(records, histories, tmp_path)
    assert len(written) == 6 and not any("mrpc" in p.name for p in written)
    scores = {float(r["score"]) for r in _read_csv(tmp_path / "seed_scores_rte.csv")}
    assert 0.99 not in scores  # the errored rte trial's score
    assert write_sweep_figures(crashed, histories, tmp_path / "none") == []


def test_write_sweep_figures_show_the_selection_sweep_only(tmp_path: Path) -> None:
    """Trials ``confirm`` ran at fresh seeds are confirmatory rows, not more selection seeds."""
    confirmed = [dataclasses.replace(_record("rte", "none", 2e-5, s, 0.99), confirmation=True)
                 for s in (11, 12)]
    records = _sweep("rte") + confirmed
    histories = {r.trial_id: [(1, 0.6)] for r in records}
    histories |= {r.trial_id: [(1, 0.99), (2, 0.99)] for r in confirmed}
    write_sweep_figures(records, histories, tmp_path)
    for name in ("seed_scores_rte.csv", "learning_curves_rte.csv", "budget_curves_rte.csv"):
        rows = _read_csv(tmp_path / name)
        assert rows and not any(r.get("seed") in ("11", "12") for r in rows), name
        assert not any("0.99" in value for r in rows for value in r.values()), name
    assert {r["epoch"] for r in _read_csv(tmp_path / "learning_curves_rte.csv")} == {"1"}
