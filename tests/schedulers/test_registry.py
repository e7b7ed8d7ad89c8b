"""The scheduler registry: a ``scheduler.type`` names one registered section, which builds its Tune
scheduler and names its problems with the other sections. Adding a scheduler is a section (its own
module) plus one registry line, shown here with a tiny one registered in the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from helpers import SPACES
from pydantic import Field, create_model
from ray.tune.schedulers import HyperBandScheduler

from isobn_tune.errors import UserError
from isobn_tune.schedulers.race_by_config import RaceByConfigScheduler
from isobn_tune.schedulers.registry import SCHEDULERS, by_type, scheduler_union
from isobn_tune.schedulers.section import STOPPING, SchedulerSection, SweepFacts
from isobn_tune.space import SweepSpace, load_space
from isobn_tune.space.checks import cross_section_problems
from isobn_tune.space.schema import SCHEDULER_TYPES
from isobn_tune.sweep.search import build_scheduler

QUICKSTART = SPACES / "quickstart.yaml"


class HyperBand(SchedulerSection):
    """A tiny scheduler as a newcomer would add it: Ray's HyperBand, every trial stopped by
    ``max_t`` (an option in epochs, so at most recipe.max_epochs)."""

    epoch_keys = ("max_t",)
    type: Literal["hyperband"] = Field(description="Scheduler kind.")
    max_t: int = Field(default=2, ge=1, le=1000, description="Epochs a trial runs at most.")

    def build(self, facts: SweepFacts) -> HyperBandScheduler:
        return HyperBandScheduler(**STOPPING, max_t=self.max_t)


def space_model(registry: dict[str, type[SchedulerSection]]) -> type[SweepSpace]:
    """The space schema with its ``scheduler`` section drawn from ``registry``."""
    return create_model("SpaceWithHyperBand", __base__=SweepSpace,
                        scheduler=(scheduler_union(registry), Field(description="Trial scheduler.")))


def quickstart_with(scheduler: dict[str, Any]) -> dict[str, Any]:
    from isobn_tune.space.loading import effective_space

    return effective_space(QUICKSTART) | {"scheduler": scheduler}


def test_the_schema_offers_exactly_the_registered_types_in_registry_order() -> None:
    assert SCHEDULER_TYPES == tuple(SCHEDULERS) == (
        "fifo", "asha", "median", "pbt", "asha_by_config", "median_by_config", "race_by_config")
    assert all(section.kind() == name for name, section in SCHEDULERS.items())


def test_an_unknown_type_is_one_line_naming_every_registered_type() -> None:
    with pytest.raises(UserError) as error:
        load_space(QUICKSTART, ["scheduler.type=hyperband"])

    assert str(error.value) == (
        f"{QUICKSTART}: scheduler.type: unknown type 'hyperband'; allowed: fifo, asha, median, pbt, "
        "asha_by_config, median_by_config, race_by_config [set on the command line]"
    )


def test_a_scheduler_added_by_one_registry_line_validates_builds_and_checks_itself() -> None:
    raw = quickstart_with({"type": "hyperband", "max_t": 2})
    space = space_model(by_type((*SCHEDULERS.values(), HyperBand))).model_validate(
        raw, context={"base_dir": QUICKSTART.parent})

    assert isinstance(space.scheduler, HyperBand)
    scheduler = build_scheduler(space)
    assert type(scheduler) is HyperBandScheduler and scheduler._max_t_attr == 2
    too_long = space.model_copy(update={"scheduler": HyperBand(type="hyperband", max_t=5)})
    assert cross_section_problems(too_long) == [
        (("scheduler", "max_t"), f"must be <= recipe.max_epochs ({space.recipe.max_epochs})", 5)]


def test_a_section_checks_itself_from_the_facts_alone() -> None:
    race = RaceByConfigScheduler(type="race_by_config", min_epochs=3, alpha=0.05)
    facts = SweepFacts(max_epochs=2, seeds=3, max_concurrent_trials=4, checkpoints_to_keep=2, optuna=False)

    assert [(key, value) for key, _, value in race.problems(facts)] == [
        (("scheduler", "min_epochs"), 3),
        (("resources", "max_concurrent_trials"), 4),
        (("scheduler", "alpha"), 0.05),
    ]


def test_validating_a_space_and_deciding_without_tune_import_neither_ray_nor_torch(tmp_path: Path) -> None:
    """A replay drives the group rules without Ray; a space file validates without it."""
    code = (
        "import sys\n"
        "from isobn_tune.space import load_space\n"
        "import isobn_tune.schedulers.decisions, isobn_tune.schedulers.registry\n"
        f"load_space({str(QUICKSTART)!r}, ['scheduler={{type: race_by_config, alpha: 0.125}}'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray', 'transformers'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
