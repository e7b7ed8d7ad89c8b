"""Are the verdicts calibrated? Simulated sweeps through the verdict code (no Ray, no training).

Scores are in points (x100). Each simulated seed has a shared effect (sd 2 points: head init and
data order are the same for every configuration run with it) and each trial its own noise, normal
or t with 3 degrees of freedom, scaled so a paired difference has sd 1 point. Printed, each rate
with its standard error (SE) and whether the target is met:

1. No effect, best-of-k selection then confirmation on fresh seeds. Per task, the method's best of
   18 configurations and the baseline's best of 6 (the paper's grid; all configurations truly
   equal) are chosen by their median over n selection seeds, then run on n fresh seeds and
   compared by the exact paired test (``isobn_tune.results.paired_tests``), Holm across 7 tasks
   (``isobn_tune.results.verdicts.holm``). Target: verdict rate <= alpha + 2 SE per task (1 task) and
   family-wise (any verdict among 7 tasks), for n = 3..20. Under n = 6 there is no test. Beside it,
   the rate when the selection seeds are tested instead (what confirmation avoids).
2. A true +1 point effect, paired sd 1, n = 10 fresh seeds: detection rate >= 0.75.
3. A slower-starting but equal method (2 points behind at epoch 1, equal at epoch 4) under
   per-trial ASHA (grace 1, reduction factor 2, 4 epochs: rungs at epochs 1 and 2; Ray's rule: a
   trial stops at a rung when its score there is below the (1 - 1/2) quantile of the scores
   recorded there before it; trials run one at a time in a random order). A trial's score is the
   best dev score it reached (as the sweep records it). Compared three ways: every seed pair as
   recorded (today's tables: stopped trials beside finished ones), budget-matched (only seeds where
   both trials ran all 4 epochs; no test under 6 such pairs), and confirmation of both at the full
   budget on fresh seeds. Target: the budget-matched and confirmed verdict rates <= alpha + 2 SE.

Run:  python benchmarks/calibration.py [--sweeps 4000] [--seed 0]
(raw output: benchmarks/results/calibration.txt). The unit tests run small versions of each.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np

from isobn_tune.results.paired_tests import ALPHA, direction, exact_p_values, min_pairs_needed
from isobn_tune.results.verdicts import holm

SEED_SD = 2.0  # shared per-seed effect, points
PAIRED_SD = 1.0  # sd of a paired difference, points
K_METHOD, K_BASELINE = 18, 6  # configurations per method (the paper's grid)
TASKS = 7
NOISES = ("normal", "t3")


def trial_noise(rng: np.random.Generator, noise: str, shape: tuple[int, ...]) -> np.ndarray:
    """Per-trial noise with sd PAIRED_SD / sqrt(2), so a paired difference has sd PAIRED_SD."""
    sd = PAIRED_SD / math.sqrt(2)
    if noise == "normal":
        return rng.normal(0.0, sd, shape)
    if noise == "t3":
        return rng.standard_t(3, shape) * sd / math.sqrt(3.0)  # t3 has variance 3
    raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")


def rate(hits: np.ndarray) -> tuple[float, float]:
    """Mean of a boolean array and its binomial standard error."""
    p = float(np.mean(hits))
    return p, math.sqrt(p * (1 - p) / hits.size) if hits.size else float("nan")


@dataclass(frozen=True)
class SelectConfirm:
    """Per sweep and task: the verdict direction on fresh seeds (+1 method better, -1 baseline
    better, 0 none), its p-value (NaN without a test), and the direction on the selection seeds."""

    confirmed: np.ndarray
    p_confirmed: np.ndarray
    on_selection_seeds: np.ndarray
    d_confirmed: np.ndarray  # (sweep, task, seed): the fresh paired differences tested


def select_then_confirm(rng: np.random.Generator, sweeps: int, *, n: int, tasks: int, noise: str,
                        effect: float = 0.0, alpha: float = ALPHA) -> SelectConfirm:
    """Best-of-k selection on n seeds, then the chosen pair on n fresh seeds (module docstring, 1-2)."""
    k = K_METHOD + K_BASELINE
    shift = np.where(np.arange(k) < K_METHOD, effect, 0.0)[:, None]  # the method's configurations first
    seeds = rng.normal(0.0, SEED_SD, (sweeps, tasks, 1, n))
    selection = seeds + shift + trial_noise(rng, noise, (sweeps, tasks, k, n))
    medians = np.median(selection, axis=-1)
    best_method = np.argmax(medians[..., :K_METHOD], axis=-1)
    best_baseline = K_METHOD + np.argmax(medians[..., K_METHOD:], axis=-1)
    pick = np.take_along_axis
    d_selection = (pick(selection, best_method[..., None, None], axis=2)
                   - pick(selection, best_baseline[..., None, None], axis=2))[:, :, 0]
    fresh = rng.normal(0.0, SEED_SD, (sweeps, tasks, n))  # the same fresh seeds for both configurations
    d_fresh = ((fresh + effect + trial_noise(rng, noise, (sweeps, tasks, n)))
               - (fresh + trial_noise(rng, noise, (sweeps, tasks, n))))
    p = exact_p_values(d_fresh) if n >= min_pairs_needed(alpha) else np.full((sweeps, tasks), np.nan)
    return SelectConfirm(direction(d_fresh, alpha), p, direction(d_selection, alpha), d_fresh)


def any_holm_verdict(p: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Per sweep (row of per-task p-values): does any task get a verdict after Holm?"""
    if np.isnan(p).all():
        return np.zeros(p.shape[0], dtype=bool)
    return np.array([bool(np.any(holm(row) <= alpha)) for row in p])


