"""Flags (project-wide definitions) and their per-environment configurations.

Reads return an ``ETag``; updates need ``If-Match`` (428 without, 412 when stale). Toggle and
revert accept ``If-Match`` but do not need it: they are the one-step emergency actions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from fader_server.api import deprecation, pagination, problems
from fader_server.api.definitions import add_definition_routes, version_out
from fader_server.api.pagination import Cursor, Limit
from fader_server.api.projects import audit_out
from fader_server.api.schemas import (
    AuditPage,
    ConfigIn,
    ConfigOut,
    FlagFields,
    FlagIn,
    FlagOut,
    FlagPage,
    RevertIn,
    ToggleIn,
    VersionOut,
)
from fader_server.api.security import Caller, IfMatch, Svc
from fader_server.services.flags import FlagConfig
from fader_server.services.versioning import etag
from fader_server.storage.ports import Resource

router = APIRouter(
    prefix="/api/v1/projects/{project}", tags=["flags"], responses=problems.API_ERRORS
)
_ENV = "/environments/{environment}/flags/{flag}"


def flag_out(flag: Resource) -> FlagOut:
    data = flag.data
    return FlagOut(
        key=flag.key,
        name=data["name"],
        description=data.get("description", ""),
        tags=data.get("tags", []),
        kind=data.get("kind", "release"),
        type=data["type"],
        variants=data["variants"],
        owner_team=data.get("owner_team"),
        owner=data.get("owner_team"),
        expected_lifetime_days=data.get("expected_lifetime_days"),
        client_side=data.get("client_side", False),
        version=flag.version,
        created_at=flag.created_at,
        updated_at=flag.updated_at,
    )


def _flag_response(flag: Resource, response: Response) -> FlagOut:
    response.headers["ETag"] = etag(flag.version)
    deprecation.announce(response, deprecation.FLAG_OWNER)
    return flag_out(flag)


def config_out(config: FlagConfig, response: Response) -> ConfigOut:
    response.headers["ETag"] = etag(config.version)
    data = config.data
    return ConfigOut(
        flag=config.flag,
        environment=config.environment,
        enabled=data.get("enabled", True),
        offVariant=data["offVariant"],
        rules=data.get("rules", []),
        default=data["default"],
        prerequisites=data.get("prerequisites", []),
        version=config.version,
    )


@router.get("/flags")
def list_flags(
    project: str,
    svc: Svc,
    caller: Caller,
    response: Response,
    limit: Limit = 50,
    cursor: Cursor = None,
    q: Annotated[str | None, Query(max_length=200, description="full-text search")] = None,
) -> FlagPage:
    found = svc.flags.search(
        caller, project, limit=limit, after_key=pagination.decode(cursor), query=q
    )
    if found:
        deprecation.announce(response, deprecation.FLAG_OWNER)
    return FlagPage(
        items=[flag_out(f) for f in found],
        next_cursor=pagination.next_cursor([f.key for f in found], limit),
    )


add_definition_routes(
    router,
    noun="flag",
    collection="/flags",
    service=lambda svc: svc.flags,
    create_model=FlagIn,
    update_model=FlagFields,
    out_model=FlagOut,
    respond=_flag_response,
)


@router.get("/flags/{flag}/history", tags=["history"])
def flag_history(
    project: str, flag: str, svc: Svc, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> AuditPage:
    """Audit entries of the flag's definition and of its configuration in every environment."""
    entries = svc.projects.audit(
        caller,
        project,
        limit=limit,
        before_id=pagination.decode_int(cursor),
        entity_types=("flag", "config"),
        entity_key=flag,
    )
    return AuditPage(
        items=[audit_out(e) for e in entries],
        next_cursor=pagination.next_cursor([str(e.id) for e in entries], limit),
    )


@router.get(_ENV)
def get_config(
    project: str, environment: str, flag: str, svc: Svc, caller: Caller, response: Response
) -> ConfigOut:
    return config_out(svc.flags.get_config(caller, project, environment, flag), response)


@router.put(_ENV)
def put_config(
    project: str,
    environment: str,
    flag: str,
    body: ConfigIn,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
) -> ConfigOut:
    config = svc.flags.put_config(
        caller, project, environment, flag, body.data(), expected, body.comment
    )
    return config_out(config, response)


@router.post(_ENV + "/toggle")
def toggle(
    project: str,
    environment: str,
    flag: str,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
    body: ToggleIn | None = None,
) -> ConfigOut:
    """The kill switch: set `enabled` (or flip it when omitted) in one step."""
    body = body or ToggleIn()
    config = svc.flags.toggle(
        caller, project, environment, flag, body.enabled, expected, body.comment
    )
    return config_out(config, response)


@router.get(_ENV + "/versions", tags=["history"])
def config_versions(
    project: str,
    environment: str,
    flag: str,
    svc: Svc,
    caller: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> list[VersionOut]:
    before = pagination.decode_int(cursor)
    found = svc.flags.config_versions(caller, project, environment, flag, limit, before)
    return [version_out(v) for v in found]


@router.post(_ENV + "/revert", tags=["history"])
def revert_config(
    project: str,
    environment: str,
    flag: str,
    body: RevertIn,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
) -> ConfigOut:
    config = svc.flags.revert_config(
        caller, project, environment, flag, body.version, expected, body.comment
    )
    return config_out(config, response)
