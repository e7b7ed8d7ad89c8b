"""``isobn-tune predict``: a classifier directory's predictions for a task's TSV file (GLUE's test
layout, or a train or dev file), written as a GLUE submission file: ``index<TAB>prediction``, with
label names for classification and scores for STS-B."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from isobn_tune.console import captured_output
from isobn_tune.data.glue import read_examples
from isobn_tune.data.tasks import get_task
from isobn_tune.errors import UserError
from isobn_tune.serving.classifier_io import load_classifier, read_config

SUBMISSION_HEADER = "index\tprediction"
PREDICT_LOG = "predict.log"


@dataclass(frozen=True)
class Predicted:
    count: int
    log: Path


def predict_file(directory: Path, input_file: Path, out: Path) -> Predicted:
    """Predict every example of ``input_file`` into ``out``: a progress bar on a terminal, what
    the libraries print in ``PREDICT_LOG`` beside ``out``. Inputs are checked before the model
    loads."""
    task = get_task(read_config(directory)["task"])
    examples = read_examples(task, input_file)
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: directory {out.parent} does not exist")
    with captured_output(out.parent / PREDICT_LOG) as log:
        classifier = load_classifier(directory)
        predictions = classifier.readable(classifier.predict(*examples.texts, progress=True))
        write_submission(out, examples.ids, predictions)
    return Predicted(len(predictions), log)


def write_submission(path: Path, ids: Sequence[str], predictions: Sequence[str] | Sequence[float]) -> None:
    """GLUE's submission format; scores with 3 decimals, as GLUE's reference scripts write them."""
    with path.open("w", encoding="utf-8") as f:
        f.write(SUBMISSION_HEADER + "\n")
        for index, prediction in zip(ids, predictions, strict=True):
            f.write(f"{index}\t{prediction if isinstance(prediction, str) else f'{prediction:.3f}'}\n")
