"""Run a sweep: validate everything, tokenise once per task, then one Tune experiment per task.

Layout of a sweep directory ``<storage>/<name>/``::

    sweep.json        manifest: the validated space, tracking URI, MLflow parent run id
    errored_trials.json  the trials that errored, by task (see errored_trials.py)
    sweep.log         everything Ray, Tune, MLflow and the trials printed (the console shows a summary)
    <task>/           Tune's experiment directory of that task (trials, checkpoints, state)
    extend-<n>/       an extension's experiments (``isobn-tune extend``), laid out the same way

``resume`` reads the manifest and restores each experiment with ``Tuner.restore`` (one not
started yet, an interrupted extension's, starts).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.exceptions import RayError
from ray.tune.schedulers import FIFOScheduler

from isobn_tune.console import captured_output, say
from isobn_tune.data.batches import TaskData
from isobn_tune.data.glue import DataSource, resolve_glue_dir
from isobn_tune.data.tasks import get_task
from isobn_tune.data.tokenization import default_cache_dir, tokenize_task
from isobn_tune.errors import UserError
from isobn_tune.redaction import redact_uri
from isobn_tune.results.aggregate import TrialRecord, record_from_result
from isobn_tune.results.tables import sweep_results
from isobn_tune.space import SweepSpace, effective_space_text, load_space, trial_count, trials_per_task
from isobn_tune.sweep.checkpoint_thinning import ThinFinishedTrials
from isobn_tune.sweep.directory import (
    EXTENSIONS_KEY,
    Experiment,
    SweepDir,
    has_manifest,
    read_manifest,
    stored_uri,
    sweep_tracking_uri,
    write_manifest,
)
from isobn_tune.sweep.errored_trials import ErroredTrialRecorder, keep_errored
from isobn_tune.sweep.extension import (
    check_fresh_seeds,
    confirmation_points,
    extension_entry,
    extension_trials,
    is_confirmation,
    new_points,
    space_points,
    top_config_points,
)
from isobn_tune.sweep.preflight import (
    absolute_storage,
    check_address,
    check_storage,
    check_sweep_name,
    check_tracking_uri,
    resolve_tracking_uri,
)
from isobn_tune.sweep.progress import ProgressLine
from isobn_tune.sweep.result_files import result_file_callbacks
from isobn_tune.sweep.search import (
    build_param_space,
    build_scheduler,
    build_searcher,
    extension_param_space,
    num_samples,
)
from isobn_tune.sweep.trainable import fine_tune_trial
from isobn_tune.sweep.tune_snapshots import wait_for_upload_before_snapshot
from isobn_tune.tracking.logger import SweepTracker, result_rows
from isobn_tune.tracking.sync import finish_tracking, sync_sweep
from isobn_tune.train.model import load_tokenizer

EXCESSIVE_SNAPSHOT_WARNING_ENV = "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"
SNAPSHOT_PERIOD_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
QUIET_RUN_URLS_ENV = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


@dataclass
class SweepOutcome:
    sweep_dir: SweepDir
    records: list[TrialRecord]
    parent_run_id: str | None

    @property
    def errored(self) -> list[TrialRecord]:
        return [r for r in self.records if r.status == "errored"]


def run_sweep(
    space_file: str | Path,
    *,
    address: str | None = None,
    storage: str | None = None,
    name: str | None = None,
    tracking_uri: str | None = None,
    overrides: Sequence[str] = (),
    verbose: bool = False,
) -> SweepOutcome:
    """Validate, prepare and run every task's experiment of a space file, with ``overrides``
    (``dotted.key=value``) applied to it. The console gets a summary; everything else goes to the
    sweep's log (and the console too with ``verbose``)."""
    space = load_space(space_file, overrides)
    if name is not None:
        check_sweep_name(name)
    sweep_dir = SweepDir(
        absolute_storage(storage or space.run.storage_path),
        name or f"{space.name}-{datetime.now():%Y%m%d-%H%M%S}",
    )
    if has_manifest(sweep_dir):
        raise UserError(
            f"sweep {sweep_dir.root} already exists: resume it with `isobn-tune resume {sweep_dir.arg}` "
            "or pass another --name"
        )
    tracking_uri = resolve_tracking_uri(tracking_uri, space.mlflow.tracking_uri, sweep_dir.storage)
    with captured_output(sweep_dir.log_file, verbose=verbose) as log_file:
        say(f"sweep {sweep_dir.root}: {trial_count(space)} trials over {len(space.tasks)} task(s); "
            f"full log {log_file}")
        try:
            data = _prepare(space, sweep_dir, tracking_uri, address)
            with ray_connection(address):
                check_fits_cluster(space, address)
                space_text = effective_space_text(space_file, overrides)
                tracker = SweepTracker.start(tracking_uri, space, sweep_dir.name, space_text)
                write_manifest(sweep_dir, {
                    "name": sweep_dir.name, "space_file": str(space_file), "overrides": list(overrides),
                    "space": space.model_dump(mode="json"), "tracking_uri": tracking_uri,
                    "parent_run_id": tracker.parent_run_id,
                    "created": datetime.now().isoformat(timespec="seconds"),
                })
                say(f"MLflow {redact_uri(tracking_uri)} run {tracker.parent_run_id}")
                say(f"if interrupted: isobn-tune resume {sweep_dir.arg}")
                records = _run_experiments(space, sweep_dir, read_manifest(sweep_dir), data, tracker,
                                           restore=False, retry_errored=False)
                return _finish(sweep_dir, tracker, records)
        except BaseException:
            if not has_manifest(sweep_dir):  # bad input creates nothing: its error is on the console
                _discard_log(sweep_dir)
            raise


