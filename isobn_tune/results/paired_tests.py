"""Exact paired tests for seed pairs: the two-sided Wilcoxon signed-rank test, the Hodges-Lehmann
estimate and its distribution-free interval, built so that on every comparison

    verdict given  <=>  p <= alpha  <=>  the interval excludes 0

holds exactly, ties and zero differences included.

Why one statistic for all three: the signed-rank statistic of differences d equals the number of
positive Walsh averages (d_i + d_j) / 2, i <= j (Tukey). The Hodges-Lehmann estimate is their
median, and the interval [w_(k), w_(M+1-k)] of the ordered Walsh averages (M = n(n+1)/2) is the
set of shifts the test does not reject. The test here counts the Walsh averages directly, so the
duality is an identity rather than a coincidence of two implementations:

- N+, N-, N0: the Walsh averages above, below and at 0; statistic t = min(N+, N-) + N0.
- p = min(1, 2 P(T <= t)), T the exact null distribution of the signed-rank statistic.
- the interval's k - 1 = the largest c with 2 P(T <= c) <= alpha; its level 1 - 2 P(T <= k - 1) is
  the smallest achievable level >= 1 - alpha (96.9% at n = 6, 95.3% at n = 7).
- p <= alpha <=> t <= k - 1 <=> (N- + N0 <= k - 1, i.e. w_(k) > 0) or (N+ + N0 <= k - 1, i.e.
  w_(M+1-k) < 0) <=> 0 is outside the interval.

Without ties or zeros t = min(T+, T-) and p equals ``scipy.stats.wilcoxon(method="exact")``
(tested). With them scipy's exact mode changes the statistic (zero handling, mid-ranks, a
permutation distribution), whose rejections no longer coincide with the Walsh interval: on
d = (3, 2, 3, 2, 0, -1, 1, 2) it gives p = 0.047 while the 96.1% interval is [0, 2.5]; counting a
Walsh average at 0 against rejection instead keeps the duality and is conservative: a tiny
symmetric jitter breaks every tie, cannot lower t, and gives continuous data whose p is exact, so
P(p <= alpha) <= alpha under the null and the interval covers at least its stated level.
scipy has no public signed-rank null distribution; :func:`signed_rank_null_cdf` builds it by the
textbook recursion (exact integer counts).

Pure numpy/scipy; vectorised over leading axes where simulations need it (``benchmarks/calibration.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from isobn_tune.results.statistics import A_BETTER, B_BETTER, NOT_DISTINGUISHABLE, _paired_differences

__all__ = [
    "PairedTest",
    "check_alpha",
    "critical_count",
    "direction",
    "exact_paired_test",
    "level_for",
    "min_pairs_needed",
    "paired_test",
    "signed_rank_null_cdf",
    "too_few_text",
    "walsh_averages",
    "walsh_counts",
    "exact_p_values",
]

ALPHA = 0.05  # the default two-sided level of every verdict
_MAX_PAIRS = 1000  # the null distribution is exact in int64 counts / 2**n only while 2**n fits a float


def check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


@functools.cache
def signed_rank_null_cdf(n: int) -> np.ndarray:
    """P(T <= t) for t = 0..n(n+1)/2, T the signed-rank statistic of n pairs under the null
    (each sign +/- with probability 1/2, no ties): the coefficients of prod_i (1 + x**i) / 2**n."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 0 <= n <= _MAX_PAIRS:
        raise ValueError(f"n must be an integer in [0, {_MAX_PAIRS}], got {n!r}")
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=object if n > 60 else np.int64)
    counts[0] = 1
    for i in range(1, n + 1):  # add rank i with a + sign: shift the counts so far by i
        counts[i:] = counts[i:] + counts[:-i]
    cdf = (np.cumsum(counts) / float(2**n)).astype(float)
    cdf.setflags(write=False)  # cached: shared by every caller
    return cdf


def min_pairs_needed(alpha: float = ALPHA) -> int:
    """The fewest pairs at which the two-sided exact test can reach ``alpha``: its smallest p is
    2 / 2**n (every pair on one side), so 6 for alpha = 0.05 and 9 for 0.05 / 7."""
    alpha = check_alpha(alpha)
    n = 1
    while 2.0 * 0.5**n > alpha:
        n += 1
    return n


def critical_count(n: int, alpha: float = ALPHA) -> int:
    """The largest c with 2 P(T <= c) <= alpha on n pairs (reject iff the statistic <= c); -1 when
    no c qualifies (n < :func:`min_pairs_needed`)."""
    alpha = check_alpha(alpha)
    return int(np.searchsorted(2.0 * signed_rank_null_cdf(n), alpha, side="right")) - 1


def level_for(n: int, alpha: float = ALPHA) -> float:
    """The real confidence level of the Walsh-average interval that is dual to the test at
    ``alpha`` on n pairs: the smallest achievable level >= 1 - alpha (NaN below the minimum n)."""
    c = critical_count(n, alpha)
    return float("nan") if c < 0 else 1.0 - 2.0 * float(signed_rank_null_cdf(n)[c])


