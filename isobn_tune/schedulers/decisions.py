"""The decisions of the group schedulers as plain code over (configuration, seed, epoch, score).

A :class:`GroupRule` is told which seeds of which configurations exist (:meth:`~GroupRule.add`),
each score a seed reaches at an epoch (:meth:`~GroupRule.report`) and when a seed ends
(:meth:`~GroupRule.end`); it answers CONTINUE, PAUSE (wait for the configuration's other seeds)
or STOP for the reporting seed, and names the waiting seeds its decision stops or lets continue.
No Ray and no trial objects: the Tune adapter (:mod:`isobn_tune.schedulers.group`) maps trials to
(configuration, seed) and answers back; a replay of recorded scores drives a rule the same way.

Why whole configurations: Ray's per-trial ASHA and median stopping rule stop some seeds of a
configuration and keep others; the survivors are the lucky seeds, so the configuration's median
over seeds is biased upward. The rules here decide per configuration group instead.

How a decision is synchronised: a milestone (an ASHA rung, or an epoch of the median rule) is
decided once per group, when none of the group's known seeds is still unfinished below it. Seeds
that arrive earlier PAUSE; the decision then lets them all continue (:attr:`Book.to_resume`) or
stops them all. Seeds that ended before the milestone do not block it; the median is over the
seeds that reached it. Given ``seeds_per_group``, a milestone also waits until that many of the
group's seeds are known (with ``max_concurrent_trials=k`` Tune creates a group's seeds one by one
as slots free up, and without the wait the first to arrive would decide alone). Should every seed
be waiting, :meth:`GroupRule.settle` with ``incomplete=True`` decides on the seeds there are.
Seeds added *after* a decision follow it when they reach the milestone.

Stratified stopping (``keep_best_per``): each configuration belongs to a stratum (its method, the
``cls_norm``, given to :meth:`GroupRule.add`); the rule never stops the configuration whose median
at a milestone is the best of its stratum there so far. Why: a rule that decides across methods
can stop one method's best configuration because another method's is ahead, and the comparison
between methods the sweep exists for then sets a finished configuration against a stopped one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from isobn_tune.errors import UserError

CONTINUE, PAUSE, STOP = "CONTINUE", "PAUSE", "STOP"
STATE_FILE = "group-scheduler-state.pkl"
"""Where a sweep keeps a rule's :class:`Book` (in the Tune experiment's directory)."""

Member = tuple[str, Hashable]
"""A seed of a configuration: (the configuration's group key, the seed)."""
Milestone = float


@dataclass
class Book:
    """A rule's run state: plain, picklable data keyed by member and group key.

    Values are signed so that higher is always better.
    """

    members: set[Member] = field(default_factory=set)
    reached: dict[Member, float] = field(default_factory=dict)  # highest epoch reported
    best: dict[Member, float] = field(default_factory=dict)  # best value reported so far
    ended: set[Member] = field(default_factory=set)
    # Undecided (group, milestone) -> {member: value}; those members are paused, waiting.
    arrivals: dict[tuple[str, Milestone], dict[Member, float]] = field(default_factory=dict)
    decisions: dict[tuple[str, Milestone], bool] = field(default_factory=dict)  # True: keep
    decided_on: dict[tuple[str, Milestone], tuple[Member, ...]] = field(default_factory=dict)  # its seeds
    recorded: dict[Milestone, dict[str, float]] = field(default_factory=dict)  # group medians
    stopped_at: dict[str, Milestone] = field(default_factory=dict)
    strata: dict[str, Hashable] = field(default_factory=dict)  # group -> its method (keep_best_per)
    to_resume: list[Member] = field(default_factory=list)  # paused seeds of kept groups

    def waiting(self) -> set[Member]:
        return {member for values in self.arrivals.values() for member in values}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"strata": {}} | state)  # a book saved before keep_best_per existed


@dataclass
class Step:
    """What one call decided: the reporting seed's ``action``, the waiting seeds it stopped (they
    will never report again), and the (group, milestone) pairs it decided."""

    action: str = CONTINUE
    stopped: list[Member] = field(default_factory=list)
    decided: list[tuple[str, Milestone]] = field(default_factory=list)


