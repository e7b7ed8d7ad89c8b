"""Replay a recorded full grid's per-epoch dev scores through a scheduler's real decision rule,
without Ray and without training: how much compute it saves, and whether the sweep's answers
(each method's best configuration, the confirmatory verdict) survive the early stopping.

A source is a finished fifo sweep directory (its trials' per-epoch scores are read from Tune's
``result.json`` files, the space from its manifest) or a **bank** directory::

    space.yaml      the space file that recorded it (its grid, recipe.max_epochs, scheduler)
    *.csv           per-epoch dev scores, one row per (trial, epoch), header
                    task,cls_norm,config,seed,epoch,score
                    config: a label of the configuration (cls_norm, lr ... without the seed);
                    epoch: 1..recipe.max_epochs; score: the task's selection metric at that
                    epoch, higher is better, in its own units (0.5 points = 0.005).

Every (config, seed) must have every epoch. Each repeat draws a random trial arrival order and a
random K-seed subset for selection, feeds the scores through the rule (trials start in arrival
order, at most ``resources.max_concurrent_trials`` unfinished at once, each stepping an epoch at a
time in random interleaving; paused seeds resume as the rule releases them), then takes each
method's configuration (the best median over the selection seeds among the configurations that
reached the budget) and compares, on the held-out seeds, each method's choice with the baseline's
by the exact paired test, as :mod:`isobn_tune.results.verdicts` does.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from isobn_tune.errors import UserError
from isobn_tune.results.comparisons import BASELINE
from isobn_tune.results.groups import group_key, seed_of, value_at
from isobn_tune.results.paired_tests import ALPHA, exact_paired_test, min_pairs_needed
from isobn_tune.results.statistics import NOT_DISTINGUISHABLE
from isobn_tune.schedulers.decisions import STOP
from isobn_tune.schedulers.section import STRATUM_KEY, GroupSection
from isobn_tune.space import SweepSpace
from isobn_tune.space.checks import cross_section_problems
from isobn_tune.space.loading import apply_overrides, read_space_file
from isobn_tune.sweep.directory import MANIFEST, SweepDir, read_manifest
from isobn_tune.train.metrics import OBJECTIVE

BANK_SPACE = "space.yaml"
BANK_COLUMNS = ("task", "cls_norm", "config", "seed", "epoch", "score")
HALF_POINT = 0.005  # 0.5 points, in the metric's own units
REPLAYABLE = ("fifo", "asha_by_config", "median_by_config", "race_by_config")
JSON_KEYS = ("compute_fraction", "best_within_half_point", "verdict_agreement", "aa_false_verdict", "repeats")


@dataclass(frozen=True)
class TaskGrid:
    """One task's full grid: ``scores[c, s, e]`` is configuration c's seed s's dev score at epoch
    e + 1 (higher is better)."""

    task: str
    configs: list[str]
    methods: list[str]  # per configuration: its cls_norm
    seeds: list[Any]
    scores: np.ndarray

    @property
    def best_so_far(self) -> np.ndarray:
        """What the schedulers decide on: the best score up to each epoch (the paper keeps the
        best epoch)."""
        return np.maximum.accumulate(self.scores, axis=2)


@dataclass(frozen=True)
class Source:
    space: SweepSpace  # with the overrides applied
    grids: list[TaskGrid]


# ----- reading a source ---------------------------------------------------------------------------
def load_source(source: str, overrides: Sequence[str] = ()) -> Source:
    """A bank or a finished fifo sweep directory, with the scheduler the overrides choose."""
    path = Path(source)
    if (path / BANK_SPACE).is_file():
        raw, where = read_space_file(path / BANK_SPACE), path / BANK_SPACE
        space = _validated(raw, overrides, where)
        return Source(space, _read_bank(path, space))
    if (path / MANIFEST).is_file():
        manifest = read_manifest(SweepDir.parse(source))
        recorded = manifest["space"].get("scheduler", {}).get("type", "fifo")
        if recorded != "fifo":
            raise UserError(f"{source}: a replay needs a full grid, but this sweep ran scheduler {recorded} "
                            "(replay a fifo sweep)")
        space = _validated(manifest["space"], overrides, path / MANIFEST)
        return Source(space, _read_sweep(path, space))
    raise UserError(f"{source}: neither a sweep directory (no {MANIFEST}) nor a bank (no {BANK_SPACE})")


def _validated(raw: dict[str, Any], overrides: Sequence[str], where: Path) -> SweepSpace:
    from pydantic import ValidationError

    try:
        space = SweepSpace.model_validate(apply_overrides(raw, overrides), context={"base_dir": where.parent})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"{where}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    problems = cross_section_problems(space)
    if problems:
        loc, message, value = problems[0]
        raise UserError(f"{where}: {'.'.join(loc)}: {message} (got {value})")
    if space.scheduler.type not in REPLAYABLE:
        raise UserError(f"scheduler.type={space.scheduler.type!r} cannot be replayed without Ray; "
                        f"allowed: {', '.join(REPLAYABLE)}")
    return space


Row = tuple[str, str, str, Any, int, float]
"""(task, cls_norm, config label, seed, epoch, score): one recorded score."""


def _read_bank(path: Path, space: SweepSpace) -> list[TaskGrid]:
    rows: list[Row] = []
    files = sorted(path.glob("*.csv"))
    if not files:
        raise UserError(f"{path}: a bank needs per-epoch CSV files beside {BANK_SPACE}")
    for file in files:
        with file.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != BANK_COLUMNS:
                raise UserError(f"{file}: header must be {','.join(BANK_COLUMNS)}, got {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                try:
                    rows.append((row["task"], row["cls_norm"], row["config"], row["seed"], int(row["epoch"]),
                                 float(row["score"])))
                except ValueError:
                    raise UserError(f"{file}:{line}: epoch must be an integer and score a number") from None
    return _grids(rows, space, str(path))


def _read_sweep(path: Path, space: SweepSpace) -> list[TaskGrid]:
    """Every trial's per-epoch objective from Tune's ``params.json`` and ``result.json``."""
    rows: list[Row] = []
    unfinished: list[str] = []
    for task in space.tasks:
        for trial in sorted(p for p in (path / task).glob("*/") if (p / "params.json").is_file()):
            config = json.loads((trial / "params.json").read_text())
            seed, label, method = seed_of(config), group_key(config), value_at(config, STRATUM_KEY)
            result = trial / "result.json"
            lines = result.read_text().splitlines() if result.is_file() else []
            records = [r for r in map(json.loads, lines) if OBJECTIVE in r and "epoch" in r]
            epochs = {int(r["epoch"]): float(r[OBJECTIVE]) for r in records}
            if len(epochs) < space.recipe.max_epochs:
                unfinished.append(f"{task}/{trial.name}")
            rows += [(task, method, label, seed, epoch, value) for epoch, value in epochs.items()]
    if unfinished:
        raise UserError(f"{path}: unfinished sweep: {len(unfinished)} trial(s) did not report all "
                        f"{space.recipe.max_epochs} epochs (e.g. {unfinished[0]}); finish it with "
                        "`isobn-tune resume` or replay a finished one")
    if not rows:
        raise UserError(f"{path}: no trial results found (Tune's result.json under each task's folder)")
    return _grids(rows, space, str(path))


def _grids(rows: list[Row], space: SweepSpace, where: str) -> list[TaskGrid]:
    epochs = space.recipe.max_epochs
    grids = []
    for task in sorted({row[0] for row in rows}):
        mine = [row for row in rows if row[0] == task]
        configs = sorted({row[2] for row in mine})
        seeds = sorted({row[3] for row in mine}, key=str)
        method_of = {row[2]: row[1] for row in mine}
        scores = np.full((len(configs), len(seeds), epochs), np.nan)
        c_index = {c: i for i, c in enumerate(configs)}
        s_index = {s: i for i, s in enumerate(seeds)}
        for _, _, config, seed, epoch, score in mine:
            if 1 <= epoch <= epochs:
                scores[c_index[config], s_index[seed], epoch - 1] = score
        missing = int(np.isnan(scores).sum())
        if missing:
            raise UserError(f"{where}: task {task}: {missing} of {scores.size} (configuration, seed, epoch) "
                            f"scores missing for a full grid of {epochs} epochs")
        grids.append(TaskGrid(task, configs, [method_of[c] for c in configs], seeds, scores))
    return grids


# ----- one replay -------------------------------------------------------------------------------
Schedule = Callable[[TaskGrid, np.ndarray, list[tuple[int, int]], np.random.Generator], np.ndarray]
"""(grid, selection seed indices, arrival order of (config, seed-in-selection) pairs, rng) -> the
last epoch each (config, selection seed) ran, shape (configs, K)."""


def fifo_schedule(grid: TaskGrid, selection: np.ndarray, order: list[tuple[int, int]],
                  rng: np.random.Generator) -> np.ndarray:
    return np.full((len(grid.configs), selection.size), grid.scores.shape[2])


def rule_schedule(section: GroupSection, space: SweepSpace) -> Schedule:
    """Drive ``section``'s real rule (a fresh one per replay) over the scores, as the Tune adapter would."""

    def schedule(grid: TaskGrid, selection: np.ndarray, order: list[tuple[int, int]],
                 rng: np.random.Generator) -> np.ndarray:
        facts = dataclasses.replace(space.scheduler_facts(), seeds=int(selection.size))
        return drive(section.rule(facts), grid, selection, order, rng, space.resources.max_concurrent_trials)

    return schedule