def walsh_averages(d: np.ndarray) -> np.ndarray:
    """(d_i + d_j) / 2 for i <= j over the last axis, sorted: shape (..., n(n+1)/2)."""
    i, j = np.triu_indices(d.shape[-1])
    return np.sort((d[..., i] + d[..., j]) / 2.0, axis=-1)


def walsh_counts(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N+, N-, N0): Walsh averages above, below and exactly at 0, over the last axis."""
    i, j = np.triu_indices(d.shape[-1])
    sums = d[..., i] + d[..., j]
    return (sums > 0).sum(axis=-1), (sums < 0).sum(axis=-1), (sums == 0).sum(axis=-1)


def exact_p_values(d: np.ndarray) -> np.ndarray:
    """Two-sided exact p-values of rows of paired differences (last axis: the n pairs, no NaN)."""
    d = np.asarray(d, dtype=float)
    n_pos, n_neg, n_zero = walsh_counts(d)
    t = np.minimum(n_pos, n_neg) + n_zero
    return np.minimum(1.0, 2.0 * signed_rank_null_cdf(d.shape[-1])[t])


def direction(d: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Per row of differences: +1 when the test at ``alpha`` says A better (the interval is above
    0), -1 when B better, 0 otherwise (also below the minimum n). Vectorised for simulations."""
    d = np.asarray(d, dtype=float)
    c = critical_count(d.shape[-1], alpha)
    n_pos, n_neg, n_zero = walsh_counts(d)
    return (n_neg + n_zero <= c).astype(int) - (n_pos + n_zero <= c).astype(int)


def too_few_text(alpha: float = ALPHA) -> str:
    """What a row without a test says, in every output format."""
    return f"too few seeds for a test at α = {alpha:g}: need ≥ {min_pairs_needed(alpha)} paired seeds"


@dataclass(frozen=True)
class PairedTest:
    """One exact paired comparison of A - B. ``p_value`` is None (and the interval NaN) when
    ``n_pairs`` < ``min_pairs_needed``; ``n_better``/``n_worse``/``n_tied`` count the seeds where A
    was above/below/equal to B and ``diff_min``/``diff_max`` bound the differences, always."""

    n_pairs: int
    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    p_value: float | None
    alpha: float
    min_pairs_needed: int
    n_better: int
    n_worse: int
    n_tied: int
    diff_min: float
    diff_max: float

    @property
    def tested(self) -> bool:
        return self.p_value is not None

    @property
    def verdict(self) -> str | None:
        """A_BETTER / B_BETTER when p <= alpha (the interval is then on that side of 0), else not
        distinguishable; None without a test."""
        if self.p_value is None:
            return None
        if self.p_value > self.alpha:
            return NOT_DISTINGUISHABLE
        return A_BETTER if self.ci_low > 0 else B_BETTER

    @property
    def note(self) -> str:
        """Why there is no verdict, or ''."""
        if self.n_pairs == 0:
            return "no seed with a score in both: nothing to compare"
        return "" if self.tested else too_few_text(self.alpha)


def exact_paired_test(d: np.ndarray, *, alpha: float = ALPHA) -> PairedTest:
    """The exact test, Hodges-Lehmann estimate and its dual interval for a 1-D array of paired
    differences (finite numbers), at two-sided level ``alpha`` (see the module docstring)."""
    alpha = check_alpha(alpha)
    d = np.asarray(d, dtype=float)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise ValueError(f"paired differences must be a 1-D array of finite numbers, got {d!r}")
    n = int(d.size)
    needed = min_pairs_needed(alpha)
    nan = float("nan")
    counts = {"n_better": int((d > 0).sum()), "n_worse": int((d < 0).sum()), "n_tied": int((d == 0).sum()),
              "diff_min": float(d.min()) if n else nan, "diff_max": float(d.max()) if n else nan}
    if n == 0:
        return PairedTest(0, nan, nan, nan, nan, None, alpha, needed, **counts)
    walsh = walsh_averages(d)
    estimate = float(np.median(walsh))
    if n < needed:
        return PairedTest(n, estimate, nan, nan, nan, None, alpha, needed, **counts)
    c = critical_count(n, alpha)
    low, high = float(walsh[c]), float(walsh[walsh.size - 1 - c])  # w_(k), w_(M+1-k) with k = c + 1
    return PairedTest(n, estimate, low, high, level_for(n, alpha), float(exact_p_values(d)), alpha, needed,
                      **counts)


def paired_test(a: Mapping[Any, float], b: Mapping[Any, float], *, alpha: float = ALPHA) -> PairedTest:
    """:func:`exact_paired_test` of a - b over the seeds scored (non-NaN) in both mappings."""
    return exact_paired_test(_paired_differences(a, b), alpha=alpha)

