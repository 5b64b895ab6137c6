"""Accounts: users, project memberships and API tokens (:mod:`fader_server.services.identity`,
project membership pages, and SDK key checks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from fader_server.storage.ports.records import NewToken, Token, User


class UserRows(Protocol):
    def count_users(self) -> int: ...
    def get_user(self, username: str) -> User | None: ...
    def get_user_by_id(self, user_id: int) -> User | None: ...

    def insert_user(
        self, username: str, password_hash: str, instance_admin: bool, at: datetime
    ) -> User:
        """Raises :class:`~fader_server.errors.AlreadyExistsError` if the username is taken,
        also by a transaction that committed after this one's check."""
        ...

    def set_password(self, user_id: int, password_hash: str) -> None: ...


class MemberRows(Protocol):
    def roles_of(self, user_id: int) -> Mapping[int, str]:
        """project id → role name for one user."""
        ...

    def set_member(self, project_id: int, user_id: int, role: str) -> None: ...
    def remove_member(self, project_id: int, user_id: int) -> bool: ...

    def list_members(self, project_id: int) -> list[tuple[User, str]]:
        """Ordered by username."""
        ...


class TokenLookup(Protocol):
    def find_token(self, token_hash: str) -> Token | None: ...
    def get_token(self, token_id: int) -> Token | None: ...


class TokenRows(TokenLookup, Protocol):
    def insert_token(self, token: NewToken, at: datetime) -> Token:
        """Raises :class:`~fader_server.errors.AlreadyExistsError` if a token with the same
        hash is registered (only a secret chosen outside Fader can collide)."""
        ...

    def list_tokens(self, project_id: int | None) -> Sequence[Token]:
        """The project's tokens (None: the instance-wide ones), oldest first."""
        ...

    def revoke_token(self, token_id: int, at: datetime) -> None:
        """Revoke it unless it is revoked already (the first revocation time stays)."""
        ...

    def revoke_personal_tokens(self, user_id: int, at: datetime) -> list[int]:
        """Revoke the user's unrevoked personal (``user``) tokens; their ids."""
        ...

    def announce_revoked(self, token_ids: Sequence[int]) -> None:
        """Once this transaction commits, tell
        :meth:`~fader_server.storage.ports.store.ChangeFeed.subscribe_revocations` listeners
        (and other replicas) that these tokens were revoked, so what they opened ends now."""
        ...


class TokenUseRows(Protocol):
    def record_token_use(self, used: Mapping[int, datetime]) -> None:
        """Set each token's `last_used_at` to the given time unless it is already later."""
        ...
