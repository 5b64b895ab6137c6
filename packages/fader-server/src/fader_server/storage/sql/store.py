"""The SQL :class:`~fader_server.storage.ports.store.Database`: engine, pool and transactions.

SQLite settings, and why:
- WAL lets readers run while a writer commits.
- ``synchronous=FULL`` fsyncs the WAL on every commit: an acknowledged write survives a power
  cut or SIGKILL (NORMAL could lose the last commits on power loss).
- ``busy_timeout`` makes concurrent writers wait for the lock instead of failing at once.
- Writers of one process queue on a lock of their own before ``BEGIN IMMEDIATE``
  (:data:`WRITE_WAIT_SECONDS`): SQLite's busy handler polls with sleeps that grow to 100 ms,
  so eight concurrent writers of 4 ms each saw a p99 of half a second; queued on a lock, each
  starts the moment the previous one commits. Other processes (``--workers``) still meet
  through ``busy_timeout``.
- Write transactions start with ``BEGIN IMMEDIATE``: taking the write lock up front avoids the
  deadlock where two deferred transactions both read, then both try to upgrade to writing.

PostgreSQL goes through SQLAlchemy's QueuePool. A connection that sat idle in the pool for
:data:`PING_AFTER_IDLE` seconds or more is pinged before it is handed out (a dead one is replaced
at once), so a restarted database does not hand out dead connections after a quiet spell;
connections in steady use are not pinged, since ``pool_pre_ping``'s round trip on every
checkout was a tenth of the CPU of a cached admin read. If the database restarts under load,
the requests on the connections it cut fail once with a retryable 503 and SQLAlchemy replaces
every pooled connection older than the failure.

Every engine hides bind parameters from its exception
messages (``hide_parameters``): they can hold password hashes and webhook secrets, and those
messages end up in logs.

Behind a pooler in transaction mode (PgBouncer's ``pool_mode = transaction``,
``FADER_DATABASE_POOLER=transaction``) each transaction may run on a different server
connection, so nothing may outlive a transaction on its session. Fader's own statements keep
to that: its advisory locks are ``pg_advisory_xact_lock``, its ``lock_timeout`` is
transaction-local, isolation levels are named in each ``BEGIN``, ``NOTIFY`` is sent on commit,
and it makes no temporary tables. psycopg 3 does not: after a query has run five times on a
connection it prepares it on the server and later only names it, and the next server
connection has no such statement (or another of that name: "prepared statement "_pg3_0"
already exists"). So ``prepare_threshold=None`` is passed then. ``LISTEN`` needs a session
of its own and cannot go through such a pooler at all: :meth:`SqlStore.listen` refuses to
start without a direct ``listen_url``. Migrations do go through the pooler: each run is one
transaction under a transaction-scoped lock (:mod:`.migrate`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from fader_server.errors import AlreadyExistsError, InvalidInputError, StorageUnavailableError
from fader_server.storage.ports import ChangeListener, RevocationListener
from fader_server.storage.ports.commit_listeners import CommitListeners
from fader_server.storage.sql import migrate
from fader_server.storage.sql.notifications import PostgresListener, psycopg_dsn
from fader_server.storage.sql.repository import SqlTransaction
from fader_server.storage.sql.sqlite_watch import SqliteWatcher

_READ_ONLY = "fader_read_only"


WRITE_WAIT_SECONDS = 10.0
"""How long a SQLite writer waits for this process's other writers (as ``busy_timeout`` does
for other processes') before the request fails as retryable."""
PING_AFTER_IDLE = 1.0
"""Seconds a pooled PostgreSQL connection may sit unused before it is pinged on checkout."""
_IDLE_SINCE = "fader_idle_since"


