"""OFREP, the OpenFeature Remote Evaluation Protocol (``docs/delivery-protocol.md``): any
OpenFeature SDK evaluates Fader flags with its stock OFREP provider.

Spec: https://github.com/open-feature/protocol ``service/openapi.yaml`` (0.3.0) and
``service/event-streams.yaml`` with ADR-0008 (change notifications over server-sent events).

Keys travel as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (the spec's two
schemes). Server keys see every flag, client keys only ``client_side`` ones. Evaluation errors
have the protocol's shapes (``errorCode``/``errorDetails``); authentication failures and
server faults keep Fader's problem details, which the protocol leaves open. The endpoints are
open to every web origin (CORS, :mod:`fader_server.api.cross_origin`), since browser apps are
the main users of client keys and the keys ride in headers, never in cookies.

The handlers are coroutines that read the body, then do the blocking part (key check on a cache
miss, the snapshot's revision check, evaluation) in one worker-thread hop. Requests whose key
and snapshot are already in memory are answered before routing, by the same functions
(:mod:`fader_server.api.sdk_fast_path`); these handlers answer the rest, errors included.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from fader_server.api.event_stream import EventStream, Opening, opening
from fader_server.delivery import ofrep
from fader_server.delivery.frames import StreamKind
from fader_server.delivery.keys import SdkCaller
from fader_server.delivery.service import Delivery
from fader_server.delivery.snapshots import Snapshot
from fader_server.delivery.stream_keys import StreamKey
from fader_server.errors import NotAuthenticatedError, NotFoundError
from fader_server.storage.ports import TokenKind

PREFIX = "/ofrep/v1"
STREAM_PATH = "/event-stream"
STREAM_GRANT = "ofrep-event-stream"
"""The purpose of the grants in advertised stream URLs (see :mod:`fader_server.delivery.keys`)."""
KEYS = frozenset({TokenKind.SERVER, TokenKind.CLIENT})
_JSON = "application/json"

router = APIRouter(prefix=PREFIX, tags=["ofrep"])
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerAuth",
    description="a server SDK key (fdr_srv_...) or a client key (fdr_cli_...)",
)
_api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="ApiKeyAuth",
    description="a server SDK key or a client key, for OFREP providers configured with X-API-Key",
)


async def credential(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str | None:
    """The key, from either scheme (a coroutine, so it costs no worker thread)."""
    return bearer.credentials if bearer is not None else api_key


Credential = Annotated[str | None, Depends(credential)]


def _delivery(request: Request) -> Delivery:
    found: Delivery = request.app.state.delivery
    return found


def _authenticate(request: Request, dlv: Delivery, secret: str | None) -> SdkCaller:
    caller = dlv.keys.authenticate(secret, KEYS)
    request.state.actor = caller.actor
    return caller


def _current(dlv: Delivery, caller: SdkCaller) -> Snapshot:
    snapshot = dlv.snapshots.current(caller.ref)
    if snapshot is None:
        raise NotFoundError(
            f"environment '{caller.ref.environment}' of project '{caller.ref.project_key}' "
            "no longer exists; create a key for an existing environment"
        )
    return snapshot


async def _body(request: Request, secret: str | None) -> bytes:
    """The request body, after a cheap check that a key was sent at all; reading stops a little
    past the cap, so an oversized body is refused without being held in memory."""
    if not secret:
        raise NotAuthenticatedError(
            "send a server SDK key or a client key as 'Authorization: Bearer <key>' "
            "or 'X-API-Key: <key>'"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > ofrep.MAX_BODY:
            break
    return b"".join(chunks)


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=_JSON, headers=headers)


# ----------------------------------------------------------------- OpenAPI
_CONTEXT_BODY = {
    "required": True,
    "content": {
        _JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "context": {
                        "type": "object",
                        "description": "the evaluation context; `targetingKey` identifies the "
                        "subject (Fader accepts a request without it; splits then fail with "
                        "TARGETING_KEY_MISSING)",
                        "properties": {"targetingKey": {"type": "string"}},
                        "additionalProperties": True,
                    }
                },
            },
            "example": {"context": {"targetingKey": "user-123", "country": "NL"}},
        }
    },
}
_METADATA = {"type": "object", "additionalProperties": {"type": ["boolean", "string", "number"]}}
_SUCCESS = {
    "type": "object",
    "required": ["key", "reason"],
    "properties": {
        "key": {"type": "string"},
        "value": {"description": "absent when the code default applies"},
        "reason": {"enum": ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"]},
        "variant": {"type": "string"},
        "metadata": _METADATA,
    },
}
_FAILURE = {
    "type": "object",
    "required": ["key", "errorCode"],
    "properties": {
        "key": {"type": "string"},
        "errorCode": {
            "enum": ["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"]
        },
        "errorDetails": {"type": "string"},
        "metadata": _METADATA,
    },
}
_NOT_FOUND = {
    "type": "object",
    "required": ["key", "errorCode"],
    "properties": {
        "key": {"type": "string"},
        "errorCode": {"const": "FLAG_NOT_FOUND"},
        "errorDetails": {"type": "string"},
    },
}
_BULK_FAILURE = {
    "type": "object",
    "required": ["errorCode"],
    "properties": {
        "errorCode": {"enum": ["PARSE_ERROR", "INVALID_CONTEXT"]},
        "errorDetails": {"type": "string"},
    },
}
_BULK = {
    "type": "object",
    "required": ["flags"],
    "properties": {
        "flags": {"type": "array", "items": {"anyOf": [_SUCCESS, _FAILURE]}},
        "metadata": _METADATA,
        "eventStreams": {
            "type": "array",
            "description": "where to hear of changes: an SSE endpoint relative to the OFREP "
            "base URL's origin, carrying a grant (treat it as a secret)",
            "items": {"type": "object"},
        },
    },
}
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no key, or an unknown, expired or revoked one (problem details)"},
    403: {"description": "an admin or user token: OFREP takes SDK keys (problem details)"},
}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {_JSON: {"schema": schema}}}


# --------------------------------------------------------------- endpoints
@router.post(
    "/evaluate/flags/{flag}",
    summary="Evaluate one flag (OFREP)",
    openapi_extra={"requestBody": _CONTEXT_BODY},
    response_class=Response,
    responses={
        200: {"description": "the evaluation", **_content(_SUCCESS)},
        400: {"description": "the context is unusable, or evaluation failed", **_content(_FAILURE)},
        404: {
            "description": "no such flag, or one a client key may not see",
            **_content(_NOT_FOUND),
        },
        **_AUTH_ERRORS,
    },
)
async def evaluate_flag(
    request: Request,
    credential: Credential,
    flag: Annotated[str, Path(description="the flag key (the spec calls it `key`)")],
) -> Response:
    body = await _body(request, credential)
    return await run_in_threadpool(_evaluate_flag, request, flag, credential, body)


def _evaluate_flag(request: Request, flag_key: str, secret: str | None, body: bytes) -> Response:
    dlv = _delivery(request)
    caller = _authenticate(request, dlv, secret)
    try:
        context = ofrep.read_context(body)
    except ofrep.RequestError as exc:
        failure = {"key": flag_key, "errorCode": exc.code, "errorDetails": exc.details}
        return _json(400, ofrep.encode(failure))
    snapshot = _current(dlv, caller)
    status, payload = ofrep.evaluate_flag(
        snapshot, flag_key, context, client_only=caller.kind is TokenKind.CLIENT
    )
    return _json(status, payload)


@router.post(
    "/evaluate/flags",
    summary="Evaluate every flag the key may see (OFREP bulk)",
    openapi_extra={"requestBody": _CONTEXT_BODY},
    response_class=Response,
    responses={
        200: {
            "description": "every flag's evaluation; per-flag failures are items of `flags`",
            "headers": {"ETag": {"schema": {"type": "string"}}},
            **_content(_BULK),
        },
        304: {"description": "`If-None-Match` names the current ETag: nothing changed"},
        400: {"description": "the context is unusable", **_content(_BULK_FAILURE)},
        **_AUTH_ERRORS,
    },
)
async def evaluate_flags(
    request: Request,
    credential: Credential,
    if_none_match: Annotated[
        str | None,
        Header(alias="If-None-Match", description="the ETag of the evaluation you hold"),
    ] = None,
    flag_config_etag: Annotated[
        str | None,
        Query(
            alias="flagConfigEtag",
            description="from a change notification; accepted and not needed (every request "
            "is evaluated against the current configuration)",
        ),
    ] = None,
    flag_config_last_modified: Annotated[
        str | None,
        Query(alias="flagConfigLastModified", description="as flagConfigEtag"),
    ] = None,
) -> Response:
    body = await _body(request, credential)
    return await run_in_threadpool(_evaluate_flags, request, credential, body, if_none_match)


def _evaluate_flags(
    request: Request, secret: str | None, body: bytes, if_none_match: str | None
) -> Response:
    dlv = _delivery(request)
    caller = _authenticate(request, dlv, secret)
    try:
        context = ofrep.read_context(body)
    except ofrep.RequestError as exc:
        return _json(400, ofrep.encode({"errorCode": exc.code, "errorDetails": exc.details}))
    assert secret is not None  # authenticated
    grant = dlv.keys.grant(secret, caller, STREAM_GRANT)
    bulk = ofrep.evaluate_flags(
        _current(dlv, caller),
        context,
        client_only=caller.kind is TokenKind.CLIENT,
        event_stream_uri=f"{request.scope.get('root_path', '')}{PREFIX}{STREAM_PATH}?grant={grant}",
    )
    headers = {"ETag": bulk.etag}
    if ofrep.not_modified(if_none_match, bulk.etag):
        return Response(status_code=304, headers=headers)
    return _json(200, bulk.body, headers)


@router.get(
    STREAM_PATH,
    summary="Change notifications for OFREP clients (server-sent events)",
    response_class=EventStream,
    status_code=200,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": 'events `{"type": "refetchEvaluation", "etag": ...}`: re-fetch the '
            "bulk evaluation; the first one on connecting (skipped when `Last-Event-ID` names "
            "the current version); `: heartbeat` comments keep the stream alive",
        },
        **_AUTH_ERRORS,
    },
)
async def event_stream(
    request: Request,
    credential: Credential,
    grant: Annotated[
        str | None,
        Query(description="the grant from a bulk response's `eventStreams` (or send a key)"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="the id of the last event received"),
    ] = None,
) -> EventStream:
    """A notification on connecting closes the gap between the client's last bulk fetch and
    this connection (a change in between would otherwise go unheard); a client resuming at the
    current version gets none. Then one per new version, heartbeats in between."""
    caller, start = await run_in_threadpool(
        _stream_start, request, credential, grant, last_event_id
    )
    key = StreamKey(caller.token_id, caller.expires_at)
    return EventStream(_delivery(request), start, StreamKind.OFREP, key)


def _stream_start(
    request: Request, secret: str | None, grant: str | None, last_event_id: str | None
) -> tuple[SdkCaller, Opening]:
    """In a worker thread: authentication, the snapshot's read and the first notification's
    serialisation, never on the loop."""
    dlv = _delivery(request)
    if grant is not None and not secret:
        caller = dlv.keys.authenticate_grant(grant, STREAM_GRANT, KEYS)
        request.state.actor = caller.actor
    else:
        caller = _authenticate(request, dlv, secret)
    return caller, opening(_current(dlv, caller), _notification, last_event_id)


def _notification(snapshot: Snapshot) -> tuple[bytes]:
    return (ofrep.refetch_event(snapshot),)
