"""OFREP against real servers (SQLite; PostgreSQL with two replicas): single and bulk
evaluation, client and server keys, the spec's error shapes, the bulk ETag, the change stream
and CORS. Every OFREP body received is validated against the spec's schemas (``ofrep_spec``)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import Deployment, deployed
from ofrep_flags import CLIENT_SIDE, FLAGS, NL, create_flags, new_key, toggle
from ofrep_spec import check, errors
from server_api import unique
from sse import Event, EventReader

from fader_engine.formats import load

HEARTBEAT = 0.3
SINGLE = "/ofrep/v1/evaluate/flags/"
BULK = "/ofrep/v1/evaluate/flags"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with deployed(request, tmp_path_factory, "ofrep", sse_heartbeat_seconds=HEARTBEAT) as made:
        yield made


@dataclass
class Env:
    project: str
    server_key: str
    client_key: str
    admin: httpx.Client
    url: str


@contextmanager
def new_env(deployment: Deployment) -> Iterator[Env]:
    """A project with the flags of `FLAGS` configured in production, and a key of each kind."""
    with deployment.admin() as admin:
        project = unique("ofrep")
        assert admin.post("/api/v1/projects", json={"key": project, "name": "O"}).status_code == 201
        create_flags(admin, project)
        yield Env(
            project,
            new_key(admin, project, "server"),
            new_key(admin, project, "client"),
            admin,
            deployment.urls[0],
        )


@pytest.fixture
def env(deployment: Deployment) -> Iterator[Env]:
    """For tests that change flags, keys or environments."""
    with new_env(deployment) as created:
        yield created


@pytest.fixture(scope="module")
def fixed(deployment: Deployment) -> Iterator[Env]:
    """For tests that only evaluate: one project per backend and worker."""
    with new_env(deployment) as created:
        yield created


def ofrep(url: str, key: str, *, api_key_header: bool = False) -> httpx.Client:
    header = {"X-API-Key": key} if api_key_header else {"Authorization": f"Bearer {key}"}
    return httpx.Client(base_url=url, headers=header, timeout=30)


def single(client: httpx.Client, flag: str, context: dict[str, Any] | None = None) -> Any:
    """Evaluate one flag; the body is checked against the spec's schema for its status."""
    response = client.post(SINGLE + flag, json={"context": {} if context is None else context})
    schema = {200: "serverEvaluationSuccess", 400: "evaluationFailure", 404: "flagNotFound"}
    assert response.status_code in schema, response.text
    assert response.headers["content-type"] == "application/json"
    return response.status_code, check(schema[response.status_code], response.json())


def bulk(client: httpx.Client, context: dict[str, Any], **kwargs: Any) -> httpx.Response:
    response = client.post(BULK, json={"context": context}, **kwargs)
    if response.status_code == 200:
        check("bulkEvaluationSuccess", response.json())
    return response


def by_key(response: httpx.Response) -> dict[str, dict[str, Any]]:
    return {item["key"]: item for item in response.json()["flags"]}


# --------------------------------------------------------------- the schemas
def test_the_upstream_value_schema_still_needs_its_repair() -> None:
    """`ofrep_spec` validates success values with a repaired schema; this fails (remove the
    repair then) once the spec's own schema accepts a plain boolean success."""
    success = {"key": "f", "value": True, "reason": "STATIC", "variant": "on"}
    assert errors("evaluationSuccess", success, repair=False)
    assert errors("evaluationSuccess", success) == []
    assert errors("evaluationSuccess", {**success, "value": ["a"]})  # arrays are not objects
    assert errors("evaluationSuccess", {"key": "f", "reason": "DISABLED"}) == []  # code default


