"""From a sweep to a model: ``isobn-tune export`` (a classifier directory, an MLflow model on the
parent run, the registry) and ``isobn-tune predict`` (GLUE submission files).

One module-scoped tiny sweep (the random-init encoder, RTE and STS-B, none vs isobn x 2 seeds, 3
epochs; Tune keeps each trial's 2 newest checkpoints), run in-process on the session's Ray, with
a real SQLite MLflow store, which also holds the model registry.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import cli, tiny_space, trial_runs, write_yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from isobn_tune import load_classifier
from isobn_tune.cli import main
from isobn_tune.data.glue import DataSource, load_split, subsample
from isobn_tune.data.tasks import get_task
from isobn_tune.serving.export import PARAMS_FILE, write_trial_classifier
from isobn_tune.serving.predict import PREDICT_LOG
from isobn_tune.sweep.directory import LOG_FILE
from isobn_tune.tracking.names import BEST_DEV_METRIC, TASK_TAG, TRIAL_TAG, best_group_tag, model_name
from isobn_tune.train.checkpoint_files import BEST_MODEL_FILE, CHECKPOINT_PREFIX, ISOTROPY_FILE
from isobn_tune.train.metrics import compute_metrics, selection_value

# A module sweep of 8 trials (about a minute): slow, to keep the default run within its budget.
pytestmark = pytest.mark.slow

MAX_DEV = 64
MAX_SEQ = 32
MAX_CONSOLE_LINES = 3  # what export and predict print: a summary, the rest in a log


@dataclass
class Sweep:
    root: Path
    sweep_dir: Path
    tracking_uri: str
    client: MlflowClient
    parent: Run
    children: list[Run]


@pytest.fixture(scope="module")
def sweep(ray_session, glue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    root = tmp_path_factory.mktemp("export")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    space = tiny_space(glue_dir, root / "results", tracking_uri=uri, tasks=["rte", "stsb"],
                       recipe={"max_epochs": 3})
    assert main(["run", str(write_yaml(root / "space.yaml", space)), "--name", "sweep"]) == 0
    client = MlflowClient(uri)
    manifest = json.loads((root / "results" / "sweep" / "sweep.json").read_text())
    parent = client.get_run(manifest["parent_run_id"])
    return Sweep(root, root / "results" / "sweep", uri, client, parent, trial_runs(client, parent))


def dev_rows(glue_dir: Path, task: str) -> dict[str, list]:
    """The dev examples the sweep's trials were scored on."""
    rows = subsample(load_split(get_task(task), "dev", DataSource(glue_dir)), MAX_DEV)
    return rows.to_dict()


def test_every_trials_exported_model_reproduces_its_logged_best_dev_metric_exactly(sweep, glue_dir, tmp_path):
    """Whichever epoch was best (its checkpoint may be deleted by now), the exported model scores
    the trial's dev set exactly as the trial did at that epoch."""
    for run in sweep.children:
        task, trial_id = run.data.tags[TASK_TAG], run.data.tags[TRIAL_TAG]
        to = tmp_path / trial_id
        write_trial_classifier(str(sweep.sweep_dir / task / trial_id), to, max_seq_length=MAX_SEQ, origin={})
        classifier = load_classifier(to)
        assert not classifier.model.training
        if run.data.params["cls_norm"] == "isobn":
            assert classifier.model.cls_norm.num_batches_tracked > 0  # the trained statistics
        rows = dev_rows(glue_dir, task)
        predictions = classifier.predict(rows["text_a"], rows.get("text_b"))
        score = selection_value(get_task(task), compute_metrics(get_task(task), predictions,
                                                                np.asarray(rows["label"])))
        assert score == run.data.metrics[BEST_DEV_METRIC], (task, trial_id)
    # Among them a trial whose best epoch's own checkpoint Tune has deleted (it keeps the 2 newest).
    assert any(run.data.metrics["best_epoch"] < run.data.metrics["epoch"] - 1 for run in sweep.children)


