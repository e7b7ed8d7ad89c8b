"""Problems a space file can only have across sections (the scheduler's own, from its section: an
option against the recipe, the seeds against the race; the bundled data, Optuna, the grid's size),
found after each section validated on its own."""

from __future__ import annotations

from typing import Any

from isobn_tune.data import sample_glue
from isobn_tune.space.expansion import trials_per_task
from isobn_tune.space.schema import GRID_KEYS, MAX_TRIALS_PER_TASK, SweepSpace


def cross_section_problems(space: SweepSpace) -> list[tuple[tuple[str, ...], str, Any]]:
    """Problems spanning sections, as (key path, message, value)."""
    problems = space.scheduler.problems(space.scheduler_facts())
    if space.data.glue_dir == sample_glue.SETTING:
        missing = [task for task in space.tasks if task not in sample_glue.TASKS]
        if missing:
            problems.append((
                ("data", "glue_dir"),
                f"the bundled sample holds only {', '.join(sample_glue.TASKS)}, not {', '.join(missing)}",
                space.data.glue_dir,
            ))
    if space.optuna is not None:
        opt = space.optuna
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