@dataclass(frozen=True)
class AshaSweep:
    """Per sweep, seed and method (0: baseline, 1: slow starter): the best score each trial
    recorded, whether it ran every epoch, and fresh full-budget scores for confirmation."""

    recorded: np.ndarray
    completed: np.ndarray
    confirmed: np.ndarray
    curves: np.ndarray  # (sweep, trial, epoch): trial t is method t // n, seed t % n
    order: np.ndarray  # (sweep, position): the trial run at each position
    stop_epoch: np.ndarray  # (sweep, trial): the last epoch the trial ran


def asha_rungs(epochs: int, grace: int, eta: int) -> list[int]:
    """Ray's ASHA milestones: grace * eta**i below the last epoch."""
    rungs, milestone = [], grace
    while milestone < epochs:
        rungs.append(milestone)
        milestone *= eta
    return rungs


def simulate_asha(rng: np.random.Generator, sweeps: int, *, n: int, gap: float = 2.0, epochs: int = 4,
                  grace: int = 1, eta: int = 2) -> AshaSweep:
    """Per-trial ASHA over 2n trials (module docstring, 3). Each trial's curve: seed effect + its
    own noise - a start-up gap for the slow method that shrinks linearly to 0 at the last epoch
    + small per-epoch noise."""
    trials = 2 * n
    lag = np.linspace(1.0, 0.0, epochs) * gap  # the slow method's deficit at epochs 1..E
    seeds = rng.normal(0.0, SEED_SD, (sweeps, 1, n, 1))
    own = trial_noise(rng, "normal", (sweeps, 2, n, 1))
    slow = np.array([0.0, 1.0])[None, :, None, None]
    curves = seeds + own - slow * lag + rng.normal(0, 0.3, (sweeps, 2, n, epochs))
    flat = curves.reshape(sweeps, trials, epochs)  # trial t: method t // n, seed t % n
    order = np.argsort(rng.random((sweeps, trials)), axis=1)  # the random order trials run in
    stop_epoch = np.full((sweeps, trials), epochs)
    rows = np.arange(sweeps)
    for milestone in asha_rungs(epochs, grace, eta):
        recorded = np.full((sweeps, trials), np.inf)  # +inf: nothing recorded (sorts last)
        count = np.zeros(sweeps, dtype=int)
        for position in range(trials):
            trial = order[:, position]
            reached = stop_epoch[rows, trial] >= milestone
            score = flat[rows, trial, milestone - 1]
            ranked = np.sort(recorded, axis=1)
            where = (1 - 1 / eta) * np.maximum(count - 1, 0)  # numpy's linear percentile position
            low = np.take_along_axis(ranked, np.floor(where).astype(int)[:, None], axis=1)[:, 0]
            high = np.take_along_axis(ranked, np.ceil(where).astype(int)[:, None], axis=1)[:, 0]
            low, high = np.where(count > 0, low, 0.0), np.where(count > 0, high, 0.0)
            cutoff = np.where(count > 0, low + (where - np.floor(where)) * (high - low), -np.inf)
            stops = reached & (score < cutoff)
            stop_epoch[rows[stops], trial[stops]] = milestone
            recorded[rows[reached], count[reached]] = score[reached]
            count += reached
    ran = np.arange(epochs)[None, None, :] < stop_epoch[..., None]
    best = np.where(ran, flat, -np.inf).max(axis=-1).reshape(sweeps, 2, n)
    fresh_seeds = rng.normal(0.0, SEED_SD, (sweeps, 1, n))
    confirmed = fresh_seeds + trial_noise(rng, "normal", (sweeps, 2, n)) + rng.normal(0, 0.3, (sweeps, 2, n))
    return AshaSweep(best, (stop_epoch == epochs).reshape(sweeps, 2, n), confirmed, flat, order, stop_epoch)


