"""Search-space files: the shipped ones, grid expansion and the errors bad files produce."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import SPACES

from isobn_tune.data import sample_glue
from isobn_tune.data.glue import resolve_glue_dir
from isobn_tune.errors import UserError
from isobn_tune.space import (
    SweepSpace,
    grid_axes,
    load_space,
    optuna_base_config,
    trial_configs,
    trial_count,
    trials_per_task,
)
from isobn_tune.train.cls_norm import CLS_NORMS, params_of
from isobn_tune.train.recipe import TrialConfig

PAPER_TASKS = 7

MINIMAL: dict[str, Any] = {
    "name": "t",
    "model": {"name_or_path": "bert-base-cased"},
    "tasks": ["rte"],
    "grid": {"cls_norm": ["isobn"], "lr": [2.0e-5], "batch_size": [16], "seeds": [1]},
}


def write_space(tmp_path: Path, data: dict[str, Any] | str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def with_changes(**sections: Any) -> dict[str, Any]:
    """MINIMAL with top-level keys replaced (None deletes); dict values merge into the section."""
    data = copy.deepcopy(MINIMAL)
    for key, value in sections.items():
        if value is None:
            del data[key]
        elif isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return data


SHIPPED = [  # every shipped space file: trials per task, tasks
    ("paper_bert_base_isobn.yaml", 3 * 2 * 3 * 5, PAPER_TASKS),
    ("paper_bert_base_baseline.yaml", 3 * 2 * 5, PAPER_TASKS),
    ("paper_bert_base_isobn_asha.yaml", 3 * 2 * 3 * 5, PAPER_TASKS),
    ("paper_roberta_large_isobn.yaml", 3 * 2 * 3 * 5, PAPER_TASKS),
    ("paper_roberta_large_baseline.yaml", 3 * 2 * 5, PAPER_TASKS),
    ("optuna_refine_beta_alpha.yaml", 20 * 3, 1),
    ("quickstart.yaml", 2 * 3, 1),
    ("reproduce_minilm_cpu.yaml", 3 * 5, 2),
]


@pytest.mark.parametrize(("file", "per_task", "tasks"), SHIPPED)
def test_shipped_space_validates_and_counts_trials(file: str, per_task: int, tasks: int) -> None:
    space = load_space(SPACES / file)
    assert trials_per_task(space) == per_task
    assert trial_count(space) == per_task * tasks
    if space.optuna is None:
        configs = trial_configs(space, space.tasks[0])
        assert len(configs) == per_task
        assert len({tuple(sorted(map(str, c.items()))) for c in configs}) == per_task


def test_every_shipped_space_is_tested_and_says_how_to_launch() -> None:
    files = sorted(p.name for p in SPACES.glob("*.yaml"))
    assert files == sorted(name for name, _, _ in SHIPPED)
    for name in files:
        text = (SPACES / name).read_text(encoding="utf-8")
        assert text.startswith("#")
        assert f"isobn-tune run search_spaces/{name}" in text


def test_paper_grid_matches_the_paper() -> None:
    space = load_space(SPACES / "paper_bert_base_isobn.yaml")
    assert space.tasks == ["cola", "sst2", "mrpc", "qqp", "qnli", "rte", "mnli"]
    assert grid_axes(space) == {
        "cls_norm": ["isobn"],
        "lr": [1e-5, 2e-5, 5e-5],
        "batch_size": [16, 32],
        "beta": [0.25, 0.5, 1.0],
        "alpha": [0.95],
        "eps": [0.1],
        "eps_mode": ["absolute"],  # the paper's
        "seed": [1, 2, 3, 4, 5],
    }
    assert space.scheduler.type == "fifo"
    assert space.resources.gpus_per_trial == 1


def test_quickstart_configs_are_valid_trial_configs_for_the_offline_minilm() -> None:
    space = load_space(SPACES / "quickstart.yaml")
    configs = [TrialConfig.from_dict(c) for c in trial_configs(space, "stsb")]
    assert {c.cls_norm for c in configs} == {"none", "isobn"}
    assert (Path(configs[0].model) / "config.json").is_file()
    assert resolve_glue_dir(space.data.glue_dir) == sample_glue.DIRECTORY
    assert (sample_glue.DIRECTORY / "STS-B" / "dev.tsv").is_file()


def test_the_bundled_sample_holds_only_stsb(tmp_path: Path) -> None:
    space = with_changes(tasks=["stsb"], data={"glue_dir": sample_glue.SETTING})
    assert load_space(write_space(tmp_path, space)).data.glue_dir == sample_glue.SETTING
    path = write_space(tmp_path, with_changes(tasks=["stsb", "rte"], data={"glue_dir": sample_glue.SETTING}))
    with pytest.raises(UserError) as err:
        load_space(path)
    assert str(err.value) == (f"{path}: data.glue_dir: the bundled sample holds only stsb, not rte "
                              "(got 'bundled:sample')")


def test_trial_configs_carry_every_trial_config_field(tmp_path: Path) -> None:
    space = load_space(write_space(tmp_path, MINIMAL))
    (config,) = trial_configs(space, "rte")
    assert (
        config == TrialConfig(task="rte", model="bert-base-cased", lr=2e-5, batch_size=16, seed=1).to_dict()
    )


def test_baseline_configs_are_not_multiplied_by_isobn_params(tmp_path: Path) -> None:
    grid = {"cls_norm": ["none", "isobn"], "beta": [0.25, 0.5, 1.0], "alpha": [0.9, 0.95], "seeds": [1, 2]}
    space = load_space(write_space(tmp_path, with_changes(grid=grid)))
    configs = trial_configs(space, "rte")
    baseline = [c for c in configs if c["cls_norm"] == "none"]
    assert len(baseline) == 2
    assert {(c["beta"], c["alpha"], c["eps"]) for c in baseline} == {(0.5, 0.95, 0.1)}
    assert len(configs) - len(baseline) == 3 * 2 * 2


def test_trial_configs_put_seeds_innermost(tmp_path: Path) -> None:
    space = load_space(write_space(tmp_path, with_changes(grid={"lr": [1e-5, 2e-5], "seeds": [7, 8]})))
    assert [(c["lr"], c["seed"]) for c in trial_configs(space, "rte")] == [
        (1e-5, 7),
        (1e-5, 8),
        (2e-5, 7),
        (2e-5, 8),
    ]


def test_exponent_floats_without_a_dot_are_numbers(tmp_path: Path) -> None:
    text = yaml.safe_dump(MINIMAL).replace("2.0e-05", "3e-5")
    assert "3e-5" in text
    assert load_space(write_space(tmp_path, text)).grid.lr == [3e-5]


def test_task_names_are_canonical(tmp_path: Path) -> None:
    space = load_space(write_space(tmp_path, with_changes(tasks=["SST-2", "RTE"])))
    assert space.tasks == ["sst2", "rte"]


def test_glue_dir_is_relative_to_the_space_file(tmp_path: Path) -> None:
    (tmp_path / "glue").mkdir()
    (tmp_path / "spaces").mkdir()
    path = write_space(tmp_path / "spaces", with_changes(data={"glue_dir": "../glue"}))
    assert load_space(path).data.glue_dir == str(tmp_path / "glue")


@pytest.mark.parametrize("alias", ["minilm", "offline:minilm"])
def test_minilm_aliases_resolve_to_the_packaged_model(tmp_path: Path, alias: str) -> None:
    space = load_space(write_space(tmp_path, with_changes(model={"name_or_path": alias})))
    assert (Path(space.model.name_or_path) / "model.safetensors").is_file()


def test_defaults_follow_the_recipe_and_name_the_experiment(tmp_path: Path) -> None:
    space = load_space(write_space(tmp_path, MINIMAL))
    defaults = TrialConfig(task="rte", model="m")
    assert space.recipe.model_dump() == {k: getattr(defaults, k) for k in space.recipe.model_dump()}
    assert (space.grid.beta, space.grid.alpha, space.grid.eps) == ([0.5], [0.95], [0.1])
    assert space.scheduler.type == "fifo"
    assert space.experiment_name == "t"
    assert space.run.storage_path == "./results"


def test_unknown_task_in_trial_configs_is_a_user_error(tmp_path: Path) -> None:
    space = load_space(write_space(tmp_path, MINIMAL))
    with pytest.raises(UserError, match="'cola' is not in sweep"):
        trial_configs(space, "cola")


OPTUNA = {"cls_norm": "isobn", "n_points": 4,
          "params": {"beta": {"low": 0.1, "high": 1.5}, "alpha": {"low": 0.8, "high": 0.99}}}


def optuna_with(**params: Any) -> dict[str, Any]:
    """OPTUNA with ``params`` as its searched hyperparameters."""
    return OPTUNA | {"params": params}


def test_optuna_sweep_counts_points_times_seeds(tmp_path: Path) -> None:
    data = with_changes(optuna=OPTUNA, grid={"lr": [3e-5, 1e-5], "seeds": [1, 2, 3]})
    space = load_space(write_space(tmp_path, data))
    assert trial_count(space) == 4 * 3
    base = optuna_base_config(space, "rte")
    assert (base["lr"], base["batch_size"], base["cls_norm"]) == (3e-5, 16, "isobn")
    assert not {"beta", "alpha", "seed"} & set(base)
    with pytest.raises(ValueError, match="optuna_base_config"):
        trial_configs(space, "rte")


def test_optuna_fixes_what_it_does_not_search_at_the_grids_first_point(tmp_path: Path) -> None:
    grid = {"cls_norm": ["none", "isobn"], "batch_size": [32, 16], "beta": [0.25], "alpha": [0.9, 0.8],
            "eps": [1e-3], "eps_mode": ["relative"]}
    data = with_changes(optuna=optuna_with(beta={"low": 0.1, "high": 1.0}), grid=grid)
    space = load_space(write_space(tmp_path, data))
    base = optuna_base_config(space, "rte")
    assert "beta" not in base
    first = {k: base[k] for k in ("cls_norm", "lr", "batch_size", "alpha", "eps", "eps_mode")}
    assert first == {"cls_norm": "isobn", "lr": 2e-5, "batch_size": 32, "alpha": 0.9, "eps": 1e-3,
                     "eps_mode": "relative"}
    assert grid_axes(space) == {"cls_norm": ["isobn"], "lr": [2e-5], "batch_size": [32], "alpha": [0.9],
                                "eps": [1e-3], "eps_mode": ["relative"], "seed": [1]}


@pytest.mark.parametrize("cls_norm", CLS_NORMS)
def test_optuna_searches_a_normaliser_as_the_registry_says(tmp_path: Path, cls_norm: str) -> None:
    """A normaliser with hyperparameters can be searched, over its own ones; one without is refused."""
    searchable = [name for name in CLS_NORMS if params_of(name)]
    own = {name: OPTUNA["params"][name] for name in ("beta", "alpha") if name in params_of(cls_norm)}
    data = with_changes(grid={"cls_norm": [cls_norm]}, optuna=OPTUNA | {"cls_norm": cls_norm, "params": own})
    path = write_space(tmp_path, data)
    if cls_norm in searchable:
        assert load_space(path).optuna.params.searched().keys() == own.keys()
    else:
        with pytest.raises(UserError) as info:
            load_space(path)
        allowed = ", ".join(searchable)
        assert f"optuna.cls_norm: {cls_norm!r} has no hyperparameters to search; allowed: {allowed}" in str(
            info.value)


BAD_FILES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top-level key", with_changes(epochs=3), "epochs: unknown key"),
    ("unknown nested key", with_changes(grid={"learning_rate": [1e-5]}), "grid.learning_rate"),
    ("wrong type", with_changes(grid={"batch_size": ["16"]}), "grid.batch_size[0]"),
    ("section not a mapping", with_changes(recipe=5), "recipe: must be a mapping"),
    ("bool for a number", with_changes(grid={"lr": [True]}), "grid.lr[0]"),
    ("negative beta", with_changes(grid={"beta": [0.5, -0.1]}), "grid.beta[1]"),
    ("alpha of 1", with_changes(grid={"alpha": [1.0]}), "grid.alpha[0]"),
    ("zero eps", with_changes(grid={"eps": [0.0]}), "grid.eps[0]"),
    ("negative lr", with_changes(grid={"lr": [2e-5, -1e-5]}), "grid.lr[1]"),
    ("batch of 1", with_changes(grid={"batch_size": [1]}), "grid.batch_size[0]"),
    ("empty grid list", with_changes(grid={"lr": []}), "grid.lr"),
    ("repeated seeds", with_changes(grid={"seeds": [1, 1]}), "grid.seeds"),
    ("unknown cls_norm", with_changes(grid={"cls_norm": ["whitening"]}), "grid.cls_norm[0]"),
    ("unknown task", with_changes(tasks=["rte", "squad"]), "tasks[1]"),
    ("no tasks", with_changes(tasks=[]), "tasks"),
    ("missing section", with_changes(model=None), "model: required key is missing"),
    ("bad sweep name", with_changes(name="my sweep"), "name"),
    ("seq length too long", with_changes(data={"max_seq_length": 1024}), "data.max_seq_length"),
    ("missing glue dir", with_changes(data={"glue_dir": "nowhere"}), "data.glue_dir"),
    ("missing model dir", with_changes(model={"name_or_path": "./nowhere"}), "model.name_or_path"),
    ("unknown scheduler", with_changes(scheduler={"type": "hyperband"}), "scheduler.type"),
    ("scheduler without type", with_changes(scheduler={}), "scheduler.type"),
    (
        "option of another scheduler",
        with_changes(scheduler={"type": "fifo", "grace_period": 1}),
        "scheduler.grace_period: unknown key",
    ),
    (
        "asha with median option",
        with_changes(scheduler={"type": "asha", "min_samples_required": 2}),
        "scheduler.min_samples_required: unknown key",
    ),
    (
        "pbt mutating beta",
        with_changes(scheduler={"type": "pbt", "hyperparam_mutations": {"beta": [0.1, 0.5]}}),
        "scheduler.hyperparam_mutations.beta",
    ),
    (
        "grace period past the end",
        with_changes(scheduler={"type": "asha", "grace_period": 20}),
        "scheduler.grace_period",
    ),
    (
        "negative gpus per trial",
        with_changes(resources={"gpus_per_trial": -0.5}),
        "resources.gpus_per_trial",
    ),
    (
        "optuna range reversed",
        with_changes(optuna=optuna_with(beta={"low": 1.0, "high": 0.5})),
        "optuna.params.beta: low (1.0) must be < high (0.5)",
    ),
    (
        "optuna range past the field's bound",
        with_changes(optuna=optuna_with(alpha={"low": 0.8, "high": 1.0})),
        "optuna.params.alpha.high: Input should be less than 1 (got 1.0)",
    ),
    (
        "optuna log range from 0",
        with_changes(optuna=optuna_with(beta={"low": 0.0, "high": 1.0, "log": True})),
        "optuna.params.beta: log needs low > 0",
    ),
    (
        "optuna choice not allowed",
        with_changes(optuna=optuna_with(eps_mode={"choices": ["relative", "scaled"]})),
        "optuna.params.eps_mode.choices[1]: Input should be 'absolute' or 'relative' (got 'scaled')",
    ),
    (
        "optuna single choice",
        with_changes(optuna=optuna_with(eps_mode={"choices": ["relative"]})),
        "optuna.params.eps_mode.choices: List should have at least 2 items",
    ),
    (
        "optuna unknown hyperparameter",
        with_changes(optuna=optuna_with(gamma={"low": 0.1, "high": 1.0})),
        "optuna.params.gamma: unknown key; allowed keys: beta, alpha, eps, eps_mode",
    ),
    (
        "optuna nothing searched",
        with_changes(optuna=optuna_with()),
        "optuna.params: no hyperparameter to search",
    ),
    (
        "optuna unknown normaliser",
        with_changes(optuna=OPTUNA | {"cls_norm": "whitening"}),
        "optuna.cls_norm: 'whitening' is not a normaliser; allowed: isobn",
    ),
    ("optuna without points", with_changes(optuna=OPTUNA | {"n_points": 0}), "optuna.n_points"),
    ("optuna unknown key", with_changes(optuna=OPTUNA | {"trials": 3}), "optuna.trials"),
    (
        "optuna grid without its normaliser",
        with_changes(optuna=OPTUNA, grid={"cls_norm": ["none"]}),
        "grid.cls_norm: must include isobn (optuna.cls_norm)",
    ),
    (
        "optuna with a beta grid",
        with_changes(optuna=OPTUNA, grid={"beta": [0.5, 1.0]}),
        "grid.beta: must be absent or have one value with an optuna section (optuna.params.beta is searched)",
    ),
    (
        "optuna with pbt",
        with_changes(optuna=OPTUNA, scheduler={"type": "pbt", "hyperparam_mutations": {"lr": [1e-5, 2e-5]}}),
        "scheduler.type",
    ),
]


@pytest.mark.parametrize(("case", "data", "expected"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_space_is_a_user_error_naming_file_and_key(
    tmp_path: Path, case: str, data: dict[str, Any], expected: str
) -> None:
    path = write_space(tmp_path, data, name="bad_space.yaml")
    with pytest.raises(UserError) as info:
        load_space(path)
    message = str(info.value)
    assert "bad_space.yaml" in message
    assert expected in message
    assert "pydantic" not in message


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path) -> None:
    data = with_changes(grid={"lr": [-1.0], "alpha": [2.0]}, extra=1)
    with pytest.raises(UserError) as info:
        load_space(write_space(tmp_path, data))
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{tmp_path / 'space.yaml'}: ") for line in lines)
    assert f"{tmp_path / 'space.yaml'}: grid.lr[0]: Input should be greater than 0 (got -1.0)" in lines


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write_space(tmp_path, "name: t\ngrid: [1, 2\ntasks: [rte]\n")
    with pytest.raises(UserError, match=r"space\.yaml:3:\d+: invalid YAML"):
        load_space(path)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write_space(tmp_path, "name: t\nname: u\n")
    with pytest.raises(UserError, match=r"space\.yaml:2:1: invalid YAML: duplicate key 'name'"):
        load_space(path)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nothere.yaml.*does not exist"):
        load_space(tmp_path / "nothere.yaml")


def test_empty_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="space.yaml: must be a mapping of sections"):
        load_space(write_space(tmp_path, ""))


def test_space_can_be_built_without_a_file() -> None:
    assert trial_count(SweepSpace.model_validate(MINIMAL)) == 1


def test_asha_variant_is_the_paper_grid_with_config_level_asha() -> None:
    paper = load_space(SPACES / "paper_bert_base_isobn.yaml")
    asha = load_space(SPACES / "paper_bert_base_isobn_asha.yaml")
    assert asha.grid == paper.grid and asha.recipe == paper.recipe and asha.tasks == paper.tasks
    assert asha.scheduler.type == "asha_by_config"
    assert asha.resources.max_concurrent_trials % len(asha.grid.seeds) == 0


def test_overrides_change_the_file_and_are_validated_with_it(tmp_path: Path) -> None:
    path = write_space(tmp_path, MINIMAL)
    space = load_space(path, ["recipe.max_epochs=3", "grid.seeds=[1, 2]", "scheduler.type=asha_by_config",
                              "data.max_seq_length=64"])
    assert (space.recipe.max_epochs, space.grid.seeds, space.scheduler.type) == (3, [1, 2], "asha_by_config")
    assert space.data.max_seq_length == 64
    assert load_space(path).recipe.max_epochs == 10  # the file itself is untouched
    with pytest.raises(UserError) as err:
        load_space(path, ["grid.lr=[0]", "recipe.epochs=3"])
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and all(line.endswith("[set on the command line]") for line in lines)
    assert "grid.lr[0]: Input should be greater than 0" in lines[0]
    assert "recipe.epochs: unknown key" in lines[1]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("recipe", "expected KEY=VALUE"),
        ("name.first=x", "name is a value, not a section"),
        ("grid.lr=[1e-5", "invalid YAML value"),
    ],
)
def test_malformed_override_is_a_user_error(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_space(write_space(tmp_path, MINIMAL), [override])


@pytest.mark.parametrize(("scheduler", "limit", "ok"), [
    ("asha_by_config", 4, True), ("asha_by_config", 3, False), ("median_by_config", 6, False),
    ("asha", 3, True),
])
def test_group_schedulers_need_concurrency_in_multiples_of_the_seeds(
    tmp_path: Path, scheduler: str, limit: int, ok: bool
) -> None:
    data = with_changes(grid={"seeds": [1, 2, 3, 4]}, scheduler={"type": scheduler},
                        resources={"max_concurrent_trials": limit})
    if ok:
        assert load_space(write_space(tmp_path, data)).resources.max_concurrent_trials == limit
    else:
        with pytest.raises(UserError, match="must be a multiple of the 4 seeds per configuration"):
            load_space(write_space(tmp_path, data))


@pytest.mark.parametrize(("seeds", "alpha", "ok"), [
    (5, None, True), (4, None, False), (3, 0.125, True), (2, 0.5, False),
])
def test_race_refuses_seeds_and_alpha_with_which_no_configuration_could_stop(
    tmp_path: Path, seeds: int, alpha: float | None, ok: bool
) -> None:
    scheduler = {"type": "race_by_config"} | ({"alpha": alpha} if alpha else {})
    path = write_space(tmp_path, with_changes(grid={"seeds": list(range(seeds))}, scheduler=scheduler))
    if ok:
        assert load_space(path).scheduler.alpha == (alpha or 0.05)
    else:
        with pytest.raises(UserError, match="scheduler.alpha: no configuration could ever stop"):
            load_space(path)


def test_race_epochs_must_lie_within_the_recipe(tmp_path: Path) -> None:
    race = {"type": "race_by_config", "alpha": 0.5, "min_epochs": 4, "max_t": 12}
    data = with_changes(grid={"seeds": [1, 2, 3]}, recipe={"max_epochs": 3}, scheduler=race)
    both = r"(?s)scheduler.min_epochs: must be <= recipe.max_epochs.*scheduler.max_t: must be <="
    with pytest.raises(UserError, match=both):
        load_space(write_space(tmp_path, data))


@pytest.mark.parametrize("value", [".inf", "1.0e+308", "-.inf", ".nan"])
def test_non_finite_or_huge_numbers_are_refused(tmp_path: Path, value: str) -> None:
    path = write_space(tmp_path, MINIMAL)
    for key in ("grid.lr", "grid.eps"):
        with pytest.raises(UserError, match=key.replace(".", r"\.")):
            load_space(path, [f"{key}=[{value}]"])
    with pytest.raises(UserError, match="recipe.weight_decay"):
        load_space(path, [f"recipe.weight_decay={value}"])


def test_trial_order_nests_normaliser_hyperparameters_inside_lr_and_batch_with_seeds_innermost(
    tmp_path: Path,
) -> None:
    data = with_changes(grid={"cls_norm": ["none", "isobn"], "lr": [1e-5, 2e-5], "beta": [0.25, 0.5],
                              "seeds": [1, 2]})
    configs = trial_configs(load_space(write_space(tmp_path, data)), "rte")
    order = [(c["cls_norm"], c["lr"], c["beta"], c["seed"]) for c in configs]
    assert order == [("none", lr, 0.5, seed) for lr in (1e-5, 2e-5) for seed in (1, 2)] + [
        ("isobn", lr, beta, seed) for lr in (1e-5, 2e-5) for beta in (0.25, 0.5) for seed in (1, 2)
    ]


def test_pbt_needs_enough_checkpoints_for_its_exploits(tmp_path: Path) -> None:
    pbt = {"type": "pbt", "hyperparam_mutations": {"lr": [1e-5, 2e-5]}}
    with pytest.raises(UserError, match=r"run.checkpoints_to_keep: must be >= 4 with scheduler pbt"):
        load_space(write_space(tmp_path, with_changes(scheduler=pbt)))
    space = load_space(write_space(tmp_path, with_changes(scheduler=pbt, run={"checkpoints_to_keep": 4})))
    assert space.scheduler.type == "pbt"
