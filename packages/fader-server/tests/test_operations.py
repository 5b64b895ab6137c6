"""Concurrency, secrets in logs, health, metrics and problem details."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import httpx
from conftest import ADMIN_PASSWORD, LogSink, Server, running_server
from server_api import BOOLEAN_FLAG, create_flag, unique

from fader_server.settings import Settings


def test_two_updates_from_the_same_etag_exactly_one_wins(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/flags/new-checkout"
    etag = admin.get(url).headers["ETag"]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def write(name: str) -> None:
        with server.admin() as client:
            barrier.wait()
            response = client.put(
                url, json={**BOOLEAN_FLAG, "name": name}, headers={"If-Match": etag}
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=write, args=(n,)) for n in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 412]
    final = admin.get(url).json()
    assert final["version"] == 2
    history = admin.get(url + "/versions").json()
    assert [v["version"] for v in history] == [2, 1]


def test_no_secret_appears_in_any_log_line(
    server: Server, admin: httpx.Client, project: str, log_sink: LogSink
) -> None:
    password = "pw-" + unique("hunter2")
    username = unique("alice")
    assert (
        admin.post("/api/v1/users", json={"username": username, "password": password}).status_code
        == 201
    )
    with server.client() as anonymous:
        login = anonymous.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        anonymous.post("/api/v1/auth/login", json={"username": username, "password": "wrong"})
    user_token = login.json()["token"]
    sdk = admin.post(
        "/api/v1/tokens",
        json={"kind": "server", "name": "s", "project": project, "environment": "production"},
    ).json()["token"]
    with server.client(user_token) as client:
        client.get("/api/v1/projects")
    with server.client(sdk) as client:
        client.get(f"/api/v1/projects/{project}", headers={"X-Request-ID": "last-" + project})
    _logged_line(log_sink, f'"request_id": "last-{project}"')  # every line is written
    logged = log_sink.text()
    assert '"event": "request"' in logged
    for secret in (password, user_token, sdk, server.admin_token, server.admin_password):
        assert secret not in logged


def _logged_line(log_sink: LogSink, marker: str, timeout: float = 10) -> str:
    """The request line is written when the response has been sent, so it can trail the
    client's receipt of it by a moment: wait for it instead of racing it."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in log_sink.text().splitlines() if marker in line]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no log line with {marker}"
        time.sleep(0.01)


def test_request_log_line_has_consistent_fields(
    admin: httpx.Client, project: str, log_sink: LogSink
) -> None:
    create_flag(admin, project)
    admin.get(
        f"/api/v1/projects/{project}/environments/staging/flags/new-checkout",
        headers={"X-Request-ID": "req-" + project},
    )
    line = _logged_line(log_sink, f'"request_id": "req-{project}"')
    for field in (
        '"project": "' + project,
        '"environment": "staging"',
        '"flag": "new-checkout"',
        '"status": 200',
        '"duration_ms"',
        '"actor": "token:',
    ):
        assert field in line


def test_health_readiness_and_metrics(server: Server) -> None:
    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        client.get("/api/v1/projects")
        metrics = client.get("/metrics").text
    assert "fader_http_requests_total" in metrics


def test_every_response_tells_browsers_not_to_sniff_its_type(
    server: Server, admin: httpx.Client, project: str
) -> None:
    with server.client() as anonymous:
        responses = [
            anonymous.get("/api/v1/projects"),  # 401 problem
            anonymous.get("/api/v1/nowhere"),  # 404 problem
            anonymous.get("/healthz"),
            anonymous.get("/metrics"),
            anonymous.get("/openapi.json"),
            anonymous.get("/login"),  # the console
            admin.get(f"/api/v1/projects/{project}"),
        ]
    for response in responses:
        assert response.headers.get_list("x-content-type-options") == ["nosniff"], response.url


def test_metrics_can_require_a_token(tmp_path: Path, log_sink: LogSink) -> None:
    metrics_token = secrets.token_urlsafe(24)
    settings = Settings(
        data_dir=tmp_path,
        admin_password=ADMIN_PASSWORD,
        admin_token="fdr_admin_" + secrets.token_urlsafe(32),
        metrics_token=metrics_token,
    )
    with running_server("sqlite", settings, log_sink) as server, server.client() as client:
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer not-it"})
        basic = client.get("/metrics", headers={"Authorization": f"Basic {metrics_token}"})
        admin_token = client.get(
            "/metrics", headers={"Authorization": f"Bearer {server.admin_token}"}
        )
        right = client.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
        health = client.get("/healthz")
    for refused in (missing, wrong, basic, admin_token):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "FADER_METRICS_TOKEN" in refused.json()["detail"]
        assert "fader_http_requests_total" not in refused.text
    assert right.status_code == 200
    assert "fader_http_requests_total" in right.text
    assert health.status_code == 200  # probes stay open
    assert metrics_token not in log_sink.text()


def test_errors_are_problem_details_without_internals(server: Server) -> None:
    with server.client() as client:
        missing = client.get("/api/v1/nowhere")
        unauthenticated = client.get("/api/v1/projects")
        malformed = client.post(
            "/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}
        )
    for response, status in ((missing, 404), (unauthenticated, 401), (malformed, 422)):
        assert response.status_code == status
        body = response.json()
        assert {"type", "title", "status", "detail", "category"} <= body.keys()
        assert "Traceback" not in response.text
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")


def test_cross_project_keys_are_invisible(server: Server, admin: httpx.Client) -> None:
    mine, theirs = unique("mine"), unique("theirs")
    for key in (mine, theirs):
        admin.post("/api/v1/projects", json={"key": key, "name": key})
    token = admin.post(
        "/api/v1/tokens", json={"kind": "admin", "name": "m", "project": mine}
    ).json()["token"]
    with server.client(token) as client:
        listed = [p["key"] for p in client.get("/api/v1/projects").json()["items"]]
        assert listed == [mine]
        hidden = client.get(f"/api/v1/projects/{theirs}")
        absent = client.get("/api/v1/projects/does-not-exist")
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["detail"].replace(theirs, "X") == absent.json()["detail"].replace(
        "does-not-exist", "X"
    )
