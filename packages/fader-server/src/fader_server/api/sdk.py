"""The SDK delivery endpoints (``docs/delivery-protocol.md``): polling, streaming, summaries (and
the deprecated events), and the flagd export. Authenticated by SDK keys
(:mod:`fader_server.delivery.keys`), never by admin tokens, so a server that only serves flags
needs no admin credential.
"""

from __future__ import annotations

import asyncio
from base64 import b64decode
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator
from starlette.concurrency import run_in_threadpool

from fader_engine.flagd.export import ExportError
from fader_engine.sketches import DistinctSketch, SketchError
from fader_server.api import config_bodies, deprecation
from fader_server.api.event_stream import EventStream, Opening, opening
from fader_server.api.schemas import Strict
from fader_server.delivery.frames import StreamKind
from fader_server.delivery.keys import SdkCaller
from fader_server.delivery.sdk_events import LegacyEvent, ListName, Summary
from fader_server.delivery.service import Delivery
from fader_server.delivery.snapshots import Snapshot
from fader_server.delivery.stream_keys import StreamKey
from fader_server.errors import FieldProblem, NotExportableError, NotFoundError
from fader_server.storage.ports import TokenKind
from fader_server.storage.ports.usage import EVALUATIONS, DebugEvent, UsageCount

router = APIRouter(prefix="/api/v1/sdk", tags=["sdk"])
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="sdkKey",
    description="a server SDK key (fdr_srv_...); summaries and events also take client keys",
)
_SERVER = frozenset({TokenKind.SERVER})
_ANY_SDK = frozenset({TokenKind.SERVER, TokenKind.CLIENT})
MAX_BATCH = 1000
"""Items per list of a summary (and events per deprecated batch)."""


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


class SnapshotOut(Strict):
    project: str
    environment: str
    version: int = Field(description="increases with every change to the environment")
    document: dict[str, Any] = Field(description="a Fader document (docs/flag-format.md)")


IfNoneMatch = Annotated[
    str | None, Header(alias="If-None-Match", description="the ETag you hold: 304 if current")
]
AcceptEncoding = Annotated[
    str | None,
    Header(
        alias="Accept-Encoding",
        description="`gzip`: the body gzip-compressed (`Content-Encoding: gzip`), same ETag",
    ),
]


@router.get(
    "/flags",
    summary="The environment's flags (polling)",
    response_model=SnapshotOut,
    responses={304: {"description": "the snapshot named by If-None-Match is still current"}},
)
def poll(
    caller: ServerKey,
    dlv: Dlv,
    if_none_match: IfNoneMatch = None,
    accept_encoding: AcceptEncoding = None,
) -> Response:
    """Usually answered before this route runs (:mod:`fader_server.api.sdk_fast_path`), the
    same way: this is the path of a key or snapshot the caches must check first."""
    found = config_bodies.answer(
        _current(dlv, caller),
        flagd=False,
        if_none_match=if_none_match,
        accept_encoding=accept_encoding,
    )
    assert found is not None  # built_only is off
    return _configuration(found)


def _configuration(found: config_bodies.Answer) -> Response:
    if found.status == status.HTTP_304_NOT_MODIFIED:
        return Response(status_code=found.status, headers=found.headers)
    return Response(found.body, media_type="application/json", headers=found.headers)


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
        description="seconds since the Unix epoch, by the SDK's clock (informative: the "
        "server's receive time decides which minute, and so which plan window, it counts in)",
    ),
]
FlagKey = Annotated[str, Field(min_length=1, max_length=128)]
Variant = Annotated[str, Field(max_length=128)]
Reason = Annotated[str, Field(max_length=40)]
TargetingKey = Annotated[str, Field(max_length=256)]
MetricName = Annotated[str, Field(min_length=1, max_length=200)]
MAX_COUNT = 2**53
"""The largest count an item may carry (every integer up to it is exact in a double)."""
Count = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Sum = Annotated[float, Field(description="finite; rows saturate at ±1e306 rather than overflow")]
SumOfSquares = Annotated[float, Field(ge=0, description="finite; rows saturate at 1e306")]


