"""The server-sent-events response shared by the SDK stream and the OFREP change stream.

Both open the same way (a ``retry:`` field and a first event, skipped when the client's
``Last-Event-ID`` names the current version) and then send one event per new version of the
environment, with heartbeats in between. What differs is the first event and the
:class:`~fader_server.delivery.frames.StreamKind` of the rest.

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
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from fader_server.delivery import sinks
from fader_server.delivery.frames import HEARTBEAT, StreamKind
from fader_server.delivery.hub import Topic
from fader_server.delivery.service import Delivery
from fader_server.delivery.sinks import TRANSPORT_EXTENSION, Sink
from fader_server.delivery.snapshots import Snapshot
from fader_server.delivery.stream_keys import Hold, StreamKey

RETRY_MS = 1000
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self,
        dlv: Delivery,
        initial: Snapshot,
        kind: StreamKind,
        first_event: Callable[[Snapshot], bytes],
        last_event_id: str | None,
        key: StreamKey,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers(HEADERS)
        self._dlv = dlv
        self._key = key
        self._initial: Snapshot | None = initial
        self._kind = kind
        self._first_event = first_event
        self._last_event_id = last_event_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        initial, self._initial = self._initial, None
        assert initial is not None, "an event stream is sent once"
        async with self._dlv.hub.subscribe(initial, self._key) as subscription:
            del initial  # a stream lives for hours: it must not pin old snapshots
            topic, hold = subscription.topic, subscription.hold
            held = await self._open(topic, send)
            transport = _transport(scope)
            if transport is not None:
                await self._hand_over(topic, hold, Sink(transport, self._kind, held), receive)
            else:
                await self._relay(topic, hold, held, receive, send)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _open(self, topic: Topic, send: Send) -> int:
        """Send the ``retry:`` field and the first event; returns the version the client holds
        then. A method of its own so that the opening bytes (a whole snapshot, copied for this
        stream) are freed once sent instead of living as long as the stream."""
        current = topic.latest
        assert current is not None, "subscribing made the topic hold a snapshot"
        opening = b"retry: %d\n\n" % RETRY_MS
        resumed = self._last_event_id is not None
        if not (resumed and str(self._last_event_id).strip() == str(current.version)):
            opening += self._first_event(current)
        await send({"type": "http.response.body", "body": opening, "more_body": True})
        return current.version

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
                body = HEARTBEAT if update is None else update.event(self._kind, held)
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
