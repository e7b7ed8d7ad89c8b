"""isobn-tune: Ray Tune sweeps fine-tuning BERT-family models with IsoBN, tracked in MLflow.

Data flow: space file (:mod:`.space`: schema, loading, expansion) -> validated trial configs
(:mod:`.recipe`, normalisers in :mod:`.cls_norm`) -> Tune's param space, scheduler and searcher
(:mod:`.search`) -> Tune trainable (:mod:`.trainable` around :mod:`.training`) -> metrics and
checkpoints -> MLflow (:mod:`.tracking`, names in :mod:`.mlflow_names`, reads in
:mod:`.mlflow_runs`, seed statistics in :mod:`.aggregate`) -> a trial's best-epoch model as a
directory (:mod:`.export`, :mod:`.classifier_io`'s ``load_classifier``, :mod:`.predict`) and an
MLflow model (:mod:`.mlflow_model`).
"""

from typing import Any

from isobn_tune.data.tasks import TASKS, get_task
from isobn_tune.errors import UserError
from isobn_tune.train.cls_norm import build_cls_norm
from isobn_tune.train.recipe import TrialConfig

__all__ = ["IsoBN", "TASKS", "TrialConfig", "UserError", "build_cls_norm", "get_task", "load_classifier"]


def __getattr__(name: str) -> Any:
    """``IsoBN`` and ``load_classifier`` on first use: they import torch, which the CLI's input
    checks (``isobn-tune run`` with a bad file fails in about a second) do not need."""
    if name == "IsoBN":
        from isobn_tune.train.isobn import IsoBN

        return IsoBN
    if name == "load_classifier":
        from isobn_tune.serving.classifier_io import load_classifier

        return load_classifier
    raise AttributeError(f"module 'isobn_tune' has no attribute {name!r}")
