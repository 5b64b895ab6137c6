"""The stream load client: thousands of SSE subscribers in one asyncio process.

Started by ``propagation.py`` (never by hand, though ``--help`` says how). It opens `--streams`
``GET /api/v1/sdk/stream`` connections, spread round-robin over the `--target` servers, in
batches that each wait for their snapshots before the next batch connects (so the servers'
accept backlogs are never overrun), then takes commands as JSON lines on stdin and answers as
JSON lines on stdout:

- ``{"cmd": "await", "count": k, "timeout": s}``: wait until every open stream holds at least
  `k` ``change`` events (with ``--patches``: ``patch`` events), or `s` seconds pass, then
  answer every stream's change events not yet reported: ``[[id, kernel_ts, user_ts], ...]``
  per stream;
- ``{"cmd": "hold"}``: stop reading until the next ``await`` (see ``--hold`` in
  ``propagation.py``); answers ``{"type": "held"}``;
- ``{"cmd": "close"}``: answer the final tally (events, anomalies, closed streams) and exit.

Why raw sockets and not httpx: ten thousand httpx streams cost more CPU than the server under
test, on the same two cores. Here a stream is a non-blocking socket with a reader callback,
HTTP/1.1 chunked decoding and SSE framing done by hand (about 100 lines).

Arrival times are the **kernel's** receive timestamps (``SO_TIMESTAMPNS``, wall clock, read
from the socket with ``recvmsg``): when this process is busy with other streams, the time a
byte waited in the socket buffer is not charged to the server. ``user_ts`` is when this
process read it; the difference is the load client's own lag, reported as a sanity check.

Standard library only; knows nothing of Fader beyond the delivery protocol
(``docs/delivery-protocol.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux's value; Python's socket module does not export it."""
READ_SIZE = 1 << 16
ANCILLARY = socket.CMSG_SPACE(16)


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Stream:
    """One SSE connection: response head, chunked body, SSE events; timestamps per event."""

    def __init__(self, index: int, target: tuple[str, int]) -> None:
        self.index = index
        self.target = target
        self.sock: socket.socket | None = None
        self.status = 0
        self._head = True
        self._chunked = False
        self._raw = bytearray()  # bytes received, not yet de-chunked
        self._text = bytearray()  # de-chunked SSE text, not yet framed into events
        self.snapshot_id: int | None = None
        self.changes: list[tuple[int, float, float]] = []  # (id, kernel_ts, user_ts)
        self.last_event: tuple[str, int] | None = None  # (event type, bytes with framing)
        self.reported = 0
        self.anomalies: list[str] = []
        self.closed = False
        self.ready: asyncio.Future[None] | None = None

    # --------------------------------------------------------------- reading
    def on_readable(self, loop: asyncio.AbstractEventLoop, hub: Subscribers) -> None:
        assert self.sock is not None
        try:
            data, ancillary, _, _ = self.sock.recvmsg(READ_SIZE, ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(loop, f"recv: {exc}")
            return
        user_ts = time.time()
        kernel_ts = user_ts
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                seconds, nanoseconds = struct.unpack("qq", payload[:16])
                kernel_ts = seconds + nanoseconds / 1e9
        if not data:
            self._close(loop, "closed by the server")
            return
        self._raw += data
        before = len(self.changes)
        try:
            self._parse(kernel_ts, user_ts)
        except ValueError as exc:
            self._close(loop, f"unparseable: {exc}")
            return
        if len(self.changes) != before:
            hub.progress(self)

    def _parse(self, kernel_ts: float, user_ts: float) -> None:
        if self._head:
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._raw[:end]).decode("latin-1").lower().split("\r\n")
            del self._raw[: end + 4]
            self.status = int(head[0].split()[1])
            self._chunked = "transfer-encoding: chunked" in head
            self._head = False
            if self.status != 200 or not self._chunked:
                raise ValueError(f"HTTP {self.status}, chunked={self._chunked}")
        while True:  # de-chunk everything complete
            line_end = self._raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(bytes(self._raw[:line_end]).split(b";")[0], 16)
            if size == 0:
                raise ValueError("the stream ended")
            if len(self._raw) < line_end + 2 + size + 2:
                break
            self._text += self._raw[line_end + 2 : line_end + 2 + size]
            del self._raw[: line_end + 2 + size + 2]
        while True:  # frame complete SSE events
            end = self._text.find(b"\n\n")
            if end < 0:
                return
            block = bytes(self._text[:end])
            del self._text[: end + 2]
            self._event(block, kernel_ts, user_ts)

    def _event(self, block: bytes, kernel_ts: float, user_ts: float) -> None:
        kind, ident, data = b"message", None, b""
        for line in block.split(b"\n"):
            if line.startswith(b":") or line.startswith(b"retry:"):
                continue  # heartbeat comment / reconnection delay
            name, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if name == b"event":
                kind = value
            elif name == b"id":
                ident = int(value)
            elif name == b"data":
                data = value
        if ident is None:
            if kind != b"message" or data:
                self.anomalies.append(f"event without id: {block[:80]!r}")
            return
        if b'"version":%d' % ident not in data:
            self.anomalies.append(f"id {ident} does not match the snapshot's version")
        if kind == b"snapshot":
            if self.snapshot_id is not None:
                self.anomalies.append(f"second snapshot (id {ident})")
            self.snapshot_id = ident
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(None)
        elif kind in (b"change", b"patch"):
            last = self.changes[-1][0] if self.changes else (self.snapshot_id or 0)
            if ident <= last:
                self.anomalies.append(f"change id {ident} after {last}")
            if kind == b"patch" and b'"base":%d,' % last not in data:
                self.anomalies.append(f"patch {ident} does not apply to the held version {last}")
            self.changes.append((ident, kernel_ts, user_ts))
            self.last_event = (kind.decode(), len(block) + 2)
        else:
            self.anomalies.append(f"unknown event {kind!r}")

    def _close(self, loop: asyncio.AbstractEventLoop, why: str) -> None:
        if self.sock is not None and not self.closed:
            loop.remove_reader(self.sock.fileno())
            self.sock.close()
        if not self.closed:
            self.anomalies.append(why)
        self.closed = True
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.sock is not None and not self.closed:
            loop.remove_reader(self.sock.fileno())
            self.sock.close()
        self.closed = True


