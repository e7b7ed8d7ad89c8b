"""``isobn-tune``: train one trial, validate/show a space file, run/resume a sweep, report it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isobn_tune.errors import UserError

if TYPE_CHECKING:
    from isobn_tune.glue_data import DataSource
    from isobn_tune.recipe import TrialConfig
    from isobn_tune.tasks import TaskSpec


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isobn-tune", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="fine-tune one configuration and print per-epoch dev metrics")
    train.add_argument("--task", required=True,
                       help="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte")
    train.add_argument("--model", required=True,
                       help="hub name, local model directory, or 'minilm' (offline)")
    train.add_argument("--glue-dir",
                       help="local GLUE folder (<dir>/<TASK>/train.tsv); default $GLUE_DIR, else the hub")
    train.add_argument("--cls-norm", default="isobn", help="isobn | batchnorm | layernorm | none")
    train.add_argument("--pooling", default="pooler", help="pooler (default) | cls")
    train.add_argument("--beta", type=float, default=0.5)
    train.add_argument("--alpha", type=float, default=0.95)
    train.add_argument("--eps", type=float, default=0.1)
    train.add_argument("--lr", type=float, default=2e-5)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, default=10, dest="max_epochs")
    train.add_argument("--warmup-ratio", type=float, default=0.06)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--patience", type=int, default=None)
    train.add_argument("--precision", default="fp32", help="fp32 | bf16")
    train.add_argument("--max-seq-length", type=int, default=256)
    train.add_argument("--max-train-examples", type=int, default=None)
    train.add_argument("--max-dev-examples", type=int, default=None)
    train.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: torch's choice)")
    train.set_defaults(func=_train)

    for name, help_text, func in (
        ("validate", "check a search-space file and report every problem", _validate),
        ("show", "print the expanded grid and trial count of a search-space file", _show),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("file")
        p.set_defaults(func=func)

    run = sub.add_parser("run", help="run the sweep a search-space file describes")
    run.add_argument("file")
    run.add_argument("--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: local)")
    run.add_argument("--storage", help="results root, a path or URI (default: the file's run.storage_path)")
    run.add_argument("--name", help="sweep name under the storage root (default: <space name>-<timestamp>)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: file, $MLFLOW_TRACKING_URI, "
                                            "else sqlite beside the results)")
    run.set_defaults(func=_run)

    resume = sub.add_parser("resume", help="continue an interrupted sweep")
    resume.add_argument("dir", help="the sweep directory `run` printed (<storage>/<name>)")
    resume.add_argument("--address", help="Ray cluster address (default: local)")
    resume.add_argument("--retry-errored", action="store_true", help="also re-run trials that errored")
    resume.set_defaults(func=_resume)

    report = sub.add_parser("report", help="print the task x method table (median ± std over seeds)")
    report.add_argument("target", help="a sweep directory, or an MLflow parent run id (with --tracking-uri)")
    report.add_argument("--tracking-uri", help="MLflow tracking URI, for a run id")
    report.add_argument("--groups", action="store_true", help="also list every configuration group")
    report.set_defaults(func=_report)
    return parser


def _train(args: argparse.Namespace) -> int:
    task, cfg, source = _checked_train_inputs(args)

    import torch

    from isobn_tune.features import default_cache_dir, tokenize_task
    from isobn_tune.model import load_tokenizer
    from isobn_tune.training import train

    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(cfg.model)
    data = tokenize_task(task, tokenizer, args.max_seq_length, source, default_cache_dir(),
                         args.max_train_examples, args.max_dev_examples)
    print(f"{task.name}: {len(data.train)} train, "
          + ", ".join(f"{len(s)} {n}" for n, s in data.dev.items()) + f"; {cfg.cls_norm} on {cfg.model}")

    def report(metrics: dict[str, Any], _checkpoint: Path | None) -> None:
        dev = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("dev_"))
        print(f"epoch {metrics['epoch']}/{cfg.max_epochs}: train_loss={metrics['train_loss']:.4f} {dev} "
              f"({metrics['train_examples_per_s']:.1f} ex/s)", flush=True)

    result = train(cfg, data, report=report, save_checkpoints=False)
    best = result.history[result.best_epoch - 1]
    print(f"best epoch {result.best_epoch}: " + " ".join(
        f"{k}={v:.4f}" for k, v in best.items() if k.startswith("dev_")))
    return 0


def _checked_train_inputs(args: argparse.Namespace) -> tuple[TaskSpec, TrialConfig, DataSource]:
    """Task, trial config and data source of ``train``, checked cheapest first (task, settings, data
    files, model path) so bad input fails in seconds, before the heavy imports and any loading."""
    from isobn_tune.recipe import TrialConfig
    from isobn_tune.tasks import get_task

    task = get_task(args.task)
    cfg = TrialConfig(
        task=task.name, model=args.model, cls_norm=args.cls_norm, pooling=args.pooling, beta=args.beta,
        alpha=args.alpha, eps=args.eps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
        max_epochs=args.max_epochs, warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay,
        patience=args.patience, precision=args.precision,
    )
    from isobn_tune.glue_data import DataSource, resolve_glue_dir, split_file

    source = DataSource(resolve_glue_dir(args.glue_dir))
    if source.glue_dir is not None:
        for split in ("train", *task.dev_splits):
            split_file(task, split, source.glue_dir)
    from isobn_tune.model import resolve_model_name

    resolve_model_name(cfg.model)
    return task, cfg, source


def _validate(args: argparse.Namespace) -> int:
    from isobn_tune.space import load_space

    space = load_space(args.file)
    print(f"{args.file}: OK ({space.trial_count()} trials)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from isobn_tune.space import format_space_summary, load_space

    print(format_space_summary(load_space(args.file)))
    return 0


def _run(args: argparse.Namespace) -> int:
    from isobn_tune.preflight import check_run_inputs

    # Bad input fails in seconds, before torch, Ray Tune and MLflow are imported.
    check_run_inputs(args.file, storage=args.storage, name=args.name, tracking_uri=args.tracking_uri,
                     address=args.address)
    from isobn_tune.runner import main_exit_code, run_sweep

    outcome = run_sweep(args.file, address=args.address, storage=args.storage, name=args.name,
                        tracking_uri=args.tracking_uri)
    return main_exit_code(outcome)


def _resume(args: argparse.Namespace) -> int:
    from isobn_tune.runner import main_exit_code, resume_sweep

    return main_exit_code(resume_sweep(args.dir, address=args.address, retry_errored=args.retry_errored))


def _report(args: argparse.Namespace) -> int:
    from isobn_tune.report import print_report

    print_report(args.target, tracking_uri=args.tracking_uri, groups=args.groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
