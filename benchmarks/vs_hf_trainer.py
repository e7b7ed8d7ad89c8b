"""isobn-tune's epoch against ``transformers.Trainer`` on the same model, data, batch size,
schedule and seed: five runs per round, each a fresh process, the order rotating from round to
round; training time, padded tokens, whole-process wall and CPU time, and the dev metric of every
run.

The five runs, all with cls_norm none (isobn-tune's ``ClsNormClassifier`` head is then
``BertForSequenceClassification``'s), AdamW (eps 1e-6, no weight decay), warm-up over the first 6%
of steps then linear decay, gradient clipping at 1.0, the same tokenised examples with dynamic
padding, the same torch threads:
- ``random``: isobn-tune's defaults, ``recipe.batching: random`` (the paper's recipe) with
  ``length_chunks: auto`` (the encoder runs each random batch in length-sorted chunks);
- ``random_whole``: the same with ``length_chunks: off``, each batch padded whole, as Trainer's:
  the loops on identical work;
- ``length_grouped``: isobn-tune, ``recipe.batching: length_grouped`` (``length_chunks: auto``);
- ``trainer``: ``Trainer`` with its defaults (random sampler, ``DataCollatorWithPadding``);
- ``trainer_grouped``: ``Trainer`` grouping by length (``train_sampling_strategy="group_by_length"``,
  transformers 5's name for ``group_by_length=True``).
Round r runs with seed r, so each run's dev metrics over the rounds give its seed spread.
Padded tokens are those the encoder ran in training (batch or chunk size times its longest).
Training time counts the epoch's training only (Trainer's ``on_epoch_end`` fires before its
evaluation; isobn-tune's examples per second are over training). Each run's full output is kept in
the raw log; ratios are per round (same seed, same machine state), summarised by their median and
range.

Run: python benchmarks/vs_hf_trainer.py [--rounds 4] [--raw results/vs_hf_trainer_rounds.log]
     (defaults: full RTE train set, 1 epoch, batch 32, max length 128, 2 threads)
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RUNS = ("random", "random_whole", "length_grouped", "trainer", "trainer_grouped")
PAIRS = (("random", "trainer", 1.0), ("random_whole", "trainer", None), ("length_grouped", "trainer", 0.85),
         ("length_grouped", "trainer_grouped", 1.0))  # (run, against, target ratio or None)
RESULT_PREFIX = "RESULT "


# ----- one run, in its own process ---------------------------------------------------------------
def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """Train one epoch as ``args.run`` says; training seconds and the dev metric."""
    import torch

    from isobn_tune.data.glue import DataSource, resolve_glue_dir
    from isobn_tune.data.tasks import get_task
    from isobn_tune.data.tokenization import default_cache_dir, tokenize_task
    from isobn_tune.train.model import load_tokenizer
    from isobn_tune.train.recipe import TrialConfig

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    tokenizer = load_tokenizer(args.model)
    data = tokenize_task(task, tokenizer, args.max_seq_length, DataSource(resolve_glue_dir(args.glue_dir)),
                         default_cache_dir(), args.train_examples, None)
    batching = "length_grouped" if args.run == "length_grouped" else "random"
    cfg = TrialConfig(task=task.name, model=args.model, cls_norm="none", lr=args.lr,
                      batch_size=args.batch_size, seed=args.seed, max_epochs=args.epochs, batching=batching,
                      length_chunks="off" if args.run == "random_whole" else "auto")
    if args.run.startswith("trainer"):
        grouped = args.run == "trainer_grouped"
        train_s, tokens, dev = _trainer(cfg, data, tokenizer, task, group_by_length=grouped)
    else:
        train_s, tokens, dev = _isobn_tune(cfg, data)
    return {"run": args.run, "seed": args.seed, "train_examples": len(data.train), "train_s": train_s,
            "padded_tokens": tokens, "dev": dev, "metric": task.selection_metric}


def _isobn_tune(cfg: Any, data: Any) -> tuple[float, int, float]:
    """Training seconds, padded training tokens, best dev metric."""
    import torch

    from isobn_tune.train.loop import train

    out: list[tuple[float, float]] = []
    tokens = 0
    collate = data.train.collate

    def counting_collate(indices: Any) -> dict:
        nonlocal tokens
        batch = collate(indices)
        tokens += batch["input_ids"].numel()
        return batch

    def report(metrics: dict, _checkpoint: object) -> None:
        out.append((len(data.train) / metrics["train_examples_per_s"], metrics["objective"]))

    data.train.collate = counting_collate  # only training collates the train split
    train(cfg, data, report=report, save_checkpoints=False, device=torch.device("cpu"))
    return sum(s for s, _ in out), tokens, max(m for _, m in out)


def _trainer(
    cfg: Any, data: Any, tokenizer: Any, task: Any, *, group_by_length: bool
) -> tuple[float, int, float]:
    """Training seconds, padded training tokens, best dev metric."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from isobn_tune.train.loop import steps_per_epoch
    from isobn_tune.train.metrics import compute_metrics, selection_value
    from isobn_tune.train.model_source import resolve_model_name

    def to_dataset(split: Any) -> Dataset:
        spans = list(zip(split.offsets[:-1], split.offsets[1:], strict=True))
        rows = {"input_ids": [split.input_ids[a:b].tolist() for a, b in spans]}
        if split.token_type_ids is not None:
            rows["token_type_ids"] = [split.token_type_ids[a:b].tolist() for a, b in spans]
        rows["labels"] = split.labels.tolist()
        return Dataset.from_dict(rows)

    class EpochTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds, self._t0, self.training = 0.0, 0.0, False

        def on_epoch_begin(self, args, state, control, **kwargs):  # noqa: ANN001 (HF's signature)
            self._t0, self.training = time.perf_counter(), True

        def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.seconds += time.perf_counter() - self._t0
            self.training = False

    padder = DataCollatorWithPadding(tokenizer)
    tokens = 0

    def counting_collate(features: list[dict]) -> dict:
        nonlocal tokens
        batch = padder(features)
        tokens += batch["input_ids"].numel() if timer.training else 0
        return batch

    torch.manual_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_name(cfg.model),
                                                               num_labels=task.num_labels)
    total = cfg.max_epochs * steps_per_epoch(len(data.train), cfg.batch_size)
    dev = next(iter(data.dev.values()))
    scores: list[float] = []

    def metrics_fn(pred: Any) -> dict[str, float]:
        logits = pred.predictions
        preds = logits.squeeze(-1) if task.num_labels == 1 else np.argmax(logits, axis=-1)
        scores.append(selection_value(task, compute_metrics(task, preds, dev.labels)))
        return {"objective": scores[-1]}

    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out_dir:
        args = TrainingArguments(
            output_dir=out_dir, per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.eval_batch_size, learning_rate=cfg.lr,
            num_train_epochs=cfg.max_epochs, warmup_steps=math.floor(cfg.warmup_ratio * total),
            lr_scheduler_type="linear", weight_decay=cfg.weight_decay, adam_epsilon=cfg.adam_eps,
            max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, data_seed=cfg.seed, eval_strategy="epoch",
            save_strategy="no", logging_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
            train_sampling_strategy="group_by_length" if group_by_length else "random",
        )
        Trainer(model=model, args=args, train_dataset=to_dataset(data.train), eval_dataset=to_dataset(dev),
                data_collator=counting_collate, compute_metrics=metrics_fn, callbacks=[timer]).train()
    return timer.seconds, tokens, max(scores)


