"""Seed statistics: the median and std over seeds of each configuration's best dev metric, and
the paper-style table (task x method, median ± std).

Budget-matched: a median holds only trials that ran the full budget (status finished); a trial a
scheduler stopped early, an errored or a running one enters no median, and is listed under the
table with the epoch it reached. :func:`sweep_results` is the one function that turns a sweep's
trial records into its table and comparisons: the end-of-run table, the parent run's artifacts
and ``isobn-tune report`` all come from it, on the trials as MLflow holds them."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from isobn_tune.cls_norm import PARAM_FIELDS, params_of
from isobn_tune.comparisons import (
    BASELINE,
    CSV_COLUMNS,
    SweepComparisons,
    compare_sweep,
    comparisons_markdown,
    points,
)
from isobn_tune.groups import group_key
from isobn_tune.metrics import BEST_OBJECTIVE
from isobn_tune.recipe import TrialConfig

STATUSES = ("finished", "stopped", "errored", "running")


@dataclass(frozen=True)
class TrialRecord:
    """What a sweep learned from one trial."""

    trial_id: str
    config: TrialConfig
    best_objective: float | None
    last_epoch: int
    status: str  # one of STATUSES
    # (epoch, best dev metric up to that epoch) for each epoch the trial reported
    history: tuple[tuple[int, float], ...] = ()

    @property
    def reached(self) -> int:
        """The epochs it counts as having trained: a finished trial (all epochs, or its patience
        ran out) the full budget, any other the last epoch it reported."""
        return self.config.max_epochs if self.status == "finished" else self.last_epoch

    def score_at(self, epoch: int) -> float | None:
        """The best dev metric up to ``epoch`` (a finished trial keeps its final one after its last
        epoch); None if the trial did not report that epoch."""
        if self.status == "finished" and epoch >= self.last_epoch:
            return self.best_objective
        return dict(self.history).get(epoch)

    @property
    def group(self) -> str:
        return config_group(self.config)

    @property
    def method(self) -> str:
        return method_label(self.config)


def config_group(cfg: TrialConfig) -> str:
    """The configuration without its seed; of the normalisers' hyperparameters only its own; without
    the model's location (the same for every trial of a sweep, and a machine path in MLflow)."""
    unused = set(PARAM_FIELDS) - set(params_of(cfg.cls_norm)) | {"model"}
    return group_key({k: v for k, v in cfg.to_dict().items() if k not in unused})


def labelled_params(cfg: TrialConfig) -> dict[str, str]:
    """The normaliser's hyperparameters as labels show them: numbers always (``0.1``), a
    categorical one (``eps_mode``) only when it differs from its default, so that the labels of
    sweeps that never vary it stay short and as they were."""
    shown = {}
    for key, value in cfg.norm_params().items():
        if isinstance(value, str):
            if value != PARAM_FIELDS[key][1].default:
                shown[key] = value
        else:
            shown[key] = f"{value:g}"
    return shown


def run_label(cfg: TrialConfig) -> str:
    """A trial as a person reads it in the MLflow UI: ``rte · isobn beta=0.5 alpha=0.95 eps=0.1 ·
    lr 2e-05 · bs 32 · seed 3``."""
    norm = " ".join([cfg.cls_norm, *(f"{k}={v}" for k, v in labelled_params(cfg).items())])
    return f"{cfg.task} · {norm} · lr {cfg.lr:g} · bs {cfg.batch_size} · seed {cfg.seed}"


def method_label(cfg: TrialConfig) -> str:
    return cfg.cls_norm


def short_label(cfg: TrialConfig) -> str:
    """The grid coordinates of a configuration, usable as an MLflow metric-name segment."""
    label = f"{cfg.cls_norm}_lr{cfg.lr:g}_bs{cfg.batch_size}"
    return label + "".join(f"_{k}{v}" for k, v in labelled_params(cfg).items())


def trial_status(cfg: TrialConfig, metrics: Mapping[str, Any], errored: bool) -> str:
    """finished (ran all epochs or hit its patience), stopped (by the scheduler) or errored."""
    if errored:
        return "errored"
    epoch = int(metrics.get("epoch", 0))
    if epoch >= cfg.max_epochs:
        return "finished"
    if cfg.patience_exhausted(epoch, int(metrics.get("best_epoch", 0))):
        return "finished"
    return "stopped"


