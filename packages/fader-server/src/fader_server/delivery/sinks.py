"""Streams whose events are written straight to their connection, all of them at once.

Why: through the ASGI stack, delivering one change to one stream costs a task wake-up, a
generator step, the response's send, each middleware's send wrapper and the HTTP protocol's
framing: about 50 µs of CPU, so 10,000 streams took half a second per change on one core
(``bench/delivery``). Here the change's event is framed once (:class:`~.frames.Update`) and the
fan-out is one system call per stream.

That system call is then most of the cost (on loopback about 10-13 µs, since the kernel also
runs the receiving side's TCP stack in the sender's call), and it releases the GIL: so
:class:`Fanout` splits large fan-outs between the event loop's thread and a few worker threads,
each writing its share with ``os.write`` on the connection's socket. 9,000 writes of 600 bytes
took 121 ms on one thread and 66 ms on two, on this project's two-core machines. A fan-out to
many streams is written in *slices* (:attr:`Fanout.slice` sinks, sized from the measured cost
of a write so that each takes about :data:`SLICE_BUDGET`), one per event-loop turn
(:class:`~fader_server.delivery.hub.Topic`): the loop holds still for milliseconds at a time
instead of the whole fan-out (50-300 ms for 10,000 streams here, by the load), and requests,
new streams and other fan-outs go on in between. The threads share each slice. It does so
only where that cannot reorder or corrupt a stream: the event loop waits for the workers (so no
other code writes meanwhile), a socket is written directly only while its transport has nothing
buffered, whatever a worker could not write is handed to the transport afterwards, in order,
and TLS connections always go through their transport.

Asyncio transports and loops are not thread-safe, so the split is by construction: the event
loop's thread makes every decision and every transport call (which sinks are closed, which
buffer, the leftovers, aborts), and a worker runs :func:`write_directly` over
:data:`DirectWrite` pairs (a file descriptor and bytes) and returns what it could not write. No
sink, transport or loop ever reaches a worker. The descriptors stay valid meanwhile: only the
loop's thread closes connections, and it is blocked in the fan-out until the workers are done.

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
import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from fader_server.delivery.frames import END_CHUNK, StreamKind

TRANSPORT_EXTENSION = "fader.transport"
"""Key of the request scope's ``extensions`` entry holding ``{"transport": ...}``."""
BUFFER_LIMIT = 1 << 20
"""Bytes a stream's connection may have unsent before the stream is dropped as too slow."""
PARALLEL_FROM = 64
"""Calls with fewer direct writes stay on the event loop's thread: handing a share to a worker
thread costs some 50-100 µs (a wake-up each way), about what this many loopback writes take."""
MAX_WRITERS = 4
SLICE_BUDGET = 0.002
"""Seconds one slice of a fan-out may hold the event loop (:attr:`Fanout.slice`): everything
else the process serves waits that long at most between slices."""
FIRST_SLICE = 256
"""Sinks in a fan-out's first slice, before the process has measured what a write costs."""
MIN_SLICE, MAX_SLICE = 32, 8192

_log = logging.getLogger("fader.streams")


class Sink:
    """One stream's connection and the version its client holds."""

    __slots__ = ("fd", "kind", "transport", "version")

    def __init__(self, transport: asyncio.WriteTransport, kind: StreamKind, version: int) -> None:
        self.transport = transport
        self.kind = kind
        self.version = version
        sock = transport.get_extra_info("socket")
        plain = transport.get_extra_info("ssl_object") is None and sock is not None
        self.fd: int = sock.fileno() if plain else -1
        """The socket, when bytes written to it directly reach the client as they are."""


DirectWrite = tuple[int, bytes]
"""(file descriptor, bytes): everything a worker thread is given to write."""
Unsent = tuple[int, bytes | None]
"""(position in the worker's writes, the bytes not written): None when the connection failed,
the unwritten tail when the socket took only part (or nothing, when it was full)."""


def write_directly(
    writes: Sequence[DirectWrite], positions: Iterator[int] | None = None
) -> list[Unsent]:
    """``os.write`` each pair; returns what was not written, by position. Runs in worker
    threads: it must never be given, nor reach, an asyncio object.

    `positions`: an ``itertools.count()`` shared by threads writing the same `writes`; each
    takes the next position (``next`` on it is atomic under the GIL), so every pair is written
    by exactly one of them."""
    unsent: list[Unsent] = []
    write = os.write
    count = len(writes)
    for position in range(count) if positions is None else positions:
        if position >= count:
            break
        fd, data = writes[position]
        try:
            written = write(fd, data)
        except BlockingIOError:
            unsent.append((position, data))
        except OSError:
            unsent.append((position, None))
        else:
            if written != len(data):
                unsent.append((position, data[written:]))
    return unsent


