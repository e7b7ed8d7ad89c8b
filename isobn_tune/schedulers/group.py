"""Tune schedulers that keep or stop a configuration group (a config over all its seeds) whole.

Ray's per-trial ASHA and median stopping rule stop some seeds of a configuration and keep others;
the survivors are the lucky seeds, so the configuration's median over seeds is biased upward.
These schedulers decide per group instead: on the median over its seeds
(:class:`GroupSuccessiveHalving`, :class:`GroupMedianStoppingRule`), or seed by seed against the
best group so far (:class:`RaceByConfig`).

How a decision is synchronised: a milestone (an ASHA rung, or an epoch of the median rule) is
decided once per group, when none of the group's seeds that Tune has created is still unfinished
below it. Seeds that arrive earlier are PAUSED (which frees their resources); the decision then
resumes them all or stops them all. Seeds that errored or ended before the milestone do not block
it; the median is over the seeds that reached it. Given ``seeds_per_group``, a milestone also
waits until that many of the group's seeds exist: with ``max_concurrent_trials=k`` a paused trial
still counts as running, so Tune creates a group's seeds one by one as slots free up, and without
the wait the first to arrive would decide alone. Should every live trial be waiting (``k`` smaller
than a group, or a searcher that stopped mid-group), the waiting milestones are decided on the
seeds there are. Seeds Tune creates *after* a decision follow it when they reach the milestone.
Tune's default ``BasicVariantGenerator`` without ``max_concurrent_trials`` creates trials ahead of
time, up to ``TUNE_MAX_PENDING_TRIALS_PG`` pending ones (by default at least 200): a grid of that
size exists from the start. Let ``k`` be a multiple of the seeds per group, with the seed as the
grid's fastest-varying key (Tune varies the alphabetically first key fastest).

Requirements: the trainable reports ``time_attr`` and the metric in every result and a checkpoint
at least at every milestone (pausing resumes from the latest checkpoint), and results are not
buffered (the schedulers disable result buffering).

Restore: Ray saves a scheduler only as it was when the ``Tuner`` was built, never its run state,
so the schedulers write their bookkeeping to the experiment's driver staging directory (synced with
the experiment state) on every event and read it back when ``Tuner.restore`` re-adds the trials.
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.result import DEFAULT_METRIC
from ray.tune.schedulers import TrialScheduler

from isobn_tune.errors import UserError
from isobn_tune.results.groups import MIN_PAIRED_SEEDS, RACE_ALPHA, group_key, seed_of
from isobn_tune.results.statistics import paired_worse_test

STATE_FILE = "group-scheduler-state.pkl"
_FINISHED = (Trial.TERMINATED, Trial.ERROR)
# Attributes tied to this process's Trial objects: rebuilt as Tune (re-)adds trials, never pickled.
_RUNTIME = ("_trials", "_group_of", "_members", "_state_path", "_to_park", "_to_stop")

GroupFn = Callable[[dict[str, Any]], str]
SeedFn = Callable[[dict[str, Any]], Hashable]
Milestone = float


@dataclass
class _Book:
    """A group scheduler's run state: plain, picklable data keyed by trial id and group key.

    Values are signed so that higher is always better.
    """

    trial_ids: set[str] = field(default_factory=set)
    reached: dict[str, float] = field(default_factory=dict)  # highest time_attr reported
    best: dict[str, float] = field(default_factory=dict)  # best value reported so far
    ended: set[str] = field(default_factory=set)
    # Undecided (group, milestone) -> {trial id: value}; those trials are paused, waiting.
    arrivals: dict[tuple[str, Milestone], dict[str, float]] = field(default_factory=dict)
    decisions: dict[tuple[str, Milestone], bool] = field(default_factory=dict)  # True: keep
    decided_on: dict[tuple[str, Milestone], tuple[str, ...]] = field(default_factory=dict)  # its seeds
    recorded: dict[Milestone, dict[str, float]] = field(default_factory=dict)  # group medians
    stopped_at: dict[str, Milestone] = field(default_factory=dict)
    to_resume: list[str] = field(default_factory=list)  # paused seeds of kept groups

    def waiting(self) -> set[str]:
        return {tid for values in self.arrivals.values() for tid in values}


class _GroupScheduler(TrialScheduler):
    """Shared machinery: milestones, pausing, group decisions, persistence."""

    _supports_buffered_results = False
    _book_type: type[_Book] = _Book
    _new_trials_first = False  # the race's breadth first: see RaceByConfig

    def __init__(
        self,
        time_attr: str,
        metric: str | None,
        mode: str | None,
        max_t: float | None,
        group_fn: GroupFn,
        seeds_per_group: int | None,
    ) -> None:
        super().__init__()
        if max_t is not None and not max_t > 0:
            raise UserError(f"{type(self).__name__}: max_t={max_t} must be > 0")
        if seeds_per_group is not None and not seeds_per_group >= 1:
            raise UserError(f"{type(self).__name__}: seeds_per_group={seeds_per_group} must be >= 1")
        self._seeds_per_group = seeds_per_group
        self._time_attr = time_attr
        self._metric = metric
        self._mode: str | None = None
        self._sign = 0.0
        if mode:
            self._set_mode(mode)
        self._max_t = max_t
        self._group_fn = group_fn
        self._book = self._book_type()
        self._state_path: Path | None = None
        self._trials: dict[str, Trial] = {}
        self._group_of: dict[str, str] = {}
        self._members: dict[str, list[str]] = defaultdict(list)
        # Re-added trials (restore, retry after an error) to hold or stop before they start.
        self._to_park: set[str] = set()
        self._to_stop: set[str] = set()

    # ----- subclass hooks -------------------------------------------------------------------
    def _milestone(self, previous: float, now: float) -> Milestone | None:
        """The milestone reached by a result at ``now`` after one at ``previous``, if any."""
        raise NotImplementedError

    def _arrival_value(self, trial_id: str, value: float) -> float:
        """The signed value a seed brings to a milestone."""
        raise NotImplementedError

    def _keep(self, group: str, milestone: Milestone, values: Mapping[str, float]) -> bool:
        """Whether a group whose seeds (trial ids) brought these values continues past the
        milestone (before its median is recorded)."""
        raise NotImplementedError

    def _describe(self) -> str:
        """The parameters, for ``debug_string``."""
        raise NotImplementedError

    # ----- Tune's scheduler interface -------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        if metric:
            self._metric = metric
        if mode:
            self._set_mode(mode)
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        return True

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if not self._metric or not self._mode:
            raise UserError(
                f"{type(self).__name__} needs a metric and a mode (got metric={self._metric!r}, "
                f"mode={self._mode!r}): pass them to the scheduler or to tune.TuneConfig"
            )
        if self._state_path is None:
            self._adopt_saved_book(trial)
        tid, book = trial.trial_id, self._book
        group = self._group_fn(trial.config)
        self._trials[tid] = trial
        if self._group_of.get(tid) != group:
            self._group_of[tid] = group
            self._members[group].append(tid)
        book.trial_ids.add(tid)
        if trial.status in _FINISHED:
            book.ended.add(tid)
        else:
            book.ended.discard(tid)
            self._reconcile(trial, group)
        self._save()

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        book, tid = self._book, trial.trial_id
        group = self._group_of[tid]
        now, value = result[self._time_attr], self._sign * result[self._metric]
        previous = book.reached.get(tid, -math.inf)
        book.reached[tid] = max(previous, now)
        book.best[tid] = max(book.best.get(tid, -math.inf), value)
        if tid in book.to_resume:
            book.to_resume.remove(tid)
        action = self._act(tune_controller, tid, group, previous, now, value)
        self._save()
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._end(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._end(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._end(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """Hold or stop re-added trials and settle groups no longer blocked, then pick (see
        :meth:`_pick`). Should nothing run and nothing be left to start while seeds wait, they
        wait for seeds that cannot be created: their milestones are decided on the seeds there are.

        Tune calls this before it starts any pending trial, so re-added trials never run early.
        """
        for tid in self._to_park:
            if self._trials[tid].status == Trial.PENDING:
                tune_controller._set_trial_status(self._trials[tid], Trial.PAUSED)
        self._to_park.clear()
        if self._settle(tune_controller, list(self._book.arrivals)):
            self._save()
        trials = tune_controller.get_trials()
        chosen = self._pick(trials)
        stalled = not any(t.status == Trial.RUNNING for t in trials)
        if chosen is None and stalled and self._book.arrivals:
            self._settle(tune_controller, list(self._book.arrivals), incomplete=True)
            self._save()
            chosen = self._pick(trials)
        return chosen

    def _pick(self, trials: list[Trial]) -> Trial | None:
        """A paused seed of a kept group, a pending seed of a group with waiting seeds, any
        pending trial, a trial paused by someone else (pending trials first when
        :attr:`_new_trials_first`)."""
        pending = [t for t in trials if t.status == Trial.PENDING]
        blocked = {group for group, _ in self._book.arrivals}
        resumable = [self._trials[tid] for tid in self._book.to_resume
                     if tid in self._trials and self._trials[tid].status == Trial.PAUSED]
        ordered = [t for t in pending if self._group_of.get(t.trial_id) in blocked] + pending
        ordered = ordered + resumable if self._new_trials_first else resumable + ordered
        if ordered:
            return ordered[0]
        waiting = self._book.waiting()
        for trial in trials:
            if trial.status == Trial.PAUSED and trial.trial_id not in waiting:
                return trial
        return None

    def debug_string(self) -> str:
        book = self._book
        stops = defaultdict(int)
        for milestone in book.stopped_at.values():
            stops[milestone] += 1
        stopped = ", ".join(f"{n} at {m:g}" for m, n in sorted(stops.items())) or "none"
        return (
            f"Using {type(self).__name__} ({self._describe()}): {len(self._members)} groups; "
            f"groups stopped: {stopped}; seeds waiting for their group: {len(book.waiting())}"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for runtime in _RUNTIME:
            del state[runtime]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._state_path = None
        self._trials, self._group_of, self._members = {}, {}, defaultdict(list)
        self._to_park, self._to_stop = set(), set()

    # ----- decisions --------------------------------------------------------------------------
    def _act(
        self, tune_controller: Any, tid: str, group: str, previous: float, now: float, value: float
    ) -> str:
        book = self._book
        if group in book.stopped_at and book.reached[tid] >= book.stopped_at[group]:
            return TrialScheduler.STOP  # a late seed reaching the milestone its group stopped at
        if self._max_t is not None and now >= self._max_t:
            return TrialScheduler.STOP
        milestone = self._milestone(previous, now)
        if milestone is None or (group, milestone) in book.decisions:
            return TrialScheduler.CONTINUE
        book.arrivals.setdefault((group, milestone), {})[tid] = self._arrival_value(tid, value)
        if self._blocked(group, milestone):
            return TrialScheduler.PAUSE
        keep = self._decide(tune_controller, group, milestone, current=tid)
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def _blocked(self, group: str, milestone: Milestone, incomplete: bool = False) -> bool:
        """Whether a seed of the group is still unfinished below the milestone, or (unless
        ``incomplete``) fewer than ``seeds_per_group`` of its seeds exist yet."""
        book = self._book
        if not incomplete and len(self._members[group]) < (self._seeds_per_group or 0):
            return True
        return any(
            tid not in book.ended
            and self._trials[tid].status not in _FINISHED
            and book.reached.get(tid, -math.inf) < milestone
            for tid in self._members[group]
        )

    def _decide(
        self, tune_controller: Any, group: str, milestone: Milestone, current: str | None = None
    ) -> bool:
        """Decide a group at a milestone and apply it to its waiting seeds but ``current``."""
        book = self._book
        values = book.arrivals.pop((group, milestone))
        keep = self._keep(group, milestone, values)
        book.recorded.setdefault(milestone, {})[group] = _median(values)
        book.decisions[(group, milestone)] = keep
        book.decided_on[(group, milestone)] = tuple(sorted(values))
        if not keep:
            book.stopped_at[group] = milestone
        for tid in values:
            trial = self._trials.get(tid)  # None: not re-added after a restore
            if tid == current or tid in book.ended or trial is None:
                continue
            if keep:
                book.to_resume.append(tid)
            else:
                _stop(tune_controller, trial)
        return keep

    def _settle(
        self, tune_controller: Any, pending: Iterable[tuple[str, Milestone]], incomplete: bool = False
    ) -> bool:
        """Decide the given undecided milestones that nothing blocks any more (``incomplete``: a
        group's missing seeds no longer block); stop the re-added seeds of stopped groups."""
        changed = False
        for group, milestone in sorted(pending, key=lambda key: key[1]):
            if (group, milestone) in self._book.arrivals and not self._blocked(group, milestone, incomplete):
                self._decide(tune_controller, group, milestone)
                changed = True
        while self._to_stop:
            trial = self._trials[self._to_stop.pop()]
            if trial.status not in _FINISHED:
                _stop(tune_controller, trial)
            changed = True
        return changed

    def _end(self, tune_controller: Any, trial: Trial) -> None:
        book, tid = self._book, trial.trial_id
        book.ended.add(tid)
        if tid in book.to_resume:
            book.to_resume.remove(tid)
        group = self._group_of[tid]
        self._settle(tune_controller, [key for key in book.arrivals if key[0] == group])
        self._save()

    # ----- restore ----------------------------------------------------------------------------
    def _reconcile(self, trial: Trial, group: str) -> None:
        """Line up the book with a (re-)added unfinished trial; mark it to be held while its group
        is undecided at the milestone it waits at, or stopped if its group stopped at a milestone
        it reached."""
        book, tid = self._book, trial.trial_id
        last = (trial.last_result or {}).get(self._time_attr)
        if tid in book.reached and (last is None or last < book.reached[tid]):
            # The book is ahead of the trial's saved state: forget what the trial will redo.
            book.reached[tid] = -math.inf if last is None else last
            for (_, milestone), values in book.arrivals.items():
                if milestone > book.reached[tid]:
                    values.pop(tid, None)
            book.arrivals = {key: values for key, values in book.arrivals.items() if values}
        if tid in book.to_resume and trial.status == Trial.PENDING:
            book.to_resume.remove(tid)
        if group in book.stopped_at and book.reached.get(tid, -math.inf) >= book.stopped_at[group]:
            self._to_stop.add(tid)
        elif tid in book.waiting():
            self._to_park.add(tid)

    def _adopt_saved_book(self, trial: Trial) -> None:
        """Take over the book saved in this experiment if it knows ``trial`` (Tuner.restore)."""
        if trial.storage is None:
            return
        self._state_path = Path(trial.storage.experiment_driver_staging_path, STATE_FILE)
        if self._state_path.is_file():
            saved = pickle.loads(self._state_path.read_bytes())
            if trial.trial_id in saved.trial_ids:
                self._book = saved

    def _save(self) -> None:
        if self._state_path is None:
            return
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the synced folder, never in it: a sync must not list a half-written file.
        fd, tmp = tempfile.mkstemp(dir=self._state_path.parent.parent, prefix=f".{STATE_FILE}-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(self._book, f)
        os.replace(tmp, self._state_path)

    # ----- helpers ----------------------------------------------------------------------------
    def _set_mode(self, mode: str) -> None:
        if mode not in ("min", "max"):
            raise UserError(f"{type(self).__name__}: mode={mode!r} must be 'min' or 'max'")
        self._mode = mode
        self._sign = 1.0 if mode == "max" else -1.0


def _median(values: Mapping[str, float]) -> float:
    return float(np.median(list(values.values())))


def _stop(tune_controller: Any, trial: Trial) -> None:
    """Stop a trial that is waiting (paused or pending), also in the saved experiment state: Tune
    records the new status of a trial without an actor only when told to."""
    tune_controller.stop_trial(trial)
    tune_controller._mark_trial_to_checkpoint(trial)


class GroupSuccessiveHalving(_GroupScheduler):
    """ASHA over configuration groups: a group continues past a rung if the median over its seeds
    is within the top ``1/reduction_factor`` of the group medians recorded at that rung so far.

    Rungs are at ``grace_period * reduction_factor**k < max_t``; every trial stops at ``max_t``.

    Guarantee: every seed of a kept group continues; every seed of a stopped group stops at the
    same rung (its last reported ``time_attr`` is that rung). See the module docstring for how
    seeds are synchronised and for what the trainable must report.
    """

    def __init__(
        self,
        time_attr: str = "epoch",
        metric: str | None = None,
        mode: str | None = None,
        max_t: float = 10,
        grace_period: float = 1,
        reduction_factor: float = 3,
        group_fn: GroupFn = group_key,
        seeds_per_group: int | None = None,
    ) -> None:
        super().__init__(time_attr, metric, mode, max_t, group_fn, seeds_per_group)
        if not 0 < grace_period <= max_t:
            raise UserError(
                f"GroupSuccessiveHalving: grace_period={grace_period} must be in (0, max_t={max_t}]"
            )
        if not reduction_factor > 1:
            raise UserError(
                f"GroupSuccessiveHalving: reduction_factor={reduction_factor} must be > 1"
            )
        self._rf = reduction_factor
        self.rungs: list[float] = []
        rung = grace_period
        while rung < max_t:
            self.rungs.append(rung)
            rung *= reduction_factor

    def _milestone(self, previous: float, now: float) -> Milestone | None:
        passed = [rung for rung in self.rungs if previous < rung <= now]
        return passed[-1] if passed else None

    def _arrival_value(self, trial_id: str, value: float) -> float:
        return value

    def _keep(self, group: str, milestone: Milestone, values: Mapping[str, float]) -> bool:
        earlier = list(self._book.recorded.get(milestone, {}).values())
        return not earlier or _median(values) >= np.nanpercentile(earlier, (1 - 1 / self._rf) * 100)

    def _describe(self) -> str:
        return "rungs " + ", ".join(f"{rung:g}" for rung in self.rungs)


class GroupMedianStoppingRule(_GroupScheduler):
    """The median stopping rule over configuration groups: at every ``time_attr`` value from
    ``grace_period`` on, a group whose median over seeds of each seed's best value so far is worse
    than the median of the other groups' medians at that time stops as a whole (decided once at
    least ``min_groups_required`` other groups have been recorded there).

    Every reported ``time_attr`` value is a milestone, so seeds wait for each other at every epoch.
    ``max_t`` (optional) stops trials at that time without a last, useless wait.

    Guarantee: every seed of a kept group continues; every seed of a stopped group stops at the
    same epoch. See the module docstring for how seeds are synchronised and for what the
    trainable must report.
    """

    def __init__(
        self,
        time_attr: str = "epoch",
        metric: str | None = None,
        mode: str | None = None,
        grace_period: float = 1,
        min_groups_required: int = 3,
        max_t: float | None = None,
        group_fn: GroupFn = group_key,
        seeds_per_group: int | None = None,
    ) -> None:
        super().__init__(time_attr, metric, mode, max_t, group_fn, seeds_per_group)
        if not grace_period >= 0:
            raise UserError(f"GroupMedianStoppingRule: grace_period={grace_period} must be >= 0")
        if not min_groups_required >= 1:
            raise UserError(
                f"GroupMedianStoppingRule: min_groups_required={min_groups_required} must be >= 1"
            )
        self._grace_period = grace_period
        self._min_groups_required = min_groups_required

    def _milestone(self, previous: float, now: float) -> Milestone | None:
        return now if now >= self._grace_period and now > previous else None

    def _arrival_value(self, trial_id: str, value: float) -> float:
        return self._book.best[trial_id]

    def _keep(self, group: str, milestone: Milestone, values: Mapping[str, float]) -> bool:
        others = [v for g, v in self._book.recorded.get(milestone, {}).items() if g != group]
        return len(others) < self._min_groups_required or _median(values) >= np.nanmedian(others)

    def _describe(self) -> str:
        return f"from {self._grace_period:g}, needs {self._min_groups_required} other groups"


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
class _RaceBook(_Book):
    seed_of: dict[str, Hashable] = field(default_factory=dict)  # trial id -> its seed
    # milestone -> group -> seed -> signed value: the pairs every later decision there compares with
    by_seed: dict[Milestone, dict[str, dict[Hashable, float]]] = field(default_factory=dict)
    stops: dict[str, RaceStop] = field(default_factory=dict)


class RaceByConfig(_GroupScheduler):
    """Seed-paired racing over configuration groups (F-race, SMAC's intensifier): at every
    ``time_attr`` value from ``min_epochs`` on, a group is compared seed by seed with the
    incumbent, the group with the best median at that time over the seeds the two share; it stops
    as a whole when a one-sided exact Wilcoxon signed-rank test says it is worse by more than
    ``tolerance`` at level ``alpha`` (:func:`isobn_tune.results.statistics.paired_worse_test`).

    Why: rank-based rules (ASHA, the median rule) stop groups whose seed medians happen to trail
    and keep the first arrivals at a rung; pairing by seed removes the noise a seed shares across
    configurations, so a group stops only on evidence. Never on fewer than
    :data:`~isobn_tune.results.groups.MIN_PAIRED_SEEDS` shared seeds; with n seeds the p-value is at least
    2**-n, so ``alpha`` 0.05 needs 5 seeds (3 seeds: ``alpha`` >= 0.125, every seed worse).

    A seed's value at a milestone is its best so far. The incumbent is chosen among the groups
    decided at that milestone so far, the group itself included (then it continues). Each decision
    re-tests the groups that passed the milestone earlier and still run, against the incumbent
    there now, so arriving first is no advantage; and pending trials start before paused seeds of
    kept groups resume (breadth first, as F-race evaluates every candidate on an instance before
    the next), so better groups reach the early milestones soon. A group stopped on a re-test stops
    at once; its :class:`RaceStop` names the milestone compared. ``max_t`` (optional) stops trials
    at that time without a last, useless wait. Why each group stopped is in :attr:`stops` (saved
    with the book; see :func:`saved_race_stops`).
    """

    _book_type = _RaceBook
    _book: _RaceBook
    _new_trials_first = True

    def __init__(
        self,
        time_attr: str = "epoch",
        metric: str | None = None,
        mode: str | None = None,
        min_epochs: float = 1,
        alpha: float = RACE_ALPHA,
        tolerance: float = 0.0,
        max_t: float | None = None,
        group_fn: GroupFn = group_key,
        seed_fn: SeedFn = seed_of,
        seeds_per_group: int | None = None,
    ) -> None:
        super().__init__(time_attr, metric, mode, max_t, group_fn, seeds_per_group)
        if not min_epochs >= 0:
            raise UserError(f"RaceByConfig: min_epochs={min_epochs} must be >= 0")
        if not 0 < alpha < 1:
            raise UserError(f"RaceByConfig: alpha={alpha} must be in (0, 1)")
        if not 0 <= tolerance < math.inf:
            raise UserError(f"RaceByConfig: tolerance={tolerance} must be finite and >= 0")
        self._min_epochs = min_epochs
        self._alpha = alpha
        self._tolerance = tolerance
        self._seed_fn = seed_fn

    @property
    def stops(self) -> dict[str, RaceStop]:
        """Group key -> why it was stopped."""
        return dict(self._book.stops)

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)  # first, as it may adopt the saved book
        if trial.trial_id not in self._book.seed_of:
            self._book.seed_of[trial.trial_id] = self._seed_fn(trial.config)
            self._save()

    def _milestone(self, previous: float, now: float) -> Milestone | None:
        return now if now >= self._min_epochs and now > previous else None

    def _arrival_value(self, trial_id: str, value: float) -> float:
        return self._book.best[trial_id]

    def _keep(self, group: str, milestone: Milestone, values: Mapping[str, float]) -> bool:
        mine = {self._book.seed_of[tid]: v for tid, v in values.items() if math.isfinite(v)}
        self._book.by_seed.setdefault(milestone, {})[group] = mine
        return self._stop_if_worse(group, milestone) is None

    def _decide(
        self, tune_controller: Any, group: str, milestone: Milestone, current: str | None = None
    ) -> bool:
        """Decide ``group`` at the milestone, then re-test the groups that passed it earlier and
        still run: the incumbent there may have changed, and the first to arrive would otherwise
        always run on (each is its own incumbent until a better one gets there)."""
        keep = super()._decide(tune_controller, group, milestone, current)
        book = self._book
        for other in sorted(book.by_seed[milestone]):
            live = [tid for tid in self._members[other] if tid not in book.ended
                    and self._trials[tid].status not in _FINISHED]
            if other == group or other in book.stopped_at or not live:
                continue
            if self._stop_if_worse(other, milestone) is not None:
                book.stopped_at[other] = milestone
                book.arrivals = {key: v for key, v in book.arrivals.items() if key[0] != other}
                book.to_resume = [tid for tid in book.to_resume if tid not in live]
                for tid in live:
                    _stop(tune_controller, self._trials[tid])
        return keep

    def _stop_if_worse(self, group: str, milestone: Milestone) -> RaceStop | None:
        """Test ``group`` against the incumbent over the seeds recorded at the milestone; record
        and return why it stops, if it does."""
        here = self._book.by_seed[milestone]
        incumbent = self._incumbent(group, here)
        if incumbent == group:
            return None
        test = paired_worse_test(here[group], here[incumbent], margin=self._tolerance)
        if test.p_value > self._alpha:
            return None
        stop = RaceStop(milestone, incumbent, self._sign * test.diff_median, test.p_value, test.n_pairs)
        self._book.stops[group] = stop
        return stop

    @staticmethod
    def _incumbent(group: str, here: Mapping[str, Mapping[Hashable, float]]) -> str:
        """The group with the best median over the seeds it shares with ``group`` (at least
        :data:`MIN_PAIRED_SEEDS` of them); ``group`` itself on a tie or without such a group."""
        mine = here[group]
        best, best_median = group, float(np.median(list(mine.values()))) if mine else -math.inf
        for other, values in here.items():
            shared = [values[seed] for seed in mine.keys() & values.keys()]
            if other != group and len(shared) >= MIN_PAIRED_SEEDS:
                median = float(np.median(shared))
                if median > best_median:
                    best, best_median = other, median
        return best

    def _describe(self) -> str:
        return (f"from {self._min_epochs:g}, alpha {self._alpha:g}, tolerance {self._tolerance:g}, "
                f"at least {MIN_PAIRED_SEEDS} shared seeds")


def saved_race_stops(experiment_dir: str | Path) -> dict[str, RaceStop] | None:
    """The stops of the :class:`RaceByConfig` that ran the Tune experiment in ``experiment_dir``
    (its driver staging directory), by group key; None if no race ran there."""
    path = Path(experiment_dir, STATE_FILE)
    if not path.is_file():
        return None
    book = pickle.loads(path.read_bytes())
    return dict(book.stops) if isinstance(book, _RaceBook) else None
