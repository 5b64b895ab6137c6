"""The HTTP protocol ``fader serve`` runs: uvicorn's httptools protocol, plus the connection's
transport in every request's scope; and the check that it still works.

Why: an SSE stream that has sent its headers and first event through ASGI can receive the rest
of its events as bytes written straight to its connection (:mod:`fader_server.delivery.sinks`),
which is what lets one process push a change to 10,000 streams within tens of milliseconds.
ASGI has no standard way to reach the connection, so this protocol adds one scope extension,
``extensions["fader.transport"] = {"transport": <asyncio transport>}``. Requests served by any
other protocol lack it, and their streams use ordinary ASGI sends.

This subclasses a class uvicorn does not document (:data:`RELIED_ON` lists what it assumes), so
``pyproject.toml`` pins uvicorn to the minor version it is tested with, and the assumptions are
checked, not hoped for: :func:`hook_problem` serves one streamed request through the protocol
over a real connection, on the event loop uvicorn runs, exactly as a stream uses it (headers and
a first chunk through ASGI, then chunks written straight to the transport through a
:class:`~fader_server.delivery.sinks.Fanout`, then the end through ASGI), and compares what the
client received. ``fader serve`` runs that check at start (:func:`serving_protocol`): if it
fails, the server logs a warning naming uvicorn's version and what broke, and serves with
uvicorn's own protocol, so streams take the plain ASGI path (slower at thousands of streams,
equally correct); it never stops serving. ``test_delivery_transport_hook.py`` runs the same check
against the installed uvicorn on both event loops, and fails loudly when it would fall back.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import socket
from collections.abc import Callable
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from fader_server.delivery.frames import StreamKind, chunk
from fader_server.delivery.sinks import TRANSPORT_EXTENSION, Fanout, Sink

RELIED_ON = (
    "HttpToolsProtocol.on_message_begin() builds self.scope for each request before the "
    "application sees it",
    "self.transport is the connection's asyncio transport",
    "a response without a content-length is sent with 'transfer-encoding: chunked', each ASGI "
    "body message written to that transport as one chunk when it is sent",
    "the transport's get_write_buffer_size() counts every byte written to it and not yet sent, "
    "and get_extra_info('socket') is the connection's socket",
)
"""What the direct path assumes of uvicorn's protocol and of the event loop's transports."""
FALLBACK = "auto"
"""uvicorn's own protocol choice (its httptools protocol when installed): plain ASGI streams."""
CHECK_TIMEOUT = 10.0
"""Seconds the check may take (a few milliseconds in practice)."""

_log = logging.getLogger("fader.streams")
_SEND_BUFFER = 1 << 16
_PIECES = (b"asgi-first;" * (1 << 15), b"direct-queued;", b"direct-later;", b"asgi-last")
"""What the check's response sends, in order: through ASGI (more than the socket's send buffer,
:data:`_SEND_BUFFER`, takes at once, so the transport holds the rest, and less than a stream may
have unsent), straight to the transport right after (it must queue behind the rest), straight
again a loop turn later, through ASGI."""


