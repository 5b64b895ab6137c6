"""Who in this process hears of a committed transaction, and in what order: shared by the SQL
store and the in-memory one, so both tell their listeners the same things the same way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from fader_server.storage.ports.records import EnvironmentChange


class Committed(Protocol):
    """What a transaction leaves for its listeners once it has committed."""

    @property
    def changes(self) -> Sequence[EnvironmentChange]: ...
    @property
    def revoked_tokens(self) -> Sequence[int]: ...
    @property
    def accounts_changed(self) -> bool: ...
    @property
    def committed(self) -> Sequence[Callable[[], None]]: ...


class CommitListeners:
    """The store's listeners (:class:`~fader_server.storage.ports.store.ChangeFeed`)."""

    def __init__(self) -> None:
        self.changes: list[Callable[[Sequence[EnvironmentChange]], None]] = []
        self.revocations: list[Callable[[Sequence[int]], None]] = []
        self.accounts: list[Callable[[], None]] = []

    def tell(self, tx: Committed) -> None:
        """After the commit: environment changes first (delivery), then revoked tokens, then
        account changes (cached token lookups), then the transaction's own callbacks."""
        if tx.changes:
            for listener in self.changes:
                listener(tx.changes)
        if tx.revoked_tokens:
            for revoked in self.revocations:
                revoked(tx.revoked_tokens)
        if tx.accounts_changed:
            for forget in self.accounts:
                forget()
        for callback in tx.committed:
            callback()
