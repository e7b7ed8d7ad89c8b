"""The [CLS] normalisers, by name: each with its hyperparameters (defaults, bounds, help) and builder.

This registry is the one place a normaliser is defined. The space file's ``grid`` axes, the trial
config, ``isobn-tune train``'s flags, configuration-group labels and the model all take their
choices from :data:`NORMALISERS`. Adding one means an entry here (and a test); its hyperparameter
names must not clash with another normaliser's, since they share the trial config's namespace.

No torch at import: the builders import it, so validating a space file or reading a sweep's
results from MLflow stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo

from isobn_tune.strict import StrictModel
from isobn_tune.train.isobn_params import IsoBNParams

if TYPE_CHECKING:
    from torch import nn


class NoParams(StrictModel):
    """A normaliser without hyperparameters."""


@dataclass(frozen=True)
class Normaliser:
    """One registry entry: what it is, its hyperparameters and how to build it for ``hidden_size``."""

    description: str
    params: type[StrictModel]
    build: Callable[[int, Any], nn.Module]


def _isobn(hidden_size: int, params: IsoBNParams) -> nn.Module:
    from isobn_tune.train.isobn import IsoBN

    return IsoBN(hidden_size, **params.model_dump())


def _batchnorm(hidden_size: int, params: NoParams) -> nn.Module:
    from torch import nn

    return nn.BatchNorm1d(hidden_size, affine=False)


def _layernorm(hidden_size: int, params: NoParams) -> nn.Module:
    from torch import nn

    return nn.LayerNorm(hidden_size, elementwise_affine=False)


def _identity(hidden_size: int, params: NoParams) -> nn.Module:
    from torch import nn

    return nn.Identity()


NORMALISERS: Mapping[str, Normaliser] = {
    "isobn": Normaliser("isotropic batch normalisation (the paper)", IsoBNParams, _isobn),
    # Without affine parameters, as in the group's "Improving BERT Fine-tuning with Embedding Normalization".
    "batchnorm": Normaliser("BatchNorm1d without affine", NoParams, _batchnorm),
    "layernorm": Normaliser("LayerNorm without affine", NoParams, _layernorm),
    "none": Normaliser("no normalisation (the baseline)", NoParams, _identity),
}
CLS_NORMS: tuple[str, ...] = tuple(NORMALISERS)


def _param_fields() -> dict[str, tuple[str, FieldInfo]]:
    fields: dict[str, tuple[str, FieldInfo]] = {}
    for name, normaliser in NORMALISERS.items():
        for key, info in normaliser.params.model_fields.items():
            if key in fields:
                raise TypeError(f"normalisers {fields[key][0]!r} and {name!r} both define {key!r}")
            fields[key] = (name, info)
    return fields


PARAM_FIELDS: Mapping[str, tuple[str, FieldInfo]] = _param_fields()
"""Every normaliser hyperparameter: name -> (its normaliser, its pydantic field)."""


def params_of(name: str) -> tuple[str, ...]:
    """The hyperparameter names of normaliser ``name``."""
    return tuple(NORMALISERS[name].params.model_fields)


def build_cls_norm(name: str, hidden_size: int, **params: Any) -> nn.Module:
    """The normaliser ``name`` for vectors of ``hidden_size``.

    ``params`` may hold any normaliser's hyperparameters (callers pass one trial config); those of
    ``name`` are validated and used, the others ignored.
    """
    if name not in NORMALISERS:
        raise ValueError(f"unknown cls_norm {name!r}; allowed: {list(CLS_NORMS)}")
    unknown = sorted(set(params) - set(PARAM_FIELDS))
    if unknown:
        raise TypeError(
            f"build_cls_norm got unknown hyperparameter(s) {unknown}; known: {list(PARAM_FIELDS)}"
        )
    normaliser = NORMALISERS[name]
    own = normaliser.params.model_validate({k: params[k] for k in params_of(name) if k in params})
    return normaliser.build(hidden_size, own)
