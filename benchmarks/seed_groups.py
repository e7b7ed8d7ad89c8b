"""Which configuration the full grid, per-trial ASHA, group ASHA and the race choose, at what compute.

One small real grid (MiniLM-L6 on a GLUE subset, lr x cls_norm x seeds) is run through
``isobn_tune.runner.run_sweep`` four ways (see ``grid_runs.py``); the trials are read back from
MLflow. A configuration's score is the median over its seeds of each seed's best dev metric (the
paper's statistic); each sweep chooses the configuration with the highest score. Printed per sweep:
the configuration chosen, its score in that sweep and in the full grid (where every seed ran
every epoch), and the compute used (trial-epochs and wall time) as a fraction of the full grid's.

Per-trial ASHA stops some seeds of a configuration and keeps others, so it is scored two ways:
over all seeds (a stopped seed counts with the best it reached, as ``isobn-tune report`` does) and
over the seeds that ran every epoch (the survivors: the lucky seeds, biased upward). Group ASHA
keeps or stops all seeds of a configuration together, so its kept configurations have every seed;
so does the seed-paired race (``race_by_config``), which stops a configuration once a paired test
on the same seeds says it is worse than the best so far (its survivor bias is 0 by construction).

Run (the sweeps are cached in --out; asha_vs_grid.py with the same flags reuses them):
    python benchmarks/seed_groups.py [--out DIR] [--task stsb] [--train-examples 200] ...
"""

from __future__ import annotations

import sys
from collections import Counter

from grid_runs import (
    LABELS,
    GridSpec,
    SweepRun,
    choose,
    grid_medians,
    points,
    runs_from_command_line,
    summaries,
)

from isobn_tune.results.aggregate import TrialRecord

CHOICE_HEADER = (
    "| sweep | chosen config | its median here (seeds) | its median in the full grid | here − grid "
    "| trial-epochs | of the grid | wall s | of the grid |"
)
CONFIG_HEADER = (
    "| config | full grid median | per-trial ASHA: seeds@epoch | median of completed seeds − grid "
    "| group ASHA: seeds@epoch | median − grid | race: seeds@epoch | median − grid |"
)
ROWS = (  # (sweep, label suffix, completed_only)
    ("fifo", "", False),
    ("asha", ", all seeds", False),
    ("asha", ", completed seeds", True),
    ("asha_by_config", "", False),
    ("race_by_config", "", False),
)


def choice_table(runs: dict[str, SweepRun], spec: GridSpec) -> list[str]:
    grid, in_grid = runs["fifo"], grid_medians(runs["fifo"])
    lines = [CHOICE_HEADER, "|---|---|---|---|---|---|---|---|---|"]
    for sweep, suffix, completed_only in ROWS:
        run = runs[sweep]
        chosen = choose(run.records, completed_only=completed_only)
        full = in_grid[chosen.group]
        lines.append(
            f"| {LABELS[sweep]}{suffix} | {chosen.label} | {points(chosen.median)} ({chosen.seeds}) | "
            f"{points(full)} | {100 * (chosen.median - full):+.2f} | {run.trial_epochs} | "
            f"{run.trial_epochs / spec.grid_trial_epochs:.2f} | {run.wall_s:.0f} | "
            f"{run.wall_s / grid.wall_s:.2f} |"
        )
    return lines


def ends(records: list[TrialRecord], group: str) -> str:
    """How a configuration's seeds ended, e.g. ``3@3`` or ``2@3 1@1`` (seeds @ last epoch)."""
    counts = Counter(r.last_epoch for r in records if r.group == group)
    return " ".join(f"{n}@{epoch}" for epoch, n in sorted(counts.items(), reverse=True))


def config_table(runs: dict[str, SweepRun]) -> list[str]:
    """Every configuration: its full-grid median, and how each ASHA and the race left it."""
    asha = runs["asha"].records
    survivors = {s.group: s.median for s in summaries(asha, completed_only=True)}
    lines = [CONFIG_HEADER, "|---|---|---|---|---|---|---|---|"]
    by_config = {sweep: (runs[sweep].records, {s.group: s.median for s in summaries(runs[sweep].records)})
                 for sweep in ("asha_by_config", "race_by_config")}
    for s in summaries(runs["fifo"].records):
        survivor = survivors.get(s.group)
        survivor_bias = "–" if survivor is None else f"{100 * (survivor - s.median):+.2f}"
        cells = [f"{ends(records, s.group)} | {100 * (medians[s.group] - s.median):+.2f}"
                 for records, medians in by_config.values()]
        lines.append(
            f"| {s.config['cls_norm']}, lr {s.config['lr']:g} | {points(s.median)} | {ends(asha, s.group)} | "
            f"{survivor_bias} | {' | '.join(cells)} |"
        )
    return lines


def main() -> int:
    spec, runs = runs_from_command_line(__doc__.splitlines()[0])
    print(f"\n{spec.describe()}")
    print("score: median over seeds of each seed's best dev metric (x100)\n")
    print("\n".join(choice_table(runs, spec)))
    print()
    print("\n".join(config_table(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
