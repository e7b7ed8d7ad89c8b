"""``asha_by_config``: successive halving over configuration groups (a configuration with all its
seeds), judged by the median over seeds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import Field

from isobn_tune.errors import UserError
from isobn_tune.schedulers.decisions import GroupRule, Member, Milestone, median
from isobn_tune.schedulers.section import GroupSection, SweepFacts
from isobn_tune.train.metrics import MODE


class GroupSuccessiveHalving(GroupRule):
    """ASHA over configuration groups: a group continues past a rung if the median over its seeds
    is within the top ``1/reduction_factor`` of the group medians recorded at that rung so far.

    Rungs are at ``grace_period * reduction_factor**k < max_t``; every seed stops at ``max_t``.

    Guarantee: every seed of a kept group continues; every seed of a stopped group stops at the
    same rung. See :mod:`isobn_tune.schedulers.decisions` for how seeds are synchronised.
    """

    def __init__(
        self,
        *,
        max_t: float = 10,
        grace_period: float = 1,
        reduction_factor: float = 3,
        seeds_per_group: int | None = None,
        mode: str | None = None,
        keep_best_per: bool = False,
    ) -> None:
        super().__init__(max_t=max_t, seeds_per_group=seeds_per_group, mode=mode, keep_best_per=keep_best_per)
        if not 0 < grace_period <= max_t:
            raise UserError(
                f"GroupSuccessiveHalving: grace_period={grace_period} must be in (0, max_t={max_t}]"
            )
        if not reduction_factor > 1:
            raise UserError(
                f"GroupSuccessiveHalving: reduction_factor={reduction_factor} must be > 1"
            )
        self.reduction_factor = reduction_factor
        self.rungs: list[float] = []
        rung = grace_period
        while rung < max_t:
            self.rungs.append(rung)
            rung *= reduction_factor

    def milestone(self, previous: float, now: float) -> Milestone | None:
        passed = [rung for rung in self.rungs if previous < rung <= now]
        return passed[-1] if passed else None

    def arrival_value(self, member: Member, value: float) -> float:
        return value

    def keep(self, group: str, milestone: Milestone, values: Mapping[Member, float]) -> bool:
        earlier = list(self.book.recorded.get(milestone, {}).values())
        if not earlier:
            return True
        return median(values) >= np.nanpercentile(earlier, (1 - 1 / self.reduction_factor) * 100)

    def describe(self) -> str:
        return "rungs " + ", ".join(f"{rung:g}" for rung in self.rungs)


class AshaByConfigScheduler(GroupSection):
    """ASHA deciding on configuration groups (a config over all its seeds), not single trials."""

    epoch_keys = ("grace_period",)
    type: Literal["asha_by_config"] = Field(description="Scheduler kind.")
    grace_period: int = Field(default=1, ge=1, le=1000, description="Epochs before a group can stop.")
    reduction_factor: float = Field(default=2.0, gt=1, le=100, description="Keep 1/factor per rung.")

    def rule(self, facts: SweepFacts) -> GroupSuccessiveHalving:
        return GroupSuccessiveHalving(max_t=facts.max_epochs, grace_period=self.grace_period,
                                      reduction_factor=self.reduction_factor, seeds_per_group=facts.seeds,
                                      mode=MODE, keep_best_per=self.keep_best_per is not None)
