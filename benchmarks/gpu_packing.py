"""Sweep throughput with fractional GPUs, emulated: N trial processes sharing one GPU vs one alone.

Ray runs a trial with ``gpus_per_trial: 0.25`` as one of four worker processes that all see the
same GPU (Ray sets CUDA_VISIBLE_DEVICES and enforces no split of memory or compute; no MPS), so
the GPU time-slices between their CUDA contexts. The GPU machine has no Ray, so this script does
the same by hand: it starts N processes (spawn) on one GPU, each a trial's training loop, lets
them warm up, releases them together (a barrier) and times a fixed window; then one process alone,
the same way. Every process runs the trial's own code: ``build_model`` (random init, IsoBN on the
pooled [CLS]), ``make_optimizer`` (fused AdamW), ``train_step`` (bf16 autocast, clipping,
schedule) on batches of 32 made by the project's length-grouped batching (``train_batches``,
``batching: length_grouped``) from synthetic examples with GLUE-like lengths (log-normal, by
default MRPC/RTE-like: median 48 tokens, a tail past 128, at most 256), collated on the CPU and
copied to the GPU each step as the trial does, torch threads as a 1-CPU trial gets.

Encoders: MiniLM-sized (6 layers, 384 hidden, 12 heads, 1536 intermediate), 4 processes
(~ gpus_per_trial 0.25); BERT-base-sized (transformers' BertConfig defaults), 2 processes (~ 0.5).
A "trial" is a fixed number of steps (``--trial-steps``), so trials per hour = 3600 x steps/s / K
summed over the processes; evaluation, checkpoints and Ray's own cost are not part of it.
Rounds alternate the order (single first, then packed first); each measurement starts fresh
processes. The ratio packed / single is reported per round, then its median and range.

MFU: model FLOPs of the real (unpadded) tokens, counted per example with
``gpu_throughput.model_flops_per_step`` (6 N tokens + attention), against the dense bf16 peak
and a measured 8192^3 bf16 matmul, as in ``gpu_throughput.py``; the padded-token figure beside it.

Run (GPU):  python benchmarks/gpu_packing.py --out benchmarks/results/gpu_packing_h200.txt
Check (CPU, ~30 s): python benchmarks/gpu_packing.py --device cpu --smoke
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import queue
import statistics
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from gpu_throughput import ARCHS, DENSE_BF16_PEAK_TFLOPS, measured_matmul_tflops, model_flops_per_step, sync
from transformers import BertConfig, get_linear_schedule_with_warmup

from isobn_tune.data.batches import TokenizedSplit, train_batches
from isobn_tune.train.loop import make_optimizer, train_step
from isobn_tune.train.model import build_model
from isobn_tune.train.recipe import TrialConfig

EMULATION_NOTE = (
    "Ray is not installed on this machine: fractional GPUs are emulated with N concurrent trial "
    "processes sharing one GPU, as Ray runs them (each trial its own process on the same GPU, no "
    "memory or compute split, no MPS)."
)


@dataclass(frozen=True)
class Encoder:
    config: BertConfig
    processes: int  # concurrent trials on the GPU: 1 / gpus_per_trial

    @property
    def gpus_per_trial(self) -> float:
        return 1 / self.processes


ENCODERS = {
    "minilm-sized": Encoder(
        BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536), 4
    ),
    "bert-base": Encoder(ARCHS["bert-base"], 2),
    "tiny": Encoder(ARCHS["tiny"], 2),
}


@dataclass(frozen=True)
class Profile:
    """What one run measures; ``gpu`` is the benchmark, ``smoke`` a quick check of the script."""

    encoders: tuple[str, ...]
    rounds: int
    warmup_steps: int
    window_s: float
    train_examples: int


PROFILES = {
    "gpu": Profile(("minilm-sized", "bert-base"), rounds=3, warmup_steps=30, window_s=15.0,
                   train_examples=4096),
    "smoke": Profile(("tiny",), rounds=1, warmup_steps=2, window_s=1.0, train_examples=256),
}


@dataclass(frozen=True)
class Job:
    """One trial process: its model directory, seed and the measurement's settings."""

    model_dir: str
    device: str
    seed: int
    batch_size: int
    threads: int
    warmup_steps: int
    window_s: float
    train_examples: int
    length_median: float
    length_sigma: float
    max_len: int


