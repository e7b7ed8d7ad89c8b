"""Which configuration groups the group rules stop and which they keep, decided without Ray.

Each group's seeds report a fixed value: the group's quality (1 apart) plus a seed's own offset
(within ±0.1), so every seed of a better group beats every seed of a worse one and the right
decision is known. Groups arrive at each epoch in a fixed order, a group's seeds one after
another, as Tune starts them with ``max_concurrent_trials`` equal to the seeds. :func:`run` drives
the rule as a replay would (and as the Tune adapter does): a paused seed reports again only once
the rule lets it continue; every decision is the real rule's.
"""

from __future__ import annotations

import random
import statistics

import pytest
from helpers import drive_rule

from isobn_tune.schedulers.asha_by_config import GroupSuccessiveHalving
from isobn_tune.schedulers.decisions import GroupRule
from isobn_tune.schedulers.median_by_config import GroupMedianStoppingRule
from isobn_tune.schedulers.race_by_config import RaceByConfig, RaceStop

SEEDS = (1, 2, 3, 4, 5)  # the race's exact one-sided test on 5 pairs reaches 1/32 < alpha 0.05
QUALITY = {"A": 3.0, "B": 2.0, "C": 1.0, "D": 0.0}
ORDER = ("B", "D", "A", "C")  # a middle group first, then the worst, the best, the second worst
MAX_T = 3


def seed_value(name: str, seed: int) -> float:
    return QUALITY[name] + random.Random(f"{name}/{seed}").uniform(-0.1, 0.1)


def per_seed(*values: float) -> dict[int, float]:
    return dict(zip(SEEDS, values, strict=True))


def run(rule: GroupRule, order: tuple[str, ...] = ORDER,
        values: dict[str, dict[int, float]] | None = None) -> dict[str, list[int]]:
    """Every epoch up to ``MAX_T``: the live seeds of the groups of ``order`` report in that order;
    each group's seeds' last epochs at the end, once every seed has ended (none left waiting)."""
    values = values or {name: {seed: seed_value(name, seed) for seed in SEEDS} for name in QUALITY}
    members = [(name, seed) for name in order for seed in SEEDS]
    for member in members:
        rule.add(member)
    last, ended = drive_rule(rule, members, lambda member, _: values[member[0]][member[1]], MAX_T)
    assert ended == set(members)  # every seed decided
    return {name: [last[(name, seed)] for seed in SEEDS] for name in order}


def test_asha_by_config_keeps_the_groups_in_the_top_third_at_arrival_and_stops_the_others() -> None:
    """At rung 1 B is first (kept); D trails B (stopped); A leads B and D (kept); C is below the
    top third of B, D and A (stopped). Kept groups run to max_t with every seed."""
    ends = run(GroupSuccessiveHalving(max_t=MAX_T, grace_period=1, reduction_factor=3, mode="max"))

    assert ends == {"A": [MAX_T] * 5, "B": [MAX_T] * 5, "C": [1] * 5, "D": [1] * 5}


def test_median_by_config_stops_the_groups_below_the_median_of_the_others() -> None:
    """At epoch 1 D is below B, C below the median of B, D and A; A and B are kept at every epoch."""
    ends = run(GroupMedianStoppingRule(grace_period=1, min_groups_required=1, max_t=MAX_T, mode="max"))

    assert ends == {"A": [MAX_T] * 5, "B": [MAX_T] * 5, "C": [1] * 5, "D": [1] * 5}


def test_race_by_config_keeps_only_the_best_and_a_group_tied_with_it() -> None:
    """T is A on every seed ±0.05, ahead on some seeds and behind on others: not worse. B passes
    epoch 1 as its own incumbent and is stopped by the re-test when A gets there."""
    values = {name: {seed: seed_value(name, seed) for seed in SEEDS} for name in QUALITY}
    deltas = per_seed(0.05, -0.05, 0.04, -0.04, 0.03)
    values["T"] = {seed: values["A"][seed] + deltas[seed] for seed in SEEDS}
    incumbent = max(("A", "T"), key=lambda name: statistics.median(values[name].values()))  # C's
    rule = RaceByConfig(min_epochs=1, max_t=MAX_T, mode="max")

    ends = run(rule, ("B", "D", "A", "T", "C"), values)

    assert ends == {"A": [MAX_T] * 5, "T": [MAX_T] * 5, "B": [1] * 5, "C": [1] * 5, "D": [1] * 5}
    assert rule.stops == {
        "B": RaceStop(1, "A", pytest.approx(-1.0, abs=0.2), 1 / 32, 5),
        "D": RaceStop(1, "B", pytest.approx(-2.0, abs=0.2), 1 / 32, 5),
        "C": RaceStop(1, incumbent, pytest.approx(-2.0, abs=0.2), 1 / 32, 5),
    }


def test_asha_by_config_judges_a_group_by_its_seed_median() -> None:
    """LOW has one failed seed (median 3.0, mean 1.4), LUCKY one lucky seed (median 1.0, mean 1.8,
    best 5.0): by the median LOW beats B (2.0) and is kept, LUCKY is below both and stopped; by the
    mean LOW would stop, by the best seed LUCKY would run on."""
    values = {"B": per_seed(2.0, 2.0, 2.0, 2.0, 2.0), "LOW": per_seed(3.0, 3.0, 3.0, 3.0, -5.0),
              "LUCKY": per_seed(1.0, 1.0, 1.0, 1.0, 5.0)}
    rule = GroupSuccessiveHalving(max_t=MAX_T, grace_period=1, reduction_factor=3, mode="max")

    ends = run(rule, ("B", "LOW", "LUCKY"), values)

    assert ends == {"B": [MAX_T] * 5, "LOW": [MAX_T] * 5, "LUCKY": [1] * 5}
