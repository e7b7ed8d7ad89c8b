"""The sweep directory and its manifest: parsing, round trip, permissions, no credential at rest and
what resume then needs, clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from isobn_tune.errors import UserError
from isobn_tune.sweep.directory import (
    HTTP_CREDENTIAL_ENV,
    MANIFEST,
    URI_ENV,
    SweepDir,
    has_manifest,
    join,
    read_manifest,
    sweep_tracking_uri,
    write_manifest,
)


def test_parse_local_relative_path_and_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = SweepDir.parse("results/my-sweep/")
    assert (local.storage, local.name) == (str(tmp_path / "results"), "my-sweep")
    assert local.task_dir("rte") == f"{tmp_path}/results/my-sweep/rte"
    remote = SweepDir.parse("s3://bucket/sweeps/my-sweep")
    assert (remote.storage, remote.name, remote.manifest) == (
        "s3://bucket/sweeps", "my-sweep", f"s3://bucket/sweeps/my-sweep/{MANIFEST}")


def test_a_uri_s_query_stays_at_its_end(tmp_path: Path) -> None:
    """pyarrow reads a URI's query as the filesystem's options (MinIO, Ceph): paths of the sweep
    go before it."""
    query = "?endpoint_override=127.0.0.1:9000&scheme=http"
    sweep = SweepDir.parse(f"s3://sweeps/isobn/s1/{query}")
    assert (sweep.storage, sweep.name) == (f"s3://sweeps/isobn{query}", "s1")
    assert sweep.root == f"s3://sweeps/isobn/s1{query}"
    assert sweep.manifest == f"s3://sweeps/isobn/s1/{MANIFEST}{query}"
    assert sweep.task_dir("rte") == f"s3://sweeps/isobn/s1/rte{query}"
    assert join(sweep.root, "extend-1", "rte") == f"s3://sweeps/isobn/s1/extend-1/rte{query}"
    assert SweepDir(f"s3://sweeps/isobn{query}", "s1") == sweep
    assert sweep.arg == f"'{sweep.root}'"  # the commands the console suggests work when pasted
    assert join(str(tmp_path / "odd?name"), "s1") == f"{tmp_path}/odd?name/s1"  # a local path has no query


def test_manifest_round_trip_is_private(tmp_path: Path) -> None:
    sweep = SweepDir(str(tmp_path / "results"), "s1")
    assert not has_manifest(sweep)
    content = {"name": "s1", "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "parent_run_id": "abc"}
    write_manifest(sweep, content)
    assert has_manifest(sweep)
    assert read_manifest(sweep) == {"format": 1, **content, "resume_env": []}
    mode = stat.S_IMODE((tmp_path / "results" / "s1" / MANIFEST).stat().st_mode)
    assert mode == 0o600


def test_manifest_keeps_no_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """User info, secret-looking query values and keys are gone from every field."""
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    uri = "http://alice:pw-in-uri@127.0.0.1:5000"
    storage = "s3://bucket/sweeps?access_key=AKID&secret_key=SK-in-query&region=eu"
    space = {"name": "tiny", "mlflow": {"tracking_uri": uri}, "run": {"storage_path": storage},
             "model": {"overrides": {"token": "tok-in-overrides", "hidden_size": 32}}}
    sweep = SweepDir(str(tmp_path), "s1")
    overrides = [f"mlflow.tracking_uri={uri}", "model.overrides.token=tok-in-override"]
    write_manifest(sweep, {"space_file": "space.yaml", "space": space, "tracking_uri": uri,
                           "overrides": overrides})
    text = (tmp_path / "s1" / MANIFEST).read_text()
    assert [s for s in ("alice", "pw-in-uri", "AKID", "SK-in-query", "tok-in-override") if s in text] == []
    manifest = read_manifest(sweep)
    assert manifest["tracking_uri"] == manifest["space"]["mlflow"]["tracking_uri"] == "http://127.0.0.1:5000"
    assert manifest["resume_env"] == ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]
    assert manifest["space"]["run"]["storage_path"] == (
        "s3://bucket/sweeps?access_key=***&secret_key=***&region=eu")
    assert manifest["space"]["model"]["overrides"] == {"token": "***", "hidden_size": 32}
    assert manifest["overrides"] == [
        "mlflow.tracking_uri=http://***@127.0.0.1:5000", "model.overrides.token=***"]


@pytest.fixture
def no_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (URI_ENV, *HTTP_CREDENTIAL_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_database_password_is_taken_from_the_full_uri(
    tmp_path: Path, no_mlflow_env: pytest.MonkeyPatch
) -> None:
    """MLflow reads a database password from the URI only: resume needs the full URI."""
    full = "postgresql://alice:db-pw@db.example:5432/mlflow"
    sweep = SweepDir(str(tmp_path), "s1")
    write_manifest(sweep, {"tracking_uri": full})
    manifest = read_manifest(sweep)
    assert manifest["tracking_uri"] == "postgresql://db.example:5432/mlflow"
    assert manifest["resume_env"] == [URI_ENV]
    error = (r"^the sweep's tracking store postgresql://db.example:5432/mlflow needs a credential that "
             r"is not stored with the sweep: set MLFLOW_TRACKING_URI to its full URI or pass --tracking-uri$")
    with pytest.raises(UserError, match=error):
        sweep_tracking_uri(manifest)
    no_mlflow_env.setenv(URI_ENV, "postgresql://alice:db-pw@other.example/mlflow")  # another store
    with pytest.raises(UserError, match=error):
        sweep_tracking_uri(manifest)
    no_mlflow_env.setenv(URI_ENV, full)
    assert sweep_tracking_uri(manifest) == full
    assert sweep_tracking_uri(manifest, "postgresql://bob:x@db.example:5432/mlflow") == (
        "postgresql://bob:x@db.example:5432/mlflow")


def test_a_token_in_the_environment_is_needed_again(
    tmp_path: Path, no_mlflow_env: pytest.MonkeyPatch
) -> None:
    no_mlflow_env.setenv("MLFLOW_TRACKING_TOKEN", "tok-123456789")
    sweep = SweepDir(str(tmp_path), "s1")
    write_manifest(sweep, {"tracking_uri": "https://mlflow.example"})
    manifest = read_manifest(sweep)
    assert manifest["tracking_uri"] == "https://mlflow.example"
    assert manifest["resume_env"] == ["MLFLOW_TRACKING_TOKEN"]
    assert sweep_tracking_uri(manifest) == "https://mlflow.example"
    no_mlflow_env.delenv("MLFLOW_TRACKING_TOKEN")
    with pytest.raises(UserError, match="needs MLFLOW_TRACKING_TOKEN set"):
        sweep_tracking_uri(manifest)


def test_not_a_sweep_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"is not a sweep directory \(no sweep.json\)"):
        read_manifest(SweepDir.parse(str(tmp_path)))


def test_unknown_manifest_format(tmp_path: Path) -> None:
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / MANIFEST).write_text(json.dumps({"format": 99}))
    with pytest.raises(UserError, match="unsupported manifest format 99"):
        read_manifest(SweepDir(str(tmp_path), "s1"))
