"""What a sweep prints: a few lines for the person at the terminal, everything else to a log file.

While a sweep runs, ``captured_output`` sends Python's stdout and stderr, and every logging handler
that wrote to them (Ray's, Tune's, MLflow's, the workers' output Ray forwards to the driver), to
the sweep's log file, or to the log and the terminal with ``verbose``. Lines meant for the person go
through ``say`` (a line) and ``status`` (the progress line: redrawn in place on a terminal, a new
line at most every ``PIPE_STATUS_INTERVAL_S`` in a pipe or file, so a log stays short).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

PIPE_STATUS_INTERVAL_S = 60.0
TTY_STATUS_INTERVAL_S = 1.0


class _Tee:
    """A text stream writing to several streams (``--verbose``: the log and the terminal)."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False


class _Console:
    """The terminal's stream and the state of its progress line."""

    def __init__(self) -> None:
        self.terminal: TextIO | None = None  # set while output is captured
        self.log: TextIO | None = None
        self.status_shown = False  # a progress line is drawn on the terminal, without its newline
        self.last_status = -float("inf")

    @property
    def stream(self) -> TextIO:
        return self.terminal or sys.stdout

    def is_tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())


_console = _Console()


def terminal() -> TextIO:
    """Where lines for the person go: the real stdout while a sweep's output is captured."""
    return _console.stream


def say(line: str) -> None:
    """A line for the person (also written to the log while output is captured)."""
    stream = _console.stream
    if _console.status_shown:
        stream.write("\r\033[K")  # the progress line is redrawn below the message
    stream.write(line + "\n")
    stream.flush()
    if _console.log is not None:
        _console.log.write(line + "\n")
    if _console.status_shown:
        _console.status_shown = False
        _console.last_status = -float("inf")


def status(line: str, *, final: bool = False) -> None:
    """The progress line: in place on a terminal; in a pipe a new line on the first call, on
    ``final`` and otherwise at most every ``PIPE_STATUS_INTERVAL_S``."""
    now = time.monotonic()
    stream = _console.stream
    if _console.is_tty():
        if final or now - _console.last_status >= TTY_STATUS_INTERVAL_S:
            stream.write("\r\033[K" + line + ("\n" if final else ""))
            stream.flush()
            _console.status_shown = not final
            _console.last_status = now
    elif final or now - _console.last_status >= PIPE_STATUS_INTERVAL_S:
        stream.write(line + "\n")
        stream.flush()
        _console.last_status = now
    if _console.log is not None and final:
        _console.log.write(line + "\n")
    if final:
        _console.last_status = -float("inf")  # the next experiment's first line shows at once


def _swap_handler_streams(swap: dict[int, TextIO]) -> list[tuple[logging.StreamHandler, TextIO]]:
    """Point every logging stream handler writing to a stream in ``swap`` (by id) at its
    replacement; returns what to put back."""
    loggers = [logging.getLogger(), *(
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    )]
    swapped = []
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                replacement = swap.get(id(handler.stream))
                if replacement is not None:
                    with contextlib.suppress(AttributeError):  # logging's last-resort handler: fixed
                        swapped.append((handler, handler.setStream(replacement)))
    return swapped


@contextmanager
def captured_output(log_path: Path, *, verbose: bool = False) -> Iterator[Path]:
    """Everything printed or logged inside goes to ``log_path`` (appended; also to the terminal
    with ``verbose``); ``say`` and ``status`` still reach the terminal."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    real_out, real_err = sys.stdout, sys.stderr
    with log_path.open("a", encoding="utf-8", buffering=1) as log:
        sink_out: TextIO = _Tee(log, real_out) if verbose else log  # type: ignore[assignment]
        sink_err: TextIO = _Tee(log, real_err) if verbose else log  # type: ignore[assignment]
        swap = {id(real_out): sink_out, id(real_err): sink_err,
                id(sys.__stdout__): sink_out, id(sys.__stderr__): sink_err}
        swapped = _swap_handler_streams(swap)
        _console.terminal, _console.log = real_out, log
        sys.stdout, sys.stderr = sink_out, sink_err
        try:
            yield log_path
        finally:
            sys.stdout, sys.stderr = real_out, real_err
            for handler, stream in swapped:
                handler.setStream(stream)
            # Handlers created inside (a library imported late) must not keep the closed log.
            _swap_handler_streams({id(sink_out): real_err, id(sink_err): real_err})
            if _console.status_shown:
                real_out.write("\n")
            _console.terminal = _console.log = None
            _console.status_shown = False
