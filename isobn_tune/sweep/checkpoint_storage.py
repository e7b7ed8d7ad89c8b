"""A checkpoint the storage cannot take (a full disk, a quota, a file size limit): the trial errors.

Tune copies each reported checkpoint from the trial's temporary directory to
``<storage>/<task>/<trial>/checkpoint_<n>`` before it registers it. When that copy fails, the trial
errors with one line naming the checkpoint's path, its size and the free space there, and the
half-written directory is deleted: it was never registered (the saved state still points at the
trial's last good checkpoint), and the next attempt writes the same ``checkpoint_<n>`` again.
Once there is space, ``isobn-tune resume SWEEP --retry-errored`` continues the trial from that
last good checkpoint; a plain ``resume`` leaves it errored, as it does every errored trial.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pyarrow.fs

from isobn_tune.sweep.disk_estimate import _size as size


class CheckpointNotSaved(RuntimeError):
    """The storage refused a trial's checkpoint; the message says where and how much space is left."""


def checkpoint_not_saved(exc: OSError, epoch: int, ckpt_dir: Path, fs: pyarrow.fs.FileSystem,
                         path: str) -> CheckpointNotSaved:
    """The error of a trial whose epoch-``epoch`` checkpoint (``ckpt_dir``) could not be written to
    ``path`` on ``fs``, after deleting what was written of it."""
    with contextlib.suppress(OSError):
        fs.delete_dir(path)
    needed = sum(f.stat().st_size for f in ckpt_dir.rglob("*") if f.is_file())
    reason = exc.strerror or (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
    return CheckpointNotSaved(
        f"the checkpoint of epoch {epoch} ({size(needed)}) could not be written to {_shown(fs, path)}: "
        f"{reason}; {free_space(fs, path)}; once there is space, `isobn-tune resume SWEEP "
        "--retry-errored` continues this trial from its last saved checkpoint"
    )


def free_space(fs: pyarrow.fs.FileSystem, path: str) -> str:
    """The free space of the filesystem holding ``path`` (or its nearest existing parent), in words."""
    if not isinstance(fs, pyarrow.fs.LocalFileSystem):
        return f"free space unknown on {fs.type_name}"
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = shutil.disk_usage(existing)
    return f"{size(usage.free)} free of {size(usage.total)} on that filesystem"


def _shown(fs: pyarrow.fs.FileSystem, path: str) -> str:
    return path if isinstance(fs, pyarrow.fs.LocalFileSystem) else f"{fs.type_name}://{path}"
