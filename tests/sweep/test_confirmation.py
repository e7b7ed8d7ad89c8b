"""Select, then confirm (``isobn-tune confirm``), on constructed records and manifests (no Ray):
which configurations a confirmation runs, which seeds it may use, which extension is one."""

from __future__ import annotations

import pytest

from isobn_tune.errors import UserError
from isobn_tune.results.aggregate import TrialRecord
from isobn_tune.sweep.extension import (
    check_fresh_seeds,
    confirmation_points,
    extension_entry,
    is_confirmation,
    selection_seeds,
)
from isobn_tune.train.recipe import TrialConfig


def trial(norm: str, lr: float, seed: int, score: float, *, status: str = "finished",
          confirmation: bool = False) -> TrialRecord:
    cfg = TrialConfig(task="rte", model="m", cls_norm=norm, lr=lr, seed=seed, max_epochs=2)
    return TrialRecord(f"{norm}-{lr:g}-{seed}", cfg, score, 2 if status == "finished" else 1, status,
                       confirmation=confirmation)


# none: lr 1e-5 wins on its median; isobn: lr 1e-5 wins on its full-budget seeds (lr 5e-5's best
# score was stopped early, and its confirmation trials, however good, select nothing).
RECORDS = [
    trial("none", 1e-5, 1, 0.70), trial("none", 1e-5, 2, 0.72),
    trial("none", 5e-5, 1, 0.60), trial("none", 5e-5, 2, 0.65),
    trial("isobn", 1e-5, 1, 0.71), trial("isobn", 1e-5, 2, 0.69),
    trial("isobn", 5e-5, 1, 0.68), trial("isobn", 5e-5, 2, 0.99, status="stopped"),
    trial("isobn", 5e-5, 7, 0.99, confirmation=True), trial("isobn", 5e-5, 8, 0.99, confirmation=True),
]


def test_a_confirmation_runs_each_methods_best_on_the_selection_trials_at_every_seed() -> None:
    points = confirmation_points(RECORDS, "rte", [6, 7])
    assert [(p["cls_norm"], p["lr"], p["seed"]) for p in points] == [
        ("isobn", 1e-5, 6), ("isobn", 1e-5, 7), ("none", 1e-5, 6), ("none", 1e-5, 7)]


def manifest(*extensions: dict) -> dict:
    return {"space": {"grid": {"seeds": [1, 2, 3]}}, "extensions": list(extensions)}


def test_the_seeds_of_run_and_extend_select_and_a_confirmations_do_not() -> None:
    extended = extension_entry(manifest(), {"rte": [{"seed": 4}, {"seed": 5}]}, "top 1 at seeds [4, 5]")
    confirmed = extension_entry(manifest(extended), {"rte": [{"seed": 9}]}, "confirmation", confirmation=True)
    both = manifest(extended, confirmed)
    assert selection_seeds(both) == {1, 2, 3, 4, 5}
    assert not is_confirmation(both, None) and not is_confirmation(both, "extend-1")
    assert is_confirmation(both, "extend-2")
    check_fresh_seeds(both, [6, 9])  # a second confirmation may reuse the first's seeds
    with pytest.raises(UserError, match=r"^--seeds: 3, 5 selected this sweep's configurations"):
        check_fresh_seeds(both, [3, 5, 6])


def test_tied_configurations_are_ranked_alike_whatever_order_the_trials_come_in() -> None:
    """report reads trials from MLflow, confirm from Tune: a tie must pick the same best in both."""
    tied = [trial("isobn", lr, seed, 0.5) for lr in (1e-5, 2e-5, 5e-5) for seed in (1, 2)]
    assert confirmation_points(tied, "rte", [9]) == confirmation_points(tied[::-1], "rte", [9])
