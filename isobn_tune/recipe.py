"""One trial's hyperparameters and fixed recipe, validated before anything heavy runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from isobn_tune.errors import UserError

CLS_NORMS = ("isobn", "batchnorm", "layernorm", "none")
POOLINGS = ("pooler", "cls")
PRECISIONS = ("fp32", "bf16")
NORM_KEYS = ("cls_norm", "beta", "alpha", "eps")


@dataclass(frozen=True)
class TrialConfig:
    """Everything one fine-tuning run needs besides its data.

    Defaults follow the IsoBN paper and its released code: AdamW (eps 1e-6, no weight decay),
    linear warm-up over the first 6% of steps then linear decay to 0, 10 epochs, IsoBN with
    alpha 0.95, eps 0.1, beta 0.5 on the pooler output.
    """

    task: str
    model: str
    cls_norm: Literal["isobn", "batchnorm", "layernorm", "none"] = "isobn"
    pooling: Literal["pooler", "cls"] = "pooler"
    beta: float = 0.5
    alpha: float = 0.95
    eps: float = 0.1
    lr: float = 2e-5
    batch_size: int = 32
    seed: int = 0
    max_epochs: int = 10
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    adam_eps: float = 1e-6
    max_grad_norm: float = 1.0
    patience: int | None = None
    eval_batch_size: int = 64
    precision: Literal["fp32", "bf16"] = "fp32"
    random_init: bool = False
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = validation_problems(self)
        if problems:
            raise UserError("invalid trial config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        """Build from a Tune config dict; keys Tune adds itself (``__...``) are ignored and a
        nested ``norm`` dict (the coupled grid axis of :mod:`isobn_tune.search`) is flattened."""
        values = {**values, **values.get("norm", {})}
        values.pop("norm", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in values if k not in known and not k.startswith("__"))
        if unknown:
            raise UserError(
                f"unknown trial config key(s) {unknown}; allowed keys: {sorted(known)}"
            )
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def validation_problems(cfg: TrialConfig) -> list[str]:
    """Every problem with a config, each naming the key, its value and what is allowed."""
    problems = []
    if cfg.cls_norm not in CLS_NORMS:
        problems.append(f"cls_norm={cfg.cls_norm!r} is not one of {list(CLS_NORMS)}")
    if cfg.pooling not in POOLINGS:
        problems.append(f"pooling={cfg.pooling!r} is not one of {list(POOLINGS)}")
    if cfg.precision not in PRECISIONS:
        problems.append(f"precision={cfg.precision!r} is not one of {list(PRECISIONS)}")
    if not cfg.beta >= 0:
        problems.append(f"beta={cfg.beta} must be >= 0")
    if not 0 < cfg.alpha < 1:
        problems.append(f"alpha={cfg.alpha} must be in (0, 1)")
    if not cfg.eps > 0:
        problems.append(f"eps={cfg.eps} must be > 0")
    if not cfg.lr > 0:
        problems.append(f"lr={cfg.lr} must be > 0")
    if cfg.batch_size < 2:
        problems.append(f"batch_size={cfg.batch_size} must be >= 2 (batch statistics)")
    if cfg.max_epochs < 1:
        problems.append(f"max_epochs={cfg.max_epochs} must be >= 1")
    if not 0 <= cfg.warmup_ratio < 1:
        problems.append(f"warmup_ratio={cfg.warmup_ratio} must be in [0, 1)")
    if cfg.weight_decay < 0:
        problems.append(f"weight_decay={cfg.weight_decay} must be >= 0")
    if cfg.patience is not None and cfg.patience < 1:
        problems.append(f"patience={cfg.patience} must be >= 1 or null")
    return problems
