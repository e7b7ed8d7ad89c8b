"""From a space to Tune's pieces: the grid Tune expands, the schedulers, Optuna with fixed seeds."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import SPACES
from ray import tune
from ray.tune import Experiment
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, PopulationBasedTraining
from ray.tune.search import ConcurrencyLimiter, Searcher, SearchGenerator
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.variant_generator import generate_variants

from isobn_tune.schedulers.asha_by_config import GroupSuccessiveHalving
from isobn_tune.schedulers.decisions import GroupRule
from isobn_tune.schedulers.group import GroupScheduler
from isobn_tune.schedulers.median_by_config import GroupMedianStoppingRule
from isobn_tune.schedulers.race_by_config import RaceByConfig
from isobn_tune.space import SweepSpace, load_space, trial_configs
from isobn_tune.sweep.search import build_param_space, build_scheduler, build_searcher, num_samples
from isobn_tune.sweep.seed_repeater import SeedMedianRepeater
from isobn_tune.train.metrics import BEST_OBJECTIVE, OBJECTIVE
from isobn_tune.train.recipe import TrialConfig

GRID_FILES = ["paper_bert_base_isobn.yaml", "paper_bert_base_baseline.yaml", "paper_roberta_large_isobn.yaml",
              "quickstart.yaml"]


def make_space(**sections: Any) -> SweepSpace:
    """A validated space: a small none/batchnorm/isobn grid on RTE, ``sections`` replacing parts."""
    raw = {
        "name": "s",
        "model": {"name_or_path": "bert-base-cased"},
        "tasks": ["rte", "mrpc"],
        "grid": {"cls_norm": ["none", "batchnorm", "isobn"], "lr": [1e-5, 2e-5], "batch_size": [16],
                 "beta": [0.25, 0.5, 1.0], "alpha": [0.9, 0.95], "seeds": [1, 2, 3]},
        "recipe": {"max_epochs": 4},
    }
    return SweepSpace.model_validate(raw | sections)


BETA_ALPHA = {"beta": {"low": 0.1, "high": 1.5}, "alpha": {"low": 0.8, "high": 0.99}}


def optuna_space(n_points: int = 2, max_concurrent: int = 1, params: dict[str, Any] = BETA_ALPHA,
                 **grid: list[Any]) -> SweepSpace:
    return make_space(
        grid={"cls_norm": ["isobn"], "lr": [2e-5], "batch_size": [32], "seeds": [1, 2, 3]} | grid,
        optuna={"cls_norm": "isobn", "params": params, "n_points": n_points, "max_concurrent": max_concurrent,
                "seed": 0},
    )


def expanded(space: SweepSpace, task: str) -> list[dict[str, Any]]:
    """The trial configs Tune's grid expansion makes of the param space, as TrialConfig dicts."""
    return [TrialConfig.from_dict(config).to_dict()
            for _, config in generate_variants(build_param_space(space, task))]


