"""Does a method beat the baseline beyond seed noise? The comparisons of a sweep's configurations.

Per task there is one question per method, its best configuration against the baseline's best
(:data:`CONFIRMATORY`, Holm-corrected across tasks and methods by
:func:`~isobn_tune.results.verdicts.confirmatory_rows`); every other configuration against the
baseline's best is :data:`EXPLORATORY` (estimate and interval, no verdict).

Selection and confirmation on different seeds: the best configurations are chosen by their
full-budget seed median on the sweep's own trials (``run`` and ``extend``); a confirmatory row
pairs only the trials ``isobn-tune confirm`` ran at fresh seeds (``TrialRecord.confirmation``),
once there are any. Until then it pairs the seeds that selected them and says so
(:data:`UNCONFIRMED`): best-of-k on the same scores flatters the winner.

Budget-matched: a confirmatory row pairs only seeds that ran the full budget; an exploratory row
pairs seeds at the last epoch every paired trial of both reached (:func:`matched_pairs`).
Every difference is in points (the metric x 100).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from isobn_tune.data.tasks import get_task
from isobn_tune.results.aggregate import summarise_groups
from isobn_tune.results.paired_tests import ALPHA
from isobn_tune.results.verdicts import (
    CONFIRMATORY,
    EXPLORATORY,
    ComparisonRow,
    ConfirmatorySummary,
    TaskComparison,
    confirmatory_rows,
    exploratory_row,
    summarise_confirmatory,
)

if TYPE_CHECKING:
    from isobn_tune.results.aggregate import GroupSummary, TrialRecord

__all__ = ["BASELINE", "CONFIRMATORY", "EXPLORATORY", "UNCONFIRMED", "UNIT", "PairedScores",
           "SweepComparisons", "compare_sweep", "full_budget_pairs", "matched_pairs", "points"]

BASELINE = "none"
UNIT = "points (metric x 100)"
UNCONFIRMED = "selected on these seeds; run `isobn-tune confirm`"


@dataclass(frozen=True)
class PairedScores:
    """What a comparison row compares: A's and B's scores on the same ``seeds`` (in that order),
    each the best dev metric up to epoch ``budget_epochs``."""

    seeds: tuple[int, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    budget_epochs: int


@dataclass(frozen=True)
class SweepComparisons:
    """Every comparison row of a sweep (confirmatory first, in task and method order, then
    exploratory), their summary across tasks, per task the seeds that selected the best
    configurations and those that confirmed them (empty: not confirmed), and the (task, method)
    whose confirmatory row pairs confirmation seeds."""

    rows: list[ComparisonRow]
    summary: ConfirmatorySummary
    selected_on: dict[str, tuple[int, ...]]
    confirmed_on: dict[str, tuple[int, ...]]
    confirmed_rows: frozenset[tuple[str, str]] = frozenset()

    def confirmatory(self, task: str, method: str) -> ComparisonRow | None:
        return next((r for r in self.rows
                     if r.role == CONFIRMATORY and r.task == task and r.method == method), None)

    def confirmed(self, row: ComparisonRow) -> bool | None:
        """Whether a confirmatory row pairs confirmation seeds (None for an exploratory row)."""
        return (row.task, row.method) in self.confirmed_rows if row.role == CONFIRMATORY else None


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


def _task_comparison(task: str, a: GroupSummary, b: GroupSummary, scores: PairedScores) -> TaskComparison:
    """A row's input, in points."""
    return TaskComparison(
        task=task, metric=get_task(task).selection_metric, method=a.method, baseline=b.method, a=a.label,
        b=b.label, a_scores={s: 100 * x for s, x in zip(scores.seeds, scores.a, strict=True)},
        b_scores={s: 100 * y for s, y in zip(scores.seeds, scores.b, strict=True)},
        budget_epochs=scores.budget_epochs)


def compare_sweep(records: Iterable[TrialRecord], *, compare: Sequence[str] | None = None,
                  baseline: str = BASELINE, alpha: float = ALPHA) -> SweepComparisons:
    """Per task: each method's best configuration (highest full-budget seed median on the
    selection trials) against the baseline's best, confirmatory, on the confirmation seeds both
    ran when there are any; every other configuration against the baseline's best, and
    ``compare = (A, B)`` (configuration labels) where both ran, exploratory."""
    records = list(records)
    selection = summarise_groups(r for r in records if not r.confirmation)
    confirmation = {(s.task, s.group): s for s in summarise_groups(r for r in records if r.confirmation)}
    by_task: dict[str, list[GroupSummary]] = {}
    for s in selection:
        by_task.setdefault(s.task, []).append(s)
    confirmatory: list[TaskComparison] = []
    exploratory: list[ComparisonRow] = []
    selected_on: dict[str, tuple[int, ...]] = {}
    confirmed_on: dict[str, tuple[int, ...]] = {}
    confirmed_rows: set[tuple[str, str]] = set()
    for task, groups in sorted(by_task.items()):
        best = _best_by_method([g for g in groups if g.values])
        ref = best.get(baseline)
        if ref is not None:
            selected_on[task] = tuple(sorted({seed for g in groups for seed in g.seeds}))
            confirmed_seeds: set[int] = set()
            for method, top in sorted(best.items()):
                if method == baseline:
                    continue
                fresh = (confirmation.get((task, top.group)), confirmation.get((task, ref.group)))
                scores = full_budget_pairs(*fresh) if None not in fresh else None
                if scores is not None and scores.seeds:
                    confirmed_seeds.update(scores.seeds)
                    confirmed_rows.add((task, method))
                else:  # not confirmed (yet, or its best changed since): the seeds that selected it
                    scores = full_budget_pairs(top, ref)
                confirmatory.append(_task_comparison(task, top, ref, scores))
            confirmed_on[task] = tuple(sorted(confirmed_seeds))
            for s in groups:
                if s.method != baseline and s is not best.get(s.method):
                    exploratory.append(exploratory_row(_task_comparison(task, s, ref, matched_pairs(s, ref)),
                                                       alpha=alpha))
        if compare is not None:
            named = {g.label: g for g in groups}
            if compare[0] in named and compare[1] in named:
                a, b = named[compare[0]], named[compare[1]]
                asked = _task_comparison(task, a, b, matched_pairs(a, b))
                exploratory.append(exploratory_row(asked, alpha=alpha))
    rows = [r if (r.task, r.method) in confirmed_rows
            else replace(r, note="; ".join(filter(None, [UNCONFIRMED, r.note])))
            for r in confirmatory_rows(confirmatory, alpha=alpha)]
    return SweepComparisons(rows=rows + exploratory, summary=summarise_confirmatory(rows, alpha=alpha),
                            selected_on=selected_on, confirmed_on=confirmed_on,
                            confirmed_rows=frozenset(confirmed_rows))


