"""Orchestration overhead: the same trials through ``isobn-tune run`` (Ray Tune, checkpoints each
epoch, MLflow logging) versus ``isobn_tune.train.loop.train`` called in a plain loop.

Both run the trials one at a time with the same torch threads (the sweep gets
``cpus_per_trial = --threads`` and ``max_concurrent_trials: 1``), on the same tokenised data (the
tokenisation cache is warmed first). The sweep's wall time counts everything a user waits for:
starting Ray, putting the data in the object store, trials, checkpoints, MLflow and the summary.
Size trials to at least 60 s each (``--train-examples``/``--epochs``) so the ratio is about
steady-state overhead, not start-up.

Besides the wall times it prints where the difference goes: the time spent in training epochs
(from each epoch's ``train_examples_per_s``; the sweep's read back from MLflow) and the rest
(model set-up, dev evaluation, checkpoints, Ray, MLflow).

Loop and sweep run as pairs, the order alternating (``--pairs``, default 3): each pair's ratio, then
their median and range.

Run: python benchmarks/orchestration_overhead.py [--trials 2] [--train-examples 400] [--epochs 2] [--pairs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
import yaml

from isobn_tune.data.batches import TaskData
from isobn_tune.data.glue import DataSource, resolve_glue_dir
from isobn_tune.data.tasks import get_task
from isobn_tune.data.tokenization import default_cache_dir, tokenize_task
from isobn_tune.runner import run_sweep
from isobn_tune.space import SweepSpace, load_space, trial_configs
from isobn_tune.tracking.readback import epoch_metrics
from isobn_tune.train.loop import train
from isobn_tune.train.model import load_tokenizer
from isobn_tune.train.recipe import TrialConfig

THROUGHPUT = "train_examples_per_s"


def write_space(root: Path, args: argparse.Namespace) -> Path:
    space = {
        "name": "orchestration-overhead",
        "model": {"name_or_path": args.model},
        "tasks": [args.task],
        "data": {"glue_dir": str(resolve_glue_dir(args.glue_dir)), "max_train_examples": args.train_examples,
                 "max_dev_examples": args.dev_examples, "max_seq_length": args.max_seq_length},
        "grid": {"cls_norm": ["isobn"], "lr": [5e-5], "batch_size": [16],
                 "seeds": list(range(1, args.trials + 1))},
        "recipe": {"max_epochs": args.epochs},
        "scheduler": {"type": "fifo"},
        "resources": {"cpus_per_trial": args.threads, "max_concurrent_trials": 1},
    }
    path = root / "space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def row(path: str, wall_s: float, trials: int, examples: int, throughputs: list[float]) -> str:
    """Wall time, and the part of it spent in training epochs (``examples`` per epoch)."""
    train_s = sum(examples / ips for ips in throughputs)
    mean_ips = len(throughputs) * examples / train_s
    return (f"| {path} | {wall_s:.1f} | {wall_s / trials:.1f} | {train_s:.1f} | {mean_ips:.2f} | "
            f"{wall_s - train_s:.1f} |")


def run_loop(space: SweepSpace, task: str, data: TaskData, threads: int) -> tuple[float, list[float]]:
    """The trials in a plain loop over ``train()``: wall seconds and each epoch's throughput."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    ips = [epoch[THROUGHPUT] for cfg in trial_configs(space, task)
           for epoch in train(TrialConfig.from_dict(cfg), data, save_checkpoints=False).history]
    return time.perf_counter() - t0, ips


def run_through_sweep(space_file: Path, root: Path, threads: int) -> tuple[float, list[float]]:
    """The same trials through ``run_sweep`` (Ray started and stopped inside the timing)."""
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    t0 = time.perf_counter()
    ray.init(num_cpus=threads, include_dashboard=False, logging_level="WARNING")
    outcome = run_sweep(space_file, storage=str(root / "results"), name="bench", tracking_uri=tracking_uri)
    ray.shutdown()
    wall = time.perf_counter() - t0
    epochs = epoch_metrics(tracking_uri, outcome.parent_run_id, THROUGHPUT)
    return wall, [m.value for history in epochs.values() for m in history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="rte")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--glue-dir", default=None)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--train-examples", type=int, default=400)
    parser.add_argument("--dev-examples", type=int, default=277)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3, help="loop/sweep pairs, the order alternating")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        space_file = write_space(Path(tmp), args)
        space = load_space(space_file)
        task = get_task(args.task)
        data = tokenize_task(task, load_tokenizer(space.model.name_or_path), args.max_seq_length,
                             DataSource(resolve_glue_dir(space.data.glue_dir)), default_cache_dir(),
                             args.train_examples, args.dev_examples)
        examples = len(data.train)
        print(f"{args.trials} trials of {args.model} on {task.name}: {examples} train / "
              f"{len(next(iter(data.dev.values())))} dev examples, {args.epochs} epochs, "
              f"max_seq_length {args.max_seq_length}, {args.threads} threads; {args.pairs} pairs, order "
              "alternating", flush=True)
        ratios = []
        for pair in range(1, args.pairs + 1):
            sweep_first = pair % 2 == 0
            root = Path(tmp, f"pair-{pair}")
            if sweep_first:
                sweep = run_through_sweep(space_file, root, args.threads)
            loop = run_loop(space, task.name, data, args.threads)
            if not sweep_first:
                sweep = run_through_sweep(space_file, root, args.threads)
            ratios.append(sweep[0] / loop[0])
            print(f"\npair {pair} ({'sweep' if sweep_first else 'loop'} first)")
            print("| path | wall s | s per trial | in training epochs s | training examples/s | rest s |")
            print("|---|---|---|---|---|---|")
            print(row("plain loop over train()", loop[0], args.trials, examples, loop[1]))
            print(row("isobn-tune run (Ray Tune + checkpoints + MLflow)", sweep[0], args.trials, examples,
                      sweep[1]))
            print(f"ratio isobn-tune run / plain loop: {ratios[-1]:.3f}", flush=True)
    print(f"\nratio isobn-tune run / plain loop over {len(ratios)} pairs: median {np.median(ratios):.3f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f}; per pair " + ", ".join(f"{r:.3f}" for r in ratios))


if __name__ == "__main__":
    main()
