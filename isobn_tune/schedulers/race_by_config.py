"""``race_by_config``: configurations raced seed by seed against the best so far (F-race, SMAC's
intensifier); a configuration stops with all its seeds once a paired test says it is worse."""

from __future__ import annotations

import math
import pickle
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from isobn_tune.errors import UserError
from isobn_tune.results.groups import MIN_PAIRED_SEEDS, RACE_ALPHA
from isobn_tune.results.statistics import paired_worse_test, smallest_one_sided_p
from isobn_tune.schedulers.decisions import STATE_FILE, Book, GroupRule, Member, Milestone, Step
from isobn_tune.schedulers.section import GroupSection, Problem, SweepFacts
from isobn_tune.train.metrics import MODE


@dataclass(frozen=True)
class RaceStop:
    """Why a race stopped a configuration: at ``epoch`` its seeds trailed those of ``incumbent``
    (a group key) by a median of ``diff`` (challenger - incumbent, in the metric's units) over
    ``n_pairs`` shared seeds, with one-sided p-value ``p_value``."""

    epoch: Milestone
    incumbent: str
    diff: float
    p_value: float
    n_pairs: int


@dataclass
class RaceBook(Book):
    # milestone -> group -> seed -> signed value: the pairs every later decision there compares with
    by_seed: dict[Milestone, dict[str, dict[Hashable, float]]] = field(default_factory=dict)
    stops: dict[str, RaceStop] = field(default_factory=dict)


class RaceByConfig(GroupRule):
    """Seed-paired racing over configuration groups (F-race, SMAC's intensifier): at every epoch
    from ``min_epochs`` on, a group is compared seed by seed with the incumbent, the group with the
    best median at that epoch over the seeds the two share; it stops as a whole when a one-sided
    exact Wilcoxon signed-rank test says it is worse by more than ``tolerance`` at level ``alpha``
    (:func:`isobn_tune.results.statistics.paired_worse_test`).

    Why: rank-based rules (ASHA, the median rule) stop groups whose seed medians happen to trail
    and keep the first arrivals at a rung; pairing by seed removes the noise a seed shares across
    configurations, so a group stops only on evidence. Never on fewer than
    :data:`~isobn_tune.results.groups.MIN_PAIRED_SEEDS` shared seeds; with n seeds the p-value is at least
    2**-n, so ``alpha`` 0.05 needs 5 seeds (3 seeds: ``alpha`` >= 0.125, every seed worse).

    A seed's value at a milestone is its best so far. The incumbent is chosen among the groups
    decided at that milestone so far, the group itself included (then it continues). Each decision
    re-tests the groups that passed the milestone earlier and still run, against the incumbent
    there now, so arriving first is no advantage; and new seeds start before paused seeds of kept
    groups resume (:attr:`new_members_first`: breadth first, as F-race evaluates every candidate
    on an instance before the next), so better groups reach the early milestones soon. A group
    stopped on a re-test stops at once; its :class:`RaceStop` names the milestone compared. With
    ``keep_best_per`` the incumbent is per stratum (each group raced against its own method's
    best) and a stratum's best group never stops.
    ``max_t`` (optional) stops seeds at that epoch without a last, useless wait. Why each group
    stopped is in :attr:`stops` (saved with the book; see :func:`saved_race_stops`).
    """

    book_type = RaceBook
    book: RaceBook
    new_members_first = True

    def __init__(
        self,
        *,
        min_epochs: float = 1,
        alpha: float = RACE_ALPHA,
        tolerance: float = 0.0,
        max_t: float | None = None,
        seeds_per_group: int | None = None,
        mode: str | None = None,
        keep_best_per: bool = False,
    ) -> None:
        super().__init__(max_t=max_t, seeds_per_group=seeds_per_group, mode=mode, keep_best_per=keep_best_per)
        if not min_epochs >= 0:
            raise UserError(f"RaceByConfig: min_epochs={min_epochs} must be >= 0")
        if not 0 < alpha < 1:
            raise UserError(f"RaceByConfig: alpha={alpha} must be in (0, 1)")
        if not 0 <= tolerance < math.inf:
            raise UserError(f"RaceByConfig: tolerance={tolerance} must be finite and >= 0")
        self.min_epochs = min_epochs
        self.alpha = alpha
        self.tolerance = tolerance

    @property
    def stops(self) -> dict[str, RaceStop]:
        """Group key -> why it was stopped."""
        return dict(self.book.stops)

    def milestone(self, previous: float, now: float) -> Milestone | None:
        return now if now >= self.min_epochs and now > previous else None

    def arrival_value(self, member: Member, value: float) -> float:
        return self.book.best[member]

    def keep(self, group: str, milestone: Milestone, values: Mapping[Member, float]) -> bool:
        mine = {seed: v for (_, seed), v in values.items() if math.isfinite(v)}
        self.book.by_seed.setdefault(milestone, {})[group] = mine
        return self._stop_if_worse(group, milestone) is None

    def _decide(self, group: str, milestone: Milestone, step: Step, current: Member | None = None) -> bool:
        """Decide ``group`` at the milestone, then re-test the groups that passed it earlier and
        still run: the incumbent there may have changed, and the first to arrive would otherwise
        always run on (each is its own incumbent until a better one gets there)."""
        keep = super()._decide(group, milestone, step, current)
        book = self.book
        for other in sorted(book.by_seed[milestone]):
            live = [member for member in self.members[other] if member not in book.ended]
            if other == group or other in book.stopped_at or not live:
                continue
            if self._stop_if_worse(other, milestone) is not None:
                book.stopped_at[other] = milestone
                book.arrivals = {key: v for key, v in book.arrivals.items() if key[0] != other}
                book.to_resume = [member for member in book.to_resume if member not in live]
                for member in live:
                    self._stop(member, step)
        return keep

    def _stop_if_worse(self, group: str, milestone: Milestone) -> RaceStop | None:
        """Test ``group`` against the incumbent over the seeds recorded at the milestone; record
        and return why it stops, if it does."""
        here = self.book.by_seed[milestone]
        incumbent = self._incumbent(group, here)
        mine = list(here[group].values())
        if incumbent == group or (mine and self._best_of_stratum(group, milestone, float(np.median(mine)))):
            return None
        test = paired_worse_test(here[group], here[incumbent], margin=self.tolerance)
        if test.p_value > self.alpha:
            return None
        stop = RaceStop(milestone, incumbent, self.sign * test.diff_median, test.p_value, test.n_pairs)
        self.book.stops[group] = stop
        return stop

    def _incumbent(self, group: str, here: Mapping[str, Mapping[Hashable, float]]) -> str:
        """The group (of ``group``'s stratum, with ``keep_best_per``) with the best median over the
        seeds it shares with ``group`` (at least :data:`MIN_PAIRED_SEEDS` of them); ``group`` itself
        on a tie or without such a group."""
        mine, strata = here[group], self.book.strata
        if self.keep_best_per:
            here = {other: values for other, values in here.items() if strata.get(other) == strata.get(group)}
        best, best_median = group, float(np.median(list(mine.values()))) if mine else -math.inf
        for other, values in here.items():
            shared = [values[seed] for seed in mine.keys() & values.keys()]
            if other != group and len(shared) >= MIN_PAIRED_SEEDS:
                median = float(np.median(shared))
                if median > best_median:
                    best, best_median = other, median
        return best

    def describe(self) -> str:
        return (f"from {self.min_epochs:g}, alpha {self.alpha:g}, tolerance {self.tolerance:g}, "
                f"at least {MIN_PAIRED_SEEDS} shared seeds")


