"""Fast versions of benchmarks/calibration.py (300 simulated sweeps each, no Ray cluster): the
confirmatory verdict holds its level per task and family-wise, finds a real effect, and a
slow-starting equal method under per-trial ASHA gets no verdict once scores are budget-matched."""

from __future__ import annotations

import importlib.util
import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import REPO_ROOT

from isobn_tune.results.paired_tests import ALPHA, direction, exact_paired_test
from isobn_tune.results.statistics import A_BETTER, B_BETTER
from isobn_tune.results.verdicts import TaskComparison, confirmatory_rows

SWEEPS = 300
BENCHMARK = REPO_ROOT / "benchmarks" / "calibration.py"


@pytest.fixture(scope="module")
def calibration():
    """benchmarks/calibration.py as a module (benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("benchmarks_calibration", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _at_most_alpha(hits: np.ndarray) -> bool:
    """The benchmark's target: the rate <= alpha + 2 SE."""
    p = float(np.mean(hits))
    return p <= ALPHA + 2 * math.sqrt(p * (1 - p) / hits.size)


@pytest.mark.parametrize("noise", ["normal", "t3"])
def test_no_effect_confirmed_verdicts_stay_within_alpha_per_task_and_across_seven_tasks(calibration, noise):
    rng = np.random.default_rng(0)
    for n in (6, 10):
        one = calibration.select_then_confirm(rng, SWEEPS, n=n, tasks=1, noise=noise)
        seven = calibration.select_then_confirm(rng, SWEEPS, n=n, tasks=7, noise=noise)
        assert _at_most_alpha(one.confirmed[:, 0] != 0)
        assert _at_most_alpha(calibration.any_holm_verdict(seven.p_confirmed))
        assert np.mean((seven.on_selection_seeds != 0).any(axis=1)) > 0.1  # uncorrected rows would not
    below = calibration.select_then_confirm(rng, SWEEPS, n=5, tasks=1, noise=noise)
    assert not below.confirmed.any() and np.isnan(below.p_confirmed).all()  # no test under 6 seeds


def test_the_simulated_holm_verdicts_are_the_verdicts_of_confirmatory_rows(calibration):
    rng = np.random.default_rng(1)
    sweep = calibration.select_then_confirm(rng, 40, n=9, tasks=7, noise="normal", effect=0.8)
    any_verdict = calibration.any_holm_verdict(sweep.p_confirmed)
    for i in range(40):
        comparisons = [TaskComparison(task=f"t{t}", metric="accuracy", method="isobn", baseline="none",
                                      a="a", b="b", a_scores=dict(enumerate(d.tolist())),
                                      b_scores=dict.fromkeys(range(9), 0.0), budget_epochs=3)
                       for t, d in enumerate(sweep.d_confirmed[i])]
        rows = confirmatory_rows(comparisons)
        assert any(r.verdict in (A_BETTER, B_BETTER) for r in rows) == any_verdict[i]
        for t, r in enumerate(rows):
            assert r.p_value == sweep.p_confirmed[i, t]
            own = exact_paired_test(sweep.d_confirmed[i, t]).verdict
            assert {A_BETTER: 1, B_BETTER: -1}.get(own, 0) == sweep.confirmed[i, t]
    assert 0 < any_verdict.mean() < 1


def test_a_one_point_effect_on_ten_seeds_is_found_at_least_three_times_in_four(calibration):
    sweep = calibration.select_then_confirm(np.random.default_rng(2), SWEEPS, n=10, tasks=1, noise="normal",
                                            effect=1.0)
    found = sweep.confirmed[:, 0]
    p = float(np.mean(found == 1))
    assert p + 2 * math.sqrt(p * (1 - p) / SWEEPS) >= 0.75
    assert not (found == -1).any()


def test_simulated_asha_stops_exactly_the_trials_rays_asha_bracket_stops(calibration):
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.schedulers.async_hyperband import _Bracket

    sweep = calibration.simulate_asha(np.random.default_rng(3), 25, n=6)
    epochs = sweep.curves.shape[-1]
    for i in range(25):
        bracket = _Bracket(min_t=1, max_t=epochs, reduction_factor=2, s=0)
        for trial in sweep.order[i]:
            stopped = epochs
            for epoch in range(1, epochs + 1):
                action = bracket.on_result(SimpleNamespace(trial_id=str(trial)), epoch,
                                           float(sweep.curves[i, trial, epoch - 1]))
                if action == TrialScheduler.STOP:
                    stopped = epoch
                    break
            assert stopped == sweep.stop_epoch[i, trial]
    assert (sweep.stop_epoch < epochs).mean() > 0.3


def test_slow_starter_is_declared_worse_as_recorded_but_not_budget_matched_or_confirmed(calibration):
    sweep = calibration.simulate_asha(np.random.default_rng(4), SWEEPS, n=20)
    recorded = direction(sweep.recorded[:, 1] - sweep.recorded[:, 0])
    assert np.mean(recorded == -1) > 0.5  # today's tables: stopped scores beside finished ones
    matched, tested = calibration.budget_matched_directions(sweep)
    assert tested.any()
    assert _at_most_alpha(matched != 0)
    assert _at_most_alpha(direction(sweep.confirmed[:, 1] - sweep.confirmed[:, 0]) != 0)