def resume_sweep(
    path: str,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    retry_errored: bool = False,
    verbose: bool = False,
) -> SweepOutcome:
    """Continue an interrupted sweep: finished trials keep their results and are not re-run,
    unfinished ones continue from their last checkpoint, errored ones only on request. The
    tracking store is the manifest's, with the credentials it names taken from the environment
    (see :func:`sweep_tracking_uri`), or ``tracking_uri``.

    A trial that errored stays errored, including one whose worker process died (OOM kill, lost
    node) after its last retry, which Ray 2.60 saves as unfinished (see errored_trials.py)."""
    sweep_dir = SweepDir.parse(path)
    manifest = read_manifest(sweep_dir)
    space = SweepSpace.model_validate(manifest["space"])
    tracking_uri = sweep_tracking_uri(manifest, tracking_uri)
    with captured_output(sweep_dir.log_file, verbose=verbose) as log_file:
        say(f"resuming {sweep_dir.root}; full log {log_file}")
        data = _prepare(space, sweep_dir, tracking_uri, address)
        with ray_connection(address):
            check_fits_cluster(space, address)  # a cluster smaller than the one the sweep began on
            # What an unreachable tracking server kept out of MLflow, before anything runs again.
            sync_sweep(SweepTracker.of(tracking_uri, manifest["parent_run_id"]), sweep_dir, manifest)
            tracker = SweepTracker.resume(tracking_uri, manifest["parent_run_id"])
            say(f"MLflow {redact_uri(tracking_uri)} run {tracker.parent_run_id}")
            records = _run_experiments(space, sweep_dir, manifest, data, tracker, restore=True,
                                       retry_errored=retry_errored)
            return _finish(sweep_dir, tracker, records)


