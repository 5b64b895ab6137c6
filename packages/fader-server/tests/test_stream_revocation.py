"""A key that stops working ends the streams it opened, on every replica, and is refused at once.

Streams of both endpoints (the SDK stream with the key in a header, the OFREP event stream with
the grant a bulk evaluation hands out), written both ways (direct sinks under ``fader serve``'s
protocol, plain ASGI). Where a test proves that a revocation is *pushed* (in-process on SQLite,
``NOTIFY`` between two replicas on PostgreSQL), the hub's periodic key re-check is turned off,
so nothing else could end the streams; where it proves the re-check (a revocation nobody
announced, a key that expires), the re-check runs at its default interval. Deadlines are
generous: the guarantee is "within 5 seconds", the push takes milliseconds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, _serve, dedicated_postgres_database
from fastapi import FastAPI
from server_api import create_flag, unique
from sse import EventReader, open_stream

from fader_server.http_protocol import TransportExposingProtocol
from fader_server.settings import Settings
from fader_server.storage.ports import (
    PROJECT_SCOPE,
    NewToken,
    ResourceType,
    TokenKind,
)
from fader_server.storage.sql.store import SqlStore

ENDS_WITHIN = 15.0
"""Far above the guarantee (5 s) and the push (milliseconds): a loaded machine must pass."""
SDK_PATH = "/api/v1/sdk/stream"
ADMIN_TOKEN = "fdr_admin_" + secrets.token_urlsafe(32)


@dataclass
class Replica:
    url: str
    app: FastAPI
    database_url: str

    def admin(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def running(
    data_dir: Path, path: str, *, database_url: str | None = None, key_checks: bool = True
) -> Iterator[Replica]:
    """A server; `key_checks=False` turns the hub's periodic key re-check off (before any
    stream starts it), leaving only announced revocations to end streams."""
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        admin_token=ADMIN_TOKEN,
        sse_heartbeat_seconds=0.5,
        rollout_tick_seconds=0,
    )
    protocol = TransportExposingProtocol if path == "direct" else "auto"
    uv_server, thread, url, app = _serve(settings, LogSink(), http=protocol)
    if not key_checks:
        app.state.delivery.hub.key_check_interval = 0
    try:
        yield Replica(url, app, settings.effective_database_url)
    finally:
        uv_server.should_exit = True
        thread.join(timeout=10)
        app.state.services.store.close()


@pytest.fixture(params=["direct", "asgi"])
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Key:
    id: int
    secret: str
    project: str


def new_key(replica: Replica, *, expires_at: datetime | None = None) -> Key:
    """A project with one flag and a server key for its production environment."""
    project = unique("r")
    with replica.admin() as admin:
        created = admin.post("/api/v1/projects", json={"key": project, "name": "R"})
        assert created.status_code == 201, created.text
        create_flag(admin, project, "new-checkout")
        body: dict[str, object] = {
            "kind": "server",
            "name": "k",
            "project": project,
            "environment": "production",
        }
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        token = admin.post("/api/v1/tokens", json=body)
    assert token.status_code == 201, token.text
    return Key(token.json()["id"], token.json()["token"], project)


def revoke(replica: Replica, key: Key) -> None:
    with replica.admin() as admin:
        response = admin.delete(f"/api/v1/tokens/{key.id}")
    assert response.status_code == 204, response.text


def poll(replica: Replica, key: Key) -> int:
    headers = {"Authorization": f"Bearer {key.secret}"}
    return httpx.get(f"{replica.url}/api/v1/sdk/flags", headers=headers, timeout=30).status_code


def grant_uri(replica: Replica, key: Key) -> str:
    """The OFREP event-stream URL (with its grant) a bulk evaluation hands out."""
    response = httpx.post(
        f"{replica.url}/ofrep/v1/evaluate/flags",
        json={"context": {"targetingKey": "u-1"}},
        headers={"Authorization": f"Bearer {key.secret}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["eventStreams"][0]["endpoint"]["requestUri"])


@contextmanager
def open_granted(url: str, uri: str) -> Iterator[EventReader]:
    """An OFREP event stream opened the way a browser's EventSource opens it: no header."""
    with (
        httpx.Client(base_url=url, timeout=10) as client,
        client.stream("GET", uri, headers={"Accept": "text/event-stream"}) as response,
    ):
        assert response.status_code == 200, response.read()
        yield EventReader(response)


def open_streams(stack: ExitStack, replica: Replica, key: Key) -> list[EventReader]:
    """An SDK stream and an OFREP event stream of `key`, each past its first event."""
    sdk = stack.enter_context(open_stream(replica.url, key.secret))
    ofrep = stack.enter_context(open_granted(replica.url, grant_uri(replica, key)))
    assert sdk.next().event == "snapshot"
    assert ofrep.next().json()["type"] == "refetchEvaluation"
    return [sdk, ofrep]


