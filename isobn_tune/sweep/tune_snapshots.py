"""Tune's experiment-state snapshots, never uploaded half-written (a race in Ray 2.60).

Tune writes a snapshot of the experiment (trial statuses, searcher and callback state) into the
driver's staging directory, then uploads that directory to the sweep's storage in a background
thread. The next snapshot rewrites the same files in place, truncating them first, while the
previous upload may still be reading them: a driver killed at that moment can leave an empty
``experiment_state-*.json`` in the storage, and the sweep can no longer be resumed (seen in about
one of ten killed sweeps on S3 storage). Waiting for the upload in flight before writing the next
snapshot closes that window; Tune itself waits the same way after a forced snapshot. With a
snapshot after every controller step (see ``runner``), the wait is one small upload.
"""

from __future__ import annotations

import functools
import logging

from ray.tune.execution.tune_controller import TuneController

logger = logging.getLogger(__name__)
_INSTALLED = "_isobn_waits_for_upload"


def wait_for_upload_before_snapshot() -> None:
    """Make every snapshot wait for the previous one's upload (once per process)."""
    save = TuneController.save_to_dir
    if getattr(save, _INSTALLED, False):
        return

    @functools.wraps(save)
    def save_after_upload(self: TuneController) -> None:
        try:
            self._storage.syncer.wait()
        except Exception:  # a failed upload: Tune logs it and carries on, and so do we
            logger.exception("uploading the previous experiment snapshot to %s failed",
                             self._storage.experiment_fs_path)
        save(self)

    setattr(save_after_upload, _INSTALLED, True)
    TuneController.save_to_dir = save_after_upload