# ---------------------------------------------------------- single evaluation
def test_single_evaluation_follows_targeting_splits_and_the_off_switch(fixed: Env) -> None:
    with ofrep(fixed.url, fixed.server_key) as client:
        status, matched = single(client, "banner", NL)
        assert status == 200
        assert matched == {
            "key": "banner",
            "value": True,
            "variant": "on",
            "reason": "TARGETING_MATCH",
            "metadata": {"owner_team": "web", "client_side": True},
        }
        _, unmatched = single(client, "banner", {"targetingKey": "user-1", "country": "DE"})
        assert (unmatched["value"], unmatched["variant"]) == (False, "off")
        assert unmatched["reason"] == "UNKNOWN"  # Fader's DEFAULT: not in OFREP's reasons

        _, static = single(client, "page-size")
        assert (static["value"], static["reason"], static["variant"]) == (50, "STATIC", "normal")
        assert type(static["value"]) is int
        _, pro = single(client, "discount", {"targetingKey": "u", "plan": "pro"})
        assert (pro["value"], pro["reason"]) == (0.75, "TARGETING_MATCH")
        _, disabled = single(client, "theme", NL)
        assert disabled == {
            "key": "theme",
            "value": {"bg": "#fff"},
            "variant": "light",
            "reason": "DISABLED",
            "metadata": {"owner_team": "web"},
        }
        document = client.get("/api/v1/sdk/flags").json()["document"]
    engine = load(document)
    seen = set()
    with ofrep(fixed.url, fixed.server_key) as client:
        for user in (f"user-{n}" for n in range(20)):
            _, split = single(client, "button-copy", {"targetingKey": user})
            assert split["reason"] == "SPLIT"
            assert (
                split["variant"] == engine.evaluate("button-copy", {"targetingKey": user}).variant
            )
            assert split["value"] == FLAGS["button-copy"][0]["variants"][split["variant"]]
            seen.add(split["variant"])
    assert seen == {"control", "treatment"}


def test_evaluation_failures_have_the_spec_shapes(fixed: Env) -> None:
    with ofrep(fixed.url, fixed.server_key) as client:
        status, missing = single(client, "button-copy", {"country": "NL"})
        assert status == 400
        assert missing["errorCode"] == "TARGETING_KEY_MISSING"
        assert "targetingKey" in missing["errorDetails"]

        status, absent = single(client, "no-such-flag", NL)
        assert status == 404
        assert absent["key"] == "no-such-flag"
        assert absent["errorCode"] == "FLAG_NOT_FOUND"

        status, array = single(client, "regions", NL)
        assert status == 400
        assert array["errorCode"] == "GENERAL"
        assert "array" in array["errorDetails"]

        # No context at all is accepted: flags that need no targeting key evaluate.
        bare = client.post(SINGLE + "page-size", json={})
        assert bare.status_code == 200
        assert check("serverEvaluationSuccess", bare.json())["value"] == 50


def test_a_body_over_the_servers_cap_is_refused_before_it_is_read(fixed: Env) -> None:
    """OFREP bodies share the server's body cap (FADER_MAX_BODY_BYTES, 1 MiB by default):
    413 with a problem naming the limit, whatever the endpoint."""
    huge = b'{"context": {"k": "' + b"x" * (1 << 20) + b'"}}'
    headers = {"content-type": "application/json"}
    with ofrep(fixed.url, fixed.server_key) as client:
        for path in (SINGLE + "banner", BULK):
            refused = client.post(path, content=huge, headers=headers)
            assert refused.status_code == 413
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["category"] == "user_fixable"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"context": {', "PARSE_ERROR"),
        (b"[1, 2]", "INVALID_CONTEXT"),
        (b'{"context": "user-1"}', "INVALID_CONTEXT"),
        (b'{"context": {"targetingKey": 42}}', "INVALID_CONTEXT"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "context-not-an-object",
        "targeting-key-not-a-string",
    ],
)
def test_unusable_requests_are_400_with_an_error_code(fixed: Env, body: bytes, code: str) -> None:
    headers = {"content-type": "application/json"}
    with ofrep(fixed.url, fixed.server_key) as client:
        one = client.post(SINGLE + "banner", content=body, headers=headers)
        assert one.status_code == 400
        assert check("evaluationFailure", one.json())["errorCode"] == code
        assert one.json()["key"] == "banner"
        every = client.post(BULK, content=body, headers=headers)
        assert every.status_code == 400
        assert check("bulkEvaluationFailure", every.json())["errorCode"] == code


# ------------------------------------------------------------------ the keys
def test_client_keys_see_only_client_side_flags(fixed: Env) -> None:
    with ofrep(fixed.url, fixed.client_key) as client:
        assert single(client, "banner", NL)[1]["value"] is True
        status, hidden = single(client, "page-size", NL)
        _, absent = single(client, "no-such-flag", NL)
        assert status == 404
        assert hidden["errorCode"] == absent["errorCode"] == "FLAG_NOT_FOUND"
        assert hidden["errorDetails"] == absent["errorDetails"].replace("no-such-flag", "page-size")
        assert set(by_key(bulk(client, NL))) == CLIENT_SIDE
    with ofrep(fixed.url, fixed.server_key) as server:
        assert set(by_key(bulk(server, NL))) == set(FLAGS)


