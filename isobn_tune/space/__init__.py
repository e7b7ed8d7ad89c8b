"""The search-space file: its schema, reading it with overrides, and expanding it into trials."""

from isobn_tune.space.expansion import (
    fixed_config,
    grid_axes,
    grid_points,
    optuna_base_config,
    trial_configs,
    trial_count,
    trials_per_task,
)
from isobn_tune.space.loading import apply_overrides, effective_space_text, load_space
from isobn_tune.space.schema import SweepSpace

__all__ = [
    "SweepSpace",
    "apply_overrides",
    "effective_space_text",
    "fixed_config",
    "grid_axes",
    "grid_points",
    "load_space",
    "optuna_base_config",
    "trial_configs",
    "trial_count",
    "trials_per_task",
]
