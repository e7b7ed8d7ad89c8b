"""Which configuration groups the group schedulers stop and which they keep, decided without Ray.

Each group's seeds report a fixed value: the group's quality (1 apart) plus a seed's own offset
(within ±0.1), so every seed of a better group beats every seed of a worse one and the right
decision is known. Groups arrive at each epoch in a fixed order, a group's seeds one after
another, as Tune starts them with ``max_concurrent_trials`` equal to the seeds. ``FakeTune`` stands
in for Tune's controller; every scheduler decision is the real code's.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from isobn_tune.results.groups import group_key
from isobn_tune.schedulers.group import (
    GroupMedianStoppingRule,
    GroupSuccessiveHalving,
    RaceByConfig,
    RaceStop,
    _GroupScheduler,
)

SEEDS = (1, 2, 3, 4, 5)  # the race's exact one-sided test on 5 pairs reaches 1/32 < alpha 0.05
QUALITY = {"A": 3.0, "B": 2.0, "C": 1.0, "D": 0.0}
ORDER = ("B", "D", "A", "C")  # a middle group first, then the worst, the best, the second worst
MAX_T = 3


def seed_value(name: str, seed: int) -> float:
    return QUALITY[name] + random.Random(f"{name}/{seed}").uniform(-0.1, 0.1)


def per_seed(*values: float) -> dict[int, float]:
    return dict(zip(SEEDS, values, strict=True))


class FakeTune:
    """The calls a group scheduler makes on Tune's controller, with Tune's effects
    (``TuneController.stop_trial``: ``on_trial_remove`` for a waiting trial, ``on_trial_complete``
    for a running one), and a driver that reports results and applies the scheduler's answer."""

    def __init__(self, scheduler: _GroupScheduler, names: tuple[str, ...]) -> None:
        self.scheduler = scheduler
        self.trials = [Trial("fake", config={"name": name, "seed": seed}, trial_id=f"{name}{seed}", stub=True)
                       for name in names for seed in SEEDS]
        scheduler.set_search_properties("objective", "max")
        self.last_epoch: dict[str, int] = {}
        for trial in self.trials:
            scheduler.on_trial_add(self, trial)

    # ----- what the scheduler calls ------------------------------------------------------------
    def get_trials(self) -> list[Trial]:
        return self.trials

    def stop_trial(self, trial: Trial) -> None:
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
        elif trial.status == Trial.RUNNING:
            self.scheduler.on_trial_complete(self, trial, {})
        trial.set_status(Trial.TERMINATED)

    def _set_trial_status(self, trial: Trial, status: str) -> None:
        trial.set_status(status)

    def _mark_trial_to_checkpoint(self, trial: Trial) -> None:
        """Saving the experiment state is Tune's business, not the decision's."""

    # ----- driving ------------------------------------------------------------------------------
    def run(self, order: tuple[str, ...], values: dict[str, dict[int, float]]) -> dict[str, list[int]]:
        """Every epoch up to ``MAX_T``: the groups' live seeds report in ``order``; each group's
        seeds' last epochs at the end."""
        last: dict[str, list[int]] = defaultdict(list)
        for epoch in range(1, MAX_T + 1):
            for name in order:
                for trial in self.trials:
                    if trial.config["name"] == name and trial.status != Trial.TERMINATED:
                        self.report(trial, epoch, values[name][trial.config["seed"]])
        for trial in self.trials:
            assert trial.status == Trial.TERMINATED, trial  # every trial decided, none left waiting
            last[trial.config["name"]].append(self.last_epoch[trial.trial_id])
        return dict(last)

    def report(self, trial: Trial, epoch: int, value: float) -> None:
        trial.set_status(Trial.RUNNING)
        self.last_epoch[trial.trial_id] = epoch
        action = self.scheduler.on_trial_result(self, trial, {"epoch": epoch, "objective": value})
        if action == TrialScheduler.PAUSE:
            trial.set_status(Trial.PAUSED)
        elif action == TrialScheduler.STOP:
            self.stop_trial(trial)


