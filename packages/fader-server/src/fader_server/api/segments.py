"""Segments: reusable audiences, project-wide (see services/segments.py for why)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from fader_server.api import pagination, problems
from fader_server.api.flags import version_out
from fader_server.api.pagination import Cursor, Limit
from fader_server.api.schemas import (
    RevertIn,
    SegmentFields,
    SegmentIn,
    SegmentOut,
    SegmentPage,
    VersionOut,
)
from fader_server.api.security import Caller, IfMatch, Svc
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
    found = svc.segments.list(caller, project, limit=limit, after_key=pagination.decode(cursor))
    return SegmentPage(
        items=[segment_out(s) for s in found],
        next_cursor=pagination.next_cursor([s.key for s in found], limit),
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_segment(
    project: str, body: SegmentIn, svc: Svc, caller: Caller, response: Response
) -> SegmentOut:
    data = body.data()
    data.pop("key")
    return _respond(svc.segments.create(caller, project, body.key, data, body.comment), response)


@router.get("/{segment}")
def get_segment(
    project: str, segment: str, svc: Svc, caller: Caller, response: Response
) -> SegmentOut:
    return _respond(svc.segments.get(caller, project, segment), response)


@router.put("/{segment}")
def update_segment(
    project: str,
    segment: str,
    body: SegmentFields,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
) -> SegmentOut:
    updated = svc.segments.update(caller, project, segment, body.data(), expected, body.comment)
    return _respond(updated, response)


@router.delete("/{segment}", status_code=status.HTTP_204_NO_CONTENT)
def delete_segment(
    project: str,
    segment: str,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    comment: Annotated[str | None, Query(max_length=2000)] = None,
) -> None:
    svc.segments.delete(caller, project, segment, expected, comment)


@router.get("/{segment}/versions", tags=["history"])
def segment_versions(
    project: str,
    segment: str,
    svc: Svc,
    caller: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> list[VersionOut]:
    before = pagination.decode_int(cursor)
    return [version_out(v) for v in svc.segments.versions(caller, project, segment, limit, before)]


@router.post("/{segment}/revert", tags=["history"])
def revert_segment(
    project: str,
    segment: str,
    body: RevertIn,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
) -> SegmentOut:
    reverted = svc.segments.revert(caller, project, segment, body.version, expected, body.comment)
    return _respond(reverted, response)