def drive(rule: Any, grid: TaskGrid, selection: np.ndarray, order: list[tuple[int, int]],
          rng: np.random.Generator | None, limit: int | None) -> np.ndarray:
    """Feed the best-so-far scores of the selection seeds through ``rule`` (a ``GroupRule``): trials
    start in ``order`` with at most ``limit`` unfinished at once; a random runnable trial (the
    first, without ``rng``) reports its next epoch. Returns the last epoch of each trial."""
    values = grid.best_so_far[:, selection, :]
    epochs = values.shape[2]
    member = {(c, k): (grid.configs[c], grid.seeds[selection[k]]) for c, k in order}
    index = {m: key for key, m in member.items()}
    reached = np.zeros((len(grid.configs), selection.size), dtype=int)
    queue, live = deque(order), []
    ended: set[Any] = set()

    def finish(stopped: list[Any]) -> None:
        for m in stopped:
            ended.add(m)
            if index[m] in live:
                live.remove(index[m])

    while queue or live:
        while queue and (limit is None or len(live) < limit):
            key = queue.popleft()
            live.append(key)
            rule.add(member[key], stratum=grid.methods[key[0]])
        finish(rule.settle().stopped)
        waiting = rule.book.waiting()
        runnable = [key for key in live if member[key] not in waiting]
        if not runnable:
            finish(rule.settle(incomplete=True).stopped)
            waiting = rule.book.waiting()
            runnable = [key for key in live if member[key] not in waiting]
            if not runnable:
                raise RuntimeError(f"replay stalled with {len(live)} trials waiting")  # a rule bug
        key = runnable[int(rng.integers(len(runnable)))] if rng is not None else runnable[0]
        c, k = key
        epoch = reached[c, k] + 1
        reached[c, k] = epoch
        step = rule.report(member[key], epoch, float(values[c, k, epoch - 1]))
        finish(step.stopped)
        if step.action == STOP or epoch >= epochs:
            finish([member[key]])
            finish(rule.end(member[key]).stopped)
    return reached


