"""A trial that starts again without a checkpoint writes a fresh ``result.json``
(``fresh_trial_logs``).

Real Tune, one trial: its first attempt reports epoch 1 with no checkpoint and then fails; the
retry starts from scratch and reports epochs 1 and 2. Tune's own logger appends the retry's rows
after the failed attempt's (epochs 1, 1, 2), as it does to a killed driver's unsaved rows when a
sweep is resumed on the same cluster; with the callback the file holds the retry's rows alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import tune

from isobn_tune.fresh_trial_logs import FreshLogsFromScratch


def _epochs_after_a_retry(tmp_path: Path, callbacks: list[tune.Callback]) -> list[int]:
    marker = tmp_path / "failed-once"

    def fails_once(config: dict[str, Any]) -> None:  # local: pickled by value
        for epoch in (1, 2):
            tune.report({"epoch": epoch})
            if not marker.exists():
                marker.touch()
                raise RuntimeError("the first attempt dies after its first epoch")

    tuner = tune.Tuner(fails_once, run_config=tune.RunConfig(
        name="retry", storage_path=str(tmp_path), verbose=0, callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=1)))
    (result,) = tuner.fit()
    assert result.error is None
    rows = (Path(result.path) / "result.json").read_text().splitlines()
    return [json.loads(row)["epoch"] for row in rows]


def test_a_retry_from_scratch_replaces_the_failed_attempts_rows(ray_session, tmp_path) -> None:
    assert _epochs_after_a_retry(tmp_path / "fresh", [FreshLogsFromScratch()]) == [1, 2]


def test_without_it_tune_appends_the_retry_to_the_failed_attempts_rows(ray_session, tmp_path) -> None:
    """The gap the callback closes is still in Ray (drop the callback once this fails)."""
    assert _epochs_after_a_retry(tmp_path / "plain", []) == [1, 1, 2]
