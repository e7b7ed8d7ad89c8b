"""Seed statistics (isobn_tune.results.statistics): pure numpy/scipy, no Ray, fast, fixed RNGs."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

from isobn_tune.results.statistics import (
    A_BETTER,
    B_BETTER,
    NOT_DISTINGUISHABLE,
    PairedWorse,
    aggregate_across_tasks,
    expected_max_standard_normal,
    interquartile_mean,
    iqm_by_method,
    paired_comparison,
    paired_worse_test,
    sample_median_std,
    selection_bias,
    smallest_one_sided_p,
)

SEEDS = (11, 22, 33, 44, 55)


def _sweep(rng: np.random.Generator, true_diff: float, n_seeds: int = 5, seed_effect_sd: float = 3.0,
           noise_sd: float = 1.0) -> tuple[dict[int, float], dict[int, float]]:
    """Scores of A and B over the same seeds: a shared per-seed effect (same head init and data
    order) plus independent noise, A shifted by ``true_diff``."""
    seed_effect = rng.normal(0, seed_effect_sd, n_seeds)
    a = seed_effect + true_diff + rng.normal(0, noise_sd, n_seeds)
    b = seed_effect + rng.normal(0, noise_sd, n_seeds)
    seeds = range(n_seeds)
    return dict(zip(seeds, a.tolist(), strict=True)), dict(zip(seeds, b.tolist(), strict=True))


def test_true_improvement_over_five_seeds_is_a_better_despite_a_larger_shared_seed_effect():
    a, b = _sweep(np.random.default_rng(0), true_diff=2.0)
    # the seed effect (sd 3) swamps the difference (2) unpaired; pairing by seed removes it
    assert max(b.values()) > min(a.values())
    result = paired_comparison(a, b)
    assert result.n_pairs == 5
    assert result.ci95_low > 0
    assert result.verdict == A_BETTER
    assert result.p_improve == 1.0


def test_reversed_comparison_is_b_better_with_the_mirrored_interval():
    a, b = _sweep(np.random.default_rng(0), true_diff=2.0)
    forward = paired_comparison(a, b, rng=3)
    reverse = paired_comparison(b, a, rng=3)
    assert reverse.verdict == B_BETTER
    assert reverse.ci95_high < 0
    assert reverse.diff_median == pytest.approx(-forward.diff_median)
    assert (reverse.ci95_low, reverse.ci95_high) == pytest.approx((-forward.ci95_high, -forward.ci95_low))
    assert reverse.p_improve == pytest.approx(1 - forward.p_improve)


@pytest.mark.parametrize("n_seeds", [5, 10])
def test_interval_covers_zero_in_90_to_99_percent_of_null_sweeps(n_seeds):
    rng = np.random.default_rng(2024)
    sweeps = 400
    covered = covered_half = 0
    for _ in range(sweeps):
        a, b = _sweep(rng, true_diff=0.0, n_seeds=n_seeds)
        result = paired_comparison(a, b, n_resamples=1000, rng=rng)
        covered += result.ci95_low <= 0 <= result.ci95_high
        covered_half += result.p_improve_low <= 0.5 <= result.p_improve_high
        assert (result.verdict == NOT_DISTINGUISHABLE) == (result.ci95_low <= 0 <= result.ci95_high)
    assert 0.90 <= covered / sweeps <= 0.99
    assert 0.90 <= covered_half / sweeps <= 0.99


def test_pairs_by_seed_ignoring_unmatched_seeds_nan_and_dict_order():
    a = {1: 0.90, 2: 0.80, 3: 0.70, 4: 0.60, 7: 0.50}
    b = {4: 0.65, 3: 0.60, 2: 0.70, 1: 0.85, 9: 0.10}
    result = paired_comparison(a, b, label_a="isobn", label_b="none")
    assert result.n_pairs == 4  # seeds 1-4; 7 and 9 have no partner
    assert result.diff_median == pytest.approx(np.median([0.05, 0.10, 0.10, -0.05]))
    shuffled = paired_comparison(dict(reversed(list(a.items()))), dict(sorted(b.items())),
                                 label_a="isobn", label_b="none")
    assert shuffled == result
    # few resamples make the interval depend on which pair each draw picks: still identical
    few = {"n_resamples": 25, "rng": 1}
    assert paired_comparison(dict(reversed(list(a.items()))), b, **few) == paired_comparison(a, b, **few)
    with_nan = paired_comparison(a, {**b, 2: float("nan")})
    assert with_nan.n_pairs == 3
    row = result.as_row()
    assert {"diff_median", "ci95_low", "ci95_high", "p_improve", "n_pairs", "verdict"} <= row.keys()
    assert (row["a"], row["b"], row["n_pairs"]) == ("isobn", "none", 4)


def test_p_improve_counts_a_tie_as_half():
    a = {1: 0.5, 2: 0.7, 3: 0.4, 4: 0.9}
    b = {1: 0.4, 2: 0.7, 3: 0.6, 4: 0.6}  # A wins seeds 1 and 4, ties seed 2, loses seed 3
    result = paired_comparison(a, b)
    assert result.p_improve == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert result.p_improve_low <= result.p_improve <= result.p_improve_high
    assert 0 <= result.p_improve_low and result.p_improve_high <= 1


def test_fewer_than_two_pairs_gives_no_interval_and_no_verdict():
    one = paired_comparison({1: 0.9, 2: 0.8}, {1: 0.1, 3: 0.2})
    assert one.n_pairs == 1
    assert one.diff_median == pytest.approx(0.8)
    assert math.isnan(one.ci95_low) and math.isnan(one.ci95_high)
    assert one.verdict == NOT_DISTINGUISHABLE
    assert "too few" in one.note
    none = paired_comparison({1: 0.9}, {2: 0.1})
    assert none.n_pairs == 0 and math.isnan(none.diff_median) and none.verdict == NOT_DISTINGUISHABLE
    few = paired_comparison({1: 0.9, 2: 0.8, 3: 0.7}, {1: 0.1, 2: 0.2, 3: 0.3})
    assert "3 seed pairs" in few.note
    assert paired_comparison(*_sweep(np.random.default_rng(1), 0.0)).note == ""


def test_an_interval_touching_zero_is_not_a_difference():
    a = dict(zip(SEEDS, [0.7, 0.8, 0.9, 0.6, 0.5], strict=True))
    identical = paired_comparison(a, a)
    assert (identical.ci95_low, identical.ci95_high, identical.p_improve) == (0.0, 0.0, 0.5)
    assert identical.verdict == NOT_DISTINGUISHABLE
    b = {s: v - d for (s, v), d in zip(a.items(), [0.0, 0.1, 0.2, 0.3, 0.4], strict=True)}
    touching = paired_comparison(a, b)  # with 5 pairs the 95% interval runs from the smallest difference
    assert touching.ci95_low == 0.0 and touching.verdict == NOT_DISTINGUISHABLE


def test_identical_differences_give_a_point_interval_without_warnings():
    a = {s: 0.8 for s in SEEDS}
    b = {s: 0.75 for s in SEEDS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_comparison(a, b)
    assert result.ci95_low == result.ci95_high == pytest.approx(0.05)
    assert result.verdict == A_BETTER
    assert result.p_improve_low == result.p_improve_high == 1.0


def test_across_tasks_mean_of_medians_with_stratified_interval():
    b = dict.fromkeys(SEEDS, 0.0)
    task1 = dict(zip(SEEDS, [1.8, 1.9, 2.0, 2.1, 2.2], strict=True))  # +2
    task2 = dict(zip(SEEDS[:3], [-0.2, 0.0, 0.2], strict=True))  # 0, fewer seeds
    result = aggregate_across_tasks({"rte": (task1, b), "mrpc": (task2, b)})
    assert result.mean_diff_median == pytest.approx(1.0)
    assert dict(result.task_diff_median) == pytest.approx({"rte": 2.0, "mrpc": 0.0})
    assert (result.n_tasks, result.n_pairs) == (2, 8)
    # within a task a resample only moves the median within that task's range (+-0.2), so the mean of
    # the two medians stays within 1 +- 0.2; pooling the 8 pairs would put the median near 1.9
    assert 0.8 <= result.ci95_low < 1.0 < result.ci95_high <= 1.2
    assert result.verdict == A_BETTER
    assert {"ci95_low", "ci95_high", "p_improve", "n_pairs", "verdict"} <= result.as_row().keys()


def test_across_tasks_true_effect_everywhere_is_a_better_and_task_order_is_irrelevant():
    rng = np.random.default_rng(7)
    per_task = {task: _sweep(rng, true_diff=1.0, noise_sd=0.5) for task in ("rte", "mrpc", "stsb", "cola")}
    result = aggregate_across_tasks(per_task, rng=5)
    assert result.verdict == A_BETTER
    assert result.ci95_low > 0
    assert aggregate_across_tasks(dict(reversed(list(per_task.items()))), rng=5) == result
    reverse = aggregate_across_tasks({t: (b, a) for t, (a, b) in per_task.items()}, rng=5)
    assert reverse.verdict == B_BETTER


def test_across_tasks_rarely_claims_a_difference_under_the_null():
    rng = np.random.default_rng(99)
    sweeps = 200
    covered = 0
    for _ in range(sweeps):
        per_task = {task: _sweep(rng, true_diff=0.0) for task in ("rte", "mrpc", "stsb")}
        result = aggregate_across_tasks(per_task, n_resamples=1000, rng=rng)
        covered += result.ci95_low <= 0 <= result.ci95_high
    assert covered / sweeps >= 0.90


def test_across_tasks_with_a_single_pair_in_one_task_has_no_interval():
    per_task = {"rte": ({1: 0.9, 2: 0.8}, {1: 0.7, 2: 0.6}), "mrpc": ({1: 0.9}, {1: 0.8})}
    result = aggregate_across_tasks(per_task)
    assert math.isnan(result.ci95_low) and result.verdict == NOT_DISTINGUISHABLE
    assert "'mrpc'" in result.note


def test_interquartile_mean_matches_hand_computation():
    assert interquartile_mean([7, 1, 100, 3, 5, 2, 6, 4]) == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert interquartile_mean([5.0, 1.0, 3.0, 2.0]) == pytest.approx((2 + 3) / 2)
    assert iqm_by_method({"none": [1, 2, 3, 4], "isobn": [2, 3, 4, 1000]}) == pytest.approx(
        {"none": 2.5, "isobn": 3.5})


def test_expected_max_standard_normal_known_values_and_monte_carlo():
    assert expected_max_standard_normal(1) == pytest.approx(0.0, abs=1e-12)
    assert expected_max_standard_normal(2) == pytest.approx(1 / math.sqrt(math.pi), rel=1e-9)
    assert expected_max_standard_normal(3) == pytest.approx(3 / (2 * math.sqrt(math.pi)), rel=1e-9)
    simulated = np.random.default_rng(0).standard_normal((200_000, 50)).max(axis=1).mean()
    assert expected_max_standard_normal(50) == pytest.approx(simulated, rel=0.01)


def test_sample_median_std_exact_small_n_and_asymptotic_large_n():
    assert sample_median_std(1) == pytest.approx(1.0, rel=1e-9)
    assert sample_median_std(2) == pytest.approx(1 / math.sqrt(2), rel=1e-6)  # mean of two
    draws = np.random.default_rng(1).standard_normal((200_000, 5))
    for n in (4, 5):
        assert sample_median_std(n) == pytest.approx(np.median(draws[:, :n], axis=1).std(), rel=0.01)
    assert sample_median_std(1001) == pytest.approx(math.sqrt(math.pi / (2 * 1001)), rel=0.01)


def test_selection_bias_grows_with_k_shrinks_with_seeds_and_matches_simulation():
    assert selection_bias(seed_std=0.02, n_seeds=5, k=1) == pytest.approx(0.0, abs=1e-12)
    by_k = [selection_bias(seed_std=0.02, n_seeds=5, k=k) for k in (2, 5, 20, 100)]
    assert np.all(np.diff(by_k) > 0)
    by_n = [selection_bias(seed_std=0.02, n_seeds=n, k=10) for n in (1, 3, 5, 10)]
    assert np.all(np.diff(by_n) < 0)
    assert selection_bias(seed_std=0.02, n_seeds=4, k=10, estimator="mean") == pytest.approx(
        expected_max_standard_normal(10) * 0.02 / 2)
    # 10 truly equal configurations, 5 seeds each (sd 0.02), report the best median
    scores = np.random.default_rng(4).normal(0.0, 0.02, (40_000, 10, 5))
    simulated = np.median(scores, axis=2).max(axis=1).mean()
    assert selection_bias(seed_std=0.02, n_seeds=5, k=10) == pytest.approx(simulated, rel=0.02)


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.1, "0.95"])
def test_confidence_outside_zero_one_is_named(confidence):
    a, b = {1: 0.9, 2: 0.8}, {1: 0.7, 2: 0.6}
    with pytest.raises(ValueError, match=re.escape(repr(confidence))):
        paired_comparison(a, b, confidence=confidence)
    with pytest.raises(ValueError, match=re.escape(repr(confidence))):
        aggregate_across_tasks({"rte": (a, b)}, confidence=confidence)


@pytest.mark.parametrize("call", [
    lambda: interquartile_mean([]),
    lambda: iqm_by_method({"isobn": []}),
    lambda: paired_comparison([0.9, 0.8], [0.7, 0.6]),
    lambda: paired_comparison({1: 0.9}, {1: 0.8}, n_resamples=0),
    lambda: paired_comparison({1: 0.9}, {1: 0.8}, rng="seed"),
    lambda: paired_comparison({1: 0.9}, {1: "high"}),
    lambda: aggregate_across_tasks({}),
    lambda: aggregate_across_tasks({"rte": ({1: 0.9}, {2: 0.8})}),
    lambda: expected_max_standard_normal(0),
    lambda: selection_bias(seed_std=-1.0, n_seeds=5, k=3),
    lambda: selection_bias(seed_std=0.1, n_seeds=0, k=3),
    lambda: selection_bias(seed_std=0.1, n_seeds=5, k=3, estimator="max"),
])
def test_bad_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_bad_input_messages_name_the_value():
    with pytest.raises(ValueError, match=r"'rte'"):
        aggregate_across_tasks({"rte": ({1: 0.9}, {2: 0.8})})
    with pytest.raises(ValueError, match=r"'high'"):
        paired_comparison({1: 0.9}, {1: "high"})
    with pytest.raises(ValueError, match=r"list"):
        paired_comparison([0.9, 0.8], [0.7, 0.6])
    with pytest.raises(ValueError, match=r"position 1 is nan"):
        interquartile_mean([0.5, float("nan")])
    with pytest.raises(ValueError, match=r"got 0"):
        selection_bias(seed_std=0.1, n_seeds=0, k=3)


def test_fewer_than_five_seed_pairs_never_give_a_verdict():
    """3 pairs, all +2: the percentile interval [+2, +2] excludes 0, but with 3 pairs no interval
    reaches 95% (at best 75%), so there is no verdict, and the note says why."""
    a, b = {1: 2.0, 2: 2.1, 3: 1.9}, {1: 0.0, 2: 0.0, 3: 0.0}
    result = paired_comparison(a, b)
    assert result.ci95_low > 0 and result.verdict == NOT_DISTINGUISHABLE
    assert "only 3 seed pairs" in result.note and "no verdict" in result.note
    five = paired_comparison({**a, 4: 2.0, 5: 2.2}, {**b, 4: 0.0, 5: 0.0})
    assert five.verdict == A_BETTER


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