def glue_like_split(job: Job, vocab: int) -> TokenizedSplit:
    """Random-token examples with log-normal lengths clipped to [8, max_len] (one segment)."""
    rng = np.random.default_rng(1000 + job.seed)
    draws = rng.lognormal(np.log(job.length_median), job.length_sigma, size=job.train_examples)
    lengths = np.clip(np.rint(draws), 8, job.max_len).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return TokenizedSplit(
        input_ids=rng.integers(5, vocab, size=offsets[-1]).astype(np.int32), offsets=offsets,
        token_type_ids=np.zeros(offsets[-1], dtype=np.int8),
        labels=rng.integers(0, 2, size=job.train_examples).astype(np.int64), pad_token_id=0,
    )


def endless_batches(split: TokenizedSplit, cfg: TrialConfig) -> Iterator[np.ndarray]:
    """The trial's training batches, epoch after epoch (a new length-grouped order each epoch)."""
    for epoch in itertools.count(1):
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        yield from train_batches(split, cfg.batch_size, batching=cfg.batching, generator=gen)


def run_trial(job: Job, barrier: mp.synchronize.Barrier) -> dict[str, float]:
    """Warm up, wait for the other processes, then train for ``window_s`` and count what was done."""
    torch.set_num_threads(job.threads)  # as the trainable: threads = CPUs Ray assigned the trial
    device = torch.device(job.device)
    cfg = TrialConfig(task="rte", model=job.model_dir, random_init=True, cls_norm="isobn", precision="bf16",
                      batching="length_grouped", batch_size=job.batch_size, lr=2e-5, seed=job.seed)
    torch.manual_seed(job.seed)
    model = build_model(cfg, num_labels=2).to(device)
    optimizer = make_optimizer(model, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, 10**7)
    split = glue_like_split(job, model.encoder.config.vocab_size)
    lengths = split.lengths
    # model FLOPs of one example of each length: a batch's real FLOPs are the sum over its examples
    flops_of_length = np.array([model_flops_per_step(model, 1, n) for n in range(job.max_len + 1)])
    batches = endless_batches(split, cfg)
    model.train()

    def step() -> np.ndarray:
        idx = next(batches)
        batch = {k: v.to(device, non_blocking=True) for k, v in split.collate(idx).items()}
        train_step(model, [batch], optimizer, scheduler, cfg, device)
        n = lengths[idx]
        return np.array([len(idx), n.sum(), len(idx) * n.max(), flops_of_length[n].sum(),
                         len(idx) * flops_of_length[n.max()]], dtype=np.float64)

    for _ in range(job.warmup_steps):
        step()
    sync(device)
    barrier.wait(timeout=900)
    # No sync per step, as in the trial: the CPU queues steps ahead; the final sync counts them done.
    totals, steps, t0 = np.zeros(5), 0, time.perf_counter()
    while time.perf_counter() - t0 < job.window_s:
        totals += step()
        steps += 1
    sync(device)
    elapsed = time.perf_counter() - t0
    examples, tokens, padded_tokens, flops, padded_flops = totals
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"seed": job.seed, "steps": steps, "elapsed_s": elapsed, "examples": examples,
            "tokens": tokens, "padded_tokens": padded_tokens, "flops": flops, "padded_flops": padded_flops,
            "peak_mem_gib": peak_mem}


def _process_main(job: Job, barrier: mp.synchronize.Barrier, results: mp.Queue) -> None:
    try:
        results.put(run_trial(job, barrier))
    except BaseException:
        barrier.abort()  # the others stop waiting instead of hanging
        results.put({"seed": job.seed, "error": traceback.format_exc()})


