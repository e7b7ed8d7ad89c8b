"""A Hugging Face encoder with a [CLS] normaliser and a classification/regression head."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from torch import nn

from isobn_tune.errors import UserError
from isobn_tune.train.cls_norm import build_cls_norm
from isobn_tune.train.model_source import resolve_model_name
from isobn_tune.train.recipe import TrialConfig

if TYPE_CHECKING:  # transformers' model classes load in seconds: only the loaders below need them
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

def load_tokenizer(model: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a hub model or local directory, with a clear error when unreachable."""
    from transformers import AutoTokenizer

    name = resolve_model_name(model)
    try:
        return AutoTokenizer.from_pretrained(name)
    except OSError as exc:
        raise UserError(
            f"cannot load tokenizer {model!r}: {_first_line(exc)} "
            "(offline? pass a local model directory or 'minilm')"
        ) from exc


def load_encoder(cfg: TrialConfig) -> PreTrainedModel:
    """Pretrained weights, or random weights from the model's config plus ``model_overrides``."""
    from transformers import AutoConfig, AutoModel

    name = resolve_model_name(cfg.model)
    try:
        if cfg.random_init:
            config = AutoConfig.from_pretrained(name, **cfg.model_overrides)
            return AutoModel.from_config(config)
        return AutoModel.from_pretrained(name, **cfg.model_overrides)
    except OSError as exc:
        raise UserError(
            f"cannot load model {cfg.model!r}: {_first_line(exc)} "
            "(offline? pass a local model directory or 'minilm')"
        ) from exc


class ClsNormClassifier(nn.Module):
    """encoder -> pooled [CLS] -> cls_norm -> dropout -> linear head.

    ``pooling="pooler"`` uses the encoder's pooler output (dense + tanh over [CLS]), where the
    released IsoBN code applies IsoBN; encoders without a pooler fall back to ``"cls"``, the
    last layer's [CLS] hidden state.
    """

    def __init__(
        self, encoder: PreTrainedModel, num_labels: int, cls_norm: nn.Module, *, pooling: str = "pooler"
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        if pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            log.warning("%s has no pooler; using the last layer's [CLS] state", type(encoder).__name__)
            self.pooling = "cls"
        hidden = encoder.config.hidden_size
        self.cls_norm = cls_norm
        self.dropout = nn.Dropout(getattr(encoder.config, "hidden_dropout_prob", 0.1))
        self.classifier = nn.Linear(hidden, num_labels)
        self.num_labels = num_labels

    def pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The [CLS] representation the normaliser sees (the paper's isotropy analysis uses it)."""
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        out = self.encoder(**inputs)
        if self.pooling == "pooler":
            return out.pooler_output
        return out.last_hidden_state[:, 0]

    def forward(self, *chunks: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the pooled embeddings (before normalisation) of one batch, given whole or as
        chunks (see ``batches.length_chunks``): the encoder runs chunk by chunk, each padded to
        its own longest, while the normaliser's batch statistics and the head see the whole batch."""
        pooled = torch.cat([self.pooled(chunk) for chunk in chunks])
        logits = self.classifier(self.dropout(self.cls_norm(pooled)))
        return logits, pooled

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.num_labels == 1:
            return nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float())
        return nn.functional.cross_entropy(logits.float(), labels)


def build_model(
    cfg: TrialConfig, num_labels: int, encoder: PreTrainedModel | None = None
) -> ClsNormClassifier:
    """The classifier for one trial; pass ``encoder`` to reuse one built elsewhere."""
    encoder = encoder if encoder is not None else load_encoder(cfg)
    norm = build_cls_norm(cfg.cls_norm, encoder.config.hidden_size, **cfg.norm_params())
    return ClsNormClassifier(encoder, num_labels, norm, pooling=cfg.pooling)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