def assert_ends(stream: EventReader, within: float = ENDS_WITHIN) -> None:
    """The server completes the response (heartbeats until then, no further event)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            event = stream.next(comments=True)
        except EOFError:
            return
        assert not event.data, f"a stream of an unusable key got an event: {event}"
    raise AssertionError(f"the stream was still open {within} s later")


def assert_refused(replica: Replica, key: Key, uri: str) -> None:
    """Every delivery endpoint refuses the key (and its grant) with 401."""
    headers = {"Authorization": f"Bearer {key.secret}"}
    assert poll(replica, key) == 401
    with httpx.Client(base_url=replica.url, timeout=30) as client:
        bulk = client.post("/ofrep/v1/evaluate/flags", json={"context": {}}, headers=headers)
        assert bulk.status_code == 401, bulk.text
        assert client.get(SDK_PATH, headers=headers).status_code == 401
        assert client.get(uri).status_code == 401


# ----------------------------------------------------------------- one process
def test_revoking_a_key_ends_its_streams_at_once_and_refuses_it(tmp_path: Path, path: str) -> None:
    with running(tmp_path, path, key_checks=False) as replica:
        key = new_key(replica)
        other = new_key(replica)
        with ExitStack() as stack:
            streams = open_streams(stack, replica, key)
            bystander = stack.enter_context(open_stream(replica.url, other.secret))
            assert bystander.next().event == "snapshot"
            uri = grant_uri(replica, key)
            revoke(replica, key)
            for stream in streams:
                assert_ends(stream)
            assert_refused(replica, key, uri)
            with replica.admin() as admin:  # another key's stream lives on
                toggled = admin.post(
                    f"/api/v1/projects/{other.project}/environments/production/flags/"
                    "new-checkout/toggle",
                    json={"enabled": True},
                )
            assert toggled.status_code == 200, toggled.text
            assert bystander.next().event == "change"


def test_a_revoked_key_is_refused_at_once_although_it_was_cached(tmp_path: Path) -> None:
    with running(tmp_path, "direct", key_checks=False) as replica:
        key = new_key(replica)
        assert poll(replica, key) == 200  # now cached as valid (for 5 s)
        revoke(replica, key)
        assert poll(replica, key) == 401


def test_a_revocation_nobody_announced_is_caught_by_the_periodic_check(
    tmp_path: Path, path: str
) -> None:
    """As when the database was written by another process, or an announcement was lost."""
    with running(tmp_path, path) as replica:
        key = new_key(replica)
        with ExitStack() as stack:
            streams = open_streams(stack, replica, key)
            uri = grant_uri(replica, key)
            behind_its_back = SqlStore.open(replica.database_url, upgrade=False)
            try:
                with behind_its_back.transaction() as tx:
                    tx.revoke_token(key.id, datetime.now(UTC))
            finally:
                behind_its_back.close()
            for stream in streams:
                assert_ends(stream)
            assert_refused(replica, key, uri)


def test_a_stream_ends_when_its_key_expires(tmp_path: Path, path: str) -> None:
    with running(tmp_path, path) as replica:
        expires_at = datetime.now(UTC) + timedelta(seconds=8)
        key = new_key(replica, expires_at=expires_at)
        with ExitStack() as stack:
            streams = open_streams(stack, replica, key)
            uri = grant_uri(replica, key)
            left = (expires_at - datetime.now(UTC)).total_seconds()
            for stream in streams:
                assert_ends(stream, within=max(left, 0) + ENDS_WITHIN)
            assert datetime.now(UTC) >= expires_at, "it ended only once the key expired"
            assert_refused(replica, key, uri)


# --------------------------------------------------------- replicas (PostgreSQL)
def test_a_revocation_on_one_replica_ends_the_streams_on_another(tmp_path: Path) -> None:
    """Pushed through NOTIFY: neither replica re-checks keys by itself here."""
    with (
        dedicated_postgres_database() as database_url,
        running(tmp_path / "a", "asgi", database_url=database_url, key_checks=False) as a,
        running(tmp_path / "b", "direct", database_url=database_url, key_checks=False) as b,
    ):
        key = new_key(a)
        assert poll(b, key) == 200  # cached as valid on B
        with ExitStack() as stack:
            on_b = open_streams(stack, b, key)
            on_a = open_streams(stack, a, key)
            uri = grant_uri(b, key)
            revoke(a, key)
            for stream in [*on_b, *on_a]:
                assert_ends(stream)
            assert_refused(b, key, uri)
            assert_refused(a, key, uri)


# ------------------------------------------------------------------- the query
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_usable_keys_are_the_unrevoked_unexpired_keys_of_existing_environments(
    tmp_path: Path, backend: str
) -> None:
    with ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(dedicated_postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'keys.db'}"
        store = SqlStore.open(url)
        stack.callback(store.close)
        now = datetime.now(UTC)
        with store.transaction() as tx:
            project = tx.insert_project("keys", "Keys", now)
            for environment in ("production", "staging"):
                tx.insert_resource(
                    project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment, {}, "", now
                )
            staging = tx.get_resource(
                project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, "staging"
            )
            assert staging is not None
            tx.update_resource(staging, {}, deleted=True, search_text="", at=now)

            def key(kind: TokenKind, environment: str | None, expires: datetime | None) -> int:
                return tx.insert_token(
                    NewToken(
                        kind,
                        "k",
                        secrets.token_hex(32),
                        project.id,
                        environment,
                        None,
                        expires,
                        "test",
                    ),
                    now,
                ).id

            good = key(TokenKind.SERVER, "production", None)
            client = key(TokenKind.CLIENT, "production", now + timedelta(hours=1))
            expired = key(TokenKind.SERVER, "production", now - timedelta(seconds=1))
            revoked = key(TokenKind.SERVER, "production", None)
            deleted_environment = key(TokenKind.CLIENT, "staging", None)
            missing_environment = key(TokenKind.SERVER, "nowhere", None)
            admin = key(TokenKind.ADMIN, None, None)
            tx.revoke_token(revoked, now)
        ids = [good, client, expired, revoked, deleted_environment, missing_environment, admin]
        with store.read() as tx:
            assert tx.usable_keys([*ids, 10_000_000], datetime.now(UTC)) == {good, client}
            assert tx.usable_keys([], datetime.now(UTC)) == set()