def run(scheduler: _GroupScheduler, order: tuple[str, ...] = ORDER,
        values: dict[str, dict[int, float]] | None = None) -> dict[str, list[int]]:
    """The groups of ``order`` run under ``scheduler``: each group's seeds' last epochs."""
    values = values or {name: {seed: seed_value(name, seed) for seed in SEEDS} for name in QUALITY}
    return FakeTune(scheduler, order).run(order, values)


def group(name: str) -> str:
    return group_key({"name": name, "seed": 0})


def test_asha_by_config_keeps_the_groups_in_the_top_third_at_arrival_and_stops_the_others() -> None:
    """At rung 1 B is first (kept); D trails B (stopped); A leads B and D (kept); C is below the
    top third of B, D and A (stopped). Kept groups run to max_t with every seed."""
    ends = run(GroupSuccessiveHalving(max_t=MAX_T, grace_period=1, reduction_factor=3))

    assert ends == {"A": [MAX_T] * 5, "B": [MAX_T] * 5, "C": [1] * 5, "D": [1] * 5}


def test_median_by_config_stops_the_groups_below_the_median_of_the_others() -> None:
    """At epoch 1 D is below B, C below the median of B, D and A; A and B are kept at every epoch."""
    ends = run(GroupMedianStoppingRule(grace_period=1, min_groups_required=1, max_t=MAX_T))

    assert ends == {"A": [MAX_T] * 5, "B": [MAX_T] * 5, "C": [1] * 5, "D": [1] * 5}


def test_race_by_config_keeps_only_the_best_and_a_group_tied_with_it() -> None:
    """T is A on every seed ±0.05, ahead on some seeds and behind on others: not worse. B passes
    epoch 1 as its own incumbent and is stopped by the re-test when A gets there."""
    values = {name: {seed: seed_value(name, seed) for seed in SEEDS} for name in QUALITY}
    deltas = per_seed(0.05, -0.05, 0.04, -0.04, 0.03)
    values["T"] = {seed: values["A"][seed] + deltas[seed] for seed in SEEDS}
    incumbent = max(("A", "T"), key=lambda name: statistics.median(values[name].values()))  # C's
    scheduler = RaceByConfig(min_epochs=1, max_t=MAX_T)

    ends = run(scheduler, ("B", "D", "A", "T", "C"), values)

    assert ends == {"A": [MAX_T] * 5, "T": [MAX_T] * 5, "B": [1] * 5, "C": [1] * 5, "D": [1] * 5}
    assert scheduler.stops == {
        group("B"): RaceStop(1, group("A"), pytest.approx(-1.0, abs=0.2), 1 / 32, 5),
        group("D"): RaceStop(1, group("B"), pytest.approx(-2.0, abs=0.2), 1 / 32, 5),
        group("C"): RaceStop(1, group(incumbent), pytest.approx(-2.0, abs=0.2), 1 / 32, 5),
    }


def test_asha_by_config_judges_a_group_by_its_seed_median() -> None:
    """LOW has one failed seed (median 3.0, mean 1.4), LUCKY one lucky seed (median 1.0, mean 1.8,
    best 5.0): by the median LOW beats B (2.0) and is kept, LUCKY is below both and stopped; by the
    mean LOW would stop, by the best seed LUCKY would run on."""
    values = {"B": per_seed(2.0, 2.0, 2.0, 2.0, 2.0), "LOW": per_seed(3.0, 3.0, 3.0, 3.0, -5.0),
              "LUCKY": per_seed(1.0, 1.0, 1.0, 1.0, 5.0)}
    scheduler = GroupSuccessiveHalving(max_t=MAX_T, grace_period=1, reduction_factor=3)

    ends = run(scheduler, ("B", "LOW", "LUCKY"), values)

    assert ends == {"B": [MAX_T] * 5, "LOW": [MAX_T] * 5, "LUCKY": [1] * 5}
