"""The base of every settings model: closed, typed, immutable and finite."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys, silently coerced types and non-finite numbers are errors; values are frozen.

    YAML reads ``.inf`` and ``.nan`` as floats: a learning rate of infinity would pass a ``> 0``
    bound and fail only inside a trial, so ``allow_inf_nan`` is off everywhere.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def no_repeats(values: list[Any]) -> list[Any]:
    """A list validator: its values must be distinct (a repeated grid value would run twice)."""
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"values must be distinct; repeated: {', '.join(repeated)}")
    return values
