"""The server-sent-events response shared by the SDK stream and the OFREP change stream.

Both open the same way (a ``retry:`` field and a first event, skipped when the client's
``Last-Event-ID`` names the current version) and then send one event per new version of the
environment, with heartbeats in between. What differs is the first event and the
:class:`~fader_server.delivery.frames.StreamKind` of the rest.

Nothing here serialises: the first event is built with the first snapshot's read, in the
endpoint's worker thread (:func:`opening`), and later events come prebuilt from the hub
(:class:`~fader_server.delivery.frames.Update`). The event loop serves every stream of the
process, and a document of megabytes serialised on it would stall them all.

After the first event, a stream served by ``fader serve`` is handed to the hub as a sink and
this task only waits for the client to leave (:mod:`fader_server.delivery.sinks` says why).
Elsewhere (another ASGI server, HTTP/1.0) it relays updates itself through ``send``.

A stream ends when its key stops working (revoked, expired, its environment deleted;
:mod:`fader_server.delivery.stream_keys`): the response is completed (a sink's connection is
also closed), so the client sees the stream end, reconnects as after any ended stream, and is
refused. No event announces it: clients need none to do the right thing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from fader_server.delivery import sinks
from fader_server.delivery.frames import HEARTBEAT, StreamKind
from fader_server.delivery.hub import Topic
from fader_server.delivery.service import Delivery
from fader_server.delivery.sinks import TRANSPORT_EXTENSION, Sink
from fader_server.delivery.snapshots import EnvironmentRef, Snapshot
from fader_server.delivery.stream_keys import Hold, StreamKey

RETRY_MS = 1000
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True, slots=True)
class Opening:
    """How one stream starts: what it sends first (the ``retry:`` field and the first event, in
    parts sent in order) and the version its client holds once they are sent."""

    ref: EnvironmentRef
    version: int
    parts: tuple[bytes, ...]


def opening(
    initial: Snapshot,
    first_event: Callable[[Snapshot], Sequence[bytes]],
    last_event_id: str | None,
) -> Opening:
    """The opening of a stream that starts at `initial`: no first event when the client's
    `last_event_id` names that version already. Call it in a worker thread (with the read of
    `initial`): the first event is a whole snapshot, serialised on its first use. Its parts
    share the snapshot's body: a thousand streams opening at once hold no copy of their own."""
    retry = b"retry: %d\n\n" % RETRY_MS
    if last_event_id is not None and last_event_id.strip() == str(initial.version):
        return Opening(initial.ref, initial.version, (retry,))
    first, *rest = first_event(initial)
    return Opening(initial.ref, initial.version, (retry + first, *rest))


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(self, dlv: Delivery, start: Opening, kind: StreamKind, key: StreamKey) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)
        self._dlv = dlv
        self._key = key
        self._start: Opening | None = start
        self._kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        start = self._start
        assert start is not None, "an event stream is sent once"
        ref, version = start.ref, start.version
        del start
        async with self._dlv.hub.subscribe(ref, version, self._key) as subscription:
            topic, hold = subscription.topic, subscription.hold
            held = await self._open(send)
            transport = _transport(scope)
            if transport is not None:
                await self._hand_over(topic, hold, Sink(transport, self._kind, held), receive)
            else:
                await self._relay(topic, hold, held, receive, send)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _open(self, send: Send) -> int:
        """Send the opening; returns the version the client holds then. A method of its own so
        that the opening (a whole snapshot) is let go once sent instead of living as long as
        the stream. Subscribed first: a change the topic gets meanwhile follows the opening
        (:meth:`Topic.attach`, :meth:`Topic.newer_than`)."""
        start, self._start = self._start, None
        assert start is not None, "an event stream is sent once"
        for body in start.parts:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        return start.version

    async def _hand_over(self, topic: Topic, hold: Hold, sink: Sink, receive: Receive) -> None:
        """The hub writes to the connection from now on; wait for the client (or the hub,
        by closing the connection) to end it."""
        if topic.gone or hold.ended.done():
            return
        topic.attach(sink)

        def end() -> None:  # the key stopped working: no further event reaches the client
            topic.detach(sink)
            sinks.end([sink])

        hold.on_end(end)
        try:
            await _disconnected(receive)
        finally:
            hold.on_end(None)
            topic.detach(sink)

    async def _relay(
        self, topic: Topic, hold: Hold, held: int, receive: Receive, send: Send
    ) -> None:
        """Send each update ourselves until the client leaves, the environment is gone or the
        key stopped working."""
        left = asyncio.ensure_future(_disconnected(receive))
        try:
            while not (left.done() or hold.ended.done()):
                newer = asyncio.ensure_future(topic.newer_than(held, self._dlv.hub.heartbeat))
                waiting: set[asyncio.Future[Any]] = {newer, left, hold.ended}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if left.done() or hold.ended.done():
                    newer.cancel()
                    return
                update = newer.result()
                if topic.gone:
                    return
                parts = (HEARTBEAT,) if update is None else update.event(self._kind, held)
                for body in parts:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                if update is not None:
                    held = update.version
        finally:
            left.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _transport(scope: Scope) -> Any:
    """The connection's transport when the server exposes it and the body is chunked."""
    if scope.get("http_version") != "1.1":
        return None
    extension = (scope.get("extensions") or {}).get(TRANSPORT_EXTENSION)
    return None if extension is None else extension.get("transport")
