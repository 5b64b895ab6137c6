"""The flag configuration read and write, the admin API's busiest requests, as clients see them:
the exact answer (body bytes, ETag), If-Match as sent, the OpenAPI document, and on PostgreSQL
the statements a write merges (project lock with its timeout; revision bump with its NOTIFY)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from conftest import Server, opened_store
from server_api import create_flag, unique

from fader_server.app import create_app
from fader_server.settings import Settings
from fader_server.storage.ports import PROJECT_SCOPE, EnvironmentChange, Project, ResourceType
from fader_server.storage.ports.store import Database
from fader_server.storage.sql.delivery import CHANGE_CHANNEL, encode_change
from fader_server.storage.sql.repository import PROJECT_LOCK_NAMESPACE
from fader_server.storage.sql.store import SqlStore
from fader_server.storage.sql.tables import environment_revisions

NOW = datetime(2031, 3, 2, 10, 0, tzinfo=UTC)
CONFIG = {
    "enabled": True,
    "offVariant": "off",
    "default": {
        "split": {
            "weights": [{"variant": "on", "weight": 33.5}, {"variant": "off", "weight": 66.5}]
        }
    },
}


def _expected_body(version: int, enabled: bool = True) -> bytes:
    """What the API answered before the routes encoded their answers themselves: ConfigOut as
    FastAPI dumps a response model (compact JSON, fields in declaration order)."""
    return (
        '{"flag":"new-checkout","environment":"development",'
        f'"enabled":{"true" if enabled else "false"},"offVariant":"off","rules":[],'
        '"default":{"split":{"weights":[{"variant":"on","weight":33.5},'
        '{"variant":"off","weight":66.5}]}},"prerequisites":[],'
        f'"version":{version}}}'
    ).encode()


def test_read_write_toggle_and_revert_answer_the_model_bytes_with_their_etag(
    admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"

    written = admin.put(url, json={**CONFIG, "comment": "first"}, headers={"If-Match": '"0"'})
    assert written.status_code == 200, written.text
    assert written.content == _expected_body(1)
    assert written.headers["ETag"] == '"1"'
    assert written.headers["content-type"] == "application/json"
    assert written.headers["content-length"] == str(len(written.content))

    read = admin.get(url)
    assert read.status_code == 200
    assert read.content == _expected_body(1)
    assert read.headers["ETag"] == '"1"'
    assert read.headers["content-type"] == "application/json"

    toggled = admin.post(url + "/toggle", json={"enabled": False})
    assert toggled.status_code == 200, toggled.text
    assert toggled.content == _expected_body(2, enabled=False)
    assert toggled.headers["ETag"] == '"2"'

    reverted = admin.post(url + "/revert", json={"version": 1}, headers={"If-Match": '"2"'})
    assert reverted.status_code == 200, reverted.text
    assert reverted.content == _expected_body(3)
    assert reverted.headers["ETag"] == '"3"'


def test_a_never_written_configuration_reads_as_version_0(
    admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    read = admin.get(f"/api/v1/projects/{project}/environments/development/flags/new-checkout")
    assert read.status_code == 200
    assert read.headers["ETag"] == '"0"'
    assert read.json()["version"] == 0


def test_put_takes_if_match_as_rfc_9110_writes_it(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"

    missing = admin.put(url, json=CONFIG)
    assert missing.status_code == 428
    assert missing.headers["content-type"] == "application/problem+json"

    assert admin.put(url, json=CONFIG, headers={"If-Match": "*"}).headers["ETag"] == '"1"'
    assert admin.put(url, json=CONFIG, headers={"If-Match": 'W/"1"'}).headers["ETag"] == '"2"'
    for stale in ('"1"', "garbage"):
        refused = admin.put(url, json=CONFIG, headers={"If-Match": stale})
        assert refused.status_code == 412, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert admin.get(url).headers["ETag"] == '"2"'


def test_the_configuration_needs_a_caller(admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    path = f"/api/v1/projects/{project}/environments/development/flags/new-checkout"
    with httpx.Client(base_url=admin.base_url, timeout=30) as anonymous:
        assert anonymous.get(path).status_code == 401
        put = anonymous.put(path, json=CONFIG, headers={"If-Match": '"0"'})
        assert put.status_code == 401
        wrong = {"Authorization": "Bearer fdr_admin_not-a-token"}
        assert anonymous.get(path, headers=wrong).status_code == 401
    assert admin.get(path).headers["ETag"] == '"0"'  # nothing was written


def test_a_caller_without_access_learns_nothing_of_the_configuration(
    server: Server, admin: httpx.Client, project: str
) -> None:
    """The read looks the project and the configuration up together: a caller outside the
    project still gets the one answer that does not say whether either exists."""
    create_flag(admin, project)
    other = unique("p")
    assert admin.post("/api/v1/projects", json={"key": other, "name": "Other"}).status_code == 201
    name, password = unique("outsider"), "pw-" + unique("secret")
    assert (
        admin.post("/api/v1/users", json={"username": name, "password": password}).status_code
        == 201
    )
    member = admin.put(f"/api/v1/projects/{other}/members/{name}", json={"role": "admin"})
    assert member.status_code == 200, member.text
    with server.client() as anonymous:
        login = anonymous.post("/api/v1/auth/login", json={"username": name, "password": password})
    assert login.status_code == 201, login.text
    base = f"/api/v1/projects/{project}/environments"
    with server.client(login.json()["token"]) as outsider:
        answers = [
            outsider.get(f"{base}/development/flags/new-checkout"),
            outsider.get(f"{base}/nowhere/flags/new-checkout"),
            outsider.get(f"{base}/development/flags/nothing"),
        ]
    for answer in answers:
        assert answer.status_code == 404
        assert answer.json()["detail"] == (
            f"project '{project}' does not exist or you have no access to it"
        )
    gone = admin.get(f"{base}/nowhere/flags/new-checkout")
    assert gone.json()["detail"] == f"environment 'nowhere' does not exist in project '{project}'"
    missing = admin.get(f"{base}/development/flags/nothing")
    assert missing.json()["detail"] == f"flag 'nothing' does not exist in project '{project}'"


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with opened_store(request, tmp_path) as opened:
        yield opened


def test_a_project_and_its_resources_read_together_as_read_apart(any_store: Database) -> None:
    env = (ResourceType.ENVIRONMENT, PROJECT_SCOPE, "production")
    flag = (ResourceType.FLAG, PROJECT_SCOPE, "checkout")
    config = (ResourceType.CONFIG, "production", "checkout")
    with any_store.transaction() as tx:
        project = tx.insert_project(unique("together"), "Together", NOW)
        bare = tx.insert_project(unique("bare"), "Bare", NOW)
        neighbour = tx.insert_project(unique("neighbour"), "Neighbour", NOW)
        for owner in (project, neighbour):
            tx.insert_resource(owner.id, *env, {"name": "Production"}, "", NOW)
            tx.insert_resource(owner.id, *flag, {"name": owner.key}, "", NOW)
        removed = tx.get_resource(project.id, *flag)
        assert removed is not None
        tx.update_resource(removed, removed.data, deleted=True, search_text="", at=NOW)
    wanted = [env, flag, config]
    with any_store.read() as tx:
        assert tx.get_project_resources(unique("nobody"), wanted) == (None, [None, None, None])
        assert tx.get_project_resources(bare.key, wanted) == (bare, [None, None, None])
        found, resources = tx.get_project_resources(project.key, wanted)
        assert found == tx.get_project(project.key) == project
        assert resources == tx.get_resources(project.id, wanted)
        assert [r is not None and r.deleted for r in resources] == [False, True, False]
        assert resources[2] is None
        _, reordered = tx.get_project_resources(project.key, [config, flag])
        assert reordered == [None, resources[1]]


def test_openapi_still_describes_the_configuration_routes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_password=secrets.token_urlsafe(16))
    app = create_app(settings)
    try:
        document = app.openapi()
    finally:
        app.state.services.store.close()
    path = document["paths"]["/api/v1/projects/{project}/environments/{environment}/flags/{flag}"]
    config_out = {"$ref": "#/components/schemas/ConfigOut"}
    for method in ("get", "put"):
        operation = path[method]
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == config_out
        assert operation["security"] == [{"HTTPBearer": []}]
        names = [p["name"] for p in operation["parameters"]]
        assert names[:3] == ["project", "environment", "flag"]
    put_headers = [p for p in path["put"]["parameters"] if p["in"] == "header"]
    assert [(p["name"], p["required"]) for p in put_headers] == [("If-Match", False)]
    assert put_headers[0]["description"] == "the ETag you read; required on updates"
    assert not [p for p in path["get"]["parameters"] if p["in"] == "header"]
    assert path["put"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConfigIn"
    }
    base = "/api/v1/projects/{project}/environments/{environment}/flags/{flag}"
    for action in ("/toggle", "/revert"):
        answer = document["paths"][base + action]["post"]["responses"]["200"]
        assert answer["content"]["application/json"]["schema"] == config_out


# ------------------------------------------------------------------ PostgreSQL statements


@pytest.fixture(scope="module")
def pg_store(module_postgres_url: str) -> Iterator[SqlStore]:
    store = SqlStore.open(module_postgres_url)
    yield store
    store.close()


@pytest.fixture
def pg_project(pg_store: SqlStore) -> Project:
    with pg_store.transaction() as tx:
        return tx.insert_project(unique("hot"), "Hot path", NOW)


def _psycopg_url(store: SqlStore) -> str:
    return store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def test_the_project_lock_is_held_with_its_timeout_until_the_commit(
    pg_store: SqlStore, pg_project: Project
) -> None:
    def try_lock(other: psycopg.Connection) -> bool:
        row = other.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)", (PROJECT_LOCK_NAMESPACE, pg_project.id)
        ).fetchone()
        assert row is not None
        return bool(row[0])

    with psycopg.connect(_psycopg_url(pg_store), autocommit=True) as other:
        with pg_store.transaction() as tx:
            tx.lock_project(pg_project.id)
            assert tx.connection.exec_driver_sql("SHOW lock_timeout").scalar_one() == "10s"
            assert not try_lock(other)
            tx.connection.exec_driver_sql("SELECT 1").scalar_one()  # the session goes on
        assert try_lock(other)
        with pg_store.read() as tx:  # transaction-local: the pooled session is back to normal
            assert tx.connection.exec_driver_sql("SHOW lock_timeout").scalar_one() == "0"


def test_a_revision_bump_notifies_encode_change_once_committed(
    pg_store: SqlStore, pg_project: Project
) -> None:
    later = NOW + timedelta(minutes=5)
    with psycopg.connect(_psycopg_url(pg_store), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANGE_CHANNEL}")

        def heard() -> list[str]:
            payloads: list[str] = []
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                payloads += [n.payload for n in listener.notifies(timeout=0.1, stop_after=1)]
            return [p for p in payloads if json.loads(p)["p"] == pg_project.id]

        with pg_store.transaction() as tx:
            first = tx.bump_revisions(pg_project, ["staging", "production", "staging"], NOW)
            assert heard() == []  # nothing before the commit
        expected = [
            EnvironmentChange(pg_project.id, pg_project.key, "production", 1),
            EnvironmentChange(pg_project.id, pg_project.key, "staging", 1),
        ]
        assert first == expected
        assert heard() == [encode_change(c) for c in expected]

        with pg_store.transaction() as tx:
            second = tx.bump_revisions(pg_project, ["production"], later)
        assert second == [EnvironmentChange(pg_project.id, pg_project.key, "production", 2)]
        assert heard() == [encode_change(second[0])]

    with pg_store.read() as tx:
        assert tx.revision(pg_project.id, "production") == 2
        changed_at = tx.connection.execute(
            sa.select(environment_revisions.c.changed_at).where(
                environment_revisions.c.project_id == pg_project.id,
                environment_revisions.c.environment == "production",
            )
        ).scalar_one()
    assert changed_at == later


def test_a_rolled_back_bump_notifies_nothing(pg_store: SqlStore, pg_project: Project) -> None:
    with psycopg.connect(_psycopg_url(pg_store), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANGE_CHANNEL}")

        def bump_then_fail() -> None:
            with pg_store.transaction() as tx:
                tx.bump_revisions(pg_project, ["production"], NOW)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            bump_then_fail()
        time.sleep(0.2)
        payloads = [n.payload for n in listener.notifies(timeout=0.2, stop_after=10)]
    assert not [p for p in payloads if json.loads(p)["p"] == pg_project.id]
    with pg_store.read() as tx:
        assert tx.revision(pg_project.id, "production") == 0
