"""The fan-out's worker threads never touch asyncio: every transport method runs on the event
loop's thread, while the bytes still arrive whole and in order.

Real connections (socket pairs behind event-loop transports), three writer threads, early events
larger than a socket takes at once (so a direct write is partial and the rest goes through the
transport), one connection whose peer is gone, and one whose transport already buffers. Every
transport is wrapped in a recorder that notes the thread of each method call; a call from any
thread but the loop's is a bug (asyncio transports and loops are not thread-safe), even when
the bytes happen to come out right.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, cast

from fader_server.delivery.frames import StreamKind
from fader_server.delivery.sinks import Fanout, Sink


class RecordingTransport:
    """Forwards every method call to a real transport and records the calling thread."""

    def __init__(self, transport: asyncio.Transport, calls: list[tuple[str, str]]) -> None:
        self._transport = transport
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._transport, name)
        if not callable(target):
            return target

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((name, threading.current_thread().name))
            return target(*args, **kwargs)

        return recorded


async def _connected(count: int) -> tuple[list[asyncio.Transport], list[socket.socket]]:
    loop = asyncio.get_running_loop()
    transports, peers = [], []
    for _ in range(count):
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
        transports.append(transport)
        peers.append(peer)
    return transports, peers


def _drain(peer: socket.socket, into: bytearray) -> None:
    while True:
        try:
            data = peer.recv(1 << 20)
        except BlockingIOError:
            return
        if not data:
            return
        into += data


def _wrapped(transport: asyncio.Transport, calls: list[tuple[str, str]]) -> asyncio.Transport:
    return cast(asyncio.Transport, RecordingTransport(transport, calls))


def test_worker_threads_never_call_a_transport_and_bytes_arrive_in_order() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], int, list[tuple[str, str]], str]:
        loop_thread = threading.current_thread().name
        count = 16
        transports, peers = await _connected(count)
        calls: list[tuple[str, str]] = []
        sinks = [Sink(_wrapped(t, calls), StreamKind.PATCHES, 0) for t in transports]
        peers[-1].close()  # the client went away
        fanout = Fanout(writers=3, parallel_from=4)
        received = [bytearray() for _ in range(count)]
        sent = [bytearray() for _ in range(count)]
        forgotten = 0
        live = sinks
        for round_ in range(30):
            size = 400_000 if round_ < 3 else 200
            at_base = (b"A%d;" % round_) * (size // 4)
            other = (b"B%d;" % round_) * (size // 4)
            for index, sink in enumerate(sinks):
                sink.version = round_ if index % 2 == 0 else -1
                if index < count - 1:
                    sent[index] += at_base if index % 2 == 0 else other
            gone = fanout.deliver(live, round_, round_ + 1, at_base, other)
            forgotten += len(gone)
            live = [s for s in live if s not in gone]
            await asyncio.sleep(0)
            for index in range(2, count - 1):  # 0 and 1 read late: their transports buffer
                _drain(peers[index], received[index])
            if round_ % 5 == 4:
                for index in (0, 1):
                    _drain(peers[index], received[index])
        heartbeat = b"<beat>"
        for into in sent[:-1]:
            into.extend(heartbeat)
        forgotten += len(fanout.write(live, heartbeat))
        for _ in range(500):  # let the transports flush what they buffered
            await asyncio.sleep(0.01)
            for index in range(count - 1):
                _drain(peers[index], received[index])
            if all(len(received[i]) == len(sent[i]) for i in range(count - 1)):
                break
        fanout.close()
        for transport in transports:
            transport.close()
        for peer in peers[:-1]:
            peer.close()
        got = [bytes(r) for r in received[:-1]]
        return got, [bytes(s) for s in sent[:-1]], forgotten, calls, loop_thread

    received, sent, forgotten, calls, loop_thread = asyncio.run(scenario())
    off_loop = sorted({(name, thread) for name, thread in calls if thread != loop_thread})
    assert not off_loop, f"transport methods called off the event loop's thread: {off_loop}"
    assert {name for name, _ in calls} >= {"write", "get_write_buffer_size", "is_closing"}
    assert forgotten == 1, "the connection whose peer left is forgotten, once"
    for index, (got, expected) in enumerate(zip(received, sent, strict=True)):
        assert len(got) == len(expected), f"connection {index}: {len(got)} of {len(expected)}"
        assert got == expected, f"connection {index}: bytes reordered or corrupted"


def test_a_sink_that_already_holds_the_version_gets_nothing_older() -> None:
    """A stream whose first event was newer than the topic's update (it read a change before
    the topic built it) is skipped by that update: a client never sees versions go back."""

    async def scenario() -> tuple[bytes, bytes]:
        (behind, ahead), (behind_peer, ahead_peer) = await _connected(2)
        sinks = [Sink(behind, StreamKind.SNAPSHOTS, 3), Sink(ahead, StreamKind.SNAPSHOTS, 5)]
        fanout = Fanout(writers=1)
        assert fanout.deliver(sinks, 3, 4, b"v4;", b"v4;") == []
        assert fanout.deliver(sinks, 4, 5, b"v5;", b"v5;") == []
        assert fanout.deliver(sinks, 5, 6, b"v6;", b"v6;") == []
        await asyncio.sleep(0.05)
        got = bytearray(), bytearray()
        _drain(behind_peer, got[0])
        _drain(ahead_peer, got[1])
        for item in (behind, ahead, behind_peer, ahead_peer):
            item.close()
        return bytes(got[0]), bytes(got[1])

    behind, ahead = asyncio.run(scenario())
    assert behind == b"v4;v5;v6;"
    assert ahead == b"v6;"
