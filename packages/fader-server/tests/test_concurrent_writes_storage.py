"""The storage half of the project write lock and of racing inserts, step by step.

The HTTP tests (`test_concurrent_writes.py`, `test_races.py`) race real requests; here two
transactions are put in a chosen order on a real PostgreSQL database: the second one is
observed waiting (in ``pg_locks``) before the first commits, so each test is deterministic.
See docs/adr/0005-project-write-lock.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from server_api import unique

from fader_server.errors import AlreadyExistsError, StorageUnavailableError
from fader_server.services.access import Principal, Role, load_project
from fader_server.storage.ports import PROJECT_SCOPE, ResourceType
from fader_server.storage.sql.store import SqlStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ADMIN = Principal("test", instance_admin=True)


@pytest.fixture(scope="module")
def store(postgres_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(postgres_url)
    yield opened
    opened.close()


@pytest.fixture
def project_key(store: SqlStore) -> str:
    key = unique("lock")
    with store.transaction() as tx:
        tx.insert_project(key, "Lock", NOW)
    return key


def _waiting(postgres_url: str, locktype: str) -> None:
    """Return once some transaction waits for a lock of `locktype` (generous deadline)."""
    dsn = postgres_url.replace("+psycopg", "")
    deadline = time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = %s", (locktype,)
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.02)
    raise AssertionError(f"no transaction ever waited for a {locktype} lock")


class Second(threading.Thread):
    """Runs `body` in its own thread; `.result` or `.error` afterwards."""

    def __init__(self, body: Callable[[], Any]) -> None:
        super().__init__()
        self.body = body
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.body()
        except BaseException as exc:  # examined by the test's thread
            self.error = exc

    def outcome(self) -> Any:
        self.join(timeout=60)
        assert not self.is_alive(), "the second transaction never finished"
        if self.error is not None:
            raise self.error
        return self.result


def test_a_second_writer_waits_and_then_sees_what_the_first_committed(
    store: SqlStore, postgres_url: str, project_key: str
) -> None:
    def second() -> bool:
        with store.transaction() as tx:
            project = load_project(tx, ADMIN, project_key, Role.EDITOR)  # takes the lock
            found = tx.get_resource(project.id, ResourceType.SEGMENT, PROJECT_SCOPE, "internal")
            return found is not None

    with store.transaction() as first:
        project = load_project(first, ADMIN, project_key, Role.EDITOR)
        waiter = Second(second)
        waiter.start()
        _waiting(postgres_url, "advisory")
        first.insert_resource(
            project.id, ResourceType.SEGMENT, PROJECT_SCOPE, "internal", {}, "", NOW
        )
    assert waiter.outcome() is True  # READ COMMITTED, but read after the lock: it sees it


def test_readers_and_other_projects_never_wait(store: SqlStore, project_key: str) -> None:
    other = unique("lock")
    with store.transaction() as tx:
        tx.insert_project(other, "Other", NOW)
    with store.transaction() as first:
        load_project(first, ADMIN, project_key, Role.EDITOR)
        with store.read() as reader:  # a read transaction takes no lock
            assert load_project(reader, ADMIN, project_key, Role.VIEWER).key == project_key
        with store.transaction() as elsewhere:  # another project's lock is free
            assert load_project(elsewhere, ADMIN, other, Role.EDITOR).key == other


def test_waiting_for_a_project_ends_as_retryable_not_forever(
    store: SqlStore, project_key: str
) -> None:
    """The lock timeout (10 s, like SQLite's busy timeout) turns a stuck holder into a 503."""
    with store.transaction() as first:
        load_project(first, ADMIN, project_key, Role.EDITOR)
        with pytest.raises(StorageUnavailableError), store.transaction() as second:
            load_project(second, ADMIN, project_key, Role.EDITOR)


def test_an_insert_yields_to_a_concurrent_one_of_the_same_resource(
    store: SqlStore, postgres_url: str, project_key: str
) -> None:
    def second() -> object:
        with store.transaction() as tx:  # no project lock: the insert itself must cope
            project = tx.get_project(project_key)
            assert project is not None
            return tx.insert_resource(
                project.id, ResourceType.FLAG, PROJECT_SCOPE, "twin", {"v": 2}, "", NOW
            )

    with store.transaction() as first:
        project = first.get_project(project_key)
        assert project is not None
        first.insert_resource(
            project.id, ResourceType.FLAG, PROJECT_SCOPE, "twin", {"v": 1}, "", NOW
        )
        waiter = Second(second)
        waiter.start()
        _waiting(postgres_url, "transactionid")
    assert waiter.outcome() is None
    with store.read() as tx:
        stored = tx.get_resource(project.id, ResourceType.FLAG, PROJECT_SCOPE, "twin")
        assert stored is not None
        assert stored.data == {"v": 1}


def test_a_username_taken_by_a_concurrent_transaction_is_already_exists(
    store: SqlStore, postgres_url: str
) -> None:
    name = unique("user")

    def second() -> object:
        with store.transaction() as tx:
            return tx.insert_user(name, "hash-2", False, NOW)

    with store.transaction() as first:
        first.insert_user(name, "hash-1", False, NOW)
        waiter = Second(second)
        waiter.start()
        _waiting(postgres_url, "transactionid")
    with pytest.raises(AlreadyExistsError):
        waiter.outcome()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_constraint_nobody_foresaw_is_a_conflict_not_a_crash(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'fader.db'}"
    )
    opened = SqlStore.open(url)
    key = unique("dup")
    try:

        def twice() -> None:
            with opened.transaction() as tx:
                tx.insert_project(key, "One", NOW)
                tx.insert_project(key, "Two", NOW)

        with pytest.raises(AlreadyExistsError):
            twice()
        with opened.read() as tx:
            assert tx.get_project(key) is None  # rolled back as a whole
    finally:
        opened.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_read_transaction_sees_one_moment(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A document (and an SDK snapshot) is built by several reads; a write committed between
    two of them must not show in the second only, or the snapshot could hold a rule naming a
    segment it does not contain. Readers run in one snapshot (PostgreSQL: REPEATABLE READ)."""
    url = (
        request.getfixturevalue("postgres_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'fader.db'}"
    )
    opened = SqlStore.open(url)
    key = unique("moment")
    try:
        with opened.transaction() as tx:
            project = tx.insert_project(key, "Moment", NOW)
        with opened.read() as reader:
            assert reader.get_project(key) == project
            with opened.transaction() as writer:
                writer.insert_resource(
                    project.id, ResourceType.SEGMENT, PROJECT_SCOPE, "late", {}, "", NOW
                )
            seen = reader.list_resources(project.id, ResourceType.SEGMENT, PROJECT_SCOPE, limit=10)
            assert seen == []
    finally:
        opened.close()
