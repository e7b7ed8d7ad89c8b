"""isobn-tune: Ray Tune sweeps fine-tuning BERT-family models with IsoBN, tracked in MLflow.

Data flow: space file (:mod:`.space`) -> validated trial configs (:mod:`.recipe`, :mod:`.search`)
-> Tune trainable (:mod:`.trainable` around :mod:`.training`) -> metrics and checkpoints ->
MLflow (:mod:`.tracking`, :mod:`.aggregate`).
"""

from isobn_tune.cls_norm import IsoBN, build_cls_norm
from isobn_tune.errors import UserError
from isobn_tune.recipe import TrialConfig
from isobn_tune.tasks import TASKS, get_task

__all__ = ["IsoBN", "TASKS", "TrialConfig", "UserError", "build_cls_norm", "get_task"]
