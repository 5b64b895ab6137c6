"""FADER_LISTEN_URL: where a replica LISTENs for other replicas' changes (PostgreSQL).

Behind PgBouncer in transaction mode a LISTENing session would not keep its connection, so the
listener can be pointed at PostgreSQL directly while queries go through the pool. Proven here
with a login role of its own in the listen URL: the listener's session runs as that role, and
a change committed by another replica still reaches this replica's streams through it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import (
    ADMIN_PASSWORD,
    PG_ADMIN_URL,
    LogSink,
    dedicated_postgres_database,
    postgres_login_role,
    running_server,
)
from server_api import unique
from sse import open_stream

from fader_server.settings import Settings


@pytest.fixture
def listen_role() -> Iterator[str]:
    with postgres_login_role("fader_listen") as role:
        yield role


def _listeners(role: str) -> list[str]:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE usename = %s", (role,)
        ).fetchall()
    return [r[0] for r in rows]


def test_the_listener_connects_to_the_listen_url_and_carries_changes(listen_role: str) -> None:
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    with dedicated_postgres_database() as database_url:
        name = database_url.rsplit("/", 1)[1]
        listen_url = f"postgresql://{listen_role}@127.0.0.1:5432/{name}"
        common = {"database_url": database_url, "admin_password": ADMIN_PASSWORD}
        writer = Settings(**common, admin_token=token)
        reader = Settings(**common, admin_token=token, listen_url=listen_url)
        with (
            running_server("postgresql", writer, LogSink()) as a,
            running_server("postgresql", reader, LogSink()) as b,
            a.admin() as admin,
        ):
            project = unique("listen")
            assert (
                admin.post("/api/v1/projects", json={"key": project, "name": "L"}).status_code
                == 201
            )
            flag = {
                "key": "f",
                "name": "F",
                "type": "boolean",
                "variants": {"off": False, "on": True},
            }
            assert admin.post(f"/api/v1/projects/{project}/flags", json=flag).status_code == 201
            key = admin.post(
                "/api/v1/tokens",
                json={"kind": "server", "name": "k", "project": project, "environment": "staging"},
            ).json()["token"]
            with open_stream(b.url, key) as stream:
                assert stream.next().event == "snapshot"
                deadline = time.monotonic() + 30
                while "fader-listener" not in _listeners(listen_role):
                    assert time.monotonic() < deadline, "no listener session as the listen role"
                    time.sleep(0.1)
                toggled = admin.post(
                    f"/api/v1/projects/{project}/environments/staging/flags/f/toggle",
                    json={"enabled": True},
                )
                assert toggled.status_code == 200, toggled.text
                change = stream.next()
                assert change.json()["document"]["flags"]["f"]["enabled"] is True
