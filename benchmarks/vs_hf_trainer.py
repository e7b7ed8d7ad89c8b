"""One trial of isobn-tune (cls_norm none) against ``transformers.Trainer`` on the same model,
data, batch size, schedule and seed: per-epoch training time and dev metric, side by side.

Both fine-tune the pretrained MiniLM-L6 with a linear head on the pooler output (isobn-tune's
``ClsNormClassifier`` with ``cls_norm=none`` is ``BertForSequenceClassification``'s head), AdamW
(eps 1e-6, no weight decay), warm-up over the first 6% of steps then linear decay, gradient
clipping at 1.0, the same tokenised examples with dynamic padding, and the same torch threads.
Epoch time counts training only (HF's ``on_epoch_end`` fires before its evaluation).

Run: python benchmarks/vs_hf_trainer.py [--task rte] [--train-examples 400] [--epochs 2]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from isobn_tune.batches import TaskData, TokenizedSplit
from isobn_tune.features import default_cache_dir, tokenize_task
from isobn_tune.glue_data import DataSource, resolve_glue_dir
from isobn_tune.metrics import compute_metrics, selection_value
from isobn_tune.model import load_tokenizer
from isobn_tune.model_source import resolve_model_name
from isobn_tune.recipe import TrialConfig
from isobn_tune.tasks import get_task
from isobn_tune.training import steps_per_epoch, train


def to_hf_dataset(split: TokenizedSplit) -> Dataset:
    spans = list(zip(split.offsets[:-1], split.offsets[1:], strict=True))
    rows = {"input_ids": [split.input_ids[a:b].tolist() for a, b in spans]}
    if split.token_type_ids is not None:
        rows["token_type_ids"] = [split.token_type_ids[a:b].tolist() for a, b in spans]
    rows["labels"] = split.labels.tolist()
    return Dataset.from_dict(rows)


class EpochTimer(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_epoch_begin(self, args, state, control, **kwargs):  # noqa: ANN001 (HF's callback signature)
        self._t0 = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self.times.append(time.perf_counter() - self._t0)


def run_isobn_tune(cfg: TrialConfig, data: TaskData) -> list[tuple[float, float]]:
    """(epoch seconds, dev objective) per epoch."""
    out: list[tuple[float, float]] = []

    def report(metrics: dict, _ckpt: object) -> None:
        out.append((len(data.train) / metrics["train_examples_per_s"], metrics["objective"]))

    train(cfg, data, report=report, save_checkpoints=False, device=torch.device("cpu"))
    return out


def run_hf_trainer(
    cfg: TrialConfig, data: TaskData, tokenizer: object, num_labels: int
) -> list[tuple[float, float]]:
    task = get_task(cfg.task)
    torch.manual_seed(cfg.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_model_name(cfg.model), num_labels=num_labels
    )
    total = cfg.max_epochs * steps_per_epoch(len(data.train), cfg.batch_size)
    dev = next(iter(data.dev.values()))
    scores: list[float] = []

    def metrics_fn(pred: object) -> dict[str, float]:
        preds = pred.predictions.squeeze(-1) if num_labels == 1 else np.argmax(pred.predictions, axis=-1)
        value = selection_value(task, compute_metrics(task, preds, dev.labels))
        scores.append(value)
        return {"objective": value}

    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out_dir:
        args = TrainingArguments(
            output_dir=out_dir, per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.eval_batch_size, learning_rate=cfg.lr,
            num_train_epochs=cfg.max_epochs, warmup_steps=math.floor(cfg.warmup_ratio * total),
            lr_scheduler_type="linear", weight_decay=cfg.weight_decay, adam_epsilon=cfg.adam_eps,
            max_grad_norm=cfg.max_grad_norm, seed=cfg.seed, data_seed=cfg.seed, eval_strategy="epoch",
            save_strategy="no", logging_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=to_hf_dataset(data.train),
            eval_dataset=to_hf_dataset(dev), data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=metrics_fn, callbacks=[timer],
        )
        trainer.train()
    return list(zip(timer.times, scores, strict=True))


def total_time(run: list[tuple[float, float]]) -> float:
    return sum(seconds for seconds, _ in run)


def fastest(runs: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Per epoch, the fastest time over repeats; the dev metric of the first run (same seed)."""
    return [(min(r[i][0] for r in runs), runs[0][i][1]) for i in range(len(runs[0]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="rte")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--glue-dir", default=None)
    parser.add_argument("--train-examples", type=int, default=400)
    parser.add_argument("--dev-examples", type=int, default=None)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    tokenizer = load_tokenizer(args.model)
    data = tokenize_task(task, tokenizer, args.max_seq_length, DataSource(resolve_glue_dir(args.glue_dir)),
                         default_cache_dir(), args.train_examples, args.dev_examples)
    cfg = TrialConfig(task=task.name, model=args.model, cls_norm="none", lr=args.lr,
                      batch_size=args.batch_size, seed=args.seed, max_epochs=args.epochs)
    # Interleaved repeats, the order alternating, fastest kept per epoch: the first runs in a
    # process pay one-off costs (allocator, oneDNN primitive caches) that would otherwise count
    # against whichever goes first.
    runs_ours, runs_hf = [], []
    for repeat in range(args.repeats):
        if repeat % 2:
            runs_hf.append(run_hf_trainer(cfg, data, tokenizer, task.num_labels))
            runs_ours.append(run_isobn_tune(cfg, data))
        else:
            runs_ours.append(run_isobn_tune(cfg, data))
            runs_hf.append(run_hf_trainer(cfg, data, tokenizer, task.num_labels))
        print(f"repeat {repeat + 1} ({'Trainer first' if repeat % 2 else 'isobn-tune first'}): training time "
              f"ratio {total_time(runs_ours[-1]) / total_time(runs_hf[-1]):.3f}", flush=True)
    ours, hf = fastest(runs_ours), fastest(runs_hf)
    print(f"{task.name}, {len(data.train)} train / {len(next(iter(data.dev.values())))} dev examples, "
          f"max_seq_length {args.max_seq_length}, batch {args.batch_size}, lr {args.lr}, seed {args.seed}, "
          f"{args.threads} threads, metric {task.selection_metric}")
    print("| epoch | isobn-tune s | Trainer s | time ratio | isobn-tune dev | Trainer dev |")
    print("|---|---|---|---|---|---|")
    for epoch, ((t_ours, m_ours), (t_hf, m_hf)) in enumerate(zip(ours, hf, strict=True), start=1):
        print(f"| {epoch} | {t_ours:.1f} | {t_hf:.1f} | {t_ours / t_hf:.3f} | {m_ours:.4f} | {m_hf:.4f} |")
    ratios = [total_time(a) / total_time(b) for a, b in zip(runs_ours, runs_hf, strict=True)]
    print(f"total training time ratio isobn-tune / Trainer, fastest epochs: "
          f"{total_time(ours) / total_time(hf):.3f}; per repeat: median {np.median(ratios):.3f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f} (target <= 1.0)")


if __name__ == "__main__":
    main()
