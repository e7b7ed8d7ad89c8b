"""Tuning curves with distribution-free confidence bands (Lourie et al. 2024, "Show Your Work with
Confidence"), from the ``opda`` package.

A method's tuning curve answers "how good is the best of n random trials?": its median over
searches of n trials is the empirical quantile function at 0.5**(1/n). A simultaneous confidence
band for the CDF of one trial's score turns into a band for the whole curve at once, for every n,
with no assumption on the score's distribution (the hand-written expected-maximum curve's +-std
band had no stated coverage). It needs the score's range (``bounds``): with n trials the band
reaches the range's ends where the data cannot speak (small n, large budgets).

Band method: Kolmogorov-Smirnov (``"ks"``), exact for continuous scores and deterministic. opda's
tighter Learned-Miller-DeStefano bands (``"ld_equal_tailed"``) simulate their critical value: 1.3 s
for 30 trials and 10 s for 100 on the shared 2-core machine, per curve, too slow for a sweep's
end; pass ``method`` to use them. Ties (an accuracy on a finite dev set) make every one of these
bands conservative, not invalid: the band holds whenever the band of the underlying uniforms holds,
so opda's duplicate warning is silenced here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from opda.nonparametric import EmpiricalDistribution

from isobn_tune.data.tasks import get_task

__all__ = ["BAND_METHODS", "METRIC_BOUNDS", "TuningCurve", "metric_bounds", "tuning_curve"]

METRIC_BOUNDS: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0), "f1": (0.0, 1.0), "acc_and_f1": (0.0, 1.0),
    "mcc": (-1.0, 1.0), "pearson": (-1.0, 1.0), "spearman": (-1.0, 1.0), "corr": (-1.0, 1.0),
}
BAND_METHODS = ("ks", "dkw", "ld_equal_tailed", "ld_highest_density")
_DUPLICATES_WARNING = "Duplicates detected in ys"


def metric_bounds(task: str) -> tuple[float, float]:
    """The range of ``task``'s selection metric (a fraction, as trials report it)."""
    metric = get_task(task).selection_metric
    if metric not in METRIC_BOUNDS:
        raise ValueError(f"no known range for metric {metric!r} of task {task!r}; "
                         f"known: {sorted(METRIC_BOUNDS)}")
    return METRIC_BOUNDS[metric]


@dataclass(frozen=True)
class TuningCurve:
    """Median best score of n random trials for n in ``budgets``, with a simultaneous band at
    ``confidence`` over all of them; ``n_trials`` scores went in."""

    budgets: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float
    n_trials: int

    def to_rows(self) -> list[dict[str, float | int]]:
        return [{"budget": int(n), "median_best": float(m), "low": float(lo), "high": float(hi),
                 "confidence": self.confidence}
                for n, m, lo, hi in zip(self.budgets, self.median, self.low, self.high, strict=True)]


def tuning_curve(scores: Sequence[float], *, bounds: tuple[float, float], confidence: float = 0.95,
                 budgets: Sequence[int] | None = None, method: str = "ks") -> TuningCurve:
    """The median tuning curve of ``scores`` (one per trial, higher is better, i.i.d. draws of the
    search) at ``budgets`` (default 1..len(scores)) with opda's ``method`` band at ``confidence``."""
    ys = np.asarray(scores, dtype=float)
    low_bound, high_bound = (float(b) for b in bounds)
    if ys.ndim != 1 or ys.size == 0 or not np.all(np.isfinite(ys)):
        raise ValueError(f"scores must be a non-empty 1-D sequence of finite numbers, got {scores!r}")
    if not low_bound < high_bound or ys.min() < low_bound or ys.max() > high_bound:
        raise ValueError(f"bounds must be (low, high) with low < high around every score "
                         f"[{ys.min():g}, {ys.max():g}], got {bounds!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if method not in BAND_METHODS:
        raise ValueError(f"method must be one of {BAND_METHODS}, got {method!r}")
    ns = np.arange(1, ys.size + 1) if budgets is None else np.asarray(budgets, dtype=int)
    if ns.ndim != 1 or ns.size == 0 or np.any(ns < 1):
        raise ValueError(f"budgets must be positive integers, got {budgets!r}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DUPLICATES_WARNING, category=RuntimeWarning)
        # the lower CDF band puts mass higher up: it bounds the tuning curve from above
        cdf_low, point, cdf_high = EmpiricalDistribution.confidence_bands(
            ys, confidence, a=low_bound, b=high_bound, method=method, n_jobs=1,
            generator=np.random.default_rng(0))  # ld methods simulate: the same band for the same data
    return TuningCurve(budgets=ns, median=np.asarray(point.quantile_tuning_curve(ns), dtype=float),
                       low=np.asarray(cdf_high.quantile_tuning_curve(ns), dtype=float),
                       high=np.asarray(cdf_low.quantile_tuning_curve(ns), dtype=float),
                       confidence=float(confidence), n_trials=int(ys.size))
