"""CPU training-step time of IsoBN and the other [CLS] normalisers relative to plain fine-tuning.

Real pretrained MiniLM-L6 (``minilm``), batch 32 of full-length 128-token sequences, the trial's
own ``train_step`` (forward, backward, grad clipping, AdamW, LR schedule). One model per method is
built up front and the methods are stepped in interleaved rounds (the order rotates every round),
so drifting machine load hits all of them alike. After the warm-up rounds, each method's median
step time is reported with its ratio to ``none``, in wall-clock time and in this process's CPU
time. On a machine shared with other work, wall time also counts the time spent waiting for a
core; CPU time (with a fixed thread count) does not, so the verdict uses the CPU-time ratio.

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

from isobn_tune.train.cls_norm import CLS_NORMS
from isobn_tune.train.loop import make_optimizer, train_step
from isobn_tune.train.model import ClsNormClassifier, build_model
from isobn_tune.train.recipe import TrialConfig

CPU = torch.device("cpu")
TARGET = 1.03


@dataclass
class Contender:
    """One method's model, optimiser and schedule, stepped on the shared batch."""

    cfg: TrialConfig
    model: ClsNormClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
        """One training step; its wall-clock and process CPU seconds."""
        wall, cpu = time.perf_counter(), time.process_time()
        train_step(self.model, [batch], self.optimizer, self.scheduler, self.cfg, CPU)
        return time.perf_counter() - wall, time.process_time() - cpu


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
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds per step of each method over ``steps`` rounds after ``warmup`` rounds."""
    names = list(contenders)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for rnd in range(warmup + steps):
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = contenders[name].step(batch)
            if rnd >= warmup:
                times[name].append(seconds)
    return times


def medians(times: dict[str, list[tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """Median wall and median CPU seconds per step of each method."""
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
            for name, t in times.items()}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def print_table(times: dict[str, list[tuple[float, float]]]) -> None:
    med = medians(times)
    base_wall, base_cpu = med["none"]
    print("| method | wall ms/step (median) | wall min-max | CPU ms/step (median) | vs none, wall "
          "| vs none, CPU |")
    print("|---|---|---|---|---|---|")
    for name, (wall, cpu) in med.items():
        walls = [1e3 * w for w, _ in times[name]]
        print(f"| {name} | {1e3 * wall:.0f} | {min(walls):.0f}-{max(walls):.0f} | {1e3 * cpu:.0f} "
              f"| {wall / base_wall:.3f} | {cpu / base_cpu:.3f} |")


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
    if "isobn" in times:
        med = medians(times)
        cpu_ratio = med["isobn"][1] / med["none"][1]
        verdict = "meets" if cpu_ratio <= TARGET else "misses"
        print(f"IsoBN/none = {cpu_ratio:.3f} in CPU time ({verdict} the target <= {TARGET}), "
              f"{med['isobn'][0] / med['none'][0]:.3f} in wall time")


if __name__ == "__main__":
    main()
