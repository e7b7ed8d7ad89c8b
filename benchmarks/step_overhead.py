"""CPU training-step time of IsoBN and the other [CLS] normalisers relative to plain fine-tuning.

Real pretrained MiniLM-L6 (``minilm``), batch 32 of full-length 128-token sequences, the trial's
own ``train_step`` (forward, backward, grad clipping, AdamW, LR schedule). One model per method is
built up front and the methods are stepped in interleaved rounds (the order rotates every round),
so drifting machine load hits all of them alike. After the warm-up rounds, each method's median
step time is reported with its ratio to ``none``, both as a ratio of medians and as the median of
the per-round ratios (each round's steps ran back to back).

Run: python benchmarks/step_overhead.py [--steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import dataclass

import torch
import transformers
from transformers import get_linear_schedule_with_warmup

from isobn_tune.model import ClsNormClassifier, build_model
from isobn_tune.recipe import CLS_NORMS, TrialConfig
from isobn_tune.training import make_optimizer, train_step

CPU = torch.device("cpu")
TARGET = 1.03


@dataclass
class Contender:
    """One method's model, optimiser and schedule, stepped on the shared batch."""

    cfg: TrialConfig
    model: ClsNormClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    def step(self, batch: dict[str, torch.Tensor]) -> float:
        t0 = time.perf_counter()
        train_step(self.model, batch, self.optimizer, self.scheduler, self.cfg, CPU)
        return time.perf_counter() - t0


def build(method: str, model: str, batch_size: int, total_steps: int) -> Contender:
    """The pretrained encoder with ``method`` on its pooled [CLS], in training mode."""
    cfg = TrialConfig(task="rte", model=model, cls_norm=method, batch_size=batch_size)
    torch.manual_seed(0)
    net = build_model(cfg, num_labels=2).train()
    optimizer = make_optimizer(net, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, total_steps)
    return Contender(cfg, net, optimizer, scheduler)


def random_batch(vocab_size: int, batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
    """Full-length sequences of random tokens (step time does not depend on the text)."""
    g = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(1000, vocab_size, (batch_size, seq_len), generator=g),
        "token_type_ids": torch.zeros(batch_size, seq_len, dtype=torch.long),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "labels": torch.randint(0, 2, (batch_size,), generator=g),
    }


def interleaved_times(
    contenders: dict[str, Contender], batch: dict[str, torch.Tensor], steps: int, warmup: int
) -> dict[str, list[float]]:
    """Seconds per step of each method over ``steps`` rounds after ``warmup`` rounds."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rnd in range(warmup + steps):
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = contenders[name].step(batch)
            if rnd >= warmup:
                times[name].append(seconds)
    return times


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def print_table(times: dict[str, list[float]]) -> None:
    base = statistics.median(times["none"])
    print("| method | ms/step (median) | min | max | vs none (ratio of medians) | vs none (paired) |")
    print("|---|---|---|---|---|---|")
    for name, secs in times.items():
        median = statistics.median(secs)
        paired = statistics.median(s / b for s, b in zip(secs, times["none"], strict=True))
        print(f"| {name} | {1e3 * median:.1f} | {1e3 * min(secs):.1f} | {1e3 * max(secs):.1f} "
              f"| {median / base:.3f} | {paired:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed rounds (one step per method each)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, fixed for the whole run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--model", default="minilm", help="hub name, local directory or 'minilm'")
    parser.add_argument("--methods", nargs="+", default=["none", "isobn", "batchnorm", "layernorm"],
                        choices=CLS_NORMS)
    args = parser.parse_args()
    methods = ["none", *(m for m in args.methods if m != "none")]

    torch.set_num_threads(args.threads)
    contenders = {m: build(m, args.model, args.batch_size, 10 * (args.steps + args.warmup)) for m in methods}
    encoder_config = contenders["none"].model.encoder.config
    batch = random_batch(encoder_config.vocab_size, args.batch_size, args.seq_len)
    print(f"{args.model} ({encoder_config.num_hidden_layers} layers, hidden {encoder_config.hidden_size}), "
          f"batch {args.batch_size} x {args.seq_len} tokens, fp32, {args.threads} thread(s) on "
          f"{cpu_name()}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"train_step = forward + backward + clip + AdamW + schedule; {args.steps} interleaved rounds "
          f"after {args.warmup} warm-up rounds")
    times = interleaved_times(contenders, batch, args.steps, args.warmup)
    print_table(times)
    ratio = statistics.median(times["isobn"]) / statistics.median(times["none"]) if "isobn" in times else None
    if ratio is not None:
        verdict = "meets" if ratio <= TARGET else "misses"
        print(f"IsoBN/none = {ratio:.3f} ({verdict} the target <= {TARGET})")


if __name__ == "__main__":
    main()
