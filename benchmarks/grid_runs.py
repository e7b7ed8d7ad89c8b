"""One small real grid, run four ways through the real runner, for ``seed_groups.py`` and
``asha_vs_grid.py``: the full grid (``fifo``), per-trial ASHA (``asha``), group ASHA
(``asha_by_config``) and the seed-paired race (``race_by_config``), with every trial read back
from MLflow.

The sweeps are cached in ``--out DIR`` so that both printouts come from one run: a script runs
only the sweeps ``DIR`` lacks and reuses the others (the grid flags must match the cached ones).

``DIR`` layout::

    runs.json          the grid and, per finished sweep, its MLflow parent run and wall time
    mlflow.db          the MLflow store of the sweeps
    <sweep>.yaml       the space file each sweep ran
    results/<sweep>/   Tune's experiment (checkpoints are deleted once the sweep is done)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import ray
import yaml

from isobn_tune.data.glue import resolve_glue_dir
from isobn_tune.errors import UserError
from isobn_tune.results.aggregate import GroupSummary, TrialRecord, best_groups, summarise_groups
from isobn_tune.runner import run_sweep
from isobn_tune.tracking.readback import epoch_metrics, records_from_mlflow
from isobn_tune.train.metrics import OBJECTIVE

SWEEPS = ("fifo", "asha", "asha_by_config", "race_by_config")
LABELS = {"fifo": "full grid (fifo)", "asha": "per-trial ASHA", "asha_by_config": "group ASHA",
          "race_by_config": "seed-paired race"}
CACHE = "runs.json"


@dataclass(frozen=True)
class GridSpec:
    """The grid: lr x cls_norm x seeds on one task with the pretrained MiniLM-L6."""

    task: str
    lrs: tuple[float, ...]
    cls_norms: tuple[str, ...]
    seeds: tuple[int, ...]
    epochs: int
    train_examples: int
    dev_examples: int
    max_seq_length: int
    batch_size: int
    grace_period: int  # also the race's min_epochs
    reduction_factor: float
    race_alpha: float
    glue_dir: str

    @property
    def grid_trial_epochs(self) -> int:
        return len(self.lrs) * len(self.cls_norms) * len(self.seeds) * self.epochs

    def space(self, sweep: str) -> dict[str, Any]:
        scheduler: dict[str, Any] = {"type": sweep}
        if sweep == "race_by_config":
            scheduler |= {"min_epochs": self.grace_period, "alpha": self.race_alpha}
        elif sweep != "fifo":
            scheduler |= {"grace_period": self.grace_period, "reduction_factor": self.reduction_factor}
        return {
            "name": sweep,
            "model": {"name_or_path": "minilm"},
            "tasks": [self.task],
            "data": {"glue_dir": self.glue_dir, "max_train_examples": self.train_examples,
                     "max_dev_examples": self.dev_examples, "max_seq_length": self.max_seq_length},
            "grid": {"cls_norm": list(self.cls_norms), "lr": list(self.lrs), "batch_size": [self.batch_size],
                     "seeds": list(self.seeds)},
            "recipe": {"max_epochs": self.epochs},
            "scheduler": scheduler,
            "resources": {"cpus_per_trial": 1},
            "run": {"checkpoints_to_keep": 2},
        }

    def describe(self) -> str:
        return (f"{self.task}, MiniLM-L6: lr {{{', '.join(f'{lr:g}' for lr in self.lrs)}}} x cls_norm "
                f"{{{', '.join(self.cls_norms)}}} x {len(self.seeds)} seeds, {self.epochs} epochs, "
                f"{self.train_examples} train / {self.dev_examples} dev examples, seq {self.max_seq_length}, "
                f"batch {self.batch_size}; ASHA grace {self.grace_period}, reduction factor "
                f"{self.reduction_factor:g}; race from epoch {self.grace_period}, alpha {self.race_alpha:g}")


def successive_halving_floor(spec: GridSpec) -> float:
    """The compute fraction of ideal synchronous successive halving on this grid: between rungs,
    exactly ``1/reduction_factor`` of the remaining configurations continue."""
    rungs, rung = [], float(spec.grace_period)
    while rung < spec.epochs:
        rungs.append(rung)
        rung *= spec.reduction_factor
    bounds = [0.0, *rungs, float(spec.epochs)]
    spans = zip(bounds, bounds[1:], strict=False)
    used = sum((end - start) / spec.reduction_factor**i for i, (start, end) in enumerate(spans))
    return used / spec.epochs


@dataclass
class SweepRun:
    """One finished sweep of the grid and its trials."""

    sweep: str
    tracking_uri: str
    parent_run_id: str
    wall_s: float

    @cached_property
    def records(self) -> list[TrialRecord]:
        return records_from_mlflow(self.tracking_uri, self.parent_run_id)

    @property
    def trial_epochs(self) -> int:
        return sum(r.last_epoch for r in self.records)

    @cached_property
    def timeline(self) -> list[EpochResult]:
        """Every epoch of every trial in the order the driver logged it to MLflow."""
        return sorted(
            EpochResult(m.timestamp, m.step, trial_id, m.value)
            for trial_id, history in epoch_metrics(self.tracking_uri, self.parent_run_id, OBJECTIVE).items()
            for m in history
        )


@dataclass(frozen=True, order=True)
class EpochResult:
    """One trial's dev metric after one epoch, with the time the driver logged it."""

    timestamp_ms: int
    epoch: int
    trial_id: str
    objective: float


