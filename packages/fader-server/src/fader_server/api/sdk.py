"""The SDK delivery endpoints (``docs/delivery-protocol.md``): polling, streaming, events, and
the flagd export. Authenticated by SDK keys (:mod:`fader_server.delivery.keys`), never by admin
tokens, so a server that only serves flags needs no admin credential.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ConfigDict, Field

from fader_engine.flagd.export import ExportError
from fader_server.api.event_stream import EventStream, Opening, opening
from fader_server.api.schemas import Strict
from fader_server.delivery.frames import StreamKind
from fader_server.delivery.keys import SdkCaller
from fader_server.delivery.service import Delivery
from fader_server.delivery.snapshots import Snapshot
from fader_server.delivery.stream_keys import StreamKey
from fader_server.errors import FieldProblem, NotExportableError, NotFoundError
from fader_server.storage.ports import SdkEvent, TokenKind

router = APIRouter(prefix="/api/v1/sdk", tags=["sdk"])
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="sdkKey",
    description="a server SDK key (fdr_srv_...); the events endpoint also takes client keys",
)
_SERVER = frozenset({TokenKind.SERVER})
_ANY_SDK = frozenset({TokenKind.SERVER, TokenKind.CLIENT})
MAX_BATCH = 1000


def delivery(request: Request) -> Delivery:
    found: Delivery = request.app.state.delivery
    return found


Dlv = Annotated[Delivery, Depends(delivery)]
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _caller(
    request: Request, dlv: Delivery, bearer: Bearer, kinds: frozenset[TokenKind]
) -> SdkCaller:
    caller = dlv.keys.authenticate(bearer.credentials if bearer else None, kinds)
    request.state.actor = caller.actor
    return caller


def server_key(request: Request, dlv: Dlv, bearer: Bearer) -> SdkCaller:
    return _caller(request, dlv, bearer, _SERVER)


def any_sdk_key(request: Request, dlv: Dlv, bearer: Bearer) -> SdkCaller:
    return _caller(request, dlv, bearer, _ANY_SDK)


ServerKey = Annotated[SdkCaller, Depends(server_key)]
AnySdkKey = Annotated[SdkCaller, Depends(any_sdk_key)]


def _current(dlv: Delivery, caller: SdkCaller) -> Snapshot:
    snapshot = dlv.snapshots.current(caller.ref)
    if snapshot is None:
        raise NotFoundError(
            f"environment '{caller.ref.environment}' of project '{caller.ref.project_key}' "
            "no longer exists; create a key for an existing environment"
        )
    return snapshot


def _not_modified(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


class SnapshotOut(Strict):
    project: str
    environment: str
    version: int = Field(description="increases with every change to the environment")
    document: dict[str, Any] = Field(description="a Fader document (docs/flag-format.md)")


IfNoneMatch = Annotated[
    str | None, Header(alias="If-None-Match", description="the ETag you hold: 304 if current")
]


@router.get(
    "/flags",
    summary="The environment's flags (polling)",
    response_model=SnapshotOut,
    responses={304: {"description": "the snapshot named by If-None-Match is still current"}},
)
def poll(caller: ServerKey, dlv: Dlv, if_none_match: IfNoneMatch = None) -> Response:
    snapshot = _current(dlv, caller)
    headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
    if _not_modified(if_none_match, snapshot.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(snapshot.body, media_type="application/json", headers=headers)


@router.get(
    "/stream",
    summary="The environment's flags, streamed (server-sent events)",
    response_class=EventStream,
    status_code=200,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "`snapshot` first, then a `change` event per new version (or a "
            "`patch` event, with `patches=true`); `: heartbeat` comments keep the stream alive",
        }
    },
)
async def stream(
    caller: ServerKey,
    dlv: Dlv,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="the last version received: resume from it"),
    ] = None,
    patches: Annotated[
        bool,
        Query(
            description="send only the changed flags and segments when the client holds the "
            "version they apply to (`event: patch`); the whole snapshot otherwise"
        ),
    ] = False,
) -> EventStream:
    """A resuming client that already holds the current version gets no snapshot; one that
    holds an older version gets the current one (a snapshot is complete, so there is nothing
    to replay)."""
    start = await asyncio.to_thread(_stream_start, dlv, caller, last_event_id)
    kind = StreamKind.PATCHES if patches else StreamKind.SNAPSHOTS
    key = StreamKey(caller.token_id, caller.expires_at)
    return EventStream(dlv, start, kind, key)


def _stream_start(dlv: Delivery, caller: SdkCaller, last_event_id: str | None) -> Opening:
    """In a worker thread: the snapshot's read and its serialisation, never on the loop."""
    return opening(_current(dlv, caller), _snapshot_event, last_event_id)


