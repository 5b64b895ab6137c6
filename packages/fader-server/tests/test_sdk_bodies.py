"""The cached SDK bodies and the fast path in front of the SDK routes, against real servers
(SQLite; PostgreSQL with two replicas): the gzip variant of a configuration body is the identity
body compressed, under the same ETag and 304 rules; a change is in the very next body; a revoked
key stops working within the documented bound on every replica; and answers from the fast path
(a warm key) are the answers of the routes (a cold one), down to the log line's route."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from conftest import Deployment, deployed
from ofrep_flags import NL, create_flags, toggle
from server_api import unique

from fader_server.api import sdk_fast_path
from fader_server.api.config_bodies import accepts_gzip

CONFIG_PATHS = ("/api/v1/sdk/flags", "/api/v1/sdk/flagd")
SINGLE = "/ofrep/v1/evaluate/flags/"
BULK = "/ofrep/v1/evaluate/flags"
REVOCATION_BOUND = 5.0
"""docs/delivery-protocol.md, "Replicas and caching": a revoked key stops working within this."""
GENEROUS = 30.0
"""How long the tests wait for that (a loaded machine is slow; the bound is the server's)."""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with deployed(request, tmp_path_factory, "bodies") as made:
        yield made


@dataclass
class Project:
    key: str
    admin: httpx.Client


@pytest.fixture
def project(deployment: Deployment) -> Iterator[Project]:
    with deployment.admin() as admin:
        key = unique("bodies")
        assert admin.post("/api/v1/projects", json={"key": key, "name": "B"}).status_code == 201
        create_flags(admin, key)
        yield Project(key, admin)


def new_key(project: Project, kind: str = "server") -> tuple[int, str]:
    response = project.admin.post(
        "/api/v1/tokens",
        json={"kind": kind, "name": kind, "project": project.key, "environment": "production"},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    return int(created["id"]), str(created["token"])


@dataclass
class Raw:
    """A response with its body as sent (httpx would decompress it)."""

    status: int
    headers: httpx.Headers
    body: bytes


def fetch(url: str, key: str, path: str, **headers: str) -> Raw:
    sent = {"Authorization": f"Bearer {key}", "Accept-Encoding": "identity", **headers}
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        client.stream("GET", path, headers=sent) as response,
    ):
        return Raw(response.status_code, response.headers, b"".join(response.iter_raw()))


def same_headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    """A response's headers, minus those that differ between any two responses."""
    return sorted((k, v) for k, v in headers.multi_items() if k not in ("date", "x-request-id"))


def varies_by_encoding(raw: Raw) -> bool:
    return "accept-encoding" in raw.headers.get("vary", "").lower()


# ------------------------------------------------------------ negotiation
@pytest.mark.parametrize(
    ("header", "gzip_allowed"),
    [
        (None, False),
        ("", False),
        ("identity", False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("br, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, *", False),
        ("*", True),
        ("*;q=0", False),
        ("*;q=0, gzip", True),
        ("gzip;q=abc", False),
        ("gzip;q=2", False),
        ("deflate, br", False),
    ],
)
def test_gzip_is_served_only_when_accepted(header: str | None, gzip_allowed: bool) -> None:
    assert accepts_gzip(header) is gzip_allowed


# ---------------------------------------------------- configuration bodies
@pytest.mark.parametrize("path", CONFIG_PATHS)
def test_the_gzip_body_is_the_identity_body_with_the_same_etag(
    deployment: Deployment, project: Project, path: str
) -> None:
    _, key = new_key(project)
    url = deployment.urls[-1]
    # the first requests of a new key go through the route, the later ones the fast path
    plain = [fetch(url, key, path) for _ in range(3)]
    packed = [fetch(url, key, path, **{"Accept-Encoding": "gzip, deflate"}) for _ in range(3)]
    identity = plain[0].body
    etag = plain[0].headers["etag"]
    document = json.loads(identity)
    assert document  # a real body
    for raw in plain:
        assert raw.status == 200
        assert raw.body == identity
        assert "content-encoding" not in raw.headers
        assert raw.headers["etag"] == etag
        assert raw.headers["content-type"] == "application/json"
        assert int(raw.headers["content-length"]) == len(identity)
        assert varies_by_encoding(raw)
    for raw in packed:
        assert raw.status == 200
        assert raw.headers["content-encoding"] == "gzip"
        assert gzip.decompress(raw.body) == identity
        assert len(raw.body) < len(identity)
        assert raw.headers["etag"] == etag
        assert int(raw.headers["content-length"]) == len(raw.body)
        assert varies_by_encoding(raw)
    # the ETag names the version, whichever encoding carried it
    if path == "/api/v1/sdk/flags":
        assert etag == f'"{document["version"]}"'


@pytest.mark.parametrize("path", CONFIG_PATHS)
def test_304_answers_either_encoding_while_the_version_is_current(
    deployment: Deployment, project: Project, path: str
) -> None:
    _, key = new_key(project)
    url = deployment.urls[0]
    etag = fetch(url, key, path).headers["etag"]
    for encoding in ("identity", "gzip", "identity", "gzip"):
        for held in (etag, f"W/{etag}", f'"0", {etag}', "*"):
            again = fetch(url, key, path, **{"Accept-Encoding": encoding, "If-None-Match": held})
            assert again.status == 304, (encoding, held)
            assert again.body == b""
            assert again.headers["etag"] == etag
            assert "content-encoding" not in again.headers
            assert varies_by_encoding(again)
        stale = fetch(url, key, path, **{"Accept-Encoding": encoding, "If-None-Match": '"0"'})
        assert stale.status == 200


def test_a_flag_change_is_in_the_next_body(deployment: Deployment, project: Project) -> None:
    _, key = new_key(project)
    url = deployment.urls[0]
    path = "/api/v1/sdk/flags"
    for _ in range(3):  # warm: key and snapshot cached, bodies encoded
        before = fetch(url, key, path)
        fetch(url, key, path, **{"Accept-Encoding": "gzip"})
    old_etag = before.headers["etag"]
    toggle(project.admin, project.key, "banner", False)

    after = fetch(url, key, path, **{"If-None-Match": old_etag})
    assert after.status == 200
    snapshot = json.loads(after.body)
    assert snapshot["version"] > json.loads(before.body)["version"]
    assert snapshot["document"]["flags"]["banner"]["enabled"] is False
    assert after.headers["etag"] == f'"{snapshot["version"]}"' != old_etag
    packed = fetch(url, key, path, **{"Accept-Encoding": "gzip", "If-None-Match": old_etag})
    assert packed.status == 200
    assert gzip.decompress(packed.body) == after.body
    assert packed.headers["etag"] == after.headers["etag"]
    flagd = fetch(url, key, "/api/v1/sdk/flagd", **{"If-None-Match": old_etag})
    assert flagd.status == 200
    assert flagd.headers["etag"] == after.headers["etag"]


# ------------------------------------------------------------- revocation
def test_a_revoked_key_stops_working_on_every_replica_within_the_bound(
    deployment: Deployment, project: Project
) -> None:
    token_id, key = new_key(project)
    bearer = {"Authorization": f"Bearer {key}"}
    clients = [httpx.Client(base_url=url, headers=bearer, timeout=30) for url in deployment.urls]
    try:
        for client in clients:  # warm every replica's key cache: the fast path answers
            for _ in range(3):
                assert client.get("/api/v1/sdk/flags").status_code == 200
                assert client.post(SINGLE + "banner", json={"context": NL}).status_code == 200
                assert client.post(BULK, json={"context": NL}).status_code == 200
        assert project.admin.delete(f"/api/v1/tokens/{token_id}").status_code == 204
        revoked_at = time.monotonic()
        for client in clients:
            while True:
                answers = {
                    client.get("/api/v1/sdk/flags").status_code,
                    client.get("/api/v1/sdk/flagd").status_code,
                    client.post(SINGLE + "banner", json={"context": NL}).status_code,
                    client.post(BULK, json={"context": NL}).status_code,
                }
                if answers == {401}:
                    break
                assert answers <= {200, 401}
                assert time.monotonic() - revoked_at < GENEROUS, "the key still works"
                time.sleep(0.1)
            for _ in range(3):  # and stays refused
                assert client.get("/api/v1/sdk/flags").status_code == 401
    finally:
        for client in clients:
            client.close()


# ------------------------------------------------------------------- OFREP
def test_warm_ofrep_answers_are_the_routes_answers(
    deployment: Deployment, project: Project
) -> None:
    _, server_key = new_key(project, "server")
    _, client_key = new_key(project, "client")
    url = deployment.urls[0]
    cases = [
        ("POST", SINGLE + "banner", {"json": {"context": NL}}),
        ("POST", SINGLE + "page-size", {"json": {"context": NL}}),
        ("POST", SINGLE + "no-such-flag", {"json": {"context": NL}}),
        ("POST", SINGLE + "banner", {"content": b"{not json"}),
        ("POST", SINGLE + "banner", {"json": {"context": {"targetingKey": 7}}}),
        ("POST", SINGLE + "banner", {"content": b""}),
        ("POST", BULK, {"json": {"context": NL}}),
        ("POST", BULK, {"json": []}),
    ]
    for key in (server_key, client_key):
        for api_key_header in (False, True):
            header = {"X-API-Key": key} if api_key_header else {"Authorization": f"Bearer {key}"}
            header["Origin"] = "https://app.example"  # a browser's: CORS applies
            with httpx.Client(base_url=url, headers=header, timeout=30) as client:
                for method, path, kwargs in cases:
                    answers = [client.request(method, path, **kwargs) for _ in range(3)]
                    first = answers[0]
                    for answer in answers[1:]:
                        assert answer.status_code == first.status_code, (path, kwargs)
                        assert answer.content == first.content, (path, kwargs)
                        assert answer.headers.get("etag") == first.headers.get("etag")
                        assert same_headers(answer.headers) == same_headers(first.headers)
                        assert answer.headers["access-control-allow-origin"] == "*"
                        assert answer.headers["x-content-type-options"] == "nosniff"
                if key == client_key:  # not client_side: not found for a client key
                    hidden = client.post(SINGLE + "page-size", json={"context": NL})
                    assert hidden.status_code == 404
                etag = client.post(BULK, json={"context": NL}).headers["etag"]
                unchanged = client.post(BULK, json={"context": NL}, headers={"If-None-Match": etag})
                assert unchanged.status_code == 304
                assert unchanged.content == b""


def test_warm_polls_answer_with_the_routes_headers(
    deployment: Deployment, project: Project
) -> None:
    """The first poll with a new key is the route's answer (the key is not cached yet), the
    next ones the fast path's: same status, body and headers, with or without gzip."""
    _, key = new_key(project)
    for path in CONFIG_PATHS:
        for encoding in ("identity", "gzip"):
            answers = [
                fetch(deployment.urls[0], key, path, **{"Accept-Encoding": encoding})
                for _ in range(3)
            ]
            for answer in answers[1:]:
                assert answer.status == answers[0].status == 200
                assert answer.body == answers[0].body
                assert same_headers(answer.headers) == same_headers(answers[0].headers)
            assert answers[0].headers["x-request-id"] != answers[1].headers["x-request-id"]


def test_a_fast_answer_that_fails_is_a_500_problem_with_the_request_id(
    deployment: Deployment, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while the fast path answers is what a failing route answers (FastAPI's error
    handling is not around the fast path): a 500 problem naming the request id, the id and the
    CORS headers on the response, and the exception in the log."""
    _, key = new_key(project)
    headers = {"Authorization": f"Bearer {key}", "Origin": "https://app.example"}
    with httpx.Client(base_url=deployment.urls[0], headers=headers, timeout=30) as client:
        assert client.post(SINGLE + "banner", json={"context": NL}).status_code == 200  # warm

        def fail(*args: object, **kwargs: object) -> None:
            raise RuntimeError("evaluation exploded")

        monkeypatch.setattr(sdk_fast_path.ofrep, "evaluate_flag", fail)
        request_id = unique("fast-boom")
        failed = client.post(
            SINGLE + "banner", json={"context": NL}, headers={"X-Request-Id": request_id}
        )
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    assert failed.json()["category"] == "fatal"
    assert request_id in failed.json()["detail"]
    assert "exploded" not in failed.text
    assert failed.headers["x-request-id"] == request_id
    assert failed.headers["access-control-allow-origin"] == "*"
    deadline = time.monotonic() + GENEROUS
    found: dict[str, dict[str, object]] = {}
    while time.monotonic() < deadline and len(found) < 2:
        for text in deployment.logs.text().splitlines():
            line = json.loads(text) if text.startswith("{") else {}
            if line.get("request_id") == request_id:
                found[str(line.get("event"))] = line
        time.sleep(0.05)
    assert found["unhandled_error"]["exc_type"] == "builtins.RuntimeError"
    assert found["request"]["status"] == 500
    assert found["request"]["path"] == SINGLE + "{flag}"  # answered by the fast path


def test_fast_answers_keep_their_log_line(deployment: Deployment, project: Project) -> None:
    _, key = new_key(project)
    url = deployment.urls[0]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        ids = []
        for _ in range(3):
            single = c.post(SINGLE + "banner", json={"context": NL})
            polled = c.get("/api/v1/sdk/flags")
            ids += [single.headers["x-request-id"], polled.headers["x-request-id"]]
    lines = {}
    deadline = time.monotonic() + GENEROUS
    while time.monotonic() < deadline and len(lines) < len(ids):
        for text in deployment.logs.text().splitlines():
            line = json.loads(text) if text.startswith("{") else {}
            if line.get("event") == "request" and line.get("request_id") in ids:
                lines[line["request_id"]] = line
        time.sleep(0.05)
    assert set(lines) == set(ids)
    for request_id, line in lines.items():
        assert line["status"] == 200
        assert line["actor"].startswith("token:")
        if line["path"] == SINGLE + "{flag}":
            assert line["flag"] == "banner"
        else:
            assert line["path"] == "/api/v1/sdk/flags", request_id
    assert key not in deployment.logs.text()


def test_large_bulk_evaluations_answer_the_same_from_a_worker_thread(
    deployment: Deployment, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Environments over LOOP_BULK_FLAGS flags are evaluated off the event loop."""
    monkeypatch.setattr(sdk_fast_path, "LOOP_BULK_FLAGS", 0)
    _, key = new_key(project)
    with httpx.Client(
        base_url=deployment.urls[0], headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        answers = [client.post(BULK, json={"context": NL}) for _ in range(3)]
        etag = answers[0].headers["etag"]
        unchanged = client.post(BULK, json={"context": NL}, headers={"If-None-Match": etag})
    assert {a.status_code for a in answers} == {200}
    assert {a.content for a in answers} == {answers[0].content}
    assert {a.headers["etag"] for a in answers} == {etag}
    assert unchanged.status_code == 304
