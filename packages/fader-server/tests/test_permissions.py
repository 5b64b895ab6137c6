"""The permission matrix: every admin endpoint by every kind of caller → the expected outcome.

Expected outcomes: no, expired or revoked token → 401; SDK and client keys → 403 everywhere;
a role below the endpoint's need → 403; an admin of *another* project → 404 on everything of
this project (it cannot even learn the project exists); an allowed caller never gets 401/403
(it may get 409/412/428 because the matrix sends deliberately stale or duplicate writes, which
keeps the fixture data unchanged between cells).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import Server
from server_api import BOOLEAN_FLAG, create_flag, unique

CALLERS = (
    "none",
    "expired",
    "revoked",
    "sdk",
    "client",
    "viewer",
    "editor",
    "admin",
    "other_admin",
)
RANK = {"viewer": 1, "editor": 2, "admin": 3}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    need: str  # viewer | editor | admin | instance (instance administrators) | any | public
    body: Any = None
    headers: dict[str, str] | None = None
    project_scoped: bool = True


STALE = {"If-Match": '"999"'}
CONFIG = {"enabled": False, "offVariant": "off", "default": {"variant": "off"}}
P = "/api/v1/projects/{p}"
F = P + "/environments/development/flags/gate"
# Rollout writes are refused (422 bad variant, 409 duplicate or finished plan) once allowed.
STAGES = {"stages": [{"name": "all", "min_duration": 1, "percent": 100}]}
BAD_PLAN = {"flag": "gate", "environment": "development", "control": "off", "treatment": "nope"}
HOOK = "https://hooks.example/matrix"
CR_PROPOSAL = {"problem": "matrix", "change": "matrix"}
CR_OP = {"kind": "flag_config", "environment": "development", "flag": "gate", "enabled": False}
STALE_PROPOSAL = {
    "title": "Matrix",
    "proposal": CR_PROPOSAL,
    "operations": [{**CR_OP, "base_version": 999}],
}
PROMOTION = {
    "from": "staging",
    "to": "production",
    "flags": ["gate"],
    "title": "Matrix promotion",
    "proposal": {"problem": "matrix"},
}
IMPORT_DRY_RUN = {
    "source": "flagd",
    "environment": "development",
    "document": {"flags": {}},
    "dry_run": True,
}
DUE = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
ITEM = {"title": "Matrix", "owner": "nobody-{p}", "due_on": DUE}
SSO = "/api/v1/auth/sso/corp"
LOOPBACK = "http://127.0.0.1:50000/callback"
PKCE = "p" * 43
ENDPOINTS = [
    Endpoint("GET", "/api/v1/projects", "any", project_scoped=False),
    Endpoint("POST", "/api/v1/projects", "instance", {"key": "{p}", "name": "dup"}, None, False),
    Endpoint("GET", P, "viewer"),
    Endpoint("PATCH", P, "admin", {"name": "Matrix project"}),
    Endpoint("GET", P + "/environments", "viewer"),
    Endpoint("POST", P + "/environments", "admin", {"key": "development", "name": "Dev"}),
    Endpoint("GET", P + "/environments/development", "viewer"),
    Endpoint("PUT", P + "/environments/development", "admin", {"name": "Dev"}, STALE),
    Endpoint("DELETE", P + "/environments/development", "admin", None, STALE),
    Endpoint("GET", P + "/environments/development/document", "viewer"),
    Endpoint("GET", P + "/environments/staging/compare/production", "viewer"),
    # gate is the same in staging and production: an allowed promotion is a 422, nothing made
    Endpoint("POST", P + "/promotions", "editor", PROMOTION),
    Endpoint("GET", P + "/export", "editor"),
    # a dry run of an empty flagd document: allowed callers get 200, nothing written
    Endpoint("POST", P + "/imports", "editor", IMPORT_DRY_RUN),
    Endpoint("GET", P + "/flags", "viewer"),
    Endpoint("POST", P + "/flags", "editor", {"key": "gate", **BOOLEAN_FLAG}),
    Endpoint("GET", P + "/flags/gate", "viewer"),
    Endpoint("PUT", P + "/flags/gate", "editor", BOOLEAN_FLAG, STALE),
    Endpoint("DELETE", P + "/flags/gate", "editor", None, STALE),
    Endpoint("GET", P + "/flags/gate/versions", "viewer"),
    Endpoint("GET", P + "/flags/gate/history", "viewer"),
    Endpoint("GET", P + "/flags/gate/usage?environment=development", "viewer"),
    Endpoint("GET", P + "/flags/gate/debug-events?environment=development", "viewer"),
    Endpoint("GET", P + "/reports/stale-flags?unused_days=7", "viewer"),
    Endpoint("POST", P + "/flags/gate/revert", "editor", {"version": 1}, STALE),
    Endpoint("GET", F, "viewer"),
    Endpoint("PUT", F, "editor", CONFIG, STALE),
    Endpoint("POST", F + "/toggle", "editor", {"enabled": False}),
    Endpoint("GET", F + "/versions", "viewer"),
    Endpoint("POST", F + "/revert", "editor", {"version": 1}, STALE),
    Endpoint("GET", P + "/segments", "viewer"),
    Endpoint("POST", P + "/segments", "editor", {"key": "staff", "included": ["u1"]}),
    Endpoint("GET", P + "/segments/staff", "viewer"),
    Endpoint("PUT", P + "/segments/staff", "editor", {"included": ["u1"]}, STALE),
    Endpoint("DELETE", P + "/segments/staff", "editor", None, STALE),
    Endpoint("GET", P + "/segments/staff/versions", "viewer"),
    Endpoint("POST", P + "/segments/staff/revert", "editor", {"version": 1}, STALE),
    Endpoint("GET", P + "/members", "viewer"),
    Endpoint("PUT", P + "/members/{viewer}", "admin", {"role": "viewer"}),
    Endpoint("DELETE", P + "/members/nobody-{p}", "admin"),
    Endpoint("GET", P + "/audit", "viewer"),
    Endpoint("GET", "/api/v1/tokens?project={p}", "admin"),
    Endpoint(
        "POST",
        "/api/v1/tokens",
        "admin",
        {"kind": "server", "name": "m", "project": "{p}", "environment": "development"},
    ),
    Endpoint("DELETE", "/api/v1/tokens/{spare_token}", "admin"),
    Endpoint("GET", "/api/v1/tokens", "instance", project_scoped=False),
    Endpoint(
        "POST",
        "/api/v1/users",
        "instance",
        {"username": "{viewer}", "password": "x" * 12},
        None,
        False,
    ),
    Endpoint("GET", P + "/rollout-templates", "viewer"),
    Endpoint("POST", P + "/rollout-templates", "editor", {"key": "tpl", "name": "T", **STAGES}),
    Endpoint("GET", P + "/rollout-templates/tpl", "viewer"),
    Endpoint("DELETE", P + "/rollout-templates/tpl-gone", "editor"),
    Endpoint("GET", P + "/rollouts", "viewer"),
    Endpoint("POST", P + "/rollouts", "editor", {**BAD_PLAN, **STAGES}),
    Endpoint("GET", P + "/rollouts/{rollout}", "viewer"),
    *(
        Endpoint("POST", P + "/rollouts/{rollout}/" + command, "editor", {})
        for command in ("start", "pause", "resume", "advance", "abort")
    ),
    Endpoint("GET", P + "/incidents", "viewer"),
    Endpoint("GET", P + "/incidents/999999", "viewer"),
    # Incident writes are refused once allowed: an unknown flag (422), a stale If-Match (412),
    # an owner who is not a member (422).
    Endpoint("POST", P + "/incidents", "editor", {"title": "Matrix", "flag": "nope"}),
    Endpoint("GET", P + "/incidents/{incident}", "viewer"),
    *(
        Endpoint("POST", P + "/incidents/{incident}/" + step, "editor", body, STALE)
        for step, body in (("acknowledge", {}), ("resolve", {"resolution": "r"}), ("reopen", {}))
    ),
    Endpoint("PUT", P + "/incidents/{incident}/postmortem", "editor", {"summary": "s"}, STALE),
    Endpoint("POST", P + "/incidents/{incident}/action-items", "editor", ITEM),
    Endpoint("PATCH", P + "/incidents/{incident}/action-items/{item}", "editor", {}, STALE),
    Endpoint("POST", P + "/incidents/{incident}/action-items/{item}/done", "editor", {}, STALE),
    Endpoint("GET", P + "/action-items?status=overdue", "viewer"),
    Endpoint("GET", P + "/webhooks", "admin"),
    Endpoint("POST", P + "/webhooks", "admin", {"url": HOOK}),
    # Signing in takes no credentials (like /auth/login): every caller gets the same answer,
    # here 404 or 422 since the matrix server has no single sign-on provider.
    Endpoint("GET", "/api/v1/auth/sso/providers", "public", None, None, False),
    Endpoint(
        "POST",
        SSO + "/start",
        "public",
        {"redirect_uri": LOOPBACK, "code_challenge": PKCE},
        None,
        False,
    ),
    Endpoint(
        "POST",
        SSO + "/token",
        "public",
        {"flow": "f", "state": "s", "code": "c", "code_verifier": PKCE},
        None,
        False,
    ),
    Endpoint("DELETE", P + "/webhooks/999999", "admin"),
    # Change requests: the fixture request is cancelled, so allowed writes end in 409 (or 412
    # with a stale If-Match, or 412 for a proposal against a base that is not current).
    Endpoint("GET", P + "/change-requests", "viewer"),
    Endpoint("POST", P + "/change-requests", "editor", STALE_PROPOSAL),
    Endpoint("GET", P + "/change-requests/{cr}", "viewer"),
    Endpoint("PUT", P + "/change-requests/{cr}", "editor", {"title": "Matrix"}, STALE),
    Endpoint("POST", P + "/change-requests/{cr}/comments", "viewer", {"body": "matrix"}),
    *(
        Endpoint("POST", P + "/change-requests/{cr}/" + verb, "editor")
        for verb in ("approve", "reject", "apply", "cancel")
    ),
    Endpoint("GET", P + "/scheduled-changes", "viewer"),
    Endpoint("GET", P + "/flags/gate/scheduled-changes", "viewer"),
    Endpoint("GET", P + "/webhooks/999999", "admin"),
    Endpoint("PATCH", P + "/webhooks/999999", "admin", {"enabled": False}),
    Endpoint("GET", P + "/webhooks/999999/deliveries", "admin"),
    Endpoint("POST", P + "/webhooks/999999/deliveries/999999/redeliver", "admin"),
]


@dataclass(frozen=True)
class World:
    server: Server
    values: dict[str, str]
    clients: dict[str, httpx.Client]


def _token(admin: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = admin.post("/api/v1/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _user_token(server: Server, admin: httpx.Client, name: str, project: str, role: str) -> str:
    password = "pw-" + unique("secret")
    assert (
        admin.post("/api/v1/users", json={"username": name, "password": password}).status_code
        == 201
    )
    assert (
        admin.put(f"/api/v1/projects/{project}/members/{name}", json={"role": role}).status_code
        == 200
    )
    with server.client() as anonymous:
        login = anonymous.post("/api/v1/auth/login", json={"username": name, "password": password})
    assert login.status_code == 201, login.text
    return str(login.json()["token"])


def _rollout_fixtures(admin: httpx.Client, project: str) -> str:
    """A template, a webhook and a finished (aborted) plan; returns the plan's id."""
    base = f"/api/v1/projects/{project}"
    created = admin.post(base + "/rollout-templates", json={"key": "tpl", "name": "T", **STAGES})
    assert created.status_code == 201, created.text
    assert admin.post(base + "/webhooks", json={"url": HOOK}).status_code == 201
    enabled = {**CONFIG, "enabled": True}  # a plan needs the flag on (or "enable")
    turned_on = admin.put(
        base + "/environments/development/flags/gate", json=enabled, headers={"If-Match": '"0"'}
    )
    assert turned_on.status_code == 200, turned_on.text
    plan = admin.post(base + "/rollouts", json={**BAD_PLAN, "treatment": "on", **STAGES})
    assert plan.status_code == 201, plan.text
    plan_id = plan.json()["id"]
    assert admin.post(f"{base}/rollouts/{plan_id}/abort").status_code == 200
    return str(plan_id)


