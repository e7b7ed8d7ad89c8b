"""Sweeps in an S3 bucket, as multi-node clusters keep them: a real S3-compatible server
(``moto_server``) on 127.0.0.1, reached the two ways pyarrow knows: the endpoint in
``$AWS_ENDPOINT_URL`` (``s3://sweeps/isobn``), or in the URI's query, pyarrow's form for MinIO and
Ceph (``s3://sweeps/isobn?endpoint_override=127.0.0.1:PORT&scheme=http``).

Default run: the manifest written to and read back from the bucket by the query form, with no
credential in it. Slow (two loopback Ray nodes per form): a sweep writing to the bucket, its driver
killed mid-sweep, ``resume`` from the bucket URI finishes it (trials Tune saved as finished not
restarted, nothing reported lost, the others continued from their saved checkpoints: only an epoch in
flight at the kill may run again, as with local storage), ``report`` reads it from the same URI.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs
import pytest
from helpers import (
    S3_ENV,
    Cluster,
    kill_session,
    poll,
    resumed_after_a_kill,
    s3_server,
    tiny_space,
    two_node_cluster,
    write_yaml,
)

from isobn_tune.sweep.directory import MANIFEST, SweepDir, filesystem, read_manifest, write_manifest

BUCKET, PREFIX = "sweeps", "isobn"
MAX_EPOCHS = 3
ALL_EPOCHS = list(range(1, MAX_EPOCHS + 1))


@dataclass
class Bucket:
    endpoint: str  # host:port of the server
    fs: pyarrow.fs.S3FileSystem  # the test's own view of it

    def query_uri(self, path: str = f"{BUCKET}/{PREFIX}") -> str:
        return f"s3://{path}?endpoint_override={self.endpoint}&scheme=http"

    def read(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as f:
            return f.read()

    def trial_results(self, task_path: str) -> dict[str, list[dict[str, Any]]]:
        """Every trial's result rows in the bucket, by trial id."""
        found = self.fs.get_file_info(pyarrow.fs.FileSelector(task_path, allow_not_found=True))
        rows = {}
        for info in found:
            if info.type != pyarrow.fs.FileType.Directory:
                continue
            result = f"{info.path}/result.json"
            if self.fs.get_file_info(result).type == pyarrow.fs.FileType.File:
                rows[info.base_name] = [json.loads(line) for line in self.read(result).decode().splitlines()]
        return rows

    def statuses(self, task_path: str) -> dict[str, str]:
        """Tune's saved status of each trial, from its newest experiment state in the bucket."""
        found = self.fs.get_file_info(pyarrow.fs.FileSelector(task_path))
        newest = max(i.path for i in found if i.base_name.startswith("experiment_state-"))
        trials = (json.loads(trial) for trial, _ in json.loads(self.read(newest))["trial_data"])
        return {t["trial_id"]: t["status"] for t in trials}


def _fs(endpoint: str) -> pyarrow.fs.S3FileSystem:
    return pyarrow.fs.S3FileSystem(endpoint_override=endpoint, scheme="http",
                                   access_key=S3_ENV["AWS_ACCESS_KEY_ID"],
                                   secret_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bucket]:
    with s3_server(tmp_path_factory.mktemp("moto"), BUCKET) as endpoint:
        yield Bucket(endpoint, _fs(endpoint))


# ----- default: the manifest by the query form ------------------------------------------------------

def test_manifest_in_a_bucket_by_the_query_form_keeps_no_credential(bucket: Bucket) -> None:
    secret = "not-for-the-manifest-0123"
    with_key = bucket.query_uri(f"{S3_ENV['AWS_ACCESS_KEY_ID']}:{secret}@{BUCKET}/{PREFIX}")
    sweep = SweepDir.parse(with_key.replace(f"{PREFIX}?", f"{PREFIX}/m1?"))
    assert sweep.manifest == with_key.replace(f"{PREFIX}?", f"{PREFIX}/m1/{MANIFEST}?")
    write_manifest(sweep, {"name": "m1", "space": {"tasks": ["rte"], "run": {"storage_path": with_key}},
                           "overrides": [f"run.storage_path={with_key}"], "parent_run_id": "abc"})
    stored = bucket.read(f"{BUCKET}/{PREFIX}/m1/{MANIFEST}").decode()
    assert secret not in stored
    assert read_manifest(sweep)["parent_run_id"] == "abc"
    fs, path = filesystem(sweep.task_dir("rte"))
    assert path == f"{BUCKET}/{PREFIX}/m1/rte"


