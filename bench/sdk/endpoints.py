"""What each system's SDK-facing endpoints are, and the SDK credentials to call them.

The systems come up through ``bench/server`` (`run.start_systems`: started, seeded with the
same 50 boolean flags with a 25% rollout in ``development``). This module adds what an SDK
needs on top: a server SDK key for Fader, client and frontend tokens for Unleash (and turns
Unleash's flags on in ``development``, which adding a strategy does not do), then names, per
row of the table, the request each system answers it with. A row a system has no endpoint for
is simply absent (Unleash 8.2 has no single-flag frontend route, nor a flagd document).

Every request is checked once before any timing, so a cell never times error answers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import systems
from processes import call, expect

ROWS = ("bulk", "single", "config", "flagd")
ROW_TITLES = {
    "bulk": "all flags, one context",
    "single": "one flag, one context",
    "config": "SDK configuration",
    "flagd": "flagd document",
}
USERS = 1000
"""Targeting keys / userIds cycled through by the load generator (``%d`` in paths and bodies)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One request template: ``%d`` in `path` or `body` becomes a user number."""

    method: str
    path: str
    body: str
    headers: dict[str, str]
    label: str


def fader_endpoints(system: systems.System) -> dict[str, Endpoint]:
    """Fader's four SDK rows, with a server SDK key for the seeded project and environment."""
    admin = system.read(0).next_request().headers  # the admin bearer bench/server seeded with
    body = {
        "kind": "server",
        "name": "bench-sdk",
        "project": systems.FADER_PROJECT,
        "environment": systems.ENVIRONMENT,
    }
    status, answer = call(system.server.port, "POST", "/api/v1/tokens", body, admin)
    expect(status, 201, "create SDK key", answer)
    sdk = {"Authorization": f"Bearer {answer['token']}"}
    post = {**sdk, "Content-Type": "application/json"}
    context = '{"context":{"targetingKey":"user-%d"}}'
    return {
        "bulk": Endpoint("POST", "/ofrep/v1/evaluate/flags", context, post, "OFREP bulk"),
        "single": Endpoint(
            "POST", "/ofrep/v1/evaluate/flags/bench-7", context, post, "OFREP single"
        ),
        "config": Endpoint("GET", "/api/v1/sdk/flags", "", sdk, "GET /api/v1/sdk/flags"),
        "flagd": Endpoint("GET", "/api/v1/sdk/flagd", "", sdk, "GET /api/v1/sdk/flagd"),
    }


def unleash_endpoints(system: systems.System) -> dict[str, Endpoint]:
    """Unleash's rows: frontend API (POST, like OFREP) and the client API's feature list."""
    port, admin = system.server.port, {"Authorization": systems.UNLEASH_TOKEN}
    base = "/api/admin/projects/default/features"
    for n in range(systems.FLAGS):
        path = f"{base}/bench-{n}/environments/{systems.ENVIRONMENT}/on"
        status, body = call(port, "POST", path, None, admin)
        expect(status, 200, "enable feature", body)
    secrets: dict[str, str] = {}
    for kind in ("client", "frontend"):
        token = {
            "tokenName": f"bench-{kind}",
            "type": kind,
            "environment": systems.ENVIRONMENT,
            "projects": ["*"],
        }
        status, body = call(port, "POST", "/api/admin/api-tokens", token, admin)
        expect(status, 201, f"create {kind} token", body)
        secrets[kind] = body["secret"]
    frontend = {"Authorization": secrets["frontend"], "Content-Type": "application/json"}
    client = {"Authorization": secrets["client"]}
    return {
        "bulk": Endpoint(
            "POST",
            "/api/frontend",
            '{"context":{"userId":"user-%d"}}',
            frontend,
            "POST /api/frontend",
        ),
        "config": Endpoint("GET", "/api/client/features", "", client, "GET /api/client/features"),
    }


def check(port: int, endpoint: Endpoint, deadline: float = 60.0) -> None:
    """Send the request once (user 1), as the load generator will; raise unless it answers
    200 with flags in it.

    Waits up to `deadline` seconds for an answer that has flags in it: Unleash's frontend API
    serves from a cache that learns of the flags just turned on a moment later.
    """
    give_up = time.monotonic() + deadline
    while True:
        body = json.loads(endpoint.body.replace("%d", "1")) if endpoint.body else None
        path = endpoint.path.replace("%d", "1")
        status, answer = call(port, endpoint.method, path, body, endpoint.headers)
        expect(status, 200, endpoint.label, answer)
        if _has_flags(answer):
            return
        if time.monotonic() > give_up:
            raise RuntimeError(f"{endpoint.label}: no flags in the answer: {str(answer)[:300]}")
        time.sleep(0.5)


def _has_flags(answer: object) -> bool:
    if not isinstance(answer, dict):
        return False
    for key in ("flags", "features", "toggles"):
        found = answer.get(key)
        if isinstance(found, list | dict) and found:
            return True
    document = answer.get("document")
    return (isinstance(document, dict) and bool(document.get("flags"))) or "value" in answer
