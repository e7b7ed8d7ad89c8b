"""Exact paired tests (isobn_tune.results.paired_tests): pure numpy/scipy, no Ray, fixed RNGs."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy import stats

from isobn_tune.results.paired_tests import (
    critical_count,
    direction,
    exact_p_values,
    exact_paired_test,
    level_for,
    min_pairs_needed,
    paired_test,
    signed_rank_null_cdf,
    too_few_text,
)
from isobn_tune.results.statistics import A_BETTER, B_BETTER, NOT_DISTINGUISHABLE

ALPHAS = (0.01, 0.05, 0.1, 0.2)


def _samples(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Continuous, tied-with-zeros (small integers), shifted, and degenerate samples, n = 1..20."""
    out = []
    for _ in range(count):
        n = int(rng.integers(1, 21))
        kind = rng.integers(4)
        if kind == 0:
            d = rng.normal(rng.normal(0, 1), 1, n)
        elif kind == 1:
            d = rng.integers(-3, 4, n).astype(float) + rng.integers(0, 3)
        elif kind == 2:
            d = np.round(rng.standard_t(3, n), 1)
        else:
            d = np.full(n, float(rng.integers(-1, 2)))
        out.append(d)
    return out


def test_min_pairs_needed_is_where_the_smallest_exact_p_first_reaches_alpha():
    assert min_pairs_needed(0.05) == 6
    assert min_pairs_needed(0.05 / 7) == 9
    for alpha in (0.2, 0.1, 0.05, 0.01, 0.001):
        n = min_pairs_needed(alpha)
        all_positive = np.arange(1.0, n + 1)
        assert stats.wilcoxon(all_positive, method="exact").pvalue <= alpha
        assert stats.wilcoxon(all_positive[:-1], method="exact").pvalue > alpha
        assert critical_count(n, alpha) == 0 and critical_count(n - 1, alpha) == -1


def test_interval_level_is_the_smallest_achievable_level_at_least_one_minus_alpha():
    assert level_for(6) == pytest.approx(0.96875)
    assert level_for(7) == pytest.approx(0.953125)
    assert np.isnan(level_for(5))
    for n in range(6, 31):
        c = critical_count(n)
        assert level_for(n) >= 0.95
        assert 1 - 2 * signed_rank_null_cdf(n)[c + 1] < 0.95  # one Walsh average narrower misses 95%


