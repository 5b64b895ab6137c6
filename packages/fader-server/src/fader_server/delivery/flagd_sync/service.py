"""The three RPCs of ``flagd.sync.v1.FlagSyncService``, served from Fader's delivery machinery.

``SyncFlags`` is a stream like ``GET /api/v1/sdk/stream``, in flagd's shape: the environment's
whole flagd document when it opens, then a whole new document after every change of that
environment committed on any replica (flagd streams no patches). It is a subscriber of the same
change hub (:class:`~fader_server.delivery.hub.ChangeHub`) as the event streams, so a change is
read and built once per process, announced across replicas by the store's change feed, and the
stream ends when its key stops working (revoked, expired, its environment deleted), with
``UNAUTHENTICATED``: the provider reconnects as after any ended stream and is refused.

``FetchAllFlags`` answers the current document once. ``GetMetadata`` answers an empty context:
providers merge what it holds into every evaluation context, and any attribute Fader added
would make them disagree with Fader's SDK; the Python provider calls it without its selector
header, so it takes no key, and it reveals nothing.

Refusals use gRPC status codes (the protocol has no problem details): no or an unknown key,
revoked or expired: ``UNAUTHENTICATED``; a client key or an admin token: ``PERMISSION_DENIED``;
the key's environment gone: ``NOT_FOUND``; a document flagd cannot express:
``FAILED_PRECONDITION``, naming each construct; the database unreachable: ``UNAVAILABLE``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import Enum
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import struct_pb2

from fader_engine.flagd.export import ExportError
from fader_server.delivery.flagd_sync import credentials, sync_pb2
from fader_server.delivery.flagd_sync.documents import FlagdDocument, FlagdDocuments
from fader_server.delivery.hub import Subscription
from fader_server.delivery.keys import SdkCaller
from fader_server.delivery.service import Delivery
from fader_server.delivery.snapshots import Snapshot
from fader_server.delivery.stream_keys import StreamKey
from fader_server.errors import (
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
    StorageUnavailableError,
)
from fader_server.logs import get_logger
from fader_server.storage.ports import TokenKind

SERVICE = sync_pb2.DESCRIPTOR.services_by_name["FlagSyncService"].full_name
_SERVER = frozenset({TokenKind.SERVER})
_HOW = (
    "send a server SDK key (fdr_srv_...) as the provider's selector "
    "(it travels as the flagd-selector header and the request's selector field)"
)
MAX_DETAIL = 2000
"""Characters of a status message: it travels in a header, which clients cap (8 KiB)."""
_KEY_ENDED = (
    "the key stopped working (revoked, expired, or its environment deleted); "
    "create a new server SDK key"
)
_INTERNAL = "the server failed to answer; it logged why (flagd_sync_failed)"
T = TypeVar("T")
_EMPTY_METADATA = sync_pb2.GetMetadataResponse(metadata=struct_pb2.Struct())


class _Ended(Enum):
    KEY = "key"
    ENVIRONMENT = "environment"


class FlagSync:
    """The service's handlers (registered by :func:`handler`); event-loop only."""

    def __init__(self, delivery: Delivery) -> None:
        self._dlv = delivery
        self._documents = FlagdDocuments()
        self._log = get_logger()

    async def sync_flags(
        self, request: sync_pb2.SyncFlagsRequest, context: Any
    ) -> AsyncIterator[bytes]:
        caller = await self._caller(request.selector, context, "SyncFlags")
        first = await self._snapshot(caller, context)
        document = await self._document(first, context)
        key = StreamKey(caller.token_id, caller.expires_at)
        self._log.info(
            "flagd_sync_stream_opened",
            actor=caller.actor,
            project=caller.ref.project_key,
            environment=caller.ref.environment,
            version=first.version,
        )
        async with self._dlv.hub.subscribe(first.ref, first.version, key) as subscription:
            yield document.sync_message
            held = first.version
            while True:
                update = await _next(subscription, held)
                if isinstance(update, _Ended):
                    await self._end(context, caller, update)
                document = await self._document(update, context)
                yield document.sync_message
                held = update.version

    async def fetch_all_flags(
        self, request: sync_pb2.FetchAllFlagsRequest, context: Any
    ) -> sync_pb2.FetchAllFlagsResponse:
        caller = await self._caller(request.selector, context, "FetchAllFlags")
        document = await self._document(await self._snapshot(caller, context), context)
        return sync_pb2.FetchAllFlagsResponse(flag_configuration=document.text)

    async def get_metadata(
        self, _request: sync_pb2.GetMetadataRequest, _context: Any
    ) -> sync_pb2.GetMetadataResponse:
        return _EMPTY_METADATA

    async def _caller(self, selector: str, context: Any, rpc: str) -> SdkCaller:
        """The server key's caller, or the RPC ends with the status that says why not."""
        key = credentials.presented_key(selector, context.invocation_metadata())
        try:
            if key is None:
                raise NotAuthenticatedError("no key; " + _HOW)
            if len(key) > credentials.MAX_KEY_LENGTH:
                raise NotAuthenticatedError("the key is not valid; " + _HOW)
            return await asyncio.to_thread(self._dlv.keys.authenticate, key, _SERVER)
        except NotAuthenticatedError as exc:
            code, detail = grpc.StatusCode.UNAUTHENTICATED, _for_grpc(exc.detail)
        except PermissionDeniedError as exc:
            code, detail = grpc.StatusCode.PERMISSION_DENIED, exc.detail
        except NotFoundError as exc:
            code, detail = grpc.StatusCode.NOT_FOUND, exc.detail
        except StorageUnavailableError as exc:
            code, detail = grpc.StatusCode.UNAVAILABLE, exc.detail
        self._log.info("flagd_sync_refused", rpc=rpc, status=code.name)
        return await _abort(context, code, detail)

    async def _snapshot(self, caller: SdkCaller, context: Any) -> Snapshot:
        try:
            snapshot = await asyncio.to_thread(self._dlv.snapshots.current, caller.ref)
        except StorageUnavailableError as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, exc.detail)
        if snapshot is None:
            await _abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"environment '{caller.ref.environment}' of project "
                f"'{caller.ref.project_key}' no longer exists; "
                "create a key for an existing environment",
            )
        return snapshot

    async def _document(self, snapshot: Snapshot, context: Any) -> FlagdDocument:
        try:
            return await self._documents.of(snapshot)
        except ExportError as exc:
            problems = "; ".join(f"{p.path}: {p.message}" for p in exc.problems)
            await _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                "this environment uses constructs flagd cannot express; change them, or "
                f"evaluate with Fader's SDK or OFREP instead: {problems}",
            )

    async def _end(self, context: Any, caller: SdkCaller, why: _Ended) -> NoReturn:
        """End the stream: its key stopped working, or its environment is gone."""
        if why is _Ended.KEY:
            code, detail = grpc.StatusCode.UNAUTHENTICATED, _KEY_ENDED
        else:
            code = grpc.StatusCode.NOT_FOUND
            detail = f"environment '{caller.ref.environment}' was deleted"
        self._log.info(
            "flagd_sync_stream_ended",
            actor=caller.actor,
            project=caller.ref.project_key,
            environment=caller.ref.environment,
            status=code.name,
        )
        await _abort(context, code, detail)