class Subscribers:
    def __init__(
        self, targets: Sequence[tuple[str, int]], key: str, count: int, *, patches: bool
    ) -> None:
        self.streams = [Stream(i, targets[i % len(targets)]) for i in range(count)]
        self.key = key
        self.query = "?patches=true" if patches else ""
        self._want = 0
        self._reached = 0
        self._open_target = 0
        self._all_reached: asyncio.Event | None = None
        self._held = False

    async def connect(self, batch: int, timeout: float) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        for start in range(0, len(self.streams), batch):
            group = self.streams[start : start + batch]
            await asyncio.gather(*(self._open(loop, s, timeout) for s in group))
        failed = [s for s in self.streams if s.closed or s.snapshot_id is None]
        return {
            "type": "ready",
            "streams": len(self.streams) - len(failed),
            "failed": len(failed),
            "failures": sorted({a for s in failed for a in s.anomalies[:1]})[:5],
            "failed_indices": [s.index for s in failed],
            "seconds": round(time.monotonic() - began, 2),
            "snapshot_ids": sorted({s.snapshot_id for s in self.streams if s.snapshot_id}),
            "rss_kib": rss_kib(),
        }

    async def _open(self, loop: asyncio.AbstractEventLoop, stream: Stream, timeout: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream.sock = sock
        stream.ready = loop.create_future()
        host, port = stream.target
        request = (
            f"GET /api/v1/sdk/stream{self.query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {self.key}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
            await loop.sock_sendall(sock, request)
            loop.add_reader(sock.fileno(), stream.on_readable, loop, self)
            await asyncio.wait_for(asyncio.shield(stream.ready), timeout)
        except (OSError, TimeoutError) as exc:
            stream._close(loop, f"connect: {type(exc).__name__}: {exc}")

    def progress(self, stream: Stream) -> None:
        """Called when `stream` parsed a change event; O(1): it runs once per stream and event."""
        if self._all_reached is not None and len(stream.changes) == self._want:
            self._reached += 1
            if self._reached >= self._open_target:
                self._all_reached.set()

    def _open_count(self) -> int:
        return sum(1 for s in self.streams if not s.closed)

    def hold(self) -> dict[str, object]:
        """Stop reading until the next ``await``: bytes wait in the kernel, stamped on arrival,
        and this process stays off the CPU the server needs for its fan-out."""
        loop = asyncio.get_running_loop()
        for stream in self.streams:
            if stream.sock is not None and not stream.closed:
                loop.remove_reader(stream.sock.fileno())
        self._held = True
        return {"type": "held"}

    async def await_changes(self, count: int, timeout: float) -> dict[str, object]:
        """Wait until every open stream holds `count` change events; report the new ones."""
        if self._held:
            loop = asyncio.get_running_loop()
            for stream in self.streams:
                if stream.sock is not None and not stream.closed:
                    loop.add_reader(stream.sock.fileno(), stream.on_readable, loop, self)
            self._held = False
        self._want = count
        self._reached = sum(1 for s in self.streams if len(s.changes) >= count)
        self._open_target = self._open_count()  # a stream closing meanwhile ends it by timeout
        self._all_reached = asyncio.Event()
        if self._reached >= self._open_target:
            self._all_reached.set()
        began = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_reached.wait(), timeout)
        waited = time.monotonic() - began
        self._all_reached = None
        events = []
        for s in self.streams:
            events.append([[i, round(k, 6), round(u, 6)] for i, k, u in s.changes[s.reported :]])
            s.reported = len(s.changes)
        kinds = sorted({s.last_event for s in self.streams if s.last_event is not None})
        return {
            "type": "round",
            "events_seen": [f"{kind} {size} B" for kind, size in kinds][:4],
            "waited": round(waited, 3),
            "open": self._open_count(),
            "events": events,
        }

    def tally(self) -> dict[str, object]:
        anomalies = [a for s in self.streams for a in s.anomalies]
        return {
            "type": "final",
            "closed": sum(1 for s in self.streams if s.closed),
            "anomalies": len(anomalies),
            "examples": sorted(set(anomalies))[:10],
            "rss_kib": rss_kib(),
        }


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def emit(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    targets = []
    for item in args.target.split(","):
        host, _, port = item.rpartition(":")
        targets.append((host, int(port)))
    hub = Subscribers(targets, args.key, args.streams, patches=args.patches)
    emit(await hub.connect(args.batch, args.timeout))
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        command = json.loads(line)
        if command["cmd"] == "hold":
            emit(hub.hold())
        elif command["cmd"] == "await":
            emit(await hub.await_changes(int(command["count"]), float(command["timeout"])))
        elif command["cmd"] == "close":
            emit(hub.tally())
            break
    for stream in hub.streams:
        stream.close(loop)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="host:port[,host:port...] (round-robin)")
    parser.add_argument("--key", required=True, help="a server SDK key")
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument(
        "--patches", action="store_true", help="ask for patch events, as the Python SDK does"
    )
    parser.add_argument("--batch", type=int, default=250, help="connections opened at once")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per connection")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise_nofile_limit()
    asyncio.run(main(parse_args(sys.argv[1:])))
