"""Compute ASHA needs to pick a configuration within 0.5 points of the full grid's best, as a
fraction of the full grid's compute (target: <= 0.4).

Definitions, on one small real grid run four ways through the real runner (``grid_runs.py``;
trials read back from MLflow):

* A configuration's score is the median over its seeds of each seed's best dev metric, x100.
* The full grid (``fifo``) runs every seed of every configuration for every epoch; its best
  score is the reference.
* An ASHA sweep selects the configuration with the highest score in that sweep. Per-trial ASHA
  is scored two ways: over all seeds (stopped seeds with the best they reached) and over the
  seeds that ran every epoch. Group ASHA (``asha_by_config``) and the seed-paired race
  (``race_by_config``) keep or stop seeds together.
* The selection is judged by the selected configuration's score *in the full grid*: it reaches
  the target quality when that score is within 0.5 points of the grid's best.
* Two compute fractions, each = trial-epochs / trial-epochs of the full grid (configurations x
  seeds x epochs): the whole run's, and the compute *to quality*: the trial-epochs after which the
  configuration the sweep would choose if stopped there (from the best each seed had reached so
  far, in the order the driver logged the epochs to MLflow) stays within 0.5 points until the end.
  The wall-time ratio of the whole run is printed beside them.
* The target is met when the quality is reached with a compute fraction <= 0.4; the table says
  which of the two fractions meets it.

Also printed: the fraction ideal synchronous successive halving would use at this epoch budget
(asynchronous ASHA usually uses more: it promotes early arrivals before it has seen the rest).

Run (the sweeps are cached in --out; seed_groups.py with the same flags reuses them):
    python benchmarks/asha_vs_grid.py [--out DIR] [--task stsb] [--train-examples 200] ...
"""

from __future__ import annotations

import sys

from grid_runs import (
    LABELS,
    GridSpec,
    SweepRun,
    choose,
    grid_medians,
    incumbents,
    points,
    runs_from_command_line,
    successive_halving_floor,
)

TOLERANCE = 0.005  # 0.5 points on the x100 scale
TARGET_FRACTION = 0.4
HEADER = (
    "| sweep | selection | chosen config | its full-grid median | gap to best | within 0.5 "
    "| trial-epochs run (of the grid) | wall (of the grid) | trial-epochs to quality (of the grid) "
    "| target met: whole run / to quality |"
)
ROWS = (  # (sweep, selection, completed_only)
    ("fifo", "all seeds", False),
    ("asha", "all seeds", False),
    ("asha", "completed seeds", True),
    ("asha_by_config", "all seeds", False),
    ("race_by_config", "all seeds", False),
)


def epochs_to_quality(run: SweepRun, in_grid: dict[str, float], best: float) -> int | None:
    """Trial-epochs after which the sweep's choice stays within the tolerance of the grid's best
    (None: it ends outside it)."""
    since = None
    for spent, chosen in enumerate(incumbents(run), start=1):
        if best - in_grid[chosen.group] > TOLERANCE:
            since = None
        elif since is None:
            since = spent
    return since


def met(fraction: float | None) -> str:
    return "yes" if fraction is not None and fraction <= TARGET_FRACTION else "no"


def table(runs: dict[str, SweepRun], spec: GridSpec) -> list[str]:
    grid = runs["fifo"]
    in_grid, best = grid_medians(grid), choose(grid.records)
    lines = [
        f"full grid: best {best.label} at {points(best.median)}; {grid.trial_epochs} trial-epochs",
        f"ideal successive halving at this epoch budget: {successive_halving_floor(spec):.2f} of the grid",
        "",
        HEADER,
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sweep, selection, completed_only in ROWS:
        run = runs[sweep]
        chosen = choose(run.records, completed_only=completed_only)
        gap = best.median - in_grid[chosen.group]
        within = gap <= TOLERANCE
        whole = run.trial_epochs / spec.grid_trial_epochs
        to_quality = None if completed_only else epochs_to_quality(run, in_grid, best.median)
        quality_fraction = None if to_quality is None else to_quality / spec.grid_trial_epochs
        quality_cell = "–" if to_quality is None else f"{to_quality} ({quality_fraction:.2f})"
        lines.append(
            f"| {LABELS[sweep]} | {selection} | {chosen.label} | {points(in_grid[chosen.group])} | "
            f"{100 * gap:.2f} | {'yes' if within else 'no'} | {run.trial_epochs} ({whole:.2f}) | "
            f"{run.wall_s / grid.wall_s:.2f} | {quality_cell} | "
            f"{met(whole if within else None)} / {met(quality_fraction)} |"
        )
    return lines


def main() -> int:
    spec, runs = runs_from_command_line(__doc__.splitlines()[0])
    print(f"\n{spec.describe()}")
    print("\n".join(table(runs, spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
