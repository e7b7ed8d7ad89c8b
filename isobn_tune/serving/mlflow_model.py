"""A classifier directory as an MLflow model on a sweep's parent run: the pyfunc of
:mod:`isobn_tune.serving.pyfunc_model` (logged as code, not as a pickle) with the directory as its
artifact; optionally registered in MLflow's model registry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from isobn_tune.data.glue import text_columns
from isobn_tune.data.tasks import get_task
from isobn_tune.serving.classifier_io import read_config
from isobn_tune.sweep.directory import URI_ENV
from isobn_tune.tracking.names import CLASSIFIER_ARTIFACT, TASK_TAG, TRIAL_TAG, model_name

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")  # MLflow's "model from code"
# The input example MLflow stores beside the signature (its model page and serving show it): one
# row, the first sentence alone for single-sentence tasks.
EXAMPLE_SENTENCES = ("A man is playing a guitar.", "Someone is playing an instrument.")


def log_classifier(
    tracking_uri: str, parent_run_id: str, directory: Path, *, trial_id: str, register: str | None = None
) -> ModelInfo:
    """Log the classifier in ``directory`` as an MLflow model of the parent run (tagged with its
    task and trial), registered as a new version of ``register`` when given."""
    task = get_task(read_config(directory)["task"])
    outputs = ColSpec("double" if task.is_regression else "string")
    columns = text_columns(task)
    signature = ModelSignature(Schema([ColSpec("string", c) for c in columns]), Schema([outputs]))
    example = pd.DataFrame({c: [sentence] for c, sentence in zip(columns, EXAMPLE_SENTENCES, strict=False)})
    parent = MlflowClient(tracking_uri).get_run(parent_run_id).info
    with _fluent_store(tracking_uri):
        mlflow.start_run(run_id=parent_run_id)  # the model goes to the parent run and its experiment
        try:
            return mlflow.pyfunc.log_model(
                name=model_name(task.name), python_model=PYFUNC_CODE,
                artifacts={CLASSIFIER_ARTIFACT: str(directory)}, signature=signature,
                input_example=example, pip_requirements=[f"isobn-tune=={version('isobn-tune')}"],
                tags={TASK_TAG: task.name, TRIAL_TAG: trial_id}, registered_model_name=register,
            )
        finally:
            mlflow.end_run()
            # The sweep's run keeps its status and end time.
            MlflowClient(tracking_uri).set_terminated(parent_run_id, parent.status, parent.end_time)


@contextmanager
def _fluent_store(tracking_uri: str) -> Iterator[None]:
    """MLflow's fluent API (start_run, log_model and its registration take no tracking URI) on
    ``tracking_uri`` for the block; the process's ``$MLFLOW_TRACKING_URI`` as it was afterwards."""
    before = os.environ.get(URI_ENV)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)  # unset, and with it the variable MLflow set
        if before is not None:
            os.environ[URI_ENV] = before
