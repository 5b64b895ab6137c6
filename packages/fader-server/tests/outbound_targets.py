"""Misbehaving HTTP servers on 127.0.0.1 for the outbound and scheduler-isolation tests: real
sockets, byte-level control (a drip of one byte at a time, 400 MB of answer, a redirect), and
a record of what each connection asked and how much was sent before the client hung up.

Also the API steps those tests share: a project with a boolean flag serving `off`, and a plan
with one threshold gate.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import FaderProcess, free_port
from server_api import BOOLEAN_FLAG

Respond = Callable[["Connection"], None]
ADMIN_TOKEN = "fdr_admin_" + secrets.token_urlsafe(32)


@dataclass
class Connection:
    """One accepted connection: the request it sent, and a way to answer."""

    sock: socket.socket
    request: bytes
    stop: threading.Event
    sent: int = 0

    def send(self, data: bytes) -> bool:
        """False once the client has gone (it hung up, or reset the connection)."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True


@dataclass
class Target:
    """A TCP server answering every connection with `respond`."""

    respond: Respond
    sock: socket.socket = field(init=False)
    connections: list[Connection] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def url(self, path: str = "", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def requests(self) -> list[bytes]:
        with self.lock:
            return [c.request for c in self.connections]

    @property
    def bytes_sent(self) -> int:
        with self.lock:
            return sum(c.sent for c in self.connections)

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            request = b""
            try:
                # until the end of the headers, or the first bytes of a TLS handshake (this
                # server speaks plain HTTP: a TLS client gets an answer it cannot decrypt)
                while b"\r\n\r\n" not in request and not request.startswith(b"\x16"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    request += chunk
            except OSError:
                return
            connection = Connection(conn, request, self.stop)
            with self.lock:
                self.connections.append(connection)
            self.respond(connection)


@contextmanager
def target(respond: Respond) -> Iterator[Target]:
    server = Target(respond)
    server.sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        with suppress(OSError):
            server.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone does not)
        server.sock.close()
        thread.join(timeout=5)


# ------------------------------------------------------------------------------ behaviours
def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> Respond:
    def respond(conn: Connection) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        conn.send(head.encode() + b"\r\n" + body)

    return respond


def prometheus_value(value: str) -> bytes:
    result = [{"metric": {}, "value": [1.0, value]}]
    document = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return json.dumps(document).encode()


def json_answer(document: Any, status: int = 200) -> Respond:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return answer(status, body, {"Content-Type": "application/json"})


def drip(payload: bytes, every: float = 0.5) -> Respond:
    """The whole response, status line included, one byte every `every` seconds."""

    def respond(conn: Connection) -> None:
        for index in range(len(payload)):
            if conn.stop.wait(every) or not conn.send(payload[index : index + 1]):
                return

    return respond


def endless_drip(every: float = 0.5) -> Respond:
    """A response that never ends: headers, then one space of JSON whitespace at a time."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"

    def respond(conn: Connection) -> None:
        if not conn.send(head):
            return
        while not conn.stop.wait(every):
            if not conn.send(b" "):
                return

    return respond


def huge(total: int, value: str = "0.5") -> Respond:
    """A valid Prometheus answer padded with `total` bytes of whitespace, without a
    Content-Length (the client learns its size only by reading it)."""
    document = prometheus_value(value)
    chunk = b" " * 65536

    def respond(conn: Connection) -> None:
        if not conn.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + document[:-1]):
            return
        left = total
        while left > 0 and not conn.stop.is_set():
            if not conn.send(chunk[: min(left, len(chunk))]):
                return
            left -= len(chunk)
        conn.send(document[-1:])

    return respond


# ------------------------------------------------------------------------------ API steps
FLAG_BASE = {"enabled": True, "offVariant": "off", "default": {"variant": "off"}}


def rollout_project(admin: httpx.Client, key: str, flags: list[str]) -> None:
    """Project `key` with boolean flags on and serving `off` in development."""
    assert admin.post("/api/v1/projects", json={"key": key, "name": key}).status_code == 201
    for flag in flags:
        made = admin.post(f"/api/v1/projects/{key}/flags", json={"key": flag, **BOOLEAN_FLAG})
        assert made.status_code == 201, made.text
        put = admin.put(
            f"/api/v1/projects/{key}/environments/development/flags/{flag}",
            json=FLAG_BASE,
            headers={"If-Match": '"0"'},
        )
        assert put.status_code == 200, put.text


def gated_plan(flag: str, *gates: dict[str, Any]) -> dict[str, Any]:
    """A started plan that only its threshold gates can end (its one stage lasts an hour)."""
    return {
        "flag": flag,
        "environment": "development",
        "control": "off",
        "treatment": "on",
        "stages": [{"name": "half", "min_duration": 3600, "percent": 50}],
        "gates": list(gates),
        "start": True,
    }


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def fader_serve(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    allow: str | None,
    tick: str = "0.2",
    database_url: str | None = None,
) -> Iterator[FaderProcess]:
    """A real `fader serve` over `data_dir` (or `database_url`): `allow` is its
    FADER_OUTBOUND_ALLOW (None: the default, public addresses only)."""
    monkeypatch.setenv("FADER_ROLLOUT_TICK_SECONDS", tick)
    if allow is None:
        monkeypatch.delenv("FADER_OUTBOUND_ALLOW", raising=False)
    else:
        monkeypatch.setenv("FADER_OUTBOUND_ALLOW", allow)
    process = FaderProcess(
        port=free_port(),
        admin_token=ADMIN_TOKEN,
        log_path=data_dir / "serve.log",
        data_dir=data_dir,
        database_url=database_url,
    )
    process.start()
    try:
        yield process
    finally:
        process.kill()
