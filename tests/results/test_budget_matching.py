"""The one function behind a sweep's tables (``sweep_results``), on constructed trial records: which
trials enter a median or a pair, at which budget, and which are listed instead (no Ray)."""

from __future__ import annotations

import pytest

from isobn_tune.results.aggregate import TrialRecord
from isobn_tune.results.comparisons import CONFIRMATORY, EXPLORATORY
from isobn_tune.results.tables import sweep_results
from isobn_tune.train.recipe import TrialConfig

BUDGET = 4


def trial(norm: str, lr: float, seed: int, scores: list[float], status: str) -> TrialRecord:
    """A trial of ``task`` rte that reported ``scores`` (its best dev metric so far) at epochs 1..n."""
    cfg = TrialConfig(task="rte", model="m", cls_norm=norm, lr=lr, seed=seed, max_epochs=BUDGET)
    best = max(scores) if scores else None
    history = tuple((epoch, max(scores[:epoch])) for epoch in range(1, len(scores) + 1))
    return TrialRecord(f"{norm}-{lr:g}-{seed}", cfg, best, len(scores), status, history)


# The baseline ran the full budget on seeds 1-3. IsoBN at lr 2e-5 too, except seed 3, which errored
# at epoch 2 with the best score of all; IsoBN at lr 5e-5 was stopped by the scheduler at epoch 1
# on seeds 1-2 (seed 3 still runs, at epoch 2): early scores far below the full-budget ones.
RECORDS = [
    trial("none", 2e-5, 1, [0.50, 0.60, 0.62, 0.64], "finished"),
    trial("none", 2e-5, 2, [0.52, 0.58, 0.66, 0.66], "finished"),
    trial("none", 2e-5, 3, [0.48, 0.61, 0.63, 0.70], "finished"),
    trial("isobn", 2e-5, 1, [0.51, 0.62, 0.65, 0.67], "finished"),
    trial("isobn", 2e-5, 2, [0.53, 0.60, 0.69, 0.69], "finished"),
    trial("isobn", 2e-5, 3, [0.49, 0.99], "errored"),
    trial("isobn", 5e-5, 1, [0.40], "stopped"),
    trial("isobn", 5e-5, 2, [0.45], "stopped"),
    trial("isobn", 5e-5, 3, [0.47, 0.55], "running"),
]


def test_a_median_holds_only_the_trials_that_ran_the_full_budget() -> None:
    results = sweep_results(RECORDS)
    rows = {r["method"]: r for r in results.rows}
    assert rows["none"]["median"] == pytest.approx(66) and rows["none"]["seeds"] == 3  # points
    assert rows["isobn"]["median"] == pytest.approx((67 + 69) / 2)  # not the errored 0.99
    assert rows["isobn"]["seeds"] == 2 and rows["isobn"]["config"].count("2e-05") == 1
    assert {r["budget_epochs"] for r in results.rows} == {BUDGET}
    by_label = {s.label: s for s in results.summaries}
    stopped = by_label["isobn_lr5e-05_bs32_beta0.5_alpha0.95_eps0.1"]
    assert stopped.values == () and len(stopped.trials) == 3  # none of its trials ran the budget


def test_the_confirmatory_row_pairs_only_full_budget_seeds_at_the_budget() -> None:
    (row,) = [c for c in sweep_results(RECORDS).comparisons.rows if c.role == CONFIRMATORY]
    assert row.seeds == (1, 2) and row.budget_epochs == BUDGET and row.n_pairs == 2
    assert (row.diff_min, row.diff_max) == (pytest.approx(3), pytest.approx(3))  # 67-64, 69-66 points
    assert row.verdict is None  # 2 pairs: no test


def test_an_early_stopped_configuration_is_compared_at_the_last_epoch_both_reached() -> None:
    (row,) = [c for c in sweep_results(RECORDS).comparisons.rows if c.role == EXPLORATORY]
    assert row.a.startswith("isobn_lr5e-05") and row.budget_epochs == 1 and row.seeds == (1, 2, 3)
    # epoch 1 on both sides (0.40, 0.45, 0.47 against 0.50, 0.52, 0.48), never the baseline's final 0.64-0.70
    assert (row.diff_min, row.diff_max) == (pytest.approx(-10), pytest.approx(-1))


def test_a_comparison_asked_for_pairs_at_the_epoch_both_reached_without_errored_trials() -> None:
    labels = ("isobn_lr2e-05_bs32_beta0.5_alpha0.95_eps0.1", "isobn_lr5e-05_bs32_beta0.5_alpha0.95_eps0.1")
    results = sweep_results(RECORDS, compare=labels)
    (asked,) = [c for c in results.comparisons.rows if (c.a, c.b) == labels]
    assert asked.role == EXPLORATORY and asked.seeds == (1, 2)  # seed 3 errored on one side
    assert asked.budget_epochs == 1
    assert (asked.diff_min, asked.diff_max) == (pytest.approx(8), pytest.approx(11))


def test_stopped_errored_and_running_trials_are_listed_with_the_epoch_they_reached() -> None:
    (line,) = sweep_results(RECORDS).left_out
    assert line == ("rte, in no median: stopped by the scheduler: isobn-5e-05-1 (isobn seed 1, epoch 1), "
                    "isobn-5e-05-2 (isobn seed 2, epoch 1); errored: isobn-2e-05-3 (isobn seed 3, epoch 2); "
                    "still running: isobn-5e-05-3 (isobn seed 3, epoch 2)")
    text = sweep_results(RECORDS).table_markdown()
    assert f"full budget ({BUDGET} epochs)" in text and text.endswith(f"\n{line}\n")


def test_many_stopped_trials_are_counted_by_epoch() -> None:
    many = [trial("isobn", 5e-5, seed, [0.4] * (1 + seed % 2), "stopped") for seed in range(1, 10)]
    (line,) = sweep_results(many).left_out
    assert line == "rte, in no median: stopped by the scheduler: 9 trials, at epoch 1 (4), 2 (5)"


def test_a_finished_trial_that_ran_out_of_patience_counts_as_the_full_budget() -> None:
    patient = trial("none", 2e-5, 1, [0.5, 0.6], "finished")  # patience ended it after epoch 2
    assert patient.reached == BUDGET and patient.score_at(BUDGET) == 0.6 and patient.score_at(1) == 0.5
    stopped = trial("none", 2e-5, 1, [0.5, 0.6], "stopped")
    assert stopped.reached == 2 and stopped.score_at(3) is None


def test_a_method_without_a_full_budget_configuration_keeps_its_column_without_a_median() -> None:
    stopped_only = [r for r in RECORDS if r.method == "none"] + [r for r in RECORDS if "5e-05" in r.trial_id]
    results = sweep_results(stopped_only)
    isobn = next(r for r in results.rows if r["method"] == "isobn")
    assert isobn["seeds"] == 0 and isobn["median"] is None and isobn["comparison"] is None
    header, _, row = results.table_markdown().splitlines()[:3]
    assert header.startswith("| task | isobn | none |") and row.startswith("| rte | – | 66.00 ± ")