class ItemIn(Strict):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# ------------------------------------------------------------------- summaries
def _sketch(text: str) -> str:
    """Refuse what is not a sketch here, so the 422 names the item (its path)."""
    try:
        DistinctSketch.decode(text)
    except SketchError as error:
        raise ValueError(f"not a distinct-context sketch: {error}") from None
    return text


class ContextsIn(ItemIn):
    exact: Annotated[int, Field(ge=0, le=MAX_COUNT)] | None = Field(
        default=None,
        description="the exact number of distinct targeting keys, when the SDK counted them "
        "exactly (informative; the sketch is what the server keeps)",
    )
    sketch: Annotated[str, Field(max_length=8192), AfterValidator(_sketch)] = Field(
        description="base64 of the zlib-compressed 1,024 registers of a HyperLogLog sketch of "
        "the targeting keys (docs/events.md, section 2)"
    )


class EvaluationIn(ItemIn):
    flag: FlagKey
    variant: Variant | None = Field(default=None, description="null: no variant was served")
    reason: Reason | None = None
    # (contexts before count: count's check reads it)
    contexts: ContextsIn | None = None
    count: Annotated[int, Field(ge=0, le=MAX_COUNT)] = Field(
        description="evaluations in the interval; 0 only on an item that brings `contexts` "
        "(SDKs send distinct contexts once a minute, on an item of their flag and variant)"
    )

    @field_validator("count")
    @classmethod
    def _counts_something(cls, count: int, info: ValidationInfo) -> int:
        if count == 0 and info.data.get("contexts") is None:
            raise ValueError("count must be at least 1 on an item without contexts")
        return count


class MetricIn(ItemIn):
    name: MetricName
    flag: Annotated[str, Field(max_length=128)] | None = Field(
        default=None, description='the flag measured (null or "": none; it feeds no gate then)'
    )
    variant: Variant | None = None
    count: Count
    sum: Sum
    sum_squares: SumOfSquares


class DebugEventIn(ItemIn):
    flag: FlagKey
    variant: Variant | None = None
    reason: Reason = ""
    targeting_key: TargetingKey | None = None
    timestamp: Timestamp


class SummaryIn(Strict):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{16,64}$",
        description="a random id the SDK gives each request (and keeps when it sends the same "
        "request again): the server counts a summary once per key and id, for a day",
    )
    start: Timestamp
    end: Timestamp
    evaluations: list[EvaluationIn] = Field(default_factory=list, max_length=MAX_BATCH)
    metrics: list[MetricIn] = Field(default_factory=list, max_length=MAX_BATCH)
    events: list[DebugEventIn] = Field(default_factory=list, max_length=MAX_BATCH)


class RefusedItem(Strict):
    list: ListName
    index: int = Field(description="the item's position in its list, from 0")
    reason: str


class SummaryAccepted(Strict):
    accepted: int = Field(description="items stored")
    duplicate: bool = Field(
        default=False,
        description="this key delivered a summary with this id before: nothing was added again",
    )
    refused: list[RefusedItem] = Field(
        description="items not stored (a client key reporting about a flag that is not "
        "client_side, or does not exist); the others were stored. Do not send them again."
    )


def _summary(body: SummaryIn) -> Summary:
    return Summary(
        [
            UsageCount(
                item.flag,
                EVALUATIONS,
                item.variant or "",
                item.count,
                # as sent: the validator checked it decodes to a sketch
                contexts=None if item.contexts is None else b64decode(item.contexts.sketch),
            )
            for item in body.evaluations
        ],
        [
            UsageCount(
                item.flag or "",
                item.name,
                item.variant or "",
                item.count,
                item.sum,
                item.sum_squares,
            )
            for item in body.metrics
        ],
        [
            DebugEvent(
                item.flag,
                item.variant,
                item.reason,
                item.targeting_key,
                datetime.fromtimestamp(item.timestamp, UTC),
            )
            for item in body.events
        ],
    )


RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "the key reported more items than its rate limit allows; retry after "
        "`Retry-After` seconds (category `retryable`)"
    }
}


@router.post(
    "/summaries",
    summary="Report what an SDK counted over one interval (server or client key)",
    status_code=status.HTTP_202_ACCEPTED,
    responses=RATE_LIMITED,
)
async def summaries(body: SummaryIn, caller: AnySdkKey, dlv: Dlv) -> SummaryAccepted:
    """Evaluations per flag and variant (with a distinct-context sketch), custom metrics
    (count, sum, sum of squares) and debug events, added to the rollups of the minute and hour
    the server received them in, in one transaction (docs/events.md, section 2). Refused whole
    with 429 when over the key's rate limit; a client key's items about flags that are not
    `client_side` are refused one by one (`refused`), the rest is stored."""
    # Checks (rate limit, a client key's flags) in a worker thread; then the wait for the
    # batch's commit holds no thread (docs/events.md: summaries are written in groups).
    queued = await run_in_threadpool(dlv.submit_summary, caller, _summary(body), body.id)
    recorded = await asyncio.wrap_future(queued)
    refused = [RefusedItem(list=r.list, index=r.index, reason=r.reason) for r in recorded.refused]
    return SummaryAccepted(
        accepted=recorded.accepted, refused=refused, duplicate=recorded.duplicate
    )


# --------------------------------------------------------- events (deprecated)
class ExposureIn(ItemIn):
    kind: Literal["exposure"]
    flag: FlagKey
    variant: Variant | None = None
    reason: Reason | None = None
    targeting_key: TargetingKey | None = None
    timestamp: Timestamp


class CustomIn(ItemIn):
    kind: Literal["custom"]
    name: MetricName
    value: float | None = None
    flag: Annotated[str, Field(max_length=128)] | None = None
    variant: Variant | None = None
    targeting_key: TargetingKey | None = None
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


def _event(item: ExposureIn | CustomIn) -> LegacyEvent:
    if isinstance(item, ExposureIn):
        return LegacyEvent("exposure", item.flag, item.variant, targeting_key=item.targeting_key)
    return LegacyEvent("custom", item.flag, item.variant, item.name, item.value, item.targeting_key)


@router.post(
    "/events",
    summary="Report exposures and custom events (deprecated: use /summaries)",
    status_code=status.HTTP_202_ACCEPTED,
    response_model_exclude_none=True,
    responses=RATE_LIMITED,
    deprecated=True,
)
def events(batch: EventBatchIn, caller: AnySdkKey, dlv: Dlv, response: Response) -> EventsAccepted:
    """For SDKs older than `/summaries`: each exposure is added to the rollups as one
    evaluation, each custom event as one measurement (docs/events.md, section 2). Limits and
    refusals as for summaries, per event; answers carry `Deprecation`, `Sunset` and `Warning`
    headers (docs/delivery-protocol.md)."""
    deprecation.announce(response, deprecation.SDK_EVENTS)
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
def flagd(
    caller: ServerKey,
    dlv: Dlv,
    if_none_match: IfNoneMatch = None,
    accept_encoding: AcceptEncoding = None,
) -> Response:
    try:
        found = config_bodies.answer(
            _current(dlv, caller),
            flagd=True,
            if_none_match=if_none_match,
            accept_encoding=accept_encoding,
        )
    except ExportError as exc:
        raise NotExportableError(
            "this environment uses constructs flagd cannot express (listed in `errors`); "
            "change them, or evaluate with Fader's SDK or OFREP instead",
            [FieldProblem(p.path, p.message) for p in exc.problems],
        ) from exc
    assert found is not None  # built_only is off
    return _configuration(found)
