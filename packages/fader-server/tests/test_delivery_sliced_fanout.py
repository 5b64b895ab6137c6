"""A topic writes a change to its streams a slice per event-loop turn, and still keeps every
stream's events exactly once, in order, with each patch's base the version the stream held.

Real connections (socket pairs behind event-loop transports) attached to a real
:class:`~fader_server.delivery.hub.Topic`; slices of ten sinks, so that a pass over a hundred
streams takes many loop turns and other things (a newer change, a heartbeat, the environment's
deletion) can land in the middle of one.
"""

from __future__ import annotations

import asyncio
import json
import socket

from fader_server.delivery.frames import END_CHUNK, StreamKind, Update
from fader_server.delivery.hub import Topic
from fader_server.delivery.sinks import Fanout, Sink
from fader_server.delivery.snapshots import EnvironmentRef, Snapshot

REF = EnvironmentRef(1, "p", "production")
STREAMS = 100
SLICE = 10


def _snapshot(version: int) -> Snapshot:
    """Version `version`: flag ``f`` changes, 20 others do not (so a patch is the smaller)."""
    flags = {f"other-{n}": {"enabled": True, "note": "x" * 40} for n in range(20)}
    return Snapshot(REF, version, {"flags": {"f": {"enabled": version % 2 == 0}, **flags}})


def _events(raw: bytes) -> list[tuple[str, dict | None]]:
    """(event name, data) of each chunk a peer received; heartbeats as (":heartbeat", None) and
    the final chunk as ("end", None)."""
    out: list[tuple[str, dict | None]] = []
    while raw:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            out.append(("end", None))
            break
        payload, raw = raw[:size], raw[size + 2 :]
        if payload.startswith(b":"):
            out.append((":heartbeat", None))
            continue
        fields = dict(line.split(": ", 1) for line in payload.decode().strip().split("\n") if line)
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def _drain(peer: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            got = peer.recv(1 << 20)
        except BlockingIOError:
            return data
        if not got:
            return data
        data += got


class Streams:
    """A topic with :data:`STREAMS` sinks whose client holds version 1, and their peers."""

    def __init__(self, topic: Topic) -> None:
        self.topic = topic
        self.peers: list[socket.socket] = []
        self.transports: list[asyncio.Transport] = []

    def close(self) -> None:
        for transport in self.transports:
            transport.abort()
        for peer in self.peers:
            peer.close()


async def _topic() -> Streams:
    loop = asyncio.get_running_loop()
    fanout = Fanout(writers=2, parallel_from=4)
    fanout.slice = SLICE  # slices this small are never re-estimated (below MIN_SLICE)
    topic = Topic(REF, loop, fanout)
    topic.advance(Update.between(None, _snapshot(1)))
    streams = Streams(topic)
    for _ in range(STREAMS):
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
        topic.attach(Sink(transport, StreamKind.PATCHES, 1))
        streams.peers.append(peer)
        streams.transports.append(transport)
    return streams


async def _finish(topic: Topic) -> None:
    for _ in range(10_000):
        if not topic.writing:
            return
        await asyncio.sleep(0)
    raise AssertionError("the pass never finished")


def test_a_newer_change_mid_pass_keeps_every_stream_exactly_once_and_in_order() -> None:
    async def scenario() -> tuple[list[bytes], int, bool]:
        streams = await _topic()
        topic, peers = streams.topic, streams.peers
        try:
            topic.advance(Update.between(_snapshot(1), _snapshot(2)))
            early = [_drain(peer) for peer in peers]
            reached_at_once = sum(1 for raw in early if raw)
            interleaved: list[bool] = []
            asyncio.get_running_loop().call_soon(lambda: interleaved.append(topic.writing))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            topic.advance(Update.between(_snapshot(2), _snapshot(3)))
            await _finish(topic)
            received = [raw + _drain(peer) for raw, peer in zip(early, peers, strict=True)]
            return received, reached_at_once, interleaved == [True]
        finally:
            streams.close()

    received, reached_at_once, interleaved = asyncio.run(scenario())
    assert reached_at_once == SLICE, "the first slice is written at once, the rest later"
    assert interleaved, "the loop ran other callbacks before the pass was over"
    shapes = {"patch 2, patch 3": 0, "change 3": 0}
    for raw in received:
        events = _events(raw)
        held = 1
        for name, data in events:
            assert data is not None
            if name == "patch":
                assert data["base"] == held, "a patch applies to the version the stream holds"
            assert data["version"] > held, "versions only go forward"
            held = data["version"]
        assert held == 3, "every stream ends with the latest change"
        shape = ", ".join(f"{name} {data['version']}" for name, data in events if data)
        assert shape in shapes, shape
        shapes[shape] += 1
    assert shapes["patch 2, patch 3"] >= SLICE
    assert shapes["change 3"] >= 1, "streams not reached by the first pass got the whole state"


def test_a_heartbeat_waits_for_the_pass_and_then_reaches_every_stream_once() -> None:
    async def scenario() -> list[bytes]:
        streams = await _topic()
        topic = streams.topic
        try:
            topic.advance(Update.between(_snapshot(1), _snapshot(2)))
            topic.heartbeat()  # mid-pass: skipped, the pass writes to every stream anyway
            await _finish(topic)
            topic.heartbeat()
            await _finish(topic)
            return [_drain(peer) for peer in streams.peers]
        finally:
            streams.close()

    for raw in asyncio.run(scenario()):
        assert [name for name, _ in _events(raw)] == ["patch", ":heartbeat"]


def test_deleting_the_environment_mid_pass_ends_every_stream_without_more_events() -> None:
    async def scenario() -> tuple[list[bytes], bool]:
        streams = await _topic()
        topic = streams.topic
        try:
            topic.advance(Update.between(_snapshot(1), _snapshot(2)))
            topic.close()
            writing = topic.writing
            for _ in range(20):
                await asyncio.sleep(0)
            return [_drain(peer) for peer in streams.peers], writing
        finally:
            streams.close()

    received, writing = asyncio.run(scenario())
    assert not writing
    ended = [_events(raw) for raw in received]
    assert all(events[-1] == ("end", None) for events in ended)
    assert all(raw.endswith(END_CHUNK) for raw in received)
    assert sum(1 for events in ended if len(events) == 2) == SLICE, (
        "only the slice written before the deletion got the change"
    )
    assert all(len(events) in (1, 2) for events in ended)