class TransportExposingProtocol(HttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions = self.scope.setdefault("extensions", {})
        extensions[TRANSPORT_EXTENSION] = {"transport": self.transport}


def hook_problem(
    protocol: type[HttpToolsProtocol] = TransportExposingProtocol,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> str | None:
    """None when streams served by `protocol` can be written to directly; otherwise what is
    wrong, naming uvicorn's version and what this module relies on. `loop_factory`: the event
    loop to check on; by default the one ``uvicorn.run`` picks (uvloop when installed)."""
    try:
        factory = loop_factory or _uvicorn_loop_factory()
        with asyncio.Runner(loop_factory=factory) as runner:
            failure = runner.run(asyncio.wait_for(_check(protocol), CHECK_TIMEOUT))
    except Exception as exc:  # whatever breaks, the answer is "do not write directly"
        failure = f"the check raised {type(exc).__name__}: {exc}"
    if failure is None:
        return None
    return (
        f"uvicorn {uvicorn.__version__} (httptools {httptools.__version__}): {failure}. "
        f"{protocol.__module__}.{protocol.__qualname__} relies on: " + "; ".join(RELIED_ON)
    )


def serving_protocol(
    protocol: type[HttpToolsProtocol] = TransportExposingProtocol,
) -> type[asyncio.Protocol] | str:
    """The ``http`` protocol for ``uvicorn.run``: `protocol` when :func:`hook_problem` finds
    nothing wrong, else uvicorn's own, with a warning (streams then take the ASGI path)."""
    problem = hook_problem(protocol)
    if problem is None:
        return protocol
    _log.warning("event streams will be sent through ASGI, not written directly: %s", problem)
    return FALLBACK


def _uvicorn_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop ``uvicorn.run`` runs by default (``loop="auto"``): uvloop when installed."""
    if importlib.util.find_spec("uvloop") is None:  # Windows: fader-server does not install it
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = importlib.import_module(
        "uvloop"
    ).new_event_loop
    return factory


async def _check(protocol_class: type[HttpToolsProtocol]) -> str | None:
    """Serve one request through `protocol_class` on a real connection (a socket pair, no
    network), as a stream is served; what is wrong with what the client got, or None."""
    loop = asyncio.get_running_loop()
    exposed: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _PIECES[0], "more_body": True})
        extension = (scope.get("extensions") or {}).get(TRANSPORT_EXTENSION) or {}
        transport = extension.get("transport")
        exposed.append(transport)
        if transport is not None:
            fanout = Fanout(writers=1)
            sink = Sink(transport, StreamKind.SNAPSHOTS, 0)
            fanout.write([sink], chunk(_PIECES[1]))
            await asyncio.sleep(0)
            fanout.write([sink], chunk(_PIECES[2]))
        await send({"type": "http.response.body", "body": _PIECES[3], "more_body": False})

    config = uvicorn.Config(
        app,
        http=protocol_class,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )
    config.load()
    state = ServerState()
    ours, peer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
    peer.setblocking(False)
    transport, _ = await loop.connect_accepted_socket(
        lambda: protocol_class(config, state, {}, _loop=loop), ours
    )
    try:
        await loop.sock_sendall(peer, b"GET /stream HTTP/1.1\r\nHost: fader\r\n\r\n")
        response = b""
        while not response.endswith(b"\r\n0\r\n\r\n"):
            data = await loop.sock_recv(peer, 1 << 16)
            if not data:
                break
            response += data
        await asyncio.gather(*state.tasks)
    finally:
        transport.close()
        peer.close()
        await asyncio.sleep(0)  # let the protocol see the connection go
    return _judge(response, exposed, transport)


def _judge(response: bytes, exposed: list[Any], transport: asyncio.BaseTransport) -> str | None:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *headers = head.split(b"\r\n")
    if not exposed:
        return f"the request did not reach the application (the server answered {status!r})"
    if exposed[0] is None:
        return f"the request scope has no extensions[{TRANSPORT_EXTENSION!r}]"
    if exposed[0] is not transport:
        return f"extensions[{TRANSPORT_EXTENSION!r}] is not the connection's transport"
    if b"transfer-encoding: chunked" not in (h.lower() for h in headers):
        return f"the streamed response is not chunked (headers: {headers!r})"
    received = _dechunk(body)
    expected = b"".join(_PIECES)
    if received is None:
        return "the response body is not well-formed chunks: direct writes corrupted it"
    if received != expected:
        at = next(
            (i for i, (a, b) in enumerate(zip(received, expected, strict=False)) if a != b),
            min(len(received), len(expected)),
        )
        return (
            f"the client received {len(received)} bytes instead of {len(expected)}, differing "
            f"from byte {at} ({received[at : at + 20]!r} instead of {expected[at : at + 20]!r}): "
            "direct writes were reordered or lost"
        )
    return None


def _dechunk(body: bytes) -> bytes | None:
    """The payload of a chunked body, None if it is not one (RFC 9112 §7.1)."""
    out = b""
    while True:
        size_line, separator, body = body.partition(b"\r\n")
        try:
            size = int(size_line, 16)
        except ValueError:
            return None
        if not separator or body[size : size + 2] != b"\r\n":
            return None
        if size == 0:
            return out
        out, body = out + body[:size], body[size + 2 :]
