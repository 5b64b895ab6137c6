"""Commits made by the other worker processes of one ``fader serve --workers N`` on SQLite.

SQLite has no ``NOTIFY``: a worker's own commits reach its streams through
:meth:`~.store.SqlStore.subscribe`, but another worker's commits land in the shared file
without a word. ``PRAGMA data_version`` is SQLite's answer: on one connection its value
changes whenever *another* connection (of any process) has committed to the database since
the previous read, and reading it costs no I/O beyond the shared WAL index (a page of shared
memory). So one daemon thread per worker keeps a dedicated connection, which only reads, and
reads it every `interval` seconds; when it moved, the thread calls `on_resync`, the callback
the PostgreSQL listener calls after a reconnect: re-read the revisions of the streamed
environments, re-confirm cached snapshots, forget cached keys and re-check the keys of open
streams (so a key revoked through one worker also ends the streams other workers hold).

What this costs and bounds:

- A change made through worker A reaches streams held by worker B within about `interval`
  (default 50 ms) plus one revision read and one snapshot build.
- The value also moves for this worker's own commits (they come from other connections of
  its pool) and for every summary any worker writes, so under load a resync runs about once
  per `interval`. A resync is idempotent: revisions are compared with what each topic already
  sent (an unchanged one publishes nothing) and caches are only re-confirmed, never rebuilt
  unless the revision moved. Its cost is one revision read for the streamed environments, one
  key read for the open streams and, per environment and key next used, one confirmation.
- Missed polls lose nothing: the value only says "something changed since you last looked",
  and the resync reads the current state.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

_log = logging.getLogger("fader.listener")

DEFAULT_INTERVAL = 0.05
"""Seconds between two reads of ``data_version`` (``FADER_SQLITE_WATCH_SECONDS``)."""


class SqliteWatcher:
    """Calls `on_resync` from its own thread when another connection committed to `path`."""

    def __init__(
        self, path: Path, on_resync: Callable[[], None], *, interval: float = DEFAULT_INTERVAL
    ) -> None:
        if interval <= 0:
            raise ValueError(f"the SQLite watch interval must be positive, not {interval}")
        self._path = path
        self._on_resync = on_resync
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fader-sqlite-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch()
            except sqlite3.Error as exc:
                # The file was busy past the timeout, or vanished: look again shortly; the
                # resync after reconnecting covers whatever was committed meanwhile.
                _log.warning("SQLite change watch failed (%s); retrying", type(exc).__name__)
                self._stop.wait(1.0)
            except Exception:  # a bug in the callback must not stop the watch for good
                _log.exception("SQLite change watch failed; restarting it")
                self._stop.wait(1.0)

    def _watch(self) -> None:
        connection = sqlite3.connect(self._path, check_same_thread=False, timeout=10)
        try:
            # Autocommit: each PRAGMA read stands alone, so this connection never holds a
            # read snapshot open (which would keep the WAL from being checkpointed).
            connection.isolation_level = None
            seen = _data_version(connection)
            self._on_resync()
            while not self._stop.wait(self._interval):
                version = _data_version(connection)
                if version != seen:
                    seen = version
                    self._on_resync()
        finally:
            connection.close()


def _data_version(connection: sqlite3.Connection) -> int:
    row = connection.execute("PRAGMA data_version").fetchone()
    return int(row[0])
