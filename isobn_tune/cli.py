"""``isobn-tune``: train one trial, check a space file, run/resume/report/browse a sweep, export, predict.

``train``'s flags are generated from the trial config and data models (their defaults, bounds and
help), and ``run``/``show``/``validate`` take ``dotted.key=value`` overrides of the space file.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from isobn_tune.errors import UserError

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic.fields import FieldInfo

    from isobn_tune.data.glue import DataSource
    from isobn_tune.data.tasks import TaskSpec
    from isobn_tune.space import SweepSpace
    from isobn_tune.train.recipe import TrialConfig

# Trial-config fields that are no flag of `train`: a mapping is set in a space file's model section.
_NOT_FLAGS = ("model_overrides",)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from isobn_tune.space.schema import DataSection
    from isobn_tune.train.recipe import TrialConfig

    parser = argparse.ArgumentParser(prog="isobn-tune", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train", help="fine-tune one configuration and print per-epoch dev metrics",
        description="Fine-tune one configuration. Every flag is a trial-config or data setting "
        "(the same names, defaults and bounds as a space file's grid, recipe and data sections).",
    )
    _add_field_flags(train, TrialConfig, "trial")
    _add_field_flags(train, DataSection, "data")
    train.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: torch's choice)")
    train.add_argument("--output-dir", type=Path, default=None,
                       help="save the best epoch's model here, as `isobn-tune export` does (a new directory)")
    train.set_defaults(func=_train)

    overrides_help = "space-file settings to override, e.g. recipe.max_epochs=3 grid.seeds=[1,2]"
    for name, help_text, func in (
        ("validate", "check a search-space file and report every problem", _validate),
        ("show", "print the expanded grid, its trial order and count", _show),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("file")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=overrides_help)
        p.set_defaults(func=func)

    run = sub.add_parser("run", help="run the sweep a search-space file describes")
    run.add_argument("file")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=overrides_help)
    run.add_argument("--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: local)")
    run.add_argument("--storage", help="results root, a path or URI (default: the file's run.storage_path)")
    run.add_argument("--name", help="sweep name under the storage root (default: <space name>-<timestamp>)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: file, $MLFLOW_TRACKING_URI, "
                                            "else sqlite beside the results)")
    run.add_argument("--verbose", action="store_true",
                     help="also show Ray's, Tune's, MLflow's and the trials' output "
                          "(always in the sweep's log)")
    run.set_defaults(func=_run)

    resume = sub.add_parser("resume", help="continue an interrupted sweep")
    resume.add_argument("dir", help="the sweep directory `run` printed (<storage>/<name>)")
    resume.add_argument("--address", help="Ray cluster address (default: local)")
    resume.add_argument("--tracking-uri", help="MLflow tracking URI with its credential (default: the "
                                               "sweep's, with those the sweep's manifest names from the "
                                               "environment)")
    resume.add_argument("--retry-errored", action="store_true", help="also re-run trials that errored")
    resume.add_argument("--verbose", action="store_true", help="as for run")
    resume.set_defaults(func=_resume)

    extend = sub.add_parser(
        "extend", help="add trials to a sweep under its MLflow run: more seeds for its best "
                       "configurations, or the grid points of another space file",
        description="Add trials to a finished sweep, in its directory and under its MLflow parent run, "
        "never re-running a trial it has run. Interrupted, it continues with `isobn-tune resume`.",
    )
    extend.add_argument("dir", help="the sweep directory `run` printed (<storage>/<name>)")
    what = extend.add_mutually_exclusive_group(required=True)
    what.add_argument("--top", type=int, metavar="K",
                      help="the K best configurations of each task by seed median (with --seeds)")
    what.add_argument("--space", metavar="FILE", help="a space file with the sweep's model, data and recipe "
                                                      "and new grid values (new lr or beta values)")
    extend.add_argument("--seeds", help="seeds to add with --top: 6-10, 6,8,11 or 1-3,7")
    extend.add_argument("--task", help="only this task (default: every task of the sweep, or of --space)")
    extend.add_argument("--address", help="Ray cluster address (default: local)")
    extend.add_argument("--tracking-uri", help="as for resume")
    extend.add_argument("--verbose", action="store_true", help="as for run")
    extend.set_defaults(func=_extend)

    confirm = sub.add_parser(
        "confirm", help="run the best configuration of each method at fresh seeds for the full budget: "
                        "the confirmatory comparisons then use only these seeds",
        description="Select, then confirm: the best configuration of each method (cls_norm), by full-budget "
        "seed median on the sweep's own seeds, runs at --seeds (none of which may have selected) in the "
        "sweep's directory and under its MLflow parent run. Interrupted, it continues with "
        "`isobn-tune resume`.",
    )
    confirm.add_argument("dir", help="the sweep directory `run` printed (<storage>/<name>)")
    confirm.add_argument("--seeds", required=True, help="fresh seeds: 6-15, 6,8,11 or 6-10,20")
    confirm.add_argument("--task", help="only this task (default: every task of the sweep)")
    confirm.add_argument("--address", help="Ray cluster address (default: local)")
    confirm.add_argument("--tracking-uri", help="as for resume")
    confirm.add_argument("--verbose", action="store_true", help="as for run")
    confirm.set_defaults(func=_confirm)

    report = sub.add_parser("report", help="what a sweep found: the task x method table (median ± std "
                                           "over seeds) and paired seed comparisons with verdicts")
    report.add_argument("target", help="a sweep directory, or an MLflow parent run id (with --tracking-uri)")
    report.add_argument("--tracking-uri", help="MLflow tracking URI, for a run id")
    report.add_argument("--groups", action="store_true", help="also list every configuration group")
    report.add_argument("--format", default="md", dest="fmt", help="md (default), csv or json")
    report.add_argument("--compare", nargs=2, metavar=("A", "B"),
                        help="also compare two configurations seed by seed (labels as --groups lists them)")
    report.set_defaults(func=_report)

    replay = sub.add_parser(
        "replay", help="replay a recorded full grid (a finished fifo sweep, or a bank) through a "
                       "scheduler's decisions: compute saved, best configurations kept, verdicts kept",
    )
    replay.add_argument("source", help="a finished fifo sweep directory, or a bank directory (space.yaml "
                                       "and per-epoch CSV files)")
    replay.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="overrides of the recorded space, e.g. scheduler.type=race_by_config")
    replay.add_argument("--seeds", type=int, metavar="K", help="seeds per configuration used for selection "
                        "(default: all but the 6 held out for the verdict)")
    replay.add_argument("--repeats", type=int, default=200, metavar="N", help="random replays (default 200)")
    replay.add_argument("--format", default="md", dest="fmt", choices=("md", "json"),
                        help="md (default) or json")
    replay.set_defaults(func=_replay)

    export = sub.add_parser("export", help="a trial's best-epoch model as a directory that "
                                           "`isobn_tune.load_classifier` and `predict` load, also logged "
                                           "as an MLflow model on the sweep's parent run")
    export.add_argument("dir", help="a sweep directory")
    export.add_argument("--task", required=True, help="the task whose trial to export")
    export.add_argument("--trial", help="trial id (default: the best seed of the best configuration "
                                        "by seed median)")
    export.add_argument("--to", required=True, type=Path, help="a new directory for the model")
    export.add_argument("--register", metavar="NAME",
                        help="also register it as a new version of NAME in MLflow's model registry")
    export.add_argument("--tracking-uri", help="MLflow tracking URI with its credential (default: the "
                                               "sweep's)")
    export.set_defaults(func=_export)

    predict = sub.add_parser("predict", help="predict a task's TSV file (GLUE test, dev or train layout) "
                                             "into a GLUE submission file")
    predict.add_argument("model", type=Path, help="a directory `export` or `train --output-dir` wrote")
    predict.add_argument("--input", required=True, type=Path, help="the TSV file to predict")
    predict.add_argument("--out", required=True, type=Path, help="the submission file to write")
    predict.set_defaults(func=_predict)

    ui = sub.add_parser("ui", help="open a sweep in MLflow's UI: serves a local store on 127.0.0.1 "
                                   "until Ctrl-C and prints the parent run's address")
    ui.add_argument("dir", nargs="?", help="a sweep directory (default: the store of --tracking-uri "
                                           "or $MLFLOW_TRACKING_URI)")
    ui.add_argument("--tracking-uri", help="MLflow tracking URI (default: the sweep's)")
    ui.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    ui.set_defaults(func=_ui)

    sync = sub.add_parser("sync", help="log to MLflow what a sweep's runs lack of its trials' results (after "
                                       "its tracking server was unreachable); a second sync changes nothing")
    sync.add_argument("dir", help="a sweep directory")
    sync.add_argument("--tracking-uri", help="as for resume")
    sync.set_defaults(func=_sync)
    return parser


# ----- flags generated from the settings models ----------------------------------------------------
def _add_field_flags(parser: argparse.ArgumentParser, model: type[BaseModel], group: str) -> None:
    """One ``--flag`` per field of ``model``: its help, choices and default from the field; the
    value is read as YAML (``1e-5``, ``null``) and checked by the model itself, as in a space file."""
    options = parser.add_argument_group(f"{group} settings")
    for name, info in model.model_fields.items():
        if name in _NOT_FLAGS:
            continue
        flag = "--" + name.replace("_", "-")
        choices = _choices(info)
        default = "required" if info.is_required() else f"default: {info.get_default()}"
        help_text = f"{info.description} ({default})"
        if info.annotation is bool:
            options.add_argument(flag, dest=f"{group}.{name}", action=argparse.BooleanOptionalAction,
                                 default=argparse.SUPPRESS, help=help_text)
        else:
            # Choices are shown, but checked by the model: every bad value is one line, as in a space file.
            metavar = "{" + ",".join(choices) + "}" if choices else name.upper()
            options.add_argument(flag, dest=f"{group}.{name}", required=info.is_required(), metavar=metavar,
                                 default=argparse.SUPPRESS, help=help_text)


def _choices(info: FieldInfo) -> list[str] | None:
    if typing.get_origin(info.annotation) is Literal:
        return list(typing.get_args(info.annotation))
    return None


def _flag_values(args: argparse.Namespace, group: str, model: type[BaseModel]) -> dict[str, Any]:
    """The flags of ``group`` that were given, as the model's field values."""
    from isobn_tune.space.loading import parse_yaml

    prefix = group + "."
    given = {key.removeprefix(prefix): value for key, value in vars(args).items() if key.startswith(prefix)}
    return {name: parse_yaml(value) if isinstance(value, str) and not _is_text(model.model_fields[name])
            else value for name, value in given.items()}


