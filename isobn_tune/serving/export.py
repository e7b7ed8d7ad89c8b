"""``isobn-tune export``: one trial's best-epoch model from a sweep, as a classifier directory
(:mod:`isobn_tune.serving.classifier_io`) and as an MLflow model on the sweep's parent run
(:mod:`isobn_tune.serving.mlflow_model`).

By default the trial is the best seed of the task's best configuration, chosen by seed median as
``report`` and the parent run's tags choose it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow.fs

from isobn_tune.data.tasks import get_task
from isobn_tune.errors import UserError
from isobn_tune.results.aggregate import TrialRecord, best_groups, summarise_groups
from isobn_tune.serving.classifier_io import check_output_dir, save_classifier
from isobn_tune.sweep.directory import SweepDir, filesystem, join, read_manifest, sweep_tracking_uri
from isobn_tune.tracking.names import BEST_DEV_METRIC
from isobn_tune.tracking.readback import records_from_mlflow
from isobn_tune.train.checkpoint_files import BEST_MODEL_FILE, CHECKPOINT_PREFIX

PARAMS_FILE = "params.json"  # the config Tune ran the trial with, in the trial's directory


@dataclass(frozen=True)
class Exported:
    record: TrialRecord
    model_uri: str
    registered_version: str | None


def export_trial(
    sweep_path: str, task_name: str, to: Path, *, trial_id: str | None = None, register: str | None = None,
    tracking_uri: str | None = None,
) -> Exported:
    """Write the chosen trial's best-epoch model to ``to`` and log it on the sweep's parent run."""
    from isobn_tune.serving.mlflow_model import log_classifier

    check_output_dir(to)
    sweep_dir = SweepDir.parse(sweep_path)
    manifest = read_manifest(sweep_dir)
    task = get_task(task_name)
    if task.name not in manifest["space"]["tasks"]:
        raise UserError(f"sweep {sweep_dir.root} has no task {task.name}; its tasks: "
                        f"{', '.join(manifest['space']['tasks'])}")
    tracking_uri = sweep_tracking_uri(manifest, tracking_uri)
    parent_run_id = manifest["parent_run_id"]
    records = [r for r in records_from_mlflow(tracking_uri, parent_run_id) if r.config.task == task.name]
    record = chosen_trial(records, task.name, trial_id)
    origin = {"sweep": sweep_dir.root, "parent_run_id": parent_run_id, "trial_id": record.trial_id,
              BEST_DEV_METRIC: record.best_objective}
    write_trial_classifier(trial_dir(sweep_dir, manifest, task.name, record.trial_id), to,
                           max_seq_length=manifest["space"]["data"]["max_seq_length"], origin=origin)
    info = log_classifier(tracking_uri, parent_run_id, to, trial_id=record.trial_id, register=register)
    version = info.registered_model_version
    return Exported(record, info.model_uri, str(version) if version is not None else None)


def chosen_trial(records: Sequence[TrialRecord], task: str, trial_id: str | None = None) -> TrialRecord:
    """Trial ``trial_id`` of ``task``, else the best seed of its best configuration (highest seed
    median; ties go to the lower seed)."""
    if trial_id is not None:
        found = [r for r in records if r.trial_id == trial_id]
        if not found:
            raise UserError(f"no trial {trial_id!r} in {task}; its trials: "
                            f"{', '.join(sorted(r.trial_id for r in records))}")
        if found[0].best_objective is None:
            raise UserError(f"trial {trial_id} of {task} has no dev score: it ended before its first epoch")
        return found[0]
    best = best_groups(summarise_groups(records)).get(task)
    if best is None:
        raise UserError(f"no trial of {task} has a dev score yet")
    seeds = [r for r in records if r.group == best.group and r.best_objective is not None
             and r.status != "errored"]
    return max(seeds, key=lambda r: (r.best_objective, -r.config.seed))


def trial_dir(sweep_dir: SweepDir, manifest: dict[str, Any], task: str, trial_id: str) -> str:
    """The directory of trial ``trial_id`` of ``task``, in whichever of the task's experiments (the
    sweep's own or an extension's) ran it."""
    for experiment in sweep_dir.experiments(manifest, task):
        fs, path = filesystem(join(experiment.path, trial_id))
        if fs.get_file_info(path).type == pyarrow.fs.FileType.Directory:
            return join(experiment.path, trial_id)
    raise UserError(f"trial {trial_id} of {task} has no directory in {sweep_dir.root}")


def write_trial_classifier(
    trial_path: str, to: Path, *, max_seq_length: int, origin: dict[str, Any]
) -> None:
    """The best-epoch model in the trial's newest checkpoint holding one, as a classifier directory
    (a finished trial keeps it only in its newest registered checkpoint)."""
    import torch

    from isobn_tune.train.model import load_tokenizer
    from isobn_tune.train.recipe import TrialConfig

    fs, path = filesystem(trial_path)
    found = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True, recursive=True))
    checkpoints = sorted(PurePosixPath(info.path) for info in found
                         if PurePosixPath(info.path).parent.name.startswith(CHECKPOINT_PREFIX))
    if not checkpoints:
        raise UserError(f"{trial_path} has no checkpoint")
    best_models = [path for path in checkpoints if path.name == BEST_MODEL_FILE]
    if not best_models:
        raise UserError(f"{checkpoints[-1].parent} has no {BEST_MODEL_FILE}: it was saved by an older "
                        "isobn-tune, which kept no best-epoch model")
    cfg = TrialConfig.from_dict(json.loads(_read(fs, f"{path}/{PARAMS_FILE}")))
    best = torch.load(io.BytesIO(_read(fs, str(best_models[-1]))), map_location="cpu")
    save_classifier(to, best, load_tokenizer(cfg.model), cfg, max_seq_length, origin=origin)


def _read(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()
