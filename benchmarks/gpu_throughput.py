"""Training throughput and model FLOPs utilisation (MFU) on one CUDA GPU under bf16 autocast.

Randomly initialised BERT-base and RoBERTa-large (weights do not change speed), batch 32, full
length sequences of random tokens, the trial's own ``train_step`` (forward, backward, clipping,
AdamW, schedule) with and without IsoBN, side by side in one run. MFU counts the model FLOPs of
a training step, 6 * N * tokens + 12 * layers * hidden * seq * tokens (N: non-embedding
parameters; the second term is attention's QK^T and AV, forward plus backward), against the GPU's
dense bf16 peak and against a measured 8192^3 bf16 matmul.

``--check-train`` also runs :func:`isobn_tune.train.loop.train` for two real epochs on CUDA with bf16
on synthetic data (checkpoint included) and checks the IsoBN statistics stayed float32 and finite.
``--compile`` also times each method with the model compiled in place (``torch.compile``, the
optimizer step left eager), compilation inside the warm-up steps.

Run: python benchmarks/gpu_throughput.py [--archs bert-base roberta-large] [--check-train] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, RobertaConfig, get_linear_schedule_with_warmup

from isobn_tune.data.batches import TaskData, TokenizedSplit
from isobn_tune.train.loop import load_checkpoint, make_optimizer, train, train_step
from isobn_tune.train.model import build_model
from isobn_tune.train.recipe import TrialConfig

ARCHS = {
    "bert-base": BertConfig(),  # the defaults are bert-base: 12 layers, 768 hidden, 12 heads
    "roberta-large": RobertaConfig(
        vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
    ),
    "tiny": BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
}
DENSE_BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def save_config(arch: str, root: Path) -> str:
    path = root / arch
    ARCHS[arch].save_pretrained(path)
    return str(path)


def trial_config(model_dir: str, cls_norm: str, batch_size: int, precision: str) -> TrialConfig:
    return TrialConfig(task="rte", model=model_dir, random_init=True, cls_norm=cls_norm,
                       batch_size=batch_size, precision=precision, lr=2e-5)


def model_flops_per_step(model: torch.nn.Module, batch_size: int, seq_len: int) -> float:
    enc = model.encoder
    cfg = enc.config
    embedding = sum(p.numel() for p in enc.embeddings.parameters())
    n = sum(p.numel() for p in model.parameters()) - embedding
    tokens = batch_size * seq_len
    return 6 * n * tokens + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len * tokens


def random_batch(vocab: int, batch_size: int, seq_len: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(5, vocab, (batch_size, seq_len), generator=g).to(device),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long, device=device),
        "labels": torch.randint(0, 2, (batch_size,), generator=g).to(device),
    }


def time_steps(cfg: TrialConfig, batch_size: int, seq_len: int, steps: int, warmup: int, device: torch.device,
               fused: bool | None = None, compile_model: bool = False) -> tuple[float, float]:
    """Median seconds per training step, and the model FLOPs of one step (``compile_model``:
    ``torch.compile`` the model in place first; compilation happens in the warm-up steps)."""
    torch.manual_seed(0)
    model = build_model(cfg, num_labels=2).to(device)
    if compile_model:
        model.compile()
    optimizer = make_optimizer(model, cfg, fused=fused)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, 10 * (steps + warmup))
    batch = random_batch(model.encoder.config.vocab_size, batch_size, seq_len, device)
    model.train()
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        train_step(model, [batch], optimizer, scheduler, cfg, device)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    flops = model_flops_per_step(model, batch_size, seq_len)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return statistics.median(times), flops


def measured_matmul_tflops(device: torch.device) -> float:
    if device.type != "cuda":
        return float("nan")
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(device)
    return 10 * 2 * 8192**3 / (time.perf_counter() - t0) / 1e12


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def synthetic_split(n: int, vocab: int, seq_len: int, seed: int) -> TokenizedSplit:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(seq_len // 2, seq_len + 1, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return TokenizedSplit(
        input_ids=rng.integers(5, vocab, size=offsets[-1]).astype(np.int32), offsets=offsets,
        token_type_ids=np.zeros(offsets[-1], dtype=np.int8),
        labels=rng.integers(0, 2, size=n).astype(np.int64),
        pad_token_id=0,
    )


def check_train(arch: str, model_dir: str, batch_size: int, seq_len: int, device: torch.device) -> None:
    """Two real epochs of the trial's loop with bf16 and IsoBN, with checkpoints; the IsoBN
    statistics in the checkpoint must be float32 and finite."""
    vocab = ARCHS[arch].vocab_size
    dev = synthetic_split(256, vocab, seq_len, 1)
    data = TaskData("rte", synthetic_split(1024, vocab, seq_len, 0), {"dev": dev})
    cfg = TrialConfig(task="rte", model=model_dir, random_init=True, cls_norm="isobn", batch_size=batch_size,
                      precision="bf16", max_epochs=2, lr=2e-5)
    reports = []

    def report(metrics: dict, ckpt: Path | None) -> None:
        cov = load_checkpoint(ckpt)["model"]["cls_norm.running_cov"]
        reports.append((metrics, sorted(p.name for p in ckpt.iterdir()), cov))

    t0 = time.perf_counter()
    result = train(cfg, data, report=report, device=device)
    metrics, files, cov = reports[-1]
    print(f"train() on {device} bf16: 2 epochs of {len(data.train)} examples "
          f"(lengths {seq_len // 2}-{seq_len}, dynamic padding) in {time.perf_counter() - t0:.1f} s "
          "(incl. model build, 3 dev passes, 2 checkpoints); "
          f"epoch 1 {reports[0][0]['train_examples_per_s']:.0f} examples/s, "
          f"epoch 2 {metrics['train_examples_per_s']:.0f} examples/s, "
          f"train_loss={metrics['train_loss']:.4f}, objective={metrics['objective']:.4f}, "
          f"best_epoch={result.best_epoch}, checkpoint files={files}; IsoBN running_cov "
          f"{cov.dtype}, finite={bool(torch.isfinite(cov).all())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["bert-base", "roberta-large"], choices=sorted(ARCHS))
    parser.add_argument("--methods", nargs="+", default=["none", "isobn"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    parser.add_argument("--check-train", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time each method with torch.compile")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in DENSE_BF16_PEAK_TFLOPS.items() if k in name), float("nan"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    measured = measured_matmul_tflops(device)
    print(f"device: {name}; torch {torch.__version__}; dense bf16 peak {peak} TFLOP/s (spec); "
          f"measured 8192^3 bf16 matmul {measured:.0f} TFLOP/s")
    print(f"precision {args.precision}, batch {args.batch_size}, best of {args.rounds} interleaved rounds "
          f"of the median of {args.steps} steps after {args.warmup}")
    print("| model | seq | method | ms/step | examples/s | tokens/s | model TFLOP/s | MFU (spec) "
          "| MFU (matmul) | vs none |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            model_dir = save_config(arch, Path(tmp))
            for seq_len in args.seq_lens:
                base = None
                runs = [(m, None, False) for m in args.methods]
                if device.type == "cuda":
                    # the reference: AdamW's multi-tensor (unfused) kernels
                    runs.append(("none", False, False))
                if args.compile:
                    runs += [(m, None, True) for m in args.methods]
                timed = {}
                for _ in range(args.rounds):  # interleaved rounds, best median kept: launch jitter is large
                    for run in runs:
                        method, fused, compiled = run
                        cfg = trial_config(model_dir, method, args.batch_size, args.precision)
                        sec, flops = time_steps(cfg, args.batch_size, seq_len, args.steps, args.warmup,
                                                device, fused, compiled)
                        timed[run] = min(sec, timed.get(run, (sec, 0))[0]), flops
                for (method, fused, compiled), (sec, flops) in timed.items():
                    base = base or sec
                    tflops = flops / sec / 1e12
                    label = (method + (" (unfused AdamW)" if fused is False else "")
                             + (" (compiled)" if compiled else ""))
                    print(f"| {arch} | {seq_len} | {label} | {1e3 * sec:.1f} | {args.batch_size / sec:.0f} | "
                          f"{args.batch_size * seq_len / sec:.0f} | {tflops:.0f} | {tflops / peak:.1%} | "
                          f"{tflops / measured:.1%} | {sec / base:.3f} |", flush=True)
        if args.check_train:
            arch = args.archs[0]
            check_train(arch, save_config(arch, Path(tmp)), args.batch_size, args.seq_lens[0], device)


if __name__ == "__main__":
    main()
