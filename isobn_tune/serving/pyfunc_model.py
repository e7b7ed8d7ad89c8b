"""The MLflow model's code, logged as MLflow's "model from code" (no pickle): a pyfunc whose
predict takes sentences or sentence pairs (a DataFrame with ``text_a[, text_b]``) and returns labels
as GLUE spells them, or scores for STS-B, from the classifier directory in its artifacts."""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel, PythonModelContext

from isobn_tune.data.glue import text_columns
from isobn_tune.errors import UserError
from isobn_tune.serving.classifier_io import Classifier, load_classifier
from isobn_tune.tracking.names import CLASSIFIER_ARTIFACT


class ClassifierModel(PythonModel):
    """The pyfunc around :class:`~isobn_tune.serving.classifier_io.Classifier`."""

    classifier: Classifier

    def load_context(self, context: PythonModelContext) -> None:
        self.classifier = load_classifier(context.artifacts[CLASSIFIER_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list:
        frame = pd.DataFrame(model_input)
        columns = text_columns(self.classifier.task)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise UserError(f"{self.classifier.task.name} needs columns {list(columns)}; missing {missing}")
        predictions = self.classifier.predict(*(frame[c].astype(str).tolist() for c in columns))
        return self.classifier.readable(predictions)


set_model(ClassifierModel())
