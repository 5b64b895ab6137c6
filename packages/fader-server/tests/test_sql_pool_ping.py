"""Pooled PostgreSQL connections are pinged before reuse only after sitting idle
(storage/sql/store.py): a connection the database dropped while the pool held it is replaced
without the caller noticing, and one dropped while in steady use costs one retryable failure,
after which the pool replaces every connection it holds."""

from __future__ import annotations

import psycopg
import pytest
from conftest import PG_ADMIN_URL, dedicated_postgres_database

from fader_server.errors import StorageUnavailableError
from fader_server.storage.sql import store as sql_store
from fader_server.storage.sql.store import SqlStore


def _drop_connections(url: str) -> int:
    """Terminate every session on the database of `url` (as a database restart would)."""
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _read(store: SqlStore) -> None:
    with store.read() as tx:
        tx.get_project("anything")


def test_an_idle_connection_the_database_dropped_is_replaced_unnoticed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sql_store, "PING_AFTER_IDLE", 0.0)  # every pooled connection is idle
    with dedicated_postgres_database() as url:
        store = SqlStore.open(url, upgrade=False)
        try:
            _read(store)  # one connection now waits in the pool
            assert _drop_connections(url) >= 1
            _read(store)  # pinged, found dead, replaced: the read succeeds
        finally:
            store.close()


def test_a_busy_connection_the_database_dropped_fails_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sql_store, "PING_AFTER_IDLE", 3600.0)  # never idle long enough
    with dedicated_postgres_database() as url:
        store = SqlStore.open(url, upgrade=False)
        try:
            _read(store)
            assert _drop_connections(url) >= 1
            with pytest.raises(StorageUnavailableError):
                _read(store)  # not pinged: the dead connection is used and fails
            _read(store)  # the failure replaced the pool's connections
        finally:
            store.close()
