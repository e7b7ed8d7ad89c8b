"""What reaches the terminal while a sweep's output is captured, and what only its log gets.

The sweeps themselves are in test_quickstart.py (a real CLI run in a pipe) and test_runner.py; here
the routing itself, with real logging handlers bound to the terminal before the capture starts, as
Ray's and MLflow's are when they are imported.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from isobn_tune import console


@contextlib.contextmanager
def terminal() -> Iterator[io.StringIO]:
    """A terminal as stdout and stderr, and a library logger whose handler was created writing to
    it. (Entered in the test body: pytest's capture puts its own streams back between a fixture's
    setup and the test.)"""
    screen = io.StringIO()
    logger = logging.getLogger("some_library")
    handler = logging.StreamHandler(screen)
    logger.addHandler(handler)
    logger.propagate = False
    with contextlib.redirect_stdout(screen), contextlib.redirect_stderr(screen):
        yield screen
    logger.removeHandler(handler)


def emit_everything() -> None:
    print("a library's print")
    print("a library's warning", file=sys.stderr)
    logging.getLogger("some_library").warning("a library's log record")
    console.say("a line for the person")


EVERYTHING = ["a library's print", "a library's warning", "a library's log record", "a line for the person"]


def test_captured_output_leaves_the_terminal_only_what_is_said(tmp_path: Path) -> None:
    with terminal() as screen:
        with console.captured_output(tmp_path / "sweep.log"):
            emit_everything()
        assert screen.getvalue() == "a line for the person\n"
        print("after the sweep")  # the streams and the handler are the terminal's again
        logging.getLogger("some_library").warning("a later record")
    assert (tmp_path / "sweep.log").read_text().splitlines() == EVERYTHING
    assert screen.getvalue() == "a line for the person\nafter the sweep\na later record\n"


def test_verbose_shows_everything_and_still_logs_it(tmp_path: Path) -> None:
    with terminal() as screen, console.captured_output(tmp_path / "sweep.log", verbose=True):
        emit_everything()
    assert screen.getvalue().splitlines() == EVERYTHING
    assert (tmp_path / "sweep.log").read_text().splitlines() == EVERYTHING


def test_a_handler_created_during_the_capture_does_not_keep_the_closed_log(tmp_path: Path) -> None:
    late = logging.getLogger("imported_late")
    late.propagate = False
    with terminal() as screen:
        with console.captured_output(tmp_path / "sweep.log"):
            late.addHandler(logging.StreamHandler())  # binds to sys.stderr: the log, at this moment
            late.warning("during")
        late.warning("after")  # would raise "I/O operation on closed file" inside logging
    late.handlers.clear()
    assert "during" in (tmp_path / "sweep.log").read_text()
    assert screen.getvalue() == "after\n"
