"""Figures a sweep logs on its MLflow parent run: each a PNG with its data as a CSV of the same stem
beside it, so a reader can check or re-plot the numbers without the PNG.

- :func:`seed_scores_figure`: every configuration's seed scores, median and interval of the median,
  to see whether the configurations differ by more than seed noise.
- :func:`learning_curves_figure`: median dev objective per epoch over seeds, with its quartiles, to
  see whether the epoch budget was enough and how noisy training is.
- :func:`budget_curves_figure`: median best dev score of n trials per method with a simultaneous
  distribution-free band (tuning curves, Lourie et al. 2024), to see how much of a method's lead
  is bought by a larger search.
- :func:`write_sweep_figures`: all three for every task of a sweep.

Pure numpy/scipy/matplotlib (Agg, imported when plotting): no torch, Ray or MLflow.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from isobn_tune.results.aggregate import (
    GroupSummary,
    TrialRecord,
    config_group,
    short_label,
    summarise_groups,
)
from isobn_tune.results.statistics import percentile_interval
from isobn_tune.results.tuning_curves import metric_bounds, tuning_curve

__all__ = [
    "budget_curves_figure",
    "learning_curves_figure",
    "seed_scores_figure",
    "write_sweep_figures",
]

SEED_SCORE_COLUMNS = ("task", "config", "method", "seed", "score")
LEARNING_CURVE_COLUMNS = ("task", "config", "epoch", "median", "q25", "q75", "n_seeds")
BUDGET_CURVE_COLUMNS = ("task", "method", "over", "budget", "median_best", "low", "high", "confidence",
                        "n_trials")
ALL_TRIALS = "all trials"  # every trial of the method pooled
BEST_SEEDS = "seeds of its best configuration"

Histories = Mapping[str, Sequence[tuple[int, float]]]  # trial_id -> [(epoch, dev objective), ...]

DPI = 80
_CONFIDENCE = 0.95
_N_RESAMPLES = 2000
_MIN_BOOTSTRAP_SEEDS = 3  # below this a bootstrap of the median only reshuffles 1-2 values
IID_NOTE = ("Dashed: the seeds of a configuration, independent draws by construction. Solid: all trials "
            "pooled, read as independent draws from one distribution; a grid's trials are a fixed set, "
            "not such draws, so that curve is indicative only.")


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, imported here so the module loads without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, png: Path) -> None:
    try:
        fig.savefig(png, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _paths(out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"{stem}.png", out_dir / f"{stem}.csv"


def _scored(summaries: Sequence[GroupSummary], task: str) -> list[GroupSummary]:
    return [s for s in summaries if s.task == task and s.values]


def _median_interval(values: Sequence[float]) -> tuple[float, float]:
    """95% interval of the median over seeds: a percentile bootstrap (fixed rng, so a figure is
    reproducible) from 3 seeds on, else min-max. With few seeds neither reaches 95% coverage (the
    bootstrap interval lies within min-max, which covers the median with probability 1 - 2**(1 - n))."""
    array = np.asarray(values, dtype=float)
    if array.size < _MIN_BOOTSTRAP_SEEDS:
        return float(array.min()), float(array.max())
    return percentile_interval((array,), np.median, confidence=_CONFIDENCE, n_resamples=_N_RESAMPLES,
                                rng=np.random.default_rng(0))


def seed_scores_figure(summaries: Sequence[GroupSummary], out_dir: Path, *, task: str) -> tuple[Path, Path]:
    """Each configuration of ``task`` (a row, best median on top): its seed scores (x100), median and
    a 95% interval of the median (percentile bootstrap over seeds; min-max below 3 seeds), so
    overlapping intervals show differences within seed noise. CSV: one row per scored seed, raw
    scores. Returns (png, csv); ValueError if no configuration of ``task`` has a score."""
    groups = sorted(_scored(summaries, task), key=lambda s: s.median)
    if not groups:
        raise ValueError(f"no scored configuration for task {task!r}")
    png, csv_path = _paths(out_dir, f"seed_scores_{task}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.45 * len(groups)))
    for y, s in enumerate(groups):
        low, high = _median_interval(s.values)
        ax.hlines(y, 100 * low, 100 * high, color="tab:blue", lw=2,
                  label="95% interval of median" if y == 0 else None)
        ax.plot(100 * np.asarray(s.values), np.full(len(s.values), y), "o", color="grey", alpha=0.6, ms=5,
                label="seed" if y == 0 else None)
        ax.plot(100 * s.median, y, "D", color="tab:red", ms=8, label="median" if y == 0 else None)
    ax.set_yticks(range(len(groups)), [s.label for s in groups])
    ax.set(title=f"{task}: best dev score per seed", xlabel="best dev score (x100)", ylabel="configuration",
           ylim=(-0.6, len(groups) - 0.4))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    _save(plt, fig, png)
    rows = [{"task": task, "config": s.label, "method": s.method, "seed": seed, "score": value}
            for s in reversed(groups) for seed, value in zip(s.seeds, s.values, strict=True)]
    _write_csv(csv_path, SEED_SCORE_COLUMNS, rows)
    return png, csv_path


def _counted(records: Sequence[TrialRecord], task: str) -> list[TrialRecord]:
    """The trials of ``task`` that count: not errored and with a best dev metric."""
    return [r for r in records
            if r.config.task == task and r.status != "errored" and r.best_objective is not None]


def _curve_rows(records: Sequence[TrialRecord], histories: Histories, task: str) -> list[dict[str, Any]]:
    """Per configuration and epoch: median and quartiles over the seeds that reported that epoch (a
    repeated epoch keeps its last value; NaN values count as missing)."""
    by_group: dict[str, dict[str, dict[int, float]]] = defaultdict(dict)
    labels: dict[str, str] = {}
    for rec in _counted(records, task):
        curve = {int(epoch): float(value) for epoch, value in histories.get(rec.trial_id, ())
                 if math.isfinite(float(value))}
        if curve:
            group = config_group(rec.config)
            by_group[group][rec.trial_id] = curve
            labels[group] = short_label(rec.config)
    rows = []
    for group, curves in sorted(by_group.items(), key=lambda item: labels[item[0]]):
        for epoch in sorted(set().union(*curves.values())):
            values = [c[epoch] for c in curves.values() if epoch in c]
            q25, median, q75 = np.percentile(values, [25, 50, 75])
            rows.append({"task": task, "config": labels[group], "epoch": epoch, "median": float(median),
                         "q25": float(q25), "q75": float(q75), "n_seeds": len(values)})
    return rows


def learning_curves_figure(records: Sequence[TrialRecord], histories: Histories, out_dir: Path, *,
                           task: str) -> tuple[Path, Path]:
    """Per configuration of ``task``: the median over seeds of the dev objective per epoch (x100) with
    its 25-75th percentile band. ``histories``: trial_id -> [(epoch, dev objective), ...], in any
    order, epochs may be missing. Trials stopped early drop out of later epochs, so a late median is
    over the survivors (the CSV's n_seeds says how many). Returns (png, csv); ValueError if empty."""
    rows = _curve_rows(records, histories, task)
    if not rows:
        raise ValueError(f"no learning curve of a scored trial for task {task!r}")
    png, csv_path = _paths(out_dir, f"learning_curves_{task}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    for label in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == label]
        epochs = [r["epoch"] for r in mine]
        (line,) = ax.plot(epochs, [100 * r["median"] for r in mine], marker="o", ms=3, label=label)
        ax.fill_between(epochs, [100 * r["q25"] for r in mine], [100 * r["q75"] for r in mine],
                        color=line.get_color(), alpha=0.2)
    ax.set(title=f"{task}: dev objective per epoch (median over seeds, 25-75th percentile band)",
           xlabel="epoch", ylabel="dev objective (x100)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    _save(plt, fig, png)
    _write_csv(csv_path, LEARNING_CURVE_COLUMNS, rows)
    return png, csv_path


def budget_curves_figure(summaries: Sequence[GroupSummary], out_dir: Path, *, task: str) -> tuple[Path, Path]:
    """Per method, its :func:`~isobn_tune.results.tuning_curves.tuning_curve` (median best score of n
    trials) with its 95% simultaneous distribution-free band, over two kinds of draws: the seeds
    of its best configuration (independent draws by construction: how much best-of-n seeds
    flatters a configuration), and all its trials pooled (what a random or Optuna search of that
    size would find; a grid's trials are a fixed set, not independent draws, and the figure says
    so). The band spans the task metric's range where the trials cannot narrow it. A method that
    leads only at large budgets wins by search, not by being better. Returns (png, csv);
    ValueError if none scored."""
    pooled: dict[str, list[float]] = defaultdict(list)
    best: dict[str, GroupSummary] = {}
    for s in _scored(summaries, task):
        pooled[s.method].extend(s.values)
        if s.method not in best or s.median > best[s.method].median:
            best[s.method] = s
    if not pooled:
        raise ValueError(f"no scored configuration for task {task!r}")
    png, csv_path = _paths(out_dir, f"budget_curves_{task}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    rows = []
    for method, scores in sorted(pooled.items()):
        for over, draws, style in ((ALL_TRIALS, scores, "-"), (BEST_SEEDS, list(best[method].values), "--")):
            curve = tuning_curve(draws, bounds=metric_bounds(task), confidence=_CONFIDENCE)
            (line,) = ax.plot(curve.budgets, 100 * curve.median, style, marker="o", ms=3,
                              label=f"{method}, {over} (N={curve.n_trials})")
            ax.fill_between(curve.budgets, 100 * curve.low, 100 * curve.high, color=line.get_color(),
                            alpha=0.15)
            rows += [{"task": task, "method": method, "over": over, **row, "n_trials": curve.n_trials}
                     for row in curve.to_rows()]
    ax.set(title=f"{task}: median best dev score of n trials, {_CONFIDENCE:.0%} simultaneous band "
                 "(Lourie et al. 2024)",
           xlabel="trials (budget)", ylabel="median best dev score (x100)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.text(0.5, -0.02, IID_NOTE, ha="center", va="top", fontsize="small", wrap=True)
    _save(plt, fig, png)
    _write_csv(csv_path, BUDGET_CURVE_COLUMNS, rows)
    return png, csv_path


def write_sweep_figures(records: Sequence[TrialRecord], histories: Histories, out_dir: Path) -> list[Path]:
    """All three figures for every task of the sweep, skipping a figure with nothing to plot (a task
    whose trials all errored, or without histories); returns every PNG and CSV written. They show
    the selection sweep: trials ``isobn-tune confirm`` ran at fresh seeds are in none of them (their
    scores are the confirmatory rows of the table)."""
    records = [r for r in records if not r.confirmation]
    summaries = summarise_groups(records)
    written: list[Path] = []
    for task in sorted({r.config.task for r in records}):
        if _scored(summaries, task):
            written += seed_scores_figure(summaries, out_dir, task=task)
            written += budget_curves_figure(summaries, out_dir, task=task)
        if _curve_rows(records, histories, task):
            written += learning_curves_figure(records, histories, out_dir, task=task)
    return written
