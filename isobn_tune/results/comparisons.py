"""Does a method beat the baseline beyond seed noise? Paired seed comparisons of a sweep's configurations.

Built on :mod:`isobn_tune.results.statistics` from the seed scores of each configuration (a
:class:`~isobn_tune.results.aggregate.GroupSummary`): per task, every configuration and each method's
best-on-dev configuration against the best baseline configuration (or any two named
configurations), and across tasks each method's best against the baseline's best.

Budget-matched: a confirmatory row (each method's best against the baseline's best) pairs only
seeds that ran the full budget; an exploratory row (any other configuration) pairs seeds at the
last epoch every paired trial of both reached, so a configuration a scheduler stopped early is
compared with the baseline as it was at that epoch. Every row is a :class:`PairedScores` (the
scores paired by seed, the epochs they are at) handed to :func:`verdict_of`, the one place a
verdict is computed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from isobn_tune.results.statistics import (
    AcrossTasks,
    PairedComparison,
    aggregate_across_tasks,
    interquartile_mean,
    paired_comparison,
    selection_bias,
)

if TYPE_CHECKING:
    from isobn_tune.results.aggregate import GroupSummary

BASELINE = "none"
CSV_COLUMNS = ("diff_median", "ci95_low", "ci95_high", "p_improve", "n_pairs", "verdict")
CONFIRMATORY, EXPLORATORY = "confirmatory", "exploratory"


@dataclass(frozen=True)
class PairedScores:
    """What a comparison row compares: A's and B's scores on the same ``seeds`` (in that order),
    each the best dev metric up to epoch ``budget_epochs``."""

    seeds: tuple[int, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    budget_epochs: int


def verdict_of(scores: PairedScores, *, rng: int = 0, label_a: str = "A", label_b: str = "B"
               ) -> PairedComparison:
    """The paired test of one row (the seam where another test plugs in)."""
    return paired_comparison(dict(zip(scores.seeds, scores.a, strict=True)),
                             dict(zip(scores.seeds, scores.b, strict=True)),
                             rng=rng, label_a=label_a, label_b=label_b)


@dataclass(frozen=True)
class Comparison:
    """Configuration ``a`` against ``b`` on ``task``; ``role``: confirmatory when ``a`` is its
    method's best on dev (and ``b`` the baseline's best), at the full budget; else exploratory."""

    task: str
    a: str
    b: str
    method: str  # a's
    role: str
    scores: PairedScores
    result: PairedComparison

    @property
    def best(self) -> bool:
        return self.role == CONFIRMATORY

    def row(self) -> dict[str, Any]:
        r = self.result
        return {"task": self.task, "a": self.a, "b": self.b, "method": self.method, "best": self.best,
                "role": self.role, **{k: getattr(r, k) for k in CSV_COLUMNS},
                "p_improve_low": r.p_improve_low, "p_improve_high": r.p_improve_high,
                "budget_epochs": self.scores.budget_epochs, "seeds": list(self.scores.seeds)}


@dataclass(frozen=True)
class SweepComparisons:
    """Every comparison of a sweep, the across-task summaries and the selection-bias note."""

    per_task: list[Comparison]
    across_tasks: dict[str, AcrossTasks]  # method -> its best vs the baseline's best, over tasks
    iqm: dict[str, float]  # method -> interquartile mean of its best configurations' seed scores
    selection_bias: dict[str, float]  # method -> expected upward bias of its best-of-k on dev

    def best_vs_baseline(self, task: str, method: str) -> PairedComparison | None:
        return next(
            (c.result for c in self.per_task if c.task == task and c.best and c.method == method), None
        )


def seed_scores(summary: GroupSummary) -> dict[int, float]:
    """The full-budget score of each seed."""
    return dict(zip(summary.seeds, summary.values, strict=True))


def full_budget_pairs(a: GroupSummary, b: GroupSummary) -> PairedScores:
    """The seeds on which both configurations ran the full budget, at their final scores."""
    sa, sb = seed_scores(a), seed_scores(b)
    seeds = tuple(sorted(sa.keys() & sb.keys()))
    return PairedScores(seeds, tuple(sa[s] for s in seeds), tuple(sb[s] for s in seeds),
                        a.trials[0].config.max_epochs)


def matched_pairs(a: GroupSummary, b: GroupSummary) -> PairedScores:
    """The seeds both configurations ran (errored trials left out), at the last epoch all of
    these trials reached: no score sits beside one that trained longer."""
    ta = {r.config.seed: r for r in a.trials if r.status != "errored" and r.last_epoch > 0}
    tb = {r.config.seed: r for r in b.trials if r.status != "errored" and r.last_epoch > 0}
    common = sorted(ta.keys() & tb.keys())
    epoch = min((min(ta[s].reached, tb[s].reached) for s in common), default=0)
    kept = [(s, ta[s].score_at(epoch), tb[s].score_at(epoch)) for s in common]
    kept = [(s, x, y) for s, x, y in kept if x is not None and y is not None]
    return PairedScores(tuple(s for s, _, _ in kept), tuple(x for _, x, _ in kept),
                        tuple(y for _, _, y in kept), epoch)


def compare_sweep(summaries: Iterable[GroupSummary], *, compare: Sequence[str] | None = None,
                  baseline: str = BASELINE, rng: int = 0) -> SweepComparisons:
    """Per task: each non-baseline configuration (and each method's best on dev, marked ``best``)
    against the best baseline configuration, plus ``compare = (A, B)`` (configuration labels) where
    both ran. Across tasks: each method's best against the baseline's best (stratified bootstrap)."""
    by_task: dict[str, list[GroupSummary]] = {}
    for s in summaries:
        by_task.setdefault(s.task, []).append(s)
    per_task: list[Comparison] = []
    pairs: dict[str, dict[str, tuple[dict[int, float], dict[int, float]]]] = {}
    scores: dict[str, list[float]] = {}
    bias: dict[str, list[float]] = {}
    for task, groups in sorted(by_task.items()):
        best = _best_by_method([g for g in groups if g.values])
        for method, top in best.items():
            scores.setdefault(method, []).extend(top.values)
        ref = best.get(baseline)
        if ref is not None:
            for s in sorted(groups, key=lambda g: -np.nan_to_num(g.median, nan=-np.inf)):
                if s.method == baseline:
                    continue
                is_best = s is best.get(s.method)
                per_task.append(_compare(task, s, ref, is_best, rng))
                if is_best:
                    pairs.setdefault(s.method, {})[task] = (seed_scores(s), seed_scores(ref))
            for method in best:
                if method != baseline:
                    bias.setdefault(method, []).append(_selection_bias(
                        [g for g in groups if g.method == method]))
        if compare is not None:
            named = {g.label: g for g in groups}
            if compare[0] in named and compare[1] in named:
                per_task.append(_compare(task, named[compare[0]], named[compare[1]], False, rng))
    across = {method: aggregate_across_tasks(tasks, rng=rng, label_a=method, label_b=baseline)
              for method, tasks in sorted(pairs.items())}
    return SweepComparisons(
        per_task=per_task, across_tasks=across,
        iqm={m: interquartile_mean(v) for m, v in sorted(scores.items())},
        selection_bias={m: _finite_mean(v) for m, v in sorted(bias.items())},
    )


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _best_by_method(groups: list[GroupSummary]) -> dict[str, GroupSummary]:
    best: dict[str, GroupSummary] = {}
    for s in groups:
        if s.method not in best or s.median > best[s.method].median:
            best[s.method] = s
    return best


def _compare(task: str, a: GroupSummary, b: GroupSummary, confirmatory: bool, rng: int) -> Comparison:
    scores = full_budget_pairs(a, b) if confirmatory else matched_pairs(a, b)
    result = verdict_of(scores, rng=rng, label_a=a.label, label_b=b.label)
    return Comparison(task, a.label, b.label, a.method, CONFIRMATORY if confirmatory else EXPLORATORY,
                      scores, result)


def _selection_bias(groups: list[GroupSummary]) -> float:
    """Expected upward bias of the best of these configurations' medians if they were all equal:
    the best-of-k of k noisy seed medians (the seed spread is the median std over them)."""
    usable = [g for g in groups if len(g.values) >= 2]
    if len(usable) < 2:
        return 0.0 if usable else math.nan
    seed_std = float(np.median([np.std(g.values, ddof=1) for g in usable]))
    n_seeds = min(len(g.values) for g in usable)
    return selection_bias(seed_std=seed_std, n_seeds=n_seeds, k=len(usable))


def points(value: float) -> str:
    """A difference of scores in points (x100, signed), as the tables print it; "–" if undefined."""
    return "–" if not math.isfinite(value) else f"{100 * value:+.2f}"


def comparisons_markdown(result: SweepComparisons) -> str:
    """The comparisons as Markdown (differences x100, as the score tables), with the verdicts and
    a note on selection bias."""
    lines = ["| task | A | B | A − B (median) | 95% CI | P(A > B) | n | epochs | verdict |", "|" + "---|" * 9]
    for c in result.per_task:
        r = c.result
        name = f"**{c.a}**" if c.best else c.a
        ci = f"[{points(r.ci95_low)}, {points(r.ci95_high)}]"
        p = "–" if not math.isfinite(r.p_improve) else f"{r.p_improve:.2f}"
        epochs = f"{c.scores.budget_epochs}" if c.best else f"{c.scores.budget_epochs} (both reached)"
        lines.append(f"| {c.task} | {name} | {c.b} | {points(r.diff_median)} | {ci} | {p} | {r.n_pairs} | "
                     f"{epochs} | {r.verdict} |")
    for method, across in result.across_tasks.items():
        ci = f"[{points(across.ci95_low)}, {points(across.ci95_high)}]"
        lines.append(f"| all tasks (mean) | {method} best | {across.b} best | "
                     f"{points(across.mean_diff_median)} | {ci} | {across.p_improve:.2f} | "
                     f"{across.n_pairs} | full | {across.verdict} |")
    notes = []
    if result.iqm:
        notes.append("Interquartile mean of the best configurations' seed scores: "
                     + ", ".join(f"{m} {100 * v:.2f}" for m, v in result.iqm.items()) + ".")
    notes.append(
        "Configurations are paired seed by seed (same seed: same head initialisation and data order); "
        "the interval is a 95% bootstrap over the seed pairs, and a verdict needs it to exclude 0. "
        "**Bold**: the method's best on dev, against the baseline's best on the seeds both ran for the "
        "full budget; every other row compares the two configurations at the last epoch all their paired "
        "trials reached (epochs: the budget compared). Choosing the best of several configurations on "
        "the same dev scores flatters it"
        + (": if all were equal, the best of them would look better by about "
           + ", ".join(f"{100 * b:.2f} ({m})" for m, b in result.selection_bias.items() if math.isfinite(b))
           + " points on average (from the seed spread); only a fresh set of seeds removes this."
           if result.selection_bias else "; only a fresh set of seeds removes this.")
    )
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"