def test_flags_carry_client_side_through_the_api_to_the_document(fixed: Env) -> None:
    flags = f"/api/v1/projects/{fixed.project}/flags"
    assert fixed.admin.get(f"{flags}/banner").json()["client_side"] is True
    assert fixed.admin.get(f"{flags}/page-size").json()["client_side"] is False
    document = fixed.admin.get(
        f"/api/v1/projects/{fixed.project}/environments/production/document"
    ).json()
    assert document["flags"]["banner"]["metadata"] == {"owner_team": "web", "client_side": True}
    assert document["flags"]["page-size"]["metadata"] == {"owner_team": "web"}


def test_keys_are_taken_from_either_scheme_and_checked(deployment: Deployment, env: Env) -> None:
    for api_key_header in (False, True):
        with ofrep(env.url, env.client_key, api_key_header=api_key_header) as client:
            assert single(client, "banner", NL)[0] == 200
    with httpx.Client(base_url=env.url, timeout=30) as anonymous:
        refused = anonymous.post(SINGLE + "banner", json={"context": NL})
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert "X-API-Key" in refused.json()["detail"]
        assert anonymous.post(BULK, json={"context": NL}).status_code == 401
    with ofrep(env.url, "fdr_cli_" + secrets.token_urlsafe(32), api_key_header=True) as forged:
        assert forged.post(SINGLE + "banner", json={"context": NL}).status_code == 401
    with ofrep(env.url, deployment.admin_token) as admin_token:
        assert admin_token.post(BULK, json={"context": NL}).status_code == 403
    created = env.admin.post(
        "/api/v1/tokens",
        json={"kind": "client", "name": "old", "project": env.project, "environment": "production"},
    ).json()
    assert env.admin.delete(f"/api/v1/tokens/{created['id']}").status_code == 204
    with ofrep(env.url, created["token"]) as revoked:
        assert revoked.post(BULK, json={"context": NL}).status_code == 401


# ------------------------------------------------------------------- bulk
def test_bulk_results_are_the_single_results(fixed: Env) -> None:
    with ofrep(fixed.url, fixed.server_key) as client:
        response = bulk(client, NL)
        assert response.json()["metadata"] == {
            "project": fixed.project,
            "environment": "production",
        }
        for key, item in by_key(response).items():
            assert item == single(client, key, NL)[1]
        failing = by_key(bulk(client, {"country": "NL"}))["button-copy"]
        assert failing["errorCode"] == "TARGETING_KEY_MISSING"


def test_bulk_etag_answers_304_until_the_flags_or_the_context_change(env: Env) -> None:
    with ofrep(env.url, env.client_key) as client:
        first = bulk(client, NL)
        etag = first.headers["etag"]
        assert etag.startswith('"')
        same = bulk(client, NL, headers={"If-None-Match": etag})
        assert same.status_code == 304
        assert same.content == b""
        assert same.headers["etag"] == etag
        assert bulk(client, NL, headers={"If-None-Match": f'W/{etag}, "x"'}).status_code == 304

        other_context = bulk(client, {**NL, "country": "DE"}, headers={"If-None-Match": etag})
        assert other_context.status_code == 200
        assert by_key(other_context)["banner"]["value"] is False

        toggle(env.admin, env.project, "page-size", False)  # a flag client keys cannot see
        assert bulk(client, NL, headers={"If-None-Match": etag}).status_code == 304
        toggle(env.admin, env.project, "banner", False)
        changed = bulk(client, NL, headers={"If-None-Match": etag}, params={"flagConfigEtag": "x"})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert by_key(changed)["banner"]["reason"] == "DISABLED"