@dataclass(frozen=True)
class Outcome:
    """One replay of one task."""

    consumed: float  # trial-epochs run
    grid: float  # the K-seed grid's trial-epochs
    within: list[bool]  # per method: its choice within 0.5 points of its full-grid best
    agree: list[bool]  # per non-baseline method: verdict as the full grid's
    aa_verdict: bool | None  # the A/A comparison gave a verdict (None: too few seeds)


def chosen(values: np.ndarray, last: np.ndarray, methods: list[str], budget: int) -> dict[str, int | None]:
    """Per method, the configuration with the best median over its seeds that reached ``budget``
    (``values``: (configs, seeds) at the budget); None when none of its configurations did."""
    picks: dict[str, int | None] = {}
    for method in dict.fromkeys(methods):
        best, best_value = None, -math.inf
        for c, m in enumerate(methods):
            full = last[c] >= budget
            if m == method and full.any() and (v := float(np.median(values[c, full]))) > best_value:
                best, best_value = c, v
        picks[method] = best
    return picks


def verdict(final: np.ndarray, a: int | None, b: int | None, seeds: np.ndarray) -> str | None:
    if a is None or b is None:
        return None
    return exact_paired_test(final[a, seeds] - final[b, seeds], alpha=ALPHA).verdict


def replay_once(grid: TaskGrid, k: int, schedule: Schedule, rng: np.random.Generator) -> Outcome:
    n_configs, n_seeds, epochs = grid.scores.shape
    selection = np.sort(rng.choice(n_seeds, size=k, replace=False))
    held = np.setdiff1d(np.arange(n_seeds), selection)
    order = [(int(c), int(s)) for c, s in
             zip(*np.unravel_index(rng.permutation(n_configs * k), (n_configs, k)), strict=True)]
    last = schedule(grid, selection, order, rng)
    final = grid.best_so_far[:, :, -1]
    budget = int(last.max())  # the scheduler saw scores up to here, never beyond
    picks = chosen(grid.best_so_far[:, selection, budget - 1], last, grid.methods, budget)
    full = chosen(final, np.full((n_configs, n_seeds), epochs), grid.methods, epochs)
    overall = np.median(final, axis=1)
    within = [p is not None and overall[full[m]] - overall[p] <= HALF_POINT + 1e-12 for m, p in picks.items()]
    agree = []
    if BASELINE in picks:
        for method in picks:
            if method != BASELINE:
                agree.append(verdict(final, picks[method], picks[BASELINE], held)
                             == verdict(final, full[method], full[BASELINE], held))
    arm = picks.get(BASELINE, picks[grid.methods[0]])
    arm = full[grid.methods[0]] if arm is None else arm
    half = n_seeds // 2
    aa = None
    if half >= min_pairs_needed(ALPHA):
        shuffled = rng.permutation(n_seeds)
        d = final[arm, shuffled[:half]] - final[arm, shuffled[half:2 * half]]
        aa = exact_paired_test(d, alpha=ALPHA).verdict != NOT_DISTINGUISHABLE
    return Outcome(float(last.sum()), float(n_configs * k * epochs), within, agree, aa)


