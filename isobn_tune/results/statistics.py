"""Is configuration A better than B beyond seed noise? Paired seed statistics for sweeps.

Every configuration of a sweep runs with the same seeds, and a seed fixes the head init and the
data order, so two configurations' scores are *paired by seed*: comparing them seed by seed
removes the part of the noise the seed shares between them. Scores are "higher is better" floats
(dev accuracy, F1, ...).

- verdict labels, shared by the exact tests of :mod:`.paired_tests` and :mod:`.verdicts`;
- :func:`paired_worse_test`: is A worse than B by more than a margin? A one-sided exact Wilcoxon
  signed-rank test, for decisions on few seeds (the ``race_by_config`` scheduler);
- :func:`percentile_interval`: a percentile bootstrap interval (the figures' seed-median bands).

Pure numpy/scipy: no torch, Ray or MLflow, so reports can use it anywhere.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

__all__ = [
    "A_BETTER",
    "B_BETTER",
    "NOT_DISTINGUISHABLE",
    "VERDICTS",
    "PairedWorse",
    "Verdict",
    "paired_worse_test",
    "percentile_interval",
    "smallest_one_sided_p",
]

A_BETTER = "A better"
B_BETTER = "B better"
NOT_DISTINGUISHABLE = "not distinguishable from seed noise"
VERDICTS = (A_BETTER, B_BETTER, NOT_DISTINGUISHABLE)
Verdict = Literal["A better", "B better", "not distinguishable from seed noise"]


# scipy >= 1.15 takes a Generator as ``rng``; older releases (the project allows >= 1.11) only have
# ``random_state``, which accepts a Generator too.
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def _paired_differences(a: Mapping[Any, float], b: Mapping[Any, float], where: str = "") -> np.ndarray:
    """a[s] - b[s] for the seeds s in both mappings whose scores are both non-NaN, in seed order
    (so neither mapping's order changes the result)."""
    for name, scores in (("a", a), ("b", b)):
        if not isinstance(scores, Mapping):
            raise ValueError(f"{name}{where} must be a mapping seed -> score (pairs are matched by seed), "
                             f"got {type(scores).__name__}: {scores!r}")
        for seed, value in scores.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name}{where}[{seed!r}] must be a number, got {value!r}") from None
            if math.isinf(number):
                raise ValueError(f"{name}{where}[{seed!r}] must be finite or NaN, got {value!r}")
    seeds = sorted(s for s in a.keys() & b.keys() if not (math.isnan(float(a[s])) or math.isnan(float(b[s]))))
    return np.array([float(a[s]) - float(b[s]) for s in seeds], dtype=float)


def percentile_interval(samples: Sequence[np.ndarray], statistic: Callable[..., Any], *, confidence: float,
                         n_resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*samples, axis=-1)``; each sample is resampled
    on its own (one sample: plain bootstrap; several: stratified bootstrap)."""
    if all(np.ptp(s) == 0 for s in samples):  # every resample equals the data
        value = float(statistic(*samples, axis=-1))
        return value, value
    result = stats.bootstrap(tuple(samples), statistic, n_resamples=n_resamples, vectorized=True,
                             paired=False, axis=-1, confidence_level=confidence, method="percentile",
                             **{_RNG_KEYWORD: rng})
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class PairedWorse:
    """A one-sided paired test of "A is worse than B": ``diff_median`` is the median of a - b
    over the ``n_pairs`` seeds scored in both (NaN without pairs)."""

    n_pairs: int
    diff_median: float
    p_value: float


def smallest_one_sided_p(n_pairs: int) -> float:
    """The smallest p-value the exact one-sided signed-rank test reaches on ``n_pairs`` pairs (every
    pair on the same side): 2**-n, so 0.125 for 3 seeds and 0.03125 for 5."""
    return 0.5**n_pairs


def paired_worse_test(a: Mapping[Any, float], b: Mapping[Any, float], *, margin: float = 0.0) -> PairedWorse:
    """Is A worse than B by more than ``margin``? ``a`` and ``b`` map seed -> score (higher is
    better); only seeds scored in both count.

    The exact one-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) of the differences
    a - b + margin, alternative: shifted below 0. Exact because decisions are taken on a handful of
    seeds, where the normal approximation is off. Pairs exactly at -margin carry no sign and are
    dropped (Wilcoxon's convention, done here so every scipy release does the same); with none left
    the p-value is 1. With n pairs the p-value is at least :func:`smallest_one_sided_p`.
    """
    d = _paired_differences(a, b)
    if d.size == 0:
        return PairedWorse(0, float("nan"), 1.0)
    shifted = d + margin
    signed = shifted[shifted != 0]
    if signed.size == 0:
        return PairedWorse(int(d.size), float(np.median(d)), 1.0)
    result = stats.wilcoxon(signed, alternative="less", method="exact")
    return PairedWorse(int(d.size), float(np.median(d)), float(result.pvalue))






















