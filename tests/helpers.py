"""Helpers shared by the tests: the tiny sweep, waiting, processes by session, the CLI, reading
what Tune left on disk and what MLflow holds, and `mlflow server` processes."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from isobn_tune.schedulers.decisions import STATE_FILE
from isobn_tune.tracking.names import TRIAL_TAG
from isobn_tune.tracking.readback import child_runs
from isobn_tune.tracking.ui import SERVER_ENV, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
SPACES = REPO_ROOT / "search_spaces"  # the shipped space files
POLL_TIMEOUT_S = 600

# ----- the tiny sweep ----------------------------------------------------------------------------
TINY_MODEL = {
    "name_or_path": "minilm",  # the real MiniLM tokenizer and config ...
    "random_init": True,  # ... with random weights and a tiny encoder: trials take seconds
    "overrides": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 64},
}


def tiny_space(glue_dir: Path, storage: Path, *, tracking_uri: str | None = None,
               **sections: Any) -> dict[str, Any]:
    """A small sweep as a space-file dict: tiny random-init encoder on 64 RTE examples, none vs
    isobn x 2 seeds, 2 epochs, no retries, results under ``storage``; ``sections`` replace whole
    top-level sections."""
    space: dict[str, Any] = {
        "name": "tiny",
        "model": copy.deepcopy(TINY_MODEL),  # callers may change it in place
        "tasks": ["rte"],
        "data": {"glue_dir": str(glue_dir), "max_train_examples": 64, "max_dev_examples": 64,
                 "max_seq_length": 32},
        "grid": {"cls_norm": ["none", "isobn"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2]},
        "recipe": {"max_epochs": 2},
        "scheduler": {"type": "fifo"},
        "resources": {"cpus_per_trial": 1},
        "run": {"storage_path": str(storage), "max_failures": 0},
    }
    if tracking_uri is not None:
        space["mlflow"] = {"tracking_uri": tracking_uri}
    return space | sections


def merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra`` deep-merged over it."""
    out = dict(base)
    for key, value in extra.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge(out[key], value) if nested else value
    return out


