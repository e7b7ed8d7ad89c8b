"""Which seed median a sweep reports, on records with chosen seed values (no Ray).

The values are picked so that the median over seeds differs from their mean and from the best
seed: a report, a best configuration or an exported trial chosen by either would fail here.
"""

from __future__ import annotations

import pytest

from isobn_tune.results.aggregate import TrialRecord, best_groups, summarise_groups
from isobn_tune.results.tables import method_table
from isobn_tune.serving.export import chosen_trial
from isobn_tune.train.recipe import TrialConfig


def seeds(values: list[float | None], lr: float = 2e-5, cls_norm: str = "isobn", status: str = "finished",
          first_seed: int = 1) -> list[TrialRecord]:
    """One configuration's trials, seed ``first_seed + i`` scoring ``values[i]`` (None: no epoch
    reported)."""
    configs = [TrialConfig(task="rte", model="m", cls_norm=cls_norm, lr=lr, seed=seed)
               for seed in range(first_seed, first_seed + len(values))]
    return [TrialRecord(f"{cls_norm}-{lr}-{cfg.seed}", cfg, value, 3, status)
            for cfg, value in zip(configs, values, strict=True)]


def only_summary(records: list[TrialRecord]):
    (summary,) = summarise_groups(records)
    return summary


@pytest.mark.parametrize(("values", "median"), [
    ([0.60, 0.10, 0.62], 0.60),  # odd: the middle seed (mean 0.44, best 0.62)
    ([0.90, 0.10, 0.50, 0.30, 0.51], 0.50),  # odd, five seeds (mean 0.462, best 0.90)
    ([0.20, 0.80, 0.40, 0.10], 0.30),  # even: halfway between the middle two (mean 0.375, best 0.80)
    ([0.70, 0.70, 0.10], 0.70),  # a tie at the middle (mean 0.50, best 0.70 = median: see next)
    ([0.10, 0.70, 0.70, 0.90], 0.70),  # even with the middle two tied (mean 0.60, best 0.90)
    ([0.45, 0.25], 0.35),  # two seeds: their midpoint (the best would be 0.45)
], ids=["odd-3", "odd-5", "even-4", "tie-odd", "tie-even", "two"])
def test_the_reported_median_is_the_median_over_seeds(values: list[float], median: float) -> None:
    summary = only_summary(seeds(values))

    assert summary.median == pytest.approx(median, abs=1e-12)
    (row,) = method_table([summary])
    assert (row["median"], row["seeds"]) == (pytest.approx(100 * median, abs=1e-10), len(values))  # points


def test_errored_seeds_and_seeds_without_a_score_do_not_count() -> None:
    """An errored trial's partial best and a trial that ended before its first epoch are left out:
    the median is over the three scored seeds (0.2, 0.3, 0.9), not over five or four."""
    records = seeds([0.2, 0.9, 0.3, None]) + seeds([0.95], status="errored", first_seed=5)

    summary = only_summary(records)

    assert summary.seeds == (1, 2, 3) and summary.n_trials == 5
    assert summary.median == pytest.approx(0.3)


def test_seeds_a_scheduler_stopped_early_are_in_no_median() -> None:
    """Budget-matched: a stopped seed's score (0.1 after fewer epochs) would pull the median of the
    two full-budget seeds (0.75) down to 0.7."""
    records = seeds([0.8, 0.7]) + seeds([0.1], status="stopped", first_seed=3)

    summary = only_summary(records)

    assert summary.seeds == (1, 2) and summary.median == pytest.approx(0.75)


def test_a_configuration_without_any_scored_seed_has_no_median() -> None:
    summary = only_summary(seeds([None, None]))

    assert summary.values == () and summary.median != summary.median  # NaN
    assert best_groups([summary]) == {}


# "steady" has the higher median; "lucky" the higher mean and the best single seed.
STEADY = [0.80, 0.81, 0.00]  # median 0.80, mean 0.537, best 0.81
LUCKY = [0.70, 0.99, 0.70]  # median 0.70, mean 0.797, best 0.99


def steady_and_lucky() -> list[TrialRecord]:
    return seeds(STEADY, lr=1e-5, cls_norm="none") + seeds(LUCKY, lr=5e-5, cls_norm="none")


def test_the_best_configuration_is_the_one_with_the_highest_seed_median() -> None:
    summaries = summarise_groups(steady_and_lucky())

    assert [s.config["lr"] for s in summaries] == [1e-5, 5e-5]  # ranked by median, best first
    assert best_groups(summaries)["rte"].config["lr"] == 1e-5
    (row,) = method_table(summaries)
    assert row["median"] == pytest.approx(80) and "lr=1e-05" in row["config"]


def test_export_takes_the_best_seed_of_the_configuration_with_the_best_median() -> None:
    chosen = chosen_trial(steady_and_lucky(), "rte")

    assert (chosen.config.lr, chosen.config.seed, chosen.best_objective) == (1e-5, 2, 0.81)
