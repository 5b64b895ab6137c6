"""SQL queries for accounts: users, project memberships and API tokens.

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction`, split out so each
module stays about one concept; it relies on the transaction's ``connection`` attribute. It
brings the login-throttle counters along (:mod:`.login_throttle`), which belong to logging in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from fader_server.errors import AlreadyExistsError
from fader_server.storage.ports import NewToken, Token, TokenKind, User
from fader_server.storage.sql.login_throttle import LoginThrottleQueries
from fader_server.storage.sql.tables import memberships, tokens, users


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _user(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        password_hash=row.password_hash,
        instance_admin=row.instance_admin,
        created_at=_utc(row.created_at),
    )


def _token(row: Any) -> Token:
    return Token(
        id=row.id,
        kind=TokenKind(row.kind),
        name=row.name,
        token_hash=row.token_hash,
        project_id=row.project_id,
        environment_key=row.environment_key,
        user_id=row.user_id,
        created_at=_utc(row.created_at),
        expires_at=_utc_or_none(row.expires_at),
        revoked_at=_utc_or_none(row.revoked_at),
        created_by=row.created_by,
        last_used_at=_utc_or_none(row.last_used_at),
    )


_TOKEN_BY_HASH = sa.select(tokens).where(tokens.c.token_hash == sa.bindparam("token_hash"))
"""Built once: every authenticated request that misses the token cache runs it."""


class AccountQueries(LoginThrottleQueries):
    connection: sa.Connection
    accounts_changed = False
    """Set by the writes that change what a token may do, for the store's account listeners
    (cached token lookups: :mod:`fader_server.services.principal_cache`)."""

    # ----------------------------------------------------- users and members
    def count_users(self) -> int:
        return int(
            self.connection.execute(sa.select(sa.func.count()).select_from(users)).scalar_one()
        )

    def get_user(self, username: str) -> User | None:
        row = self.connection.execute(sa.select(users).where(users.c.username == username)).first()
        return None if row is None else _user(row)

    def get_user_by_id(self, user_id: int) -> User | None:
        row = self.connection.execute(sa.select(users).where(users.c.id == user_id)).first()
        return None if row is None else _user(row)

    def insert_user(
        self, username: str, password_hash: str, instance_admin: bool, at: datetime
    ) -> User:
        # Users belong to no project, so no project lock orders two creations of one name:
        # the insert yields to a concurrent one (PostgreSQL waits for it to commit first)
        # instead of failing the transaction, and the caller learns the name is taken.
        sqlite = self.connection.dialect.name == "sqlite"
        insert = sqlite_dialect.insert if sqlite else postgresql.insert
        row = self.connection.execute(
            insert(users)
            .values(
                username=username,
                password_hash=password_hash,
                instance_admin=instance_admin,
                created_at=at,
            )
            .on_conflict_do_nothing(index_elements=["username"])
            .returning(users)
        ).first()
        if row is None:
            raise AlreadyExistsError(f"user '{username}' already exists")
        return _user(row)

    def roles_of(self, user_id: int) -> Mapping[int, str]:
        rows = self.connection.execute(
            sa.select(memberships.c.project_id, memberships.c.role).where(
                memberships.c.user_id == user_id
            )
        )
        return {r.project_id: r.role for r in rows}

    def set_member(self, project_id: int, user_id: int, role: str) -> None:
        self.accounts_changed = True
        where = (memberships.c.project_id == project_id, memberships.c.user_id == user_id)
        updated = self.connection.execute(sa.update(memberships).where(*where).values(role=role))
        if updated.rowcount == 0:
            self.connection.execute(
                sa.insert(memberships).values(project_id=project_id, user_id=user_id, role=role)
            )

    def remove_member(self, project_id: int, user_id: int) -> bool:
        self.accounts_changed = True
        result = self.connection.execute(
            sa.delete(memberships).where(
                memberships.c.project_id == project_id, memberships.c.user_id == user_id
            )
        )
        return result.rowcount > 0

    def list_members(self, project_id: int) -> list[tuple[User, str]]:
        rows = self.connection.execute(
            sa.select(users, memberships.c.role)
            .join(memberships, memberships.c.user_id == users.c.id)
            .where(memberships.c.project_id == project_id)
            .order_by(users.c.username)
        )
        return [(_user(r), r.role) for r in rows]

    # ------------------------------------------------------------------ tokens
    def find_token(self, token_hash: str) -> Token | None:
        row = self.connection.execute(_TOKEN_BY_HASH, {"token_hash": token_hash}).first()
        return None if row is None else _token(row)

    def get_token(self, token_id: int) -> Token | None:
        row = self.connection.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
        return None if row is None else _token(row)

    def insert_token(self, token: NewToken, at: datetime) -> Token:
        try:
            row = self.connection.execute(
                sa.insert(tokens)
                .values(
                    kind=token.kind.value,
                    name=token.name,
                    token_hash=token.token_hash,
                    project_id=token.project_id,
                    environment_key=token.environment_key,
                    user_id=token.user_id,
                    created_at=at,
                    expires_at=token.expires_at,
                    revoked_at=None,
                    created_by=token.created_by,
                )
                .returning(tokens)
            ).one()
        except sa.exc.IntegrityError as exc:
            # Only a secret chosen outside Fader can collide (FADER_ADMIN_TOKEN registered by
            # two replicas starting at once); the caller rolls back and looks again.
            raise AlreadyExistsError("a token with this secret is already registered") from exc
        return _token(row)

    def list_tokens(self, project_id: int | None) -> Sequence[Token]:
        query = sa.select(tokens).order_by(tokens.c.id)
        query = query.where(
            tokens.c.project_id.is_(None)
            if project_id is None
            else tokens.c.project_id == project_id
        )
        return [_token(r) for r in self.connection.execute(query)]

    def revoke_token(self, token_id: int, at: datetime) -> None:
        self.accounts_changed = True
        self.connection.execute(
            sa.update(tokens)
            .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    def record_token_use(self, used: Mapping[int, datetime]) -> None:
        c = tokens.c
        for token_id, at in sorted(used.items()):
            self.connection.execute(
                sa.update(tokens)
                .where(c.id == token_id, sa.or_(c.last_used_at.is_(None), c.last_used_at < at))
                .values(last_used_at=at)
            )

    def set_password(self, user_id: int, password_hash: str) -> None:
        self.accounts_changed = True
        self.connection.execute(
            sa.update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        )

    def revoke_personal_tokens(self, user_id: int, at: datetime) -> list[int]:
        self.accounts_changed = True
        c = tokens.c
        rows = self.connection.execute(
            sa.update(tokens)
            .where(
                c.user_id == user_id,
                c.kind == TokenKind.USER.value,
                c.revoked_at.is_(None),
            )
            .values(revoked_at=at)
            .returning(c.id)
        )
        return sorted(r.id for r in rows)