def extend_sweep(
    path: str,
    *,
    top: int | None = None,
    seeds: Sequence[int] = (),
    space_file: str | None = None,
    confirm: bool = False,
    task: str | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    verbose: bool = False,
) -> SweepOutcome:
    """Add trials to a sweep, under its MLflow parent run: the ``top`` best configurations of each
    task (or of ``task``) at ``seeds``, the grid points of ``space_file``, or with ``confirm`` the
    best configuration of each method at fresh ``seeds`` (``isobn-tune confirm``). Trials the sweep
    has run are never run again; an interrupted sweep is first resumed (its ranking needs its
    results), an interrupted extension is continued by ``resume``."""
    if confirm:
        if top is not None or space_file is not None or not seeds:
            raise UserError("confirm takes --seeds only (fresh seeds, e.g. 6-15)")
    elif (top is None) == (space_file is None):
        raise UserError("extend needs either --top K with --seeds, or --space FILE")
    if top is not None and (top < 1 or not seeds):
        raise UserError(f"--top {top} --seeds {list(seeds)}: at least one configuration and one seed")
    sweep_dir = SweepDir.parse(path)
    manifest = read_manifest(sweep_dir)
    if confirm:
        check_fresh_seeds(manifest, seeds)
    space = SweepSpace.model_validate(manifest["space"])
    if task is not None and task not in space.tasks:
        raise UserError(f"--task {task}: not in sweep {sweep_dir.root}; its tasks: {', '.join(space.tasks)}")
    new_space = load_space(space_file) if space_file is not None else None
    tasks = [task] if task is not None else list(new_space.tasks if new_space else space.tasks)
    wanted = {t: space_points(space, new_space, str(space_file), t) for t in tasks} if new_space else None
    tracking_uri = sweep_tracking_uri(manifest, tracking_uri)
    with captured_output(sweep_dir.log_file, verbose=verbose) as log_file:
        say(f"extending {sweep_dir.root}; full log {log_file}")
        data = _prepare(space, sweep_dir, tracking_uri, address)
        with ray_connection(address):
            check_fits_cluster(space, address)
            tracker = SweepTracker.resume(tracking_uri, manifest["parent_run_id"])
            records = _run_experiments(space, sweep_dir, manifest, data, tracker, restore=True,
                                       retry_errored=False)
            trials = {t: new_points(space, records[t], t, _wanted_points(records[t], t, top, seeds, confirm)
                                    if wanted is None else wanted[t]) for t in tasks}
            how = (f"space file {space_file}" if space_file else
                   f"confirmation at seeds {list(seeds)}" if confirm else f"top {top} at seeds {list(seeds)}")
            if not any(trials.values()):
                tracker.finish()
                raise UserError(f"nothing to add to {sweep_dir.root}: the sweep has run every trial of the "
                                f"{how} already")
            entry = extension_entry(manifest, trials, how, confirmation=confirm)
            manifest[EXTENSIONS_KEY] = [*manifest.get(EXTENSIONS_KEY, []), entry]
            write_manifest(sweep_dir, manifest)
            say(f"{entry['name']}: {sum(map(len, trials.values()))} new trial(s) ({how}); "
                f"if interrupted: isobn-tune resume {sweep_dir.arg}")
            added = _run_experiments(space, sweep_dir, manifest, data, tracker, restore=False,
                                     retry_errored=False, only=entry["name"])
            for name, task_records in added.items():
                records[name] += task_records
                tracker.log_task_summary(name, records[name])
            return _finish(sweep_dir, tracker, records)


def _wanted_points(records: list[TrialRecord], task: str, top: int | None, seeds: Sequence[int], confirm: bool
                   ) -> list[dict[str, Any]]:
    """The grid points an ``extend --top`` or a ``confirm`` asks for on ``task``."""
    if confirm:
        return confirmation_points(records, task, seeds)
    return top_config_points(records, task, top or 0, seeds)


def _discard_log(sweep_dir: SweepDir) -> None:
    """Remove the log of a sweep that never started, and its directory if that is left empty."""
    sweep_dir.log_file.unlink(missing_ok=True)
    if "://" not in sweep_dir.root:
        with contextlib.suppress(OSError):  # not empty, or not there
            Path(sweep_dir.root).rmdir()


def _prepare(space: SweepSpace, sweep_dir: SweepDir, tracking_uri: str, address: str | None
             ) -> dict[str, TaskData]:
    """Every check that can fail on user input, before anything is created; then tokenise
    (before Ray starts: bad data fails fast)."""
    check_storage(sweep_dir.storage)
    check_tracking_uri(tracking_uri)
    check_address(address)
    tokenizer = load_tokenizer(space.model.name_or_path)
    source = DataSource(resolve_glue_dir(space.data.glue_dir))
    data = {}
    for name in space.tasks:
        say(f"tokenising {name} (cached after the first time) ...")
        data[name] = tokenize_task(
            get_task(name), tokenizer, space.data.max_seq_length, source, default_cache_dir(),
            space.data.max_train_examples, space.data.max_dev_examples,
        )
    return data