def _is_text(info: FieldInfo) -> bool:
    """Whether a field holds free text (kept as given, never read as YAML)."""
    annotation = info.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return str in typing.get_args(annotation)
    return annotation is str or typing.get_origin(annotation) is Literal


def _validated(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """``values`` checked by ``model``, every problem on one line naming its flag."""
    from pydantic import ValidationError

    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise UserError("\n".join(
            f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']} (got {e['input']!r})" for e in exc.errors()
        )) from None


# ----- commands ----------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    task, cfg, data_section, source = _checked_train_inputs(args)
    if args.output_dir is not None:
        from isobn_tune.serving.classifier_io import check_output_dir

        check_output_dir(args.output_dir)

    import torch

    from isobn_tune.data.tokenization import default_cache_dir, tokenize_task
    from isobn_tune.train.loop import train
    from isobn_tune.train.model import load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(cfg.model)
    data = tokenize_task(task, tokenizer, data_section.max_seq_length, source, default_cache_dir(),
                         data_section.max_train_examples, data_section.max_dev_examples)
    print(f"{task.name}: {len(data.train)} train, "
          + ", ".join(f"{len(s)} {n}" for n, s in data.dev.items())
          + f"; {cfg.cls_norm} on {vars(args)['trial.model']}")

    def report(metrics: dict[str, Any], _checkpoint: Path | None) -> None:
        dev = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("dev_"))
        print(f"epoch {metrics['epoch']}/{cfg.max_epochs}: train_loss={metrics['train_loss']:.4f} {dev} "
              f"({metrics['train_examples_per_s']:.1f} ex/s)", flush=True)

    result = train(cfg, data, report=report, save_checkpoints=False)
    best = result.history[result.best_epoch - 1]
    print(f"best epoch {result.best_epoch}: " + " ".join(
        f"{k}={v:.4f}" for k, v in best.items() if k.startswith("dev_")))
    if args.output_dir is not None:
        from isobn_tune.serving.classifier_io import save_classifier
        from isobn_tune.tracking.names import BEST_DEV_METRIC

        save_classifier(args.output_dir, result.best_model, tokenizer, cfg, data_section.max_seq_length,
                        origin={"best_epoch": result.best_epoch, BEST_DEV_METRIC: result.best_objective})
        print(f"saved the best epoch's model to {args.output_dir}")
    return 0


