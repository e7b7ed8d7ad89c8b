"""Where a sweep lives: ``<storage>/<name>/`` with its ``sweep.json`` manifest (no Ray, no torch).

The manifest holds the validated space, the MLflow tracking URI and the parent run id: all that
``resume`` and ``report`` need. It holds them as given, credentials included, because resume
needs them; locally it is written readable by its owner only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs

from isobn_tune.errors import UserError

MANIFEST = "sweep.json"
LOG_FILE = "sweep.log"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class SweepDir:
    """``<storage>/<name>``: a local directory or a URI (``s3://``, ``gs://`` ...)."""

    storage: str
    name: str

    @property
    def root(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    @property
    def manifest(self) -> str:
        return f"{self.root}/{MANIFEST}"

    @property
    def log_file(self) -> Path:
        """The sweep's log: in the sweep directory when it is local, else in the current
        directory (a log is appended to line by line, which object stores cannot do)."""
        if "://" in self.root:
            return Path.cwd() / f"{self.name}.{LOG_FILE}"
        return Path(self.root) / LOG_FILE

    def task_dir(self, task: str) -> str:
        return f"{self.root}/{task}"

    @classmethod
    def parse(cls, path: str) -> SweepDir:
        path = path.rstrip("/")
        if "://" not in path:
            path = str(Path(path).expanduser().resolve())
        storage, _, name = path.rpartition("/")
        return cls(storage, name)


def filesystem(uri_or_path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem and path of a local path or a URI (``s3://``, ``gs://`` ...)."""
    return pyarrow.fs.FileSystem.from_uri(uri_or_path if "://" in uri_or_path else Path(uri_or_path).as_uri())


def has_manifest(sweep_dir: SweepDir) -> bool:
    fs, path = filesystem(sweep_dir.manifest)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def write_manifest(sweep_dir: SweepDir, manifest: dict[str, Any]) -> None:
    fs, path = filesystem(sweep_dir.manifest)
    fs.create_dir(path.rpartition("/")[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(json.dumps({"format": MANIFEST_FORMAT, **manifest}, indent=2).encode())
    if isinstance(fs, pyarrow.fs.LocalFileSystem):
        os.chmod(path, 0o600)


def read_manifest(sweep_dir: SweepDir) -> dict[str, Any]:
    if not has_manifest(sweep_dir):
        raise UserError(f"{sweep_dir.root} is not a sweep directory (no {MANIFEST}); "
                        "pass the directory `isobn-tune run` printed")
    fs, path = filesystem(sweep_dir.manifest)
    with fs.open_input_stream(path) as f:
        manifest = json.loads(f.read().decode())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{sweep_dir.manifest}: unsupported manifest format {manifest.get('format')!r}")
    return manifest
