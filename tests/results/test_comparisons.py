"""Paired seed comparisons of a sweep's configurations, on records with known effects (no Ray)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from isobn_tune.results.aggregate import TrialRecord, summarise_groups
from isobn_tune.results.comparisons import compare_sweep
from isobn_tune.results.statistics import A_BETTER, NOT_DISTINGUISHABLE
from isobn_tune.results.tables import method_table, sweep_results, table_csv
from isobn_tune.train.recipe import TrialConfig

SEEDS = range(1, 6)


def records(effects: dict[tuple[str, float], float], tasks=("rte", "mrpc"), seed: int = 0
            ) -> list[TrialRecord]:
    """Trials of every (cls_norm, lr) configuration at 5 seeds: 70 + the configuration's effect (in
    points) + a per-seed offset shared by all configurations (sd 3) + noise (sd 0.5, so the paired
    difference has sd 0.7), as scores in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for task in tasks:
        for s in SEEDS:
            shared = rng.normal(0, 3)
            for (norm, lr), effect in effects.items():
                cfg = TrialConfig(task=task, model="m", cls_norm=norm, lr=lr, seed=s)
                score = (70 + effect + shared + rng.normal(0, 0.5)) / 100
                out.append(TrialRecord(f"{task}-{norm}-{lr}-{s}", cfg, score, 3, "finished"))
    return out


EFFECTS = {("none", 2e-5): 0.0, ("none", 5e-5): -1.0, ("isobn", 2e-5): 2.0, ("isobn", 5e-5): 0.0}


def test_a_true_gain_of_two_points_is_called_and_a_null_one_is_not() -> None:
    result = compare_sweep(summarise_groups(records(EFFECTS)))
    rows = {(c.task, c.a): c for c in result.per_task}
    for task in ("rte", "mrpc"):
        best = rows[(task, "isobn_lr2e-05_bs32_beta0.5_alpha0.95_eps0.1")]
        assert best.best and best.b == "none_lr2e-05_bs32" and best.result.verdict == A_BETTER
        assert best.result.n_pairs == 5 and best.result.ci95_low > 0
        same = rows[(task, "isobn_lr5e-05_bs32_beta0.5_alpha0.95_eps0.1")]
        assert not same.best and same.result.verdict == NOT_DISTINGUISHABLE
    assert result.across_tasks["isobn"].verdict == A_BETTER
    assert result.across_tasks["isobn"].n_tasks == 2


def test_the_method_table_and_its_csv_carry_the_comparison_with_the_baseline() -> None:
    rows = method_table(summarise_groups(records(EFFECTS)))
    parsed = list(csv.DictReader(io.StringIO(table_csv(rows))))
    assert list(parsed[0]) == ["task", "method", "median", "std", "seeds", "budget_epochs", "config",
                               "diff_median", "ci95_low", "ci95_high", "p_improve", "n_pairs", "verdict"]
    for row in parsed:
        if row["method"] == "isobn":
            assert row["verdict"] == A_BETTER and row["n_pairs"] == "5"
            assert 0 < float(row["ci95_low"]) <= float(row["diff_median"]) <= float(row["ci95_high"])
        else:
            assert row["verdict"] == row["diff_median"] == ""


def test_named_configurations_are_compared_where_both_ran() -> None:
    summaries = summarise_groups(records(EFFECTS))
    pair = ("isobn_lr2e-05_bs32_beta0.5_alpha0.95_eps0.1", "none_lr5e-05_bs32")
    asked = [c for c in compare_sweep(summaries, compare=pair).per_task if (c.a, c.b) == pair]
    assert [c.task for c in asked] == ["mrpc", "rte"]
    assert all(c.result.verdict == A_BETTER for c in asked)


def test_the_description_names_verdicts_and_the_selection_bias() -> None:
    text = sweep_results(records(EFFECTS)).description()
    assert "| all tasks (mean) | isobn best | none best |" in text
    assert "A better" in text and "not distinguishable from seed noise" in text
    assert "would look better by about" in text


@pytest.mark.parametrize("tasks", [("rte",), ("rte", "mrpc")])
def test_selection_bias_grows_with_the_number_of_configurations(tasks) -> None:
    few = compare_sweep(summarise_groups(records(EFFECTS, tasks))).selection_bias["isobn"]
    many_effects = EFFECTS | {("isobn", lr): 0.0 for lr in (1e-5, 3e-5, 1e-4, 2e-4)}
    many = compare_sweep(summarise_groups(records(many_effects, tasks))).selection_bias["isobn"]
    assert 0 < few < many


def test_a_sweep_without_a_baseline_has_no_comparisons() -> None:
    only_isobn = {k: v for k, v in EFFECTS.items() if k[0] == "isobn"}
    result = compare_sweep(summarise_groups(records(only_isobn)))
    assert result.per_task == [] and result.across_tasks == {}
    assert set(result.iqm) == {"isobn"}
