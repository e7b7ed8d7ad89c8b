"""A sweep's comparison rows (exact tests, Holm across tasks, selection and confirmation seeds), on
records with known effects (no Ray)."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import numpy as np

from isobn_tune.results.aggregate import TrialRecord
from isobn_tune.results.comparisons import CONFIRMATORY, EXPLORATORY, UNCONFIRMED, UNIT, compare_sweep
from isobn_tune.results.paired_tests import too_few_text
from isobn_tune.results.statistics import A_BETTER, B_BETTER
from isobn_tune.results.tables import sweep_results
from isobn_tune.train.recipe import TrialConfig


def records(effects: dict[tuple[str, float], float], tasks=("rte", "mrpc"), seed: int = 0,
            seeds: range = range(1, 6)) -> list[TrialRecord]:
    """Trials of every (cls_norm, lr) configuration at ``seeds``: 70 + the configuration's effect (in
    points) + a per-seed offset shared by all configurations (sd 3) + noise (sd 0.5, so the paired
    difference has sd 0.7), as scores in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for task in tasks:
        for s in seeds:
            shared = rng.normal(0, 3)
            for (norm, lr), effect in effects.items():
                cfg = TrialConfig(task=task, model="m", cls_norm=norm, lr=lr, seed=s)
                score = (70 + effect + shared + rng.normal(0, 0.5)) / 100
                out.append(TrialRecord(f"{task}-{norm}-{lr}-{s}", cfg, score, 3, "finished"))
    return out


EFFECTS = {("none", 2e-5): 0.0, ("none", 5e-5): -1.0, ("isobn", 2e-5): 2.0, ("isobn", 5e-5): 0.0}
BEST_ISOBN = "isobn_lr2e-05_bs32_beta0.5_alpha0.95_eps0.1"


def test_a_true_gain_of_two_points_is_called_and_every_other_row_is_exploratory() -> None:
    result = compare_sweep(records(EFFECTS, seeds=range(1, 8)))
    rows = {(r.task, r.a): r for r in result.rows}
    for task in ("rte", "mrpc"):
        best = rows[(task, BEST_ISOBN)]
        assert best.role == CONFIRMATORY and best.b == "none_lr2e-05_bs32" and best.verdict == A_BETTER
        assert best.n_pairs == 7 and best.ci_low > 0 and best.p_adjusted <= 0.05
        same = rows[(task, "isobn_lr5e-05_bs32_beta0.5_alpha0.95_eps0.1")]
        assert same.role == EXPLORATORY and same.verdict is None and same.p_value is None
        assert same.ci_low < 0 < same.ci_high
    assert result.summary.n_significant == 2 and result.summary.n_comparisons == 2
    assert {s.metric for s in result.summary.strata} == {"accuracy", "acc_and_f1"}  # never averaged together


def test_every_row_obeys_verdict_iff_adjusted_p_iff_interval_excludes_zero() -> None:
    for seed in range(8):
        effects = EFFECTS | {("isobn", 2e-5): 0.5 * seed}
        for row in compare_sweep(records(effects, seeds=range(1, 9), seed=seed)).rows:
            if row.role == EXPLORATORY:
                assert row.verdict is None and row.p_adjusted is None
                continue
            significant = row.verdict in (A_BETTER, B_BETTER)
            assert significant == (row.p_adjusted <= 0.05) == (not row.ci_low <= 0 <= row.ci_high)


def test_below_six_pairs_there_is_no_test_in_markdown_csv_and_json() -> None:
    results = sweep_results(records(EFFECTS, seeds=range(1, 4)))
    text = too_few_text()
    row = results.comparisons.confirmatory("rte", "isobn")
    assert row.verdict is None and row.p_value is None and row.n_pairs == 3 and row.n_better == 3
    assert text in results.table_markdown() and text in results.description()
    (csv_row,) = [r for r in csv.DictReader(io.StringIO(results.csv()))
                  if r["task"] == "rte" and r["role"] == CONFIRMATORY]
    assert csv_row["verdict"] == csv_row["p_value"] == "" and text in csv_row["note"]
    assert csv_row["unit"] == UNIT
    (json_row,) = [r for r in results.as_json()["comparisons"]
                   if r["task"] == "rte" and r["role"] == CONFIRMATORY]
    assert json_row["verdict"] is None and text in json_row["note"] and json_row["seeds"] == [1, 2, 3]
    assert "3/3 seeds better, range [" in results.table_markdown()