def _run_experiments(space: SweepSpace, sweep_dir: SweepDir, manifest: dict[str, Any],
                     data: dict[str, TaskData], tracker: SweepTracker, *, restore: bool, retry_errored: bool,
                     only: str | None = None) -> dict[str, list[TrialRecord]]:
    """Run (or with ``restore``, continue) every Tune experiment of the sweep, or only those of
    extension ``only``, and return their trials by task. A task's statistics go to the parent run
    as soon as its last experiment ends."""
    # Tune snapshots the experiment state whenever a trial has saved `checkpoints_to_keep`
    # checkpoints since the last snapshot (so a resume never points at a deleted checkpoint), and
    # warns each time two snapshots fall within 5 s, which short epochs do all the time: the
    # snapshot is wanted, the warning is noise. A value the user set wins.
    os.environ.setdefault(EXCESSIVE_SNAPSHOT_WARNING_ENV, "0")
    # A snapshot after every controller step, not every ~10 s: a trial's newest checkpoint deletes
    # its oldest kept one at once, so a driver killed before the next snapshot would resume that
    # trial from a deleted checkpoint. Snapshotting each step keeps the state at most one
    # checkpoint behind, which retention (>= 2 kept) still holds. A value the user set wins.
    os.environ.setdefault(SNAPSHOT_PERIOD_ENV, "0")
    wait_for_upload_before_snapshot()  # a killed driver must leave a complete snapshot in storage
    if stored_uri(tracker.tracking_uri) != tracker.tracking_uri:
        # MLflow prints the address of each run it ends, built from the full tracking URI: a
        # credential in it would rest in the sweep's log.
        os.environ[QUIET_RUN_URLS_ENV] = "true"
    every = sweep_dir.experiments(manifest)
    last_of_task = {e.task: e for e in every}
    experiments = [e for e in every if only is None or e.extension == only]
    records: dict[str, list[TrialRecord]] = {}
    # One trainable per task: its data goes into the object store once, however many experiments.
    trainables = {task: _trainable(space, data[task]) for task in {e.task for e in experiments}}
    for experiment in experiments:
        trainable = trainables[experiment.task]
        if restore and tune.Tuner.can_restore(experiment.path):
            keep_errored(experiment, retry=retry_errored)
            tuner = tune.Tuner.restore(
                experiment.path, trainable=trainable, resume_unfinished=True,
                resume_errored=retry_errored, restart_errored=False,
            )
        else:
            tuner = _build_tuner(space, manifest, experiment, trainable, tracker)
        grid = tuner.fit()
        task_records = records.setdefault(experiment.task, [])
        task_records += [
            record_from_result(_trial_id(r), _trial_config(r), r.metrics, r.error is not None,
                               result_rows(r.filesystem, r.path) if r.path else (),
                               confirmation=is_confirmation(manifest, experiment.extension))
            for r in grid
        ]
        if only is None and last_of_task[experiment.task] == experiment:
            tracker.log_task_summary(experiment.task, task_records)
    return records


def _finish(sweep_dir: SweepDir, tracker: SweepTracker, records: dict[str, list[TrialRecord]]
            ) -> SweepOutcome:
    """The sweep's table on the parent run and the console, as ``isobn-tune report`` computes it
    from the trials' child runs; from Tune's results while MLflow is unreachable. The parent run
    ends."""
    every = [r for task_records in records.values() for r in task_records]
    results = finish_tracking(tracker, sweep_dir) or sweep_results(every)
    if results.rows or results.left_out:
        say(results.table_markdown())
    outcome = SweepOutcome(sweep_dir, every, tracker.parent_run_id)
    if outcome.errored:
        say(f"{len(outcome.errored)} trial(s) errored; retry them with "
            f"`isobn-tune resume {sweep_dir.arg} --retry-errored`")
    say(f"browse it: isobn-tune ui {sweep_dir.arg}")
    return outcome


def _trainable(space: SweepSpace, data: TaskData) -> Any:
    """The trainable with its data in the object store once, and its per-trial resources."""
    res = space.resources
    resources = {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(fine_tune_trial, data=data), resources)


