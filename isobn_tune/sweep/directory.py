"""Where a sweep lives: ``<storage>/<name>/`` with its ``sweep.json`` manifest (no Ray, no torch).

The manifest holds the validated space, the MLflow tracking URI and the parent run id: all that
``resume`` and ``report`` need, but no credential, since sweep directories are copied, shared and
synced to buckets. It keeps the tracking URI without its user info (the space's too), masks
secret-looking values (query parameters, keys, tokens) everywhere, and names in ``resume_env``
the environment variables ``resume`` needs to reach the store again: MLflow's own credential
variables for an http(s) server, the full URI in ``$MLFLOW_TRACKING_URI`` for a store whose
credential only its URI can carry (a database password). Locally it is written readable by its
owner only all the same.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs

from isobn_tune.errors import UserError
from isobn_tune.redaction import redact, redact_mapping, without_userinfo

MANIFEST = "sweep.json"
LOG_FILE = "sweep.log"
MANIFEST_FORMAT = 1
EXTENSIONS_KEY = "extensions"
"""The manifest's list of extensions: ``{"name", "tasks", "created", "trials": {task: [grid point]}}``."""
URI_ENV = "MLFLOW_TRACKING_URI"
HTTP_USER_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
HTTP_CREDENTIAL_ENV = (*HTTP_USER_ENV, "MLFLOW_TRACKING_TOKEN")  # what MLflow reads for http(s)


@dataclass(frozen=True)
class Experiment:
    """One Tune experiment of a sweep: one task's trials of the sweep itself, or of one extension.
    Tune keeps it in ``<storage>/<task>``, where ``storage`` is the sweep directory or an extension's
    directory in it (each with its own errored-trials record)."""

    storage: str
    task: str
    extension: str | None = None  # its name, for an extension's experiment

    @property
    def path(self) -> str:
        return join(self.storage, self.task)


@dataclass(frozen=True)
class SweepDir:
    """``<storage>/<name>``: a local directory or a URI (``s3://``, ``gs://`` ...)."""

    storage: str
    name: str

    @property
    def root(self) -> str:
        return join(self.storage, self.name)

    @property
    def manifest(self) -> str:
        return join(self.root, MANIFEST)

    @property
    def arg(self) -> str:
        """``root`` as one shell argument, for the commands the console suggests (a URI's query
        holds ``?`` and ``&``)."""
        return shlex.quote(self.root)

    @property
    def log_file(self) -> Path:
        """The sweep's log: in the sweep directory when it is local, else in the current
        directory (a log is appended to line by line, which object stores cannot do)."""
        if "://" in self.root:
            return Path.cwd() / f"{self.name}.{LOG_FILE}"
        return Path(self.root) / LOG_FILE

    def task_dir(self, task: str) -> str:
        """The Tune experiment directory of ``task``'s trials of the sweep itself."""
        return join(self.root, task)

    def experiments(self, manifest: dict[str, Any], task: str | None = None) -> list[Experiment]:
        """Every Tune experiment of the sweep (of ``task`` only, if given), the sweep's own first, then
        each extension's (``isobn-tune extend``) in the order they were made."""
        found = [Experiment(self.root, name) for name in manifest["space"]["tasks"]]
        for extension in manifest.get(EXTENSIONS_KEY, []):
            storage = join(self.root, extension["name"])
            found += [Experiment(storage, name, extension["name"]) for name in extension["tasks"]]
        return [e for e in found if task is None or e.task == task]

    @classmethod
    def parse(cls, path: str) -> SweepDir:
        """A sweep directory as given: a local path, or a URI whose query (the filesystem's
        options) stays with the storage, so that every path built from it keeps it."""
        path, query = _split_query(path)
        path = path.rstrip("/")
        if "://" not in path:
            path = str(Path(path).expanduser().resolve())
        storage, _, name = path.rpartition("/")
        return cls(storage + query, name)


def join(base: str, *parts: str) -> str:
    """``base`` (a local path or a URI) with path segments appended; in a URI before its query
    (``s3://b/p?endpoint_override=h:9000&scheme=http`` + ``s1`` -> ``s3://b/p/s1?endpoint_...``),
    which pyarrow reads as the filesystem's options."""
    path, query = _split_query(base)
    return "/".join([path.rstrip("/"), *parts]) + query