def saved_race_stops(experiment_dir: str | Path) -> dict[str, RaceStop] | None:
    """The stops of the race that ran the Tune experiment in ``experiment_dir`` (its driver
    staging directory), by group key; None if no race ran there."""
    path = Path(experiment_dir, STATE_FILE)
    if not path.is_file():
        return None
    book = pickle.loads(path.read_bytes())
    return dict(book.stops) if isinstance(book, RaceBook) else None


class RaceByConfigScheduler(GroupSection):
    """Seed-paired racing: a configuration stops, with all its seeds, once a one-sided paired test
    (exact Wilcoxon signed-rank) says its seeds are worse than those of the best configuration so
    far on the same seeds."""

    epoch_keys = ("min_epochs", "max_t")
    type: Literal["race_by_config"] = Field(description="Scheduler kind.")
    min_epochs: int = Field(default=1, ge=1, le=1000, description="Epochs before a configuration can stop.")
    alpha: float = Field(
        default=RACE_ALPHA, gt=0, lt=1,
        description="Level of the test; with n seeds its p-value is at least 2**-n (3 seeds: 0.125).",
    )
    tolerance: float = Field(
        default=0.0, ge=0, le=100,
        description="Points (x100) a configuration may trail the best by and still count as tied.",
    )
    max_t: int | None = Field(
        default=None, ge=1, le=1000,
        description="Epoch at which every trial stops (unset: recipe.max_epochs).",
    )

    def rule(self, facts: SweepFacts) -> RaceByConfig:
        return RaceByConfig(
            max_t=self.max_t or facts.max_epochs, min_epochs=self.min_epochs, alpha=self.alpha,
            tolerance=self.tolerance / 100,  # points -> the metric's own scale
            seeds_per_group=facts.seeds, mode=MODE, keep_best_per=self.keep_best_per is not None,
        )

    def problems(self, facts: SweepFacts) -> list[Problem]:
        found = super().problems(facts)
        floor = smallest_one_sided_p(facts.seeds)
        if facts.seeds < MIN_PAIRED_SEEDS or floor > self.alpha:
            found.append((
                ("scheduler", "alpha"),
                (f"no configuration could ever stop: a race needs at least {MIN_PAIRED_SEEDS} seeds and "
                 f"with {facts.seeds} the test's p-value is at least {floor:g}; add seeds or raise alpha"),
                self.alpha,
            ))
        return found
