"""Record the replay bank: run ``benchmarks/bank/space.yaml`` as a fifo sweep with the real trainer,
then write every trial's per-epoch dev score as the bank's CSVs (one per task) beside the space.

    python benchmarks/record_bank.py --storage /tmp/bank            # run (or resume) and convert
    python benchmarks/record_bank.py --convert /tmp/bank/bank-minilm  # convert a finished sweep

The conversion reads the sweep through the replay's own reader (Tune's ``result.json`` files), so
a bank holds exactly what ``isobn-tune replay SWEEP_DIR`` would replay. It prints each
configuration's median final and best-epoch score over the seeds, for the bank's README.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from isobn_tune.sweep.replay import BANK_COLUMNS, TaskGrid, load_source

BANK = Path(__file__).resolve().parent / "bank"
NAME = "bank"


def record(storage: Path) -> Path:
    """Run the bank's sweep into ``storage`` (resuming it if a previous attempt was interrupted)."""
    sweep = storage / NAME
    if (sweep / "sweep.json").is_file():
        argv = ["isobn-tune", "resume", str(sweep)]
    else:
        argv = ["isobn-tune", "run", str(BANK / "space.yaml"), "--storage", str(storage), "--name", NAME]
    start = time.monotonic()
    print("$", " ".join(argv), flush=True)
    code = subprocess.call(argv)
    print(f"sweep wall time {(time.monotonic() - start) / 60:.1f} min (exit {code})", flush=True)
    if code:
        sys.exit(code)
    return sweep


def short_labels(configs: list[str]) -> list[str]:
    """Each configuration by the grid values that tell it apart (``cls_norm=isobn;lr=0.0001``): the
    full group key also holds every fixed setting, the model's local path among them, and commas."""
    points = [dict(item.split("=", 1) for item in re.search(r"grid_point=\{([^}]*)\}", c).group(1).split(","))
              for c in configs]
    varying = [key for key in points[0] if len({p[key] for p in points}) > 1]
    return [";".join(f"{key}={p[key]}" for key in varying) for p in points]


def write_csv(grid: TaskGrid, labels: list[str], folder: Path) -> Path:
    """The bank's CSV, written by ``csv`` as the replay's reader reads it."""
    path = folder / f"{grid.task}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(BANK_COLUMNS)
        for c, (config, method) in enumerate(zip(labels, grid.methods, strict=True)):
            for s, seed in enumerate(grid.seeds):
                out.writerows([grid.task, method, config, seed, e + 1, f"{grid.scores[c, s, e]:.6f}"]
                              for e in range(grid.scores.shape[2]))
    return path


def summary(grid: TaskGrid, labels: list[str]) -> str:
    shape = f"{len(grid.configs)} configurations x {len(grid.seeds)} seeds x {grid.scores.shape[2]} epochs"
    rows = [f"{grid.task}: {shape}",
            "| configuration | median final | median best epoch | seed range (best epoch) |",
            "|---|---|---|---|"]
    best = grid.best_so_far[:, :, -1]
    for c, config in enumerate(labels):
        final, top = 100 * np.median(grid.scores[c, :, -1]), 100 * np.median(best[c])
        low, high = 100 * best[c].min(), 100 * best[c].max()
        rows.append(f"| {config} | {final:.2f} | {top:.2f} | {low:.2f} to {high:.2f} |")
    return "\n".join(rows)


def convert(sweep: Path, folder: Path = BANK) -> None:
    for grid in load_source(str(sweep)).grids:
        labels = short_labels(grid.configs)
        print(f"wrote {write_csv(grid, labels, folder)}")
        print(summary(grid, labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--storage", type=Path, help="run (or resume) the bank's sweep here, then convert it")
    group.add_argument("--convert", type=Path, metavar="SWEEP_DIR", help="only convert a finished sweep")
    args = parser.parse_args()
    convert(record(args.storage) if args.storage else args.convert)


if __name__ == "__main__":
    main()
