"""The sweep directory and its manifest: parsing, round trip, permissions, clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from isobn_tune.errors import UserError
from isobn_tune.sweep_dir import MANIFEST, SweepDir, has_manifest, read_manifest, write_manifest


def test_parse_local_relative_path_and_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = SweepDir.parse("results/my-sweep/")
    assert (local.storage, local.name) == (str(tmp_path / "results"), "my-sweep")
    assert local.task_dir("rte") == f"{tmp_path}/results/my-sweep/rte"
    remote = SweepDir.parse("s3://bucket/sweeps/my-sweep")
    assert (remote.storage, remote.name, remote.manifest) == (
        "s3://bucket/sweeps", "my-sweep", f"s3://bucket/sweeps/my-sweep/{MANIFEST}")


def test_manifest_round_trip_is_private(tmp_path: Path) -> None:
    sweep = SweepDir(str(tmp_path / "results"), "s1")
    assert not has_manifest(sweep)
    content = {"name": "s1", "tracking_uri": "http://alice:secret@127.0.0.1:5000", "parent_run_id": "abc"}
    write_manifest(sweep, content)
    assert has_manifest(sweep)
    assert read_manifest(sweep) == {"format": 1, **content}
    mode = stat.S_IMODE((tmp_path / "results" / "s1" / MANIFEST).stat().st_mode)
    assert mode == 0o600  # it may hold a tracking URI with a password


def test_not_a_sweep_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"is not a sweep directory \(no sweep.json\)"):
        read_manifest(SweepDir.parse(str(tmp_path)))


def test_unknown_manifest_format(tmp_path: Path) -> None:
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / MANIFEST).write_text(json.dumps({"format": 99}))
    with pytest.raises(UserError, match="unsupported manifest format 99"):
        read_manifest(SweepDir(str(tmp_path), "s1"))
