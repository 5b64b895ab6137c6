"""A small threaded TCP proxy: the load balancer (or the misbehaving middlebox) in fault tests.

It forwards bytes between an SDK and the first of its backends that accepts a connection (a
backend that refuses is skipped, like a load balancer failing over when a replica dies), and
can be told to:
- `stall()`: keep every connection open but stop forwarding bytes, in both directions, until
  `resume()` (what a NAT or proxy that lost a flow's state does: no FIN, no RST, just silence);
- `cut()`: close every open connection at once.

Each connection is recorded (`connections`) with the backend it reached and when the client
side closed it, so tests can measure when an SDK gave up on a stalled stream.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

_CHUNK = 65536
_WAIT_SLICE = 0.05


@dataclass
class Connection:
    """One client connection through the proxy."""

    client: socket.socket
    upstream: socket.socket
    backend: int
    opened_at: float
    last_to_client_at: float | None = None
    """When bytes were last handed to the client (the server's last heartbeat it could see)."""
    client_closed_at: float | None = None
    closed: threading.Event = field(default_factory=threading.Event)

    def shut(self) -> None:
        """Close both sides (idempotent); pending recv calls return at once."""
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class TcpProxy:
    """Listens on 127.0.0.1 (a kernel-chosen port) and forwards to `backends` (ports)."""

    def __init__(self, *backends: int) -> None:
        self.backends = backends
        self._lock = threading.Lock()
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closing = threading.Event()
        self.connections: list[Connection] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- controls ---------------------------------------------------------------------------

    def stall(self) -> None:
        """Stop forwarding bytes on every connection, open or new, without closing any."""
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    def cut(self) -> None:
        """Close every open connection."""
        for conn in self.open_connections():
            conn.shut()

    def open_connections(self) -> list[Connection]:
        with self._lock:
            return [c for c in self.connections if not c.closed.is_set()]

    def close(self) -> None:
        self._closing.set()
        self._forwarding.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()
        self._acceptor.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- machinery --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            for port in self.backends:
                try:
                    upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                except OSError:
                    continue  # refused: that backend is down, try the next one
                upstream.settimeout(None)
                conn = Connection(client, upstream, port, time.monotonic())
                with self._lock:
                    self.connections.append(conn)
                if self._closing.is_set():  # accepted while the proxy was closing
                    conn.shut()
                    return
                for source, target, from_client in (
                    (client, upstream, True),
                    (upstream, client, False),
                ):
                    threading.Thread(
                        target=self._pump,
                        args=(conn, source, target, from_client),
                        name="proxy-pump",
                        daemon=True,
                    ).start()
                break
            else:
                client.close()  # no backend is up: the client sees the connection end

    def _pump(
        self, conn: Connection, source: socket.socket, target: socket.socket, from_client: bool
    ) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    if from_client and not conn.closed.is_set():
                        conn.client_closed_at = time.monotonic()
                    return
                while not self._forwarding.wait(_WAIT_SLICE):
                    if conn.closed.is_set():
                        return  # held bytes die with the connection, as in a real stall
                target.sendall(data)
                if not from_client:
                    conn.last_to_client_at = time.monotonic()
        except OSError:
            if from_client and not conn.closed.is_set():
                conn.client_closed_at = time.monotonic()
        finally:
            conn.shut()