# ----- the rounds ------------------------------------------------------------------------------
def child_command(args: argparse.Namespace, run: str, seed: int) -> list[str]:
    forwarded = ["--task", args.task, "--model", args.model, "--max-seq-length", str(args.max_seq_length),
                 "--batch-size", str(args.batch_size),
                 "--lr", str(args.lr), "--epochs", str(args.epochs), "--threads", str(args.threads)]
    if args.glue_dir:
        forwarded += ["--glue-dir", args.glue_dir]
    if args.train_examples:
        forwarded += ["--train-examples", str(args.train_examples)]
    return [sys.executable, __file__, "--run", run, "--seed", str(seed), *forwarded]


def timed_run(command: list[str], raw: Any) -> dict[str, Any]:
    """Run one child; its result with the process's wall and CPU seconds. Its output goes to
    ``raw`` whole."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    raw.write(f"$ {' '.join(command[1:])}\n{done.stdout}{done.stderr}")
    raw.write(f"exit {done.returncode}, wall {wall:.1f} s\n\n")
    raw.flush()
    if done.returncode:
        sys.exit(f"error: a run failed (exit {done.returncode}); its output is in {raw.name}")
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(line.removeprefix(RESULT_PREFIX)) | {"wall_s": wall, "cpu_s": cpu}


def summarise(rounds: list[dict[str, dict[str, Any]]]) -> None:
    first = rounds[0]["random"]
    print(f"\n{len(rounds)} rounds; {first['train_examples']} training examples, metric {first['metric']}")
    print("\n| run | training s: median (range) | padded tokens | process wall s | process CPU s "
          "| dev metric per seed |")
    print("|---|---|---|---|---|---|")
    for run in RUNS:
        cells = [_median_range([r[run][key] for r in rounds], digits)
                 for key, digits in (("train_s", 1), ("padded_tokens", 0), ("wall_s", 1), ("cpu_s", 1))]
        devs = ", ".join(f"{r[run]['dev']:.4f}" for r in rounds)
        print(f"| {run} | {' | '.join(cells)} | {devs} |")
    print("\n| ratio (per round, same seed) | training time | process wall | process CPU | target |")
    print("|---|---|---|---|---|")
    for a, b, target in PAIRS:
        cells = [_median_range([r[a][key] / r[b][key] for r in rounds], 3)
                 for key in ("train_s", "wall_s", "cpu_s")]
        print(f"| {a} / {b} | {' | '.join(cells)} | {'-' if target is None else f'<= {target}'} |")
    print("\nratios: median over rounds (min-max)")


def _median_range(values: list[float], digits: int) -> str:
    return f"{np.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="rte")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--glue-dir", default=None)
    parser.add_argument("--train-examples", type=int, default=None, help="default: the whole train set")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--raw", type=Path, help="every run's output (default: results/...rounds.log)",
                        default=Path(__file__).parent / "results" / "vs_hf_trainer_rounds.log")
    parser.add_argument("--run", choices=RUNS, help=argparse.SUPPRESS)  # a child: one run
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(RESULT_PREFIX + json.dumps(run_one(args)), flush=True)
        return 0
    rounds = []
    with args.raw.open("w") as raw:
        for r in range(args.rounds):
            order = RUNS[r % len(RUNS):] + RUNS[:r % len(RUNS)]
            results = {run: timed_run(child_command(args, run, seed=r + 1), raw) for run in order}
            rounds.append(results)
            print(f"round {r + 1} (seed {r + 1}; order {', '.join(order)}): " + ", ".join(
                f"{run} {results[run]['train_s']:.1f} s / {results[run]['wall_s']:.1f} s wall, dev "
                f"{results[run]['dev']:.4f}" for run in RUNS), flush=True)
    summarise(rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
