"""The race's one-sided paired test (isobn_tune.results.statistics): pure numpy/scipy, no Ray, fast.
The two-sided exact tests of the reports are tested in test_paired_tests.py and test_verdicts.py."""

from __future__ import annotations

import math

import pytest

from isobn_tune.results.statistics import PairedWorse, paired_worse_test, smallest_one_sided_p

SEEDS = (11, 22, 33, 44, 55)


# ----- the race's one-sided paired test ---------------------------------------------------------
RACE_BEST = {seed: float(i) for i, seed in enumerate(SEEDS)}  # a large seed effect
RACE_WORSE = {seed: value - 0.3 for seed, value in RACE_BEST.items()}


def test_paired_worse_test_is_exact_and_one_sided() -> None:
    assert paired_worse_test(RACE_WORSE, RACE_BEST) == PairedWorse(5, pytest.approx(-0.3), 1 / 32)
    assert paired_worse_test(RACE_BEST, RACE_WORSE).p_value == 1.0


def test_paired_worse_test_counts_a_lag_within_the_margin_as_tied() -> None:
    assert paired_worse_test(RACE_WORSE, RACE_BEST, margin=0.5).p_value == 1.0
    assert paired_worse_test(RACE_WORSE, RACE_BEST, margin=0.2).p_value == 1 / 32


def test_paired_worse_test_uses_only_shared_scored_seeds_and_drops_ties() -> None:
    worse = RACE_WORSE | {SEEDS[0]: math.nan, 99: -50.0}
    assert paired_worse_test(worse, RACE_BEST) == PairedWorse(4, pytest.approx(-0.3), smallest_one_sided_p(4))
    tied = RACE_BEST | {SEEDS[0]: RACE_BEST[SEEDS[0]] - 1}
    assert paired_worse_test(tied, RACE_BEST).p_value == 0.5  # one signed pair: 2**-1
    assert paired_worse_test(RACE_BEST, RACE_BEST) == PairedWorse(5, 0.0, 1.0)
    assert paired_worse_test({}, RACE_BEST).p_value == 1.0


def test_the_smallest_one_sided_p_is_what_every_pair_worse_gives() -> None:
    for n in (3, 4, 5):
        seeds = SEEDS[:n]
        worse = {s: RACE_WORSE[s] for s in seeds}
        assert paired_worse_test(worse, RACE_BEST).p_value == smallest_one_sided_p(n) == 2.0**-n