def test_the_csv_and_json_rows_carry_every_field_of_a_row() -> None:
    results = sweep_results(records(EFFECTS, seeds=range(1, 8)))
    parsed = list(csv.DictReader(io.StringIO(results.csv())))
    needed = {"role", "estimate", "ci_low", "ci_high", "ci_level", "p_value", "p_adjusted", "n_pairs",
              "min_pairs_needed", "budget_epochs", "seeds", "verdict", "confirmed", "unit"}
    assert needed <= set(parsed[0]) and len(parsed) == 4
    data = results.as_json()
    assert data["unit"] == UNIT and needed <= set(data["comparisons"][0])
    assert data["across_tasks"]["n_significant"] == 2
    isobn = next(r for r in data["table"] if r["method"] == "isobn")
    assert 60 < isobn["median"] < 80  # points


def test_named_configurations_are_compared_where_both_ran() -> None:
    pair = (BEST_ISOBN, "none_lr5e-05_bs32")
    asked = [r for r in compare_sweep(records(EFFECTS), compare=pair).rows if (r.a, r.b) == pair]
    assert [r.task for r in asked] == ["mrpc", "rte"]
    assert all(r.role == EXPLORATORY and r.estimate > 2 for r in asked)


def test_confirmatory_rows_use_only_the_confirmation_seeds_and_say_which_selected() -> None:
    # Selected on seeds 1-3 (where the baseline looks better), confirmed on 6-12 (a true +2 gain).
    chosen = EFFECTS | {("isobn", 2e-5): -3.0, ("isobn", 5e-5): -1.0}
    selection = records(chosen, tasks=("rte",), seeds=range(1, 4))
    best = {("none", 2e-5): 0.0, ("isobn", 5e-5): 2.0}  # the selected configurations of each method
    fresh = [replace(r, confirmation=True) for r in records(best, tasks=("rte",), seeds=range(6, 13), seed=1)]
    results = sweep_results(selection + fresh)
    row = results.comparisons.confirmatory("rte", "isobn")
    assert row.a == "isobn_lr5e-05_bs32_beta0.5_alpha0.95_eps0.1" and row.seeds == tuple(range(6, 13))
    assert row.verdict == A_BETTER and UNCONFIRMED not in row.note
    assert results.comparisons.selected_on == {"rte": (1, 2, 3)}
    assert results.comparisons.confirmed_on == {"rte": tuple(range(6, 13))}
    assert "rte: selected on seeds 1-3; confirmed on seeds 6-12." in results.description()
    assert all(s.seeds == (1, 2, 3) for s in results.summaries)  # confirmation seeds select nothing
    assert next(r for r in results.as_json()["comparisons"] if r["role"] == CONFIRMATORY)["confirmed"] is True


def test_an_unconfirmed_best_is_labelled_as_selected_on_its_own_seeds() -> None:
    row = sweep_results(records(EFFECTS, seeds=range(1, 8))).comparisons.confirmatory("rte", "isobn")
    assert row.note == UNCONFIRMED and row.seeds == tuple(range(1, 8))


def test_a_sweep_without_a_baseline_has_no_comparisons() -> None:
    only_isobn = {k: v for k, v in EFFECTS.items() if k[0] == "isobn"}
    result = compare_sweep(records(only_isobn))
    assert result.rows == [] and result.summary.n_comparisons == 0


def test_a_best_without_confirmation_trials_stays_unconfirmed() -> None:
    """Confirmation trials of a configuration that is not (or no longer) its method's best confirm nothing."""
    fresh = [replace(r, confirmation=True) for r in records({("none", 2e-5): 0.0, ("isobn", 5e-5): 0.0},
                                                             tasks=("rte",), seeds=range(6, 9))]
    results = sweep_results(records(EFFECTS, tasks=("rte",)) + fresh)
    row = results.comparisons.confirmatory("rte", "isobn")
    assert row.a == BEST_ISOBN and row.seeds == (1, 2, 3, 4, 5) and row.note.startswith(UNCONFIRMED)
    assert results.comparisons.confirmed(row) is False and results.comparisons.confirmed_on == {"rte": ()}