async def _next(subscription: Subscription, held: int) -> Snapshot | _Ended:
    """The first snapshot newer than `held`, or why the stream must end instead."""
    topic, hold = subscription.topic, subscription.hold
    if hold.ended.done():
        return _Ended.KEY
    newer = asyncio.ensure_future(topic.newer_than(held, None))
    waiting: set[asyncio.Future[Any]] = {newer, hold.ended}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not newer.done():
            newer.cancel()
    if hold.ended.done():
        return _Ended.KEY
    update = newer.result()
    return _Ended.ENVIRONMENT if update is None else update.snapshot


async def _abort(context: Any, code: grpc.StatusCode, detail: str) -> NoReturn:
    await context.abort(code, detail[:MAX_DETAIL])
    raise AssertionError("ServicerContext.abort returned")  # it raises, always


def _for_grpc(detail: str) -> str:
    """An HTTP-flavoured refusal of :class:`~fader_server.delivery.keys.SdkKeys` with the
    advice for flag sync instead ("...; send ... as 'Authorization: Bearer <key>'")."""
    reason, _, advice = detail.partition("; ")
    return f"{reason}; {_HOW}" if advice.startswith("send ") else detail


def _as_is(message: bytes) -> bytes:
    """The stream's serialiser: its messages are serialised already (:mod:`.documents`)."""
    return message


def _guarded_stream(
    behaviour: Callable[[Any, Any], AsyncIterator[bytes]],
) -> Callable[[Any, Any], AsyncIterator[bytes]]:
    """`behaviour`, with an unexpected failure logged as a structured line (gRPC would print a
    plain traceback) and answered ``INTERNAL``."""

    async def guarded(request: Any, context: Any) -> AsyncIterator[bytes]:
        try:
            async for message in behaviour(request, context):
                yield message
        except grpc.aio.AbortError:
            raise
        except Exception:
            get_logger().exception("flagd_sync_failed", rpc=behaviour.__name__)
            await _abort(context, grpc.StatusCode.INTERNAL, _INTERNAL)

    return guarded


def _guarded(behaviour: Callable[[Any, Any], Awaitable[T]]) -> Callable[[Any, Any], Awaitable[T]]:
    """`behaviour`, with an unexpected failure logged and answered ``INTERNAL``."""

    async def guarded(request: Any, context: Any) -> T:
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception:
            get_logger().exception("flagd_sync_failed", rpc=behaviour.__name__)
            await _abort(context, grpc.StatusCode.INTERNAL, _INTERNAL)

    return guarded


def handler(service: FlagSync) -> Any:
    """The generic RPC handler of the service, for ``grpc.aio.Server.add_generic_rpc_handlers``.

    Registered here rather than through the generated ``add_FlagSyncServiceServicer_to_server``
    because that one serialises every streamed message per stream."""
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "SyncFlags": grpc.unary_stream_rpc_method_handler(
                _guarded_stream(service.sync_flags),
                request_deserializer=sync_pb2.SyncFlagsRequest.FromString,
                response_serializer=_as_is,
            ),
            "FetchAllFlags": grpc.unary_unary_rpc_method_handler(
                _guarded(service.fetch_all_flags),
                request_deserializer=sync_pb2.FetchAllFlagsRequest.FromString,
                response_serializer=sync_pb2.FetchAllFlagsResponse.SerializeToString,
            ),
            "GetMetadata": grpc.unary_unary_rpc_method_handler(
                _guarded(service.get_metadata),
                request_deserializer=sync_pb2.GetMetadataRequest.FromString,
                response_serializer=sync_pb2.GetMetadataResponse.SerializeToString,
            ),
        },
    )
