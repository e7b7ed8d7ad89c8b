"""Does a method beat the baseline beyond seed noise? Paired seed comparisons of a sweep's configurations.

Built on :mod:`isobn_tune.results.statistics` from the seed scores of each configuration (a
:class:`~isobn_tune.results.aggregate.GroupSummary`): per task, every configuration and each method's
best-on-dev configuration against the best baseline configuration (or any two named
configurations), and across tasks each method's best against the baseline's best.
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


@dataclass(frozen=True)
class Comparison:
    """Configuration ``a`` against ``b`` on ``task``; ``best``: ``a`` is its method's best on dev."""

    task: str
    a: str
    b: str
    method: str  # a's
    best: bool
    result: PairedComparison

    def row(self) -> dict[str, Any]:
        r = self.result
        return {"task": self.task, "a": self.a, "b": self.b, "method": self.method, "best": self.best,
                **{k: getattr(r, k) for k in CSV_COLUMNS}, "p_improve_low": r.p_improve_low,
                "p_improve_high": r.p_improve_high}


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
    return dict(zip(summary.seeds, summary.values, strict=True))


def compare_sweep(summaries: Iterable[GroupSummary], *, compare: Sequence[str] | None = None,
                  baseline: str = BASELINE, rng: int = 0) -> SweepComparisons:
    """Per task: each non-baseline configuration (and each method's best on dev, marked ``best``)
    against the best baseline configuration, plus ``compare = (A, B)`` (configuration labels) where
    both ran. Across tasks: each method's best against the baseline's best (stratified bootstrap)."""
    by_task: dict[str, list[GroupSummary]] = {}
    for s in summaries:
        if s.values:
            by_task.setdefault(s.task, []).append(s)
    per_task: list[Comparison] = []
    pairs: dict[str, dict[str, tuple[dict[int, float], dict[int, float]]]] = {}
    scores: dict[str, list[float]] = {}
    bias: dict[str, list[float]] = {}
    for task, groups in sorted(by_task.items()):
        best = _best_by_method(groups)
        for method, top in best.items():
            scores.setdefault(method, []).extend(top.values)
        ref = best.get(baseline)
        if ref is not None:
            for s in sorted(groups, key=lambda g: -g.median):
                if s.method == baseline:
                    continue
                is_best = s is best[s.method]
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


def _compare(task: str, a: GroupSummary, b: GroupSummary, best: bool, rng: int) -> Comparison:
    result = paired_comparison(seed_scores(a), seed_scores(b), rng=rng, label_a=a.label, label_b=b.label)
    return Comparison(task, a.label, b.label, a.method, best, result)


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
    lines = ["| task | A | B | A − B (median) | 95% CI | P(A > B) | n | verdict |", "|" + "---|" * 8]
    for c in result.per_task:
        r = c.result
        name = f"**{c.a}**" if c.best else c.a
        ci = f"[{points(r.ci95_low)}, {points(r.ci95_high)}]"
        p = "–" if not math.isfinite(r.p_improve) else f"{r.p_improve:.2f}"
        lines.append(f"| {c.task} | {name} | {c.b} | {points(r.diff_median)} | {ci} | {p} | {r.n_pairs} | "
                     f"{r.verdict} |")
    for method, across in result.across_tasks.items():
        ci = f"[{points(across.ci95_low)}, {points(across.ci95_high)}]"
        lines.append(f"| all tasks (mean) | {method} best | {across.b} best | "
                     f"{points(across.mean_diff_median)} | {ci} | {across.p_improve:.2f} | "
                     f"{across.n_pairs} | {across.verdict} |")
    notes = []
    if result.iqm:
        notes.append("Interquartile mean of the best configurations' seed scores: "
                     + ", ".join(f"{m} {100 * v:.2f}" for m, v in result.iqm.items()) + ".")
    notes.append(
        "Configurations are paired seed by seed (same seed: same head initialisation and data order); "
        "the interval is a 95% bootstrap over the seed pairs, and a verdict needs it to exclude 0. "
        "**Bold**: the method's best on dev. Choosing the best of several configurations on the same dev "
        "scores flatters it"
        + (": if all were equal, the best of them would look better by about "
           + ", ".join(f"{100 * b:.2f} ({m})" for m, b in result.selection_bias.items() if math.isfinite(b))
           + " points on average (from the seed spread); only a fresh set of seeds removes this."
           if result.selection_bias else "; only a fresh set of seeds removes this.")
    )
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"
