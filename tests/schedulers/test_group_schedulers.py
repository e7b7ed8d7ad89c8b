"""Group schedulers on real Ray Tune: seeds of a configuration are kept or stopped together.

The trainable's metric is the configuration's true quality plus a large, fixed per-seed offset,
so per-trial early stopping keeps the lucky seeds while the true group median (all seeds to the
end) is known exactly. The race (``RaceByConfig``) runs on known per-seed curves instead: a seed
effect shared by every configuration plus each configuration's own offset on that seed.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from isobn_tune.errors import UserError
from isobn_tune.results.groups import group_key
from isobn_tune.schedulers.asha_by_config import GroupSuccessiveHalving
from isobn_tune.schedulers.decisions import STATE_FILE
from isobn_tune.schedulers.group import GroupScheduler
from isobn_tune.schedulers.median_by_config import GroupMedianStoppingRule
from isobn_tune.schedulers.race_by_config import RaceByConfig, RaceStop, saved_race_stops

MAX_T = 9
RUNGS = (1, 3)
QUALITIES = (0.0, 0.4, 0.8, 1.2)
SEEDS = (0, 1, 2)


def seed_value(quality: float, seed: int) -> float:
    """The metric one seed of a configuration reports at every epoch."""
    return quality + random.Random(f"{quality}/{seed}").gauss(0.0, 1.0)


def noisy_trainable(config: dict) -> None:
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = int(Path(folder, "epoch").read_text())
    value = seed_value(config["true_quality"], config["seed"])
    for epoch in range(start + 1, MAX_T + 1):
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "epoch").write_text(str(epoch))
            tune.report(
                {"epoch": epoch, "objective": value},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


class InterruptAtRung(tune.Callback):
    """Sends the driver SIGUSR1 (Tune's Ctrl+C) at the first result at a rung of the configuration
    whose ``key`` is ``value``: that seed waits there for its siblings across the interruption.
    Fires once: the flag file is consumed, so the copy of this callback that ``Tuner.restore``
    unpickles does nothing."""

    def __init__(self, flag: Path, key: str, value: object, rung: int) -> None:
        self.flag, self.key, self.value, self.rung = flag, key, value, rung

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        ours = trial.config[self.key] == self.value
        if ours and result["epoch"] == self.rung and self.flag.exists():
            self.flag.unlink()
            os.kill(os.getpid(), signal.SIGUSR1)


pytestmark = pytest.mark.usefixtures("trainables_by_value")  # conftest: trainables shipped by value


def make_tuner(
    scheduler: TrialScheduler,
    path: Path,
    qualities: tuple[float, ...] = QUALITIES,
    seeds: tuple[int, ...] = SEEDS,
    max_concurrent: int | None = None,
    callbacks: tuple[tune.Callback, ...] = (),
) -> tune.Tuner:
    return tune.Tuner(
        noisy_trainable,
        # Tune varies the alphabetically first key fastest: a group's seeds are consecutive trials.
        param_space={
            "seed": tune.grid_search(list(seeds)),
            "true_quality": tune.grid_search(list(qualities)),
        },
        tune_config=tune.TuneConfig(
            metric="objective",
            mode="max",
            scheduler=scheduler,
            max_concurrent_trials=max_concurrent,
            time_budget_s=90,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="sweep",
            storage_path=str(path),
            verbose=0,
            callbacks=list(callbacks),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def group_outcomes(results: tune.ResultGrid) -> dict[str, list[tuple[int, float]]]:
    """Group key -> (last epoch, last value) of each seed."""
    outcomes = defaultdict(list)
    for result in results:
        outcomes[group_key(result.config)].append(
            (result.metrics["epoch"], result.metrics["objective"])
        )
    return outcomes


def last_epochs(results: tune.ResultGrid) -> dict[str, list[int]]:
    return {
        group: sorted(epoch for epoch, _ in seeds)
        for group, seeds in group_outcomes(results).items()
    }


def survivor_bias(results: tune.ResultGrid) -> list[float]:
    """For each group with a seed that ran to the end: median over those seeds minus the true
    median over all seeds."""
    biases = []
    for group, seeds in group_outcomes(results).items():
        survivors = [value for epoch, value in seeds if epoch == MAX_T]
        quality = next(r.config["true_quality"] for r in results if group_key(r.config) == group)
        if survivors:
            truth = statistics.median(seed_value(quality, s) for s in SEEDS)
            biases.append(statistics.median(survivors) - truth)
    return biases


def assert_groups_move_together(results: tune.ResultGrid, milestones: tuple[int, ...]) -> None:
    assert results.num_errors == 0
    assert results.num_terminated == len(results)
    for group, ends in last_epochs(results).items():
        assert len(set(ends)) == 1, f"{group}: seeds stopped at {ends}"
        assert ends[0] in {*milestones, MAX_T}


def group_ends(results: tune.ResultGrid) -> set[int]:
    """The epochs at which groups ended (all their seeds together)."""
    return {ends[0] for ends in last_epochs(results).values()}


class GroupRun(NamedTuple):
    scheduler: GroupScheduler
    results: tune.ResultGrid


@pytest.fixture(scope="module")
def group_halving_run(tmp_path_factory) -> GroupRun:
    scheduler = GroupScheduler(GroupSuccessiveHalving(max_t=MAX_T, grace_period=1, reduction_factor=3))
    # As many trials at once as seeds per group: the groups run one after another, each decided
    # over all its seeds, so the decisions are deterministic.
    tuner = make_tuner(
        scheduler, tmp_path_factory.mktemp("group-halving"), max_concurrent=len(SEEDS)
    )
    return GroupRun(scheduler, tuner.fit())


def test_group_key_drops_the_seed_keys_and_sorts_the_rest() -> None:
    config = {"task": "rte", "seed": 3, "lr": 2e-5, "__trial_index__": 1}

    assert group_key(config) == "lr=2e-05,task=rte"


def test_group_key_ignores_key_order_and_numeric_types() -> None:
    one = {"lr": 2e-5, "overrides": {"dropout": 0.1, "layers": 6}}
    other = {"overrides": {"layers": np.int64(6), "dropout": np.float64(0.1)}, "lr": 2e-5}

    assert group_key(one) == group_key(other) == "lr=2e-05,overrides={dropout=0.1,layers=6}"


def test_group_key_keeps_close_floats_apart() -> None:
    assert group_key({"beta": 0.1234567}) != group_key({"beta": 0.1234568})


def test_group_scheduler_rejects_an_unknown_mode() -> None:
    with pytest.raises(UserError, match="mode='maximise' must be 'min' or 'max'"):
        GroupScheduler(GroupSuccessiveHalving(), metric="objective", mode="maximise")


def test_per_trial_asha_biases_the_median_of_kept_groups_upward(tmp_path) -> None:
    scheduler = ASHAScheduler(time_attr="epoch", max_t=MAX_T, grace_period=1, reduction_factor=3)
    results = make_tuner(scheduler, tmp_path, max_concurrent=1).fit()

    assert sum(survivor_bias(results)) > 0


def test_group_successive_halving_leaves_the_median_of_kept_groups_unbiased(
    group_halving_run,
) -> None:
    biases = survivor_bias(group_halving_run.results)

    assert biases and all(bias == 0 for bias in biases)


def test_group_successive_halving_keeps_or_stops_every_seed_of_a_group_at_one_rung(
    group_halving_run,
) -> None:
    assert_groups_move_together(group_halving_run.results, RUNGS)
    ends = group_ends(group_halving_run.results)
    assert MAX_T in ends and ends & set(RUNGS), "expected kept and stopped groups"


def test_group_successive_halving_debug_string_summarises_the_run(group_halving_run) -> None:
    assert group_halving_run.scheduler.debug_string() == (
        "Using GroupSuccessiveHalving (rungs 1, 3): 4 groups; groups stopped: 1 at 1; "
        "seeds waiting for their group: 0"
    )


def test_group_median_rule_keeps_or_stops_every_seed_of_a_group_at_one_epoch(tmp_path) -> None:
    # Every epoch from the grace period on is a milestone; a late grace period keeps the run short.
    scheduler = GroupScheduler(GroupMedianStoppingRule(grace_period=6, min_groups_required=2, max_t=MAX_T))
    results = make_tuner(scheduler, tmp_path, max_concurrent=len(SEEDS)).fit()

    assert_groups_move_together(results, tuple(range(6, MAX_T)))
    ends = group_ends(results)
    assert MAX_T in ends and min(ends) < MAX_T, "expected kept and stopped groups"


@pytest.mark.parametrize("max_concurrent", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_group_successive_halving_completes_with_limited_concurrency(
    tmp_path, max_concurrent
) -> None:
    """Below a group's seeds (1) the waiting seed stalls every slot: its rung is decided on the
    seed there is; at a group's seeds (2) every decision waits for both."""
    seeds = SEEDS[:2]
    scheduler = GroupScheduler(GroupSuccessiveHalving(max_t=MAX_T, grace_period=1, reduction_factor=3,
                                                      seeds_per_group=len(seeds)))
    tuner = make_tuner(scheduler, tmp_path, QUALITIES[:3], seeds, max_concurrent)

    start = time.monotonic()
    results = tuner.fit()

    assert time.monotonic() - start < 90  # the time budget would have cut a deadlock short
    assert_groups_move_together(results, RUNGS)
    book = pickle.loads((tmp_path / "sweep" / STATE_FILE).read_bytes())
    assert {len(seeds) for seeds in book.decided_on.values()} == {max_concurrent}


def test_restore_mid_run_decides_like_an_uninterrupted_run(tmp_path, group_halving_run) -> None:
    flag = tmp_path / "interrupt"
    flag.touch()
    scheduler = GroupScheduler(GroupSuccessiveHalving(max_t=MAX_T, grace_period=1, reduction_factor=3))
    # The last group, at its first rung: the decision there needs the other groups' medians.
    interrupt = InterruptAtRung(flag, "true_quality", QUALITIES[-1], RUNGS[0])
    interrupted = make_tuner(
        scheduler, tmp_path, max_concurrent=len(SEEDS), callbacks=(interrupt,)
    ).fit()
    experiment = Path(interrupted.experiment_path)
    assert pickle.loads((experiment / STATE_FILE).read_bytes()).waiting()

    results = tune.Tuner.restore(str(experiment), trainable=noisy_trainable).fit()

    assert_groups_move_together(results, RUNGS)
    assert last_epochs(results) == last_epochs(group_halving_run.results)


# ----- the sweep's own param space with limited concurrency ------------------------------------
ORDER_EPOCHS = 3  # asha_by_config: rungs at 1 and 3 (factor 3); median_by_config: every epoch
# Worse in trial order, well apart against the seed noise (sd 1): later configurations are stopped.
ORDER_QUALITY = {("none", 2e-5): 6.0, ("none", 1e-4): 4.0, ("isobn", 2e-5): 2.0, ("isobn", 1e-4): 0.0}


def grid_point_trainable(config: dict) -> None:
    """A seed's fixed value each epoch, reported as isobn-tune's trainable reports it, for the
    configs isobn-tune's own param space produces."""
    point = config["grid_point"]
    value = seed_value(ORDER_QUALITY[(point["cls_norm"], point["lr"])], point["seed"])
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = int(Path(folder, "epoch").read_text())
    for epoch in range(start + 1, config["max_epochs"] + 1):
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "epoch").write_text(str(epoch))
            tune.report({"epoch": epoch, "objective": value, "best_objective": value},
                        checkpoint=tune.Checkpoint.from_directory(folder))


