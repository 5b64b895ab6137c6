"""Flags (project-wide definitions) and their per-environment configurations.

Reads return an ``ETag``; updates need ``If-Match`` (428 without, 412 when stale). Toggle and
revert accept ``If-Match`` but do not need it: they are the one-step emergency actions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import TypeAdapter

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
from fader_server.api.security import Caller, IfMatch, IfMatchHeader, Svc, services_of
from fader_server.services.flags import FlagConfig
from fader_server.services.versioning import etag, parse_if_match
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


_CONFIG_JSON = TypeAdapter(ConfigOut)


def config_response(config: FlagConfig) -> Response:
    """The configuration as its answer: the JSON body and its ``ETag``.

    The route encodes the :class:`ConfigOut` itself and returns the finished response, the
    bytes FastAPI would send for the same model (its ``response_model`` serialisation is this
    adapter's, with ``by_alias`` and nothing excluded). Handing FastAPI a model from a plain
    ``def`` route instead makes it validate that model again and, because the route is not a
    coroutine, on a worker thread: a second hop to the thread pool on the busiest reads and
    writes of the admin API. ``response_model=ConfigOut`` stays on each route for the OpenAPI
    document."""
    data = config.data
    body = ConfigOut(
        flag=config.flag,
        environment=config.environment,
        enabled=data.get("enabled", True),
        offVariant=data["offVariant"],
        rules=data.get("rules", []),
        default=data["default"],
        prerequisites=data.get("prerequisites", []),
        version=config.version,
    )
    response = Response(_CONFIG_JSON.dump_json(body, by_alias=True), media_type="application/json")
    response.raw_headers.append((b"etag", etag(config.version).encode("latin-1")))
    return response


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


# The two busiest admin routes take the request and the raw If-Match header rather than the
# `Svc` and `IfMatch` dependencies: FastAPI solves each dependency on every request, and the
# OpenAPI document is the same either way.
@router.get(_ENV, response_model=ConfigOut)
def get_config(
    project: str, environment: str, flag: str, request: Request, caller: Caller
) -> Response:
    config = services_of(request).flags.get_config(caller, project, environment, flag)
    return config_response(config)


@router.put(_ENV, response_model=ConfigOut)
def put_config(
    project: str,
    environment: str,
    flag: str,
    body: ConfigIn,
    request: Request,
    caller: Caller,
    if_match: IfMatchHeader = None,
) -> Response:
    config = services_of(request).flags.put_config(
        caller, project, environment, flag, body.data(), parse_if_match(if_match), body.comment
    )
    return config_response(config)


@router.post(_ENV + "/toggle", response_model=ConfigOut)
def toggle(
    project: str,
    environment: str,
    flag: str,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    body: ToggleIn | None = None,
) -> Response:
    """The kill switch: set `enabled` (or flip it when omitted) in one step."""
    body = body or ToggleIn()
    config = svc.flags.toggle(
        caller, project, environment, flag, body.enabled, expected, body.comment
    )
    return config_response(config)


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


@router.post(_ENV + "/revert", tags=["history"], response_model=ConfigOut)
def revert_config(
    project: str,
    environment: str,
    flag: str,
    body: RevertIn,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
) -> Response:
    config = svc.flags.revert_config(
        caller, project, environment, flag, body.version, expected, body.comment
    )
    return config_response(config)
