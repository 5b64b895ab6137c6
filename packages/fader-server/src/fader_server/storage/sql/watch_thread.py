"""The daemon thread that carries other processes' commits into this one, on either database.

:class:`~.notifications.PostgresListener` (``LISTEN``) and :class:`~.sqlite_watch.SqliteWatcher`
(the SQLite announcement log) differ in how they connect and wait, not in how they survive: each
runs a *session* (connect, call the resync callback, then wait for announcements until stopped)
over and over on one daemon thread, and what matters is what happens when a session fails.

- A database error (a lost or refused connection, a file busy past its timeout) is expected:
  logged as one warning line (the error's type only: its message can carry a host or a path),
  then the session starts again after `backoff(failures)` seconds. Announcements made
  meanwhile are not lost for good, because every session begins with a resync.
- Any other exception is a bug in a callback; it must not end the fan-out for good, so it is
  logged with its traceback and the session starts again a second later.
- :meth:`WatchThread.stop` returns within one wait: sessions wait on :attr:`WatchThread.stopped`
  (``stopped.wait(seconds)``), never on a plain sleep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_log = logging.getLogger("fader.listener")
BUG_DELAY = 1.0
"""Seconds before a session that failed with a bug (not a database error) starts again."""


class WatchThread:
    """Runs `session` again and again on a daemon thread named `name` until :meth:`stop`.

    `session` returns when :attr:`stopped` is set; it raises one of `database_errors` when its
    connection failed, and calls :meth:`connected` once it is connected (which resets the
    failure count that `backoff` is given, and logs a recovery)."""

    def __init__(
        self,
        name: str,
        what: str,
        session: Callable[[], None],
        *,
        database_errors: type[Exception] | tuple[type[Exception], ...],
        backoff: Callable[[int], float],
    ) -> None:
        self.what = what
        """How log lines name this thread's job ("change listener", "SQLite change watch")."""
        self.stopped = threading.Event()
        self._session = session
        self._database_errors = database_errors
        self._backoff = backoff
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self._thread.join(timeout=5)

    def connected(self) -> None:
        """Called by a session once its connection works: the next failure starts the backoff
        from the beginning."""
        if self._failures:
            _log.info("%s reconnected after %d failed attempts", self.what, self._failures)
        self._failures = 0

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                self._session()
            except self._database_errors as exc:
                self._failures += 1
                delay = self._backoff(self._failures)
                _log.warning(
                    "%s lost its database connection (%s); retrying in %.2f s",
                    self.what,
                    type(exc).__name__,
                    delay,
                )
                self.stopped.wait(delay)
            except Exception:  # a bug in a callback must not stop the fan-out for good
                _log.exception("%s failed; restarting it", self.what)
                self.stopped.wait(BUG_DELAY)
