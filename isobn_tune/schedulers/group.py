"""The Tune adapter of the group rules (:mod:`isobn_tune.schedulers.decisions`): Tune's
``TrialScheduler`` interface over a :class:`~isobn_tune.schedulers.decisions.GroupRule`.

It maps each trial to (configuration, seed), passes on its results and its end, answers the
rule's CONTINUE / PAUSE / STOP, stops the waiting trials the rule stops, and resumes the paused
trials of kept groups when Tune asks what to run next.

Tune's default ``BasicVariantGenerator`` without ``max_concurrent_trials`` creates trials ahead of
time, up to ``TUNE_MAX_PENDING_TRIALS_PG`` pending ones (by default at least 200): a grid of that
size exists from the start. Let ``k`` be a multiple of the seeds per group, with the seed as the
grid's fastest-varying key (Tune varies the alphabetically first key fastest); a paused trial
still counts as running, so Tune creates a group's seeds one by one as slots free up.

Requirements: the trainable reports ``time_attr`` and the metric in every result and a checkpoint
at least at every milestone (pausing resumes from the latest checkpoint), and results are not
buffered (the adapter disables result buffering).

Restore: Ray saves a scheduler only as it was when the ``Tuner`` was built, never its run state,
so the adapter writes the rule's book to the experiment's driver staging directory (synced with
the experiment state) on every event and reads it back when ``Tuner.restore`` re-adds the trials.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections import defaultdict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.result import DEFAULT_METRIC
from ray.tune.schedulers import TrialScheduler

from isobn_tune.errors import UserError
from isobn_tune.results.groups import group_key, seed_of, value_at
from isobn_tune.schedulers import decisions
from isobn_tune.schedulers.decisions import STATE_FILE, GroupRule, Member, Step

_FINISHED = (Trial.TERMINATED, Trial.ERROR)
_ACTIONS = {decisions.CONTINUE: TrialScheduler.CONTINUE, decisions.PAUSE: TrialScheduler.PAUSE,
            decisions.STOP: TrialScheduler.STOP}
# Attributes tied to this process's Trial objects: rebuilt as Tune (re-)adds trials, never pickled.
_RUNTIME = ("_trials", "_member_of", "_trial_of", "_state_path", "_to_park", "_to_stop")

GroupFn = Callable[[dict[str, Any]], str]
SeedFn = Callable[[dict[str, Any]], Hashable]


class GroupScheduler(TrialScheduler):
    """A group rule as a Tune scheduler; ``group_fn`` and ``seed_fn`` name a trial's
    configuration and seed from its config, ``stratum_key`` the config key (at any depth) whose
    value is its stratum for the rule's ``keep_best_per``."""

    _supports_buffered_results = False

    def __init__(
        self,
        rule: GroupRule,
        time_attr: str = "epoch",
        metric: str | None = None,
        mode: str | None = None,
        group_fn: GroupFn = group_key,
        seed_fn: SeedFn = seed_of,
        stratum_key: str | None = None,
    ) -> None:
        super().__init__()
        self.rule = rule
        self._time_attr = time_attr
        self._metric = metric
        if mode:
            rule.set_mode(mode)
        self._group_fn = group_fn
        self._seed_fn = seed_fn
        self._stratum_key = stratum_key
        self._state_path: Path | None = None
        self._trials: dict[str, Trial] = {}
        self._member_of: dict[str, Member] = {}
        self._trial_of: dict[Member, str] = {}
        # Re-added trials (restore, retry after an error) to hold or stop before they start.
        self._to_park: set[str] = set()
        self._to_stop: set[str] = set()

    @property
    def _mode(self) -> str | None:
        return self.rule.mode

    def _member(self, trial: Trial) -> Member:
        """(configuration, seed); a trial without a seed is its own seed."""
        seed = self._seed_fn(trial.config)
        return self._group_fn(trial.config), trial.trial_id if seed is None else seed

    # ----- Tune's scheduler interface -------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        if metric:
            self._metric = metric
        if mode:
            self.rule.set_mode(mode)
        if self._metric is None and self._mode:
            self._metric = DEFAULT_METRIC
        return True

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if not self._metric or not self._mode:
            raise UserError(
                f"{type(self.rule).__name__} needs a metric and a mode (got metric={self._metric!r}, "
                f"mode={self._mode!r}): pass them to the scheduler or to tune.TuneConfig"
            )
        tid, member = trial.trial_id, self._member(trial)
        if self._state_path is None:
            self._adopt_saved_book(trial, member)
        self._trials[tid], self._member_of[tid], self._trial_of[member] = trial, member, tid
        verdict = self.rule.add(
            member, ended=trial.status in _FINISHED, pending=trial.status == Trial.PENDING,
            last_epoch=(trial.last_result or {}).get(self._time_attr),
            stratum=value_at(trial.config, self._stratum_key) if self._stratum_key else None,
        )
        if verdict == decisions.STOP:
            self._to_stop.add(tid)
        elif verdict == decisions.PAUSE:
            self._to_park.add(tid)
        self._save()

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        member = self._member_of[trial.trial_id]
        step = self.rule.report(member, result[self._time_attr], result[self._metric])
        self._apply(tune_controller, step)
        self._save()
        return _ACTIONS[step.action]

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
        if self._apply(tune_controller, self.rule.settle()):
            self._save()
        trials = tune_controller.get_trials()
        chosen = self._pick(trials)
        stalled = not any(t.status == Trial.RUNNING for t in trials)
        if chosen is None and stalled and self.rule.book.arrivals:
            self._apply(tune_controller, self.rule.settle(incomplete=True))
            self._save()
            chosen = self._pick(trials)
        return chosen

    def _pick(self, trials: list[Trial]) -> Trial | None:
        """A paused seed of a kept group, a pending seed of a group with waiting seeds, any
        pending trial, a trial paused by someone else (pending trials first when the rule
        says :attr:`~GroupRule.new_members_first`)."""
        book = self.rule.book
        pending = [t for t in trials if t.status == Trial.PENDING]
        blocked = {group for group, _ in book.arrivals}
        resumable = [self._trials[tid] for tid in (self._trial_of.get(m) for m in book.to_resume)
                     if tid in self._trials and self._trials[tid].status == Trial.PAUSED]
        ordered = [t for t in pending if t.trial_id in self._member_of
                   and self._member_of[t.trial_id][0] in blocked] + pending
        ordered = ordered + resumable if self.rule.new_members_first else resumable + ordered
        if ordered:
            return ordered[0]
        waiting = {self._trial_of.get(member) for member in book.waiting()}
        for trial in trials:
            if trial.status == Trial.PAUSED and trial.trial_id not in waiting:
                return trial
        return None

    def debug_string(self) -> str:
        rule, book = self.rule, self.rule.book
        stops: dict[float, int] = defaultdict(int)
        for milestone in book.stopped_at.values():
            stops[milestone] += 1
        stopped = ", ".join(f"{n} at {m:g}" for m, n in sorted(stops.items())) or "none"
        return (
            f"Using {type(rule).__name__} ({rule.describe()}): {len(rule.members)} groups; "
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
        self._trials, self._member_of, self._trial_of = {}, {}, {}
        self._to_park, self._to_stop = set(), set()

    # ----- the rule's answers to Tune ---------------------------------------------------------
    def _apply(self, tune_controller: Any, step: Step) -> bool:
        """Stop the waiting trials the rule stopped, and the re-added trials of stopped groups;
        whether anything was decided or stopped."""
        changed = bool(step.decided or self._to_stop)
        for member in step.stopped:
            trial = self._trials[self._trial_of[member]]
            # Stopped in the saved experiment state too: Tune records the new status of a trial
            # without an actor only when told to.
            tune_controller.stop_trial(trial)
            tune_controller._mark_trial_to_checkpoint(trial)
        while self._to_stop:
            trial = self._trials[self._to_stop.pop()]
            if trial.status not in _FINISHED:
                tune_controller.stop_trial(trial)
                tune_controller._mark_trial_to_checkpoint(trial)
        return changed

    def _end(self, tune_controller: Any, trial: Trial) -> None:
        self._apply(tune_controller, self.rule.end(self._member_of[trial.trial_id]))
        self._save()

    # ----- restore ----------------------------------------------------------------------------
    def _adopt_saved_book(self, trial: Trial, member: Member) -> None:
        """Take over the book saved in this experiment if it knows ``trial`` (Tuner.restore)."""
        if trial.storage is None:
            return
        self._state_path = Path(trial.storage.experiment_driver_staging_path, STATE_FILE)
        if self._state_path.is_file():
            saved = pickle.loads(self._state_path.read_bytes())
            if member in saved.members:
                self.rule.book = saved

    def _save(self) -> None:
        if self._state_path is None:
            return
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the synced folder, never in it: a sync must not list a half-written file.
        fd, tmp = tempfile.mkstemp(dir=self._state_path.parent.parent, prefix=f".{STATE_FILE}-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(self.rule.book, f)
        os.replace(tmp, self._state_path)