@dataclass(frozen=True)
class Choice:
    """The configuration a sweep selects: the highest median over seeds of the best dev metric."""

    group: str
    label: str
    median: float
    seeds: int


def label(summary: GroupSummary) -> str:
    return f"{summary.config['cls_norm']}, lr {summary.config['lr']:g}"


def summaries(records: list[TrialRecord], *, completed_only: bool = False) -> list[GroupSummary]:
    """Configurations with their seed medians; ``completed_only``: over the seeds that ran every
    epoch (what is left to compare when early stopping ended the others)."""
    return summarise_groups([r for r in records if r.status == "finished" or not completed_only])


def choose(records: list[TrialRecord], *, completed_only: bool = False) -> Choice:
    (best,) = best_groups(summaries(records, completed_only=completed_only)).values()
    return Choice(best.group, label(best), best.median, len(best.values))


def incumbents(run: SweepRun) -> list[Choice]:
    """The configuration the sweep would have chosen had it been stopped after each trial-epoch
    (the i-th entry: after i + 1 trial-epochs), from the best each seed had reached by then."""
    records = {r.trial_id: r for r in run.records}
    best_so_far: dict[str, float] = {}
    chosen = []
    for result in run.timeline:
        best_so_far[result.trial_id] = max(best_so_far.get(result.trial_id, -np.inf), result.objective)
        chosen.append(choose([replace(records[t], best_objective=v) for t, v in best_so_far.items()]))
    return chosen


def grid_medians(grid: SweepRun) -> dict[str, float]:
    """Each configuration's seed median in the full grid (every seed, every epoch)."""
    return {s.group: s.median for s in summaries(grid.records)}


def points(value: float) -> str:
    """A metric on GLUE's x100 scale."""
    return "n/a" if np.isnan(value) else f"{100 * value:.2f}"


# ----- running or reusing the sweeps -------------------------------------------------------------

