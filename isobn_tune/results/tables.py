"""The sweep's tables: the paper-style task x method table (median ± std over full-budget seeds),
its paired comparisons and the trials it leaves out. :func:`sweep_results` is the one function that
turns a sweep's trial records into them: the end-of-run table, the parent run's artifacts and
``isobn-tune report`` all come from it, on the trials as MLflow holds them."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from isobn_tune.results.aggregate import GroupSummary, TrialRecord, best_by_method, summarise_groups
from isobn_tune.results.comparisons import (
    BASELINE,
    CONFIRMATORY,
    UNIT,
    SweepComparisons,
    compare_sweep,
    comparisons_markdown,
    result_text,
)
from isobn_tune.results.verdicts import ROW_FIELDS, ComparisonRow

# The comparison rows as CSV and JSON: every field of a row, whether a confirmatory row pairs
# confirmation seeds, and the unit of every score and difference.
COMPARISON_COLUMNS = (*ROW_FIELDS, "confirmed", "unit")


def method_table(summaries: Iterable[GroupSummary], comparisons: SweepComparisons | None = None
                 ) -> list[dict[str, Any]]:
    """Paper-style rows: per task and method, the best configuration's median ± std (in points)
    over the selection seeds that ran the full budget (``budget_epochs``); a method other than the
    baseline also gets its confirmatory comparison with the baseline's best (``comparison``)."""
    summaries = list(summaries)
    best = best_by_method(summaries)
    rows = []
    budgets = {(s.task, s.method): s.trials[0].config.max_epochs for s in summaries}
    for (task, method), budget in sorted(budgets.items()):
        s = best.get((task, method))  # None: no configuration of the method ran the full budget
        rows.append({
            "task": task, "method": method, "median": 100 * s.median if s else None,
            "std": 100 * s.std if s else None, "seeds": len(s.values) if s else 0, "budget_epochs": budget,
            "config": s.group if s else None,
            "comparison": comparisons.confirmatory(task, method) if comparisons else None,
        })
    return rows


def comparison_dicts(comparisons: SweepComparisons) -> list[dict[str, Any]]:
    """Every comparison row as JSON holds it (:data:`COMPARISON_COLUMNS`; NaN as None)."""
    return [row.to_dict() | {"confirmed": comparisons.confirmed(row), "unit": UNIT}
            for row in comparisons.rows]


def comparisons_csv(comparisons: SweepComparisons) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COMPARISON_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in comparison_dicts(comparisons):
        row["seeds"] = " ".join(map(str, row["seeds"]))
        writer.writerow({k: "" if row[k] is None else row[k] for k in COMPARISON_COLUMNS})
    return buf.getvalue()


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """Task x method grid of ``median ± std`` (points, as GLUE papers print), and for each method
    other than the baseline its confirmatory comparison with the baseline's best."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["task"], r["method"]): r for r in rows}
    compared = [m for m in methods if m != BASELINE and BASELINE in methods]
    header = ["task", *methods] + [f"{m} − {BASELINE}" for m in compared]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in tasks:
        cells = [task]
        for m in methods:
            r = cell.get((task, m))
            shown = r and r["seeds"]
            cells.append(f"{r['median']:.2f} ± {r['std']:.2f} (n={r['seeds']})" if shown else "–")
        for m in compared:
            r = cell.get((task, m))
            cells.append(_difference(r["comparison"]) if r and r["comparison"] else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


LEFT_OUT = {"stopped": "stopped by the scheduler", "errored": "errored", "running": "still running"}
NAMED_PER_STATUS = 6  # trials named one by one per task and status; more are counted by epoch


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
            if len(recs) > NAMED_PER_STATUS:
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

    summaries: list[GroupSummary]  # of the selection trials (confirmation trials in none)
    comparisons: SweepComparisons
    rows: list[dict[str, Any]]  # :func:`method_table`
    left_out: list[str]  # :func:`left_out_lines`

    def table_markdown(self) -> str:
        """The task x method table, then which trials it leaves out (the end-of-run table)."""
        budgets = sorted({r["budget_epochs"] for r in self.rows})
        note = (f"Medians over the selection seeds that ran the full budget "
                f"({'/'.join(map(str, budgets))} epochs), in {UNIT}; differences: each method's best "
                f"against the baseline's best (see the comparisons).") if budgets else ""
        return table_markdown(self.rows) + "".join(f"{line}\n" for line in [note, *self.left_out] if line)

    def description(self) -> str:
        """The table, then every comparison row and the protocol notes (the parent run's
        description and ``report``)."""
        return self.table_markdown() + "\n" + comparisons_markdown(self.comparisons)

    def csv(self) -> str:
        """Every comparison row (the parent's table CSV and ``report --format csv``)."""
        return comparisons_csv(self.comparisons)

    def as_json(self) -> dict[str, Any]:
        """``report --format json``: the table, the comparison rows, the summary across tasks and
        the seeds that selected and confirmed."""
        table = [{k: v for k, v in r.items() if k != "comparison"} for r in self.rows]
        return {"unit": UNIT, "table": table, "left_out": self.left_out,
                "comparisons": comparison_dicts(self.comparisons),
                "across_tasks": asdict(self.comparisons.summary),
                "selected_on": {t: list(s) for t, s in self.comparisons.selected_on.items()},
                "confirmed_on": {t: list(s) for t, s in self.comparisons.confirmed_on.items()}}


def sweep_results(records: Iterable[TrialRecord], compare: Sequence[str] | None = None) -> SweepResults:
    """The one computation behind every table of a sweep (see the module's docstring); ``compare``:
    two configuration labels to compare as well."""
    records = list(records)
    summaries = summarise_groups(r for r in records if not r.confirmation)
    comparisons = compare_sweep(records, compare=compare)
    return SweepResults(summaries, comparisons, method_table(summaries, comparisons), left_out_lines(records))


def _difference(row: ComparisonRow) -> str:
    """A grid cell: the confirmatory row's finding, and why there is no verdict when there is none."""
    note = f" ({row.note})" if row.note and row.role == CONFIRMATORY else ""
    return result_text(row) + note
