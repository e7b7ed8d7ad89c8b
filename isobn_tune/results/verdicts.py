"""Which rows of a report may say "better": one confirmatory comparison per task and method,
Holm-corrected; every other row exploratory (estimate and interval, no verdict).

A sweep answers one question per task: does each method's best configuration beat the baseline's
best beyond seed noise? Those comparisons (tasks x methods) form the family, Holm-corrected
(scipy has no Holm: ``false_discovery_control`` is Benjamini-Hochberg/Yekutieli, which controls a
different error rate). Every other pair of configurations is exploratory: reading verdicts off
dozens of rows at 5% each finds "effects" in every null sweep.

Each confirmatory row keeps the identity of :mod:`.paired_tests` under the correction:

    verdict given  <=>  p_adjusted <= alpha  <=>  the interval excludes 0

by printing the interval dual to the level Holm actually tested the row at: the j-th smallest p
is tested at alpha / (m - j + 1) while every smaller p passed its step; from the first step that
fails, every later row is judged at that step's level (its p is at least as large, so it fails too).
The interval's real level is ``ci_level``. Tasks are summarised only within one metric
(:class:`MetricStratum`): averaging MCC, correlation and accuracy has no unit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from isobn_tune.results.paired_tests import (
    ALPHA,
    check_alpha,
    exact_paired_test,
    level_for,
    min_pairs_needed,
    paired_test,
)
from isobn_tune.results.statistics import A_BETTER, B_BETTER, NOT_DISTINGUISHABLE, _paired_differences

__all__ = [
    "CONFIRMATORY",
    "EXPLORATORY",
    "ComparisonRow",
    "ConfirmatorySummary",
    "MetricStratum",
    "TaskComparison",
    "confirmatory_rows",
    "exploratory_row",
    "holm",
    "summarise_confirmatory",
]

CONFIRMATORY = "confirmatory"
EXPLORATORY = "exploratory"
EXPLORATORY_NOTE = "exploratory: estimate and interval only, no verdict"


@dataclass(frozen=True)
class TaskComparison:
    """One method's best configuration (``a``, labelled) against the baseline's best (``b``) on a
    task: seed -> score of the trials that ran ``budget_epochs``, higher is better, in one unit."""

    task: str
    metric: str
    method: str
    baseline: str
    a: str
    b: str
    a_scores: Mapping[Any, float]
    b_scores: Mapping[Any, float]
    budget_epochs: int


@dataclass(frozen=True)
class ComparisonRow:
    """One printed comparison, identical in Markdown, CSV and JSON. ``estimate`` is the
    Hodges-Lehmann estimate of a - b; ``verdict`` None when there is no test (exploratory rows and
    rows under ``min_pairs_needed`` pairs); ``note`` says why."""

    task: str
    metric: str
    method: str
    baseline: str
    a: str
    b: str
    role: str
    estimate: float
    ci_low: float
    ci_high: float
    ci_level: float
    p_value: float | None
    p_adjusted: float | None
    n_pairs: int
    min_pairs_needed: int
    budget_epochs: int
    seeds: tuple[Any, ...]
    verdict: str | None
    n_better: int
    n_worse: int
    diff_min: float
    diff_max: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None, seeds a list."""
        row = asdict(self)
        row["seeds"] = list(self.seeds)
        return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}

    def to_csv_row(self) -> dict[str, Any]:
        """A flat row for ``csv.DictWriter(fieldnames=ROW_FIELDS)``: seeds space-separated, None empty."""
        row = self.to_dict()
        row["seeds"] = " ".join(str(s) for s in self.seeds)
        return {k: "" if v is None else v for k, v in row.items()}


ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ComparisonRow))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: max over j' <= j of (m - j' + 1) p_(j'), capped at 1."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or np.any(~((p >= 0) & (p <= 1))):
        raise ValueError(f"p-values must be a 1-D sequence of numbers in [0, 1], got {p_values!r}")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def _holm_levels(p: np.ndarray, alpha: float) -> np.ndarray:
    """The level each p is judged at (module docstring): alpha / (m - j + 1) up to the first
    failing step, that step's level from there on."""
    order = np.argsort(p, kind="stable")
    m = p.size
    multipliers = m - np.arange(m)
    step_levels = alpha / multipliers
    failed = multipliers * p[order] > alpha  # the comparison :func:`holm` makes, in the same arithmetic
    first_fail = int(np.argmax(failed)) if failed.any() else m
    levels = np.empty(m)
    levels[order] = step_levels[np.minimum(np.arange(m), first_fail)]
    return levels


def _seeds(c: TaskComparison) -> tuple[Any, ...]:
    return tuple(sorted(s for s in c.a_scores.keys() & c.b_scores.keys()
                        if not (np.isnan(float(c.a_scores[s])) or np.isnan(float(c.b_scores[s])))))


def _row(c: TaskComparison, role: str, *, alpha: float, level_alpha: float, p_adjusted: float | None,
         note: str) -> ComparisonRow:
    d = _paired_differences(c.a_scores, c.b_scores, f" ({c.task}, {c.a})")
    result = exact_paired_test(d, alpha=alpha)
    judged = exact_paired_test(d, alpha=level_alpha) if result.tested else result
    if role == CONFIRMATORY and result.tested:  # judged at its Holm level: p_adjusted <= alpha <=> p <= it
        verdict, p_value = judged.verdict or NOT_DISTINGUISHABLE, result.p_value  # or: level out of reach
    else:
        verdict = p_value = None
    return ComparisonRow(
        task=c.task, metric=c.metric, method=c.method, baseline=c.baseline, a=c.a, b=c.b, role=role,
        estimate=result.estimate, ci_low=judged.ci_low, ci_high=judged.ci_high, ci_level=judged.ci_level,
        p_value=p_value, p_adjusted=p_adjusted, n_pairs=result.n_pairs,
        min_pairs_needed=result.min_pairs_needed, budget_epochs=c.budget_epochs, seeds=_seeds(c),
        verdict=verdict, n_better=result.n_better,
        n_worse=result.n_worse, diff_min=result.diff_min, diff_max=result.diff_max,
        note=note or result.note)


def confirmatory_rows(comparisons: Sequence[TaskComparison], *, alpha: float = ALPHA) -> list[ComparisonRow]:
    """One row per (task, method), in the order given, Holm-corrected over the rows that have a
    test. A row whose own test passes but that Holm's level stops gets "not distinguishable", and
    its interval (at that level) covers 0; at a level its pairs cannot reach the interval is NaN
    and the note says how many pairs that level needs."""
    alpha = check_alpha(alpha)
    keys = [(c.task, c.method) for c in comparisons]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise ValueError(f"one confirmatory comparison per (task, method), got several for {duplicated}")
    tests = [paired_test(c.a_scores, c.b_scores, alpha=alpha) for c in comparisons]
    tested = [i for i, t in enumerate(tests) if t.tested]
    p = np.array([tests[i].p_value for i in tested], dtype=float)
    adjusted = dict(zip(tested, holm(p).tolist(), strict=True))
    levels = dict(zip(tested, _holm_levels(p, alpha).tolist(), strict=True))
    rows = []
    for i, c in enumerate(comparisons):
        level = levels.get(i, alpha)
        note = ""
        if i in levels and np.isnan(level_for(tests[i].n_pairs, level)):
            note = (f"Holm tests this row at α = {level:.3g}, which needs ≥ {min_pairs_needed(level)} "
                    f"paired seeds: no interval at that level")
        rows.append(_row(c, CONFIRMATORY, alpha=alpha, level_alpha=level, p_adjusted=adjusted.get(i),
                         note=note))
    return rows


def exploratory_row(comparison: TaskComparison, *, alpha: float = ALPHA) -> ComparisonRow:
    """Any other pair of configurations: the Hodges-Lehmann estimate and its interval at the level
    dual to ``alpha`` (NaN under ``min_pairs_needed`` pairs), no p-value, no verdict."""
    alpha = check_alpha(alpha)
    return _row(comparison, EXPLORATORY, alpha=alpha, level_alpha=alpha, p_adjusted=None,
                note=EXPLORATORY_NOTE)


@dataclass(frozen=True)
class MetricStratum:
    """The confirmatory rows of one method on the tasks sharing one metric: verdict counts and the
    mean of the per-task estimates (each task weighted equally; in the metric's own unit)."""

    metric: str
    method: str
    tasks: tuple[str, ...]
    n_a_better: int
    n_b_better: int
    n_not_distinguishable: int
    n_untested: int
    mean_estimate: float


@dataclass(frozen=True)
class ConfirmatorySummary:
    """Across tasks: how many confirmatory comparisons are significant after Holm, and per
    (metric, method) a :class:`MetricStratum`. ``min_pairs_for_every_row``: the pairs Holm's first
    step (alpha / m) needs, so that any row can get a verdict whatever the order of the p-values."""

    n_comparisons: int
    n_tested: int
    n_significant: int
    n_a_better: int
    n_b_better: int
    min_pairs_for_every_row: int | None
    strata: tuple[MetricStratum, ...] = field(default_factory=tuple)


def summarise_confirmatory(rows: Sequence[ComparisonRow], *, alpha: float = ALPHA) -> ConfirmatorySummary:
    """Summarise :func:`confirmatory_rows`' output (exploratory rows are refused)."""
    alpha = check_alpha(alpha)
    if any(r.role != CONFIRMATORY for r in rows):
        raise ValueError("summarise_confirmatory takes confirmatory rows only")
    by_stratum: dict[tuple[str, str], list[ComparisonRow]] = defaultdict(list)
    for r in rows:
        by_stratum[(r.metric, r.method)].append(r)
    strata = tuple(
        MetricStratum(metric=metric, method=method, tasks=tuple(r.task for r in mine),
                      n_a_better=sum(r.verdict == A_BETTER for r in mine),
                      n_b_better=sum(r.verdict == B_BETTER for r in mine),
                      n_not_distinguishable=sum(r.verdict not in (None, A_BETTER, B_BETTER) for r in mine),
                      n_untested=sum(r.verdict is None for r in mine),
                      mean_estimate=float(np.mean([r.estimate for r in mine])))
        for (metric, method), mine in sorted(by_stratum.items()))
    n_tested = sum(r.p_value is not None for r in rows)
    a_better = sum(r.verdict == A_BETTER for r in rows)
    b_better = sum(r.verdict == B_BETTER for r in rows)
    every_row = min_pairs_needed(alpha / n_tested) if n_tested else None
    return ConfirmatorySummary(n_comparisons=len(rows), n_tested=n_tested, n_significant=a_better + b_better,
                               n_a_better=a_better, n_b_better=b_better, min_pairs_for_every_row=every_row,
                               strata=strata)
