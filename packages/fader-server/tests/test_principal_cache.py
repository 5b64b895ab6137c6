"""Cached token lookups (services/principal_cache.py) never outlive what they describe: a
revocation, a membership change or a password reset committed by this process takes effect on
the next request, expiry is checked on every use, and a change made by another process is seen
within the cache's lifetime. Two replicas are two `Services` over one database (SQLite file or
PostgreSQL)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from server_api import unique

from fader_server.errors import NotAuthenticatedError, NotFoundError, PermissionDeniedError
from fader_server.services import Services
from fader_server.services.access import Principal
from fader_server.services.principal_cache import TTL_SECONDS, PrincipalCache
from fader_server.storage.ports import TokenKind
from fader_server.storage.sql.store import SqlStore

ROOT = Principal("test", instance_admin=True)
FLAG = {"name": "F", "type": "boolean", "variants": {"on": True, "off": False}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def replicas(database_url: str, clock: Clock) -> Iterator[tuple[Services, Services]]:
    first, second = SqlStore.open(database_url), SqlStore.open(database_url, upgrade=False)
    services = Services.over(first, clock), Services.over(second, clock)
    try:
        yield services
    finally:
        for replica in services:
            replica.identity.token_use.close()  # its last "last used" write, then the store
            replica.store.close()


def _member(svc: Services, project: str, role: str) -> tuple[str, str]:
    """A user with `role` in `project` and a personal token of theirs: (username, secret)."""
    username, password = unique("member"), "pw-" + secrets.token_hex(12)
    svc.identity.create_user(ROOT, username, password)
    svc.projects.set_member(ROOT, project, username, role, None)
    session = svc.identity.login(username, password, "192.0.2.1")
    return username, session.secret


def _project(svc: Services) -> str:
    key = unique("cache")
    svc.projects.create(ROOT, key, "Cache")
    return key


def test_a_demoted_member_cannot_write_on_the_next_request(
    replicas: tuple[Services, Services],
) -> None:
    svc, _ = replicas
    project = _project(svc)
    username, secret = _member(svc, project, "editor")
    as_editor = svc.identity.authenticate(secret)
    svc.flags.create(as_editor, project, "first", FLAG, None)
    assert svc.identity.authenticate(secret) is as_editor  # the lookup is reused
    svc.projects.set_member(ROOT, project, username, "viewer", None)
    with pytest.raises(PermissionDeniedError):
        svc.flags.create(svc.identity.authenticate(secret), project, "second", FLAG, None)
    svc.projects.remove_member(ROOT, project, username, None)
    with pytest.raises(NotFoundError):  # no longer a member: the project is not theirs to see
        svc.flags.get(svc.identity.authenticate(secret), project, "first")


def test_a_revoked_token_is_refused_on_the_next_request(
    replicas: tuple[Services, Services],
) -> None:
    svc, _ = replicas
    issued = svc.identity.create_token(ROOT, TokenKind.ADMIN, "ci", None, None, None)
    assert svc.identity.authenticate(issued.secret).token_id == issued.token.id
    svc.identity.revoke_token(ROOT, issued.token.id)
    with pytest.raises(NotAuthenticatedError, match="revoked"):
        svc.identity.authenticate(issued.secret)


def test_expiry_is_checked_on_every_use(replicas: tuple[Services, Services], clock: Clock) -> None:
    svc, _ = replicas
    expires = clock.now + timedelta(hours=1)
    issued = svc.identity.create_token(ROOT, TokenKind.ADMIN, "ci", None, None, expires)
    svc.identity.authenticate(issued.secret)
    clock.now = expires
    with pytest.raises(NotAuthenticatedError, match="expired"):
        svc.identity.authenticate(issued.secret)


def test_another_replicas_changes_are_seen_within_the_lifetime(
    replicas: tuple[Services, Services],
) -> None:
    first, second = replicas
    ticks = Ticks()
    first.identity.principals = PrincipalCache(monotonic=ticks)
    project = _project(first)
    username, secret = _member(first, project, "editor")
    issued = first.identity.create_token(ROOT, TokenKind.ADMIN, "ci", None, None, None)
    first.identity.authenticate(issued.secret)
    first.identity.authenticate(secret)

    second.identity.revoke_token(ROOT, issued.token.id)
    second.projects.set_member(ROOT, project, username, "viewer", None)
    ticks.seconds += TTL_SECONDS
    with pytest.raises(NotAuthenticatedError, match="revoked"):
        first.identity.authenticate(issued.secret)
    with pytest.raises(PermissionDeniedError):
        first.flags.create(first.identity.authenticate(secret), project, "late", FLAG, None)


def test_a_password_reset_by_the_operator_ends_the_users_sessions(
    replicas: tuple[Services, Services],
) -> None:
    svc, _ = replicas
    project = _project(svc)
    username, secret = _member(svc, project, "viewer")
    svc.identity.authenticate(secret)
    svc.identity.reset_password(username, None, actor="operator")
    with pytest.raises(NotAuthenticatedError, match="revoked"):
        svc.identity.authenticate(secret)


def test_a_lookup_that_raced_a_revocation_is_not_kept() -> None:
    ticks = Ticks()
    cache = PrincipalCache(monotonic=ticks)
    token = object()
    generation = cache.generation  # a lookup starts reading the database...
    cache.clear()  # ...a revocation commits meanwhile...
    cache.put("hash", token, ROOT, generation)  # type: ignore[arg-type]
    assert cache.get("hash") is None  # ...and what the lookup read is not kept
    cache.put("hash", token, ROOT, cache.generation)  # type: ignore[arg-type]
    assert cache.get("hash") == (token, ROOT)
    ticks.seconds += TTL_SECONDS
    assert cache.get("hash") is None


def test_the_least_recently_used_lookups_go_first() -> None:
    cache = PrincipalCache(capacity=2, monotonic=Ticks())
    token = object()
    for name in ("a", "b"):
        cache.put(name, token, ROOT, cache.generation)  # type: ignore[arg-type]
    assert cache.get("a") is not None  # 'b' is now the least recently used
    cache.put("c", token, ROOT, cache.generation)  # type: ignore[arg-type]
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
