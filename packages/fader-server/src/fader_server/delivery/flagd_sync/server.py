"""The flag-sync gRPC server: ``grpc.aio`` on the event loop the HTTP server runs on.

One loop for both, because the change hub is event-loop only: its topics wake their streams
with futures of that loop, and a second loop in a thread would need every wake-up relayed.
``app`` starts it in the HTTP server's lifespan and stops it there, before the hub closes.

Keep-alive: a sync stream is silent between changes, possibly for days, and proxies and NATs
drop idle connections. The server pings each connection every :data:`KEEPALIVE_SECONDS` (an
HTTP/2 PING, which the protocol does not see) and drops connections that stop answering; it also
accepts clients' own pings down to every :data:`MIN_CLIENT_PING_SECONDS` (gRPC's default
refuses pings more frequent than every five minutes and closes the connection with
``too_many_pings``).
"""

from __future__ import annotations

from typing import Any

import grpc

from fader_server.delivery.flagd_sync.service import FlagSync, handler
from fader_server.delivery.service import Delivery
from fader_server.logs import get_logger

KEEPALIVE_SECONDS = 30
MIN_CLIENT_PING_SECONDS = 10
MAX_REQUEST_BYTES = 64 * 1024
"""Requests hold a selector and a provider id: anything larger is hostile."""
STOP_GRACE_SECONDS = 1.0
"""How long calls in flight may finish when the server stops; streams are then cancelled and
their providers reconnect (to another replica, behind a load balancer)."""


class FlagSyncServer:
    def __init__(self, delivery: Delivery, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._delivery = delivery
        self._server: Any = None

    @property
    def address(self) -> str:
        """``host:port``, with an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve (on the running loop); raise when the port cannot be bound."""
        server = grpc.aio.server(
            options=[
                ("grpc.keepalive_time_ms", KEEPALIVE_SECONDS * 1000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_SECONDS * 1000),
                (
                    "grpc.http2.min_recv_ping_interval_without_data_ms",
                    MIN_CLIENT_PING_SECONDS * 1000,
                ),
                ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers((handler(FlagSync(self._delivery)),))
        try:
            bound = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise RuntimeError(
                f"cannot serve flagd sync on {self.address} ({exc}); is the port in use? "
                "Choose another with --flagd-sync-port or FADER_FLAGD_SYNC_PORT"
            ) from exc
        if bound == 0:
            raise RuntimeError(
                f"cannot serve flagd sync on {self.address}; is the port in use? "
                "Choose another with --flagd-sync-port or FADER_FLAGD_SYNC_PORT"
            )
        await server.start()
        self._server = server
        get_logger().info("flagd_sync_listening", address=self.address)

    async def stop(self) -> None:
        """Refuse new calls, give those in flight :data:`STOP_GRACE_SECONDS`, cancel the rest."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(STOP_GRACE_SECONDS)
