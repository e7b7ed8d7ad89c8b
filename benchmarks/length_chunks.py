"""CPU training time of whole batches against length chunks (``recipe.length_chunks``), for random
and length-grouped batches.

Real pretrained MiniLM-L6, the full RTE train set at max length 128, batch 32, the trial's own
``train_step``. Each measurement runs the same ``--steps`` batches of one epoch order (seed 0),
once whole (``length_chunks: off``) and once in the chunks ``auto`` cuts at the given per-chunk
cost; the two alternate in order from pair to pair, from the same starting weights. Printed per
batching and per cost: padded tokens per step, seconds per step, and the chunked/whole time ratio
of every pair with its median and range. ``auto`` needs to pay on random batches and not lose on
length-grouped ones, whose batches have little padding to save.

Run: python benchmarks/length_chunks.py [--steps 8] [--pairs 3] [--costs 16 64 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import numpy as np
import torch

from isobn_tune.data.batches import TaskData, length_chunks, train_batches
from isobn_tune.data.glue import DataSource, resolve_glue_dir
from isobn_tune.data.tasks import get_task
from isobn_tune.data.tokenization import default_cache_dir, tokenize_task
from isobn_tune.train.loop import make_optimizer, train_step
from isobn_tune.train.model import ClsNormClassifier, build_model, load_tokenizer
from isobn_tune.train.recipe import BATCHINGS, TrialConfig

CPU = torch.device("cpu")


def run(model: ClsNormClassifier, cfg: TrialConfig, data: TaskData, batches: list[list[np.ndarray]]) -> float:
    """Seconds per step over ``batches`` (each a list of chunks), from a copy of ``model``."""
    net = copy.deepcopy(model).train()
    optimizer = make_optimizer(net, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    start = time.perf_counter()
    for chunks in batches:
        train_step(net, [data.train.collate(c) for c in chunks], optimizer, scheduler, cfg, CPU)
    return (time.perf_counter() - start) / len(batches)


def padded_tokens(data: TaskData, batches: list[list[np.ndarray]]) -> float:
    lengths = data.train.lengths
    return float(np.mean([sum(len(c) * lengths[c].max() for c in chunks) for chunks in batches]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--costs", type=float, nargs="+", default=[16.0, 64.0, 256.0],
                        help="tokens per extra chunk")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--glue-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = get_task("rte")
    data = tokenize_task(task, load_tokenizer("minilm"), 128, DataSource(resolve_glue_dir(args.glue_dir)),
                         default_cache_dir())
    cfg = TrialConfig(task="rte", model="minilm", cls_norm="isobn", batch_size=32)
    torch.manual_seed(0)
    model = build_model(cfg, task.num_labels)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads; "
          f"RTE train, MiniLM-L6, batch 32, max length 128, {args.steps} steps per run, {args.pairs} pairs\n")
    print("| batching | cost/chunk | chunks/step | padded tokens/step whole -> chunked | s/step whole | "
          "s/step chunked | chunked/whole per pair | median (range) |")
    print("|---|---|---|---|---|---|---|---|")
    for batching in BATCHINGS:
        gen = torch.Generator().manual_seed(0)
        order = list(train_batches(data.train, 32, batching=batching, generator=gen))[: args.steps]
        whole = [[idx] for idx in order]
        for cost in args.costs:
            chunked = [length_chunks(idx, data.train.lengths, cost) for idx in order]
            times: dict[str, list[float]] = {"whole": [], "chunked": []}
            for pair in range(args.pairs):
                for name in (("whole", "chunked") if pair % 2 == 0 else ("chunked", "whole")):
                    times[name].append(run(model, cfg, data, whole if name == "whole" else chunked))
            ratios = [c / w for c, w in zip(times["chunked"], times["whole"], strict=True)]
            print(f"| {batching} | {cost:g} | {np.mean([len(c) for c in chunked]):.1f} | "
                  f"{padded_tokens(data, whole):.0f} -> {padded_tokens(data, chunked):.0f} | "
                  f"{statistics.median(times['whole']):.2f} | {statistics.median(times['chunked']):.2f} | "
                  f"{', '.join(f'{r:.3f}' for r in ratios)} | "
                  f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |", flush=True)


if __name__ == "__main__":
    main()
