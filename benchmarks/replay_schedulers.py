"""Replay one recorded bank through every scheduler and print one table: compute used, each method's
best kept, the confirmatory verdict kept, A/A false verdicts (``isobn-tune replay``'s figures).

    python benchmarks/replay_schedulers.py BANK_DIR [--repeats 200] [--seeds K]
    python benchmarks/replay_schedulers.py --synthetic [--repeats 200]   # a made-up bank, labelled so

Schedulers: fifo (the full grid), the three group rules through their real decision code (the race
with and without ``keep_best_per``), and two baselines implemented here because they have no
Ray-free rule: per-trial ASHA as "each trial continues past a rung if it is in the top
1/reduction_factor of the values recorded at that rung so far" (Ray's asynchronous ASHA with trials
in arrival order, one seed at a time, no seed groups), and "keep the top third of configurations
(by median over seeds) after epoch 1".

The synthetic bank: 2 methods x 3 learning rates x 16 seeds x 6 epochs on one task; per method
one configuration 3 points ahead of the others, IsoBN +2 points over none, a seed effect shared
across configurations, per-epoch noise. Its figures say how the rules behave on a known answer,
nothing about real training curves.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from isobn_tune.errors import UserError
from isobn_tune.sweep.replay import (
    Schedule,
    TaskGrid,
    check_seeds,
    fifo_schedule,
    load_source,
    replay,
    schedule_of,
)

SYNTHETIC_SPACE = """\
# A synthetic bank (benchmarks/replay_schedulers.py --synthetic): made-up scores, no training.
name: synthetic-bank
model:
  name_or_path: minilm
tasks: [stsb]
data:
  glue_dir: bundled:sample
grid:
  cls_norm: [none, isobn]
  lr: [2.0e-5, 5.0e-5, 1.0e-4]
  batch_size: [16]
  seeds: [{seeds}]
recipe:
  max_epochs: {epochs}
scheduler:
  type: fifo
