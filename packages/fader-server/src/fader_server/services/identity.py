"""Authentication, users and API tokens, and the first-run bootstrap.

`authenticate` turns a bearer token into a :class:`Principal` or refuses it. SDK (server) and
client keys are valid credentials for the delivery endpoints only; the admin API refuses them
with 403, so a key leaked from a mobile app can never change a flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fader_server.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
    TooManyAttemptsError,
)
from fader_server.services import credentials
from fader_server.services.access import (
    Clock,
    Principal,
    Role,
    load_project,
    require_instance_admin,
)
from fader_server.services.login_throttle import LoginThrottle, Refusal, Scope
from fader_server.storage.ports import (
    PROJECT_SCOPE,
    NewAuditEntry,
    NewToken,
    ResourceType,
    Store,
    Token,
    TokenKind,
    Transaction,
    User,
)

INITIAL_ADMIN = "admin"
LOGIN_TOKEN_LIFETIME = timedelta(hours=12)
_UNAUTHENTICATED = "send a valid API token as 'Authorization: Bearer <token>'"


@dataclass(frozen=True, slots=True)
class FirstRun:
    """What `fader serve` prints once: the generated password (None if it came from env)."""

    username: str
    generated_password: str | None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token record plus its secret, which exists only in this response."""

    token: Token
    secret: str


def _refused(refusal: Refusal, now: datetime) -> TooManyAttemptsError:
    who = "this username" if refusal.scope is Scope.USERNAME else "your address"
    at = (now + timedelta(seconds=refusal.retry_after)).strftime("%Y-%m-%d %H:%M:%S UTC")
    return TooManyAttemptsError(
        f"too many failed logins for {who}; try again in {refusal.retry_after} seconds "
        f"(after {at}). API tokens are not affected",
        refusal.retry_after,
    )


class IdentityService:
    def __init__(
        self, store: Store, clock: Clock, login_throttle: LoginThrottle | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.login_throttle = login_throttle or LoginThrottle()

    # -------------------------------------------------------------- bootstrap
    def bootstrap(self, admin_password: str | None, admin_token: str | None) -> FirstRun | None:
        """Create the initial admin (once) and register FADER_ADMIN_TOKEN (idempotent)."""
        first: FirstRun | None = None
        with self.store.transaction() as tx:
            if tx.count_users() == 0:
                password = admin_password or credentials.new_password()
                tx.insert_user(
                    INITIAL_ADMIN, credentials.hash_password(password), True, self.clock()
                )
                first = FirstRun(INITIAL_ADMIN, None if admin_password else password)
            if admin_token:
                token_hash = credentials.hash_token(admin_token)
                if tx.find_token(token_hash) is None:
                    tx.insert_token(
                        NewToken(
                            TokenKind.ADMIN,
                            "FADER_ADMIN_TOKEN",
                            token_hash,
                            None,
                            None,
                            None,
                            None,
                            "system",
                        ),
                        self.clock(),
                    )
        return first

    # --------------------------------------------------------- authentication
    def authenticate(self, bearer: str | None) -> Principal:
        if not bearer:
            raise NotAuthenticatedError(_UNAUTHENTICATED)
        with self.store.read() as tx:
            token = tx.find_token(credentials.hash_token(bearer))
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
                    return Principal(actor, instance_admin=True, token_id=token.id)
                return Principal(actor, roles={token.project_id: Role.ADMIN}, token_id=token.id)
            user = tx.get_user_by_id(token.user_id or -1)
            if user is None:
                raise NotAuthenticatedError("the user of this token no longer exists")
            return self._principal(tx, user, token.id)

    @staticmethod
    def _principal(tx: Transaction, user: User, token_id: int | None) -> Principal:
        roles = {pid: Role.parse(role) for pid, role in tx.roles_of(user.id).items()}
        return Principal(f"user:{user.username}", user.instance_admin, roles, user.id, token_id)

    def login(self, username: str, password: str, address: str) -> IssuedToken:
        """Exchange a password for a personal token that expires (CLI and scripts).

        `address` is the client's network address; it and the username are throttled by
        :mod:`~fader_server.services.login_throttle` before the password is even looked at.
        """
        refusal = self.login_throttle.admit(username, address)
        if refusal is not None:
            raise _refused(refusal, self.clock())
        try:
            with self.store.read() as tx:
                user = tx.get_user(username)
        except Exception:
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
        require_instance_admin(principal, "create users")
        with self.store.transaction() as tx:
            if tx.get_user(username) is not None:
                raise AlreadyExistsError(f"user '{username}' already exists")
            return tx.insert_user(
                username, credentials.hash_password(password), False, self.clock()
            )

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

    def list_tokens(self, principal: Principal, project_key: str | None) -> list[Token]:
        with self.store.read() as tx:
            if project_key is None:
                require_instance_admin(principal, "list global tokens")
                return list(tx.list_tokens(None))
            project = load_project(tx, principal, project_key, Role.ADMIN)
            return list(tx.list_tokens(project.id))

    def revoke_token(self, principal: Principal, token_id: int) -> None:
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