def _checked_train_inputs(args: argparse.Namespace) -> tuple[TaskSpec, TrialConfig, Any, DataSource]:
    """Task, trial config, data settings and data source of ``train``, checked cheapest first
    (settings, data files, model path) so bad input fails in seconds, before heavy imports."""
    from isobn_tune.data.glue import DataSource, resolve_glue_dir, split_file
    from isobn_tune.data.tasks import get_task
    from isobn_tune.space.schema import DataSection
    from isobn_tune.train.model_source import resolve_model_name
    from isobn_tune.train.recipe import TrialConfig

    values = _flag_values(args, "trial", TrialConfig)
    task = get_task(values["task"])
    values["task"] = task.name
    data_values = _flag_values(args, "data", DataSection)
    glue_dir = data_values.pop("glue_dir", None)  # --glue-dir, else $GLUE_DIR, else the hub: below
    data_section = _validated(DataSection, data_values)
    cfg = _validated(TrialConfig, values)
    source = DataSource(resolve_glue_dir(glue_dir))
    if source.glue_dir is not None:
        for split in ("train", *task.dev_splits):
            split_file(task, split, source.glue_dir)
    cfg = cfg.model_copy(update={"model": resolve_model_name(cfg.model)})
    return task, cfg, data_section, source


def _validate(args: argparse.Namespace) -> int:
    from isobn_tune.space import load_space, trial_count

    space = load_space(args.file, args.overrides)
    print(f"{args.file}: OK ({trial_count(space)} trials)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from isobn_tune.space import load_space

    print(format_space_summary(load_space(args.file, args.overrides)))
    return 0


def _run(args: argparse.Namespace) -> int:
    from isobn_tune.sweep.preflight import check_run_inputs

    # Bad input fails in seconds, before torch, Ray Tune and MLflow are imported.
    check_run_inputs(args.file, storage=args.storage, name=args.name, tracking_uri=args.tracking_uri,
                     address=args.address, overrides=args.overrides)
    from isobn_tune.runner import main_exit_code, run_sweep

    outcome = run_sweep(args.file, address=args.address, storage=args.storage, name=args.name,
                        tracking_uri=args.tracking_uri, overrides=args.overrides, verbose=args.verbose)
    return main_exit_code(outcome)


def _resume(args: argparse.Namespace) -> int:
    from isobn_tune.runner import main_exit_code, resume_sweep

    return main_exit_code(resume_sweep(args.dir, address=args.address, tracking_uri=args.tracking_uri,
                                       retry_errored=args.retry_errored, verbose=args.verbose))


def _extend(args: argparse.Namespace) -> int:
    from isobn_tune.space import load_space
    from isobn_tune.sweep.directory import SweepDir, read_manifest
    from isobn_tune.sweep.extension import parse_seeds

    if (args.top is not None) != (args.seeds is not None):
        raise UserError("--top and --seeds go together: extend --top K --seeds 6-10")
    seeds = parse_seeds(args.seeds) if args.seeds is not None else []
    # Bad input fails in seconds, before torch, Ray Tune and MLflow are imported.
    read_manifest(SweepDir.parse(args.dir))
    if args.space is not None:
        load_space(args.space)
    from isobn_tune.runner import extend_sweep, main_exit_code

    return main_exit_code(extend_sweep(
        args.dir, top=args.top, seeds=seeds, space_file=args.space, task=args.task, address=args.address,
        tracking_uri=args.tracking_uri, verbose=args.verbose,
    ))


def _confirm(args: argparse.Namespace) -> int:
    from isobn_tune.sweep.directory import SweepDir, read_manifest
    from isobn_tune.sweep.extension import check_fresh_seeds, parse_seeds

    seeds = parse_seeds(args.seeds)
    # Bad input fails in seconds, before torch, Ray Tune and MLflow are imported.
    check_fresh_seeds(read_manifest(SweepDir.parse(args.dir)), seeds)
    from isobn_tune.runner import extend_sweep, main_exit_code

    return main_exit_code(extend_sweep(
        args.dir, seeds=seeds, confirm=True, task=args.task, address=args.address,
        tracking_uri=args.tracking_uri, verbose=args.verbose,
    ))


def _report(args: argparse.Namespace) -> int:
    from isobn_tune.tracking.report import print_report

    print_report(args.target, tracking_uri=args.tracking_uri, groups=args.groups, fmt=args.fmt,
                 compare=args.compare)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from isobn_tune.sweep.replay import replay_report

    print(replay_report(args.source, args.overrides, seeds=args.seeds, repeats=args.repeats, fmt=args.fmt))
    return 0


def _export(args: argparse.Namespace) -> int:
    from isobn_tune.console import captured_output
    from isobn_tune.results.aggregate import short_label
    from isobn_tune.serving.export import export_trial
    from isobn_tune.sweep.directory import SweepDir, read_manifest

    sweep_dir = SweepDir.parse(args.dir)
    read_manifest(sweep_dir)  # a sweep directory, before its log is appended to
    with captured_output(sweep_dir.log_file) as log:  # progress bars and library warnings
        exported = export_trial(args.dir, args.task, args.to, trial_id=args.trial, register=args.register,
                                tracking_uri=args.tracking_uri)
    record = exported.record
    print(f"exported trial {record.trial_id} ({short_label(record.config)}, seed {record.config.seed}, "
          f"best dev {record.best_objective:.4f}) to {args.to}")
    version = exported.registered_version
    registered = f", registered as {args.register} version {version}" if args.register else ""
    print(f"MLflow model {exported.model_uri}{registered}; full log {log}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from isobn_tune.serving.predict import predict_file

    predicted = predict_file(args.model, args.input, args.out)
    print(f"{predicted.count} predictions written to {args.out}; full log {predicted.log}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from isobn_tune.tracking.ui import browse

    return browse(args.dir, tracking_uri=args.tracking_uri, port=args.port)


def _sync(args: argparse.Namespace) -> int:
    from isobn_tune.tracking.sync import sync_command

    synced = sync_command(args.dir, tracking_uri=args.tracking_uri)
    parent = f"; statistics of {', '.join(synced.tasks)} logged again" if synced.tasks else ""
    ended = "; the parent run ended" if synced.finished else ""
    print(f"logged {synced.epochs} epoch(s) and {synced.ends} trial end(s){parent}{ended}")
    return 0


# ----- `show` ------------------------------------------------------------------------------------
SHOWN_TRIALS = 8


def format_space_summary(space: SweepSpace) -> str:
    """A human-readable overview of a sweep: model, data, axes in trial order, the first trials,
    recipe, scheduler, resources, counts and the disk the checkpoints need."""
    from isobn_tune.space import grid_axes, grid_points, trial_count, trials_per_task
    from isobn_tune.sweep.disk_estimate import format_disk_estimate
    from isobn_tune.train.cls_norm import PARAM_FIELDS, params_of

    axes = grid_axes(space)
    width = max(len(k) for k in axes)
    lines = [f"sweep: {space.name}"]
    if space.description:
        lines.append(f"description: {space.description.strip()}")
    model = space.model
    lines += [
        f"model: {model.name_or_path} (pooling {model.pooling}, "
        f"{'random init' if model.random_init else 'pretrained'}"
        + (f", overrides {model.overrides}" if model.overrides else "")
        + ")",
        f"tasks: {', '.join(space.tasks)}",
        (
            f"data: glue_dir {space.data.glue_dir or '$GLUE_DIR or hub'}, "
            f"max_train_examples {space.data.max_train_examples or 'all'}, "
            f"max_dev_examples {space.data.max_dev_examples or 'all'}, "
            f"max_seq_length {space.data.max_seq_length}"
        ),
        "axes (trial order: the first varies slowest, seeds innermost):",
    ]
    mixed = len(axes["cls_norm"]) > 1
    for key, values in axes.items():
        note = f"  ({PARAM_FIELDS[key][0]} only)" if mixed and key in PARAM_FIELDS else ""
        lines.append(f"  {key.ljust(width)}  {', '.join(map(str, values))}{note}")
    if space.optuna:
        opt = space.optuna
        searched = ", ".join(f"{name} ({r.describe()})" for name, r in opt.params.searched().items())
        lines.append(
            f"optuna: {opt.n_points} points per task over {opt.cls_norm}'s {searched}; "
            f"{opt.max_concurrent} at a time, sampler seed {opt.seed}"
        )
    else:
        points = grid_points(space)
        lines.append(f"first trials ({min(SHOWN_TRIALS, len(points))} of {len(points)} per task):")
        for point in points[:SHOWN_TRIALS]:
            unused = set(PARAM_FIELDS) - set(params_of(point["cls_norm"]))
            own = {k: v for k, v in point.items() if k not in unused}
            shown = {k: own[k] for k in axes if k in own and len(axes[k]) > 1} or own
            lines.append("  " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    recipe = ", ".join(f"{k} {v}" for k, v in space.recipe.model_dump().items())
    scheduler = ", ".join(f"{k} {v}" for k, v in space.scheduler.model_dump().items() if k != "type")
    resources = space.resources
    lines += [
        f"recipe: {recipe}",
        f"scheduler: {space.scheduler.type}" + (f" ({scheduler})" if scheduler else ""),
        (
            f"resources per trial: {resources.cpus_per_trial:g} cpu, "
            f"{resources.gpus_per_trial:g} gpu; "
            f"max concurrent trials {resources.max_concurrent_trials or 'unlimited'}"
        ),
        f"trials per task: {trials_per_task(space)}",
        f"total trials: {trial_count(space)}",
        format_disk_estimate(space),
        f"storage: {space.run.storage_path}; mlflow experiment: {space.experiment_name}"
        + (f" at {space.mlflow.tracking_uri}" if space.mlflow.tracking_uri else ""),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
