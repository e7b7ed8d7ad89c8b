"""A fine-tuned classifier as a directory that loads in one call, written by ``isobn-tune export``
and ``isobn-tune train --output-dir``, read by :func:`load_classifier`, ``isobn-tune predict`` and
the MLflow model::

    encoder/           the encoder and its tokenizer, in transformers' save_pretrained layout
    head.safetensors   the [CLS] normaliser (IsoBN's running statistics) and the linear head
    classifier.json    task, labels, max_seq_length and the trial's config (recipe and grid point)

Predictions go through the training code's own tokenisation, batching and evaluation, so a
loaded classifier scores a dev split exactly as its trial did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from isobn_tune.data.tasks import TaskSpec, get_task
from isobn_tune.errors import UserError
from isobn_tune.train.recipe import TrialConfig

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from isobn_tune.train.model import ClsNormClassifier

ENCODER_DIR = "encoder"
HEAD_FILE = "head.safetensors"
CONFIG_FILE = "classifier.json"
FORMAT = 1
HEAD_MODULES = ("cls_norm", "classifier")  # the ClsNormClassifier submodules head.safetensors holds
BATCHES_PER_STEP = 16  # eval batches tokenised and predicted at a time (the progress bar's step)


@dataclass(frozen=True)
class Classifier:
    """A fine-tuned model in eval mode, its tokenizer and what it predicts."""

    model: ClsNormClassifier
    tokenizer: PreTrainedTokenizerBase
    trial: TrialConfig
    max_seq_length: int

    @property
    def task(self) -> TaskSpec:
        return get_task(self.trial.task)

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Class names in class-id order, as GLUE spells them; None for a score (STS-B)."""
        from isobn_tune.data.glue import label_names

        return label_names(self.task)

    def predict(
        self, text_a: Sequence[str], text_b: Sequence[str] | None = None, *, progress: bool = False
    ) -> np.ndarray:
        """Class ids (scores for STS-B) of sentences or sentence pairs, in batches of the
        recipe's ``eval_batch_size`` as its dev evaluation ran; ``progress``: a bar on the
        terminal (none in a pipe or file)."""
        from tqdm.auto import tqdm

        from isobn_tune.console import terminal
        from isobn_tune.data.tokenization import encode_split
        from isobn_tune.train.loop import evaluate

        texts = [list(text_a)] if text_b is None else [list(text_a), list(text_b)]
        if len(texts) != len(self.task.text_columns):
            kind = "sentence pairs" if self.task.is_pair else "single sentences"
            raise UserError(f"{self.task.name} takes {kind}")
        if len(texts) == 2 and len(texts[0]) != len(texts[1]):
            raise UserError(f"{len(texts[0])} first sentences for {len(texts[1])} second sentences")
        device = next(self.model.parameters()).device
        step = self.trial.eval_batch_size * BATCHES_PER_STEP
        predictions = [np.empty(0, np.float32 if self.task.is_regression else np.int64)]
        with tqdm(total=len(texts[0]), unit="ex", file=terminal(), disable=None if progress else True) as bar:
            for start in range(0, len(texts[0]), step):
                chunk = [t[start:start + step] for t in texts]
                split = encode_split(self.tokenizer, chunk, self.max_seq_length)
                predictions.append(evaluate(self.model, split, self.trial, device)[0])
                bar.update(len(split))
        return np.concatenate(predictions)

    def readable(self, predictions: np.ndarray) -> list[str] | list[float]:
        """Predictions as GLUE's submissions write them: label names, or floats for a score."""
        labels = self.labels
        if labels is None:
            return [float(p) for p in predictions]
        return [labels[int(p)] for p in predictions]


def check_output_dir(path: Path) -> None:
    """Refuse a directory that holds files, before any work is done: nothing is overwritten."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path} exists and is not an empty directory; choose a new one")


def save_classifier(
    directory: Path, state: dict[str, torch.Tensor], tokenizer: PreTrainedTokenizerBase, trial: TrialConfig,
    max_seq_length: int, *, origin: dict[str, Any] | None = None,
) -> None:
    """Write the model of ``trial`` with weights ``state`` (its best epoch's state dict) in the
    layout above; ``origin`` (sweep, trial, dev metric) goes into the config as is."""
    from safetensors.torch import save_file

    from isobn_tune.train.model import build_model

    check_output_dir(directory)
    # The architecture from the model's config, without reading pretrained weights: ``state`` has them all.
    model = build_model(trial.model_copy(update={"random_init": True}), get_task(trial.task).num_labels)
    model.load_state_dict(state)
    model.encoder.save_pretrained(directory / ENCODER_DIR)
    tokenizer.save_pretrained(directory / ENCODER_DIR)
    head = {f"{name}.{key}": value.contiguous() for name in HEAD_MODULES
            for key, value in getattr(model, name).state_dict().items()}
    save_file(head, directory / HEAD_FILE)
    config = {"format": FORMAT, "task": trial.task, "labels": _labels(trial),
              "max_seq_length": max_seq_length, "trial": trial.to_dict(), "origin": origin or {}}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def load_classifier(directory: str | Path, device: torch.device | str | None = None) -> Classifier:
    """The classifier saved in ``directory``, in eval mode on ``device`` (default: the GPU if
    there is one), with its normaliser's statistics and its tokenizer."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from isobn_tune.train.loop import default_device
    from isobn_tune.train.model import build_model

    path = Path(directory)
    config = read_config(path)
    trial = TrialConfig.from_dict(config["trial"])
    model = build_model(trial, get_task(trial.task).num_labels,
                        encoder=AutoModel.from_pretrained(path / ENCODER_DIR))
    head = load_file(path / HEAD_FILE)
    for name in HEAD_MODULES:
        prefix = name + "."
        getattr(model, name).load_state_dict({k.removeprefix(prefix): v for k, v in head.items()
                                              if k.startswith(prefix)})
    model.to(device or default_device()).eval()
    tokenizer = AutoTokenizer.from_pretrained(path / ENCODER_DIR)
    return Classifier(model, tokenizer, trial, config["max_seq_length"])


def read_config(path: Path) -> dict[str, Any]:
    """A classifier directory's ``classifier.json``, checked: a cheap read before a model loads."""
    config_file = path / CONFIG_FILE
    if not config_file.is_file():
        raise UserError(f"{path} is not a classifier directory (no {CONFIG_FILE}); "
                        "make one with `isobn-tune export` or `isobn-tune train --output-dir`")
    config = json.loads(config_file.read_text())
    if config.get("format") != FORMAT:
        raise UserError(f"{config_file}: unsupported classifier format {config.get('format')!r}")
    return config


def _labels(trial: TrialConfig) -> list[str] | None:
    from isobn_tune.data.glue import label_names

    labels = label_names(get_task(trial.task))
    return list(labels) if labels is not None else None
