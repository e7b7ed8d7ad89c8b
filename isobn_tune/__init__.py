"""isobn-tune: Ray Tune sweeps fine-tuning BERT-family models with IsoBN, tracked in MLflow.

Data flow: space file (:mod:`.space`) -> validated trial configs (:mod:`.recipe`, :mod:`.search`)
-> Tune trainable (:mod:`.trainable` around :mod:`.training`) -> metrics and checkpoints ->
MLflow (:mod:`.tracking`, :mod:`.aggregate`).
"""

from typing import Any

from isobn_tune.errors import UserError
from isobn_tune.recipe import TrialConfig
from isobn_tune.tasks import TASKS, get_task

__all__ = ["IsoBN", "TASKS", "TrialConfig", "UserError", "build_cls_norm", "get_task"]


def __getattr__(name: str) -> Any:
    """``IsoBN`` and ``build_cls_norm`` on first use: they import torch, which the CLI's input
    checks (``isobn-tune run`` with a bad file fails in about a second) do not need."""
    if name in ("IsoBN", "build_cls_norm"):
        from isobn_tune import cls_norm

        return getattr(cls_norm, name)
    raise AttributeError(f"module 'isobn_tune' has no attribute {name!r}")
