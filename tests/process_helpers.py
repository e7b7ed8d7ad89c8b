"""Processes started by tests in their own sessions, found and killed by session (Ray workers
put themselves in their own process groups, so killing a group is not enough)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def session_pids(session_id: int) -> list[int]:
    """Live (non-zombie) processes of a session."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def kill_session(session_id: int, timeout_s: float = 60) -> list[int]:
    """SIGKILL every process of a session until none is left or ``timeout_s`` has passed;
    the pids still alive afterwards."""
    deadline = time.monotonic() + timeout_s
    while (pids := session_pids(session_id)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    return session_pids(session_id)


def stop_session(proc: subprocess.Popen, grace_s: float = 15.0) -> list[int]:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session=True``), SIGKILL
    whatever of its session is left after ``grace_s``, reap ``proc``; the pids still alive."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while session_pids(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = kill_session(proc.pid)
    proc.wait(timeout=30)
    return survivors
