"""Tokens people mint expire, and every token is listed with its last use: through the API,
the CLI and the console of a real server (both backends), and the recording rule itself (at most
one write a minute per token, never on the request's path) over a real database with a clock
the test moves."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server
from server_api import unique
from typer.testing import CliRunner

from fader_server.cli.main import app as cli
from fader_server.services import credentials
from fader_server.services.identity import IdentityService
from fader_server.storage.sql.store import SqlStore

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
DAY = timedelta(days=1)


def _created(response: httpx.Response) -> Any:
    assert response.status_code == 201, response.text
    return response.json()


def _expires_in(token: dict[str, Any]) -> timedelta:
    return datetime.fromisoformat(token["expires_at"]) - datetime.now(UTC)


def _project_admin(server: Server, admin: httpx.Client, project: str) -> tuple[str, str, str]:
    """A user who administers `project`, and the personal token their login issued."""
    username, password = unique("owner"), "pw-" + unique("long-secret")
    _created(admin.post("/api/v1/users", json={"username": username, "password": password}))
    role = admin.put(f"/api/v1/projects/{project}/members/{username}", json={"role": "admin"})
    assert role.status_code == 200, role.text
    with server.client() as anonymous:
        login = anonymous.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
    return username, password, _created(login)["token"]


def test_tokens_a_person_mints_expire_in_90_days_unless_asked_and_within_a_year(
    server: Server, admin: httpx.Client, project: str
) -> None:
    _, _, session = _project_admin(server, admin, project)
    with server.client(session) as person:
        personal = _created(person.post("/api/v1/tokens", json={"kind": "user", "name": "ci"}))
        project_admin = _created(
            person.post("/api/v1/tokens", json={"kind": "admin", "name": "a", "project": project})
        )
        sdk_key = _created(
            person.post(
                "/api/v1/tokens",
                json={"kind": "server", "name": "s", "project": project, "environment": "staging"},
            )
        )
        half_year = (datetime.now(UTC) + 180 * DAY).isoformat()
        chosen = _created(
            person.post(
                "/api/v1/tokens", json={"kind": "user", "name": "b", "expires_at": half_year}
            )
        )
        too_long = person.post(
            "/api/v1/tokens",
            json={
                "kind": "user",
                "name": "forever",
                "expires_at": (datetime.now(UTC) + 400 * DAY).isoformat(),
            },
        )
    for token in (personal, project_admin):
        assert 89 * DAY < _expires_in(token) <= 90 * DAY
    assert 179 * DAY < _expires_in(chosen) <= 180 * DAY
    assert sdk_key["expires_at"] is None  # SDK keys live as long as the app they are built into
    assert too_long.status_code == 422
    assert too_long.json()["errors"][0]["path"] == "/body/expires_at"
    assert "365 days" in too_long.json()["detail"]
    # Automation (an admin token) keeps choosing freely.
    automated = _created(
        admin.post("/api/v1/tokens", json={"kind": "admin", "name": "ci", "project": project})
    )
    assert automated["expires_at"] is None


def _last_used(admin: httpx.Client, token_id: int, project: str | None = None) -> str | None:
    listed = admin.get("/api/v1/tokens", params={"project": project} if project else None)
    assert listed.status_code == 200, listed.text
    found: str | None = next(t for t in listed.json() if t["id"] == token_id)["last_used_at"]
    return found


def _wait_for_last_use(admin: httpx.Client, token_id: int, project: str | None = None) -> str:
    """The use is recorded in the background, shortly after the request: wait for it."""
    deadline = time.monotonic() + 30
    while (found := _last_used(admin, token_id, project)) is None:
        assert time.monotonic() < deadline, "the token's use was not recorded within 30 s"
        time.sleep(0.1)
    return found


def test_tokens_are_listed_with_their_last_use_by_the_api_and_the_cli(
    server: Server, admin: httpx.Client
) -> None:
    created = _created(admin.post("/api/v1/tokens", json={"kind": "admin", "name": unique("t")}))
    assert created["last_used_at"] is None
    assert _last_used(admin, created["id"]) is None
    before = datetime.now(UTC) - timedelta(seconds=5)
    with server.client(created["token"]) as client:
        assert client.get("/api/v1/projects").status_code == 200
    used = datetime.fromisoformat(_wait_for_last_use(admin, created["id"]))
    assert before <= used <= datetime.now(UTC) + timedelta(seconds=5)

    result = CliRunner().invoke(
        cli,
        ["tokens", "list"],
        env={"FADER_URL": server.url, "FADER_TOKEN": server.admin_token, "FADER_PROJECT": None},
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[-2:] == ["LAST", "USED"]
    row = next(line for line in lines if line.split()[:1] == [str(created["id"])])
    assert used.strftime("%Y-%m-%d %H:%M") in row


def test_sdk_and_client_keys_are_listed_with_their_last_use(
    server: Server, admin: httpx.Client, project: str
) -> None:
    """Keys used only by delivery endpoints (polling, OFREP) show their last use too, so a key
    no application uses any more can be found and revoked."""
    made = {
        kind: _created(
            admin.post(
                "/api/v1/tokens",
                json={"kind": kind, "name": unique(kind), "project": project,
                      "environment": "production"},
            )
        )
        for kind in ("server", "client")
    }  # fmt: skip
    assert all(_last_used(admin, key["id"], project) is None for key in made.values())
    with server.client(made["server"]["token"]) as sdk:
        assert sdk.get("/api/v1/sdk/flags").status_code == 200
    with server.client(made["client"]["token"]) as browser:
        assert browser.post("/ofrep/v1/evaluate/flags", json={"context": {}}).status_code == 200
    for key in made.values():
        _wait_for_last_use(admin, key["id"], project)


@contextmanager
def _console(server: Server, username: str, password: str) -> Iterator[httpx.Client]:
    """A console session (plain HTTP to 127.0.0.1 is allowed), logged in through the form."""
    with server.client() as client:
        page = client.get("/login")
        token = CSRF.search(page.text)
        assert token is not None
        response = client.post(
            "/login",
            data={"csrf_token": token.group(1), "username": username, "password": password},
        )
        assert response.status_code == 303, response.text
        yield client


def test_the_console_lists_last_use_and_admin_tokens_made_there_must_expire(
    server: Server, admin: httpx.Client, project: str
) -> None:
    username, password, _ = _project_admin(server, admin, project)
    key = _created(
        admin.post(
            "/api/v1/tokens",
            json={"kind": "admin", "name": "used-by-ci", "project": project},
        )
    )
    with server.client(key["token"]) as client:
        assert client.get(f"/api/v1/projects/{project}").status_code == 200
    used = datetime.fromisoformat(_wait_for_last_use(admin, key["id"], project))
    with _console(server, username, password) as console:
        page = console.get(f"/projects/{project}/tokens")
        assert page.status_code == 200
        assert '<th scope="col">Last used</th>' in page.text
        row = page.text.split('<th scope="row">used-by-ci</th>', 1)[1].split("</tr>", 1)[0]
        assert used.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") in row
        csrf = CSRF.search(page.text)
        assert csrf is not None
        form = {"csrf_token": csrf.group(1), "name": "deploy-bot", "kind": "admin"}
        never = console.post(f"/projects/{project}/tokens", data={**form, "expires": ""})
        expiring = console.post(f"/projects/{project}/tokens", data={**form, "expires": "90"})
    assert never.status_code == 422
    assert "Admin tokens made in the console expire" in never.text
    assert expiring.status_code == 201
    listed = admin.get("/api/v1/tokens", params={"project": project}).json()
    made = [t for t in listed if t["name"] == "deploy-bot"]
    assert len(made) == 1
    assert 89 * DAY < _expires_in(made[0]) <= 90 * DAY


# ------------------------------------------------------- the recording rule, on its own
class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'fader.db'}")
    yield store
    store.close()


def _stored_last_use(store: SqlStore, secret: str, identity: IdentityService) -> datetime | None:
    assert identity.token_use.flush(timeout=30)
    with store.read() as tx:
        token = tx.find_token(credentials.hash_token(secret))
    assert token is not None
    return token.last_used_at


def test_last_use_is_written_at_most_once_a_minute_and_off_the_request_path(
    sqlite_store: SqlStore,
) -> None:
    clock = FakeClock()
    identity = IdentityService(sqlite_store, clock)
    secret = "fdr_admin_" + unique("x")
    identity.bootstrap("pw-" + unique("admin"), secret)
    try:
        started = clock.now
        identity.authenticate(secret)
        assert _stored_last_use(sqlite_store, secret, identity) == started
        clock.now = started + timedelta(seconds=59)
        for _ in range(20):
            identity.authenticate(secret)
        assert _stored_last_use(sqlite_store, secret, identity) == started  # no write
        clock.now = started + timedelta(seconds=61)
        # Another connection holds the write lock: the request must still be answered at once
        # (the recording waits for the lock in the background, or gives up, never the request).
        blocker = sqlite_store.engine.connect()
        holding = blocker.begin()  # BEGIN IMMEDIATE (store.py): the write lock, until rollback
        answered = threading.Event()

        def request() -> None:
            identity.authenticate(secret)
            answered.set()

        thread = threading.Thread(target=request)
        thread.start()
        try:
            assert answered.wait(timeout=30), "authentication waited for the recording's write"
            assert not identity.token_use.flush(timeout=0.5)  # while the write is held up
        finally:
            holding.rollback()
            blocker.close()
            thread.join()
        assert _stored_last_use(sqlite_store, secret, identity) == clock.now
    finally:
        identity.token_use.close()
