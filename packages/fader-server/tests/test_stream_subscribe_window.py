"""A change committed between a stream's first snapshot read and its subscription to the hub
reaches the stream at once, not at the next periodic resync.

The interleaving is forced, not hoped for: the server's snapshot service is wrapped so that the
stream's own first read commits a change (through the admin API, a real request to the same
real server) before it returns. The stream's first event is then the snapshot from before the
change, and the change must follow within seconds. The resync, which used to be the only thing
that delivered it, is pushed out of reach, so a stream that missed the change would wait
forever. Both endpoints (SDK stream, OFREP event stream), both ways of writing streams (direct
sinks under ``fader serve``'s protocol, plain ASGI), and both states of the process: no stream
ever opened (the hub has no event loop yet, as on a replica an SDK fails over to), and streams
open on another environment (the loop is bound, the environment has no topic).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, _serve
from fastapi import FastAPI
from server_api import create_flag, unique
from sse import Event, EventReader, open_stream

from fader_server.delivery.snapshots import EnvironmentRef, Snapshot, SnapshotService
from fader_server.http_protocol import TransportExposingProtocol
from fader_server.settings import Settings

DEADLINE = 10.0
"""Generous for a push (milliseconds in practice), far below the resync it used to wait for."""
SDK_PATH = "/api/v1/sdk/stream"
OFREP_PATH = "/ofrep/v1/event-stream"


@dataclass
class Replica:
    url: str
    token: str
    app: FastAPI

    def admin(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(params=["direct", "asgi"])
def replica(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replica]:
    """A fresh server (no stream ever opened) whose periodic resync never comes."""
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("window"),
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        sse_heartbeat_seconds=0.5,
        rollout_tick_seconds=0,
    )
    protocol = TransportExposingProtocol if request.param == "direct" else "auto"
    uv_server, thread, url, app = _serve(settings, LogSink(), http=protocol)
    app.state.delivery.hub.resync_interval = 3600.0  # before any stream binds the hub
    try:
        yield Replica(url, token, app)
    finally:
        uv_server.should_exit = True
        thread.join(timeout=10)
        app.state.services.store.close()


class CommitAfterFirstRead:
    """Wraps :meth:`SnapshotService.current`: once armed, the next read of `project`'s
    production commits `change` after reading and before returning, which is the window between
    a stream's first snapshot and its subscription."""

    def __init__(self, snapshots: SnapshotService, project: str, change: Callable[[], Any]):
        self._read = snapshots.current
        self._project = project
        self._change = change
        self._armed = threading.Event()
        self.fired = threading.Event()

    def arm(self) -> None:
        self._armed.set()

    def __call__(self, ref: EnvironmentRef, **options: Any) -> Snapshot | None:
        snapshot = self._read(ref, **options)
        ours = (ref.project_key, ref.environment) == (self._project, "production")
        if ours and self._armed.is_set():
            self._armed.clear()
            self._change()
            self.fired.set()
        return snapshot


def setup_project(replica: Replica) -> tuple[str, str]:
    """A project with one flag (off) and a server key for production."""
    with replica.admin() as admin:
        project = unique("w")
        created = admin.post("/api/v1/projects", json={"key": project, "name": "W"})
        assert created.status_code == 201, created.text
        create_flag(admin, project, "new-checkout")
        token = admin.post(
            "/api/v1/tokens",
            json={"kind": "server", "name": "k", "project": project, "environment": "production"},
        )
        assert token.status_code == 201, token.text
    return project, token.json()["token"]


def toggle(replica: Replica, project: str, enabled: bool) -> None:
    with replica.admin() as admin:
        response = admin.post(
            f"/api/v1/projects/{project}/environments/production/flags/new-checkout/toggle",
            json={"enabled": enabled},
        )
    assert response.status_code == 200, response.text


def next_event(stream: EventReader, deadline: float) -> Event:
    """The next event that is not a heartbeat, before `deadline` (monotonic)."""
    while time.monotonic() < deadline:
        event = stream.next(comments=True)
        if event.data:
            return event
    raise AssertionError(f"no event within {DEADLINE} s: the change was missed")


@pytest.mark.parametrize("path", [SDK_PATH, OFREP_PATH])
@pytest.mark.parametrize("busy", [False, True], ids=["first-stream", "loop-bound"])
def test_a_change_between_the_first_read_and_the_subscription_is_pushed(
    replica: Replica, monkeypatch: pytest.MonkeyPatch, path: str, busy: bool
) -> None:
    project, key = setup_project(replica)
    snapshots: SnapshotService = replica.app.state.delivery.snapshots
    hook = CommitAfterFirstRead(snapshots, project, lambda: toggle(replica, project, True))
    monkeypatch.setattr(snapshots, "current", hook)
    with ExitStack() as streams:
        if busy:  # another environment streams: the hub's loop is bound, this topic is not
            _, other_key = setup_project(replica)
            other = streams.enter_context(open_stream(replica.url, other_key))
            assert other.next().event == "snapshot"
        hook.arm()
        stream = streams.enter_context(open_stream(replica.url, key, path=path))
        assert hook.fired.is_set(), "the stream's first read committed the change"
        deadline = time.monotonic() + DEADLINE
        first = next_event(stream, deadline)
        change = next_event(stream, deadline)
    assert int(change.id or 0) == int(first.id or 0) + 1
    if path == SDK_PATH:
        assert first.event == "snapshot"
        assert first.json()["document"]["flags"]["new-checkout"]["enabled"] is False
        assert change.event == "change"
        assert change.json()["document"]["flags"]["new-checkout"]["enabled"] is True
    else:
        assert first.json()["type"] == change.json()["type"] == "refetchEvaluation"
