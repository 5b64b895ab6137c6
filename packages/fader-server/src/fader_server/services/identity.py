"""Authentication, users and API tokens.

`authenticate` turns a bearer token into a :class:`Principal` or refuses it. SDK (server) and
client keys are valid credentials for the delivery endpoints only; the admin API refuses them
with 403, so a key leaked from a mobile app can never change a flag.

Credentials that act with a person's authority and are minted with that person's own login
(personal tokens, and admin tokens a user creates) always expire: 90 days unless asked
otherwise, a year at most, so a token forgotten in a script or kept by someone who has left
stops working by itself. Admin and personal tokens record when they last authenticated
(:mod:`.token_use`), so token lists show which ones are stale.

The first administrator, ``FADER_ADMIN_TOKEN`` and the operator's password reset are in
:mod:`.bootstrap`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from fader_server.errors import (
    AlreadyExistsError,
    FieldProblem,
    InvalidInputError,
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
    StorageUnavailableError,
    TooManyAttemptsError,
)
from fader_server.services import bootstrap, credentials
from fader_server.services.access import (
    Clock,
    Principal,
    Role,
    load_project,
    require_instance_admin,
)
from fader_server.services.bootstrap import FirstRun, OperatorTx, PasswordReset
from fader_server.services.login_throttle import LoginThrottle, Refusal, Scope
from fader_server.services.principal_cache import PrincipalCache
from fader_server.services.token_use import TokenUse
from fader_server.storage.ports import (
    PROJECT_SCOPE,
    NewAuditEntry,
    NewToken,
    ResourceType,
    Token,
    TokenKind,
    User,
)
from fader_server.storage.ports.accounts import MemberRows, TokenUseRows
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.store import Store

LOGIN_TOKEN_LIFETIME = timedelta(hours=12)
PERSONAL_TOKEN_LIFETIME = timedelta(days=90)
"""The expiry of a personal (or user-made admin) token created without one."""
MAX_PERSONAL_TOKEN_LIFETIME = timedelta(days=365)
LOCAL_LOGIN_OFF = (
    "password login is turned off on this server; sign in with single sign-on "
    "(the console's sign-in buttons, or `fader login --sso <provider>`)"
)
_UNAUTHENTICATED = "send a valid API token as 'Authorization: Bearer <token>'"


class IdentityTx(OperatorTx, ProjectAccess, ResourceReads, MemberRows, TokenUseRows, Protocol):
    """What identity use cases touch: users, their roles, tokens (with the project and
    environment a key is for), login counters and the audit log."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token record plus its secret, which exists only in this response."""

    token: Token
    secret: str


def _refused(refusal: Refusal, now: datetime) -> TooManyAttemptsError:
    who = {
        Scope.PAIR: "this username from your address",
        Scope.USERNAME: "this username from many addresses",
        Scope.ADDRESS: "your address",
    }[refusal.scope]
    at = (now + timedelta(seconds=refusal.retry_after)).strftime("%Y-%m-%d %H:%M:%S UTC")
    return TooManyAttemptsError(
        f"too many failed logins for {who}; try again in {refusal.retry_after} seconds "
        f"(after {at}). API tokens are not affected",
        refusal.retry_after,
    )


