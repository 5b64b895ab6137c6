"""The in-memory store: every storage Protocol over plain dictionaries, for use-case tests.

A test double, not a database: it never replaces the real ones where they can run (the API,
concurrency and durability tests run on SQLite and PostgreSQL). It exists so a use case can be
tested alone, quickly, with nothing to start. It is kept honest by one contract suite that runs
against it and against the SQL store on SQLite and PostgreSQL
(``tests/test_storage_contract.py``): the same compare-and-swap on versions, the same
uniqueness (a resource's identity, one unfinished plan per flag and environment, usernames,
token secrets, template keys, webhook URLs), the same orderings, all-or-nothing transactions,
and change notifications only after a commit.

Write transactions run one at a time (as SQLite's ``BEGIN IMMEDIATE`` makes them), each on a
copy of the tables that the store swaps in when it commits; a reader keeps the tables committed
when it began.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from fader_server.errors import StorageUnavailableError
from fader_server.storage.memory.accounts import AccountQueries
from fader_server.storage.memory.change_requests import ChangeRequestQueries
from fader_server.storage.memory.delivery import DeliveryQueries
from fader_server.storage.memory.incidents import IncidentQueries
from fader_server.storage.memory.outbox import OutboxQueries
from fader_server.storage.memory.resources import ResourceQueries
from fader_server.storage.memory.rollouts import RolloutQueries
from fader_server.storage.memory.sso import SsoQueries
from fader_server.storage.memory.tables import Tables
from fader_server.storage.memory.usage_reads import UsageReadQueries
from fader_server.storage.memory.usage_rows import UsageRowQueries
from fader_server.storage.ports import ChangeListener, RevocationListener
from fader_server.storage.ports.commit_listeners import CommitListeners
from fader_server.storage.ports.store import Transaction

BUSY_TIMEOUT = 10.0
"""Seconds a writer waits for the one before it, as SQLite's ``busy_timeout``."""


class MemoryTransaction(
    ResourceQueries,
    DeliveryQueries,
    RolloutQueries,
    OutboxQueries,
    IncidentQueries,
    AccountQueries,
    SsoQueries,
    UsageRowQueries,
    UsageReadQueries,
    ChangeRequestQueries,
):
    """Every row Protocol, over one transaction's tables."""


class MemoryStore:
    """A :class:`~fader_server.storage.ports.store.Database` in this process's memory."""

    def __init__(self) -> None:
        self._tables = Tables()
        self._writer = threading.Lock()
        self._heard = CommitListeners()
        self._closed = False

    @contextmanager
    def _begin(self, *, writable: bool) -> Iterator[Transaction]:
        if self._closed:
            raise StorageUnavailableError("the database cannot be reached")
        if not writable:
            yield MemoryTransaction(self._tables, writable=False)
            return
        if not self._writer.acquire(timeout=BUSY_TIMEOUT):
            raise StorageUnavailableError("the database is unavailable or busy")
        try:
            tx = MemoryTransaction(copy.deepcopy(self._tables), writable=True)
            yield tx
            self._tables = tx.tables  # the commit: reached only without an exception
        finally:
            self._writer.release()
        self._heard.tell(tx)

    def transaction(self) -> AbstractContextManager[Transaction]:
        return self._begin(writable=True)

    def read(self) -> AbstractContextManager[Transaction]:
        return self._begin(writable=False)

    def ping(self) -> None:
        if self._closed:
            raise StorageUnavailableError("the database cannot be reached")

    def migrations_current(self) -> bool:
        return True

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
        """One process owns the tables: its own commits reach :meth:`subscribe` listeners."""

    def close(self) -> None:
        self._closed = True
