"""Problems a space file can only have across sections (a scheduler's option against the recipe, the
seeds against the race, the grid's size), found after each section validated on its own."""

from __future__ import annotations

from typing import Any

from isobn_tune.data import sample_glue
from isobn_tune.results.groups import MIN_PAIRED_SEEDS
from isobn_tune.results.statistics import smallest_one_sided_p
from isobn_tune.space.expansion import trials_per_task
from isobn_tune.space.schema import GRID_KEYS, MAX_TRIALS_PER_TASK, PBT_MIN_CHECKPOINTS, SweepSpace


def cross_section_problems(space: SweepSpace) -> list[tuple[tuple[str, ...], str, Any]]:
    """Problems spanning sections, as (key path, message, value)."""
    problems = []
    max_epochs = space.recipe.max_epochs
    for key in ("grace_period", "perturbation_interval", "min_epochs", "max_t"):
        value = getattr(space.scheduler, key, None)
        if value is not None and value > max_epochs:
            problems.append((("scheduler", key), f"must be <= recipe.max_epochs ({max_epochs})", value))
    if space.scheduler.type == "pbt" and space.run.checkpoints_to_keep < PBT_MIN_CHECKPOINTS:
        problems.append((
            ("run", "checkpoints_to_keep"),
            (f"must be >= {PBT_MIN_CHECKPOINTS} with scheduler pbt (an exploit restores another trial's "
             "checkpoint, which must still exist when the trial restarts)"),
            space.run.checkpoints_to_keep,
        ))
    if space.data.glue_dir == sample_glue.SETTING:
        missing = [task for task in space.tasks if task not in sample_glue.TASKS]
        if missing:
            problems.append((
                ("data", "glue_dir"),
                f"the bundled sample holds only {', '.join(sample_glue.TASKS)}, not {', '.join(missing)}",
                space.data.glue_dir,
            ))
    seeds, limit = len(space.grid.seeds), space.resources.max_concurrent_trials
    if space.scheduler.groups_seeds and limit is not None and limit % seeds:
        problems.append((
            ("resources", "max_concurrent_trials"),
            (f"must be a multiple of the {seeds} seeds per configuration with scheduler "
             f"{space.scheduler.type} (so a configuration's seeds run together)"),
            limit,
        ))
    if space.scheduler.type == "race_by_config":
        alpha, floor = space.scheduler.alpha, smallest_one_sided_p(seeds)
        if seeds < MIN_PAIRED_SEEDS or floor > alpha:
            problems.append((
                ("scheduler", "alpha"),
                (f"no configuration could ever stop: a race needs at least {MIN_PAIRED_SEEDS} seeds and "
                 f"with {seeds} the test's p-value is at least {floor:g}; add seeds or raise alpha"),
                alpha,
            ))
    if space.optuna is not None:
        opt = space.optuna
        if space.scheduler.type == "pbt":
            problems.append((("scheduler", "type"), "pbt cannot be combined with an optuna section", "pbt"))
        if opt.cls_norm not in space.grid.cls_norm:
            problems.append((
                ("grid", "cls_norm"),
                (f"must include {opt.cls_norm} (optuna.cls_norm): its first grid point fixes what is "
                 "not searched"),
                space.grid.cls_norm,
            ))
        for name in opt.params.searched():
            values = getattr(space.grid, GRID_KEYS[name])
            if len(values) > 1:
                problems.append((
                    ("grid", GRID_KEYS[name]),
                    (f"must be absent or have one value with an optuna section (optuna.params.{name} "
                     "is searched)"),
                    values,
                ))
    elif trials_per_task(space) > MAX_TRIALS_PER_TASK:
        problems.append((("grid",), f"expands to more than {MAX_TRIALS_PER_TASK} trials per task",
                         trials_per_task(space)))
    return problems
