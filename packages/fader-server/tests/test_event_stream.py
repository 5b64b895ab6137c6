"""Event streams on both of their paths: written straight to the connection (``fader serve``'s
protocol) and sent through ASGI (any other server). Patch events, what the hub counts, and a
stream too slow to keep up being dropped instead of buffering without bound."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, _serve
from server_api import create_flag, unique
from sse import open_stream

from fader_engine.patch import apply_patch
from fader_server.delivery.frames import StreamKind, chunk
from fader_server.delivery.sinks import BUFFER_LIMIT, Fanout, Sink
from fader_server.http_protocol import TransportExposingProtocol
from fader_server.settings import Settings

HEARTBEAT = 0.3


@dataclass
class Served:
    path: str
    url: str
    token: str

    def admin(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module", params=["direct", "asgi"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    path: str = request.param
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    data_dir: Path = tmp_path_factory.mktemp(f"streams-{path}")
    settings = Settings(
        data_dir=data_dir,
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        sse_heartbeat_seconds=HEARTBEAT,
    )
    protocol = TransportExposingProtocol if path == "direct" else "auto"
    uv_server, thread, url, app = _serve(settings, LogSink(), http=protocol)
    try:
        yield Served(path, url, token)
    finally:
        uv_server.should_exit = True
        thread.join(timeout=10)
        app.state.services.store.close()


@pytest.fixture
def project(served: Served) -> Iterator[tuple[str, str, httpx.Client]]:
    """A project with two flags; yields (project, server key, admin client)."""
    with served.admin() as admin:
        key = unique("s")
        assert admin.post("/api/v1/projects", json={"key": key, "name": "S"}).status_code == 201
        create_flag(admin, key, "new-checkout")
        create_flag(admin, key, "untouched")
        token = admin.post(
            "/api/v1/tokens",
            json={"kind": "server", "name": "k", "project": key, "environment": "production"},
        )
        assert token.status_code == 201, token.text
        yield key, token.json()["token"], admin


def toggle(admin: httpx.Client, project: str, enabled: bool) -> None:
    response = admin.post(
        f"/api/v1/projects/{project}/environments/production/flags/new-checkout/toggle",
        json={"enabled": enabled},
    )
    assert response.status_code == 200, response.text


def polled(url: str, key: str) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.get(f"{url}/api/v1/sdk/flags", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def gauge(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def test_patch_events_carry_only_the_change_and_rebuild_the_document(
    served: Served, project
) -> None:
    name, key, admin = project
    with open_stream(served.url, key, patches=True) as stream:
        first = stream.next()
        assert first.event == "snapshot"
        document, version = first.json()["document"], first.json()["version"]

        toggle(admin, name, True)
        patch = stream.next()
        assert patch.event == "patch"
        body = patch.json()
        assert (body["base"], body["version"], int(patch.id or 0)) == (
            version,
            version + 1,
            version + 1,
        )
        assert set(body["flags"]) == {"new-checkout"}, "only the changed flag travels"
        document = apply_patch(document, body)

        create_flag(admin, name, "added")
        added = stream.next().json()
        assert added["base"] == version + 1
        assert set(added["flags"]) == {"added"}
        document = apply_patch(document, added)

        current = admin.get(f"/api/v1/projects/{name}/flags/added")
        deleted = admin.delete(
            f"/api/v1/projects/{name}/flags/added", headers={"If-Match": current.headers["etag"]}
        )
        assert deleted.status_code == 204, deleted.text
        removed = stream.next().json()
        assert removed["flags"] == {"added": None}
        document = apply_patch(document, removed)

        latest = polled(served.url, key)
        assert latest["version"] == removed["version"]
        assert document == latest["document"]


def test_streams_that_did_not_ask_for_patches_get_whole_snapshots(served: Served, project) -> None:
    name, key, admin = project
    with open_stream(served.url, key) as plain, open_stream(served.url, key, patches=True) as pat:
        assert plain.next().event == pat.next().event == "snapshot"
        toggle(admin, name, True)
        change, patch = plain.next(), pat.next()
        assert (change.event, patch.event) == ("change", "patch")
        assert change.id == patch.id
        assert change.json()["document"] == polled(served.url, key)["document"]


def test_a_stream_resuming_from_an_old_version_gets_a_snapshot_not_a_patch(
    served: Served, project
) -> None:
    name, key, admin = project
    old = polled(served.url, key)["version"]
    toggle(admin, name, True)
    with open_stream(served.url, key, last_event_id=str(old), patches=True) as stream:
        first = stream.next()
        assert first.event == "snapshot"
        assert first.json()["version"] == old + 1
        toggle(admin, name, False)
        assert stream.next().json()["base"] == old + 1


def test_which_path_serves_the_stream_and_that_a_closed_stream_is_forgotten(
    served: Served, project
) -> None:
    _, key, _ = project
    with open_stream(served.url, key) as stream:
        assert stream.next().event == "snapshot"
        assert gauge(served.url, "fader_sdk_streams") == 1
        expected = 1 if served.path == "direct" else 0
        assert gauge(served.url, "fader_sdk_streams_direct") == expected
    deadline = time.monotonic() + 10
    while gauge(served.url, "fader_sdk_streams") != 0:
        assert time.monotonic() < deadline, "the closed stream is still counted"
        time.sleep(0.05)


def test_heartbeats_and_ofrep_notifications(served: Served, project) -> None:
    name, key, admin = project
    with open_stream(served.url, key, path="/ofrep/v1/event-stream") as stream:
        opening = stream.next()
        assert opening.json()["type"] == "refetchEvaluation"
        beat = stream.next(comments=True)
        assert beat.comments == ["heartbeat"]
        toggle(admin, name, True)
        event = stream.next()
        assert event.json() == {
            "type": "refetchEvaluation",
            "etag": f'"{int(opening.id or 0) + 1}"',
        }


# ------------------------------------------------- writing to many connections
async def _connected(count: int) -> tuple[list[asyncio.Transport], list[socket.socket]]:
    """`count` real connections: our end as an event-loop transport, the peer as a socket."""
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


def test_a_stream_that_stops_reading_is_dropped_once_its_buffer_is_full() -> None:
    """The reading peer keeps up, the silent one is aborted, and neither blocks the loop that
    writes to both."""

    async def scenario() -> tuple[list[Sink], bool, bool, bytes]:
        (silent, reading), (silent_peer, reading_peer) = await _connected(2)
        sinks = [Sink(silent, StreamKind.SNAPSHOTS, 0), Sink(reading, StreamKind.SNAPSHOTS, 0)]
        fanout = Fanout(writers=1)
        event = chunk(b"x" * (64 * 1024))
        dropped: list[Sink] = []
        received = bytearray()
        for _ in range(4 * BUFFER_LIMIT // len(event)):
            dropped += fanout.write([s for s in sinks if s not in dropped], event)
            await asyncio.sleep(0)
            _drain(reading_peer, received)
            await asyncio.sleep(0)
        closing = silent.is_closing(), reading.is_closing()
        for transport in (silent, reading):
            transport.close()
        for sock in (silent_peer, reading_peer):
            sock.close()
        return dropped, *closing, bytes(received[: len(event)])

    dropped, silent_closed, reading_closed, first = asyncio.run(scenario())
    assert len(dropped) == 1
    assert silent_closed
    assert not reading_closed
    assert first.startswith(b"10000\r\nxxx")


def test_parallel_writes_keep_every_stream_whole_and_in_order() -> None:
    """Three writer threads; connections that read, one that reads slowly (early events are
    larger than its socket takes at once, so part goes directly and the rest through its
    transport: the bytes must still arrive whole and in order), and one whose peer is gone
    (forgotten, not an error). Half the streams hold the patch's base version each round."""

    async def scenario() -> tuple[list[bytes], list[bytes], int]:
        count = 12
        transports, peers = await _connected(count)
        sinks = [Sink(t, StreamKind.PATCHES, 0) for t in transports]
        peers[-1].close()  # the client went away
        fanout = Fanout(writers=3, parallel_from=4)
        received = [bytearray() for _ in range(count)]
        sent = [bytearray() for _ in range(count)]
        forgotten = 0
        live = sinks
        for round_ in range(40):
            size = 300_000 if round_ < 2 else 100
            at_base = (b"A%d;" % round_) * (size // 4)
            other = (b"B%d;" % round_) * (size // 4)
            for index, sink in enumerate(sinks):
                sink.version = round_ if index % 2 == 0 else -1
                if index < count - 1:
                    sent[index] += at_base if index % 2 == 0 else other
            gone = fanout.deliver(live, round_, round_ + 1, at_base, other)
            assert all(s.version == round_ + 1 for s in live)
            forgotten += len(gone)
            live = [s for s in live if s not in gone]
            await asyncio.sleep(0)
            for index in range(1, count - 1):
                _drain(peers[index], received[index])
            if round_ % 4 == 3:
                _drain(peers[0], received[0])
        for _ in range(200):  # let the slow one's transport flush what it buffered
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
        return [bytes(r) for r in received[:-1]], [bytes(s) for s in sent[:-1]], forgotten

    received, sent, forgotten = asyncio.run(scenario())
    assert forgotten == 1
    for index, (got, expected) in enumerate(zip(received, sent, strict=True)):
        assert len(got) == len(expected), f"connection {index}: {len(got)} of {len(expected)}"
        assert got == expected, f"connection {index}: bytes reordered or corrupted"


def test_a_bad_patches_value_is_a_problem_that_names_the_parameter(served: Served, project) -> None:
    _, key, _ = project
    response = httpx.get(
        f"{served.url}/api/v1/sdk/stream",
        params={"patches": "maybe"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["category"] == "user_fixable"
    assert [e["path"] for e in problem["errors"]] == ["/query/patches"]
