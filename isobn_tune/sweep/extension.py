"""What ``isobn-tune extend`` adds to a finished sweep: the trials it lacks (no Ray, no torch).

Tune cannot add trials to a restored experiment (ray-project/ray#18847), so an extension is a new
Tune experiment per task in the sweep directory (``<sweep>/extend-<n>/<task>``, see
:meth:`SweepDir.experiments`) under the sweep's MLflow parent run. Its trials are written in the
manifest before it starts, so ``resume`` continues an interrupted extension. Three kinds:

* more seeds for the K best configurations of each task (by seed median): a sharper selection
  (these seeds select too; they never confirm);
* the grid points of a compatible space file (same model, data and recipe; new lr or beta values);
* a confirmation (``isobn-tune confirm``): the best configuration of each method (``cls_norm``),
  chosen by full-budget seed median on the sweep's own seeds, at fresh seeds, for the full budget.
  Its trials are marked (``TrialRecord.confirmation``): they never select, and the confirmatory
  comparisons use only them. Trials of ``run`` and the other extensions select.

A (configuration, seed) pair the sweep has already run, or errored on, is never run again
(``resume --retry-errored`` re-runs errored trials).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from isobn_tune.errors import UserError
from isobn_tune.results.aggregate import TrialRecord, best_by_method, config_group, summarise_groups
from isobn_tune.space import SweepSpace, fixed_config, grid_points
from isobn_tune.sweep.directory import EXTENSIONS_KEY
from isobn_tune.train.recipe import GRID_FIELDS, TrialConfig

EXTENSION_PREFIX = "extend-"
CONFIRMATION_KEY = "confirmation"  # an extension entry's flag: ``isobn-tune confirm`` made it
_SEED_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str) -> list[int]:
    """``6-10``, ``6,8,11`` or ``1-3,7`` as a list of distinct seeds, in the order given."""
    seeds: list[int] = []
    for part in text.split(","):
        match = _SEED_RANGE.match(part.strip())
        if not match:
            raise UserError(f"--seeds {text!r}: use ranges and numbers such as 6-10 or 6,8,11")
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise UserError(f"--seeds {text!r}: the range {part.strip()} is empty")
        seeds += [seed for seed in range(low, high + 1) if seed not in seeds]
    if any(seed >= 2**32 for seed in seeds):
        raise UserError(f"--seeds {text!r}: seeds must be below 2**32")
    return seeds


def top_config_points(records: Sequence[TrialRecord], task: str, top: int, seeds: Sequence[int]
                      ) -> list[dict[str, Any]]:
    """The grid points of ``task``'s ``top`` best configurations (highest seed median) at each of
    ``seeds``, in rank order, seeds innermost (so a configuration's seeds start together)."""
    selection = (r for r in records if r.config.task == task and not r.confirmation)
    ranked = [s for s in summarise_groups(selection) if s.values]
    chosen = {s.group for s in ranked[:top]}
    configs = {r.group: r.config for r in records if r.group in chosen}
    return [_point(configs[s.group]) | {"seed": seed} for s in ranked[:top] for seed in seeds]


def selection_seeds(manifest: dict[str, Any]) -> set[int]:
    """The seeds that choose a sweep's best configurations: its grid's and every extension's but
    a confirmation's."""
    seeds = set(manifest["space"]["grid"]["seeds"])
    for entry in manifest.get(EXTENSIONS_KEY, []):
        if not entry.get(CONFIRMATION_KEY):
            seeds |= {point["seed"] for points in entry["trials"].values() for point in points}
    return seeds


def check_fresh_seeds(manifest: dict[str, Any], seeds: Sequence[int]) -> None:
    """A confirmation on a seed that selected would test the winner on the scores that chose it."""
    overlap = sorted(set(seeds) & selection_seeds(manifest))
    if overlap:
        chosen_on = ", ".join(map(str, sorted(selection_seeds(manifest))))
        raise UserError(f"--seeds: {', '.join(map(str, overlap))} selected this sweep's configurations "
                        f"(its seeds: {chosen_on}); confirm on fresh seeds")


def confirmation_points(records: Sequence[TrialRecord], task: str, seeds: Sequence[int]
                        ) -> list[dict[str, Any]]:
    """The grid points of the best configuration of each method of ``task`` (highest full-budget
    seed median over the selection trials) at each of ``seeds``, methods in name order."""
    selection = [r for r in records if r.config.task == task and not r.confirmation]
    configs = {r.group: r.config for r in selection}
    best = best_by_method(summarise_groups(selection))
    return [_point(configs[s.group]) | {"seed": seed} for _, s in sorted(best.items()) for seed in seeds]


def is_confirmation(manifest: dict[str, Any], name: str | None) -> bool:
    """Whether extension ``name`` (None: the sweep's own experiments) is a confirmation."""
    return name is not None and any(e["name"] == name and e.get(CONFIRMATION_KEY) for e in
                                    manifest.get(EXTENSIONS_KEY, []))


def space_points(sweep_space: SweepSpace, new_space: SweepSpace, source: str, task: str
                 ) -> list[dict[str, Any]]:
    """The grid points of ``new_space`` for ``task``, once it is checked to differ from the sweep's
    only in its grid (a different model, data or recipe would make another experiment, not more of
    this one)."""
    if new_space.optuna is not None or sweep_space.optuna is not None:
        raise UserError(f"{source}: extend --space adds grid points to a grid sweep; use --top with "
                        "--seeds to add seeds to an Optuna sweep's configurations")
    if task not in sweep_space.tasks:
        raise UserError(f"{source}: task {task} is not in the sweep; its tasks: "
                        f"{', '.join(sweep_space.tasks)}")
    ours = fixed_config(sweep_space, task) | _prefixed("data", sweep_space.data.model_dump(mode="json"))
    theirs = fixed_config(new_space, task) | _prefixed("data", new_space.data.model_dump(mode="json"))
    differing = [key for key in ours if ours[key] != theirs[key]]
    if differing:
        raise UserError(f"{source}: " + "; ".join(f"{key} {theirs[key]!r} is not the sweep's {ours[key]!r}"
                                                  for key in differing)
                        + "; extend adds grid points of the same model, data and recipe")
    return grid_points(new_space)


def new_points(sweep_space: SweepSpace, records: Sequence[TrialRecord], task: str,
               points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``points`` less those whose (configuration, seed) the sweep has run on ``task`` already."""
    done = {(r.group, r.config.seed) for r in records if r.config.task == task}
    fixed = fixed_config(sweep_space, task)
    fresh, seen = [], set()
    for point in points:
        cfg = TrialConfig.from_dict(fixed | point)
        key = (config_group(cfg), cfg.seed)
        if key not in done and key not in seen:
            fresh.append(point)
            seen.add(key)
    return fresh


def extension_entry(manifest: dict[str, Any], trials: dict[str, list[dict[str, Any]]], how: str, *,
                    confirmation: bool = False) -> dict[str, Any]:
    """The manifest's record of a new extension: its directory name, tasks and trials."""
    number = len(manifest.get(EXTENSIONS_KEY, [])) + 1
    return {"name": f"{EXTENSION_PREFIX}{number}", "how": how,
            "created": datetime.now().isoformat(timespec="seconds"),
            "tasks": [task for task, points in trials.items() if points], "trials": trials,
            CONFIRMATION_KEY: confirmation}


def extension_trials(manifest: dict[str, Any], name: str, task: str) -> list[dict[str, Any]]:
    """The grid points extension ``name`` of a sweep runs on ``task``, as its manifest lists them."""
    entry = next(e for e in manifest[EXTENSIONS_KEY] if e["name"] == name)
    return entry["trials"][task]


def _prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{key}": value for key, value in values.items()}


def _point(cfg: TrialConfig) -> dict[str, Any]:
    """A trial's grid point: the values a sweep varies (every grid field, as grid points hold them)."""
    values = cfg.to_dict()
    return {name: values[name] for name in GRID_FIELDS}
