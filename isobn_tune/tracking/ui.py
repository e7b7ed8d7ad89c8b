"""``isobn-tune ui``: MLflow's UI for a sweep, opened at the sweep's parent run.

A local store (SQLite, or a file store) is served by ``mlflow ui`` on 127.0.0.1 for as long as the
command runs; Ctrl-C, SIGTERM (``kill``, ``timeout``, service managers) and SIGHUP (a closed
terminal) stop every process it started (it runs in its own session, with MLflow's job consumers
off, so none outlives it). A tracking server is already a UI: only its address is printed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from isobn_tune.errors import UserError
from isobn_tune.redaction import redact_uri, without_userinfo
from isobn_tune.sweep.directory import SweepDir, read_manifest, sweep_tracking_uri
from isobn_tune.tracking.names import UI_WORKFLOW_QUERY

REMOTE_SCHEMES = ("http", "https", "databricks")
UI_LOG = "mlflow-ui.log"
STARTUP_TIMEOUT_S = 180.0  # the first start compiles MLflow's server on a busy machine
STOP_GRACE_S = 10.0
# MLflow's job consumers are separate processes that outlive the UI unless job execution is off.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(Exception):
    """One of ``STOP_SIGNALS`` arrived: the served UI is to stop."""


@dataclass(frozen=True)
class UiTarget:
    """What to show: a tracking URI, and the run and experiment to open (None: the store's start page)."""

    tracking_uri: str
    run_id: str | None
    log_dir: Path


def target_of(sweep: str | None, tracking_uri: str | None) -> UiTarget:
    """A sweep directory's store and parent run; else ``--tracking-uri`` / ``$MLFLOW_TRACKING_URI``."""
    if sweep is not None:
        sweep_dir = SweepDir.parse(sweep)
        manifest = read_manifest(sweep_dir)
        log_dir = Path(sweep_dir.root) if "://" not in sweep_dir.root else Path.cwd()
        return UiTarget(sweep_tracking_uri(manifest, tracking_uri), manifest["parent_run_id"], log_dir)
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise UserError("which store? pass a sweep directory (`isobn-tune ui results/<sweep>`), "
                        "--tracking-uri or set MLFLOW_TRACKING_URI")
    return UiTarget(uri, None, Path.cwd())


def run_page(base_url: str, tracking_uri: str, run_id: str | None) -> str:
    """The UI address of ``run_id`` (its experiment looked up in the store), else the start page;
    in MLflow's model-training view, where the experiment's runs, metrics and charts are."""
    if run_id is None:
        return f"{base_url.rstrip('/')}/#/?{UI_WORKFLOW_QUERY}"
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        experiment_id = MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    except MlflowException as exc:
        raise UserError(f"run {run_id} not found in {redact_uri(tracking_uri)}: "
                        f"{str(exc).splitlines()[0]}") from None
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{UI_WORKFLOW_QUERY}"


def browse(sweep: str | None, *, tracking_uri: str | None = None, port: int | None = None) -> int:
    """Print the parent run's address; for a local store serve it until Ctrl-C, SIGTERM or SIGHUP."""
    target = target_of(sweep, tracking_uri)
    scheme = target.tracking_uri.split(":", 1)[0].split("+")[0]
    if scheme in REMOTE_SCHEMES:  # the address a browser opens (it asks for a login itself)
        print(run_page(without_userinfo(target.tracking_uri), target.tracking_uri, target.run_id))
        return 0
    port = port or free_port()
    log = target.log_dir / UI_LOG
    previous = {sig: signal.signal(sig, _request_stop) for sig in STOP_SIGNALS}
    proc: subprocess.Popen | None = None
    try:
        with log.open("a") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", target.tracking_uri,
                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                cwd=target.log_dir, env=os.environ | SERVER_ENV, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(base_url, proc, log)
        print(f"MLflow UI: {run_page(base_url, target.tracking_uri, target.run_id)}", flush=True)
        print(f"(serving {redact_uri(target.tracking_uri)}; log {log}; Ctrl-C stops it)", flush=True)
        proc.wait()
        raise UserError(f"mlflow ui exited with {proc.returncode}; see {log}")
    except StopRequested:
        return 0
    finally:
        for sig in STOP_SIGNALS:  # a second signal must not cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        if proc is not None:
            stop(proc)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _request_stop(signum: int, frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


def wait_healthy(base_url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"mlflow ui exited with {proc.returncode} while starting; see {log}")
        with contextlib.suppress(urllib.error.URLError, OSError):
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise UserError(f"mlflow ui did not answer at {base_url} within {STARTUP_TIMEOUT_S:.0f} s; see {log}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the UI's whole process group, SIGKILL what is left after ``STOP_GRACE_S``."""
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait_s
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()  # reap the leader so it does not count as alive
            time.sleep(0.1)
        if not _group_alive(proc.pid):
            break
    proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
