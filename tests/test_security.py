"""What a sweep without ``--address`` exposes: the local Ray that ``runner.connect_ray`` starts.

Ray's core (GCS, raylets, workers and their agents) listens on every interface -- Ray offers no
loopback-only mode for a node -- so it must demand Ray's auth token, which a new local cluster
gets by default; every other server (the dashboard, when Ray's dashboard packages are installed)
must bind 127.0.0.1. The cluster runs in a subprocess in its own session, with its own HOME (so
its token file is its own), and is stopped by killing that session. (Secrets in MLflow are
tested in test_mlflow_server.py.)
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from helpers import kill_session, session_pids

START_LOCAL_RAY = (
    "import sys, ray\n"
    "from isobn_tune.runner import connect_ray\n"
    "connect_ray(None)\n"
    "print(ray.get_runtime_context().gcs_address, flush=True)\n"
    "sys.stdin.read()\n"
)
CHECK_ADDRESS = (
    "import sys\nfrom isobn_tune.sweep.preflight import check_address\ncheck_address(sys.argv[1])\n"
)
RAY_CORE = ("gcs_server", "raylet", "driver")  # and ray::* processes: workers and agents


@dataclass(frozen=True)
class Listener:
    host: str
    port: int
    process: str

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback

    @property
    def ray_core(self) -> bool:
        return self.process in RAY_CORE or self.process.startswith("ray::")


@dataclass
class LocalRay:
    gcs_address: str
    listeners: list[Listener]


def _process_name(pid: int, session: int) -> str:
    """``driver`` (the sweep's process: its Ray core worker serves gRPC), ``ray::IDLE``,
    ``raylet``, ... or the script a Python process runs."""
    if pid == session:
        return "driver"
    proc = psutil.Process(pid)
    argv = proc.cmdline()
    if argv and argv[0].startswith("ray::"):
        return argv[0].split()[0]
    scripts = [Path(a).name for a in argv[1:] if a.endswith(".py")]
    return scripts[0] if scripts and proc.name().startswith("python") else proc.name()


def _listeners(session: int) -> list[Listener]:
    pids = set(session_pids(session))
    found = []
    for conn in psutil.net_connections("inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            try:
                found.append(Listener(conn.laddr.ip, conn.laddr.port, _process_name(conn.pid, session)))
            except psutil.NoSuchProcess:
                continue
    return found


def _env_without_ray_auth(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    return env | {"HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRay]:
    home = tmp_path_factory.mktemp("ray-home")
    proc = subprocess.Popen([sys.executable, "-c", START_LOCAL_RAY], env=_env_without_ray_auth(home),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        gcs_address = proc.stdout.readline().strip()
        assert gcs_address, "the local Ray did not start"
        time.sleep(5)  # the agents bind their ports after the raylet registers
        yield LocalRay(gcs_address, _listeners(proc.pid))
    finally:
        proc.stdin.close()
        survivors = kill_session(proc.pid)
        proc.wait(timeout=30)
        assert not survivors, f"local Ray processes survived: {survivors}"


@pytest.mark.slow  # Ray's own listeners, unchanged by the sweep code
def test_only_token_checked_ray_core_listens_beyond_loopback(local_ray: LocalRay) -> None:
    exposed = [listener for listener in local_ray.listeners if not listener.loopback]
    assert exposed  # the GCS at least: the check below has something to check
    assert [listener for listener in exposed if not listener.ray_core] == []


@pytest.mark.slow  # a Ray of its own; Ray's token check, which the multi-node tests (slow) exercise too
def test_local_ray_refuses_a_client_without_its_token(local_ray: LocalRay, tmp_path: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", CHECK_ADDRESS, local_ray.gcs_address],
        env=_env_without_ray_auth(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode != 0
    assert "Authentication token is missing or incorrect" in probe.stderr.splitlines()[-1]
