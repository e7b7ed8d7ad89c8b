"""Helpers shared by the MLflow tests: tiny sweep files for module-scoped fixtures, reading runs
and artifacts back, and starting / stopping `mlflow server` and CLI subprocesses by session."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from conftest import tiny_space as conftest_tiny_space
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from process_helpers import kill_session, stop_session

from isobn_tune.mlflow_runs import child_runs

SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def tiny_space(glue_dir: Path, storage: Path, **sections: Any) -> dict[str, Any]:
    """conftest's tiny sweep with ``max_failures: 0``; ``sections`` replace whole top-level
    sections (module-scoped fixtures cannot use the function-scoped ``write_space``)."""
    base = conftest_tiny_space(glue_dir, storage)
    base["run"]["max_failures"] = 0
    return base | sections


def write_yaml(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def trial_runs(client: MlflowClient, parent: Run) -> list[Run]:
    return child_runs(client, parent.info.experiment_id, parent.info.run_id)


def artifact_files(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file of a run, recursively."""
    files = []
    for info in client.list_artifacts(run_id, path):
        files += artifact_files(client, run_id, info.path) if info.is_dir else [info.path]
    return files


def artifact_bytes(client: MlflowClient, run_id: str, path: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()


def start_cli(*args: str, log: Path) -> subprocess.Popen:
    """``isobn-tune ARGS`` in the background, in its own session, output to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(["isobn-tune", *args], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 900
) -> subprocess.CompletedProcess[str]:
    """``isobn-tune ARGS`` in its own session; every process it leaves behind (Ray) is killed."""
    proc = subprocess.Popen(["isobn-tune", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        survivors = kill_session(proc.pid)
        proc.wait(timeout=30)
    assert not survivors, f"processes of `isobn-tune {' '.join(args)}` survived: {survivors}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MlflowServer:
    """A started ``mlflow server`` / ``mlflow ui`` process and its URL."""

    url: str
    proc: subprocess.Popen
    log: Path

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow exited with {self.proc.returncode}:\n{self._log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"mlflow at {self.url} not healthy after {timeout_s} s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text()[-2000:]


@contextmanager
def mlflow_server(
    backend_uri: str, workdir: Path, command: str = "server", wait: bool = True
) -> Iterator[MlflowServer]:
    """``mlflow server`` (or ``mlflow ui``) on 127.0.0.1 (one worker, job execution off,
    artifacts under ``workdir``), healthy unless ``wait`` is false; its whole session is
    stopped afterwards, asserting that none of its processes survive."""
    port = free_port()
    log = workdir / f"mlflow-{command}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["mlflow", command, "--backend-store-uri", backend_uri,
             "--artifacts-destination", str(workdir / "server-artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=workdir, env=os.environ | SERVER_ENV, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = MlflowServer(f"http://127.0.0.1:{port}", proc, log)
    try:
        if wait:
            server.wait_healthy()
        yield server
    finally:
        survivors = stop_session(proc)
        assert not survivors, f"mlflow {command} processes survived: {survivors}"