def measure(job: Job, processes: int) -> list[dict[str, float]]:
    """Start ``processes`` trial processes (seeds 0..N-1) together on the device; their results."""
    ctx = mp.get_context("spawn")  # CUDA cannot be forked; Ray's workers are fresh processes too
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_process_main, args=(replace(job, seed=i), barrier, results))
             for i in range(processes)]
    for p in procs:
        p.start()
    out: list[dict[str, float]] = []
    while len(out) < processes:
        try:
            out.append(results.get(timeout=5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                barrier.abort()
                raise RuntimeError(f"a trial process died (exit codes {dead}) without a result") from None
    for p in procs:
        p.join()
    errors = [r["error"] for r in out if "error" in r]
    if errors:
        raise RuntimeError("trial process failed:\n" + errors[0])
    return sorted(out, key=lambda r: r["seed"])


@dataclass(frozen=True)
class Summary:
    """One measurement, summed over its processes."""

    examples_per_s: float
    trials_per_h: float
    trial_s: float  # median over the processes of one trial's time (trial_steps steps)
    tflops: float  # real tokens
    padded_tflops: float
    padding: float  # fraction of the padded batch that is padding

    @classmethod
    def of(cls, runs: list[dict[str, float]], trial_steps: int) -> Summary:
        step_rates = [r["steps"] / r["elapsed_s"] for r in runs]
        return cls(
            examples_per_s=sum(r["examples"] / r["elapsed_s"] for r in runs),
            trials_per_h=sum(3600 * s / trial_steps for s in step_rates),
            trial_s=statistics.median(trial_steps / s for s in step_rates),
            tflops=sum(r["flops"] / r["elapsed_s"] for r in runs) / 1e12,
            padded_tflops=sum(r["padded_flops"] / r["elapsed_s"] for r in runs) / 1e12,
            padding=1 - sum(r["tokens"] for r in runs) / sum(r["padded_tokens"] for r in runs),
        )


def median_range(values: list[float], fmt: str) -> str:
    low, mid, high = (format(v, fmt) for v in (min(values), statistics.median(values), max(values)))
    return f"{mid} (range {low}-{high})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--smoke", action="store_true", help="tiny encoder, 2 processes, ~1 s windows")
    parser.add_argument("--encoders", nargs="+", choices=sorted(ENCODERS), help="default: the profile's")
    parser.add_argument("--rounds", type=int, help="default: 3 (smoke: 1)")
    parser.add_argument("--window-s", type=float, help="timed seconds per measurement; default 15 (smoke: 1)")
    parser.add_argument("--warmup-steps", type=int, help="default 30 (smoke: 2)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (cpus_per_trial)")
    parser.add_argument("--trial-steps", type=int, default=1000,
                        help="steps of one 'trial' (1000: ~10 epochs of MRPC at batch 32)")
    parser.add_argument("--length-median", type=float, default=48.0)
    parser.add_argument("--length-sigma", type=float, default=0.45)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--out", type=Path, help="also write the printed output here")
    args = parser.parse_args()
    prof = PROFILES["smoke" if args.smoke else "gpu"]
    prof = replace(prof, **{k: v for k, v in (("encoders", args.encoders and tuple(args.encoders)),
                                              ("rounds", args.rounds), ("window_s", args.window_s),
                                              ("warmup_steps", args.warmup_steps)) if v is not None})
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU visible (use --device cpu --smoke to check the script)")
    if prof.rounds < 1 or prof.window_s <= 0 or prof.warmup_steps < 0:
        parser.error(f"need rounds >= 1, window-s > 0, warmup-steps >= 0; got {prof}")

    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    peak = next((v for k, v in DENSE_BF16_PEAK_TFLOPS.items() if k in name), float("nan"))
    say(f"device: {name}; torch {torch.__version__}; dense bf16 peak {peak} TFLOP/s (spec)")
    say(EMULATION_NOTE)
    say(f"per process: IsoBN, bf16 autocast, batch {args.batch_size}, length-grouped batches, "
        f"{args.threads} torch thread(s); lengths log-normal median {args.length_median:g} sigma "
        f"{args.length_sigma:g} clipped to [8, {args.max_len}], {prof.train_examples} examples per epoch; "
        f"{prof.warmup_steps} warm-up steps, then a {prof.window_s:g} s window after a barrier; "
        f"a trial = {args.trial_steps} steps; {prof.rounds} round(s), order alternating")
    results: dict[str, list[tuple[Summary, Summary]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for enc_name in prof.encoders:
            enc = ENCODERS[enc_name]
            model_dir = str(Path(tmp) / enc_name)
            enc.config.save_pretrained(model_dir)
            job = Job(model_dir, args.device, 0, args.batch_size, args.threads, prof.warmup_steps,
                      prof.window_s, prof.train_examples, args.length_median, args.length_sigma, args.max_len)
            say(f"\n## {enc_name}: {enc.config.num_hidden_layers} layers, {enc.config.hidden_size} hidden; "
                f"1 process vs {enc.processes} (~ gpus_per_trial {enc.gpus_per_trial:g})")
            rounds = results[enc_name] = []
            for r in range(prof.rounds):
                order = (1, enc.processes) if r % 2 == 0 else (enc.processes, 1)
                got = {}
                for n in order:
                    runs = measure(job, n)
                    got[n] = Summary.of(runs, args.trial_steps)
                    for run in runs:
                        say(f"raw round {r + 1} procs {n}: " + ", ".join(
                            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in run.items()))
                rounds.append((got[1], got[enc.processes]))
            say("| round | order | single ex/s | packed ex/s | ratio | trial s single | trial s packed "
                "| trials/h single | trials/h packed | TFLOP/s single | TFLOP/s packed | padding |")
            say("|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r, (one, many) in enumerate(rounds):
                order = "single first" if r % 2 == 0 else "packed first"
                say(f"| {r + 1} | {order} | {one.examples_per_s:.0f} | {many.examples_per_s:.0f} | "
                    f"{many.trials_per_h / one.trials_per_h:.2f} | {one.trial_s:.1f} | {many.trial_s:.1f} | "
                    f"{one.trials_per_h:.1f} | {many.trials_per_h:.1f} | {one.tflops:.1f} | "
                    f"{many.tflops:.1f} | {one.padding:.1%} |")
            ratios = [many.trials_per_h / one.trials_per_h for one, many in rounds]
            ex_ratios = [many.examples_per_s / one.examples_per_s for one, many in rounds]
            verdict = "met" if statistics.median(ratios) >= 2 else "missed"
            say(f"{enc_name}: trials/hour packed / single, median {median_range(ratios, '.2f')} over "
                f"{len(ratios)} round(s); examples/s ratio {median_range(ex_ratios, '.2f')}; "
                f"target >= 2x: {verdict}")

    measured = measured_matmul_tflops(torch.device(args.device))
    say(f"\nmeasured 8192^3 bf16 matmul: {measured:.0f} TFLOP/s (after the runs, parent process)")
    for enc_name, rounds in results.items():
        one_mfu = [one.tflops / peak for one, _ in rounds]
        verdict = "" if enc_name != "bert-base" else (
            f"; target >= 35%: {'met' if statistics.median(one_mfu) >= 0.35 else 'missed'}")
        say(f"MFU {enc_name}, 1 process, real tokens: {median_range(one_mfu, '.1%')} of spec peak, "
            f"{median_range([one.tflops / measured for one, _ in rounds], '.1%')} of measured matmul; "
            f"padded tokens: {median_range([one.padded_tflops / peak for one, _ in rounds], '.1%')} "
            f"of spec{verdict}")
        say(f"MFU {enc_name}, packed (sum), real tokens: "
            f"{median_range([many.tflops / peak for _, many in rounds], '.1%')} of spec peak")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