def budget_matched_directions(sweep: AshaSweep, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Per sweep: the verdict direction (slow minus baseline) over the seeds where both trials ran
    every epoch (0 under ``min_pairs_needed`` such pairs), and whether there was a test."""
    both = sweep.completed.all(axis=1)
    d = sweep.recorded[:, 1] - sweep.recorded[:, 0]
    out = np.zeros(d.shape[0], dtype=int)
    tested = both.sum(axis=1) >= min_pairs_needed(alpha)
    for pairs in np.unique(both.sum(axis=1)[tested]):
        rows = np.flatnonzero(tested & (both.sum(axis=1) == pairs))
        out[rows] = direction(d[rows][both[rows]].reshape(rows.size, pairs), alpha)
    return out, tested


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=4000, help="simulated sweeps per cell")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    sweeps, alpha = args.sweeps, ALPHA
    print(f"calibration: {sweeps} simulated sweeps per row, alpha = {alpha}, seed {args.seed}; "
          f"scores in points, seed effect sd {SEED_SD}, paired sd {PAIRED_SD}; "
          f"best of {K_METHOD} vs best of {K_BASELINE} configurations")
    all_met = True

    print("\n1. no effect: select on n seeds, confirm on n fresh seeds (target <= alpha + 2 SE)")
    print("| noise | n | per task: confirmed | on selection seeds | family of 7 tasks, Holm: confirmed "
          "| on selection seeds, any of 7 | target met |")
    print("|---|---|---|---|---|---|---|")
    for noise in NOISES:
        for n in range(3, 21):
            one = select_then_confirm(rng, sweeps, n=n, tasks=1, noise=noise)
            seven = select_then_confirm(rng, sweeps, n=n, tasks=TASKS, noise=noise)
            per_task, per_task_se = rate(one.confirmed[:, 0] != 0)
            family, family_se = rate(any_holm_verdict(seven.p_confirmed))
            naive = rate(one.on_selection_seeds[:, 0] != 0)[0]
            naive_family = rate((seven.on_selection_seeds != 0).any(axis=1))[0]
            met = per_task <= alpha + 2 * per_task_se and family <= alpha + 2 * family_se
            all_met &= met
            note = "" if n >= min_pairs_needed(alpha) else " (no test)"
            print(f"| {noise} | {n}{note} | {per_task:.4f} ± {per_task_se:.4f} | {naive:.4f} "
                  f"| {family:.4f} ± {family_se:.4f} | {naive_family:.4f} | {'met' if met else 'MISSED'} |")

    print("\n2. a true +1 point effect, paired sd 1, n = 10 fresh seeds (target detection >= 0.75)")
    print("| noise | detected (method better) | wrong direction | target met |")
    print("|---|---|---|---|")
    for noise in NOISES:
        found = select_then_confirm(rng, sweeps, n=10, tasks=1, noise=noise, effect=1.0).confirmed[:, 0]
        p, se = rate(found == 1)
        met = p >= 0.75
        if noise == "normal":  # the target is stated for normal noise; t3 is shown beside it
            all_met &= met
        print(f"| {noise} | {p:.4f} ± {se:.4f} | {rate(found == -1)[0]:.4f} | {'met' if met else 'MISSED'}"
              f"{'' if noise == 'normal' else ' (not a target)'} |")

    print("\n3. slower start, equal at the end, per-trial ASHA (rungs at epochs 1 and 2 of 4); "
          "target <= alpha + 2 SE for budget-matched and confirmed")
    print("| seeds | as recorded: slow declared worse | budget-matched: sweeps with a test | verdict "
          "| confirmed on fresh seeds: verdict | target met |")
    print("|---|---|---|---|---|---|")
    for n in (10, 20):
        sweep = simulate_asha(rng, sweeps, n=n)
        recorded = direction(sweep.recorded[:, 1] - sweep.recorded[:, 0], alpha)
        matched, tested = budget_matched_directions(sweep, alpha)
        confirmed = direction(sweep.confirmed[:, 1] - sweep.confirmed[:, 0], alpha)
        m, m_se = rate(matched != 0)
        c, c_se = rate(confirmed != 0)
        met = m <= alpha + 2 * m_se and c <= alpha + 2 * c_se
        all_met &= met
        print(f"| {n} | {rate(recorded == -1)[0]:.4f} | {rate(tested)[0]:.4f} | {m:.4f} ± {m_se:.4f} "
              f"| {c:.4f} ± {c_se:.4f} | {'met' if met else 'MISSED'} |")
    print(f"\nall targets {'met' if all_met else 'NOT met'}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