def test_null_distribution_is_the_exact_signed_rank_distribution():
    for n in (1, 4, 9):  # brute force over every sign vector
        ranks = np.arange(1, n + 1)
        t_plus = [int(ranks[np.array(signs, dtype=bool)].sum())
                  for signs in itertools.product((0, 1), repeat=n)]
        expected = np.cumsum(np.bincount(t_plus, minlength=n * (n + 1) // 2 + 1)) / 2**n
        np.testing.assert_allclose(signed_rank_null_cdf(n), expected, rtol=0, atol=1e-15)


def test_p_value_equals_scipys_exact_wilcoxon_without_ties_or_zeros():
    rng = np.random.default_rng(0)
    for n in range(1, 26):
        for _ in range(5):
            d = rng.normal(rng.normal(0, 0.5), 1, n)
            expected = stats.wilcoxon(d, method="exact").pvalue
            assert exact_p_values(d) == pytest.approx(expected, rel=1e-12, abs=0)


def test_verdict_iff_p_at_most_alpha_iff_interval_excludes_zero_on_random_and_tied_samples():
    rng = np.random.default_rng(1)
    seen = {A_BETTER: 0, B_BETTER: 0, NOT_DISTINGUISHABLE: 0, None: 0}
    for d in _samples(rng, 800):
        for alpha in ALPHAS:
            r = exact_paired_test(d, alpha=alpha)
            seen[r.verdict] += 1
            if d.size < min_pairs_needed(alpha):
                assert r.p_value is None and r.verdict is None and np.isnan(r.ci_low)
                continue
            excludes = r.ci_low > 0 or r.ci_high < 0
            given = r.verdict in (A_BETTER, B_BETTER)
            assert given == (r.p_value <= alpha) == excludes, (d, alpha, r)
            assert r.ci_low <= r.estimate <= r.ci_high
            assert (r.verdict == A_BETTER) == (r.ci_low > 0)
            assert direction(d, alpha) == {A_BETTER: 1, B_BETTER: -1}.get(r.verdict, 0)
    assert min(seen.values()) > 30  # every outcome occurs, ties included


def test_interval_is_exactly_the_set_of_shifts_the_test_does_not_reject():
    rng = np.random.default_rng(2)
    for d in _samples(rng, 200):
        if d.size < 6:
            continue
        d = np.round(4 * d) / 4  # quarters: every shift below is exact in floating point
        r = exact_paired_test(d)
        walsh = np.unique([(x + y) / 2 for x, y in itertools.combinations_with_replacement(d, 2)])
        shifts = np.concatenate([walsh, (walsh[:-1] + walsh[1:]) / 2, [walsh[0] - 1, walsh[-1] + 1]])
        for theta in shifts:
            rejected = exact_paired_test(d - theta).p_value <= 0.05
            assert rejected == (not r.ci_low <= theta <= r.ci_high), (d, theta, r)


def test_hodges_lehmann_estimate_is_the_median_of_walsh_averages():
    rng = np.random.default_rng(3)
    for d in _samples(rng, 100):
        walsh = [(x + y) / 2 for x, y in itertools.combinations_with_replacement(d, 2)]
        assert exact_paired_test(d).estimate == pytest.approx(np.median(walsh), abs=1e-12)


def test_vectorised_p_values_and_directions_match_row_by_row():
    rng = np.random.default_rng(4)
    d = np.round(rng.normal(0.8, 1, (300, 9)), 1)
    p = exact_p_values(d)
    signs = direction(d)
    for row, p_row, sign in zip(d, p, signs, strict=True):
        r = exact_paired_test(row)
        assert p_row == r.p_value
        assert sign == {A_BETTER: 1, B_BETTER: -1}.get(r.verdict, 0)


@pytest.mark.parametrize("kind", ["continuous", "tied"])
def test_null_rejection_rate_is_at_most_alpha(kind):
    """Symmetric null: exact (equal to the achievable level) for continuous data, conservative with
    ties and zeros (integer differences in -2..2)."""
    rng = np.random.default_rng(5)
    n, sweeps = 8, 20000
    if kind == "continuous":
        d = rng.normal(0, 1, (sweeps, n))
    else:
        d = rng.integers(-2, 3, (sweeps, n)).astype(float)
    rate = float(np.mean(exact_p_values(d) <= 0.05))
    achievable = 2 * signed_rank_null_cdf(n)[critical_count(n)]  # 0.0391 at n = 8
    se = np.sqrt(achievable * (1 - achievable) / sweeps)
    assert rate <= achievable + 3 * se
    if kind == "continuous":
        assert rate >= achievable - 3 * se


def test_too_few_pairs_give_counts_and_range_but_no_test():
    a = {1: 0.7, 2: 0.6, 3: 0.8, 4: 0.5, 5: float("nan")}
    r = paired_test(a, {1: 0.6, 2: 0.65, 3: 0.7, 4: 0.5, 9: 0.1})
    assert (r.n_pairs, r.n_better, r.n_worse, r.n_tied) == (4, 2, 1, 1)
    assert (r.diff_min, r.diff_max) == pytest.approx((-0.05, 0.1))
    assert r.p_value is None and r.verdict is None and np.isnan(r.ci_low) and np.isnan(r.ci_level)
    assert r.note == too_few_text() == "too few seeds for a test at α = 0.05: need ≥ 6 paired seeds"
    walsh = [(x + y) / 2 for x, y in itertools.combinations_with_replacement([0.1, -0.05, 0.1, 0.0], 2)]
    assert r.estimate == pytest.approx(np.median(walsh))
    assert paired_test({}, {}).note == "no seed with a score in both: nothing to compare"


def test_all_zero_differences_are_not_distinguishable():
    r = exact_paired_test(np.zeros(10))
    assert r.p_value == 1.0 and r.verdict == NOT_DISTINGUISHABLE and r.ci_low == r.ci_high == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: exact_paired_test(np.ones(6), alpha=0), "alpha must be a number in \\(0, 1\\), got 0"),
    (lambda: exact_paired_test(np.ones(6), alpha=True), "alpha must be"),
    (lambda: min_pairs_needed(1.5), "alpha must be"),
    (lambda: exact_paired_test(np.array([1.0, np.nan])), "finite numbers"),
    (lambda: exact_paired_test(np.ones((2, 3))), "1-D array"),
    (lambda: signed_rank_null_cdf(-1), "n must be an integer"),
])
def test_bad_input_is_a_one_line_error(call, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match):
            call()
