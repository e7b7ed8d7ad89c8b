"""The base of every settings model: closed, typed, immutable and finite."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys, silently coerced types and non-finite numbers are errors; values are frozen.

    YAML reads ``.inf`` and ``.nan`` as floats: a learning rate of infinity would pass a ``> 0``
    bound and fail only inside a trial, so ``allow_inf_nan`` is off everywhere.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
