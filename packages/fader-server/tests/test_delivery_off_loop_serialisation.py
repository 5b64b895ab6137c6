"""Snapshots are serialised and events framed in worker threads, never on the event loop.

The event loop serves every stream of the process: a document of a few megabytes serialised on
it stalls them all. The first stream of an environment is where this used to slip through (the
topic's first update was made on the loop, and the stream's first event serialised the snapshot
there). Each serialiser of the delivery path is wrapped to record whether it runs on a thread
with a running event loop; the first streams of a fresh environment (SDK snapshots, SDK patches,
OFREP), a change, and a stream opened after it, must not record a single call there. Both ways
of writing streams: direct sinks under ``fader serve``'s protocol, and plain ASGI.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, _serve
from server_api import create_flag, unique
from sse import open_stream

from fader_server.delivery import frames, ofrep, snapshots
from fader_server.http_protocol import TransportExposingProtocol
from fader_server.settings import Settings

SDK_PATH = "/api/v1/sdk/stream"
OFREP_PATH = "/ofrep/v1/event-stream"


@dataclass
class Replica:
    url: str
    token: str

    def admin(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module", params=["direct", "asgi"])
def replica(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replica]:
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("off-loop"),
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        sse_heartbeat_seconds=0.5,
        rollout_tick_seconds=0,
    )
    protocol = TransportExposingProtocol if request.param == "direct" else "auto"
    uv_server, thread, url, app = _serve(settings, LogSink(), http=protocol)
    try:
        yield Replica(url, token)
    finally:
        uv_server.should_exit = True
        thread.join(timeout=10)
        app.state.services.store.close()


@dataclass
class Recorder:
    """Which serialisers ran, and which of them ran on an event loop's thread."""

    calls: list[str] = field(default_factory=list)
    on_loop: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                running = True
            except RuntimeError:
                running = False
            with self._lock:
                self.calls.append(name)
                if running:
                    self.on_loop.append(f"{name} on {threading.current_thread().name}")
            return function(*args, **kwargs)

        return recorded


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    found = Recorder()
    for module, name in [
        (snapshots, "_json"),  # Snapshot.body: the whole document
        (ofrep, "encode"),  # OFREP notifications
        (frames, "chunk"),  # HTTP/1.1 framing of events for direct writes
        (frames, "patch_event"),  # patch events (a diff and its JSON)
    ]:
        monkeypatch.setattr(
            module, name, found.wrap(f"{module.__name__}.{name}", getattr(module, name))
        )
    sse_parts = snapshots.Snapshot.sse_parts
    monkeypatch.setattr(
        snapshots.Snapshot, "sse_parts", found.wrap("Snapshot.sse_parts", sse_parts)
    )
    return found


def _environment(replica: Replica) -> tuple[str, str, httpx.Client]:
    admin = replica.admin()
    project = unique("ol")
    created = admin.post("/api/v1/projects", json={"key": project, "name": "Off loop"})
    assert created.status_code == 201, created.text
    create_flag(admin, project, "new-checkout")
    token = admin.post(
        "/api/v1/tokens",
        json={"kind": "server", "name": "k", "project": project, "environment": "production"},
    )
    assert token.status_code == 201, token.text
    return project, token.json()["token"], admin


def _toggle(admin: httpx.Client, project: str, enabled: bool) -> None:
    response = admin.post(
        f"/api/v1/projects/{project}/environments/production/flags/new-checkout/toggle",
        json={"enabled": enabled},
    )
    assert response.status_code == 200, response.text


def test_first_streams_of_an_environment_and_their_changes_serialise_off_the_loop(
    replica: Replica, recorder: Recorder
) -> None:
    project, key, admin = _environment(replica)
    with ExitStack() as stack:
        stack.callback(admin.close)
        first = stack.enter_context(open_stream(replica.url, key, path=SDK_PATH))
        opening = first.next()
        assert opening.event == "snapshot"
        version = int(opening.id or 0)
        patches = stack.enter_context(open_stream(replica.url, key, patches=True))
        assert patches.next().event == "snapshot"
        notifications = stack.enter_context(open_stream(replica.url, key, path=OFREP_PATH))
        assert notifications.next().json()["type"] == "refetchEvaluation"

        _toggle(admin, project, True)
        change = first.next()
        assert (change.event, int(change.id or 0)) == ("change", version + 1)
        assert change.json()["document"]["flags"]["new-checkout"]["enabled"] is True
        patch = patches.next()
        assert (patch.event, patch.json()["base"]) == ("patch", version)
        assert int(notifications.next().id or 0) == version + 1

        later = stack.enter_context(open_stream(replica.url, key, path=SDK_PATH))
        assert int(later.next().id or 0) == version + 1
        _toggle(admin, project, False)
        for stream in (first, later):
            assert int(stream.next().id or 0) == version + 2
    assert "fader_server.delivery.snapshots._json" in recorder.calls, "the recorder is wired"
    assert "fader_server.delivery.ofrep.encode" in recorder.calls
    on_loop = sorted(set(recorder.on_loop))
    assert not on_loop, f"serialised on the event loop: {on_loop}"