def _incident_fixtures(admin: httpx.Client, project: str) -> tuple[str, str]:
    """An incident opened by hand with one action item; their ids."""
    base = f"/api/v1/projects/{project}/incidents"
    incident = admin.post(base, json={"title": "Matrix incident"})
    assert incident.status_code == 201, incident.text
    incident_id = incident.json()["id"]
    item = admin.post(f"{base}/{incident_id}/action-items", json={**ITEM, "owner": "admin"})
    assert item.status_code == 201, item.text
    return str(incident_id), str(item.json()["id"])


def _change_request_fixture(admin: httpx.Client, project: str) -> str:
    """A change request, cancelled (so every allowed write to it is refused); its id."""
    base = f"/api/v1/projects/{project}/change-requests"
    body = {"title": "Matrix", "proposal": CR_PROPOSAL, "operations": [CR_OP]}
    created = admin.post(base, json=body)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert admin.post(f"{base}/{request_id}/cancel").status_code == 200
    return str(request_id)


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[World]:
    project, other = unique("matrix"), unique("other")
    with server.admin() as admin:
        for key in (project, other):
            assert admin.post("/api/v1/projects", json={"key": key, "name": key}).status_code == 201
        create_flag(admin, project, key="gate", client_side=True)  # client keys may evaluate it
        assert (
            admin.post(
                f"/api/v1/projects/{project}/segments", json={"key": "staff", "included": ["u1"]}
            ).status_code
            == 201
        )
        past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        expired = _token(
            admin, {"kind": "admin", "name": "old", "project": project, "expires_at": past}
        )
        revoked = _token(admin, {"kind": "admin", "name": "gone", "project": project})
        assert admin.delete(f"/api/v1/tokens/{revoked['id']}").status_code == 204
        sdk = _token(
            admin,
            {"kind": "server", "name": "sdk", "project": project, "environment": "production"},
        )
        client = _token(
            admin,
            {"kind": "client", "name": "web", "project": project, "environment": "production"},
        )
        spare = _token(
            admin,
            {"kind": "client", "name": "spare", "project": project, "environment": "development"},
        )
        viewer = unique("viewer")
        tokens: dict[str, str | None] = {
            "none": None,
            "expired": expired["token"],
            "revoked": revoked["token"],
            "sdk": sdk["token"],
            "client": client["token"],
            "viewer": _user_token(server, admin, viewer, project, "viewer"),
            "editor": _user_token(server, admin, unique("editor"), project, "editor"),
            "admin": _user_token(server, admin, unique("admin"), project, "admin"),
            "other_admin": _user_token(server, admin, unique("oadmin"), other, "admin"),
        }
        rollout = _rollout_fixtures(admin, project)
        incident, item = _incident_fixtures(admin, project)
        change_request = _change_request_fixture(admin, project)
    values = {
        "p": project,
        "viewer": viewer,
        "spare_token": str(spare["id"]),
        "rollout": rollout,
        "incident": incident,
        "item": item,
        "cr": change_request,
    }
    clients = {caller: server.client(token) for caller, token in tokens.items()}
    yield World(server, values, clients)
    for client in clients.values():
        client.close()


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def expected(endpoint: Endpoint, caller: str) -> set[int] | None:
    """The allowed statuses for a denied call, or None when the call is allowed."""
    if endpoint.need == "public":
        return None
    if caller in ("none", "expired", "revoked"):
        return {401}
    if caller in ("sdk", "client"):
        return {403}
    if endpoint.need == "any":
        return None
    if endpoint.need == "instance":
        return {403}
    if caller == "other_admin":
        return {404} if endpoint.project_scoped else None
    return None if RANK[caller] >= RANK[endpoint.need] else {403}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_permission_matrix(world: World, endpoint: Endpoint, caller: str) -> None:
    response = world.clients[caller].request(
        endpoint.method,
        _fill(endpoint.path, world.values),
        json=_fill(endpoint.body, world.values),
        headers=endpoint.headers,
    )
    denied = expected(endpoint, caller)
    if denied is None:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    else:
        assert response.status_code in denied, response.text
        assert response.headers["content-type"] == "application/problem+json"