def test_finished_trials_keep_the_best_model_but_no_resume_state(sweep):
    """Every trial finished: of its two kept checkpoints, the newest holds the best model (what the
    exports above read) and its isotropy statistics, the older the statistics alone."""
    trials = sorted(path.parent for path in sweep.sweep_dir.glob(f"*/*/{PARAMS_FILE}"))
    assert len(trials) == len(sweep.children)
    for trial in trials:
        older, newest = sorted(trial.glob(f"{CHECKPOINT_PREFIX}*"))
        assert sorted(f.name for f in newest.iterdir()) == sorted([BEST_MODEL_FILE, ISOTROPY_FILE])
        assert [f.name for f in older.iterdir()] == [ISOTROPY_FILE]


def _export(sweep: Sweep, *args: str) -> None:
    before = os.environ.get("MLFLOW_TRACKING_URI")
    assert main(["export", str(sweep.sweep_dir), *args]) == 0
    assert os.environ.get("MLFLOW_TRACKING_URI") == before  # the sweep's store was used only for the export


def test_export_picks_the_best_seed_of_the_best_configuration_and_registers_it(sweep, glue_dir, tmp_path,
                                                                               capsys):
    to = tmp_path / "stsb-model"
    _export(sweep, "--task", "stsb", "--to", str(to), "--register", "isobn-stsb")
    best_group = sweep.client.get_run(sweep.parent.info.run_id).data.tags[best_group_tag("stsb")]
    seeds = [r for r in sweep.children
             if r.data.tags[TASK_TAG] == "stsb" and r.data.tags["isobn.config_group"] == best_group]
    best = max(seeds, key=lambda r: r.data.metrics[BEST_DEV_METRIC])
    origin = json.loads((to / "classifier.json").read_text())["origin"]
    assert origin["trial_id"] == best.data.tags[TRIAL_TAG]
    assert f"exported trial {origin['trial_id']}" in capsys.readouterr().out

    (version,) = sweep.client.search_model_versions("name='isobn-stsb'")
    assert (str(version.version), version.run_id) == ("1", sweep.parent.info.run_id)
    model = mlflow.pyfunc.load_model(sweep.client.get_model_version_download_uri("isobn-stsb", "1"))
    rows = dev_rows(glue_dir, "stsb")
    scores = model.predict(pd.DataFrame({"text_a": rows["text_a"], "text_b": rows["text_b"]}))
    expected = load_classifier(to).predict(rows["text_a"], rows["text_b"])
    assert np.array_equal(np.asarray(scores, dtype=np.float32), expected)


def test_export_logs_a_pyfunc_with_an_input_example_predicting_label_names(sweep, glue_dir, tmp_path):
    """`isobn-tune export` as a user runs it: at most three console lines (the libraries' progress
    bars and warnings in the sweep's log); the MLflow model on the parent run carries an input
    example beside its signature and predicts what the exported classifier predicts."""
    to = tmp_path / "rte-model"
    log = sweep.sweep_dir / LOG_FILE
    logged_before = log.stat().st_size
    done = cli("export", str(sweep.sweep_dir), "--task", "rte", "--to", str(to))
    assert done.returncode == 0, done.stdout + done.stderr
    console = (done.stdout + done.stderr).splitlines()
    assert len(console) <= MAX_CONSOLE_LINES, console
    assert console[-1].endswith(f"; full log {log}") and log.stat().st_size > logged_before
    after = sweep.client.get_run(sweep.parent.info.run_id).info
    assert (after.status, after.end_time) == (sweep.parent.info.status, sweep.parent.info.end_time)
    (logged,) = [m for m in sweep.client.search_logged_models([sweep.parent.info.experiment_id])
                 if m.name == model_name("rte")]
    assert logged.source_run_id == sweep.parent.info.run_id and logged.tags[TASK_TAG] == "rte"
    model = mlflow.pyfunc.load_model(logged.artifact_location)
    example = model.input_example
    assert list(example.columns) == ["text_a", "text_b"] and len(example) == 1
    assert model.metadata.get_input_schema().input_names() == ["text_a", "text_b"]
    rows = dev_rows(glue_dir, "rte")
    labels = model.predict(pd.DataFrame({"text_a": rows["text_a"], "text_b": rows["text_b"]}))
    classifier = load_classifier(to)
    assert list(labels) == classifier.readable(classifier.predict(rows["text_a"], rows["text_b"]))
    assert set(labels) <= {"entailment", "not_entailment"}