def write_yaml(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def poll(condition: Callable[[], Any], what: str, proc: subprocess.Popen | None = None,
         timeout_s: float = POLL_TIMEOUT_S) -> Any:
    """Wait until ``condition()`` is truthy and return it; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep exited ({proc.returncode}) before {what}")
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


# ----- what Tune left on disk --------------------------------------------------------------------
def trial_results(task_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every trial's result rows (Tune's ``result.json``, one line per report), by trial id."""
    if not task_dir.is_dir():
        return {}
    return {
        d.name: [json.loads(line) for line in (d / "result.json").read_text().splitlines()]
        for d in sorted(task_dir.iterdir()) if (d / "result.json").is_file()
    }


def resumed_after_a_kill(epochs: list[int], stored: int, max_epochs: int) -> bool:
    """Whether a trial started before its driver was killed continued as it should on resume, from
    the epochs in its result file: those it reported before the kill (``stored`` of them had
    reached the storage; the driver's last rows may have reached only its staging directory, which
    a resume on the same cluster uploads), then the rest from the checkpoint Tune had saved. Only
    the epoch in flight at the kill (reported, its checkpoint not yet in Tune's saved state) may run
    again, so the epochs read 1..k, then k or k+1 up to ``max_epochs`` (e.g. 1, 1, 2, 3)."""
    drops = [i for i in range(1, len(epochs)) if epochs[i] <= epochs[i - 1]]
    if len(drops) > 1:
        return False
    cut = drops[0] if drops else len(epochs)
    before, again = epochs[:cut], epochs[cut:]
    return (before == list(range(1, cut + 1)) and cut >= stored and epochs[-1] == max_epochs
            and (not again or again == list(range(before[-1], max_epochs + 1))))


def experiment_state(task_dir: Path) -> dict[str, dict[str, Any]] | None:
    """Tune's saved state of each trial (status, number of failures, last reported epoch); None
    while the state file is missing or half-written."""
    files = sorted(task_dir.glob("experiment_state-*.json"))
    if not files:
        return None
    try:
        state = json.loads(files[-1].read_text())
    except (OSError, json.JSONDecodeError):
        return None
    trials = {}
    for trial_json, runtime_json in state["trial_data"]:
        trial, runtime = json.loads(trial_json), json.loads(runtime_json)
        trials[trial["trial_id"]] = {"status": trial["status"], "failures": runtime["num_failures"],
                                     "epoch": runtime["last_result"].get("epoch", 0)}
    return trials


def saved_book(task_dir: Path) -> Any:
    """A group scheduler's saved run state; None while missing or half-written."""
    try:
        return pickle.loads((task_dir / STATE_FILE).read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError):
        return None


# ----- processes by session ----------------------------------------------------------------------
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


# ----- a Ray cluster of processes on this machine -------------------------------------------------
RAY_START_TIMEOUT_S = 300


@dataclass
class RayNode:
    """One ``ray start``: ``session`` is its session id (the pid of the ``ray start`` process)."""

    session: int
    node_id: str

    def alive(self) -> list[int]:
        return session_pids(self.session)

    def kill(self) -> None:
        """SIGKILL every process of the node: GCS, raylet, agents, trial workers."""
        assert not kill_session(self.session), f"processes of session {self.session} survived"


@dataclass
class Cluster:
    root: Path
    address: str
    env: dict[str, str]
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    def start_node(self, *args: str) -> RayNode:
        """``ray start`` with ``args`` in a new session; the node once it runs."""
        temp_dir = Path(tempfile.mkdtemp(prefix=f"n{len(self.nodes)}-", dir=self.root))
        log = temp_dir / "ray-start.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["ray", "start", *args, "--num-cpus=1", f"--temp-dir={temp_dir}", "--disable-usage-stats",
                 f"--dashboard-agent-listen-port={free_port()}"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
            returncode = proc.wait(timeout=RAY_START_TIMEOUT_S)
        node = RayNode(proc.pid, _raylet_node_id(proc.pid))
        self.nodes.append(node)
        assert returncode == 0, log.read_text()[-3000:]
        return node

    def add_worker(self) -> RayNode:
        return self.start_node(f"--address={self.address}")

    def workers(self) -> list[RayNode]:
        return [n for n in self.nodes[1:] if n.alive()]

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()

    def cli(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
            ) -> subprocess.CompletedProcess:
        return cli(*args, env=env or self.env, cwd=cwd)

    def start_cli(self, log: Path, *args: str, cwd: Path | None = None) -> subprocess.Popen:
        return start_cli(*args, log=log, env=self.env, cwd=cwd)


def _raylet_node_id(session: int) -> str:
    """The node id on the command line of the raylet in ``session``."""
    for pid in session_pids(session):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if Path(argv[0]).name == "raylet":
            return next(a.split("=", 1)[1] for a in argv if a.startswith("--node_id="))
    return ""


@contextmanager
def two_node_cluster(env: dict[str, str]) -> Iterator[Cluster]:
    """A head node and one worker node on 127.0.0.1, 1 CPU each, token authentication, started
    with ``env``; every process of both killed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="isobn-ray-"))  # short: Ray's socket paths live under it
    port = free_port()
    env = env | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                 "RAY_USAGE_STATS_ENABLED": "0"}
    cluster = Cluster(root, f"127.0.0.1:{port}", env)
    try:
        cluster.start_node("--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                           "--include-dashboard=false", f"--dashboard-port={free_port()}")
        cluster.add_worker()
        yield cluster
    finally:
        cluster.stop()
        assert not any(n.alive() for n in cluster.nodes)
        shutil.rmtree(root, ignore_errors=True)


# ----- the CLI and MLflow ------------------------------------------------------------------------
def trial_runs(client: MlflowClient, parent: Run) -> list[Run]:
    return child_runs(client, parent.info.experiment_id, parent.info.run_id)


def runs_by_trial(tracking_uri: str, parent_run_id: str) -> dict[str, Run]:
    """A sweep's child runs by trial id."""
    client = MlflowClient(tracking_uri)
    return {run.data.tags[TRIAL_TAG]: run for run in trial_runs(client, client.get_run(parent_run_id))}


def artifact_files(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file of a run, recursively."""
    files = []
    for info in client.list_artifacts(run_id, path):
        files += artifact_files(client, run_id, info.path) if info.is_dir else [info.path]
    return files


def artifact_bytes(client: MlflowClient, run_id: str, path: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_bytes()


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = POLL_TIMEOUT_S,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``isobn-tune ARGS`` (as ``python -m isobn_tune.cli``), waited for, output captured."""
    return subprocess.run([sys.executable, "-m", "isobn_tune.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def start_cli(*args: str, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
              ) -> subprocess.Popen:
    """``isobn-tune ARGS`` in the background, in its own session (so that killing the session
    kills the driver and the local Ray it started, as a crash would), output to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "isobn_tune.cli", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 900, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``isobn-tune ARGS`` in its own session; every process it leaves behind (Ray) is killed."""
    proc = subprocess.Popen(["isobn-tune", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        survivors = kill_session(proc.pid)
        proc.wait(timeout=30)
    assert not survivors, f"processes of `isobn-tune {' '.join(args)}` survived: {survivors}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


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
    backend_uri: str, workdir: Path, command: str = "server", wait: bool = True, port: int | None = None
) -> Iterator[MlflowServer]:
    """``mlflow server`` (or ``mlflow ui``) on 127.0.0.1 (one worker, job execution off,
    artifacts under ``workdir``) on ``port`` (default: a free one), healthy unless ``wait`` is
    false; its whole session is stopped afterwards, asserting that none of its processes survive."""
    port = port or free_port()
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


# ----- an S3-compatible server ---------------------------------------------------------------------
S3_ENV = {"AWS_ACCESS_KEY_ID": "isobn-test", "AWS_SECRET_ACCESS_KEY": "isobn-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
"""Credentials moto accepts (any), a region, and no probing of EC2's metadata service."""


@contextmanager
def s3_server(workdir: Path, bucket: str) -> Iterator[str]:
    """``moto_server`` (an S3-compatible server) on 127.0.0.1 with an empty ``bucket``; yields its
    ``host:port``; its whole session is stopped afterwards, asserting that none of it survives."""
    import pyarrow.fs

    port = free_port()
    log = workdir / "moto.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"127.0.0.1:{port}"
    try:
        poll(lambda: _answers(f"http://{endpoint}"), "moto_server to answer", proc, timeout_s=60)
        fs = pyarrow.fs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True,
                                     access_key=S3_ENV["AWS_ACCESS_KEY_ID"],
                                     secret_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])
        fs.create_dir(bucket)
        yield endpoint
    finally:
        survivors = stop_session(proc)
        assert not survivors, f"moto_server processes survived: {survivors}"


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


ERROR_LINE = re.compile(r"trial (\w+) errored: (.+) \(full traceback: (\S+)\)")


def error_lines(console_text: str) -> dict[str, tuple[str, Path]]:
    """The console's line for each errored trial: trial id -> (its cause, the traceback file);
    a trial named twice fails."""
    found: dict[str, tuple[str, Path]] = {}
    for line in console_text.splitlines():
        if line.startswith("trial ") and " errored: " in line:
            match = ERROR_LINE.fullmatch(line)
            assert match, line
            trial_id, reason, path = match.groups()
            assert trial_id not in found, f"trial {trial_id} named twice"
            found[trial_id] = (reason, Path(path))
    return found



def drive_rule(rule: Any, members: list[tuple[str, int]], score: Callable[[tuple[str, int], int], float],
               max_t: int) -> tuple[dict[tuple[str, int], int], set[tuple[str, int]]]:
    """Feed a Ray-free group rule (``isobn_tune.schedulers.decisions.GroupRule``) every epoch up to
    ``max_t``: each live seed of ``members`` reports ``score(member, epoch)`` in that order, a paused
    seed only once the rule releases it. Returns each seed's last epoch and the seeds the rule
    ended, after checking none is left waiting and the rule counted the epochs run."""
    from isobn_tune.schedulers.decisions import PAUSE, STOP

    ended: set[tuple[str, int]] = set()
    paused: set[tuple[str, int]] = set()
    last: dict[tuple[str, int], int] = {}
    for epoch in range(1, max_t + 1):
        for member in members:
            if member in ended or (member in paused and member not in rule.book.to_resume):
                continue
            paused.discard(member)
            last[member] = epoch
            step = rule.report(member, epoch, score(member, epoch))
            ended.update(step.stopped)
            if step.action == PAUSE:
                paused.add(member)
            elif step.action == STOP:
                ended.add(member)
                ended.update(rule.end(member).stopped)
    assert not rule.book.waiting()
    assert rule.trial_epochs == sum(last.values())
    return last, ended
