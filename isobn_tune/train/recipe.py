"""One trial's settings, defined once: fields, defaults, bounds and help text.

:class:`Recipe` is the fixed fine-tuning recipe (a space file's ``recipe`` section), the grid
point fields are what a sweep varies (a space file's ``grid`` axes, with the hyperparameters of
every normaliser in :mod:`isobn_tune.train.cls_norm`), and :class:`TrialConfig` is everything one
fine-tuning run needs besides its data. The space-file schema, ``isobn-tune train``'s flags and
the Tune param space are all derived from these models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError, create_model

from isobn_tune.data import BATCHINGS
from isobn_tune.errors import UserError
from isobn_tune.strict import StrictModel
from isobn_tune.train.cls_norm import CLS_NORMS, PARAM_FIELDS, params_of

POOLINGS = ("pooler", "cls")
PRECISIONS = ("fp32", "bf16")
LENGTH_CHUNKS = ("auto", "off")
GRID_POINT_KEY = "grid_point"
"""The Tune config key holding a grid trial's varying values (see ``search.build_param_space``)."""


class Recipe(StrictModel):
    """The fixed fine-tuning recipe. Defaults follow the IsoBN paper and its released code: AdamW
    (eps 1e-6, no weight decay), linear warm-up over the first 6% of steps then linear decay to 0,
    10 epochs, the best dev epoch counts."""

    max_epochs: int = Field(default=10, ge=1, le=1000, description="Epochs of training.")
    warmup_ratio: float = Field(
        default=0.06, ge=0, lt=1, description="Fraction of steps of linear warm-up, then linear decay to 0."
    )
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="AdamW weight decay, in [0, 1].")
    adam_eps: float = Field(default=1e-6, gt=0, le=1, description="AdamW eps, in (0, 1].")
    max_grad_norm: float = Field(default=1.0, gt=0, le=1e6, description="Gradient clipping norm.")
    patience: int | None = Field(
        default=None, ge=1, le=1000,
        description="Stop after this many epochs without a better dev objective (null: never).",
    )
    eval_batch_size: int = Field(default=64, ge=1, le=65536, description="Dev batch size.")
    precision: Literal[PRECISIONS] = Field(default="fp32", description="fp32, or bf16 autocast.")
    batching: Literal[BATCHINGS] = Field(
        default="random",
        description="random: shuffled batches (the paper); length_grouped: batches of similar length "
        "from shuffled mega-batches, less padding.",
    )
    length_chunks: Literal[LENGTH_CHUNKS] = Field(
        default="auto",
        description="auto: on a CPU the encoder runs each training batch in length-sorted chunks, each "
        "padded to its own longest, where that saves padding; the normaliser, head and loss still see "
        "the whole batch (same batches, same loss); off: one padded batch.",
    )


class _GridPointBase(StrictModel):
    cls_norm: Literal[CLS_NORMS] = Field(
        default="isobn", description=f"[CLS] normaliser: {', '.join(CLS_NORMS)}."
    )
    lr: float = Field(default=2e-5, gt=0, le=1, description="Peak learning rate, in (0, 1].")
    batch_size: int = Field(
        default=32, ge=2, le=65536,
        description="Training batch size, in [2, 65536] (batch statistics need 2).",
    )
    seed: int = Field(
        default=0, ge=0, lt=2**32, description="Seed of the head's initialisation and the data order."
    )


GridPoint: type[StrictModel] = create_model(
    "GridPoint",
    __base__=_GridPointBase,
    __doc__="The values a sweep varies: normaliser, learning rate, batch size, seed, and every "
    "normaliser's hyperparameters (used only by their own normaliser).",
    **{name: (info.annotation, info) for name, (_, info) in PARAM_FIELDS.items()},
)
GRID_FIELDS: tuple[str, ...] = tuple(GridPoint.model_fields)


class _ModelFields(StrictModel):
    task: str = Field(description="GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte.")
    model: str = Field(
        description="Hub name, local model directory, or 'minilm' for the offline MiniLM-L6."
    )
    pooling: Literal[POOLINGS] = Field(
        default="pooler",
        description="'pooler': the encoder's pooler output (dense+tanh over [CLS], as in the paper); "
        "'cls': the raw [CLS] hidden state.",
    )
    random_init: bool = Field(default=False, description="Random weights from the model's config.")
    model_overrides: dict[str, Any] = Field(
        default_factory=dict, description="Model config overrides (e.g. tiny sizes for a smoke test)."
    )


class TrialConfig(Recipe, GridPoint, _ModelFields):  # type: ignore[misc,valid-type]
    """Everything one fine-tuning run needs besides its data."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrialConfig:
        """Build from a Tune config: keys Tune adds itself (``__...``) are ignored and a grid
        trial's :data:`GRID_POINT_KEY` mapping is flattened; every problem in one ``UserError``."""
        flat = {k: v for k, v in values.items() if k != GRID_POINT_KEY and not k.startswith("__")}
        flat |= values.get(GRID_POINT_KEY, {})
        try:
            return cls.model_validate(flat)
        except ValidationError as exc:
            raise UserError("invalid trial config: " + "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']} (got {e['input']!r})"
                for e in exc.errors()
            )) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def patience_exhausted(self, epoch: int, best_epoch: int) -> bool:
        """Whether ``patience`` epochs have passed since the best one: the trial is done."""
        return self.patience is not None and epoch - best_epoch >= self.patience

    def norm_params(self) -> dict[str, Any]:
        """The hyperparameters of this trial's normaliser."""
        return {k: getattr(self, k) for k in params_of(self.cls_norm)}