def _build_tuner(space: SweepSpace, manifest: dict[str, Any], experiment: Experiment, trainable: Any,
                 tracker: SweepTracker) -> tune.Tuner:
    """A new Tune experiment: the sweep's own trials of a task, as its space file says, or an
    extension's, every trial run to the end (a stopping rule would compare them only with each
    other, a different population from the sweep's)."""
    task = experiment.task
    if experiment.extension is None:
        param_space, trials = build_param_space(space, task), trials_per_task(space)
        scheduler, searcher, samples = build_scheduler(space), build_searcher(space), num_samples(space)
        thin_at_end = space.scheduler.restores_other_trials
    else:
        points = extension_trials(manifest, experiment.extension, task)
        param_space, trials = extension_param_space(space, task, points), len(points)
        scheduler, searcher, samples, thin_at_end = FIFOScheduler(), None, 1, False
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            search_alg=searcher,
            num_samples=samples,
            max_concurrent_trials=space.resources.max_concurrent_trials,
            reuse_actors=True,  # a new trial skips the actor start and the torch/transformers import
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=task,
            storage_path=experiment.storage,
            # The most recent checkpoints, never "the best by score": a paused trial (group
            # schedulers, PBT) restarts from the checkpoint it was paused at while its next epoch
            # may already be saved, and a score order deletes any checkpoint but the newest that
            # is not among the best. The best epoch's metrics are in every later checkpoint.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=space.run.checkpoints_to_keep),
            failure_config=tune.FailureConfig(max_failures=space.run.max_failures),
            callbacks=[
                ErroredTrialRecorder(),
                tracker.callback(task, confirmation=is_confirmation(manifest, experiment.extension)),
                ProgressLine(task, total=trials, max_epochs=space.recipe.max_epochs),
                ThinFinishedTrials(at_end=thin_at_end),
                *result_file_callbacks(),
            ],
            verbose=0,
        ),
    )


def _trial_name(trial: Any) -> str:
    """Short trial directory names (the default spells out every config value)."""
    return trial.trial_id


def _trial_id(result: Any) -> str:
    return Path(result.path).name if result.path else str(uuid.uuid4())


def _trial_config(result: tune.Result) -> dict[str, Any]:
    """A trial's config: from its last result, else (a restored trial that never reported) from
    the ``params.json`` Tune wrote when the trial started."""
    if result.config is not None:
        return result.config
    with result.filesystem.open_input_stream(f"{result.path}/params.json") as f:
        return json.loads(f.read().decode())


@contextmanager
def ray_connection(address: str | None) -> Iterator[None]:
    """Ray for one sweep: the caller's when Ray is initialised already, else a connection made
    here and closed at the end, while the sweep's output is still captured (Ray prints the
    workers' last lines as it shuts down)."""
    if ray.is_initialized():
        yield
        return
    connect_ray(address)
    try:
        yield
    finally:
        ray.shutdown()


def check_fits_cluster(space: SweepSpace, address: str | None) -> None:
    """A trial asking for more CPUs or GPUs than the largest node has would wait for ever (Tune
    only warns, every few minutes): a one-line error on a local cluster, which is all there is; a
    cluster joined by address may still grow (its autoscaler), so there the console says so."""
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    res = space.resources
    for kind, need, key in (("CPU", res.cpus_per_trial, "cpus_per_trial"),
                            ("GPU", res.gpus_per_trial, "gpus_per_trial")):
        largest = max((node.get(kind, 0.0) for node in nodes), default=0.0)
        if need > largest:
            message = (f"resources.{key}: {need:g} {kind}s per trial, but the largest node of the Ray "
                       f"cluster has {largest:g}")
            if address in (None, "local"):
                raise UserError(message)
            say(f"warning: {message}; trials wait until a node that large joins")


def connect_ray(address: str | None) -> None:
    """Join the cluster at ``address`` (``auto``, ``host:port``, ``ray://...``), or start a local
    one (``local``: always a new one; unset: Ray's default, a cluster ``ray start`` left running,
    else a new one); an unreachable address is a one-line error."""
    if ray.is_initialized():
        return
    try:
        # A new local cluster: its dashboard, if Ray starts one, is reachable from this host only.
        ray.init(address=address, dashboard_host="127.0.0.1", logging_level="WARNING", log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError, RayError) as exc:
        raise UserError(f"cannot connect to Ray at {address!r}: {str(exc).strip().splitlines()[0]}") from exc


def main_exit_code(outcome: SweepOutcome) -> int:
    return 1 if outcome.errored else 0