def _snapshot_event(snapshot: Snapshot) -> tuple[bytes, ...]:
    return snapshot.sse_parts("snapshot")


_EPOCH_MAX = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the largest instant storage takes
Timestamp = Annotated[
    float,
    Field(
        ge=0,
        le=_EPOCH_MAX,
        description="seconds since the Unix epoch, when the SDK saw it (kept for reading; "
        "the server's receive time decides which plan window the event counts in)",
    ),
]


class EventIn(Strict):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ExposureIn(EventIn):
    kind: Literal["exposure"]
    flag: Annotated[str, Field(min_length=1, max_length=128)]
    variant: Annotated[str, Field(max_length=128)] | None = None
    reason: Annotated[str, Field(max_length=40)] | None = None
    targeting_key: Annotated[str, Field(max_length=256)] | None = None
    timestamp: Timestamp


class CustomIn(EventIn):
    kind: Literal["custom"]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    value: float | None = None
    flag: Annotated[str, Field(max_length=128)] | None = None
    variant: Annotated[str, Field(max_length=128)] | None = None
    targeting_key: Annotated[str, Field(max_length=256)] | None = None
    timestamp: Timestamp


class EventBatchIn(Strict):
    events: list[Annotated[ExposureIn | CustomIn, Field(discriminator="kind")]] = Field(
        max_length=MAX_BATCH
    )


class RefusedEvent(Strict):
    index: int = Field(description="the event's position in the batch, from 0")
    reason: str


class EventsAccepted(Strict):
    accepted: int = Field(description="events stored")
    refused: list[RefusedEvent] | None = Field(
        default=None,
        description="events not stored, when there are any (a client key reporting about a "
        "flag that is not client_side, or does not exist); the others were stored",
    )


def _event(item: ExposureIn | CustomIn) -> SdkEvent:
    at = datetime.fromtimestamp(item.timestamp, UTC)
    if isinstance(item, ExposureIn):
        return SdkEvent(
            "exposure", item.flag, item.variant, item.reason, None, None, item.targeting_key, at
        )
    return SdkEvent(
        "custom", item.flag, item.variant, None, item.name, item.value, item.targeting_key, at
    )


@router.post(
    "/events",
    summary="Report exposures and custom events (server or client key)",
    status_code=status.HTTP_202_ACCEPTED,
    response_model_exclude_none=True,
    responses={
        429: {
            "description": "the key reported more events than its rate limit allows; retry "
            "after `Retry-After` seconds (category `retryable`)"
        }
    },
)
def events(batch: EventBatchIn, caller: AnySdkKey, dlv: Dlv) -> EventsAccepted:
    """Stored at once, or refused whole with 429 when over the key's rate limit. A client key's
    events about flags that are not `client_side` are refused one by one (`refused`); the
    rest of the batch is stored (docs/delivery-protocol.md)."""
    recorded = dlv.record_events(caller, [_event(item) for item in batch.events])
    refused = [RefusedEvent(index=r.index, reason=r.reason) for r in recorded.refused]
    return EventsAccepted(accepted=recorded.accepted, refused=refused or None)


@router.get(
    "/flagd",
    summary="The environment's flags as a flagd flag-definition document",
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}}},
        304: {"description": "the document named by If-None-Match is still current"},
    },
)
def flagd(caller: ServerKey, dlv: Dlv, if_none_match: IfNoneMatch = None) -> Response:
    snapshot = _current(dlv, caller)
    headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
    if _not_modified(if_none_match, snapshot.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    try:
        body = snapshot.flagd_body
    except ExportError as exc:
        raise NotExportableError(
            "this environment uses constructs flagd cannot express (listed in `errors`); "
            "change them, or evaluate with Fader's SDK or OFREP instead",
            [FieldProblem(p.path, p.message) for p in exc.problems],
        ) from exc
    return Response(body, media_type="application/json", headers=headers)