def create_engine(url: str, *, transaction_pooler: bool = False) -> sa.Engine:
    """An engine tuned for the dialect (see the module docstring); `transaction_pooler`: the
    PostgreSQL URL goes through a pooler in transaction mode."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False}, hide_parameters=True
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event decide how transactions start.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: sa.Connection) -> None:
            read_only = connection.get_execution_options().get(_READ_ONLY, False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    connect_args: dict[str, Any] = {"prepare_threshold": None} if transaction_pooler else {}
    engine = sa.create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        hide_parameters=True,
        connect_args=connect_args,
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: sa.Engine) -> None:
    """Ping a pooled connection before reuse when it sat idle for :data:`PING_AFTER_IDLE`
    seconds (see the module docstring); a failed ping makes the pool replace it."""

    @event.listens_for(engine.pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the driver raises for a dead connection
            raise sa.exc.DisconnectionError("the pooled connection is gone") from exc


class SqlStore:
    """A :class:`~fader_server.storage.ports.store.Database` over one SQLAlchemy engine."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        listen_url: str | None = None,
        transaction_pooler: bool = False,
        sqlite_watch: float | None = None,
    ) -> None:
        self.engine = engine
        self.listen_url = listen_url
        """Where the LISTEN connection goes (PostgreSQL); default: the engine's database.
        Set it when the engine's URL points at a pooler in transaction mode (PgBouncer), where
        a session that LISTENs would not keep its connection."""
        self.transaction_pooler = transaction_pooler
        """The engine's URL goes through a pooler in transaction mode: `listen_url` is then
        required before :meth:`listen`."""
        self._heard = CommitListeners()
        self.sqlite_watch = sqlite_watch
        """SQLite only: seconds between two looks for commits by other processes (the other
        workers of ``fader serve --workers N``, :mod:`.sqlite_watch`); None: this process is
        the only writer, whose commits reach :meth:`subscribe` listeners directly."""
        self._remote: PostgresListener | SqliteWatcher | None = None
        self._writers = threading.Lock() if engine.dialect.name == "sqlite" else None
        """SQLite: this process's writers, one at a time (see the module docstring)."""

    @classmethod
    def open(
        cls,
        url: str,
        *,
        upgrade: bool = True,
        listen_url: str | None = None,
        transaction_pooler: bool = False,
        sqlite_watch: float | None = None,
    ) -> SqlStore:
        """Connect, and bring the schema to head unless told not to (through `url`, pooler
        or not: see the module docstring)."""
        engine = create_engine(url, transaction_pooler=transaction_pooler)
        if upgrade:
            migrate.upgrade(engine)
        return cls(
            engine,
            listen_url=listen_url,
            transaction_pooler=transaction_pooler,
            sqlite_watch=sqlite_watch,
        )

    @contextmanager
    def _begin(self, read_only: bool) -> Iterator[SqlTransaction]:
        writers = None if read_only else self._writers
        if writers is not None and not writers.acquire(timeout=WRITE_WAIT_SECONDS):
            raise StorageUnavailableError("the database is busy with other writes; retry")
        try:
            with self._connected(read_only) as tx:
                yield tx
        finally:
            if writers is not None:
                writers.release()
        self._heard.tell(tx)

    @contextmanager
    def _connected(self, read_only: bool) -> Iterator[SqlTransaction]:
        """One transaction on a pooled connection, committed when the block ends; database
        errors become Fader's (conflict, unavailable, invalid input)."""
        try:
            connection = self.engine.connect()
        except sa.exc.OperationalError as exc:
            raise StorageUnavailableError("the database cannot be reached") from exc
        with connection:
            if read_only:
                connection = connection.execution_options(**{_READ_ONLY: True})
                if connection.dialect.name == "postgresql":
                    # A document is built by several reads: all of them must see one moment,
                    # or a snapshot could name a segment it does not hold (read skew). SQLite
                    # readers keep one snapshot anyway; PostgreSQL's default, READ COMMITTED,
                    # takes one per statement. Per transaction ("BEGIN ISOLATION LEVEL"), so
                    # PgBouncer's transaction pooling is fine, and read-only transactions at
                    # this level never fail with serialisation errors.
                    connection = connection.execution_options(isolation_level="REPEATABLE READ")
            try:
                with connection.begin():
                    yield SqlTransaction(connection, writable=not read_only)
            except sa.exc.IntegrityError as exc:
                # Services check before they insert, storage yields where it can foresee a
                # race, and project writes are serialised (docs/adr/0005-project-write-lock.md);
                # a constraint still refusing a row is a concurrent change the code did not
                # anticipate: a conflict to retry, not a server error. The database's message
                # (values included) is not the client's business.
                raise AlreadyExistsError(
                    "a concurrent change created or removed what this request relies on; "
                    "read the current state and retry"
                ) from exc
            except sa.exc.OperationalError as exc:
                raise StorageUnavailableError("the database is unavailable or busy") from exc
            except sa.exc.DataError as exc:
                # A value the database cannot hold (PostgreSQL: a NUL character in text, an
                # integer beyond its column): the request is wrong, not the server.
                raise InvalidInputError(
                    f"the database cannot take a value of this request ({exc.orig}); "
                    "remove NUL characters and keep numbers within range"
                ) from exc

    def transaction(self) -> AbstractContextManager[SqlTransaction]:
        return self._begin(read_only=False)

    def read(self) -> AbstractContextManager[SqlTransaction]:
        return self._begin(read_only=True)

    def ping(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execution_options(**{_READ_ONLY: True}).exec_driver_sql("SELECT 1")
        except sa.exc.SQLAlchemyError as exc:
            raise StorageUnavailableError("the database cannot be reached") from exc

    def migrations_current(self) -> bool:
        return migrate.current_revision(self.engine) == migrate.head_revision()

    def subscribe(self, listener: ChangeListener) -> None:
        self._heard.changes.append(listener)

    def subscribe_revocations(self, listener: RevocationListener) -> None:
        self._heard.revocations.append(listener)

    def subscribe_accounts(self, listener: Callable[[], None]) -> None:
        self._heard.accounts.append(listener)

    def listen(
        self,
        listener: ChangeListener,
        on_resync: Callable[[], None],
        on_revoked: RevocationListener | None = None,
    ) -> None:
        """On PostgreSQL, start the LISTEN thread (see :mod:`.notifications`). SQLite
        commits of this process reach :meth:`subscribe` listeners; when other processes share
        the file (`sqlite_watch`), a watcher reads what theirs announced and calls the same
        callbacks (:mod:`.sqlite_watch`).

        Behind a pooler in transaction mode, without a direct `listen_url`, this refuses:
        ``LISTEN`` through the pooler would be forgotten with its transaction's server
        connection, and changes and key revocations from other replicas would reach this
        one's streams only at the next resync, silently."""
        if self._remote is not None:
            return
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            if self.sqlite_watch is not None and database and database != ":memory:":
                self._remote = SqliteWatcher(
                    Path(database),
                    listener,
                    on_resync,
                    on_revoked=on_revoked,
                    interval=self.sqlite_watch,
                )
                self._remote.start()
            return
        if self.engine.dialect.name != "postgresql":
            return
        if self.transaction_pooler and self.listen_url is None:
            raise ValueError(
                "FADER_DATABASE_POOLER=transaction needs FADER_LISTEN_URL: a connection to "
                "PostgreSQL that bypasses the pooler, for LISTEN (docs/deploy.md, "
                "PgBouncer in transaction mode)"
            )
        url = self.listen_url or self.engine.url.render_as_string(hide_password=False)
        self._remote = PostgresListener(
            psycopg_dsn(url),
            listener,
            on_resync,
            on_revoked=on_revoked,
        )
        self._remote.start()

    def close(self) -> None:
        if self._remote is not None:
            self._remote.stop()
            self._remote = None
        self.engine.dispose()
