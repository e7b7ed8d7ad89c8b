"""MLflow as a view of the sweep, never its point of failure: an unreachable tracking store is
noted once and caught up with later, while the trials go on.

When an MLflow call fails for want of the store (after MLflow's own HTTP retries), the calls
after it are skipped rather than each waiting out those retries again (minutes with MLflow's
defaults, during which Tune's driver loop would stand still). At most every
``CATCH_UP_INTERVAL_S`` a catch-up is tried, once a server answers a quick health request again:
it logs what is missing from what Tune saved (see ``TrialLogger.catch_up`` and
``tracking_sync``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from isobn_tune.console import say
from isobn_tune.redaction import redact, redact_uri

CATCH_UP_INTERVAL_S = 30.0
PROBE_TIMEOUT_S = 5.0

_log = logging.getLogger(__name__)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store could not be reached: a connection error, a timeout or a
    server error after the retries, which MLflow raises as an ``MlflowException`` wrapping the
    ``requests`` error. Anything else (a refused request, a bug) still ends the sweep."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (requests.RequestException, ConnectionError)):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def server_answers(tracking_uri: str) -> bool:
    """One quick request to a tracking server's health endpoint (any other store is just tried)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return True
    try:
        return requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S).status_code < 500
    except requests.RequestException:
        return False


class Outage:
    """Whether the sweep's tracking is behind, and the guard its MLflow calls go through."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.behind = False  # a call failed and no catch-up has succeeded since
        self.missed = False  # a call failed at some point of this run
        self._announced = False
        self._next_try = 0.0

    def attempt(self, log: Callable[..., Any], *args: Any) -> bool:
        """``log(*args)``, skipped while behind; False if it was skipped or could not reach the store."""
        if self.behind:
            return False
        try:
            log(*args)
        except Exception as exc:
            if not unreachable(exc):
                raise
            self._lost(exc)
            return False
        return True

    def catch_up(self, sync: Callable[[], Any], *, now: bool = False) -> bool:
        """True when nothing is behind; else, when due (or ``now``) and the server answers, runs
        ``sync`` (which logs what the store lacks) and returns whether it succeeded."""
        if not self.behind:
            return True
        if not now and time.monotonic() < self._next_try:
            return False
        self._next_try = time.monotonic() + CATCH_UP_INTERVAL_S
        if not server_answers(self.tracking_uri):
            return False
        self.behind = False
        if not self.attempt(sync):
            return False
        if self._announced:
            self._announced = False
            say(f"MLflow at {redact_uri(self.tracking_uri)} answers again: its tracking has caught up")
        return True

    def settle(self, sync: Callable[[], Any]) -> bool:
        """At the end of a run: when anything was missed at any point, ``sync`` now (if the server
        answers); whether the store holds everything."""
        if not self.missed:
            return True
        self.behind = True
        return self.catch_up(sync, now=True)

    def _lost(self, exc: Exception) -> None:
        self.behind = self.missed = True
        self._next_try = time.monotonic() + CATCH_UP_INTERVAL_S
        _log.warning("MLflow call failed: %s", redact(str(exc)))
        if not self._announced:
            self._announced = True
            say(f"MLflow at {redact_uri(self.tracking_uri)} is unreachable: the trials go on, and what "
                "they report is logged once it answers again")
