"""Tune's experiment snapshots are never rewritten while they upload (``tune_snapshots``).

A real Tune experiment snapshotting after every step, whose driver uploads are slowed down as a
remote store's would be (0.3 s each, injected into Ray's own upload function): the staging files
an upload reads must not change while it runs. Without the fix, the next snapshot rewrites them
during most uploads (checked by hand), which is how a killed driver leaves an empty state behind.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.train._internal import storage

from isobn_tune.sweep.tune_snapshots import wait_for_upload_before_snapshot

UPLOAD_S = 0.3


def test_no_snapshot_is_rewritten_while_it_uploads(ray_session, tmp_path, monkeypatch) -> None:
    def reporting(config: dict[str, Any]) -> None:  # local: pickled by value (workers cannot import tests/)
        for step in range(6):
            tune.report({"step": step})
            time.sleep(0.05)

    upload = storage._upload_to_fs_path
    uploads: list[bool] = []  # per upload of the experiment state: unchanged while it ran

    def slow_upload(local_path: str, **kwargs: Any) -> None:
        def state() -> dict[str, bytes]:
            return {p.name: p.read_bytes() for p in Path(local_path).glob("experiment_state-*.json")}

        before = state()
        time.sleep(UPLOAD_S)
        upload(local_path=local_path, **kwargs)
        if before:
            uploads.append(state() == before)

    monkeypatch.setattr(storage, "_upload_to_fs_path", slow_upload)
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0")  # a snapshot after every step, as sweeps do
    wait_for_upload_before_snapshot()
    tuner = tune.Tuner(reporting, tune_config=tune.TuneConfig(num_samples=2),
                       run_config=tune.RunConfig(name="snapshots", storage_path=str(tmp_path), verbose=0))
    assert not tuner.fit().errors
    assert len(uploads) >= 5
    assert all(uploads), f"{uploads.count(False)} of {len(uploads)} snapshots were rewritten while uploading"
