"""Changes and token revocations committed by other replicas, received with PostgreSQL
``LISTEN`` (channels :data:`~.delivery.CHANGE_CHANNEL` and :data:`~.delivery.REVOKED_CHANNEL`).

One daemon thread per server process holds a dedicated connection (outside the pool: a
listening connection must stay on one session, which is also why this does not go through
PgBouncer in transaction mode; point ``FADER_LISTEN_URL`` at PostgreSQL directly when the
pool sits in front). Failure handling is the point of this module:

- A lost connection (database restart, ``pg_terminate_backend``, network cut) raises out of
  the wait; the thread reconnects with capped, jittered backoff (:mod:`.watch_thread`, the
  loop this shares with the SQLite watch).
- A half-open connection (peer vanished without a FIN) would wait forever, so every
  `probe_interval` seconds without a notification the thread runs ``SELECT 1``.
- Notifications sent while no connection was listening are gone for good, so after every
  (re)connect the thread calls `on_resync`, and the caller re-reads the revisions it serves
  and re-checks the keys its streams were opened with.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import psycopg

from fader_server.storage.ports import ChangeListener, RevocationListener
from fader_server.storage.sql.delivery import CHANGE_CHANNEL, REVOKED_CHANNEL, decode_change
from fader_server.storage.sql.watch_thread import WatchThread

APPLICATION_NAME = "fader-listener"
_SLICE = 0.5


class PostgresListener:
    def __init__(
        self,
        dsn: str,
        listener: ChangeListener,
        on_resync: Callable[[], None],
        *,
        on_revoked: RevocationListener | None = None,
        probe_interval: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._listener = listener
        self._on_resync = on_resync
        self._on_revoked = on_revoked
        self._probe_interval = probe_interval
        self._max_backoff = max_backoff
        self._thread = WatchThread(
            "fader-listener",
            "change listener",
            self._session,
            database_errors=psycopg.Error,
            backoff=self._backoff,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def _backoff(self, failures: int) -> float:
        """Capped and jittered, so replicas cut off together do not reconnect in step."""
        return random.uniform(0, min(self._max_backoff, 0.05 * 2**failures))

    def _session(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True, application_name=APPLICATION_NAME) as conn:
            conn.execute(f"LISTEN {CHANGE_CHANNEL}")
            if self._on_revoked is not None:
                conn.execute(f"LISTEN {REVOKED_CHANNEL}")
            self._thread.connected()
            self._on_resync()
            self._listen(conn)

    def _listen(self, conn: psycopg.Connection[object]) -> None:
        """Wait in short slices (so :meth:`stop` returns within one), probing the connection
        after `probe_interval` seconds without a notification."""
        quiet_since = time.monotonic()
        stopped = self._thread.stopped
        while not stopped.is_set():
            for notify in conn.notifies(timeout=min(_SLICE, self._probe_interval)):
                quiet_since = time.monotonic()
                if notify.channel == CHANGE_CHANNEL:
                    self._listener([decode_change(notify.payload)])
                elif notify.channel == REVOKED_CHANNEL and self._on_revoked is not None:
                    self._on_revoked([int(notify.payload)])
                if stopped.is_set():
                    return
            if time.monotonic() - quiet_since >= self._probe_interval:
                conn.execute("SELECT 1")
                quiet_since = time.monotonic()


def psycopg_dsn(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://...`` → a libpq URL psycopg accepts."""
    scheme, rest = sqlalchemy_url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else sqlalchemy_url
