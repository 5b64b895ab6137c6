"""The SDK delivery endpoints against real servers: polling with ETags, the SSE stream
(snapshot, changes, resume, heartbeats), fan-out across two replicas sharing PostgreSQL (and
through a killed LISTEN connection), SDK summaries, and the flagd export."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from conftest import ADMIN_PASSWORD, PG_ADMIN_URL, LogSink, _serve
from server_api import create_flag, unique
from sse import EventReader, open_stream

from fader_engine.flagd import load_flagd
from fader_engine.formats import load
from fader_engine.sketches import DistinctSketch
from fader_server.http_protocol import TransportExposingProtocol
from fader_server.settings import Settings
from fader_server.storage.sql.notifications import APPLICATION_NAME
from fader_server.storage.sql.tables import projects, usage_minutes

HEARTBEAT = 0.3


@dataclass
class Replica:
    url: str
    app: object


@dataclass
class Deployment:
    """One or two server processes' worth of apps over one database."""

    backend: str
    admin_token: str
    replicas: list[Replica]
    engine_url: str

    def admin(self, replica: int = 0) -> httpx.Client:
        return httpx.Client(
            base_url=self.replicas[replica].url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """SQLite: one process. PostgreSQL: two replicas sharing the database (fan-out)."""
    backend: str = request.param
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    data_dir: Path = tmp_path_factory.mktemp(f"delivery-{backend}")
    database_url = (
        request.getfixturevalue("module_postgres_url") if backend == "postgresql" else None
    )
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        sse_heartbeat_seconds=HEARTBEAT,
    )
    sink = LogSink()
    started = [
        _serve(settings, sink, http=TransportExposingProtocol)
        for _ in range(2 if backend == "postgresql" else 1)
    ]
    try:
        yield Deployment(
            backend,
            token,
            [Replica(url, app) for _, _, url, app in started],
            settings.effective_database_url,
        )
    finally:
        for uv_server, thread, _, app in started:
            uv_server.should_exit = True
            thread.join(timeout=10)
            app.state.services.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def env(deployment: Deployment) -> Iterator[tuple[str, str, httpx.Client]]:
    """A project with one boolean flag; yields (project, server key, admin client)."""
    with deployment.admin() as admin:
        project = unique("d")
        assert admin.post("/api/v1/projects", json={"key": project, "name": "D"}).status_code == 201
        create_flag(admin, project, "new-checkout")
        yield project, new_key(admin, project, "server"), admin


