"""``median_by_config``: the median stopping rule over configuration groups (a configuration with
all its seeds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import Field

from isobn_tune.errors import UserError
from isobn_tune.schedulers.decisions import GroupRule, Member, Milestone, median
from isobn_tune.schedulers.section import GroupSection, SweepFacts
from isobn_tune.train.metrics import MODE


class GroupMedianStoppingRule(GroupRule):
    """The median stopping rule over configuration groups: at every epoch from ``grace_period``
    on, a group whose median over seeds of each seed's best value so far is worse than the median
    of the other groups' medians at that epoch stops as a whole (decided once at least
    ``min_groups_required`` other groups have been recorded there).

    Every epoch is a milestone, so seeds wait for each other at every epoch. ``max_t``
    (optional) stops seeds at that epoch without a last, useless wait.

    Guarantee: every seed of a kept group continues; every seed of a stopped group stops at the
    same epoch. See :mod:`isobn_tune.schedulers.decisions` for how seeds are synchronised.
    """

    def __init__(
        self,
        *,
        grace_period: float = 1,
        min_groups_required: int = 3,
        max_t: float | None = None,
        seeds_per_group: int | None = None,
        mode: str | None = None,
        keep_best_per: bool = False,
    ) -> None:
        super().__init__(max_t=max_t, seeds_per_group=seeds_per_group, mode=mode, keep_best_per=keep_best_per)
        if not grace_period >= 0:
            raise UserError(f"GroupMedianStoppingRule: grace_period={grace_period} must be >= 0")
        if not min_groups_required >= 1:
            raise UserError(
                f"GroupMedianStoppingRule: min_groups_required={min_groups_required} must be >= 1"
            )
        self.grace_period = grace_period
        self.min_groups_required = min_groups_required

    def milestone(self, previous: float, now: float) -> Milestone | None:
        return now if now >= self.grace_period and now > previous else None

    def arrival_value(self, member: Member, value: float) -> float:
        return self.book.best[member]

    def keep(self, group: str, milestone: Milestone, values: Mapping[Member, float]) -> bool:
        others = [v for g, v in self.book.recorded.get(milestone, {}).items() if g != group]
        return len(others) < self.min_groups_required or median(values) >= np.nanmedian(others)

    def describe(self) -> str:
        return f"from {self.grace_period:g}, needs {self.min_groups_required} other groups"


class MedianByConfigScheduler(GroupSection):
    """Median stopping deciding on configuration groups (a config over all its seeds)."""

    epoch_keys = ("grace_period",)
    type: Literal["median_by_config"] = Field(description="Scheduler kind.")
    grace_period: int = Field(default=1, ge=1, le=1000, description="Epochs before a group can stop.")
    min_groups_required: int = Field(
        default=3, ge=1, le=100_000, description="Groups needed to compute a median."
    )

    def rule(self, facts: SweepFacts) -> GroupMedianStoppingRule:
        return GroupMedianStoppingRule(
            max_t=facts.max_epochs, grace_period=self.grace_period,
            min_groups_required=self.min_groups_required, seeds_per_group=facts.seeds,
            mode=MODE, keep_best_per=self.keep_best_per is not None,
        )
