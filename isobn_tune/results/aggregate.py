"""Seed statistics: the median and std over seeds of each configuration's best dev metric, and
the paper-style table (task x method, median ± std)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from isobn_tune.results.comparisons import BASELINE, CSV_COLUMNS, compare_sweep, comparisons_markdown, points
from isobn_tune.results.groups import group_key
from isobn_tune.train.cls_norm import PARAM_FIELDS, params_of
from isobn_tune.train.metrics import BEST_OBJECTIVE
from isobn_tune.train.recipe import TrialConfig

STATUSES = ("finished", "stopped", "errored", "running")


@dataclass(frozen=True)
class TrialRecord:
    """What a sweep learned from one trial."""

    trial_id: str
    config: TrialConfig
    best_objective: float | None
    last_epoch: int
    status: str  # one of STATUSES

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
                       errored: bool) -> TrialRecord:
    cfg = TrialConfig.from_dict(dict(config))
    metrics = metrics or {}
    best = metrics.get(BEST_OBJECTIVE)
    return TrialRecord(
        trial_id=trial_id,
        config=cfg,
        best_objective=float(best) if best is not None else None,
        last_epoch=int(metrics.get("epoch", 0)),
        status=trial_status(cfg, metrics, errored),
    )


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

    @property
    def median(self) -> float:
        return float(np.median(self.values)) if self.values else float("nan")

    @property
    def std(self) -> float:
        return float(np.std(self.values)) if self.values else float("nan")


def summarise_groups(records: Iterable[TrialRecord]) -> list[GroupSummary]:
    """Group trials by (task, configuration) and collect each group's seed values.

    Stopped trials count with the best metric they reached (a per-trial scheduler's bias shows
    here; group schedulers stop all seeds of a group together); errored trials do not count.
    """
    by_group: dict[tuple[str, str], list[TrialRecord]] = defaultdict(list)
    for rec in records:
        by_group[(rec.config.task, rec.group)].append(rec)
    summaries = []
    for (task, group), recs in by_group.items():
        scored = [r for r in recs if r.best_objective is not None and r.status != "errored"]
        first = recs[0].config.to_dict()
        first.pop("seed")
        summaries.append(GroupSummary(
            task=task, group=group, label=short_label(recs[0].config), method=recs[0].method, config=first,
            values=tuple(r.best_objective for r in scored),
            seeds=tuple(r.config.seed for r in scored), n_trials=len(recs),
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


def method_table(summaries: Iterable[GroupSummary]) -> list[dict[str, Any]]:
    """Paper-style rows: per task and method, the best configuration's median ± std over seeds; a
    method other than the baseline also gets its paired comparison with the baseline's best
    (:data:`isobn_tune.results.comparisons.CSV_COLUMNS`: difference, interval, P(A > B), pairs, verdict)."""
    summaries = list(summaries)
    comparisons = compare_sweep(summaries)
    rows = []
    for (task, method), s in sorted(best_by_method(summaries).items()):
        vs = comparisons.best_vs_baseline(task, method)
        rows.append({"task": task, "method": method, "median": s.median, "std": s.std, "seeds": len(s.values),
                     "config": s.group, **{k: getattr(vs, k) if vs else None for k in CSV_COLUMNS}})
    return rows


TABLE_COLUMNS = ("task", "method", "median", "std", "seeds", "config", *CSV_COLUMNS)


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
            cells.append(f"{100 * r['median']:.2f} ± {100 * r['std']:.2f} (n={r['seeds']})" if r else "–")
        for m in compared:
            r = cell.get((task, m))
            cells.append(_difference(r) if r and r["verdict"] else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def sweep_description(summaries: list[GroupSummary], compare: Sequence[str] | None = None) -> str:
    """What a sweep found, in Markdown: the task x method table, then every paired comparison with
    its verdict and the note on selection bias (the parent run's description and ``report``);
    ``compare``: two configuration labels to compare as well."""
    comparisons = compare_sweep(summaries, compare=compare)
    return table_markdown(method_table(summaries)) + "\n" + comparisons_markdown(comparisons)


def _difference(row: dict[str, Any]) -> str:
    return (f"{points(row['diff_median'])} [{points(row['ci95_low'])}, {points(row['ci95_high'])}]: "
            f"{row['verdict']}")