def new_key(admin: httpx.Client, project: str, kind: str, environment: str = "production") -> str:
    response = admin.post(
        "/api/v1/tokens",
        json={"kind": kind, "name": f"{kind} key", "project": project, "environment": environment},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def toggle(admin: httpx.Client, project: str, enabled: bool, flag: str = "new-checkout") -> None:
    response = admin.post(
        f"/api/v1/projects/{project}/environments/production/flags/{flag}/toggle",
        json={"enabled": enabled},
    )
    assert response.status_code == 200, response.text


def drain(stream: EventReader) -> None:
    """Read events until the stream ends (raises EOFError then)."""
    while True:
        stream.next()


def sdk(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


# ------------------------------------------------------------------ polling
def test_poll_serves_the_snapshot_with_an_etag_and_304(deployment: Deployment, env) -> None:
    project, key, admin = env
    with sdk(deployment.replicas[0].url, key) as client:
        first = client.get("/api/v1/sdk/flags")
        assert first.status_code == 200
        body = first.json()
        assert body["project"] == project
        assert body["environment"] == "production"
        assert first.headers["etag"] == f'"{body["version"]}"'
        assert body["document"]["flags"]["new-checkout"]["enabled"] is False
        assert load(body["document"]).evaluate("new-checkout", {}).value is False

        again = client.get("/api/v1/sdk/flags", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        assert again.headers["etag"] == first.headers["etag"]

        toggle(admin, project, True)
        changed = client.get("/api/v1/sdk/flags", headers={"If-None-Match": first.headers["etag"]})
        assert changed.status_code == 200
        assert changed.json()["version"] > body["version"]
        assert changed.json()["document"]["flags"]["new-checkout"]["enabled"] is True


def test_a_change_in_another_environment_does_not_move_this_one(
    deployment: Deployment, env
) -> None:
    project, key, admin = env
    with sdk(deployment.replicas[0].url, key) as client:
        before = client.get("/api/v1/sdk/flags").headers["etag"]
        response = admin.post(
            f"/api/v1/projects/{project}/environments/staging/flags/new-checkout/toggle",
            json={"enabled": True},
        )
        assert response.status_code == 200
        assert client.get("/api/v1/sdk/flags", headers={"If-None-Match": before}).status_code == 304


def test_delivery_keys_are_checked(deployment: Deployment, env) -> None:
    project, key, admin = env
    url = deployment.replicas[0].url
    client_key = new_key(admin, project, "client")
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        missing = anonymous.get("/api/v1/sdk/flags")
        assert missing.status_code == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert "Bearer" in missing.json()["detail"]
    with sdk(url, "fdr_srv_" + secrets.token_urlsafe(32)) as forged:
        assert forged.get("/api/v1/sdk/flags").status_code == 401
    with sdk(url, deployment.admin_token) as admin_token:
        denied = admin_token.get("/api/v1/sdk/flags")
        assert denied.status_code == 403
        assert "admin and user tokens cannot" in denied.json()["detail"]
    with sdk(url, client_key) as client:
        denied = client.get("/api/v1/sdk/flags")
        assert denied.status_code == 403
        assert "server key" in denied.json()["detail"]
    # An SDK key cannot reach the admin API.
    with sdk(url, key) as server_key:
        assert server_key.get(f"/api/v1/projects/{project}/flags").status_code == 403


def test_a_revoked_key_is_refused(deployment: Deployment, env) -> None:
    project, _, admin = env
    created = admin.post(
        "/api/v1/tokens",
        json={"kind": "server", "name": "old", "project": project, "environment": "production"},
    ).json()
    assert admin.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    with sdk(deployment.replicas[0].url, created["token"]) as client:
        refused = client.get("/api/v1/sdk/flags")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]


# ---------------------------------------------------------------- streaming
def test_stream_sends_a_snapshot_then_each_change(deployment: Deployment, env) -> None:
    project, key, admin = env
    with open_stream(deployment.replicas[0].url, key) as stream:
        first = stream.next()
        assert stream.retry == 1000
        assert first.event == "snapshot"
        assert first.json()["document"]["flags"]["new-checkout"]["enabled"] is False
        version = int(first.id or 0)
        assert first.json()["version"] == version

        toggle(admin, project, True)
        change = stream.next()
        assert change.event == "change"
        assert int(change.id or 0) > version
        assert change.json()["document"]["flags"]["new-checkout"]["enabled"] is True

        toggle(admin, project, False)
        again = stream.next()
        assert int(again.id or 0) > int(change.id or 0)
        assert again.json()["document"]["flags"]["new-checkout"]["enabled"] is False


def test_resuming_at_the_current_version_sends_no_snapshot(deployment: Deployment, env) -> None:
    project, key, admin = env
    with sdk(deployment.replicas[0].url, key) as client:
        current = client.get("/api/v1/sdk/flags").json()["version"]
    with open_stream(deployment.replicas[0].url, key, last_event_id=str(current)) as stream:
        heartbeat = stream.next(comments=True)
        assert heartbeat.comments == ["heartbeat"]
        assert heartbeat.data == ""
        toggle(admin, project, True)
        change = stream.next()
        assert change.event == "change"
        assert int(change.id or 0) == current + 1


def test_resuming_from_an_old_version_gets_the_current_snapshot(
    deployment: Deployment, env
) -> None:
    project, key, admin = env
    with sdk(deployment.replicas[0].url, key) as client:
        old = client.get("/api/v1/sdk/flags").json()["version"]
    toggle(admin, project, True)
    with open_stream(deployment.replicas[0].url, key, last_event_id=str(old)) as stream:
        first = stream.next()
        assert int(first.id or 0) > old
        assert first.json()["document"]["flags"]["new-checkout"]["enabled"] is True


def test_heartbeats_keep_an_idle_stream_alive(deployment: Deployment, env) -> None:
    _, key, _ = env
    with open_stream(deployment.replicas[0].url, key) as stream:
        assert stream.next().event == "snapshot"
        beats = [stream.next(comments=True) for _ in range(3)]
        assert all(b.comments == ["heartbeat"] for b in beats)


def test_a_deleted_environment_ends_its_streams(deployment: Deployment, env) -> None:
    project, _, admin = env
    key = new_key(admin, project, "server", environment="development")
    with open_stream(deployment.replicas[0].url, key) as stream:
        assert stream.next().event == "snapshot"
        current = admin.get(f"/api/v1/projects/{project}/environments/development")
        deleted = admin.delete(
            f"/api/v1/projects/{project}/environments/development",
            headers={"If-Match": current.headers["etag"]},
        )
        assert deleted.status_code == 204, deleted.text
        with pytest.raises(EOFError):
            drain(stream)
    with sdk(deployment.replicas[0].url, key) as client:
        assert client.get("/api/v1/sdk/flags").status_code == 404


def test_many_streams_of_one_environment_all_receive_a_change(deployment: Deployment, env) -> None:
    project, key, admin = env
    with (
        open_stream(deployment.replicas[0].url, key) as a,
        open_stream(deployment.replicas[0].url, key) as b,
        open_stream(deployment.replicas[-1].url, key) as c,
    ):
        versions = {int(s.next().id or 0) for s in (a, b, c)}
        assert len(versions) == 1
        toggle(admin, project, True)
        changes = [s.next() for s in (a, b, c)]
        assert {int(e.id or 0) for e in changes} == {versions.pop() + 1}


# ------------------------------------------------------------ across replicas
def test_a_change_on_one_replica_reaches_streams_on_the_other(deployment: Deployment, env) -> None:
    if deployment.backend != "postgresql":
        pytest.skip("replicas share PostgreSQL; SQLite is one process")
    project, key, _ = env
    with (
        open_stream(deployment.replicas[1].url, key, timeout=20) as stream,
        deployment.admin(0) as admin,
    ):
        assert stream.next().event == "snapshot"
        toggle(admin, project, True)
        # Pushed (NOTIFY): a lost notification would wait for the periodic resync (30 s), past
        # this read's generous 20 s deadline.
        change = stream.next()
        assert change.json()["document"]["flags"]["new-checkout"]["enabled"] is True


def test_streams_resync_after_the_listener_connection_is_killed(
    deployment: Deployment, env
) -> None:
    if deployment.backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    project, key, _ = env
    database = sa.make_url(deployment.engine_url).database
    with open_stream(deployment.replicas[1].url, key) as stream, deployment.admin(0) as admin:
        assert stream.next().event == "snapshot"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = %s",
                (APPLICATION_NAME, database),
            ).fetchone()
        assert killed is not None
        assert killed[0] >= 2  # both replicas' listeners
        toggle(admin, project, True)  # most likely while replica 1 is reconnecting
        change = stream.next()
        assert change.json()["document"]["flags"]["new-checkout"]["enabled"] is True
        toggle(admin, project, False)  # and the re-established listener keeps working
        assert stream.next().json()["document"]["flags"]["new-checkout"]["enabled"] is False


# ---------------------------------------------------------------- summaries
def test_summaries_from_every_replica_add_up_in_the_rollups(deployment: Deployment, env) -> None:
    project, key, admin = env
    create_flag(admin, project, "new-banner", client_side=True)  # browsers may report on it
    client_key = new_key(admin, project, "client")
    now = time.time()
    body = {
        "start": now - 5,
        "end": now,
        "evaluations": [
            {"flag": "new-banner", "variant": "on", "reason": "SPLIT", "count": 1250,
             "contexts": {"exact": 2, "sketch": DistinctSketch().update(["u-1", "u-2"]).encode()}},
        ],
        "metrics": [
            {"name": "checkout.error", "flag": "new-banner", "variant": "on", "count": 3,
             "sum": 3.0, "sum_squares": 3.0},
        ],
    }  # fmt: skip
    replicas = [r.url for r in deployment.replicas]
    for credential, url in ((key, replicas[0]), (key, replicas[-1]), (client_key, replicas[-1])):
        with sdk(url, credential) as client:
            response = client.post("/api/v1/sdk/summaries", json=body)
            assert response.status_code == 202, response.text
            assert response.json() == {"accepted": 2, "refused": [], "duplicate": False}
    m = usage_minutes.c
    engine = sa.create_engine(deployment.engine_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(m.metric, m.variant, m.key_kind, sa.func.sum(m.count))
                .join(projects, projects.c.id == m.project_id)
                .where(projects.c.key == project)
                .group_by(m.metric, m.variant, m.key_kind)
                .order_by(m.metric, m.key_kind)
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("", "on", "client", 1250),
        ("", "on", "server", 2500),
        ("checkout.error", "on", "client", 3),
        ("checkout.error", "on", "server", 6),
    ]


def test_bad_summaries_are_rejected_whole(deployment: Deployment, env) -> None:
    _, key, _ = env
    with sdk(deployment.replicas[0].url, key) as client:
        unknown = client.post(
            "/api/v1/sdk/summaries",
            json={"start": 1, "end": 2, "evaluations": [{"flag": "f", "count": 1, "colour": 1}]},
        )
        assert unknown.status_code == 422
        assert "colour" in unknown.text
        too_many = client.post(
            "/api/v1/sdk/summaries",
            json={"start": 1, "end": 2, "metrics": [
                {"name": "n", "count": 1, "sum": 0.0, "sum_squares": 0.0}] * 1001},
        )  # fmt: skip
        assert too_many.status_code == 422
        # the deprecated endpoint keeps its own rules
        old = client.post(
            "/api/v1/sdk/events",
            json={"events": [{"kind": "custom", "name": "n", "timestamp": 1}] * 1001},
        )
        assert old.status_code == 422


# --------------------------------------------------------------- flagd export
def test_flagd_export_evaluates_like_the_fader_document(deployment: Deployment, env) -> None:
    project, key, admin = env
    toggle(admin, project, True)
    with sdk(deployment.replicas[0].url, key) as client:
        exported = client.get("/api/v1/sdk/flagd")
        assert exported.status_code == 200, exported.text
        snapshot = client.get("/api/v1/sdk/flags").json()
        assert exported.headers["etag"] == f'"{snapshot["version"]}"'
        assert (
            client.get(
                "/api/v1/sdk/flagd", headers={"If-None-Match": exported.headers["etag"]}
            ).status_code
            == 304
        )
    flagd = load_flagd(exported.json())
    fader = load(snapshot["document"])
    for user in ("u-1", "u-2", "u-3"):
        context = {"targetingKey": user}
        assert (
            flagd.evaluate("new-checkout", context).value
            == fader.evaluate("new-checkout", context).value
        )


def test_flagd_export_refuses_what_flagd_cannot_express(deployment: Deployment, env) -> None:
    project, key, admin = env
    path = f"/api/v1/projects/{project}/environments/production/flags/new-checkout"
    current = admin.get(path)
    config = {
        "enabled": True,
        "offVariant": "off",
        "rules": [
            {
                "clauses": [
                    {"attribute": "email", "op": "matches", "values": [".*@example\\.com"]}
                ],
                "variant": "on",
            }
        ],
        "default": {"variant": "off"},
    }
    written = admin.put(path, json=config, headers={"If-Match": current.headers["etag"]})
    assert written.status_code == 200, written.text
    with sdk(deployment.replicas[0].url, key) as client:
        refused = client.get("/api/v1/sdk/flagd")
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["category"] == "user_fixable"
    assert any("matches" in e["message"] for e in problem["errors"])


def test_polling_another_replica_sees_a_change_promptly(deployment: Deployment, env) -> None:
    """Snapshots are served from memory between changes; a change committed on one replica
    invalidates the other's copy through NOTIFY (and at worst after `FRESH_FOR`)."""
    if deployment.backend != "postgresql":
        pytest.skip("replicas share PostgreSQL; SQLite is one process")
    project, key, admin = env
    with sdk(deployment.replicas[1].url, key) as other:
        assert (
            other.get("/api/v1/sdk/flags").json()["document"]["flags"]["new-checkout"]["enabled"]
            is False
        )
        toggle(admin, project, True)
        started = time.monotonic()
        while True:
            body = other.get("/api/v1/sdk/flags").json()
            if body["document"]["flags"]["new-checkout"]["enabled"]:
                break
            assert time.monotonic() - started < 30, "replica 1 kept serving the old snapshot"
            time.sleep(0.01)
