"""Stratified stopping (``keep_best_per``): a method whose configurations all trail the other
method's keeps its best configuration running; without it the rules stop across methods.

Order-controlled, no Ray: method ``none``'s groups n1 (its best) and n2 trail every group of
method ``isobn`` (i1, i2) on every seed; the isobn groups report first at every epoch, so each
none group is decided against the isobn groups already recorded there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import drive_rule

from isobn_tune.schedulers.asha_by_config import GroupSuccessiveHalving
from isobn_tune.schedulers.decisions import GroupRule
from isobn_tune.schedulers.median_by_config import GroupMedianStoppingRule
from isobn_tune.schedulers.race_by_config import RaceByConfig
from isobn_tune.space.loading import load_space

QUICKSTART = Path(__file__).resolve().parents[2] / "search_spaces" / "quickstart.yaml"  # none vs isobn

SEEDS = (1, 2, 3, 4, 5, 6)
MAX_T = 4
QUALITY = {"i1": 4.0, "i2": 3.0, "n1": 2.0, "n2": 1.0}
METHOD = {"i1": "isobn", "i2": "isobn", "n1": "none", "n2": "none"}
ORDER = ("i1", "i2", "n1", "n2")


def run(rule: GroupRule) -> dict[str, int]:
    """Every epoch: each live seed of the groups of ORDER reports its group's quality plus a small
    seed offset; returns each group's last epoch (all its seeds end together)."""
    members = [(name, seed) for name in ORDER for seed in SEEDS]
    for member in members:
        rule.add(member, stratum=METHOD[member[0]])
    last, _ = drive_rule(rule, members, lambda member, _: QUALITY[member[0]] + member[1] / 100, MAX_T)
    ends = {name: {last[(name, seed)] for seed in SEEDS} for name in ORDER}
    assert all(len(epochs) == 1 for epochs in ends.values())  # whole groups, never single seeds
    return {name: epochs.pop() for name, epochs in ends.items()}


RULES = {
    "asha_by_config": lambda keep: GroupSuccessiveHalving(max_t=MAX_T, grace_period=1, reduction_factor=2,
                                                         mode="max", keep_best_per=keep),
    "median_by_config": lambda keep: GroupMedianStoppingRule(grace_period=1, min_groups_required=1,
                                                           max_t=MAX_T, mode="max", keep_best_per=keep),
    "race_by_config": lambda keep: RaceByConfig(min_epochs=1, alpha=0.05, max_t=MAX_T, mode="max",
                                               keep_best_per=keep),
}


@pytest.mark.parametrize("name", RULES)
def test_without_keep_best_per_the_trailing_method_is_stopped_whole(name: str) -> None:
    ends = run(RULES[name](False))

    assert ends["i1"] == MAX_T
    assert ends["n1"] < MAX_T and ends["n2"] < MAX_T


@pytest.mark.parametrize("name", RULES)
def test_keep_best_per_keeps_each_methods_best_to_the_end(name: str) -> None:
    ends = run(RULES[name](True))

    assert ends["i1"] == MAX_T and ends["n1"] == MAX_T
    assert ends["n2"] < MAX_T  # the rest of the trailing method can still stop


def test_the_race_is_run_against_each_methods_own_incumbent() -> None:
    rule = RULES["race_by_config"](True)
    run(rule)

    assert rule.stops["n2"].incumbent == "n1"
    assert rule.stops["i2"].incumbent == "i1"


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], "cls_norm"),  # the quickstart crosses none and isobn
    (["grid.cls_norm=[isobn]"], None),
    (["scheduler.keep_best_per=null"], None),
])
@pytest.mark.parametrize("kind", RULES)
def test_keep_best_per_defaults_to_cls_norm_with_several_methods(kind, overrides, expected) -> None:
    scheduler = ["scheduler={}", f"scheduler.type={kind}", "grid.seeds=[1,2,3,4,5]"]
    space = load_space(QUICKSTART, [*scheduler, *overrides])

    assert space.scheduler.keep_best_per == expected
    assert space.scheduler.rule(space.scheduler_facts()).keep_best_per is (expected is not None)
    assert space.scheduler.rule(space.scheduler_facts()).mode == "max"
