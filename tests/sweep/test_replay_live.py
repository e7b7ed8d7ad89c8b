"""The replay against real Ray Tune: it reads a fifo sweep's recorded scores from Tune's own result
files, and a rule it drives decides what the same rule decides live through the Tune adapter on the
same arrival order (``keep_best_per`` from the trials' configs included).

The trainable reports recorded, per-epoch scores instead of training (seconds, not minutes).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from ray import tune

from isobn_tune.errors import UserError
from isobn_tune.results.groups import group_key
from isobn_tune.schedulers.group import GroupScheduler
from isobn_tune.schedulers.race_by_config import RaceByConfig
from isobn_tune.schedulers.section import STOPPING
from isobn_tune.space import SweepSpace
from isobn_tune.sweep.directory import SweepDir, write_manifest
from isobn_tune.sweep.replay import TaskGrid, check_seeds, drive, load_source
from isobn_tune.train.metrics import BEST_OBJECTIVE, OBJECTIVE

EPOCHS = 3
SEEDS = (1, 2, 3, 4, 5)  # the race's one-sided exact test on 5 pairs reaches 1/32 < alpha 0.05
# In trial order (seeds innermost): IsoBN's best, none's worse, IsoBN's worse, none's best.
GROUPS = (("isobn", 1.2), ("none", 0.0), ("isobn", 0.8), ("none", 0.4))


def score(quality: float, seed: int, epoch: int) -> float:
    """A seed effect every configuration shares, and a curve that rises with the epochs."""
    return quality + 0.05 * seed + 0.01 * epoch


def recorded_trainable(config: dict) -> None:
    """Reports the recorded scores; checkpoints each epoch (a paused trial resumes from it)."""
    point, start = config["point"], 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = int(Path(folder, "epoch").read_text())
    for epoch in range(start + 1, EPOCHS + 1):
        best = max(score(point["quality"], point["seed"], e) for e in range(1, epoch + 1))
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "epoch").write_text(str(epoch))
            tune.report({"epoch": epoch, OBJECTIVE: score(point["quality"], point["seed"], epoch),
                         BEST_OBJECTIVE: best}, checkpoint=tune.Checkpoint.from_directory(folder))


pytestmark = pytest.mark.usefixtures("trainables_by_value")  # conftest: trainables shipped by value


def points() -> list[dict]:
    return [{"cls_norm": method, "quality": quality, "seed": seed}
            for method, quality in GROUPS for seed in SEEDS]


def run_tune(path: Path, name: str, scheduler: tune.schedulers.TrialScheduler | None) -> tune.ResultGrid:
    tuner = tune.Tuner(
        recorded_trainable,
        param_space={"task": "stsb", "point": tune.grid_search(points())},
        tune_config=tune.TuneConfig(
            scheduler=scheduler, max_concurrent_trials=len(SEEDS), reuse_actors=True,
            **({} if scheduler else {"metric": BEST_OBJECTIVE, "mode": "max"}),
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(path), verbose=0),
    )
    return tuner.fit()


def test_a_replayed_race_decides_as_the_live_race_through_the_tune_adapter(tmp_path: Path) -> None:
    def race(**mode: str) -> RaceByConfig:  # as race_by_config's section builds it
        return RaceByConfig(min_epochs=1, max_t=EPOCHS, seeds_per_group=len(SEEDS), keep_best_per=True,
                            **mode)

    live = GroupScheduler(race(), stratum_key="cls_norm", **STOPPING)
    results = run_tune(tmp_path, "race", live)
    live_ends = {group_key(r.config): [] for r in results}
    for r in results:
        live_ends[group_key(r.config)].append(r.metrics["epoch"])

    configs = list(dict.fromkeys(group_key({"task": "stsb", "point": p}) for p in points()))
    scores = np.array([[[score(q, s, e) for e in range(1, EPOCHS + 1)] for s in SEEDS] for _, q in GROUPS])
    grid = TaskGrid("stsb", configs, [m for m, _ in GROUPS], list(SEEDS), scores)
    order = [(c, k) for c in range(len(GROUPS)) for k in range(len(SEEDS))]  # Tune's trial order
    selection, rng = np.arange(len(SEEDS)), np.random.default_rng(0)
    replayed = drive(race(mode="max"), grid, selection, order, rng, len(SEEDS))

    assert {c: sorted(v) for c, v in live_ends.items()} == dict(zip(configs, replayed.tolist(), strict=True))
    # Each method's best ran to the end; IsoBN's worse configuration stopped against IsoBN's best.
    assert replayed[:, 0].tolist() == [EPOCHS, EPOCHS, 1, EPOCHS]


def test_the_replay_reads_a_fifo_sweeps_scores_from_tunes_result_files(tmp_path: Path) -> None:
    space = SweepSpace.model_validate({
        "name": "recorded", "model": {"name_or_path": "minilm"}, "tasks": ["stsb"],
        "grid": {"cls_norm": ["none", "isobn"], "lr": [1e-4], "batch_size": [16], "seeds": list(SEEDS)},
        "recipe": {"max_epochs": EPOCHS},
    })
    sweep = SweepDir(str(tmp_path), "recorded")
    manifest = {"name": "recorded", "space": space.model_dump(mode="json"), "tracking_uri": "file:///x"}
    write_manifest(sweep, manifest)
    run_tune(Path(sweep.root), "stsb", None)

    (grid,) = load_source(sweep.root).grids

    assert grid.scores.shape == (len(GROUPS), len(SEEDS), EPOCHS)
    for method, quality in GROUPS:
        c = grid.configs.index(group_key({"task": "stsb", "point": {"cls_norm": method, "quality": quality}}))
        assert grid.methods[c] == method
        expected = [[score(quality, s, e) for e in range(1, EPOCHS + 1)] for s in SEEDS]
        assert grid.scores[c].tolist() == expected
    with pytest.raises(UserError, match="a replay needs at least 7"):
        check_seeds([grid], None)  # 5 seeds leave none held out for a verdict

    trial = next(Path(sweep.root, "stsb").glob("*/result.json"))
    trial.write_text("\n".join(trial.read_text().splitlines()[:-1]) + "\n")  # as if its last epoch never ran
    with pytest.raises(UserError, match=r"unfinished sweep: 1 trial\(s\) did not report all 3 epochs"):
        load_source(sweep.root)
