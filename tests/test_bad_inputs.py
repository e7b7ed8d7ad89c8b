"""A catalogue of bad inputs, each run through the real CLI.

Every case must end with exit status 2 and exactly one line on stderr -- ``error: ...`` naming
the file, key or value and what is allowed -- with no traceback, and leave no half-created
experiment behind: no sweep directory under the storage path and no MLflow store. The cases run
through the CLI's ``main`` in this process (a subprocess would spend its 2-6 s importing), those
in ``AS_SUBPROCESS`` also as the installed ``isobn-tune`` command, concurrently, so what reaches
a real terminal's stderr (warnings, library logs) is checked too; the two Ray-address cases that
must fail within a time bound run as commands on their own.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import free_port, tiny_space

from isobn_tune.cli import main

CLI = str(Path(sys.executable).with_name("isobn-tune"))
SECRET = "pw-s3cret-123"
Space = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """A bad input: what to change in the tiny sweep, extra CLI arguments, and the fragments the
    error line must contain (``{root}`` is the case's directory)."""

    mutate: Callable[[Space], Any] = lambda space: None
    args: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    raw_file: str | None = None  # the space file's text instead of the mutated tiny sweep
    command: str = "run"
    setup: Callable[[Path], Any] = lambda root: None


def _set(path: str, value: Any) -> Callable[[Space], None]:
    def mutate(space: Space) -> None:
        *parents, leaf = path.split(".")
        node = space
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return mutate


def _drop(key: str) -> Callable[[Space], None]:
    return lambda space: space.pop(key)


def _corrupt_glue(root: Path) -> None:
    rte = root / "glue" / "RTE"
    rte.mkdir(parents=True)
    header = "index\tsentence1\tsentence2\tlabel\n"
    (rte / "train.tsv").write_text(header + "0\tA man runs.\tA person runs.\tentailment\n1\ttruncated row\n")
    (rte / "dev.tsv").write_text(header + "0\tA man runs.\tA person runs.\tentailment\n")


CASES: dict[str, Case] = {
    # the space file itself
    "missing space file": Case(raw_file="", setup=lambda root: (root / "space.yaml").unlink(),
                               expect=("search space file", "space.yaml", "does not exist")),
    "invalid yaml": Case(raw_file="name: tiny\ngrid: [lr: 1\n", expect=("space.yaml:", "invalid YAML")),
    "not a mapping": Case(raw_file="- rte\n- mrpc\n", expect=("must be a mapping of sections", "got list")),
    "duplicate key": Case(raw_file="name: a\nname: b\n", expect=("duplicate key 'name'",)),
    "unknown top-level key": Case(_set("grids", {"lr": [1e-3]}),
                                  expect=("grids: unknown key", "allowed keys: name, description, model")),
    "unknown nested key": Case(_set("grid.learning_rate", [1e-3]),
                               expect=("grid.learning_rate: unknown key",
                                       "allowed keys: cls_norm, lr, batch_size, seeds")),
    "missing section": Case(_drop("grid"), expect=("grid: required key is missing",)),
    "wrong type in a list": Case(_set("grid.lr", ["fast"]), expect=("grid.lr[0]", "'fast'")),
    "wrong type of a setting": Case(_set("recipe.max_epochs", "ten"), expect=("recipe.max_epochs", "'ten'")),
    "negative learning rate": Case(_set("grid.lr", [-1e-5]),
                                   expect=("grid.lr[0]", "greater than 0", "-1e-05")),
    "alpha out of range": Case(_set("grid.alpha", [1.5]), expect=("grid.alpha[0]", "less than 1", "1.5")),
    "sequence length out of range": Case(_set("data.max_seq_length", 4),
                                         expect=("data.max_seq_length", "greater than or equal to 8", "4")),
    "empty grid": Case(_set("grid.seeds", []), expect=("grid.seeds", "at least 1 item")),
    "repeated grid values": Case(_set("grid.seeds", [1, 1]), expect=("grid.seeds", "repeated: 1")),
    "unknown task": Case(_set("tasks", ["imdb"]), expect=("tasks[0]", "'imdb'", "rte")),
    "unknown scheduler": Case(_set("scheduler", {"type": "hyperband"}),
                              expect=("scheduler.type: unknown type 'hyperband'", "allowed: fifo, asha")),
    "unknown cls_norm": Case(_set("grid.cls_norm", ["whitening"]),
                             expect=("grid.cls_norm[0]", "'whitening'", "'isobn'")),
    "grace period beyond the epochs": Case(
        _set("scheduler", {"type": "asha", "grace_period": 5}),
        expect=("scheduler.grace_period: must be <= recipe.max_epochs (2)",)),
    # data and model
    "missing data dir": Case(_set("data.glue_dir", "/nonexistent/glue"),
                             expect=("data.glue_dir", "GLUE directory '/nonexistent/glue' does not exist")),
    "corrupt tsv": Case(_set("data.glue_dir", "glue"), setup=_corrupt_glue,
                        expect=("glue/RTE/train.tsv line 3", "expected 4 tab-separated fields, found 2")),
    "missing model path": Case(_set("model.name_or_path", "./no-such-model"),
                               expect=("model.name_or_path", "no-such-model", "does not exist")),
    # where results and runs go
    "unwritable storage path": Case(args=("--storage", "{root}/a-file/results"),
                                    setup=lambda root: (root / "a-file").write_text("not a directory"),
                                    expect=("storage path '{root}/a-file/results' is not writable",)),
    "sweep name with a path": Case(args=("--name", "../escape"),
                                   expect=("sweep name '../escape'", "letters, digits and _ . - only")),
    "tracking uri without a scheme": Case(args=("--tracking-uri", "{root}/mlflow.db"),
                                          expect=("tracking URI", "scheme '' is not one of", "'sqlite'")),
    "tracking store in a missing directory": Case(args=("--tracking-uri", "sqlite:////nonexistent/dir/mlflow.db"),
                                                  expect=("directory /nonexistent/dir does not exist",)),
    "tracking server unreachable": Case(args=("--tracking-uri", "http://127.0.0.1:{free_port}"),
                                        expect=("tracking server 'http://127.0.0.1:", "is unreachable")),
    "tracking database without its driver": Case(
        args=("--tracking-uri", f"postgresql://isobn:{SECRET}@127.0.0.1:5432/mlflow"),
        expect=("postgresql://***@127.0.0.1:5432/mlflow", "needs the database driver")),
    "retired file tracking store": Case(args=("--tracking-uri", "file://{root}/mlruns"),
                                        expect=("file store is retired", "sqlite:///")),
    "malformed ray address": Case(args=("--address", "head-node"),
                                  expect=("Ray address 'head-node' is not auto, local, HOST:PORT or ray://HOST:PORT",)),
    # resume
    "resume of a directory that is not a sweep": Case(
        command="resume", expect=("is not a sweep directory (no sweep.json)",)),
}


@dataclass
class Outcome:
    argv: list[str]
    root: Path
    returncode: int
    stderr: str
    seconds: float


def prepare(case: Case, root: Path, glue_dir: Path) -> list[str]:
    """Write the case's files under ``root``; its ``isobn-tune`` command line."""
    root.mkdir(parents=True)
    space_file = root / "space.yaml"
    if case.raw_file is None:
        space = tiny_space(glue_dir, root / "results", tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
        case.mutate(space)
        space_file.write_text(yaml.safe_dump(space, sort_keys=False))
    else:
        space_file.write_text(case.raw_file)
    case.setup(root)
    args = [a.format(root=root, free_port=free_port()) for a in case.args]
    target = str(root) if case.command == "resume" else str(space_file)
    return [CLI, case.command, target, *args]


def run_cli(argv: list[str], root: Path) -> Outcome:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    return Outcome(argv, root, proc.returncode, proc.stderr, time.monotonic() - start)


def run_main(argv: list[str], root: Path) -> Outcome:
    """``argv`` through the CLI's ``main`` in this process, in ``root``, as :func:`run_cli` would."""
    err = io.StringIO()
    start = time.monotonic()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.chdir(root)
        code = main(argv[1:])
    return Outcome(argv, root, code, err.getvalue(), time.monotonic() - start)


AS_SUBPROCESS = ("missing space file", "corrupt tsv", "tracking database without its driver",
                 "tracking server unreachable")


@pytest.fixture(scope="module")
def outcomes(glue_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("bad-inputs")
    jobs = {name: (prepare(case, base / f"case{i}", glue_dir), base / f"case{i}")
            for i, (name, case) in enumerate(CASES.items())}
    commands = {name: (argv, prepare(CASES[name], base / f"command{i}", glue_dir), base / f"command{i}")
                for i, (name, (argv, _)) in enumerate(jobs.items()) if name in AS_SUBPROCESS}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # meanwhile, in-process
        futures = {name: pool.submit(run_cli, argv, root) for name, (_, argv, root) in commands.items()}
        results = {name: run_main(argv, root) for name, (argv, root) in jobs.items()}
        results |= {f"{name} (command)": future.result() for name, future in futures.items()}
    return results


def assert_one_line_error(outcome: Outcome, expect: tuple[str, ...]) -> None:
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.returncode == 2, (outcome.argv, outcome.stderr)
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    for fragment in expect:
        assert fragment.format(root=outcome.root) in lines[0]


def assert_nothing_created(root: Path) -> None:
    results = root / "results"
    assert not results.exists() or not any(results.iterdir()), list(results.iterdir())
    assert not (root / "mlflow.db").exists() and not (root / "mlartifacts").exists()


NAMES = [*CASES, *(f"{name} (command)" for name in AS_SUBPROCESS)]


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_a_one_line_error(name: str, outcomes: dict[str, Outcome]) -> None:
    assert_one_line_error(outcomes[name], CASES[name.removesuffix(" (command)")].expect)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_creates_no_experiment(name: str, outcomes: dict[str, Outcome]) -> None:
    assert_nothing_created(outcomes[name].root)


def test_no_credentials_in_the_error(outcomes: dict[str, Outcome]) -> None:
    for name in ("tracking database without its driver", "tracking database without its driver (command)"):
        assert SECRET not in outcomes[name].stderr


@pytest.fixture
def listener() -> Iterator[int]:
    """A port where something that is not Ray accepts connections (and never answers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("address, expect, within_s", [
    pytest.param("127.0.0.1:{free_port}", "Connection refused", 10, id="nothing listens"),
    pytest.param("127.0.0.1:{listener}", "Timed out while waiting for GCS", 25, id="not a Ray head"),
])
def test_unreachable_ray_address_fails_fast(address: str, expect: str, within_s: float, listener: int,
                                            glue_dir: Path, tmp_path: Path) -> None:
    argv = prepare(Case(), tmp_path / "case", glue_dir)
    address = address.format(free_port=free_port(), listener=listener)
    outcome = run_cli([*argv, "--address", address], tmp_path / "case")
    assert_one_line_error(outcome, (f"cannot connect to Ray at '{address}'", expect))
    assert_nothing_created(outcome.root)
    assert outcome.seconds < within_s  # ray.init alone retries such an address for many minutes
