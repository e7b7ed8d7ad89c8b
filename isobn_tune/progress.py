"""A compact live status line per Tune experiment: trials by state and the best so far."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from ray.tune import Callback
from ray.tune.experiment import Trial

from isobn_tune.metrics import BEST_OBJECTIVE

_STATES = (Trial.RUNNING, Trial.TERMINATED, Trial.ERROR, Trial.PAUSED, Trial.PENDING)


class ProgressLine(Callback):
    """Prints ``[task mm:ss] R running, F finished, E errored, P paused, Q pending of N | best ...``
    at most every ``interval_s`` seconds on results, and always when a trial or the experiment
    ends. The clock starts when Tune starts (or restores) the experiment. ``total``: the trials the
    experiment will have (Tune creates them lazily); those not created yet count as pending."""

    def __init__(
        self, label: str, *, total: int = 0, interval_s: float = 15.0, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.interval_s = interval_s
        self.stream = stream
        self._start = time.monotonic()
        self._last_print = -math.inf  # the first result always prints

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None}

    def setup(self, **info: Any) -> None:
        self._start = time.monotonic()
        self._last_print = -math.inf  # the first result always prints

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        if time.monotonic() - self._last_print >= self.interval_s:
            self._print(trials)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._print(trials)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._print(trials)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._print(trials)

    def _print(self, trials: list[Trial]) -> None:
        self._last_print = time.monotonic()
        print(format_progress(self.label, trials, time.monotonic() - self._start, total=self.total),
              file=self.stream or sys.stdout, flush=True)


def format_progress(label: str, trials: list[Trial], elapsed_s: float, *, total: int = 0) -> str:
    """The status line of ``trials`` out of ``total`` planned (trials not created yet are pending);
    the best is the highest ``best_objective`` reported so far."""
    counts = dict.fromkeys(_STATES, 0)
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    planned = max(total, len(trials))
    counts[Trial.PENDING] += planned - len(trials)
    scored = [t for t in trials if BEST_OBJECTIVE in t.last_result]
    best = ""
    if scored:
        top = max(scored, key=lambda t: t.last_result[BEST_OBJECTIVE])
        best = f" | best {top.last_result[BEST_OBJECTIVE]:.4f} ({top.trial_id})"
    minutes, seconds = divmod(int(elapsed_s), 60)
    return (
        f"[{label} {minutes:02d}:{seconds:02d}] {counts[Trial.RUNNING]} running, "
        f"{counts[Trial.TERMINATED]} finished, {counts[Trial.ERROR]} errored, "
        f"{counts[Trial.PAUSED]} paused, {counts[Trial.PENDING]} pending of {planned}{best}"
    )
