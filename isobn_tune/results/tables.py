"""The sweep's tables: the paper-style task x method table (median ± std over full-budget seeds),
its paired comparisons and the trials it leaves out. :func:`sweep_results` is the one function that
turns a sweep's trial records into them: the end-of-run table, the parent run's artifacts and
``isobn-tune report`` all come from it, on the trials as MLflow holds them."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from isobn_tune.results.aggregate import GroupSummary, TrialRecord, best_by_method, summarise_groups
from isobn_tune.results.comparisons import (
    BASELINE,
    CSV_COLUMNS,
    SweepComparisons,
    compare_sweep,
    comparisons_markdown,
    points,
)


def method_table(summaries: Iterable[GroupSummary], comparisons: SweepComparisons | None = None
                 ) -> list[dict[str, Any]]:
    """Paper-style rows: per task and method, the best configuration's median ± std over the seeds
    that ran the full budget (``budget_epochs``); a method other than the baseline also gets its
    paired comparison with the baseline's best (:data:`isobn_tune.results.comparisons.CSV_COLUMNS`:
    difference, interval, P(A > B), pairs, verdict)."""
    summaries = list(summaries)
    comparisons = comparisons or compare_sweep(summaries)
    best = best_by_method(summaries)
    rows = []
    budgets = {(s.task, s.method): s.trials[0].config.max_epochs for s in summaries}
    for (task, method), budget in sorted(budgets.items()):
        s = best.get((task, method))  # None: no configuration of the method ran the full budget
        vs = comparisons.best_vs_baseline(task, method)
        rows.append({
            "task": task, "method": method, "median": s.median if s else None, "std": s.std if s else None,
            "seeds": len(s.values) if s else 0, "budget_epochs": budget, "config": s.group if s else None,
            **{k: getattr(vs, k) if vs else None for k in CSV_COLUMNS},
        })
    return rows


TABLE_COLUMNS = ("task", "method", "median", "std", "seeds", "budget_epochs", "config", *CSV_COLUMNS)


def table_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row[k]) for k in TABLE_COLUMNS})
    return buf.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else value


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """Task x method grid of ``median ± std`` (x100, as GLUE papers print), and for each method
    other than the baseline its paired difference from the baseline's best, 95% interval and verdict."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["task"], r["method"]): r for r in rows}
    compared = [m for m in methods if m != BASELINE and BASELINE in methods]
    header = ["task", *methods] + [f"{m} − {BASELINE} [95% CI]: verdict" for m in compared]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in tasks:
        cells = [task]
        for m in methods:
            r = cell.get((task, m))
            shown = r and r["seeds"]
            cells.append(f"{100 * r['median']:.2f} ± {100 * r['std']:.2f} (n={r['seeds']})" if shown else "–")
        for m in compared:
            r = cell.get((task, m))
            cells.append(_difference(r) if r and r["verdict"] else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


LEFT_OUT = {"stopped": "stopped by the scheduler", "errored": "errored", "running": "still running"}
_LISTED = 6  # trials named one by one per task and status; more are counted by epoch


def left_out_lines(records: Iterable[TrialRecord]) -> list[str]:
    """Per task, the trials in no median (stopped early, errored, running) with the epoch each
    reached: one line per task."""
    by_task: dict[str, dict[str, list[TrialRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.status in LEFT_OUT:
            by_task[r.config.task][r.status].append(r)
    lines = []
    for task, by_status in sorted(by_task.items()):
        parts = []
        for status, label in LEFT_OUT.items():
            recs = sorted(by_status.get(status, []), key=lambda r: r.trial_id)
            if len(recs) > _LISTED:
                epochs = sorted({r.last_epoch for r in recs})
                counts = ", ".join(f"{e} ({sum(r.last_epoch == e for r in recs)})" for e in epochs)
                parts.append(f"{label}: {len(recs)} trials, at epoch {counts}")
            elif recs:
                parts.append(f"{label}: " + ", ".join(
                    f"{r.trial_id} ({r.method} seed {r.config.seed}, epoch {r.last_epoch})" for r in recs))
        lines.append(f"{task}, in no median: " + "; ".join(parts))
    return lines


@dataclass(frozen=True)
class SweepResults:
    """What a sweep found, computed once by :func:`sweep_results` for every place that shows it."""

    summaries: list[GroupSummary]
    comparisons: SweepComparisons
    rows: list[dict[str, Any]]  # :func:`method_table`
    left_out: list[str]  # :func:`left_out_lines`

    def table_markdown(self) -> str:
        """The task x method table, then which trials it leaves out (the end-of-run table)."""
        budgets = sorted({r["budget_epochs"] for r in self.rows})
        note = (f"Medians and differences over the seeds that ran the full budget "
                f"({'/'.join(map(str, budgets))} epochs).") if budgets else ""
        return table_markdown(self.rows) + "".join(f"{line}\n" for line in [note, *self.left_out] if line)

    def description(self) -> str:
        """The table, then every paired comparison with its verdict and the note on selection bias
        (the parent run's description and ``report``)."""
        return self.table_markdown() + "\n" + comparisons_markdown(self.comparisons)

    def csv(self) -> str:
        return table_csv(self.rows)


def sweep_results(records: Iterable[TrialRecord], compare: Sequence[str] | None = None) -> SweepResults:
    """The one computation behind every table of a sweep (see the module's docstring); ``compare``:
    two configuration labels to compare as well."""
    records = list(records)
    summaries = summarise_groups(records)
    comparisons = compare_sweep(summaries, compare=compare)
    return SweepResults(summaries, comparisons, method_table(summaries, comparisons), left_out_lines(records))


def _difference(row: dict[str, Any]) -> str:
    return (f"{points(row['diff_median'])} [{points(row['ci95_low'])}, {points(row['ci95_high'])}]: "
            f"{row['verdict']}")
