"""Users, memberships, API tokens and login-throttle counters, in memory (the SQL counterparts
are :mod:`fader_server.storage.sql.accounts` and :mod:`fader_server.storage.sql.login_throttle`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from fader_server.errors import AlreadyExistsError
from fader_server.storage.memory.state import TransactionState
from fader_server.storage.memory.tables import CountRow
from fader_server.storage.ports import (
    NewToken,
    ThrottleCount,
    ThrottleKey,
    ThrottleScope,
    Token,
    TokenKind,
    User,
)


class AccountQueries(TransactionState):
    accounts_changed = False

    # ----------------------------------------------------- users and members
    def count_users(self) -> int:
        return len(self.tables.users)

    def get_user(self, username: str) -> User | None:
        return next((u for u in self.tables.users.values() if u.username == username), None)

    def get_user_by_id(self, user_id: int) -> User | None:
        return self.tables.users.get(user_id)

    def insert_user(
        self, username: str, password_hash: str, instance_admin: bool, at: datetime
    ) -> User:
        tables = self.write()
        if self.get_user(username) is not None:
            raise AlreadyExistsError(f"user '{username}' already exists")
        user = User(tables.next_id("users"), username, password_hash, instance_admin, at)
        tables.users[user.id] = user
        return user

    def set_password(self, user_id: int, password_hash: str) -> None:
        self.accounts_changed = True
        tables = self.write()
        found = tables.users.get(user_id)
        if found is not None:
            tables.users[user_id] = replace(found, password_hash=password_hash)

    def roles_of(self, user_id: int) -> Mapping[int, str]:
        return {p: role for (p, u), role in self.tables.members.items() if u == user_id}

    def set_member(self, project_id: int, user_id: int, role: str) -> None:
        self.accounts_changed = True
        tables = self.write()
        if project_id not in tables.projects or user_id not in tables.users:
            raise self.conflict()
        tables.members[(project_id, user_id)] = role

    def remove_member(self, project_id: int, user_id: int) -> bool:
        self.accounts_changed = True
        return self.write().members.pop((project_id, user_id), None) is not None

    def list_members(self, project_id: int) -> list[tuple[User, str]]:
        found = [
            (self.tables.users[u], role)
            for (p, u), role in self.tables.members.items()
            if p == project_id
        ]
        return sorted(found, key=lambda member: member[0].username)

    # ------------------------------------------------------------------ tokens
    def find_token(self, token_hash: str) -> Token | None:
        return next((t for t in self.tables.tokens.values() if t.token_hash == token_hash), None)

    def get_token(self, token_id: int) -> Token | None:
        return self.tables.tokens.get(token_id)

    def insert_token(self, token: NewToken, at: datetime) -> Token:
        tables = self.write()
        if self.find_token(token.token_hash) is not None:
            raise AlreadyExistsError("a token with this secret is already registered")
        stored = Token(
            id=tables.next_id("tokens"),
            kind=token.kind,
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
        tables.tokens[stored.id] = stored
        return stored

    def list_tokens(self, project_id: int | None) -> Sequence[Token]:
        found = [t for t in self.tables.tokens.values() if t.project_id == project_id]
        return sorted(found, key=lambda t: t.id)

    def revoke_token(self, token_id: int, at: datetime) -> None:
        self.accounts_changed = True
        tables = self.write()
        found = tables.tokens.get(token_id)
        if found is not None and found.revoked_at is None:
            tables.tokens[token_id] = replace(found, revoked_at=at)

    def revoke_personal_tokens(self, user_id: int, at: datetime) -> list[int]:
        self.accounts_changed = True
        tables = self.write()
        revoked = sorted(
            t.id
            for t in tables.tokens.values()
            if t.user_id == user_id and t.kind is TokenKind.USER and t.revoked_at is None
        )
        for token_id in revoked:
            tables.tokens[token_id] = replace(tables.tokens[token_id], revoked_at=at)
        return revoked

    def announce_revoked(self, token_ids: Sequence[int]) -> None:
        self.write()
        self.revoked_tokens.extend(token_ids)

    def record_token_use(self, used: Mapping[int, datetime]) -> None:
        tables = self.write()
        for token_id, at in sorted(used.items()):
            found = tables.tokens.get(token_id)
            if found is not None and (found.last_used_at is None or found.last_used_at < at):
                tables.tokens[token_id] = replace(found, last_used_at=at)

    # ------------------------------------------------------ login throttle
    def read_login_counts(self, keys: Sequence[ThrottleKey]) -> dict[ThrottleKey, ThrottleCount]:
        rows = self.tables.login_counts
        return {key: rows[key].count for key in keys if key in rows}

    def lock_login_counts(
        self, keys: Sequence[ThrottleKey], at: datetime
    ) -> dict[ThrottleKey, ThrottleCount]:
        rows = self.write().login_counts
        for key in sorted(set(keys)):
            if key not in rows:
                rows[key] = CountRow(ThrottleCount(key, 0, at, None, None), at)
        return {key: rows[key].count for key in sorted(set(keys))}

    def save_login_counts(self, counts: Sequence[ThrottleCount], at: datetime) -> None:
        rows = self.write().login_counts
        for count in counts:
            if count.key in rows:
                rows[count.key] = CountRow(count, at)

    def clear_login_counts(self, username: str) -> None:
        rows = self.write().login_counts
        for key in [
            k
            for k in rows
            if k.username == username and k.scope in (ThrottleScope.PAIR, ThrottleScope.USERNAME)
        ]:
            del rows[key]

    def prune_login_counts(self, idle_before: datetime, trusted_before: datetime) -> int:
        rows = self.write().login_counts
        idle = [
            key
            for key, row in rows.items()
            if row.updated_at < idle_before
            and (row.count.last_success_at is None or row.count.last_success_at < trusted_before)
        ]
        for key in idle:
            del rows[key]
        return len(idle)
