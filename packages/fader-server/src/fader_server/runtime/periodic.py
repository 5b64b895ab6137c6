"""One background thread that runs a job every so often, and survives the job's failures.

Retention, the escalation of overdue action items and the scheduled-changes runner all need the
same loop: wait, run, log what went wrong, wait again, until the server stops. Each of them is
safe to run on every replica at once (their use cases lock or compare-and-swap), so the loop
needs no leader; what it must never do is die on the first error: a database that is down
(:class:`~fader_server.errors.StorageUnavailableError`) is a warning and the next run retries,
and a bug in one run is logged with its stack trace without stopping the runs after it.

The wait is on a :class:`threading.Event`, so :meth:`Periodic.close` ends it at once rather
than after a whole interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from fader_server.errors import StorageUnavailableError
from fader_server.logs import get_logger


class Periodic:
    """Call `job` after `first_delay` seconds, then every `interval`, in a daemon thread.

    `name` names the thread (``fader-<name>``) and the log events of a run that failed
    (``<name>_deferred`` when the database is unavailable, ``<name>_failed`` otherwise)."""

    def __init__(self, name: str, job: Callable[[], object]) -> None:
        self._name = name
        self._job = job
        self._log = get_logger()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float, first_delay: float | None = None) -> None:
        """Start the thread (once; later calls do nothing). `first_delay` defaults to
        `interval`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop,
            args=(interval, interval if first_delay is None else first_delay),
            name=f"fader-{self._name.replace('_', '-')}",
            daemon=True,
        )
        self._thread.start()

    def _loop(self, interval: float, first_delay: float) -> None:
        wait = first_delay
        while not self._stop.wait(wait):
            wait = interval
            try:
                self._job()
            except StorageUnavailableError:
                self._log.warning(f"{self._name}_deferred", reason="database unavailable")
            except Exception:  # a bug in one run must not stop every later one
                self._log.exception(f"{self._name}_failed")

    def close(self) -> None:
        """Stop the loop and wait (up to 10 s) for a run in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