# Delivery endpoints take SDK keys, not admin or user tokens. `need`: "sdk" (server SDK key)
# or "sdk_or_client" (server or client key).
OFREP_CONTEXT = {"context": {"targetingKey": "u1"}}
DELIVERY = [
    Endpoint("GET", "/api/v1/sdk/flags", "sdk"),
    Endpoint("GET", "/api/v1/sdk/flagd", "sdk"),
    Endpoint("GET", "/api/v1/sdk/stream", "sdk"),
    Endpoint("POST", "/api/v1/sdk/summaries", "sdk_or_client", {"start": 0, "end": 0}),
    Endpoint("POST", "/api/v1/sdk/events", "sdk_or_client", {"events": []}),
    Endpoint("POST", "/ofrep/v1/evaluate/flags/gate", "sdk_or_client", OFREP_CONTEXT),
    Endpoint("POST", "/ofrep/v1/evaluate/flags", "sdk_or_client", OFREP_CONTEXT),
    Endpoint("GET", "/ofrep/v1/event-stream", "sdk_or_client"),
]


def expected_delivery(endpoint: Endpoint, caller: str) -> set[int] | None:
    if caller in ("none", "expired", "revoked"):
        return {401}
    if caller == "sdk" or (caller == "client" and endpoint.need == "sdk_or_client"):
        return None
    return {403}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", DELIVERY, ids=lambda e: f"{e.method} {e.path}")