class Fanout:
    """Writes to many sinks, in parallel threads when there are many (see the module doc)."""

    def __init__(
        self,
        writers: int | None = None,
        *,
        parallel_from: int = PARALLEL_FROM,
        budget: float = SLICE_BUDGET,
    ) -> None:
        count = writers if writers is not None else min(os.cpu_count() or 1, MAX_WRITERS)
        self.writers = max(1, count)
        self.parallel_from = parallel_from
        self.budget = budget
        self.slice = FIRST_SLICE
        """How many sinks a slice of a large fan-out takes (:class:`~.hub.Topic` writes one
        slice per event-loop turn): re-estimated after every call from what it cost, so that a
        slice takes about `budget` seconds whatever the machine, its load and the writes."""
        self._pool = (
            ThreadPoolExecutor(self.writers - 1, thread_name_prefix="fader-fanout")
            if self.writers > 1
            else None
        )

    def deliver(
        self, sinks: Sequence[Sink], held: int | None, version: int, at_base: bytes, other: bytes
    ) -> list[Sink]:
        """Write `at_base` to the sinks whose client holds version `held` and `other` to the
        rest; they hold `version` then. A sink that already holds `version` or a newer one (its
        stream opened with a snapshot the topic had not built yet) is skipped: a client never
        sees versions go back. Returns the sinks to forget (closed, or dropped as too slow).
        Event loop only; blocks it until every write is done or queued (give it a
        :attr:`slice` of the sinks at a time to bound that)."""
        return self._timed(sinks, held, version, at_base, other)

    def write(self, sinks: Sequence[Sink], data: bytes) -> list[Sink]:
        """The same bytes (a heartbeat) to every sink; returns the sinks to forget."""
        return self._timed(sinks, None, None, data, data)

    def _timed(
        self,
        sinks: Sequence[Sink],
        held: int | None,
        version: int | None,
        at_base: bytes,
        other: bytes,
    ) -> list[Sink]:
        """:meth:`_run`, and the next :attr:`slice` from its cost per sink. Calls on a handful
        of sinks (a stream attached, a test) say too little about that and leave it alone."""
        started = time.perf_counter()
        gone = self._run(sinks, held, version, at_base, other)
        if len(sinks) >= MIN_SLICE:
            per_sink = (time.perf_counter() - started) / len(sinks)
            wanted = int(self.budget / per_sink) if per_sink > 0 else MAX_SLICE
            # at most doubling per call: one cheap slice (most sinks skipped) must not make
            # the next one, of real writes, hold the loop for many budgets
            self.slice = min(MAX_SLICE, 2 * self.slice, max(MIN_SLICE, wanted))
        return gone

    def _run(
        self,
        sinks: Sequence[Sink],
        held: int | None,
        version: int | None,
        at_base: bytes,
        other: bytes,
    ) -> list[Sink]:
        """On the event loop's thread: sort the sinks (closed, through their transport: TLS, or
        bytes already waiting there, which must go first; or straight to their socket), write
        the direct ones (in worker threads too when there are many), then hand each sink's
        unwritten rest and the queued writes to their transports. A sink is in one list once,
        so its bytes stay in order.

        With workers, the writes are not cut into fixed shares: every thread, the loop's
        included, takes the next write nobody took yet (one shared counter), so the loop thread
        starts at once instead of waiting for a worker to wake up, and a thread that is slower
        (waking late, descheduled, its core busy with the receiving side's TCP work) writes
        fewer. Measured per slice before this, the loop thread's fixed half took 1.5 times as
        long as the worker's."""
        queued: list[tuple[Sink, bytes]] = []
        gone: list[Sink] = []
        direct, owners = _sort(sinks, held, version, at_base, other, queued, gone)
        if self._pool is None or len(direct) < self.parallel_from:
            unsent = write_directly(direct)
        else:
            positions = itertools.count()
            helpers = [
                self._pool.submit(write_directly, direct, positions)
                for _ in range(self.writers - 1)
            ]
            unsent = write_directly(direct, positions)
            for helper in helpers:
                if not helper.cancel():  # a helper that never started has nothing to return
                    unsent += helper.result()
        for position, rest in unsent:
            sink = owners[position]
            if rest is None:
                sink.transport.abort()  # the connection failed under a direct write
                gone.append(sink)
            else:
                queued.append((sink, rest))
        for sink, data in queued:
            sink.transport.write(data)
            if sink.transport.get_write_buffer_size() > BUFFER_LIMIT:
                _drop(sink)
                gone.append(sink)
        return gone

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _sort(
    sinks: Sequence[Sink],
    held: int | None,
    version: int | None,
    at_base: bytes,
    other: bytes,
    queued: list[tuple[Sink, bytes]],
    gone: list[Sink],
) -> tuple[list[DirectWrite], list[Sink]]:
    """(Event loop's thread.) The direct writes of `sinks` and their owners, position by
    position; sinks that must go through their transport are added to `queued`, closed ones
    to `gone`, and sinks that hold `version` already are skipped (see :meth:`Fanout.deliver`)."""
    direct: list[DirectWrite] = []
    owners: list[Sink] = []
    for sink in sinks:
        if version is None:
            data = at_base
        elif sink.version >= version:
            continue
        else:
            data = at_base if sink.version == held else other
            sink.version = version
        transport = sink.transport
        if transport.is_closing():
            gone.append(sink)
        elif sink.fd < 0 or transport.get_write_buffer_size():
            queued.append((sink, data))
        else:
            direct.append((sink.fd, data))
            owners.append(sink)
    return direct, owners


def _drop(sink: Sink) -> None:
    _log.warning(
        "stream dropped: %d bytes unsent, the client is too slow; it will reconnect",
        sink.transport.get_write_buffer_size(),
    )
    sink.transport.abort()


def end(sinks: Iterable[Sink]) -> None:
    """Complete every sink's response and close its connection (the environment is gone)."""
    for sink in sinks:
        transport = sink.transport
        if not transport.is_closing():
            transport.write(END_CHUNK)
            transport.close()
