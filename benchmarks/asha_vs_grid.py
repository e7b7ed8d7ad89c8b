"""Compute ASHA needs to pick a configuration within 0.5 points of the full grid's best, as a
fraction of the full grid's compute (target: <= 0.4).

Definitions, on one small real grid run three ways through the real runner (``grid_runs.py``;
trials read back from MLflow):

* A configuration's score is the median over its seeds of each seed's best dev metric, x100.
* The full grid (``fifo``) runs every seed of every configuration for every epoch; its best
  score is the reference.
* An ASHA sweep selects the configuration with the highest score in that sweep. Per-trial ASHA
  is scored two ways: over all seeds (stopped seeds with the best they reached) and over the
  seeds that ran every epoch. Group ASHA (``asha_by_config``) keeps or stops seeds together.
* The selection is judged by the selected configuration's score *in the full grid*: it reaches
  the target quality when that score is within 0.5 points of the grid's best.
* Compute fraction = trial-epochs the ASHA sweep ran / trial-epochs of the full grid
  (configurations x seeds x epochs); the wall-time ratio is printed beside it.
* The target is met when the quality is reached with a compute fraction <= 0.4.

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
    points,
    runs_from_command_line,
    successive_halving_floor,
)

TOLERANCE = 0.005  # 0.5 points on the x100 scale
TARGET_FRACTION = 0.4
HEADER = (
    "| sweep | selection | chosen config | its full-grid median | gap to best | within 0.5 "
    "| trial-epochs | of the grid | wall of the grid | target met |"
)
ROWS = (  # (sweep, selection, completed_only)
    ("asha", "all seeds", False),
    ("asha", "completed seeds", True),
    ("asha_by_config", "all seeds", False),
)


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
        fraction = run.trial_epochs / spec.grid_trial_epochs
        met = within and fraction <= TARGET_FRACTION
        lines.append(
            f"| {LABELS[sweep]} | {selection} | {chosen.label} | {points(in_grid[chosen.group])} | "
            f"{100 * gap:.2f} | {'yes' if within else 'no'} | {run.trial_epochs} | {fraction:.2f} | "
            f"{run.wall_s / grid.wall_s:.2f} | {'yes' if met else 'no'} |"
        )
    return lines


def main() -> int:
    spec, runs = runs_from_command_line(__doc__.splitlines()[0])
    print(f"\n{spec.describe()}")
    print("\n".join(table(runs, spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