def as_dicts(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [TrialConfig.from_dict(c).to_dict() for c in configs]


@pytest.mark.parametrize("file", GRID_FILES)
def test_shipped_grid_expands_to_its_trial_configs_in_their_order(file: str) -> None:
    space = load_space(SPACES / file)
    for task in space.tasks:
        assert expanded(space, task) == as_dicts(trial_configs(space, task))


def test_mixed_grid_expands_to_its_trial_configs_in_their_order() -> None:
    space = make_space()
    assert expanded(space, "mrpc") == as_dicts(trial_configs(space, "mrpc"))
    assert num_samples(space) == 1


def test_baselines_are_not_multiplied_by_the_isobn_grid() -> None:
    counts = Counter(c["cls_norm"] for c in expanded(make_space(), "rte"))
    per_norm = 2 * 1 * 3  # lr x batch size x seeds
    assert counts == {"none": per_norm, "batchnorm": per_norm, "isobn": per_norm * 3 * 2}  # x beta x alpha


def test_baselines_keep_isobn_defaults() -> None:
    baselines = [c for c in expanded(make_space(), "rte") if c["cls_norm"] != "isobn"]
    defaults = {(c["beta"], c["alpha"], c["eps"]) for c in baselines}
    assert defaults == {(0.5, 0.95, 0.1)}


def test_a_configurations_seeds_are_created_one_after_the_other() -> None:
    seeds = [c["seed"] for c in expanded(make_space(), "rte")]
    assert seeds == [1, 2, 3] * (len(seeds) // 3)


def test_every_configuration_runs_at_every_seed() -> None:
    seeds_of: dict[str, list[int]] = {}
    for c in expanded(make_space(), "rte"):
        config = json.dumps({k: v for k, v in c.items() if k != "seed"}, sort_keys=True)
        seeds_of.setdefault(config, []).append(c["seed"])
    assert len(seeds_of) == 2 * (2 + 3 * 2)  # lr x (two baselines + isobn's beta x alpha)
    assert all(sorted(s) == [1, 2, 3] for s in seeds_of.values())


def test_each_task_gets_its_own_param_space() -> None:
    space = make_space()
    assert build_param_space(space, "rte")["task"] == "rte"
    assert build_param_space(space, "mrpc")["task"] == "mrpc"


def test_optuna_param_space_searches_beta_and_alpha_in_the_file_ranges() -> None:
    param_space = build_param_space(optuna_space(), "rte")
    beta, alpha = param_space["beta"], param_space["alpha"]
    assert (type(beta), beta.lower, beta.upper) == (tune.search.sample.Float, 0.1, 1.5)
    assert (type(alpha), alpha.lower, alpha.upper) == (tune.search.sample.Float, 0.8, 0.99)
    assert "seed" not in param_space  # seeds come from the repeater, never from the searcher
    assert (param_space["cls_norm"], param_space["lr"], param_space["batch_size"]) == ("isobn", 2e-5, 32)


def test_optuna_param_space_samples_logs_and_categories_as_the_file_says() -> None:
    params = {"beta": {"low": 0.1, "high": 2.0, "log": True},
              "eps_mode": {"choices": ["relative", "absolute"]}}
    param_space = build_param_space(optuna_space(params=params), "rte")
    beta, eps_mode = param_space["beta"], param_space["eps_mode"]
    log_uniform = tune.search.sample.Float._LogUniform
    assert (type(beta.get_sampler()), beta.lower, beta.upper) == (log_uniform, 0.1, 2.0)
    assert (type(eps_mode), eps_mode.categories) == (tune.search.sample.Categorical, ["relative", "absolute"])
    assert param_space["alpha"] == 0.95  # not searched: the grid's (default) value


def optuna_trials(space: SweepSpace, tmp_path: Path, n: int) -> list[TrialConfig]:
    """The first ``n`` trials Tune's search generator creates from the sweep's searcher and param
    space (what ``Tuner.fit`` runs), as trial configs; no Ray needed."""
    param_space = build_param_space(space, "rte")
    generator = SearchGenerator(build_searcher(space))
    generator.set_search_properties(None, None, param_space)
    generator.add_configurations(Experiment(
        "optuna", lambda config: None, config=param_space, num_samples=num_samples(space),
        storage_path=str(tmp_path),
    ))
    return [TrialConfig.from_dict(generator.next_trial().config) for _ in range(n)]


def test_optuna_trials_run_the_grids_values_of_what_is_not_searched(tmp_path: Path) -> None:
    space = optuna_space(lr=[3e-5, 1e-5], eps=[1e-3], eps_mode=["relative"])
    trials = optuna_trials(space, tmp_path, 3)
    assert [t.seed for t in trials] == [1, 2, 3]
    for trial in trials:
        assert (trial.eps_mode, trial.eps, trial.lr, trial.batch_size) == ("relative", 1e-3, 3e-5, 32)
        assert (trial.beta, trial.alpha) == (trials[0].beta, trials[0].alpha)
        assert 0.1 <= trial.beta <= 1.5 and 0.8 <= trial.alpha <= 0.99


def test_optuna_trial_budget_is_points_times_seeds() -> None:
    assert num_samples(optuna_space(n_points=4)) == 4 * 3


def test_grid_sweeps_have_no_searcher() -> None:
    assert build_searcher(make_space()) is None


def suggest_all(searcher: Searcher, prefix: str, n: int) -> list[dict[str, Any] | None]:
    return [searcher.suggest(f"{prefix}{i}") for i in range(n)]


@pytest.fixture
def optuna_searcher() -> ConcurrencyLimiter:
    space = optuna_space(max_concurrent=2)
    searcher = build_searcher(space)
    searcher.set_search_properties(None, None, build_param_space(space, "rte"))
    return searcher


def test_optuna_searcher_is_limited_repeated_optuna(optuna_searcher: ConcurrencyLimiter) -> None:
    repeater = optuna_searcher.searcher
    assert isinstance(repeater, SeedMedianRepeater) and isinstance(repeater.searcher, OptunaSearch)
    assert optuna_searcher.max_concurrent == 2 * 3  # points at once x seeds
    assert repeater.searcher.metric == BEST_OBJECTIVE


def test_optuna_points_run_at_every_seed_and_stay_in_range(optuna_searcher: ConcurrencyLimiter) -> None:
    configs = suggest_all(optuna_searcher, "t", 7)
    assert configs[6] is None  # two points x three seeds in flight: the limiter holds the seventh
    points = [configs[0:3], configs[3:6]]
    for point in points:
        assert [c["seed"] for c in point] == [1, 2, 3]
        assert len({(c["beta"], c["alpha"]) for c in point}) == 1
        assert 0.1 <= point[0]["beta"] <= 1.5 and 0.8 <= point[0]["alpha"] <= 0.99
    assert points[0][0]["beta"] != points[1][0]["beta"]


def test_optuna_suggests_again_once_a_points_seeds_end(optuna_searcher: ConcurrencyLimiter) -> None:
    suggest_all(optuna_searcher, "t", 6)
    for i, score in enumerate((0.6, 0.7, 0.5)):
        optuna_searcher.on_trial_complete(f"t{i}", {BEST_OBJECTIVE: score})
    follow_up = suggest_all(optuna_searcher, "u", 4)
    assert [c["seed"] for c in follow_up[:3]] == [1, 2, 3] and follow_up[3] is None


class RecordingSearcher(Searcher):
    """A searcher proposing beta = 0, 1, 2 ... and recording what it is told."""

    def __init__(self) -> None:
        super().__init__(metric=BEST_OBJECTIVE, mode="max")
        self.suggested = 0
        self.told: list[tuple[str, dict | None, dict]] = []

    def suggest(self, trial_id: str) -> dict[str, Any]:
        self.suggested += 1
        return {"beta": float(self.suggested - 1)}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, **kwargs: Any) -> None:
        self.told.append((trial_id, result, kwargs))


def run_point(repeater: SeedMedianRepeater, scores: list[float | None]) -> list[dict[str, Any]]:
    configs = suggest_all(repeater, "t", len(scores))
    for i, score in enumerate(scores):
        repeater.on_trial_complete(f"t{i}", None if score is None else {BEST_OBJECTIVE: score, "epoch": 3})
    return configs


def test_seed_median_repeater_tells_the_searcher_the_median() -> None:
    inner = RecordingSearcher()
    run_point(SeedMedianRepeater(inner, [7, 8, 9]), [0.1, 0.2, 0.9])  # mean 0.4, median 0.2
    assert inner.told == [("t0", {BEST_OBJECTIVE: pytest.approx(0.2)}, {})]


def test_seed_median_repeater_reports_only_when_every_seed_ended() -> None:
    inner = RecordingSearcher()
    repeater = SeedMedianRepeater(inner, [7, 8, 9])
    suggest_all(repeater, "t", 3)
    repeater.on_trial_complete("t2", {BEST_OBJECTIVE: 0.5})
    repeater.on_trial_complete("t0", {BEST_OBJECTIVE: 0.5})
    assert inner.told == []


def test_seed_median_repeater_sets_the_fixed_seeds() -> None:
    inner = RecordingSearcher()
    configs = run_point(SeedMedianRepeater(inner, [7, 8, 9]), [0.1, 0.2, 0.3])
    assert [c["seed"] for c in configs] == [7, 8, 9]
    assert [c["beta"] for c in configs] == [0.0, 0.0, 0.0] and inner.suggested == 1


def test_seed_median_repeater_skips_failed_seeds() -> None:
    inner = RecordingSearcher()
    run_point(SeedMedianRepeater(inner, [7, 8, 9]), [0.3, None, 0.5])
    assert inner.told == [("t0", {BEST_OBJECTIVE: pytest.approx(0.4)}, {})]


def test_seed_median_repeater_reports_an_error_when_every_seed_failed() -> None:
    inner = RecordingSearcher()
    run_point(SeedMedianRepeater(inner, [7, 8]), [None, None])
    assert inner.told == [("t0", None, {"error": True})]


def repeated_optuna() -> SeedMedianRepeater:
    repeater = SeedMedianRepeater(OptunaSearch(metric=BEST_OBJECTIVE, mode="max", seed=0), [1, 2, 3])
    repeater.set_search_properties(None, None, build_param_space(optuna_space(), "rte"))
    return repeater


def test_optuna_study_records_the_seed_median() -> None:
    repeater = repeated_optuna()
    run_point(repeater, [0.2, 0.4, 0.3])
    assert [t.value for t in repeater.searcher._ot_study.trials] == [pytest.approx(0.3)]


def test_seed_median_repeater_state_survives_save_and_restore(tmp_path: Path) -> None:
    repeater = repeated_optuna()
    first = suggest_all(repeater, "t", 2)
    repeater.save(str(tmp_path / "searcher.pkl"))

    restored = SeedMedianRepeater(OptunaSearch(metric=BEST_OBJECTIVE, mode="max", seed=0), [1, 2, 3])
    restored.restore(str(tmp_path / "searcher.pkl"))
    config = restored.suggest("t2")  # the point's third seed, from the saved group
    assert (config["seed"], config["beta"], config["alpha"]) == (3, first[0]["beta"], first[0]["alpha"])


@pytest.mark.parametrize(("section", "kind"), [
    ({"type": "fifo"}, FIFOScheduler),
    ({"type": "asha", "grace_period": 2, "reduction_factor": 3}, ASHAScheduler),
    ({"type": "median", "grace_period": 2}, MedianStoppingRule),
    ({"type": "asha_by_config", "grace_period": 2}, GroupSuccessiveHalving),
    ({"type": "median_by_config", "grace_period": 2}, GroupMedianStoppingRule),
    ({"type": "race_by_config", "min_epochs": 2}, RaceByConfig),
])
def test_stopping_schedulers_map_to_tune_schedulers_on_the_best_dev_metric(section: dict, kind: type) -> None:
    scheduler = build_scheduler(make_space(scheduler=section))
    if issubclass(kind, GroupRule):  # a group rule runs in Tune through the one adapter
        assert type(scheduler) is GroupScheduler and type(scheduler.rule) is kind
    else:
        assert type(scheduler) is kind
    if kind is not FIFOScheduler:
        assert (scheduler.metric, scheduler._mode, scheduler._time_attr) == (BEST_OBJECTIVE, "max", "epoch")


def test_race_takes_its_tolerance_in_points_and_stops_at_the_recipe_epochs_unless_told() -> None:
    section = {"type": "race_by_config", "min_epochs": 2, "alpha": 0.125, "tolerance": 0.5}
    race = build_scheduler(make_space(scheduler=section)).rule
    settings = (race.min_epochs, race.alpha, race.tolerance, race.max_t, race.seeds_per_group)
    assert settings == (2, 0.125, 0.005, 4, 3)
    assert build_scheduler(make_space(scheduler=section | {"max_t": 3})).rule.max_t == 3


def test_asha_stops_at_the_recipe_epochs() -> None:
    section = {"type": "asha", "grace_period": 1, "reduction_factor": 2}
    scheduler = build_scheduler(make_space(scheduler=section))
    assert scheduler._max_t == 4
    assert sorted(milestone for milestone, _ in scheduler._brackets[0]._rungs) == [1, 2, 4]


def test_pbt_exploits_the_current_epoch_and_mutates_only_lr() -> None:
    section = {"type": "pbt", "perturbation_interval": 2, "hyperparam_mutations": {"lr": [1e-5, 3e-5]}}
    scheduler = build_scheduler(make_space(scheduler=section))
    assert type(scheduler) is PopulationBasedTraining
    assert (scheduler.metric, scheduler._time_attr) == (OBJECTIVE, "epoch")
    assert scheduler._perturbation_interval == 2
    assert scheduler._hyperparam_mutations == {"grid_point": {"lr": [1e-5, 3e-5]}}
    assert scheduler._synch is False
    assert build_scheduler(make_space(scheduler={**section, "synch": True}))._synch is True