def check_seeds(grids: list[TaskGrid], k: int | None) -> int:
    """K, the seeds used for selection: the default leaves the :func:`min_pairs_needed` held-out
    seeds a confirmatory verdict needs."""
    available = min(len(grid.seeds) for grid in grids)
    held = min_pairs_needed(ALPHA)
    most = available - held
    if most < 1:
        raise UserError(f"the source has {available} seeds per configuration; a replay needs at least "
                        f"{held + 1} ({held} held out for the verdict at alpha {ALPHA:g})")
    if k is None:
        return most
    if not 1 <= k <= most:
        raise UserError(f"--seeds {k}: must be in 1..{most} (the source's {available} seeds minus the "
                        f"{held} held out for the verdict)")
    return k


def replay(source: Source, schedule: Schedule, *, seeds: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    """The replay's figures over ``repeats`` repeats (keys :data:`JSON_KEYS`)."""
    if repeats < 1:
        raise UserError(f"--repeats {repeats}: must be >= 1")
    rng = np.random.default_rng(seed)
    fractions, within, agree, aa = [], [], [], []
    for _ in range(repeats):
        outcomes = [replay_once(grid, seeds, schedule, rng) for grid in source.grids]
        fractions.append(sum(o.consumed for o in outcomes) / sum(o.grid for o in outcomes))
        within += [w for o in outcomes for w in o.within]
        agree += [a for o in outcomes for a in o.agree]
        aa += [o.aa_verdict for o in outcomes if o.aa_verdict is not None]
    return {
        "compute_fraction": {"median": float(np.median(fractions)), "low": float(np.min(fractions)),
                             "high": float(np.max(fractions))},
        "best_within_half_point": float(np.mean(within)),
        "verdict_agreement": float(np.mean(agree)) if agree else None,
        "aa_false_verdict": float(np.mean(aa)) if aa else None,
        "repeats": repeats,
    }


def schedule_of(space: SweepSpace, seeds: int) -> Schedule:
    """The space's scheduler as a replay runs it with ``seeds`` selection seeds per configuration
    (its problems with that many seeds are one-line errors, as for ``run``)."""
    section = space.scheduler
    if not isinstance(section, GroupSection):
        return fifo_schedule
    facts = dataclasses.replace(space.scheduler_facts(), seeds=seeds, max_concurrent_trials=None)
    for loc, message, value in section.problems(facts):
        raise UserError(f"{'.'.join(loc)}: {message} (got {value}) with --seeds {seeds}")
    return rule_schedule(section, space)


def markdown(figures: dict[str, Any], title: str) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    cf = figures["compute_fraction"]
    return "\n".join([
        f"{title} ({figures['repeats']} repeats)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| trial-epochs / grid's | median {cf['median']:.3f} (range {cf['low']:.3f} to {cf['high']:.3f}) |",
        (f"| each method's choice within 0.5 points of its full-grid best "
         f"| {pct(figures['best_within_half_point'])} |"),
        (f"| confirmatory verdict as the full grid's (held-out seeds) "
         f"| {pct(figures['verdict_agreement'])} |"),
        (f"| A/A false verdicts (disjoint seed halves of one configuration) "
         f"| {pct(figures['aa_false_verdict'])} |"),
    ])


def replay_report(source: str, overrides: Sequence[str] = (), *, seeds: int | None = None, repeats: int = 200,
                  fmt: str = "md") -> str:
    """What ``isobn-tune replay`` prints: the figures as Markdown or JSON."""
    if fmt not in ("md", "json"):
        raise UserError(f"--format {fmt!r}: allowed md, json")
    loaded = load_source(source, overrides)
    k = check_seeds(loaded.grids, seeds)
    figures = replay(loaded, schedule_of(loaded.space, k), seeds=k, repeats=repeats)
    if fmt == "json":
        return json.dumps(figures, indent=2)
    scheduler = loaded.space.scheduler
    title = (f"replay of {source}: scheduler {scheduler.type}, {k} of {len(loaded.grids[0].seeds)} seeds "
             f"for selection, {len(loaded.grids)} task(s)")
    return markdown(figures, title)
