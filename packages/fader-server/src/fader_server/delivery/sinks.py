"""Streams whose events are written straight to their connection, one loop for all of them.

Why: through the ASGI stack, delivering one change to one stream costs a task wake-up, a
generator step, the response's send, each middleware's send wrapper and the HTTP protocol's
framing: about 50 µs of CPU, so 10,000 streams took half a second per change on one core
(``bench/delivery``). Here the change's event is framed once (:class:`~.frames.Update`) and
the fan-out is a loop of ``transport.write`` calls: one system call per stream.

The response (:mod:`fader_server.api.event_stream`) still sends the headers and the first event
through ASGI, so middlewares see a normal response; only what follows bypasses them. It can do
so when the HTTP server puts the connection's transport in the request scope
(:data:`TRANSPORT_EXTENSION`, added by :mod:`fader_server.http_protocol`, which ``fader serve``
runs); under any other server the response falls back to plain ASGI sends.

A stream that cannot keep up (more than :data:`BUFFER_LIMIT` bytes waiting in its write
buffer) is disconnected rather than buffered without bound: its SDK reconnects with
``Last-Event-ID`` and gets the current snapshot, which replaces everything it missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from fader_server.delivery.frames import END_CHUNK, StreamKind

TRANSPORT_EXTENSION = "fader.transport"
"""Key of the request scope's ``extensions`` entry holding ``{"transport": ...}``."""
BUFFER_LIMIT = 1 << 20
"""Bytes a stream's connection may have unsent before the stream is dropped as too slow."""

_log = logging.getLogger("fader.streams")


class Sink:
    """One stream's connection and the version its client holds."""

    __slots__ = ("kind", "transport", "version")

    def __init__(self, transport: asyncio.WriteTransport, kind: StreamKind, version: int) -> None:
        self.transport = transport
        self.kind = kind
        self.version = version


def deliver(
    sinks: Iterable[Sink], held: int | None, version: int, at_base: bytes, other: bytes
) -> list[Sink]:
    """Write `at_base` to the sinks whose client holds version `held`, `other` to the rest;
    they all hold `version` then. Returns the sinks to forget: connections already closing,
    and those dropped as too slow."""
    gone: list[Sink] = []
    for sink in sinks:
        transport = sink.transport
        if transport.is_closing():
            gone.append(sink)
            continue
        transport.write(at_base if sink.version == held else other)
        sink.version = version
        if transport.get_write_buffer_size() > BUFFER_LIMIT:
            _log.warning(
                "stream dropped: %d bytes unsent, the client is too slow; it will reconnect",
                transport.get_write_buffer_size(),
            )
            transport.abort()
            gone.append(sink)
    return gone


def write(sinks: Iterable[Sink], data: bytes) -> list[Sink]:
    """Write the same bytes (a heartbeat) to every sink; returns those to forget."""
    gone: list[Sink] = []
    for sink in sinks:
        transport = sink.transport
        if transport.is_closing():
            gone.append(sink)
        else:
            transport.write(data)
    return gone


def end(sinks: Iterable[Sink]) -> None:
    """Complete every sink's response and close its connection (the environment is gone)."""
    for sink in sinks:
        transport = sink.transport
        if not transport.is_closing():
            transport.write(END_CHUNK)
            transport.close()