class IdentityService:
    def __init__(
        self,
        store: Store[IdentityTx],
        clock: Clock,
        login_throttle: LoginThrottle | None = None,
        *,
        local_login: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock
        self.local_login = local_login
        """False (``FADER_LOCAL_LOGIN=false``): passwords are refused, people sign in with
        single sign-on only (docs/sso.md says why there is no password break-glass)."""
        self.login_throttle = login_throttle or LoginThrottle(store, clock)
        self.token_use = TokenUse(store, clock)
        self.principals = PrincipalCache()
        """Recent token lookups (:mod:`.principal_cache`); :meth:`forget_principals` drops
        them when accounts change."""

    # ------------------------------------------------ the operator's accounts
    def bootstrap(self, admin_password: str | None, admin_token: str | None) -> FirstRun | None:
        """The first administrator and ``FADER_ADMIN_TOKEN`` (:func:`.bootstrap.first_run`)."""
        return bootstrap.first_run(self.store, self.clock, admin_password, admin_token)

    def reset_password(
        self, username: str, new_password: str | None, *, actor: str
    ) -> PasswordReset:
        """`fader users reset-password` (:func:`.bootstrap.reset_password`)."""
        return bootstrap.reset_password(self.store, self.clock, username, new_password, actor=actor)

    # --------------------------------------------------------- authentication
    def forget_principals(self) -> None:
        """A token was revoked, or a password or membership changed: look every token up
        again (the store calls this after such commits, and on revocations announced by
        other processes)."""
        self.principals.clear()

    def remembered(self, bearer: str | None) -> Principal | None:
        """The caller, if this token's lookup is cached (no I/O: the API asks this on the
        event loop and goes to a worker thread for :meth:`authenticate` only on a miss)."""
        if not bearer:
            return None
        cached = self.principals.get(credentials.hash_token(bearer))
        if cached is None:
            return None
        token, principal = cached
        if token.expires_at is not None and token.expires_at <= self.clock():
            raise NotAuthenticatedError("the API token has expired; create a new one")
        self.token_use.used(token)
        return principal

    def authenticate(self, bearer: str | None) -> Principal:
        if not bearer:
            raise NotAuthenticatedError(_UNAUTHENTICATED)
        remembered = self.remembered(bearer)
        if remembered is not None:
            return remembered
        digest = credentials.hash_token(bearer)
        generation = self.principals.generation
        with self.store.read() as tx:
            token = tx.find_token(digest)
            if token is None:
                raise NotAuthenticatedError("the API token is not valid; " + _UNAUTHENTICATED)
            if token.revoked_at is not None:
                raise NotAuthenticatedError("the API token was revoked; create a new one")
            if token.expires_at is not None and token.expires_at <= self.clock():
                raise NotAuthenticatedError("the API token has expired; create a new one")
            if token.kind in (TokenKind.SERVER, TokenKind.CLIENT):
                raise PermissionDeniedError(
                    "SDK and client keys cannot use the admin API; use an admin or user token"
                )
            actor = f"token:{token.id}"
            if token.kind is TokenKind.ADMIN:
                if token.project_id is None:
                    principal = Principal(actor, instance_admin=True, token_id=token.id)
                else:
                    principal = Principal(
                        actor, roles={token.project_id: Role.ADMIN}, token_id=token.id
                    )
            else:
                user = tx.get_user_by_id(token.user_id or -1)
                if user is None:
                    raise NotAuthenticatedError("the user of this token no longer exists")
                principal = self._principal(tx, user, token.id)
        self.principals.put(digest, token, principal, generation)
        self.token_use.used(token)
        return principal

    @staticmethod
    def _principal(tx: MemberRows, user: User, token_id: int | None) -> Principal:
        roles = {pid: Role.parse(role) for pid, role in tx.roles_of(user.id).items()}
        return Principal(f"user:{user.username}", user.instance_admin, roles, user.id, token_id)

    def login(self, username: str, password: str, address: str) -> IssuedToken:
        """Exchange a password for a personal token that expires (CLI and scripts).

        `address` is the client's network address; it and the username are throttled by
        :mod:`~fader_server.services.login_throttle` before the password is even looked at
        (a refused attempt raises :class:`TooManyAttemptsError` with the seconds to wait).
        With local login turned off, every password is refused before it is looked at.
        """
        if not self.local_login:
            raise PermissionDeniedError(LOCAL_LOGIN_OFF)
        refusal = self.login_throttle.admit(username, address)
        if refusal is not None:
            raise _refused(refusal, self.clock())
        try:
            with self.store.read() as tx:
                user = tx.get_user(username)
        except Exception:
            with contextlib.suppress(StorageUnavailableError):  # the original error matters
                self.login_throttle.undecided(username, address)  # an outage is no failed guess
            raise
        known_hash = None if user is None else user.password_hash
        if not credentials.verify_password(known_hash, password) or user is None:
            raise NotAuthenticatedError("unknown user or wrong password")
        self.login_throttle.succeeded(username, address)
        principal = Principal(f"user:{user.username}", user.instance_admin, {}, user.id)
        return self.create_token(
            principal,
            TokenKind.USER,
            "login",
            None,
            None,
            self.clock() + LOGIN_TOKEN_LIFETIME,
        )

    # ------------------------------------------------------------------ users
    def create_user(self, principal: Principal, username: str, password: str) -> User:
        """Create a user; :class:`AlreadyExistsError` when the name is taken, also by a
        request that created it at the same moment
        (:meth:`~fader_server.storage.ports.accounts.UserRows.insert_user`).

        The deliberately slow password hash runs before the transaction, so it never holds
        the database's write lock (SQLite) or a connection (PostgreSQL) while it works."""
        require_instance_admin(principal, "create users")
        password_hash = credentials.hash_password(password)
        with self.store.transaction() as tx:
            if tx.get_user(username) is not None:
                raise AlreadyExistsError(f"user '{username}' already exists")
            return tx.insert_user(username, password_hash, False, self.clock())

    # ----------------------------------------------------------------- tokens
    def create_token(
        self,
        principal: Principal,
        kind: TokenKind,
        name: str,
        project_key: str | None,
        environment: str | None,
        expires_at: datetime | None,
    ) -> IssuedToken:
        """Issue a token; the secret is returned once and only its hash is kept."""
        expires_at = self._expiry(principal, kind, expires_at)
        secret = credentials.new_token(kind)
        with self.store.transaction() as tx:
            project_id = None
            user_id = None
            if kind is TokenKind.USER:
                if principal.user_id is None:
                    raise InvalidInputError("personal tokens belong to users; log in as a user")
                user_id = principal.user_id
                if project_key or environment:
                    raise InvalidInputError("personal tokens act with your roles; omit project")
            elif project_key is None:
                if kind is not TokenKind.ADMIN:
                    raise InvalidInputError("SDK and client keys need a project and an environment")
                require_instance_admin(principal, "create global admin tokens")
            else:
                project = load_project(tx, principal, project_key, Role.ADMIN)
                project_id = project.id
                if kind in (TokenKind.SERVER, TokenKind.CLIENT):
                    env = tx.get_resource(
                        project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment or ""
                    )
                    if env is None or env.deleted:
                        raise NotFoundError(
                            f"environment '{environment}' does not exist in '{project_key}'"
                        )
                elif environment:
                    raise InvalidInputError("admin tokens are per project; omit environment")
            token = tx.insert_token(
                NewToken(
                    kind,
                    name,
                    credentials.hash_token(secret),
                    project_id,
                    environment if kind in (TokenKind.SERVER, TokenKind.CLIENT) else None,
                    user_id,
                    expires_at,
                    principal.actor,
                ),
                self.clock(),
            )
            tx.append_audit(
                NewAuditEntry(
                    project_id,
                    principal.actor,
                    "create",
                    "token",
                    str(token.id),
                    token.environment_key,
                    None,
                    [{"path": "/kind", "after": kind.value}],
                    None,
                ),
                self.clock(),
            )
        return IssuedToken(token, secret)

    def _expiry(
        self, principal: Principal, kind: TokenKind, expires_at: datetime | None
    ) -> datetime | None:
        """Personal tokens, and admin tokens a user creates, expire (see the module docstring);
        SDK and client keys, and tokens made by admin tokens (automation), may not."""
        if kind is not TokenKind.USER and principal.user_id is None:
            return expires_at
        if kind not in (TokenKind.USER, TokenKind.ADMIN):
            return expires_at
        now = self.clock()
        if expires_at is None:
            return now + PERSONAL_TOKEN_LIFETIME
        if expires_at > now + MAX_PERSONAL_TOKEN_LIFETIME:
            message = (
                f"{'personal' if kind is TokenKind.USER else 'admin'} tokens created by a user "
                f"expire within {MAX_PERSONAL_TOKEN_LIFETIME.days} days; choose an earlier "
                "expires_at (or omit it for 90 days)"
            )
            raise InvalidInputError(message, [FieldProblem("/body/expires_at", message)])
        return expires_at

    def list_tokens(self, principal: Principal, project_key: str | None) -> list[Token]:
        with self.store.read() as tx:
            if project_key is None:
                require_instance_admin(principal, "list global tokens")
                return list(tx.list_tokens(None))
            project = load_project(tx, principal, project_key, Role.ADMIN)
            return list(tx.list_tokens(project.id))

    def revoke_token(self, principal: Principal, token_id: int) -> None:
        """Revoke at once: the revocation is announced with the commit, so every replica
        forgets the key and ends the streams it opened (docs/delivery-protocol.md)."""
        with self.store.transaction() as tx:
            token = tx.get_token(token_id)
            if token is None:
                raise NotFoundError(f"token {token_id} does not exist")
            if token.user_id is not None and token.user_id == principal.user_id:
                pass  # anyone may revoke their own personal tokens
            elif token.project_id is None:
                if not principal.instance_admin:
                    raise NotFoundError(f"token {token_id} does not exist")
            else:
                project = tx.get_project_by_id(token.project_id)
                if project is None or principal.role_in(project) is None:
                    raise NotFoundError(f"token {token_id} does not exist")
                load_project(tx, principal, project.key, Role.ADMIN)
            if token.revoked_at is not None:
                return  # revoking is idempotent: the first revocation is the one audited
            tx.revoke_token(token_id, self.clock())
            tx.announce_revoked([token_id])  # streams it opened end on every replica
            tx.append_audit(
                NewAuditEntry(
                    token.project_id,
                    principal.actor,
                    "revoke",
                    "token",
                    str(token.id),
                    token.environment_key,
                    None,
                    [],
                    None,
                ),
                self.clock(),
            )