class GroupRule:
    """Shared machinery of the group rules: milestones, waiting seeds, whole-group decisions.

    Subclasses say when a milestone is reached, what value a seed brings to it and whether a group
    continues past it.
    """

    book_type: type[Book] = Book
    new_members_first = False  # the race's breadth first: see RaceByConfig

    def __init__(
        self, *, max_t: float | None, seeds_per_group: int | None, mode: str | None,
        keep_best_per: bool = False,
    ) -> None:
        if max_t is not None and not max_t > 0:
            raise UserError(f"{type(self).__name__}: max_t={max_t} must be > 0")
        if seeds_per_group is not None and not seeds_per_group >= 1:
            raise UserError(f"{type(self).__name__}: seeds_per_group={seeds_per_group} must be >= 1")
        self.max_t = max_t
        self.seeds_per_group = seeds_per_group
        self.keep_best_per = keep_best_per
        self.mode: str | None = None
        self.sign = 0.0
        if mode:
            self.set_mode(mode)
        self.book = self.book_type()
        self.members: dict[str, list[Member]] = defaultdict(list)  # known seeds (never pickled)

    # ----- subclass hooks -------------------------------------------------------------------
    def milestone(self, previous: float, now: float) -> Milestone | None:
        """The milestone reached by a result at ``now`` after one at ``previous``, if any."""
        raise NotImplementedError

    def arrival_value(self, member: Member, value: float) -> float:
        """The signed value a seed brings to a milestone."""
        raise NotImplementedError

    def keep(self, group: str, milestone: Milestone, values: Mapping[Member, float]) -> bool:
        """Whether a group whose seeds brought these values continues past the milestone (before
        its median is recorded)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The parameters, for a summary line."""
        raise NotImplementedError

    # ----- what drives a rule -----------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if mode not in ("min", "max"):
            raise UserError(f"{type(self).__name__}: mode={mode!r} must be 'min' or 'max'")
        self.mode = mode
        self.sign = 1.0 if mode == "max" else -1.0

    def add(
        self, member: Member, *, ended: bool = False, last_epoch: float | None = None,
        pending: bool = True, stratum: Hashable = None,
    ) -> str | None:
        """A seed exists (again, after a restore: ``last_epoch`` is the last epoch its saved state
        holds, ``pending`` whether it has not started since); ``stratum``: its configuration's
        method, for ``keep_best_per``. STOP: stop it before it runs (its group stopped at a
        milestone it reached); PAUSE: hold it (its group is undecided at the milestone it waits
        at); None: let it run."""
        book, group = self.book, member[0]
        book.strata.setdefault(group, stratum)
        if member not in self.members[group]:
            self.members[group].append(member)
        book.members.add(member)
        if ended:
            book.ended.add(member)
            return None
        book.ended.discard(member)
        return self._reconcile(member, last_epoch, pending)

    def report(self, member: Member, epoch: float, score: float) -> Step:
        """A seed's score at an epoch (in the metric's own direction)."""
        book, group, step = self.book, member[0], Step()
        value = self.sign * score
        previous = book.reached.get(member, -math.inf)
        book.reached[member] = max(previous, epoch)
        book.best[member] = max(book.best.get(member, -math.inf), value)
        if member in book.to_resume:
            book.to_resume.remove(member)
        if group in book.stopped_at and book.reached[member] >= book.stopped_at[group]:
            step.action = STOP  # a late seed reaching the milestone its group stopped at
            return step
        if self.max_t is not None and epoch >= self.max_t:
            step.action = STOP
            return step
        milestone = self.milestone(previous, epoch)
        if milestone is None or (group, milestone) in book.decisions:
            return step
        book.arrivals.setdefault((group, milestone), {})[member] = self.arrival_value(member, value)
        if self._blocked(group, milestone):
            step.action = PAUSE
        elif not self._decide(group, milestone, step, current=member):
            step.action = STOP
        return step

    def end(self, member: Member) -> Step:
        """A seed ended (finished, stopped, errored or removed): decide what no longer waits on it."""
        book = self.book
        book.ended.add(member)
        if member in book.to_resume:
            book.to_resume.remove(member)
        return self.settle([key for key in book.arrivals if key[0] == member[0]])

    def settle(
        self, pending: Iterable[tuple[str, Milestone]] | None = None, incomplete: bool = False
    ) -> Step:
        """Decide the undecided milestones (default: all) that nothing blocks any more;
        ``incomplete``: a group's seeds that do not exist yet no longer block."""
        step = Step()
        keys = list(self.book.arrivals) if pending is None else pending
        for group, milestone in sorted(keys, key=lambda key: key[1]):
            if (group, milestone) in self.book.arrivals and not self._blocked(group, milestone, incomplete):
                self._decide(group, milestone, step)
        return step

    @property
    def trial_epochs(self) -> float:
        """The epochs run so far, summed over seeds (what the rule let the sweep spend)."""
        return sum(max(reached, 0.0) for reached in self.book.reached.values())

    # ----- decisions --------------------------------------------------------------------------
    def _blocked(self, group: str, milestone: Milestone, incomplete: bool = False) -> bool:
        """Whether a seed of the group is still unfinished below the milestone, or (unless
        ``incomplete``) fewer than ``seeds_per_group`` of its seeds are known yet."""
        book = self.book
        if not incomplete and len(self.members[group]) < (self.seeds_per_group or 0):
            return True
        return any(
            member not in book.ended and book.reached.get(member, -math.inf) < milestone
            for member in self.members[group]
        )

    def _decide(self, group: str, milestone: Milestone, step: Step, current: Member | None = None) -> bool:
        """Decide a group at a milestone and apply it to its waiting seeds but ``current``."""
        book = self.book
        values = book.arrivals.pop((group, milestone))
        keep = self.keep(group, milestone, values) or self._best_of_stratum(group, milestone, median(values))
        book.recorded.setdefault(milestone, {})[group] = median(values)
        book.decisions[(group, milestone)] = keep
        book.decided_on[(group, milestone)] = tuple(sorted(values))
        step.decided.append((group, milestone))
        if not keep:
            book.stopped_at[group] = milestone
        for member in values:
            if member == current or member in book.ended or member not in self.members[group]:
                continue  # not known: not re-added after a restore
            if keep:
                book.to_resume.append(member)
            else:
                self._stop(member, step)
        return keep

    def _best_of_stratum(self, group: str, milestone: Milestone, value: float) -> bool:
        """With ``keep_best_per``: whether ``value`` (the group's median at the milestone) is the
        best of its stratum's medians recorded there so far, so the group must not stop."""
        if not self.keep_best_per:
            return False
        stratum = self.book.strata.get(group)
        rivals = [v for g, v in self.book.recorded.get(milestone, {}).items()
                  if g != group and self.book.strata.get(g) == stratum]
        return all(value >= v for v in rivals if not math.isnan(v))

    def _stop(self, member: Member, step: Step) -> None:
        """Stop a waiting seed: it will never report again."""
        self.book.ended.add(member)
        step.stopped.append(member)

    def _reconcile(self, member: Member, last_epoch: float | None, pending: bool) -> str | None:
        """Line up the book with a (re-)added unfinished seed; see :meth:`add`."""
        book, group = self.book, member[0]
        if member in book.reached and (last_epoch is None or last_epoch < book.reached[member]):
            # The book is ahead of the seed's saved state: forget what the seed will redo.
            book.reached[member] = -math.inf if last_epoch is None else last_epoch
            for (_, milestone), values in book.arrivals.items():
                if milestone > book.reached[member]:
                    values.pop(member, None)
            book.arrivals = {key: values for key, values in book.arrivals.items() if values}
        if member in book.to_resume and pending:
            book.to_resume.remove(member)
        if group in book.stopped_at and book.reached.get(member, -math.inf) >= book.stopped_at[group]:
            return STOP
        if member in book.waiting():
            return PAUSE
        return None

    # ----- pickling: the known seeds are rebuilt as they are added again ------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["members"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.members = defaultdict(list)


def median(values: Mapping[Any, float]) -> float:
    return float(np.median(list(values.values())))
