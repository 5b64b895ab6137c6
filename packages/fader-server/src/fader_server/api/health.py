"""Liveness, readiness and metrics, outside `/api/v1`.

`/healthz` and `/readyz` are unauthenticated (load balancers probe them). `/metrics` is too
unless ``FADER_METRICS_TOKEN`` is set; then it answers only ``Authorization: Bearer <that
token>`` (compared in constant time) and gives everyone else a 401 problem. Its series name
routes and counts, not data, but they do show what is used and how much, which is nobody
else's business on a server reachable from outside.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fader_server.api.problems import problem
from fader_server.api.security import Svc
from fader_server.errors import StorageUnavailableError

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers; says nothing about the database (that is /readyz)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(svc: Svc) -> dict[str, str] | JSONResponse:
    """Ready when the database answers and its schema is at this code's head revision."""
    try:
        svc.store.ping()
    except StorageUnavailableError as exc:
        return problem(503, "not-ready", "Not ready", exc.detail, "retryable")
    if not svc.store.migrations_current():
        return problem(
            503,
            "not-ready",
            "Not ready",
            "the database schema is not at the current revision; run `fader db upgrade`",
            "operator_fixable",
        )
    return {"status": "ready"}


def _bearer_matches(request: Request, expected: str) -> bool:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credential.strip().encode(), expected.encode())


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    collected = request.app.state.metrics
    if collected.token is not None and not _bearer_matches(request, collected.token):
        return problem(
            401,
            "not-authenticated",
            "Not authenticated",
            "this server's metrics need 'Authorization: Bearer <FADER_METRICS_TOKEN>'",
            "user_fixable",
            headers={"WWW-Authenticate": 'Bearer realm="fader-metrics"'},
        )
    return Response(generate_latest(collected.registry), media_type=CONTENT_TYPE_LATEST)
