"""SQL for the login-throttle counters (``tables.login_throttle``).

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction` (through
:class:`~fader_server.storage.sql.accounts.AccountQueries`). Locking: missing rows are first
inserted empty (``ON CONFLICT DO NOTHING``, which waits for a concurrent insert of the same key
to commit), then all rows are read ``FOR UPDATE`` on PostgreSQL. Both steps go in key order, so
two logins touching the same counters queue behind each other and never deadlock. SQLite needs
neither: its write transactions start with ``BEGIN IMMEDIATE`` and so already run one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fader_server.storage.ports import ThrottleCount, ThrottleKey, ThrottleScope
from fader_server.storage.sql.tables import login_throttle

_KEY = ("scope", "username", "address")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _count(row: Any) -> ThrottleCount:
    window_start = _utc(row.window_start)
    assert window_start is not None
    return ThrottleCount(
        key=ThrottleKey(ThrottleScope(row.scope), row.username, row.address),
        failures=row.failures,
        window_start=window_start,
        last_failure_at=_utc(row.last_failure_at),
        last_success_at=_utc(row.last_success_at),
    )


def _matching(keys: Sequence[ThrottleKey]) -> sa.ColumnElement[bool]:
    c = login_throttle.c
    return sa.or_(
        *(
            sa.and_(c.scope == k.scope.value, c.username == k.username, c.address == k.address)
            for k in keys
        )
    )


class LoginThrottleQueries:
    connection: sa.Connection

    def read_login_counts(self, keys: Sequence[ThrottleKey]) -> dict[ThrottleKey, ThrottleCount]:
        if not keys:
            return {}
        rows = self.connection.execute(sa.select(login_throttle).where(_matching(keys)))
        return {count.key: count for count in map(_count, rows)}

    def lock_login_counts(
        self, keys: Sequence[ThrottleKey], at: datetime
    ) -> dict[ThrottleKey, ThrottleCount]:
        ordered = sorted(set(keys))
        if not ordered:
            return {}
        insert = (
            postgresql.insert if self.connection.dialect.name == "postgresql" else sqlite.insert
        )
        self.connection.execute(
            insert(login_throttle)
            .values(
                [
                    {
                        "scope": k.scope.value,
                        "username": k.username,
                        "address": k.address,
                        "failures": 0,
                        "window_start": at,
                        "last_failure_at": None,
                        "last_success_at": None,
                        "updated_at": at,
                    }
                    for k in ordered
                ]
            )
            .on_conflict_do_nothing(index_elements=list(_KEY))
        )
        c = login_throttle.c
        rows = self.connection.execute(
            sa.select(login_throttle)
            .where(_matching(ordered))
            .order_by(c.scope, c.username, c.address)
            .with_for_update()
        )
        return {count.key: count for count in map(_count, rows)}

    def save_login_counts(self, counts: Sequence[ThrottleCount], at: datetime) -> None:
        c = login_throttle.c
        for count in sorted(counts, key=lambda item: item.key):
            self.connection.execute(
                sa.update(login_throttle)
                .where(
                    c.scope == count.key.scope.value,
                    c.username == count.key.username,
                    c.address == count.key.address,
                )
                .values(
                    failures=count.failures,
                    window_start=count.window_start,
                    last_failure_at=count.last_failure_at,
                    last_success_at=count.last_success_at,
                    updated_at=at,
                )
            )

    def clear_login_counts(self, username: str) -> None:
        c = login_throttle.c
        self.connection.execute(
            sa.delete(login_throttle).where(
                c.username == username,
                c.scope.in_([ThrottleScope.PAIR.value, ThrottleScope.USERNAME.value]),
            )
        )

    def prune_login_counts(self, idle_before: datetime, trusted_before: datetime) -> int:
        c = login_throttle.c
        result = self.connection.execute(
            sa.delete(login_throttle).where(
                c.updated_at < idle_before,
                sa.or_(c.last_success_at.is_(None), c.last_success_at < trusted_before),
            )
        )
        return int(result.rowcount)