def test_predict_writes_a_glue_submission_from_test_and_dev_layouts(sweep, glue_dir, tmp_path):
    model = tmp_path / "rte-model"
    trial = next(r for r in sweep.children if r.data.tags[TASK_TAG] == "rte").data.tags[TRIAL_TAG]
    write_trial_classifier(str(sweep.sweep_dir / "rte" / trial), model, max_seq_length=MAX_SEQ, origin={})
    dev = glue_dir / "RTE" / "dev.tsv"
    with dev.open(newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:21]
    test = tmp_path / "test.tsv"  # GLUE's RTE test layout: no label column
    test.write_text("index\tsentence1\tsentence2\n" + "".join(f"{r[0]}\t{r[1]}\t{r[2]}\n" for r in rows))
    submissions = {}
    for source in (test, dev):
        out = tmp_path / f"{source.stem}-predictions.tsv"
        assert main(["predict", str(model), "--input", str(source), "--out", str(out)]) == 0
        with out.open(newline="") as f:
            submissions[source] = list(csv.reader(f, delimiter="\t"))
    for submission, count in ((submissions[test], 20), (submissions[dev], 277)):
        assert submission[0] == ["index", "prediction"] and len(submission) == count + 1
        assert {p for _, p in submission[1:]} <= {"entailment", "not_entailment"}
    assert [i for i, _ in submissions[test][1:]] == [r[0] for r in rows]
    assert submissions[test][1:] == submissions[dev][1:21]  # the same sentences, the same labels
    assert main(["predict", str(model), "--input", str(tmp_path / "none.tsv"), "--out", str(out)]) == 2


def test_predict_writes_stsb_scores_as_floats(sweep, glue_dir, tmp_path):
    model = tmp_path / "stsb-model"
    trial = next(r for r in sweep.children if r.data.tags[TASK_TAG] == "stsb").data.tags[TRIAL_TAG]
    write_trial_classifier(str(sweep.sweep_dir / "stsb" / trial), model, max_seq_length=MAX_SEQ, origin={})
    out = tmp_path / "STS-B.tsv"
    dev = glue_dir / "STS-B" / "dev.tsv"
    done = cli("predict", str(model), "--input", str(dev), "--out", str(out))  # as a user runs it
    assert done.returncode == 0, done.stdout + done.stderr
    console = (done.stdout + done.stderr).splitlines()
    assert len(console) <= MAX_CONSOLE_LINES and console[-1].endswith(f"full log {tmp_path / PREDICT_LOG}")
    assert (tmp_path / PREDICT_LOG).is_file()
    lines = out.read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 1501
    assert all(np.isfinite(float(line.split("\t")[1])) for line in lines[1:])


@pytest.mark.parametrize(("args", "message"), [
    (["export", "{root}", "--task", "rte", "--to", "{tmp}/m"], "is not a sweep directory"),
    (["export", "{sweep}", "--task", "mnli", "--to", "{tmp}/m"], "has no task mnli; its tasks: rte, stsb"),
    (["export", "{sweep}", "--task", "nope", "--to", "{tmp}/m"], "unknown task 'nope'"),
    (["export", "{sweep}", "--task", "rte", "--trial", "x_1", "--to", "{tmp}/m"], "no trial 'x_1' in rte"),
    (["export", "{sweep}", "--task", "rte", "--to", "{root}"], "exists and is not an empty directory"),
    (["predict", "{root}", "--input", "{tmp}/t.tsv", "--out", "{tmp}/o"], "is not a classifier directory"),
])
def test_bad_export_and_predict_input_is_a_one_line_error(sweep, tmp_path, capsys, args, message):
    values = {"root": sweep.root, "sweep": sweep.sweep_dir, "tmp": tmp_path}
    assert main([a.format(**values) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
