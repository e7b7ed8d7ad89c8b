"""Seed statistics: what a sweep learned from each trial (its record) and the median and std over
seeds of each configuration's best dev metric.

Budget-matched: a median holds only trials that ran the full budget (status finished); a trial a
scheduler stopped early, an errored or a running one enters no median (:mod:`.tables` lists it with
the epoch it reached)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

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
    # (epoch, best dev metric up to that epoch) for each epoch the trial reported
    history: tuple[tuple[int, float], ...] = ()
    # run by `isobn-tune confirm` at fresh seeds: never in the selection of the best configurations
    confirmation: bool = False

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
                       errored: bool, rows: Iterable[Mapping[str, Any]] = (), *, confirmation: bool = False
                       ) -> TrialRecord:
    """A trial's record from its last result; ``rows``: every result it reported (its history);
    ``confirmation``: an ``isobn-tune confirm`` trial."""
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
        confirmation=confirmation,
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
    # ties broken by the configuration's key, so that every reader of the same trials (the run's
    # end from Tune, report from MLflow, confirm) ranks them, and picks the best, alike
    return sorted(summaries, key=lambda s: (s.task, -np.nan_to_num(s.median, nan=-np.inf), s.group))


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