def _best_by_method(groups: list[GroupSummary]) -> dict[str, GroupSummary]:
    best: dict[str, GroupSummary] = {}
    for s in groups:
        if s.method not in best or s.median > best[s.method].median:
            best[s.method] = s
    return best


def points(value: float) -> str:
    """A difference of scores in points (x100, signed), as the tables print it; "–" if undefined."""
    return _signed(100 * value)


def _signed(value: float | None) -> str:
    """A value already in points, signed; "–" if undefined."""
    return "–" if value is None or not np.isfinite(value) else f"{value:+.2f}"


def seeds_text(seeds: Sequence[int]) -> str:
    """``1-3, 7``: a seed list as ranges."""
    runs: list[list[int]] = []
    for seed in sorted(seeds):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs) or "none"


def result_text(row: ComparisonRow) -> str:
    """A row's finding in words: the estimate, its interval at its real level and the verdict;
    without an interval, how many seeds were better, the range of the differences and why."""
    if np.isfinite(row.ci_low):
        p = "" if row.p_adjusted is None else f", p_adj {row.p_adjusted:.3g}"
        text = (f"{_signed(row.estimate)} [{_signed(row.ci_low)}, {_signed(row.ci_high)}] "
                f"({100 * row.ci_level:.1f}%{p})")
        return f"{text}: {row.verdict}" if row.verdict else text
    if row.n_pairs == 0:
        return "–"  # the note says why
    return (f"{_signed(row.estimate)}, {row.n_better}/{row.n_pairs} seeds better, range "
            f"[{_signed(row.diff_min)}, {_signed(row.diff_max)}]")


def comparisons_markdown(result: SweepComparisons) -> str:
    """Every comparison row as Markdown, the count of tasks significant after Holm, the summary per
    metric, and which seeds selected and which confirmed."""
    lines = [("| task | role | A | B | A − B: estimate [interval] (level, Holm-adjusted p): verdict | "
              "n | epochs | seeds | note |"), "|" + "---|" * 9]
    for r in result.rows:
        name = f"**{r.a}**" if r.role == CONFIRMATORY else r.a
        lines.append(f"| {r.task} | {r.role} | {name} | {r.b} | {result_text(r)} | {r.n_pairs} | "
                     f"{r.budget_epochs} | {seeds_text(r.seeds)} | {r.note} |")
    s = result.summary
    notes = [(f"Differences in {UNIT}. Estimate: Hodges-Lehmann; interval: exact (ordered Walsh "
             f"averages) at its real level; p: exact two-sided Wilcoxon signed-rank, Holm-adjusted over "
             f"the {s.n_comparisons} confirmatory comparisons (**bold**: each method's best against the "
             f"baseline's best, full budget). A verdict needs adjusted p ≤ {ALPHA:g}, i.e. an interval "
             f"without 0. Exploratory rows (any other configuration, at the last epoch both reached) "
             f"have no verdict.")]
    if s.n_comparisons:
        notes.append(f"Significant after correction: {s.n_significant} of {s.n_comparisons} "
                     f"({s.n_a_better} better, {s.n_b_better} worse; {s.n_tested} tested).")
        notes += [(f"{m.method} on {m.metric} ({', '.join(m.tasks)}): mean estimate "
                   f"{_signed(m.mean_estimate)}, {m.n_a_better} better, {m.n_b_better} worse, "
                   f"{m.n_not_distinguishable} not distinguishable, {m.n_untested} untested.")
                  for m in s.strata]
    for task, selected in result.selected_on.items():
        confirmed = result.confirmed_on.get(task, ())
        notes.append(f"{task}: selected on seeds {seeds_text(selected)}; " + (
            f"confirmed on seeds {seeds_text(confirmed)}." if confirmed else
            "not confirmed: run `isobn-tune confirm DIR --seeds ...` with fresh seeds."))
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"
