"""What every part of an in-memory transaction shares: its tables and what it announces."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TypeVar

from fader_server.errors import AlreadyExistsError
from fader_server.storage.memory.tables import Tables
from fader_server.storage.ports import EnvironmentChange

_T = TypeVar("_T")

CONFLICT = (
    "a concurrent change created or removed what this request relies on; "
    "read the current state and retry"
)
"""What the SQL store says when a constraint nobody foresaw refuses a row (its words, so a
test cannot tell the two stores apart by the message)."""


def fresh(record: _T) -> _T:
    """A copy of a stored record for the caller: the SQL store builds new objects on every
    read, so mutating what a read returned never changes what is stored."""
    return copy.deepcopy(record)


class TransactionState:
    def __init__(self, tables: Tables, *, writable: bool) -> None:
        self.tables = tables
        self.writable = writable
        self.changes: list[EnvironmentChange] = []
        self.revoked_tokens: list[int] = []
        self.committed: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.committed.append(callback)

    def write(self) -> Tables:
        """The tables, to change: only in a read-write transaction (services never write in a
        read one; this double says so loudly rather than let a bug pass)."""
        if not self.writable:
            raise RuntimeError("a read-only transaction cannot write")
        return self.tables

    @staticmethod
    def conflict() -> AlreadyExistsError:
        return AlreadyExistsError(CONFLICT)