# ----- slow: a two-node sweep in the bucket, its driver killed, resumed --------------------------

@dataclass
class Form:
    name: str
    storage: str  # the storage URI a user passes
    cluster: Cluster


@pytest.fixture(scope="module", params=["endpoint-env", "query"])
def form(request: pytest.FixtureRequest, bucket: Bucket) -> Iterator[Form]:
    """Two loopback Ray nodes, the endpoint in their environment (and the driver's) or in the URI only."""
    env = os.environ | S3_ENV
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("AWS_ENDPOINT_URL", None)
    if request.param == "endpoint-env":
        env["AWS_ENDPOINT_URL"] = f"http://{bucket.endpoint}"
        storage = f"s3://{BUCKET}/{PREFIX}"
    else:
        storage = bucket.query_uri()
    with two_node_cluster(env) as cluster:
        yield Form(request.param, storage, cluster)


def _epochs(rows: list[dict[str, Any]]) -> list[int]:
    return [row["epoch"] for row in rows]


def _finished_and_running(bucket: Bucket, task_path: str) -> bool:
    """Tune's saved state in the bucket has a finished trial, and another that reported an epoch
    with epochs left."""
    try:
        statuses = bucket.statuses(task_path)
    except (ValueError, OSError):  # no saved state yet
        return False
    last = {t: rows[-1]["epoch"] for t, rows in bucket.trial_results(task_path).items() if rows}
    running = [t for t, epoch in last.items() if epoch < MAX_EPOCHS and statuses.get(t) == "RUNNING"]
    return "TERMINATED" in statuses.values() and bool(running)


@pytest.mark.slow
@pytest.mark.cluster
def test_killed_two_node_sweep_in_a_bucket_resumes_from_its_uri(
    form: Form, bucket: Bucket, glue_dir: Path, tmp_path: Path
) -> None:
    name = f"killed-{form.name}"
    space = tiny_space(
        glue_dir, tmp_path / "unused",
        data={"glue_dir": str(glue_dir), "max_train_examples": 256, "max_dev_examples": 64,
              "max_seq_length": 32},
        grid={"cls_norm": ["none"], "lr": [1e-3], "batch_size": [16], "seeds": [1, 2, 3, 4]},
        recipe={"max_epochs": MAX_EPOCHS},
        run={"storage_path": form.storage, "max_failures": 1},
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    )
    space_file = write_yaml(tmp_path / "space.yaml", space)
    in_query = bucket.query_uri(f"{BUCKET}/{PREFIX}/{name}")
    sweep = f"{form.storage}/{name}" if form.name == "endpoint-env" else in_query
    task_path = f"{BUCKET}/{PREFIX}/{name}/rte"

    driver = form.cluster.start_cli(tmp_path / "run.log", "run", str(space_file), "--address",
                                    form.cluster.address, "--name", name, cwd=tmp_path)
    try:
        poll(lambda: _finished_and_running(bucket, task_path), "a finished and a running trial", driver)
    finally:
        assert not kill_session(driver.pid)
    before = bucket.trial_results(task_path)
    finished = {t for t, status in bucket.statuses(task_path).items() if status == "TERMINATED"}
    started = set(before) - finished
    assert finished and started

    assert f"if interrupted: isobn-tune resume {shlex.quote(sweep)}\n" in (tmp_path / "run.log").read_text()
    resumed = form.cluster.cli("resume", sweep, "--address", form.cluster.address, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    after = bucket.trial_results(task_path)
    assert len(after) == 4 and set(bucket.statuses(task_path).values()) == {"TERMINATED"}
    for trial_id in finished:
        assert after[trial_id] == before[trial_id]  # not restarted
    for trial_id in started:
        kept = before[trial_id]
        assert after[trial_id][:len(kept)] == kept  # nothing the bucket had is lost
        assert resumed_after_a_kill(_epochs(after[trial_id]), len(kept), MAX_EPOCHS), _epochs(after[trial_id])
    checkpoints = bucket.fs.get_file_info(pyarrow.fs.FileSelector(task_path, recursive=True))
    assert {i.path.split("/")[-2] for i in checkpoints if i.base_name == "best_model.pt"}  # in the bucket

    manifest = json.loads(bucket.read(f"{BUCKET}/{PREFIX}/{name}/{MANIFEST}"))
    assert manifest["name"] == name and S3_ENV["AWS_SECRET_ACCESS_KEY"] not in json.dumps(manifest)
    report = form.cluster.cli("report", sweep, "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert [row["task"] for row in json.loads(report.stdout)["table"]] == ["rte"]
