"""`FaderClient.close()` against a real server whose stream is idle: close interrupts the
stream's blocked read instead of waiting for the next byte, stops the SDK's threads, and still
delivers the last summary.

Why this shape: the bug was a `close()` that took 5 s in 10 of 15 runs. Its reader thread sat in
a socket read that closing the response from another thread did not wake, so `close()` waited
for the reader's join timeout (5 s) and returned with the thread still blocked, until the next
heartbeat or the read timeout. Here the server sends no heartbeat for 10 minutes and the
client's read timeout is 60 s (2.5 times a 24 s heartbeat interval), so a `close()` that waits for
the stream can neither return before `DEADLINE` by luck nor leave with its threads stopped.
What is asserted is behaviour (returned, threads gone, summary delivered), never how fast.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LogSink, Server, running_server
from server_api import unique

from fader_sdk import FaderClient
from fader_server.settings import Settings

ROUNDS = 15
HEARTBEAT_INTERVAL = 24.0
"""The client's heartbeat interval: its read timeout is 2.5 times this, 60 s."""
SERVER_HEARTBEAT = 600.0
"""The server's heartbeat period: the stream carries nothing after its snapshot."""
DEADLINE = 20.0
"""How long a `close()` may take before the test calls it a hang: generous for a loaded
machine, far below the 60 s a close waiting for the stream's read timeout would take."""
SDK_THREADS = ("fader-streaming", "fader-polling", "fader-summaries")
FLAG = "banner"


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("sdk-close")
    settings = Settings(
        data_dir=data_dir,
        admin_token="fdr_admin_" + secrets.token_urlsafe(32),
        admin_password="correct-horse-" + secrets.token_hex(6),
        sse_heartbeat_seconds=SERVER_HEARTBEAT,
    )
    with running_server("sqlite", settings, LogSink()) as server:
        yield server


def sdk_key(server: Server) -> tuple[str, str]:
    """A project with a boolean flag on in production, and a server SDK key for it."""
    project = unique("close")
    with server.admin() as admin:
        made = admin.post("/api/v1/projects", json={"key": project, "name": "Close"})
        assert made.status_code == 201, made.text
        flag = admin.post(
            f"/api/v1/projects/{project}/flags",
            json={
                "key": FLAG,
                "name": "Banner",
                "type": "boolean",
                "variants": {"on": True, "off": False},
            },
        )
        assert flag.status_code == 201, flag.text
        key = admin.post(
            "/api/v1/tokens",
            json={"kind": "server", "name": "sdk", "project": project, "environment": "production"},
        )
        assert key.status_code == 201, key.text
    return project, key.json()["token"]


def sdk_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name in SDK_THREADS}


def close_within_deadline(client: FaderClient) -> None:
    closer = threading.Thread(target=client.close, name="test-closer", daemon=True)
    closer.start()
    closer.join(DEADLINE)
    assert not closer.is_alive(), f"close() still running after {DEADLINE:g} s"


def evaluations(server: Server, project: str) -> int:
    with server.admin() as admin:
        usage = admin.get(
            f"/api/v1/projects/{project}/flags/{FLAG}/usage",
            params={"environment": "production", "period": "24h"},
        )
    assert usage.status_code == 200, usage.text
    total: int = usage.json()["totals"]["evaluations"]
    return total


def test_close_interrupts_an_idle_stream_stops_every_thread_and_sends_the_last_summary(
    idle_server: Server,
) -> None:
    project, key = sdk_key(idle_server)
    before = sdk_threads()
    for round_ in range(ROUNDS):
        client = FaderClient(
            key,
            base_url=idle_server.url,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            init_timeout=DEADLINE,
            event_flush_interval=600.0,  # only close() sends: the summary it must not lose
        )
        assert client.is_fresh, f"round {round_}: no snapshot from the stream"
        assert client.boolean(FLAG, {"targetingKey": f"u-{round_}"}, True) is False
        started = sdk_threads() - before
        assert {thread.name for thread in started} >= {"fader-streaming", "fader-summaries"}

        close_within_deadline(client)

        alive = [thread.name for thread in started if thread.is_alive()]
        assert alive == [], f"round {round_}: close() returned with {alive} still running"
        assert client.dropped_events == 0, f"round {round_}: {client.dropped}"
    assert evaluations(idle_server, project) == ROUNDS


def test_close_of_a_client_whose_server_is_gone_still_returns() -> None:
    """No server at all: the stream never connects, close() stops the retry loop and counts
    the summary it could not send as dropped instead of hanging on it."""
    with socket.socket() as sock:  # a port nothing listens on: bind, then release it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = FaderClient(
        "fdr_srv_" + secrets.token_urlsafe(32),
        base_url=f"http://127.0.0.1:{port}",
        heartbeat_interval=HEARTBEAT_INTERVAL,
        init_timeout=0,
        event_flush_interval=600.0,
    )
    client.boolean(FLAG, {"targetingKey": "u-1"}, True)
    close_within_deadline(client)
    assert client.dropped_events == 1