def record_from_result(trial_id: str, config: Mapping[str, Any], metrics: Mapping[str, Any] | None,
                       errored: bool, rows: Iterable[Mapping[str, Any]] = ()) -> TrialRecord:
    """A trial's record from its last result; ``rows``: every result it reported (its history)."""
    cfg = TrialConfig.from_dict(dict(config))
    metrics = metrics or {}
    best = metrics.get(BEST_OBJECTIVE)
    return TrialRecord(
        trial_id=trial_id,
        config=cfg,
        best_objective=float(best) if best is not None else None,
        last_epoch=int(metrics.get("epoch", 0)),
        status=trial_status(cfg, metrics, errored),
        history=best_history((int(r["epoch"]), r[BEST_OBJECTIVE]) for r in rows
                             if "epoch" in r and BEST_OBJECTIVE in r),
    )


def best_history(points: Iterable[tuple[int, float]]) -> tuple[tuple[int, float], ...]:
    """(epoch, value) in epoch order, the last reported value of an epoch winning (a retry or a
    PBT exploit reports an epoch again)."""
    return tuple(sorted({int(epoch): float(value) for epoch, value in points}.items()))


@dataclass(frozen=True)
class GroupSummary:
    """One configuration over its seeds; ``median`` and (population, ddof=0) ``std`` over the
    seeds that reported a best dev metric."""

    task: str
    group: str
    label: str
    method: str
    config: Mapping[str, Any]
    values: tuple[float, ...]
    seeds: tuple[int, ...]
    n_trials: int
    trials: tuple[TrialRecord, ...] = ()  # every trial of the configuration, whatever its status

    @property
    def median(self) -> float:
        return float(np.median(self.values)) if self.values else float("nan")

    @property
    def std(self) -> float:
        return float(np.std(self.values)) if self.values else float("nan")


def summarise_groups(records: Iterable[TrialRecord]) -> list[GroupSummary]:
    """Group trials by (task, configuration) and collect each group's seed values.

    Only trials that ran the full budget count: one a scheduler stopped early would sit beside
    trials that trained longer (a per-trial scheduler's bias), an errored one has no final score.
    """
    by_group: dict[tuple[str, str], list[TrialRecord]] = defaultdict(list)
    for rec in records:
        by_group[(rec.config.task, rec.group)].append(rec)
    summaries = []
    for (task, group), recs in by_group.items():
        scored = [r for r in recs if r.best_objective is not None and r.status == "finished"]
        first = recs[0].config.to_dict()
        first.pop("seed")
        summaries.append(GroupSummary(
            task=task, group=group, label=short_label(recs[0].config), method=recs[0].method, config=first,
            values=tuple(r.best_objective for r in scored),
            seeds=tuple(r.config.seed for r in scored), n_trials=len(recs), trials=tuple(recs),
        ))
    return sorted(summaries, key=lambda s: (s.task, -np.nan_to_num(s.median, nan=-np.inf)))


def best_groups(summaries: Iterable[GroupSummary]) -> dict[str, GroupSummary]:
    """The best configuration (highest seed median) of each task."""
    best: dict[str, GroupSummary] = {}
    for s in summaries:
        if s.values and (s.task not in best or s.median > best[s.task].median):
            best[s.task] = s
    return best


def best_by_method(summaries: Iterable[GroupSummary]) -> dict[tuple[str, str], GroupSummary]:
    """The best configuration (highest seed median) of each (task, method): the paper's choice."""
    best: dict[tuple[str, str], GroupSummary] = {}
    for s in summaries:
        key = (s.task, s.method)
        if s.values and (key not in best or s.median > best[key].median):
            best[key] = s
    return best


def method_table(summaries: Iterable[GroupSummary], comparisons: SweepComparisons | None = None
                 ) -> list[dict[str, Any]]:
    """Paper-style rows: per task and method, the best configuration's median ± std over the seeds
    that ran the full budget (``budget_epochs``); a method other than the baseline also gets its
    paired comparison with the baseline's best (:data:`isobn_tune.comparisons.CSV_COLUMNS`:
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