def test_delivery_permission_matrix(world: World, endpoint: Endpoint, caller: str) -> None:
    """Streams are opened, their status read, and closed (an allowed stream never ends)."""
    with world.clients[caller].stream(
        endpoint.method, endpoint.path, json=endpoint.body, headers=endpoint.headers
    ) as response:
        denied = expected_delivery(endpoint, caller)
        if denied is None:
            assert response.status_code in (200, 202), response.read()
        else:
            assert response.status_code in denied, response.read()
            assert response.headers["content-type"] == "application/problem+json"


def test_matrix_covers_every_admin_route(server: Server) -> None:
    """A new endpoint must be added to the matrix before it can ship."""
    with server.client() as client:
        spec = client.get("/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if path.startswith(("/api/v1", "/ofrep")) and path != "/api/v1/auth/login"
    }
    covered = {
        (
            e.method,
            e.path.split("?")[0]
            .replace("{p}", "{project}")
            .replace("{viewer}", "{username}")
            .replace("nobody-{project}", "{username}")
            .replace("{spare_token}", "{token_id}")
            .replace("/environments/staging/compare/production", "/environments/{a}/compare/{b}")
            .replace("/environments/development", "/environments/{environment}")
            .replace("/flags/gate", "/flags/{flag}")
            .replace("/segments/staff", "/segments/{segment}")
            .replace("/rollout-templates/tpl-gone", "/rollout-templates/{template}")
            .replace("/rollout-templates/tpl", "/rollout-templates/{template}")
            .replace("/incidents/999999", "/incidents/{incident}")
            .replace("/webhooks/999999", "/webhooks/{webhook}")
            .replace("{cr}", "{request_id}")
            .replace("/deliveries/999999", "/deliveries/{delivery}")
            .replace("/auth/sso/corp/", "/auth/sso/{provider_id}/"),
        )
        for e in [*ENDPOINTS, *DELIVERY]
    }
    assert routes - covered == set()
