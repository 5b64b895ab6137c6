"""Signing in with an OpenID provider: who the person is in Fader, and what their groups let
them do (docs/sso.md).

By the time these use cases run, the protocol is done (:mod:`fader_server.runtime.oidc`
checked the ID token's signature, issuer, audience, times and nonce): what is left is Fader's
own rules.

- A person is linked by (issuer, subject) (:mod:`fader_server.storage.ports.sso`). At their
  first login a user is created, named after ``preferred_username`` or ``email`` (made
  unique), with a random password nobody knows: they sign in only through their provider.
  Existing local users are never linked by name, since a provider may let people choose
  theirs and ``admin`` must not be claimable.
- Project memberships follow the groups at *every* login: the roles the provider's mapping
  grants are set, and a membership single sign-on granted earlier that no group grants any
  more is removed. A membership an administrator gave by hand is never touched, not even
  raised (the administrator's choice wins over the mapping), and one whose role an
  administrator changed by hand becomes theirs. Instance administration follows
  ``admin_group`` the same way when one is configured.
- Each change is audited in the transaction that makes it, with the provider as the actor.
- The session or CLI token is an ordinary personal token (12 hours, stored hashed), so
  revoking, expiry and logging out behave exactly as after a password login.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Protocol

from fader_server.errors import AlreadyExistsError, NotAuthenticatedError
from fader_server.services import credentials
from fader_server.services.access import Clock, Principal, Role
from fader_server.services.identity import LOGIN_TOKEN_LIFETIME, IdentityService, IssuedToken
from fader_server.services.sso_providers import SsoProvider
from fader_server.storage.ports import JSON, NewAuditEntry, TokenKind, User
from fader_server.storage.ports.accounts import MemberRows, UserRows
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.sso import SsoRows
from fader_server.storage.ports.store import Store

MAX_USERNAME = 64
_NOT_USERNAME = re.compile(r"[^a-z0-9._-]+")


class SsoTx(UserRows, MemberRows, SsoRows, ProjectAccess, AuditLog, Protocol):
    """What signing in touches: users, their identities and memberships, projects (by key),
    and the audit log."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What a validated ID token says about the person."""

    issuer: str
    subject: str
    preferred_username: str | None
    email: str | None
    groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    issued: IssuedToken


def username_base(identity: Identity) -> str:
    """A valid Fader username from what the provider says (before making it unique)."""
    for claim in (identity.preferred_username, identity.email):
        if claim:
            text = claim.split("@", 1)[0] if "@" in claim else claim
            name = _NOT_USERNAME.sub("-", text.lower()).strip("-._")[:MAX_USERNAME]
            if name:
                return name
    return "sso-user"


class SsoService:
    def __init__(self, store: Store[SsoTx], clock: Clock, identity: IdentityService) -> None:
        self.store = store
        self.clock = clock
        self.identity = identity

    def sign_in(self, provider: SsoProvider, identity: Identity, token_name: str) -> SignedIn:
        """Find or create the user, bring their roles in line with their groups, and issue
        their session (or CLI) token."""
        actor = f"sso:{provider.id}"
        # the deliberately slow hash of a password nobody will ever know, outside the lock
        unusable = credentials.hash_password(secrets.token_urlsafe(32))
        for _ in range(3):  # a concurrent first login of the same person, or a name race
            try:
                user = self._sync(provider, identity, actor, unusable)
                break
            except AlreadyExistsError:
                continue
        else:
            raise NotAuthenticatedError("could not create your user; try signing in again")
        principal = Principal(f"user:{user.username}", user.instance_admin, {}, user.id)
        issued = self.identity.create_token(
            principal, TokenKind.USER, token_name, None, None, self.clock() + LOGIN_TOKEN_LIFETIME
        )
        return SignedIn(user, issued)

    def _sync(self, provider: SsoProvider, identity: Identity, actor: str, unusable: str) -> User:
        now = self.clock()
        with self.store.transaction() as tx:
            user_id = tx.find_sso_user(identity.issuer, identity.subject)
            user = None if user_id is None else tx.get_user_by_id(user_id)
            if user is None:
                user = tx.insert_user(
                    _free_username(tx, username_base(identity)), unusable, False, now
                )
                tx.link_sso_user(user.id, identity.issuer, identity.subject, now)
                self._audit(tx, None, actor, "create", "user", user.username, [], provider)
            if provider.admin_group is not None:
                admin = provider.admin_group in identity.groups
                if admin != user.instance_admin:
                    tx.set_instance_admin(user.id, admin)
                    diff: list[JSON] = [
                        {"path": "/instance_admin", "before": user.instance_admin, "after": admin}
                    ]
                    self._audit(tx, None, actor, "set admin", "user", user.username, diff, provider)
                    user = tx.get_user_by_id(user.id) or user
            self._memberships(tx, provider, identity, user, actor)
            return user

    def _memberships(
        self, tx: SsoTx, provider: SsoProvider, identity: Identity, user: User, actor: str
    ) -> None:
        wanted: dict[int, Role] = {}
        for key, role in provider.roles_for(identity.groups).items():
            project = tx.get_project(key)
            if project is not None:  # a mapping may name a project not created yet
                wanted[project.id] = role
        current = tx.roles_of(user.id)
        granted = tx.sso_grants(user.id)
        for project_id, granted_role in sorted(granted.items()):
            if current.get(project_id) not in (None, granted_role):
                # an administrator changed the role by hand: from now on it is theirs
                tx.set_sso_grant(project_id, user.id, None)
                del granted[project_id]
        for project_id, role in sorted(wanted.items()):
            before = current.get(project_id)
            if before is not None and project_id not in granted:
                continue  # given by hand: the administrator's choice stays
            if before != role.label:
                tx.set_member(project_id, user.id, role.label)
                diff: list[JSON] = [{"path": "/role", "before": before, "after": role.label}]
                self._audit(
                    tx, project_id, actor, "set role", "member", user.username, diff, provider
                )
            if granted.get(project_id) != role.label:
                tx.set_sso_grant(project_id, user.id, role.label)
        for project_id in sorted(set(granted) - set(wanted)):
            if tx.remove_member(project_id, user.id):
                self._audit(tx, project_id, actor, "remove", "member", user.username, [], provider)
            tx.set_sso_grant(project_id, user.id, None)

    def _audit(
        self,
        tx: SsoTx,
        project_id: int | None,
        actor: str,
        action: str,
        entity_type: str,
        key: str,
        diff: list[JSON],
        provider: SsoProvider,
    ) -> None:
        comment = f"single sign-on through '{provider.name}' (groups at sign-in)"
        tx.append_audit(
            NewAuditEntry(project_id, actor, action, entity_type, key, None, None, diff, comment),
            self.clock(),
        )


def _free_username(tx: UserRows, base: str) -> str:
    """`base`, or `base-2`, `base-3`... the first not taken; then a random suffix."""
    for candidate in [base, *(f"{base}-{n}" for n in range(2, 50))]:
        if tx.get_user(candidate) is None:
            return candidate
    return f"{base}-{secrets.token_hex(4)}"
