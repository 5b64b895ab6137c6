"""Changes and key revocations committed by the other worker processes of one
``fader serve --workers N`` on SQLite: the SQLite counterpart of :mod:`.notifications`.

SQLite has no ``NOTIFY``: a worker's own commits reach its streams through
:meth:`~.store.SqlStore.subscribe`, but another worker's commits land in the shared file
without a word. So the transactions that would notify on PostgreSQL write the same
announcements, in the same vocabulary, as rows of :data:`~.tables.announcements` (channel
:data:`~.delivery.CHANGE_CHANNEL` with an environment's new revision, or
:data:`~.delivery.REVOKED_CHANNEL` with a revoked key's id: ``DeliveryQueries._announce`` in
:mod:`.delivery`), and one daemon thread per worker reads the new rows and hands them to the
same callbacks the PostgreSQL listener calls: the changed environments are re-read and pushed,
the revoked keys forgotten and their streams ended. Nothing else is dropped: a commit that
announces nothing (an SDK summary, an audit entry, a key's last use) costs the other workers one
empty read and no cache.

How the thread knows when to read: ``PRAGMA data_version``, on its own connection, changes
whenever *another* connection (of any process) has committed to the file since the previous
read, and costs no I/O beyond the shared WAL index (a page of shared memory). The thread reads
it every `interval` seconds and, only when it moved, reads the announcements after the last one
it handed on (by primary key: a range read of usually no row).

Why no announcement is skipped or lost:

- SQLite has one writer at a time, so announcement ids commit in increasing order: no
  transaction can still commit an id below one already read.
- Ids come from ``AUTOINCREMENT``, never reused, and a rolled-back transaction gives its id
  back, so the ids of committed announcements follow each other. A first new id that is not
  the next one means rows were deleted before this thread read them (only the newest
  :data:`~.delivery.ANNOUNCEMENTS_KEPT` are kept): the thread then calls `on_resync` (re-read
  every streamed revision, forget every cached key, re-check the keys of open streams), as the
  PostgreSQL listener does after a reconnect.
- At every (re)connect the thread notes the newest id, then calls `on_resync`, which covers
  whatever was committed before; a database error ends the session, and the next one starts
  the same way (:mod:`.watch_thread`).

A change made through worker A reaches streams held by worker B within about `interval`
(default 50 ms) plus one revision read and one snapshot build. Each worker also reads its own
announcements (its pool's connections are not the thread's); they are idempotent, as on
PostgreSQL, where a replica hears its own notifications too.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from fader_server.storage.ports import ChangeListener, RevocationListener
from fader_server.storage.sql.delivery import CHANGE_CHANNEL, REVOKED_CHANNEL, decode_change
from fader_server.storage.sql.watch_thread import WatchThread

DEFAULT_INTERVAL = 0.05
"""Seconds between two reads of ``data_version`` (``FADER_SQLITE_WATCH_SECONDS``)."""
RETRY_DELAY = 1.0
"""Seconds before a failed watch (the file busy past its timeout, or gone) looks again."""
_NEWEST = "SELECT coalesce(max(id), 0) FROM announcements"
_AFTER = "SELECT id, channel, payload FROM announcements WHERE id > ? ORDER BY id"


class SqliteWatcher:
    """Hands announcements committed to `path` by other connections to `listener` and
    `on_revoked`, from its own thread; calls `on_resync` when it may have missed some."""

    def __init__(
        self,
        path: Path,
        listener: ChangeListener,
        on_resync: Callable[[], None],
        *,
        on_revoked: RevocationListener | None = None,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"the SQLite watch interval must be positive, not {interval}")
        self._path = path
        self._listener = listener
        self._on_resync = on_resync
        self._on_revoked = on_revoked
        self._interval = interval
        self._thread = WatchThread(
            "fader-sqlite-watch",
            "SQLite change watch",
            self._session,
            database_errors=sqlite3.Error,
            backoff=lambda _failures: RETRY_DELAY,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def _session(self) -> None:
        connection = sqlite3.connect(self._path, check_same_thread=False, timeout=10)
        try:
            # Autocommit: each read stands alone, so this connection never holds a read
            # snapshot open (which would keep the WAL from being checkpointed).
            connection.isolation_level = None
            seen = _data_version(connection)
            handed_on = int(connection.execute(_NEWEST).fetchone()[0])
            self._thread.connected()
            self._on_resync()  # whatever was committed up to `handed_on`, and before
            while not self._thread.stopped.wait(self._interval):
                version = _data_version(connection)
                if version != seen:
                    seen = version
                    handed_on = self._hand_on(connection.execute(_AFTER, (handed_on,)), handed_on)
        finally:
            connection.close()

    def _hand_on(self, rows: sqlite3.Cursor, handed_on: int) -> int:
        """Hand the new announcements to the callbacks, runs of one channel together, in the
        order they committed; the id of the last one (`handed_on` if there was none)."""
        announced: Sequence[tuple[int, str, str]] = rows.fetchall()
        if not announced:
            return handed_on
        if announced[0][0] != handed_on + 1:
            self._on_resync()  # the ones in between were deleted before this read them
            return announced[-1][0]
        for channel, run in itertools.groupby(announced, key=lambda row: row[1]):
            payloads = [payload for _, _, payload in run]
            if channel == CHANGE_CHANNEL:
                self._listener([decode_change(payload) for payload in payloads])
            elif channel == REVOKED_CHANNEL and self._on_revoked is not None:
                self._on_revoked([int(payload) for payload in payloads])
        return announced[-1][0]


def _data_version(connection: sqlite3.Connection) -> int:
    row = connection.execute("PRAGMA data_version").fetchone()
    return int(row[0])
