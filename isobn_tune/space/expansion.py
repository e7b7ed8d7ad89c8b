"""From a validated space to its trials: the ordered trial list of a grid, or the fixed point of
an Optuna refinement.

Order matters: a configuration's seeds are adjacent (seeds innermost), so with
``max_concurrent_trials`` Tune creates all seeds of a configuration together and a group scheduler
decides each configuration on all its seeds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

from isobn_tune.errors import UserError
from isobn_tune.space.schema import GRID_KEYS, SweepSpace
from isobn_tune.train.cls_norm import params_of
from isobn_tune.train.recipe import GridPoint


def _check_task(space: SweepSpace, task: str) -> None:
    if task not in space.tasks:
        raise UserError(f"task {task!r} is not in sweep {space.name!r}; its tasks: {space.tasks}")


def fixed_config(space: SweepSpace, task: str) -> dict[str, Any]:
    """Trial-config fields that no grid axis varies."""
    _check_task(space, task)
    return {
        "task": task,
        "model": space.model.name_or_path,
        "pooling": space.model.pooling,
        "random_init": space.model.random_init,
        "model_overrides": dict(space.model.overrides),
        **space.recipe.model_dump(),
    }


def _axis(space: SweepSpace, field: str) -> list[Any]:
    return list(getattr(space.grid, GRID_KEYS[field]))


def _norm_points(space: SweepSpace, cls_norm: str) -> list[dict[str, Any]]:
    """Every combination of ``cls_norm``'s own hyperparameters (one empty point if it has none)."""
    names = params_of(cls_norm)
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*(_axis(space, n) for n in names))]


def _points_of(space: SweepSpace, cls_norm: str) -> Iterator[dict[str, Any]]:
    """The grid's points with normaliser ``cls_norm``, in trial order (see :func:`grid_points`)."""
    defaults = {name: info.default for name, info in GridPoint.model_fields.items()}
    for lr, batch_size, norm, seed in itertools.product(
        _axis(space, "lr"), _axis(space, "batch_size"), _norm_points(space, cls_norm), _axis(space, "seed"),
    ):
        yield defaults | norm | {"cls_norm": cls_norm, "lr": lr, "batch_size": batch_size, "seed": seed}


def grid_points(space: SweepSpace) -> list[dict[str, Any]]:
    """The varying values of every grid trial, in trial order: cls_norm, then lr, batch size,
    the normaliser's own hyperparameters, and the seed innermost.

    A normaliser's hyperparameters are crossed with that normaliser only; the others keep their
    defaults, so every point is a complete set of grid fields.
    """
    if space.optuna is not None:
        raise ValueError("an Optuna sweep has no fixed trial list; use optuna_base_config")
    return [point for cls_norm in _axis(space, "cls_norm") for point in _points_of(space, cls_norm)]


def trial_configs(space: SweepSpace, task: str) -> list[dict[str, Any]]:
    """Every trial of a grid sweep on ``task`` as ``TrialConfig`` dicts, in trial order."""
    fixed = fixed_config(space, task)
    return [fixed | point for point in grid_points(space)]


def optuna_base_config(space: SweepSpace, task: str) -> dict[str, Any]:
    """The ``TrialConfig`` fields an Optuna sweep keeps fixed: the grid's first point with the
    searched normaliser, less what the searcher sets (the searched hyperparameters) and the seed
    (set per repeat), so a hyperparameter not searched runs at the grid's value, never a default."""
    if space.optuna is None:
        raise ValueError("not an Optuna sweep")
    first = next(_points_of(space, space.optuna.cls_norm))
    varied = {*space.optuna.params.searched(), "seed"}
    return fixed_config(space, task) | {k: v for k, v in first.items() if k not in varied}


def grid_axes(space: SweepSpace) -> dict[str, list[Any]]:
    """Values of each hyperparameter axis, keyed by trial-config field, in trial-order nesting
    (seed innermost). A normaliser's hyperparameters are listed only when it is in the grid.
    Optuna sweeps: the fixed values of the searched normaliser's trials and the seeds (the
    searched hyperparameters are in ``space.optuna.params``)."""
    if space.optuna is not None:
        base = optuna_base_config(space, space.tasks[0])
        fixed = ("cls_norm", "lr", "batch_size", *params_of(space.optuna.cls_norm))
        return {k: [base[k]] for k in fixed if k in base} | {"seed": _axis(space, "seed")}
    axes = {name: _axis(space, name) for name in ("cls_norm", "lr", "batch_size")}
    for cls_norm in axes["cls_norm"]:
        axes |= {name: _axis(space, name) for name in params_of(cls_norm)}
    return axes | {"seed": _axis(space, "seed")}


def trials_per_task(space: SweepSpace) -> int:
    """Trials each task gets (the same for every task), counted without listing them."""
    seeds = len(space.grid.seeds)
    if space.optuna is not None:
        return space.optuna.n_points * seeds
    per_norm = sum(math.prod(len(_axis(space, n)) for n in params_of(c)) for c in space.grid.cls_norm)
    return per_norm * len(space.grid.lr) * len(space.grid.batch_size) * seeds


def trial_count(space: SweepSpace) -> int:
    """Trials of the whole sweep, over all tasks."""
    return trials_per_task(space) * len(space.tasks)

