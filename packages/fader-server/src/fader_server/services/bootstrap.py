"""The operator's accounts: the first administrator, ``FADER_ADMIN_TOKEN``, and the password
reset run on the server's host.

The bootstrap token is whatever ``FADER_ADMIN_TOKEN`` holds: registered under that name by
``system``, and when the variable changes, the tokens registered from earlier values are revoked
(audited), so rotating the secret in the deployment retires the old one. Unsetting the variable
revokes nothing: a missing variable is more often a deployment mistake than a decision, and
silently locking automation out would turn it into an outage; the old token stays listed under
its name, for an administrator to revoke deliberately.

These run without a principal: whoever starts the server or can write its database already
controls the instance. :class:`~fader_server.services.identity.IdentityService` exposes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from fader_server.errors import AlreadyExistsError, FieldProblem, InvalidInputError, NotFoundError
from fader_server.services import credentials
from fader_server.services.access import Clock
from fader_server.storage.ports import NewAuditEntry, NewToken, Token, TokenKind
from fader_server.storage.ports.accounts import TokenRows, UserRows
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.login_throttle import LoginCounts
from fader_server.storage.ports.store import Store

INITIAL_ADMIN = "admin"
BOOTSTRAP_TOKEN_NAME = "FADER_ADMIN_TOKEN"  # noqa: S105 (the name it is listed under)
SYSTEM_ACTOR = "system"
MIN_PASSWORD_LENGTH = 12


class OperatorTx(UserRows, TokenRows, AuditLog, LoginCounts, Protocol):
    """What the operator's actions touch: users, tokens, login counters and the audit log."""


@dataclass(frozen=True, slots=True)
class FirstRun:
    """What `fader serve` prints once: the generated password (None if it came from env)."""

    username: str
    generated_password: str | None


@dataclass(frozen=True, slots=True)
class PasswordReset:
    """What `fader users reset-password` reports: the new password if it was generated (shown
    once), and how many of the user's personal tokens (sessions included) were revoked."""

    username: str
    generated_password: str | None
    revoked_tokens: int


def first_run(
    store: Store[OperatorTx], clock: Clock, admin_password: str | None, admin_token: str | None
) -> FirstRun | None:
    """Create the initial admin (once) and register FADER_ADMIN_TOKEN, revoking the tokens
    of its earlier values (idempotent). Replicas may start at once: the one that loses the
    race to insert the same user or token rolls back and finds the winner's rows."""
    for attempt in (1, 2):
        try:
            with store.transaction() as tx:
                first: FirstRun | None = None
                if tx.count_users() == 0:
                    password = admin_password or credentials.new_password()
                    tx.insert_user(
                        INITIAL_ADMIN, credentials.hash_password(password), True, clock()
                    )
                    first = FirstRun(INITIAL_ADMIN, None if admin_password else password)
                if admin_token:
                    _rotate_bootstrap_token(tx, admin_token, clock())
                return first
        except AlreadyExistsError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _rotate_bootstrap_token(tx: OperatorTx, admin_token: str, now: datetime) -> None:
    """Make `admin_token` the one active bootstrap token. A value that was revoked stays
    revoked (revocation is final; its user gets "revoked" and must set a new value)."""
    token_hash = credentials.hash_token(admin_token)
    current = tx.find_token(token_hash)
    if current is not None and current.revoked_at is not None:
        return
    for token in tx.list_tokens(None):
        if token.revoked_at is None and _is_bootstrap(token) and token.token_hash != token_hash:
            tx.revoke_token(token.id, now)
            tx.append_audit(
                NewAuditEntry(
                    None,
                    SYSTEM_ACTOR,
                    "revoke",
                    "token",
                    str(token.id),
                    None,
                    None,
                    [],
                    "FADER_ADMIN_TOKEN changed",
                ),
                now,
            )
    if current is None:
        token = tx.insert_token(
            NewToken(
                TokenKind.ADMIN,
                BOOTSTRAP_TOKEN_NAME,
                token_hash,
                None,
                None,
                None,
                None,
                SYSTEM_ACTOR,
            ),
            now,
        )
        tx.append_audit(
            NewAuditEntry(
                None,
                SYSTEM_ACTOR,
                "create",
                "token",
                str(token.id),
                None,
                None,
                [{"path": "/kind", "after": TokenKind.ADMIN.value}],
                "registered from FADER_ADMIN_TOKEN",
            ),
            now,
        )


def reset_password(
    store: Store[OperatorTx],
    clock: Clock,
    username: str,
    new_password: str | None,
    *,
    actor: str,
) -> PasswordReset:
    """The operator's way back in (`fader users reset-password`, run on the server's host
    against its database). Sets a new password (generated unless given), revokes the user's
    personal tokens (sessions included: whoever knew the old password may have made some),
    clears the user's login-throttle counters, and audits it all."""
    if new_password is not None and len(new_password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
            [FieldProblem("/password", f"at least {MIN_PASSWORD_LENGTH} characters")],
        )
    password = new_password or credentials.new_password()
    password_hash = credentials.hash_password(password)
    now = clock()
    with store.transaction() as tx:
        user = tx.get_user(username)
        if user is None:
            raise NotFoundError(f"user '{username}' does not exist")
        tx.set_password(user.id, password_hash)
        revoked = tx.revoke_personal_tokens(user.id, now)
        tx.announce_revoked(revoked)  # replicas that hear it drop their cached lookups now
        tx.clear_login_counts(user.username)
        tx.append_audit(
            NewAuditEntry(
                None,
                actor,
                "reset-password",
                "user",
                user.username,
                None,
                None,
                [{"path": "/revoked_tokens", "after": revoked}],
                None,
            ),
            now,
        )
    return PasswordReset(user.username, None if new_password else password, len(revoked))


def _is_bootstrap(token: Token) -> bool:
    return (
        token.kind is TokenKind.ADMIN
        and token.project_id is None
        and token.name == BOOTSTRAP_TOKEN_NAME
        and token.created_by == SYSTEM_ACTOR
    )
