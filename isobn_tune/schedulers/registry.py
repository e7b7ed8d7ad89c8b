"""Every scheduler a space file may name, by its ``type``: one line per scheduler.

Adding one: a module with its section (a :class:`~isobn_tune.schedulers.section.SchedulerSection`
that builds its Tune scheduler and names its problems with other sections) and a line here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Union

from pydantic import Field

from isobn_tune.schedulers.asha_by_config import AshaByConfigScheduler
from isobn_tune.schedulers.median_by_config import MedianByConfigScheduler
from isobn_tune.schedulers.per_trial import AshaScheduler, FifoScheduler, MedianScheduler, PbtScheduler
from isobn_tune.schedulers.race_by_config import RaceByConfigScheduler
from isobn_tune.schedulers.section import SchedulerSection


def by_type(sections: Iterable[type[SchedulerSection]]) -> dict[str, type[SchedulerSection]]:
    return {section.kind(): section for section in sections}


SCHEDULERS = by_type((
    FifoScheduler,
    AshaScheduler,
    MedianScheduler,
    PbtScheduler,
    AshaByConfigScheduler,
    MedianByConfigScheduler,
    RaceByConfigScheduler,
))


def scheduler_union(registry: dict[str, type[SchedulerSection]] = SCHEDULERS) -> Any:
    """The ``scheduler`` section's type: one of the registry's sections, chosen by ``type``."""
    return Annotated[Union[tuple(registry.values())], Field(discriminator="type")]  # noqa: UP007
