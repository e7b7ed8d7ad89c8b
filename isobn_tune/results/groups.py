"""Configuration groups: a trial's config without its seed names the configuration it samples."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

SEED_KEYS = ("seed", "__trial_index__")
MIN_PAIRED_SEEDS = 3
"""The fewest seeds two configurations must share before a race (``race_by_config``) compares them."""
RACE_ALPHA = 0.05
"""The default level of a race's one-sided paired test."""

_DELIMITERS = frozenset(",={}[]'\" ")


def group_key(config: Mapping[str, Any]) -> str:
    """A stable, readable key for ``config`` minus its :data:`SEED_KEYS`, at any depth (a grid
    trial's seed sits in its nested grid point).

    Keys are sorted (nested mappings too), floats are written with ``repr`` (``2e-05``, never
    ``2.0000000000000002e-05`` from formatting noise, and never rounded so distinct values stay
    distinct), numpy scalars as the Python number they hold, and strings are quoted only when
    they contain a delimiter. Example: ``group_key({"lr": 2e-5, "seed": 3, "task": "rte"})``
    is ``"lr=2e-05,task=rte"``.
    """
    return _render_mapping(_without_seeds(config))


def seed_of(config: Mapping[str, Any]) -> Any:
    """The ``seed`` of a trial's config at any depth (a grid trial's sits in its grid point); None
    without one. Configurations sharing a seed share its head init and data order: a pair."""
    if "seed" in config:
        return config["seed"]
    nested = (seed_of(value) for value in config.values() if isinstance(value, Mapping))
    return next((seed for seed in nested if seed is not None), None)


def value_at(config: Mapping[str, Any], key: str) -> Any:
    """The value of ``key`` in a trial's config at any depth (a grid trial's ``cls_norm`` sits in
    its nested grid point); None without one."""
    if key in config:
        return config[key]
    nested = (value_at(value, key) for value in config.values() if isinstance(value, Mapping))
    return next((value for value in nested if value is not None), None)


def _without_seeds(config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: _without_seeds(v) if isinstance(v, Mapping) else v for k, v in config.items() if k not in SEED_KEYS
    }


def _render_mapping(values: Mapping[str, Any]) -> str:
    return ",".join(f"{key}={_render(values[key])}" for key in sorted(values, key=str))


def _render(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Mapping):
        return "{" + _render_mapping(value) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_render(v) for v in value) + "]"
    if isinstance(value, (bool, type(None))):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, str):
        return repr(value) if not value or _DELIMITERS & set(value) else value
    return repr(value)
