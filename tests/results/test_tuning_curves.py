"""Tuning curves with opda's distribution-free bands (isobn_tune.results.tuning_curves): the band covers
the true curve at least as often as it says, ties included. No Ray, fixed RNGs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from isobn_tune.data.tasks import TASKS
from isobn_tune.results.tuning_curves import metric_bounds, tuning_curve

BUDGETS = np.arange(1, 21)


def test_curve_is_the_median_of_the_best_of_n_and_sits_inside_its_band():
    scores = [0.61, 0.72, 0.55, 0.70, 0.66, 0.58, 0.64]
    curve = tuning_curve(scores, bounds=(0.0, 1.0))
    assert curve.budgets.tolist() == list(range(1, 8)) and curve.n_trials == 7
    assert curve.median[0] == pytest.approx(np.median(scores))
    assert np.all(np.diff(curve.median) >= 0) and curve.median[-1] <= max(scores)
    assert np.all((0.0 <= curve.low) & (curve.low <= curve.median) & (curve.median <= curve.high)
                  & (curve.high <= 1.0))
    rows = curve.to_rows()
    assert rows[0] == {"budget": 1, "median_best": curve.median[0], "low": curve.low[0],
                       "high": curve.high[0], "confidence": 0.95}


@pytest.mark.parametrize("kind", ["continuous", "tied"])
def test_band_covers_the_true_tuning_curve_at_every_budget_at_least_95_percent(kind):
    """The true median tuning curve is F^-1(0.5 ** (1 / n)). Tied: accuracies on a 100-row dev set
    (multiples of 0.01), where the band is conservative; continuous: a beta distribution."""
    rng = np.random.default_rng(0)
    sweeps, n_trials = 400, 15
    if kind == "continuous":
        truth = stats.beta(8, 4).ppf(0.5 ** (1 / BUDGETS))
        draws = rng.beta(8, 4, (sweeps, n_trials))
    else:
        truth = stats.binom(100, 0.7).ppf(0.5 ** (1 / BUDGETS)) / 100
        draws = rng.binomial(100, 0.7, (sweeps, n_trials)) / 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # opda's duplicate warning must not reach the console
        covered = [np.all((c.low <= truth) & (truth <= c.high))
                   for c in (tuning_curve(d, bounds=(0.0, 1.0), budgets=BUDGETS) for d in draws)]
    rate = float(np.mean(covered))
    assert rate >= 0.95 - 2 * np.sqrt(0.95 * 0.05 / sweeps)


def test_metric_bounds_cover_every_task():
    assert metric_bounds("rte") == (0.0, 1.0)
    assert metric_bounds("cola") == (-1.0, 1.0)
    assert metric_bounds("stsb") == (-1.0, 1.0)
    assert all(metric_bounds(task) for task in TASKS)


@pytest.mark.parametrize("call, match", [
    (lambda: tuning_curve([], bounds=(0, 1)), "scores must be a non-empty"),
    (lambda: tuning_curve([0.5, float("nan")], bounds=(0, 1)), "finite numbers"),
    (lambda: tuning_curve([0.5, -0.2], bounds=(0, 1)), "around every score \\[-0.2, 0.5\\], got \\(0, 1\\)"),
    (lambda: tuning_curve([0.5], bounds=(0, 1), confidence=1.0), "confidence must be in \\(0, 1\\), got 1.0"),
    (lambda: tuning_curve([0.5], bounds=(0, 1), method="bootstrap"), "method must be one of"),
    (lambda: tuning_curve([0.5], bounds=(0, 1), budgets=[0]), "budgets must be positive integers"),
])
def test_bad_input_is_a_one_line_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
