"""The seed-paired race alone, against the full grid recorded by ``seed_groups.py``.

The full grid of the recorded benchmark (``results/seed_groups_stsb_e9.txt``: 18 trials, 9 epochs,
30 min) is not re-run: its configuration medians, trial-epochs and wall time are read from that
raw output, and only the race (``race_by_config``) runs now, on the same grid. Training is seeded,
so on the code that recorded the grid a configuration the race keeps to the end reproduces its
recorded full-grid median: the ``median − grid`` column of the kept configurations checks that
(+0.00), and the row of the chosen configuration is comparable only when it does. The recorded
grid predates length chunks (``recipe.length_chunks: auto``), which draw dropout masks per chunk on
a CPU: on later code that column is not expected to read +0.00; re-record the grid with
``seed_groups.py`` and pass it as ``--recorded`` (benchmarks/README.md). Trial-epochs are exact;
the wall fraction compares runs from different sessions and is indicative only.

Run (the race is cached in --out):
    python benchmarks/race_vs_recorded_grid.py [--out DIR] [grid flags as seed_groups.py]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from grid_runs import add_grid_arguments, choose, label, points, run_or_reuse, spec_from_args, summaries
from seed_groups import ends

from isobn_tune.errors import UserError

RECORDED = Path(__file__).parent / "results" / "seed_groups_stsb_e9.txt"
GRID_LABEL = "full grid (fifo)"


def recorded_grid(path: Path, describe: str) -> tuple[dict[str, float], int, float]:
    """Per-configuration medians (x100), trial-epochs and wall seconds of a recorded full grid."""
    lines = path.read_text().splitlines()
    if not describe.startswith(lines[0]):
        raise UserError(f"{path} records another grid ({lines[0]!r}); pass the flags it was run with")
    cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines
             if line.startswith("| ")]
    (grid,) = [row for row in cells if row[0] == GRID_LABEL]
    medians = {row[0]: float(row[1]) for row in cells if re.fullmatch(r"\w+, lr [\d.e-]+", row[0])}
    return medians, int(grid[5]), float(grid[7])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(parser)
    parser.add_argument("--recorded", type=Path, default=RECORDED, help="seed_groups.py output of the grid")
    args = parser.parse_args()
    try:
        spec = spec_from_args(args)
        medians, grid_epochs, grid_wall = recorded_grid(args.recorded, spec.describe())
        race = run_or_reuse(spec, args.out, ("race_by_config",))["race_by_config"]
    except UserError as exc:
        sys.exit(f"error: {exc}")
    print(f"\n{spec.describe()}")
    print(f"full grid: {args.recorded.name} (recorded); race: run now")
    print("score: median over seeds of each seed's best dev metric (x100)\n")
    chosen = choose(race.records)
    print("| sweep | chosen config | its median here (seeds) | its median in the full grid | here − grid "
          "| trial-epochs | of the grid | wall s | of the grid (indicative) |")
    print("|---|---|---|---|---|---|---|---|---|")
    full = medians[chosen.label]
    print(f"| seed-paired race | {chosen.label} | {points(chosen.median)} ({chosen.seeds}) | {full:.2f} | "
          f"{100 * chosen.median - full:+.2f} | {race.trial_epochs} | "
          f"{race.trial_epochs / grid_epochs:.2f} | {race.wall_s:.0f} | {race.wall_s / grid_wall:.2f} |")
    print("\n| config | full grid median (recorded) | race: seeds@epoch | race median − grid |")
    print("|---|---|---|---|")
    race_medians = {label(s): s.median for s in summaries(race.records)}
    groups = {label(s): s.group for s in summaries(race.records)}
    for name, grid_median in sorted(medians.items(), key=lambda item: -item[1]):
        print(f"| {name} | {grid_median:.2f} | {ends(race.records, groups[name])} | "
              f"{100 * race_medians[name] - grid_median:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