def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("results/benchmark-grid"),
                        help="cache of the sweeps (reused when it holds the same grid)")
    parser.add_argument("--task", default="stsb")
    parser.add_argument("--glue-dir", help="GLUE folder (default: $GLUE_DIR)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-5, 5e-5, 1e-4])
    parser.add_argument("--cls-norms", nargs="+", default=["none", "isobn"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--train-examples", type=int, default=200)
    parser.add_argument("--dev-examples", type=int, default=200)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--reduction-factor", type=float, default=3.0)
    parser.add_argument("--race-alpha", type=float, default=0.125,
                        help="level of the race's test (0.125: the smallest 3 seeds reach, every seed worse)")


def runs_from_command_line(description: str) -> tuple[GridSpec, dict[str, SweepRun]]:
    """Parse the grid flags, then run or reuse the sweeps; a user error exits with its message."""
    parser = argparse.ArgumentParser(description=description)
    add_grid_arguments(parser)
    args = parser.parse_args()
    try:
        spec = spec_from_args(args)
        return spec, run_or_reuse(spec, args.out)
    except UserError as exc:
        sys.exit(f"error: {exc}")


def spec_from_args(args: argparse.Namespace) -> GridSpec:
    glue_dir = resolve_glue_dir(args.glue_dir)
    if glue_dir is None:
        raise UserError("no GLUE data: pass --glue-dir or set GLUE_DIR")
    return GridSpec(
        task=args.task, lrs=tuple(args.lrs), cls_norms=tuple(args.cls_norms), seeds=tuple(args.seeds),
        epochs=args.epochs, train_examples=args.train_examples, dev_examples=args.dev_examples,
        max_seq_length=args.max_seq_length, batch_size=args.batch_size, grace_period=args.grace_period,
        reduction_factor=args.reduction_factor, race_alpha=args.race_alpha, glue_dir=str(glue_dir),
    )


def run_or_reuse(spec: GridSpec, out: Path, sweeps: tuple[str, ...] = SWEEPS) -> dict[str, SweepRun]:
    """The ``sweeps`` of ``spec``: the ones cached in ``out``, the others run now (one local Ray
    instance for all of them) and added to the cache."""
    cache = _read_cache(spec, out)
    missing = [sweep for sweep in sweeps if sweep not in cache["sweeps"]]
    if missing:
        ray.init(include_dashboard=False, logging_level="WARNING")
        try:
            for sweep in missing:
                cache["sweeps"][sweep] = asdict(_run(spec, sweep, out))
                (out / CACHE).write_text(json.dumps(cache, indent=2))
        finally:
            ray.shutdown()
    return {sweep: SweepRun(**cache["sweeps"][sweep]) for sweep in sweeps}


def _read_cache(spec: GridSpec, out: Path) -> dict[str, Any]:
    wanted = json.loads(json.dumps(asdict(spec)))  # tuples as JSON lists, like the cached copy
    if not (out / CACHE).is_file():
        return {"spec": wanted, "sweeps": {}}
    cache = json.loads((out / CACHE).read_text())
    if cache["spec"] != wanted:
        raise UserError(f"{out} caches another grid ({cache['spec']}); pass the same flags or another --out")
    return cache


def _run(spec: GridSpec, sweep: str, out: Path) -> SweepRun:
    """Run one sweep from scratch (an interrupted earlier attempt is discarded)."""
    space_file = out / f"{sweep}.yaml"
    out.mkdir(parents=True, exist_ok=True)
    space_file.write_text(yaml.safe_dump(spec.space(sweep), sort_keys=False))
    results = out / "results"
    shutil.rmtree(results / sweep, ignore_errors=True)
    tracking_uri = f"sqlite:///{(out / 'mlflow.db').resolve()}"
    start = time.perf_counter()
    outcome = run_sweep(space_file, storage=str(results), name=sweep, tracking_uri=tracking_uri)
    wall_s = time.perf_counter() - start
    if outcome.errored:
        raise UserError(f"{len(outcome.errored)} trial(s) of the {sweep} sweep errored: {results / sweep}")
    for checkpoint in sorted((results / sweep).rglob("checkpoint_*")):
        shutil.rmtree(checkpoint)
    return SweepRun(sweep, tracking_uri, outcome.parent_run_id, wall_s)