def _split_query(path: str) -> tuple[str, str]:
    """A URI's path part and its ``?query`` (empty for a local path or a URI without one)."""
    if "://" not in path or "?" not in path:
        return path, ""
    path, _, query = path.partition("?")
    return path, f"?{query}"


def filesystem(uri_or_path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem and path of a local path or a URI (``s3://``, ``gs://`` ...)."""
    return pyarrow.fs.FileSystem.from_uri(uri_or_path if "://" in uri_or_path else Path(uri_or_path).as_uri())


def has_manifest(sweep_dir: SweepDir) -> bool:
    fs, path = filesystem(sweep_dir.manifest)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def write_manifest(sweep_dir: SweepDir, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` (name, space_file, overrides, space, tracking_uri, parent_run_id, ...)
    as it may rest: see the module's docstring."""
    fs, path = filesystem(sweep_dir.manifest)
    fs.create_dir(path.rpartition("/")[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(json.dumps({"format": MANIFEST_FORMAT, **_at_rest(manifest)}, indent=2).encode())
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


def stored_uri(uri: str) -> str:
    """A URI as the manifest keeps it: no user info, secret-looking query values masked."""
    return redact(without_userinfo(uri))


def resume_env(tracking_uri: str) -> list[str]:
    """The environment variables ``resume`` needs to reach ``tracking_uri``'s store from its
    stored form: for an http(s) server, MLflow's user name and password variables when the URI
    carries user info, else MLflow's credential variables set now; ``$MLFLOW_TRACKING_URI``
    (the full URI) when a credential is in the URI and MLflow reads it from nowhere else."""
    plain = without_userinfo(tracking_uri)
    http = plain.split("://", 1)[0] in ("http", "https")
    if redact(plain) != plain or (plain != tracking_uri and not http):
        return [URI_ENV]
    if plain != tracking_uri:
        return list(HTTP_USER_ENV)
    return [name for name in HTTP_CREDENTIAL_ENV if http and os.environ.get(name)]


def sweep_tracking_uri(manifest: dict[str, Any], given: str | None = None) -> str:
    """The full tracking URI of a stored sweep, for ``resume``, ``report`` and ``ui``: ``given``
    (``--tracking-uri``), else ``$MLFLOW_TRACKING_URI`` when it names the sweep's store, else the
    stored URI once the variables ``resume_env`` names are set; a one-line error says what to set."""
    stored, needs = manifest["tracking_uri"], manifest.get("resume_env", [])
    if given:
        return given
    from_env = os.environ.get(URI_ENV)
    if from_env and stored_uri(from_env) == stored:
        return from_env
    if URI_ENV in needs:
        raise UserError(f"the sweep's tracking store {stored} needs a credential that is not stored with "
                        f"the sweep: set {URI_ENV} to its full URI or pass --tracking-uri")
    missing = [name for name in needs if not os.environ.get(name)]
    if missing:
        raise UserError(f"the sweep's tracking server {stored} needs {' and '.join(missing)} set (not "
                        "stored with the sweep), or its full URI with --tracking-uri")
    return stored


def _at_rest(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` without credentials, plus ``resume_env``."""
    out = dict(manifest)
    if "space" in out:
        space = redact_mapping(out["space"])
        uri = (out["space"].get("mlflow") or {}).get("tracking_uri")
        if uri:
            space["mlflow"] = space["mlflow"] | {"tracking_uri": stored_uri(uri)}
        out["space"] = space
    if "overrides" in out:
        out["overrides"] = [_masked_override(override) for override in out["overrides"]]
    if "space_file" in out:
        out["space_file"] = redact(out["space_file"])
    if "tracking_uri" in out:
        out["tracking_uri"] = stored_uri(manifest["tracking_uri"])
        # A manifest written again (an extension added) keeps what the first write found.
        out["resume_env"] = manifest.get("resume_env", resume_env(manifest["tracking_uri"]))
    return out


def _masked_override(override: str) -> str:
    key, _, value = override.partition("=")
    return f"{key}={redact_mapping({key: value})[key]}"
