"""From a validated space to Tune's pieces: the param space, the scheduler and the searcher.

One Tune experiment per task, so a scheduler or searcher never compares trials whose metrics
belong to different tasks.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Domain

from isobn_tune.space import SweepSpace, fixed_config, grid_points, optuna_base_config, trials_per_task
from isobn_tune.space.schema import SearchChoices, SearchRange
from isobn_tune.sweep.seed_repeater import SeedMedianRepeater
from isobn_tune.train.metrics import BEST_OBJECTIVE, MODE
from isobn_tune.train.recipe import GRID_POINT_KEY


def build_param_space(space: SweepSpace, task: str) -> dict[str, Any]:
    """Tune's ``param_space`` for ``task``.

    Grid sweeps: the exact ordered trial list of the space (:func:`grid_points`, seeds innermost),
    as one ``grid_search`` over the varying values under :data:`GRID_POINT_KEY`; the fixed values
    sit beside it. Tune would vary the alphabetically first of several grid keys fastest; with
    one key trials are created in list order, so a configuration's seeds start together.
    Optuna sweeps: the searched hyperparameters are Tune domains for the searcher, beside the
    grid's first point of their normaliser; seeds come from :class:`SeedMedianRepeater`.
    """
    if space.optuna is not None:
        searched = space.optuna.params.searched()
        return optuna_base_config(space, task) | {name: _domain(r) for name, r in searched.items()}
    return fixed_config(space, task) | {GRID_POINT_KEY: tune.grid_search(grid_points(space))}


def _domain(searched: SearchRange | SearchChoices) -> Domain:
    """Tune's domain for a searched hyperparameter, which OptunaSearch turns into its distribution."""
    if isinstance(searched, SearchChoices):
        return tune.choice(list(searched.choices))
    return (tune.loguniform if searched.log else tune.uniform)(searched.low, searched.high)


def extension_param_space(space: SweepSpace, task: str, points: list[dict[str, Any]]) -> dict[str, Any]:
    """Tune's ``param_space`` for an extension's trials (:mod:`isobn_tune.sweep.extension`): its grid
    points, in order, beside the sweep's fixed values. Each point holds every grid field, so an
    Optuna sweep's configurations extend the same way as a grid's."""
    return fixed_config(space, task) | {GRID_POINT_KEY: tune.grid_search(points)}


def num_samples(space: SweepSpace) -> int:
    """Tune's ``num_samples``: one pass over the grid, or points x seeds for Optuna."""
    return trials_per_task(space) if space.optuna is not None else 1


def build_searcher(space: SweepSpace) -> Searcher | None:
    """Optuna over the searched hyperparameters, each point run at every seed and judged by the
    seed median."""
    if space.optuna is None:
        return None
    opt, seeds = space.optuna, space.grid.seeds
    optuna = OptunaSearch(metric=BEST_OBJECTIVE, mode=MODE, seed=opt.seed)
    repeater = SeedMedianRepeater(optuna, seeds)
    return ConcurrencyLimiter(repeater, max_concurrent=opt.max_concurrent * len(seeds))


def build_scheduler(space: SweepSpace) -> TrialScheduler:
    """The Tune scheduler of the file's ``scheduler`` section (each section builds its own; see
    :mod:`isobn_tune.schedulers.registry`)."""
    return space.scheduler.build(space.scheduler_facts())
