"""Exporting a whole project as a bundle (docs/backup-and-move.md).

``GET /api/v1/projects/{project}/export`` answers the project's ``fader-bundle/v1`` bundle as a
download (``Content-Disposition: attachment; filename=fader-<project>-<date>.json``), for a
backup or to import elsewhere (``POST /api/v1/projects/{project}/imports`` with
``{"source": "fader", "document": <bundle>}``). Exporting takes the editor role and is audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

from fader_server.api import problems
from fader_server.api.schemas import ChangeRequestPolicy, Strict
from fader_server.api.security import Caller, Svc

router = APIRouter(
    prefix="/api/v1/projects/{project}", tags=["projects"], responses=problems.API_ERRORS
)


class BundleProjectOut(Strict):
    key: str
    name: str


class BundleEnvironmentOut(Strict):
    key: str
    name: str
    protected: bool
    bucketing: str
    change_requests: ChangeRequestPolicy | None = Field(
        default=None, description="absent when the environment has no policy"
    )


class BundleTemplateOut(Strict):
    key: str
    name: str
    stages: list[dict[str, Any]]
    gates: list[dict[str, Any]] = Field(description="gate URLs never carry credentials")
    split_by: str | None


class BundleOut(Strict):
    """A project bundle: everything that defines how the project behaves, no secrets."""

    format: str = Field(description='"fader-bundle/v1"')
    exported_at: str = Field(description="when it was exported (RFC 3339)")
    fader_version: str
    project: BundleProjectOut
    environments: list[BundleEnvironmentOut]
    flags: list[dict[str, Any]] = Field(
        description="flag definitions as stored, each with its `key`"
    )
    segments: list[dict[str, Any]] = Field(description="segments as stored, each with its `key`")
    configurations: dict[str, dict[str, dict[str, Any]]] = Field(
        description="environment → flag → configuration, where one was written"
    )
    rollout_templates: list[BundleTemplateOut]


@router.get(
    "/export",
    response_model=BundleOut,
    responses={200: {"description": "the bundle, as a JSON file to download"}},
)
def export_project(project: str, svc: Svc, caller: Caller) -> JSONResponse:
    """The whole project as a ``fader-bundle/v1`` bundle (editor role): environments, flags,
    segments, configurations and rollout templates; never tokens, SDK keys, webhooks, members
    or history."""
    bundle = svc.project_bundles.export(caller, project)
    day = str(bundle["exported_at"])[:10]
    name = f"fader-{project}-{day}.json"
    return JSONResponse(
        bundle,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
