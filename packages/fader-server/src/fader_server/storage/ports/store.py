"""Stores: transactions over the Protocols of the sibling modules, the full database behind
them, and what readiness checks and the delivery hub need besides.

:class:`Store` is generic in the transaction it hands out: each use case asks for a
``Store[XxxTx]`` where ``XxxTx`` lists the row Protocols it uses (defined next to the use case),
so what a use case may touch is in its signature. The SQL store
(:mod:`fader_server.storage.sql`) and the in-memory store (:mod:`fader_server.storage.memory`)
hand out a :class:`Transaction`, which is all of them at once, so either fits every use case.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

from fader_server.storage.ports.accounts import MemberRows, TokenRows, TokenUseRows, UserRows
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.change_requests import ChangeRequestRows
from fader_server.storage.ports.delivery import KeyChecks, Revisions
from fader_server.storage.ports.incidents import ActionItemRows, IncidentRows
from fader_server.storage.ports.login_throttle import LoginCounts
from fader_server.storage.ports.outbox import DeliveryLog, Outbox, WebhookSubscriptions
from fader_server.storage.ports.projects import ProjectRows
from fader_server.storage.ports.records import ChangeListener, RevocationListener
from fader_server.storage.ports.resources import ResourceRows
from fader_server.storage.ports.rollouts import (
    EventAggregates,
    PlanRows,
    TemplateRows,
    WebhookRows,
)
from fader_server.storage.ports.sso import SsoRows
from fader_server.storage.ports.usage import UsageReads, UsageRows

Tx_co = TypeVar("Tx_co", covariant=True)


class Store(Protocol[Tx_co]):
    """Transactions: everything a use case does to storage happens inside one."""

    def transaction(self) -> AbstractContextManager[Tx_co]:
        """A read-write transaction; commits on normal exit, rolls back on an exception."""
        ...

    def read(self) -> AbstractContextManager[Tx_co]:
        """A read-only transaction that sees one moment (may run concurrently with writers)."""
        ...


class Health(Protocol):
    """What ``/readyz`` asks."""

    def ping(self) -> None:
        """Raise :class:`~fader_server.errors.StorageUnavailableError` if the database is down."""
        ...

    def migrations_current(self) -> bool: ...


class ChangeFeed(Protocol):
    """Committed changes, for the delivery hub (:mod:`fader_server.delivery`)."""

    def subscribe(self, listener: ChangeListener) -> None:
        """Call `listener` after every commit that changed environments, in this process."""
        ...

    def subscribe_revocations(self, listener: RevocationListener) -> None:
        """Call `listener` after every commit that announced revoked tokens, in this process."""
        ...

    def subscribe_accounts(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every commit, in this process, that changed what a token may
        do: a token revoked, a password or a project membership changed."""
        ...

    def listen(
        self,
        listener: ChangeListener,
        on_resync: Callable[[], None],
        on_revoked: RevocationListener | None = None,
    ) -> None:
        """Also deliver changes and token revocations committed by *other* processes
        (replicas). `on_resync` runs whenever some may have been missed (e.g. after a lost
        database connection), so the caller re-reads what it holds. A no-op where one process
        owns the database."""
        ...


class Transaction(
    ProjectRows,
    ResourceRows,
    AuditLog,
    Revisions,
    UsageRows,
    KeyChecks,
    PlanRows,
    IncidentRows,
    ActionItemRows,
    TemplateRows,
    WebhookRows,
    WebhookSubscriptions,
    DeliveryLog,
    Outbox,
    EventAggregates,
    UserRows,
    MemberRows,
    TokenRows,
    TokenUseRows,
    LoginCounts,
    UsageReads,
    ChangeRequestRows,
    SsoRows,
    Protocol,
):
    """Every row Protocol at once: what a store's transaction implements. Use cases never ask
    for it; they name the few Protocols they use."""


class Database(Store[Transaction], Health, ChangeFeed, Protocol):
    """A whole store, as ``app`` wires it: transactions, health, the change feed."""

    def close(self) -> None: ...
