"""A live progress line per Tune experiment: trials by state, the best so far and an ETA; and a
short message on the terminal for each trial that errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial

from isobn_tune import console
from isobn_tune.sweep.errored_trials import EveryErroredTrial
from isobn_tune.train.metrics import BEST_OBJECTIVE

_STATES = (Trial.RUNNING, Trial.TERMINATED, Trial.ERROR, Trial.PAUSED, Trial.PENDING)
_DONE = (Trial.TERMINATED, Trial.ERROR)


class ProgressLine(EveryErroredTrial):
    """``[task mm:ss] R running, F finished, E errored, P paused, Q pending of N | best ... | ETA``
    through ``console.status``; ``total``: the trials the experiment will have (Tune creates them
    lazily, those not created yet count as pending); ``max_epochs``: a trial's epoch budget, for
    the ETA. The clock starts when Tune starts (or restores) the experiment."""

    def __init__(self, label: str, *, total: int = 0, max_epochs: int = 1) -> None:
        self.label = label
        self.total = total
        self.max_epochs = max_epochs
        self._start = time.monotonic()
        self._epoch_seconds: list[float] = []
        self._peak_running = 1
        self._latest: dict[str, dict[str, Any]] = {}  # trial id -> its newest result

    def setup(self, **info: Any) -> None:
        self._start = time.monotonic()

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        # Tune calls this before it updates the trial's last_result.
        self._latest[trial.trial_id] = result
        if "time_this_iter_s" in result:
            self._epoch_seconds.append(float(result["time_this_iter_s"]))
        running = sum(t.status == Trial.RUNNING for t in trials)
        self._peak_running = max(self._peak_running, running)
        console.status(self.line(trials))

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        console.status(self.line(trials))

    def errored(self, trials: list[Trial], trial: Trial) -> None:
        """One line per errored trial, however it errored (see :class:`EveryErroredTrial`)."""
        console.say(trial_error_message(trial))
        console.status(self.line(trials))

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        super().on_experiment_end(trials, **info)
        console.status(self.line(trials, with_eta=False), final=True)

    def line(self, trials: list[Trial], *, with_eta: bool = True) -> str:
        text = format_progress(self.label, trials, time.monotonic() - self._start, total=self.total,
                               latest=self._latest)
        eta = self.eta_s(trials) if with_eta else None
        return text if eta is None else f"{text} | ETA {format_duration(eta)}"

    def eta_s(self, trials: list[Trial]) -> float | None:
        """Seconds left if every unfinished trial runs all its epochs (early stopping only makes it
        shorter) at the mean epoch time so far, as many at once as have run at once; None before
        the first epoch."""
        if not self._epoch_seconds:
            return None
        not_created = max(0, self.total - len(trials))
        epochs_left = self.max_epochs * not_created + sum(
            max(0, self.max_epochs - int(self._result(t).get("epoch", 0)))
            for t in trials if t.status not in _DONE
        )
        mean_epoch = sum(self._epoch_seconds) / len(self._epoch_seconds)
        return epochs_left * mean_epoch / self._peak_running

    def _result(self, trial: Trial) -> dict[str, Any]:
        return self._latest.get(trial.trial_id) or trial.last_result


def format_progress(label: str, trials: list[Trial], elapsed_s: float, *, total: int = 0,
                    latest: dict[str, dict[str, Any]] | None = None) -> str:
    """The status line of ``trials`` out of ``total`` planned (trials not created yet are pending);
    the best is the highest ``best_objective`` reported so far (``latest``: newer results than the
    trials' own, by trial id)."""
    counts = dict.fromkeys(_STATES, 0)
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    planned = max(total, len(trials))
    counts[Trial.PENDING] += planned - len(trials)
    results = {t.trial_id: (latest or {}).get(t.trial_id) or t.last_result for t in trials}
    scored = {trial_id: r[BEST_OBJECTIVE] for trial_id, r in results.items() if BEST_OBJECTIVE in r}
    best = ""
    if scored:
        top = max(scored, key=scored.__getitem__)
        best = f" | best {scored[top]:.4f} ({top})"
    minutes, seconds = divmod(int(elapsed_s), 60)
    return (
        f"[{label} {minutes:02d}:{seconds:02d}] {counts[Trial.RUNNING]} running, "
        f"{counts[Trial.TERMINATED]} finished, {counts[Trial.ERROR]} errored, "
        f"{counts[Trial.PAUSED]} paused, {counts[Trial.PENDING]} pending of {planned}{best}"
    )


def format_duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h07m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def trial_error_message(trial: Trial) -> str:
    """``trial ID errored: <the exception's last line> (full traceback: PATH)``."""
    path = trial.error_file
    reason = "see its log"
    if path and Path(path).is_file():
        lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
        reason = lines[-1] if lines else reason
    where = f" (full traceback: {path})" if path else ""
    return f"trial {trial.trial_id} errored: {reason}{where}"