"""
LRS = ("2e-05", "5e-05", "0.0001")


def write_synthetic_bank(folder: Path, *, seeds: int = 16, epochs: int = 6, effect: float = 2.0,
                         seed: int = 0) -> Path:
    """A bank with a known answer: per method lr 5e-5 is 3 points ahead, IsoBN is ``effect`` points
    over none (in points; scores in the metric's units), a seed effect shared by every configuration."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    seed_list = list(range(1, seeds + 1))
    space = SYNTHETIC_SPACE.format(seeds=", ".join(map(str, seed_list)), epochs=epochs)
    (folder / "space.yaml").write_text(space)
    shared = rng.normal(0, 1.0, seeds)  # points
    lines = ["task,cls_norm,config,seed,epoch,score"]
    for method, lift in (("none", 0.0), ("isobn", effect)):
        for lr in LRS:
            quality = 80.0 + lift + (3.0 if lr == "5e-05" else 0.0)
            for s, shift in zip(seed_list, shared + rng.normal(0, 0.5, seeds), strict=True):
                for epoch in range(1, epochs + 1):
                    points = quality * (1 - 0.5 * math.exp(-epoch)) + shift + rng.normal(0, 0.3)
                    lines.append(f"stsb,{method},cls_norm={method};lr={lr},{s},{epoch},{points / 100:.5f}")
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    return folder


def per_trial_asha(reduction_factor: float = 2.0, grace_period: int = 1) -> Schedule:
    def schedule(grid: TaskGrid, selection: np.ndarray, order: list[tuple[int, int]],
                 rng: np.random.Generator) -> np.ndarray:
        values = grid.best_so_far[:, selection, :]
        epochs = values.shape[2]
        rungs, rung = [], grace_period
        while rung < epochs:
            rungs.append(rung)
            rung *= reduction_factor
        recorded: dict[float, list[float]] = {r: [] for r in rungs}
        last = np.full((len(grid.configs), selection.size), epochs)
        for c, k in order:
            for r in rungs:
                value = float(values[c, k, int(r) - 1])
                recorded[r].append(value)
                if value < np.percentile(recorded[r], (1 - 1 / reduction_factor) * 100):
                    last[c, k] = int(r)
                    break
        return last

    return schedule


def top_third_after_epoch_1(grid: TaskGrid, selection: np.ndarray, order: list[tuple[int, int]],
                            rng: np.random.Generator) -> np.ndarray:
    at_1 = np.median(grid.best_so_far[:, selection, 0], axis=1)
    kept = np.argsort(-at_1)[: math.ceil(len(grid.configs) / 3)]
    last = np.ones((len(grid.configs), selection.size), dtype=int)
    last[kept] = grid.scores.shape[2]
    return last


def schedules(source: str, seeds: int) -> dict[str, Schedule | str]:
    """Every scheduler of the table, by its row label; a rule that cannot run with ``seeds``
    selection seeds maps to the one-line reason ``run`` would give."""
    rules = {
        "asha_by_config (rf 2)": ["scheduler.type=asha_by_config", "scheduler.keep_best_per=cls_norm"],
        "asha_by_config (rf 3)": ["scheduler.type=asha_by_config", "scheduler.keep_best_per=cls_norm",
                                  "scheduler.reduction_factor=3"],
        "median_by_config": ["scheduler.type=median_by_config", "scheduler.keep_best_per=cls_norm"],
        "race_by_config, keep_best_per=cls_norm": ["scheduler.type=race_by_config",
                                                  "scheduler.keep_best_per=cls_norm"],
        "race_by_config, keep_best_per=null": ["scheduler.type=race_by_config",
                                               "scheduler.keep_best_per=null"],
    }
    found: dict[str, Schedule | str] = {"fifo (full grid)": fifo_schedule,
                                        "per-trial ASHA (rf 2)": per_trial_asha(2),
                                        "per-trial ASHA (rf 3)": per_trial_asha(3)}
    for label, overrides in rules.items():
        try:
            found[label] = schedule_of(load_source(source, ["scheduler={}", *overrides]).space, seeds)
        except UserError as err:
            found[label] = str(err)
    found["top third after epoch 1"] = top_third_after_epoch_1
    return found


def table(source: str, *, repeats: int, seeds: int | None) -> str:
    loaded = load_source(source)
    k = check_seeds(loaded.grids, seeds)
    rows = [("| scheduler | trial-epochs / grid: median (range) | best within 0.5 pt | verdict agreement "
             "| A/A false verdicts |"), "|---|---|---|---|---|"]
    for label, schedule in schedules(source, k).items():
        if isinstance(schedule, str):
            rows.append(f"| {label} | cannot run: {schedule} | | | |")
            continue
        f = replay(loaded, schedule, seeds=k, repeats=repeats)
        cf = f["compute_fraction"]
        rows.append(f"| {label} | {cf['median']:.3f} ({cf['low']:.3f}-{cf['high']:.3f}) | "
                    f"{pct(f['best_within_half_point'])} | {pct(f['verdict_agreement'])} | "
                    f"{pct(f['aa_false_verdict'])} |")
    seeds_total = len(loaded.grids[0].seeds)
    head = f"{repeats} replays each, {k} of {seeds_total} seeds for selection, the rest held out"
    floors = ", ".join(f"{grid.task} {compute_floor(grid):.3f}" for grid in loaded.grids)
    foot = (f"floor: a rule that runs each method's best configuration to the end and stops every other "
            f"one after its first epoch uses {floors} of the grid")
    return head + "\n\n" + "\n".join(rows) + "\n\n" + foot


def compute_floor(grid: TaskGrid) -> float:
    """The fewest trial-epochs, as a fraction of the grid, of any rule that keeps each method's best
    configuration to the full budget and decides the others no earlier than after their first epoch."""
    n_configs, _, epochs = grid.scores.shape
    n_methods = len(set(grid.methods))
    return (n_methods * epochs + (n_configs - n_methods)) / (n_configs * epochs)


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bank", nargs="?", help="a bank directory or a finished fifo sweep directory")
    parser.add_argument("--synthetic", action="store_true", help="replay a synthetic bank (labelled so)")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--seeds", type=int)
    args = parser.parse_args(argv)
    if args.synthetic == bool(args.bank):
        parser.error("give a BANK directory or --synthetic")
    if args.synthetic:
        with tempfile.TemporaryDirectory() as folder:
            bank = write_synthetic_bank(Path(folder))
            print("SYNTHETIC bank (made-up scores, see the docstring): 2 methods x 3 lr x 16 seeds "
                  "x 6 epochs, IsoBN +2 points")
            print(table(str(bank), repeats=args.repeats, seeds=args.seeds))
    else:
        print(table(args.bank, repeats=args.repeats, seeds=args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
