"""``isobn-tune replay``: recorded scores through the real scheduler rules, without Ray.

Banks are written by ``benchmarks/replay_schedulers.py``'s synthetic generator: per method one
configuration 3 points ahead, IsoBN a true +2 points over none, a seed effect shared across
configurations, so every right answer is known.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from isobn_tune.cli import main
from isobn_tune.errors import UserError
from isobn_tune.schedulers.asha_by_config import GroupSuccessiveHalving
from isobn_tune.schedulers.race_by_config import RaceByConfig
from isobn_tune.sweep.replay import (
    JSON_KEYS,
    TaskGrid,
    drive,
    load_source,
    replay,
    replay_once,
    replay_report,
    schedule_of,
)

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "replay_schedulers.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("benchmarks_replay_schedulers", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _benchmark()


@pytest.fixture(scope="module")
def bank(bench, tmp_path_factory) -> Path:
    return bench.write_synthetic_bank(tmp_path_factory.mktemp("bank"), seeds=16, effect=2.0)


def figures(bank: Path, *overrides: str, repeats: int = 40) -> dict:
    source = load_source(str(bank), overrides)
    return replay(source, schedule_of(source.space, 10), seeds=10, repeats=repeats)


def test_fifo_uses_the_whole_grid_and_finds_the_known_answer(bank: Path) -> None:
    f = figures(bank)

    assert f["compute_fraction"] == {"median": 1.0, "low": 1.0, "high": 1.0}
    assert f["best_within_half_point"] == 1.0
    assert f["verdict_agreement"] >= 0.9


def test_a_stratified_race_saves_compute_and_keeps_each_methods_best(bank: Path) -> None:
    f = figures(bank, "scheduler.type=race_by_config", "scheduler.keep_best_per=cls_norm")

    assert f["compute_fraction"]["high"] < 1.0
    assert f["best_within_half_point"] == 1.0
    assert f["verdict_agreement"] >= 0.9


def test_the_compute_floor_bounds_every_rule_that_keeps_each_methods_best(bench, bank: Path) -> None:
    """2 methods x 3 lr x 6 epochs: each method's best to the end, the 4 others 1 epoch = 16/36."""
    (grid,) = load_source(str(bank)).grids
    floor = bench.compute_floor(grid)
    stratified = figures(bank, "scheduler.type=race_by_config", "scheduler.keep_best_per=cls_norm")
    top_third = replay(load_source(str(bank)), bench.top_third_after_epoch_1, seeds=10, repeats=5)

    assert floor == pytest.approx(16 / 36)
    assert stratified["compute_fraction"]["low"] >= floor
    assert top_third["compute_fraction"] == {"median": floor, "low": floor, "high": floor}


def test_a_choice_uses_only_the_epochs_the_scheduler_saw() -> None:
    """A rule that stops every trial after epoch 2 chooses by epoch 2, where lr "a" leads; lr "b"
    leads from epoch 3 on, so the choice is 1 point off the full grid's best."""
    epochs, seeds = 4, 8
    early, late = [0.60, 0.61, 0.61, 0.61], [0.50, 0.52, 0.62, 0.62]
    scores = np.array([[curve] * seeds for curve in (early, late, early, late)])
    grid = TaskGrid("stsb", ["none;a", "none;b", "isobn;a", "isobn;b"], ["none", "none", "isobn", "isobn"],
                    list(range(1, seeds + 1)), scores)

    def two_epochs(grid, selection, order, rng):
        return np.full((4, selection.size), 2)

    outcome = replay_once(grid, 2, two_epochs, np.random.default_rng(0))

    assert outcome.consumed / outcome.grid == pytest.approx(2 / epochs)
    assert outcome.within == [False, False]


def test_an_unstratified_race_loses_the_trailing_methods_best(bank: Path) -> None:
    f = figures(bank, "scheduler.type=race_by_config", "scheduler.keep_best_per=null")

    assert f["best_within_half_point"] < 1.0


def test_aa_false_verdicts_stay_within_alpha_on_a_no_effect_bank(bench, tmp_path: Path) -> None:
    repeats = 400
    f = figures(bench.write_synthetic_bank(tmp_path, seeds=16, effect=0.0), repeats=repeats)

    assert f["aa_false_verdict"] <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / repeats)


def known_grid() -> TaskGrid:
    """tests/schedulers/test_group_decisions.py's groups: qualities 1 apart, seed offsets within ±0.1,
    the same value at every epoch."""
    quality = {"B": 2.0, "D": 0.0, "A": 3.0, "C": 1.0}
    offsets = np.linspace(-0.1, 0.1, 5)
    scores = np.array([[[q + o] * 3 for o in offsets] for q in quality.values()])
    return TaskGrid("stsb", list(quality), ["none"] * 4, [1, 2, 3, 4, 5], scores)


@pytest.mark.parametrize("rule", [
    GroupSuccessiveHalving(max_t=3, grace_period=1, reduction_factor=3, mode="max"),
    RaceByConfig(min_epochs=1, max_t=3, mode="max"),
])
def test_the_replay_gives_the_order_controlled_decisions(rule) -> None:
    """The groups arrive B, D, A, C as in test_group_decisions; the replay stops what it stops there."""
    grid = known_grid()
    order = [(c, k) for c in range(4) for k in range(5)]
    last = drive(rule, grid, np.arange(5), order, None, None)

    assert dict(zip(grid.configs, last.tolist(), strict=True)) == {
        "B": [3] * 5, "D": [1] * 5, "A": [3] * 5, "C": [1] * 5}
    assert rule.trial_epochs == last.sum()


def test_cli_prints_markdown_and_json(bench, tmp_path: Path, capsys) -> None:
    bank = bench.write_synthetic_bank(tmp_path, seeds=8, epochs=3)

    assert main(["replay", str(bank), "scheduler.type=asha_by_config", "--repeats", "5"]) == 0
    assert "| trial-epochs / grid's |" in capsys.readouterr().out
    assert main(["replay", str(bank), "--repeats", "5", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert tuple(out) == JSON_KEYS and out["repeats"] == 5
    assert set(out["compute_fraction"]) == {"median", "low", "high"}


def test_bad_sources_and_seeds_are_one_line_errors(bench, tmp_path: Path) -> None:
    bank = bench.write_synthetic_bank(tmp_path / "bank", seeds=8, epochs=3)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps(
        {"format": 1, "space": {"scheduler": {"type": "asha"}}}))

    for source, seeds, says in [
        (tmp_path, None, "neither a sweep directory"),
        (tmp_path / "sweep", None, "ran scheduler asha"),
        (bank, 3, "--seeds 3: must be in 1..2"),
        (bank, ["scheduler.type=asha"], "scheduler.type='asha' cannot be replayed without Ray"),
    ]:
        overrides, seeds = (seeds, None) if isinstance(seeds, list) else ((), seeds)
        with pytest.raises(UserError, match=says) as error:
            replay_report(str(source), overrides, seeds=seeds, repeats=2)
        assert "\n" not in str(error.value)
