"""Checks of a sweep's inputs that need neither torch, Ray Tune nor MLflow.

``isobn-tune run`` calls :func:`check_run_inputs` before it imports anything heavy, so a bad space
file, sweep name, storage path, tracking URI or Ray address is a one-line error within seconds,
before any process is started or anything is created; the runner repeats the same checks for
callers of its Python API.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow

from isobn_tune.errors import UserError
from isobn_tune.redaction import redact_uri
from isobn_tune.space import load_space
from isobn_tune.sweep.directory import filesystem

TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "file")
SQL_SCHEMES = ("postgresql", "mysql", "mssql")
SQL_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
SWEEP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
CONNECT_TIMEOUT_S = 10.0
GCS_PROBE_TIMEOUT_MS = 2000


def check_run_inputs(space_file: str | Path, *, storage: str | None, name: str | None,
                     tracking_uri: str | None, address: str | None, overrides: Sequence[str] = ()) -> None:
    """Everything ``isobn-tune run`` is given, checked cheapest first."""
    space = load_space(space_file, overrides)
    if name is not None:
        check_sweep_name(name)
    root = absolute_storage(storage or space.run.storage_path)
    check_storage(root)
    check_tracking_uri(resolve_tracking_uri(tracking_uri, space.mlflow.tracking_uri, root))
    check_address(address)


def check_sweep_name(name: str) -> None:
    """A sweep name is one directory under the storage root."""
    if not SWEEP_NAME.match(name) or name in (".", ".."):
        raise UserError(f"sweep name {name!r}: use letters, digits and _ . - only (one directory name)")


def absolute_storage(storage: str) -> str:
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


def check_storage(storage: str) -> None:
    """The storage path must be writable (a local directory or a URI pyarrow can open)."""
    try:
        fs, path = filesystem(storage)
        fs.create_dir(path, recursive=True)
        probe = f"{path}/.isobn-write-test-{uuid.uuid4().hex}"
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except (OSError, pyarrow.ArrowException) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise UserError(f"storage path {storage!r} is not writable: {reason}") from exc


def resolve_tracking_uri(cli_uri: str | None, space_uri: str | None, storage: str) -> str:
    """``--tracking-uri``, else the space file's ``mlflow.tracking_uri``, else
    ``$MLFLOW_TRACKING_URI``, else the SQLite store beside the results."""
    return cli_uri or space_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(storage)


def default_tracking_uri(storage: str) -> str:
    """A SQLite store beside the results (``<storage>/mlflow.db``, artifacts in
    ``<storage>/mlartifacts``), opened by ``mlflow ui --backend-store-uri sqlite:///<storage>/mlflow.db``;
    ``./mlflow.db`` when the results go to a remote URI."""
    if "://" in storage:
        return f"sqlite:///{Path('mlflow.db').resolve()}"
    return f"sqlite:///{Path(storage) / 'mlflow.db'}"


def check_tracking_uri(uri: str) -> None:
    """A one-line error for a tracking URI MLflow cannot use, before any run is created."""
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme not in TRACKING_SCHEMES:
        raise UserError(
            f"tracking URI {redact_uri(uri)!r}: scheme {scheme!r} is not one of {list(TRACKING_SCHEMES)}"
        )
    if scheme == "sqlite":
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.parent.is_dir() or not os.access(db.parent, os.W_OK):
            raise UserError(f"tracking URI {uri!r}: directory {db.parent} does not exist or is not writable")
    elif scheme == "file" and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("true", "1"):
        raise UserError(f"tracking URI {uri!r}: MLflow's file store is retired; use sqlite:///PATH/mlflow.db "
                        "(or set MLFLOW_ALLOW_FILE_STORE=true)")
    elif scheme in SQL_SCHEMES:
        _check_sql_store(uri)
    elif scheme in ("http", "https"):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise UserError(
                f"tracking server {redact_uri(uri)!r} is unreachable: {type(exc).__name__}"
            ) from exc


def _check_sql_store(uri: str) -> None:
    """The database driver is installed and the server accepts connections."""
    import sqlalchemy

    try:
        sqlalchemy.engine.make_url(uri).get_dialect().import_dbapi()
    except ImportError as exc:
        raise UserError(f"tracking URI {redact_uri(uri)!r} needs the database driver {exc.name!r} "
                        "(pip install it beside isobn-tune)") from exc
    parts = urlsplit(uri)
    host, port = parts.hostname or "localhost", parts.port or SQL_DEFAULT_PORTS[parts.scheme.split("+")[0]]
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or exc
        raise UserError(f"tracking database {redact_uri(uri)!r} is unreachable: {reason}") from exc


def check_address(address: str | None) -> None:
    """A one-line error, within seconds, for a ``HOST:PORT`` or ``ray://HOST:PORT`` where no Ray
    cluster answers: ``ray.init`` retries such an address for many minutes (its bounds,
    ``RAY_py_gcs_connect_timeout_s`` x ``RAY_gcs_server_port_wait_time_s``, are read when ray is
    imported)."""
    if not address or address in ("auto", "local"):
        return
    scheme, _, hostport = address.rpartition("://")
    host, sep, port = hostport.rpartition(":")
    if scheme not in ("", "ray") or not sep or not port.isdigit():
        raise UserError(f"Ray address {address!r} is not auto, local, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"cannot connect to Ray at {address!r}: {exc.strerror or exc}") from exc
    if not scheme:
        _probe_gcs(address)


def _probe_gcs(address: str) -> None:
    """Ray's own GCS client, bounded: something listens at ``address``, but is it a Ray head, and
    does it accept this process's auth token (if it requires one)?"""
    from ray._raylet import InnerGcsClient
    from ray.exceptions import RayError

    try:
        with _stderr_silenced():  # the C++ client logs each failed attempt to file descriptor 2
            InnerGcsClient.standalone(address, None, GCS_PROBE_TIMEOUT_MS)
    except RayError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot connect to Ray at {address!r}: {reason}") from exc


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
