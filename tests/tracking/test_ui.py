"""``isobn-tune ui`` on a local store: every way a user, a terminal or a service manager stops it
(SIGINT, SIGTERM, SIGHUP) stops the MLflow server it started, and frees the port.

A real ``isobn-tune ui`` process serving a real (small) SQLite store; the MLflow server it starts
runs in its own session, so the test follows that session, not only the command's.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from helpers import kill_session, session_pids
from mlflow.tracking import MlflowClient

from isobn_tune.tracking.names import UI_WORKFLOW_QUERY
from isobn_tune.tracking.ui import STOP_GRACE_S, free_port


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store with one experiment and one run."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('ui-store') / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("signals"), run_name="a run")
    client.set_terminated(run.info.run_id)
    return uri


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on ``port`` (as servers do, despite closed connections'
    TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("sig", [
    # Each starts an `mlflow ui`; Ctrl-C is in the default run through tests/test_quickstart.py, and
    # SIGHUP takes SIGTERM's path (isobn_tune/tracking/ui.py)
    pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM,
    pytest.param(signal.SIGHUP, marks=pytest.mark.slow),
], ids=lambda s: s.name)
def test_ui_stops_everything_it_started_on_a_stop_signal(
    store: str, tmp_path: Path, sig: signal.Signals
) -> None:
    port = free_port()
    proc = subprocess.Popen(["isobn-tune", "ui", "--tracking-uri", store, "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    servers: list[int] = []
    try:
        first = proc.stdout.readline()  # blocks until the UI answers (or the command fails)
        start_page = f"MLflow UI: http://127.0.0.1:{port}/#/?{UI_WORKFLOW_QUERY}\n"
        assert first == start_page, first + proc.stdout.read()
        servers = children(proc.pid)
        assert len(servers) == 1
        assert len(session_pids(servers[0])) >= 2  # `mlflow ui` and the uvicorn server it started
        assert not port_is_free(port)
        signalled = time.monotonic()
        proc.send_signal(sig)  # to the command alone, as `kill`, `timeout` or a service manager does
        assert proc.wait(timeout=60) == 0, proc.stdout.read()
        assert time.monotonic() - signalled < STOP_GRACE_S  # the server stopped on SIGTERM, not SIGKILL
        assert not session_pids(servers[0]), f"the MLflow server outlived `isobn-tune ui` ({sig.name})"
        assert port_is_free(port)
    finally:
        for session in (proc.pid, *servers):
            kill_session(session)
        proc.wait(timeout=30)
