"""Segments: reusable audiences, project-wide (see services/segments.py for why)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from fader_server.api import pagination, problems
from fader_server.api.definitions import add_definition_routes
from fader_server.api.pagination import Cursor, Limit
from fader_server.api.schemas import (
    SegmentFields,
    SegmentIn,
    SegmentOut,
    SegmentPage,
)
from fader_server.api.security import Caller, Svc
from fader_server.services.versioning import etag
from fader_server.storage.ports import Resource

router = APIRouter(
    prefix="/api/v1/projects/{project}/segments", tags=["segments"], responses=problems.API_ERRORS
)


def segment_out(segment: Resource) -> SegmentOut:
    data = segment.data
    return SegmentOut(
        key=segment.key,
        name=data.get("name"),
        description=data.get("description"),
        included=data.get("included", []),
        excluded=data.get("excluded", []),
        rules=data.get("rules", []),
        version=segment.version,
        updated_at=segment.updated_at,
    )


def _respond(segment: Resource, response: Response) -> SegmentOut:
    response.headers["ETag"] = etag(segment.version)
    return segment_out(segment)


@router.get("")
def list_segments(
    project: str, svc: Svc, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> SegmentPage:
    found = svc.segments.search(caller, project, limit=limit, after_key=pagination.decode(cursor))
    return SegmentPage(
        items=[segment_out(s) for s in found],
        next_cursor=pagination.next_cursor([s.key for s in found], limit),
    )


add_definition_routes(
    router,
    noun="segment",
    collection="",
    service=lambda svc: svc.segments,
    create_model=SegmentIn,
    update_model=SegmentFields,
    out_model=SegmentOut,
    respond=_respond,
)
