"""Liveness, readiness and metrics: unauthenticated, outside `/api/v1`."""

from __future__ import annotations

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


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