# ---------------------------------------------------------- change stream
@contextmanager
def change_stream(
    url: str, request_uri: str, headers: dict[str, str] | None = None
) -> Iterator[EventReader]:
    with (
        httpx.Client(base_url=url, timeout=10) as client,
        client.stream("GET", request_uri, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventReader(response)


def drain(stream: EventReader) -> None:
    """Read events until the stream ends (raises EOFError then)."""
    while True:
        stream.next()


def stream_uri(response: httpx.Response) -> str:
    (stream,) = response.json()["eventStreams"]
    assert stream["type"] == "sse"
    return str(stream["endpoint"]["requestUri"])


def refetch(event: Event) -> dict[str, Any]:
    """A change notification, checked against the spec's `sseEvent` and `sseEventData`."""
    check("sseEvent", {"data": event.data, "event": event.event, "id": event.id})
    assert event.event == "message"
    data = check("sseEventData", event.json())
    assert data["type"] == "refetchEvaluation"
    assert data["etag"] == f'"{event.id}"'
    return data


def test_the_change_stream_says_when_to_refetch(deployment: Deployment, env: Env) -> None:
    with ofrep(env.url, env.client_key) as client:
        first = bulk(client, NL)
        uri = stream_uri(first)
        assert "fdr_" not in uri  # a grant, never the key itself
        # The stream URL works without headers (browsers' EventSource), on any replica.
        with change_stream(deployment.urls[-1], uri) as stream:
            opening = stream.next()
            refetch(opening)  # on connecting: covers a change between the fetch and now
            assert stream.retry == 1000
            toggle(env.admin, env.project, "banner", False)
            change = stream.next()
            data = refetch(change)
            assert int(change.id or 0) > int(opening.id or 0)
            again = bulk(client, NL, params={"flagConfigEtag": data["etag"]})
            assert again.headers["etag"] != first.headers["etag"]
            assert by_key(again)["banner"]["reason"] == "DISABLED"


def test_the_change_stream_resumes_and_keeps_alive(env: Env) -> None:
    with ofrep(env.url, env.server_key) as client:
        uri = stream_uri(bulk(client, NL))
    with change_stream(env.url, uri) as stream:
        current = refetch(stream.next())
    resume = {"Last-Event-ID": current["etag"].strip('"')}
    headers = {"Authorization": f"Bearer {env.server_key}", **resume}
    with change_stream(env.url, "/ofrep/v1/event-stream", headers) as stream:
        beats = [stream.next(comments=True) for _ in range(2)]
        assert all(b.comments == ["heartbeat"] and b.data == "" for b in beats)
        toggle(env.admin, env.project, "theme", True)
        assert int(refetch(stream.next())["etag"].strip('"')) > int(resume["Last-Event-ID"])


def test_change_stream_grants_are_checked(env: Env) -> None:
    key = new_key(env.admin, env.project, "client", environment="development")
    with ofrep(env.url, key) as client:
        uri = stream_uri(bulk(client, NL))
    with httpx.Client(base_url=env.url, timeout=10) as anonymous:
        tampered = anonymous.get(uri[:-1] + ("0" if uri[-1] != "0" else "1"))
        assert tampered.status_code == 401
        assert anonymous.get("/ofrep/v1/event-stream?grant=1").status_code == 401
        assert anonymous.get("/ofrep/v1/event-stream").status_code == 401
    with change_stream(env.url, uri) as stream:
        refetch(stream.next())
        current = env.admin.get(f"/api/v1/projects/{env.project}/environments/development")
        deleted = env.admin.delete(
            f"/api/v1/projects/{env.project}/environments/development",
            headers={"If-Match": current.headers["etag"]},
        )
        assert deleted.status_code == 204, deleted.text
        with pytest.raises(EOFError):
            drain(stream)
    tokens = env.admin.get(f"/api/v1/tokens?project={env.project}").json()
    revoked = next(t for t in tokens if t["kind"] == "server" and t["environment"] == "production")
    with ofrep(env.url, env.server_key) as client:
        uri = stream_uri(bulk(client, NL))  # the server key's grant, never used before
    assert env.admin.delete(f"/api/v1/tokens/{revoked['id']}").status_code == 204
    with httpx.Client(base_url=env.url, timeout=10) as anonymous:
        assert anonymous.get(uri).status_code == 401


# ------------------------------------------------------------------- CORS
def test_browsers_may_call_ofrep_from_any_origin_and_read_the_etag(fixed: Env) -> None:
    origin = {"Origin": "https://shop.example"}
    with httpx.Client(base_url=fixed.url, timeout=30) as browser:
        preflight = browser.options(
            BULK,
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,if-none-match",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "*"
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "x-api-key", "if-none-match"} <= set(allowed.split(", "))
        response = browser.post(
            BULK, json={"context": NL}, headers={**origin, "X-API-Key": fixed.client_key}
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        assert "ETag" in response.headers["access-control-expose-headers"]
        admin_api = browser.get("/api/v1/projects", headers=origin)
        assert "access-control-allow-origin" not in admin_api.headers


def test_contexts_of_any_json_shape_evaluate(fixed: Env) -> None:
    """Context values of every JSON type evaluate (a clause on a wrong type does not match)."""
    context = {"targetingKey": "u", "country": 7, "plan": ["pro"], "nested": {"a": None}}
    with ofrep(fixed.url, fixed.server_key) as client:
        response = bulk(client, context)
        assert response.status_code == 200
        assert json.loads(response.content)["flags"]
        assert by_key(response)["banner"]["value"] is False