# Both group schedulers share the pausing machinery under test; the median rule's run is slow-only.
@pytest.mark.parametrize(
    "scheduler_type", ["asha_by_config", pytest.param("median_by_config", marks=pytest.mark.slow)]
)
def test_with_concurrency_equal_to_the_seeds_every_group_decision_sees_all_seeds(
    tmp_path: Path, scheduler_type: str
) -> None:
    """The issue's 12-trial sweep (cls_norm x lr x 3 seeds, max_concurrent_trials 3) through the
    space file's own param space and scheduler: every milestone decision uses all three seeds."""
    from isobn_tune.space import SweepSpace
    from isobn_tune.sweep.search import build_param_space, build_scheduler

    space = SweepSpace.model_validate({
        "name": "order", "model": {"name_or_path": "bert-base-cased"}, "tasks": ["rte"],
        "grid": {"cls_norm": ["none", "isobn"], "lr": [2e-5, 1e-4], "batch_size": [16], "seeds": list(SEEDS)},
        "recipe": {"max_epochs": ORDER_EPOCHS},
        "scheduler": {"type": scheduler_type, "grace_period": 1}
        | ({"min_groups_required": 1} if scheduler_type == "median_by_config" else {"reduction_factor": 3}),
        "resources": {"max_concurrent_trials": len(SEEDS)},
    })
    tuner = tune.Tuner(
        tune.with_resources(grid_point_trainable, {"cpu": 1}),
        param_space=build_param_space(space, "rte"),
        tune_config=tune.TuneConfig(scheduler=build_scheduler(space), reuse_actors=True,
                                    max_concurrent_trials=space.resources.max_concurrent_trials),
        run_config=tune.RunConfig(name="order", storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 4 * len(SEEDS) and not results.errors
    book = pickle.loads((tmp_path / "order" / STATE_FILE).read_bytes())
    assert book.decided_on, "the scheduler decided nothing"
    assert {len(seeds) for seeds in book.decided_on.values()} == {len(SEEDS)}
    assert any(not keep for keep in book.decisions.values()), "no configuration was stopped"


# ----- the race on known per-seed curves ---------------------------------------------------------
RACE_SEEDS = (0, 1, 2, 3, 4)  # the exact one-sided test on 5 pairs reaches 1/32 < alpha 0.05
RACE_MAX_T, RACE_MIN_EPOCHS = 4, 2
SEED_EFFECT = (0.9, -1.3, 0.2, 1.7, -0.6)  # shared by every configuration: what pairing removes
RACE_OFFSETS = {  # each configuration's offset on each seed, in trial order
    "best": (0.0, 0.0, 0.0, 0.0, 0.0),
    "worse": (-0.3, -0.2, -0.4, -0.25, -0.35),  # behind on every seed, by far less than the seed spread
    "tied": (0.1, -0.1, -0.05, 0.05, 0.0),  # a lower median than "best", but ahead on some seeds
}


def race_trainable(config: dict) -> None:
    """A seed's curve: the seed effect plus the configuration's offset on it, rising 0.1 per epoch."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = int(Path(folder, "epoch").read_text())
    seed = config["seed"]
    for epoch in range(start + 1, RACE_MAX_T + 1):
        value = SEED_EFFECT[seed] + RACE_OFFSETS[config["variant"]][seed] + 0.1 * epoch
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "epoch").write_text(str(epoch))
            tune.report({"epoch": epoch, "objective": value},
                        checkpoint=tune.Checkpoint.from_directory(folder))


RACE_TRAINABLE = tune.with_resources(race_trainable, {"cpu": 0.2})  # a group's seeds run at once


def race_tuner(path: Path, callbacks: tuple[tune.Callback, ...] = ()) -> tune.Tuner:
    """The three configurations one after another (at most one group's seeds at a time), so each
    is compared with the ones before it."""
    return tune.Tuner(
        RACE_TRAINABLE,
        # "seed" sorts before "variant": Tune varies it fastest, so a group's seeds are consecutive.
        param_space={"seed": tune.grid_search(list(RACE_SEEDS)),
                     "variant": tune.grid_search(list(RACE_OFFSETS))},
        tune_config=tune.TuneConfig(
            metric="objective", mode="max", max_concurrent_trials=len(RACE_SEEDS), time_budget_s=90,
            scheduler=GroupScheduler(RaceByConfig(min_epochs=RACE_MIN_EPOCHS, max_t=RACE_MAX_T,
                                                  seeds_per_group=len(RACE_SEEDS))),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name="race", storage_path=str(path), verbose=0, callbacks=list(callbacks),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )


def race_ends(results: tune.ResultGrid) -> dict[str, list[int]]:
    """Each configuration's last epoch per seed."""
    ends = defaultdict(list)
    for result in results:
        ends[result.config["variant"]].append(result.metrics["epoch"])
    return {variant: sorted(epochs) for variant, epochs in ends.items()}


def variant_group(variant: str) -> str:
    return group_key({"variant": variant, "seed": 0})


# The race's decisions on known curves run without Ray in schedulers/test_group_decisions.py, and
# the race through Tune's adapter (a stop included) in sweep/test_replay_live.py: these two are slow.
@pytest.fixture(scope="module")
def race_run(tmp_path_factory) -> tuple[tune.ResultGrid, dict[str, RaceStop]]:
    results = race_tuner(tmp_path_factory.mktemp("race")).fit()
    return results, saved_race_stops(results.experiment_path)


@pytest.mark.slow
def test_race_stops_a_configuration_worse_on_every_seed_at_the_first_allowed_epoch(race_run) -> None:
    """"worse"'s seeds are created one by one as "best"'s end (max_concurrent_trials is one
    group's seeds): its first arrivals wait at ``min_epochs`` until all 5 are there."""
    results, stops = race_run
    assert results.num_errors == 0
    assert race_ends(results)["worse"] == [RACE_MIN_EPOCHS] * len(RACE_SEEDS)
    # value = seed effect + offset + 0.1 * epoch: at every epoch "worse" - "best" is the offsets.
    expected = RaceStop(RACE_MIN_EPOCHS, variant_group("best"), pytest.approx(-0.3), 1 / 32, 5)
    assert stops[variant_group("worse")] == expected


@pytest.mark.slow
def test_race_never_stops_a_configuration_tied_with_the_incumbent(race_run) -> None:
    results, stops = race_run
    ends = race_ends(results)
    assert ends["tied"] == ends["best"] == [RACE_MAX_T] * len(RACE_SEEDS)
    assert set(stops) == {variant_group("worse")}


RETEST_MAX_T, EARLY_LEAD = 6, RACE_MIN_EPOCHS + 1
WAIT_S = 10  # a cap for "early"'s wait: >= 5x what "late" needs to reach min_epochs after "lead"


def early_and_late_trainable(config: dict) -> None:
    """"early" (worse than "late" on every seed) runs to ``EARLY_LEAD`` and waits there until "late"
    ends; "late" starts once a seed of "early" has got there, so "early" has passed ``min_epochs``
    (its own incumbent there) when "late" reaches it."""
    early, start = config["variant"] == "early", 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:  # resumed after waiting for its siblings at a milestone
        with checkpoint.as_directory() as folder:
            start = int(Path(folder, "epoch").read_text())
    lead, done = Path(config["flags"], "lead"), Path(config["flags"], "late-done")
    for epoch in range(start + 1, RETEST_MAX_T + 1):
        # "early" is stopped here by the re-test (it goes on once "late" ends, and the test fails).
        _wait_for(done if early and epoch > EARLY_LEAD else lead if not early else None)
        value = SEED_EFFECT[config["seed"]] + (-0.3 if early else 0.0) + 0.01 * epoch
        if not early and epoch == RETEST_MAX_T:
            done.touch()  # before the last report, after which the scheduler stops the trial
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "epoch").write_text(str(epoch))
            tune.report({"epoch": epoch, "objective": value},
                        checkpoint=tune.Checkpoint.from_directory(folder))
        if early and epoch == EARLY_LEAD:
            lead.touch()


def _wait_for(flag: Path | None) -> None:
    deadline = time.monotonic() + WAIT_S
    while flag is not None and not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.slow  # the re-test is in the default run without Ray: schedulers/test_group_decisions.py
def test_race_retests_a_configuration_that_passed_the_milestone_first(tmp_path) -> None:
    """Without the re-test "early" would be its own incumbent at every epoch and run to the end."""
    tuner = tune.Tuner(
        tune.with_resources(early_and_late_trainable, {"cpu": 0.2}),  # all ten trials at once
        param_space={"seed": tune.grid_search(list(RACE_SEEDS)),
                     "variant": tune.grid_search(["early", "late"]), "flags": str(tmp_path)},
        tune_config=tune.TuneConfig(metric="objective", mode="max", time_budget_s=90, reuse_actors=True,
                                    scheduler=GroupScheduler(RaceByConfig(
                                        min_epochs=RACE_MIN_EPOCHS, max_t=RETEST_MAX_T,
                                        seeds_per_group=len(RACE_SEEDS)))),
        run_config=tune.RunConfig(name="retest", storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    group = {result.config["variant"]: group_key(result.config) for result in results}
    assert saved_race_stops(results.experiment_path) == {
        group["early"]: RaceStop(RACE_MIN_EPOCHS, group["late"], pytest.approx(-0.3), 1 / 32, 5)}
    assert race_ends(results) == {"early": [EARLY_LEAD] * len(RACE_SEEDS),
                                  "late": [RETEST_MAX_T] * len(RACE_SEEDS)}


@pytest.mark.slow  # the shared restore machinery is covered by default (test_restore_mid_run_...)
def test_race_restored_mid_run_decides_like_an_uninterrupted_run(tmp_path, race_run) -> None:
    flag = tmp_path / "interrupt"
    flag.touch()
    # At the worse configuration's first milestone: its decision needs the best one's seed values.
    interrupt = InterruptAtRung(flag, "variant", "worse", RACE_MIN_EPOCHS)
    interrupted = race_tuner(tmp_path, callbacks=(interrupt,)).fit()
    experiment = Path(interrupted.experiment_path)
    assert pickle.loads((experiment / STATE_FILE).read_bytes()).waiting()
    assert saved_race_stops(experiment) == {}

    results = tune.Tuner.restore(str(experiment), trainable=RACE_TRAINABLE).fit()

    assert race_ends(results) == race_ends(race_run[0])
    assert saved_race_stops(experiment) == race_run[1]
