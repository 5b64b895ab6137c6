"""Notifications that are not lost: the outbox written with each audited change, delivered by
the worker to real HTTP receivers (SQLite and PostgreSQL), across retries, restarts and
replicas.

- a committed change reaches a subscribed webhook, signed, with a link back to the console,
  and only the event types it subscribed to;
- 5xx answers are retried under the same delivery id, and the delivery log shows each attempt;
- a server SIGKILLed after the commit delivers once restarted;
- two replicas on one PostgreSQL database deliver every notification exactly once;
- an address the outbound policy blocks fails at once, never retried;
- no secret in any log line.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, _serve, dedicated_postgres_database
from processes import FaderProcess, free_port
from server_api import create_flag
from server_clock import ServerClock, clocked_services

from fader_server.rollout_logic.notifications import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from fader_server.runtime.webhook_delivery import DeliveryWorker
from fader_server.services import Services
from fader_server.services.outbound_policy import DENY_INTERNAL
from fader_server.settings import Settings

T = TypeVar("T")
FLAG = "checkout"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: Any = self.server
        with server.lock:
            server.received.append((dict(self.headers), body))
            status = server.answers.pop(0) if server.answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def receiver(*answers: int) -> Iterator[Any]:
    """A webhook receiver on loopback answering `answers` in turn, then 200."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []
    server.answers = list(answers)
    server.lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def hook_url(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_port}/hooks/T000/B000/secret-path"


_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


class Api:
    def __init__(self, url: str, token: str, project: str = "shop") -> None:
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.base = f"/api/v1/projects/{project}"
        self.project = project
        _OPEN.append(self.client)

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        answer = self.client.request(method, self.base + path, json=body)
        assert answer.status_code == expect, answer.text
        return answer.json() if answer.content else None

    def setup(self) -> None:
        created = self.client.post("/api/v1/projects", json={"key": self.project, "name": "Shop"})
        assert created.status_code == 201, created.text
        create_flag(self.client, self.project, FLAG)

    def toggle(self, on: bool) -> None:
        path = f"{self.base}/environments/development/flags/{FLAG}"
        current = self.client.get(path)
        assert current.status_code == 200, current.text
        answer = self.client.post(
            path + "/toggle", json={"enabled": on}, headers={"If-Match": current.headers["ETag"]}
        )
        assert answer.status_code == 200, answer.text


@dataclass
class Running:
    url: str
    token: str
    clock: ServerClock
    log: LogSink
    services: Services


@contextlib.contextmanager
def clocked_server(backend: str, data_dir: Path, *, worker: bool = True) -> Iterator[Running]:
    """A server in this process over a clock the test moves, its delivery worker polling (as
    `fader serve` starts it) unless `worker` is False."""
    token = "fdr_admin_" + secrets.token_urlsafe(24)
    with contextlib.ExitStack() as stack:
        database_url = None
        if backend == "postgresql":
            database_url = stack.enter_context(dedicated_postgres_database())
        settings = Settings(
            data_dir=data_dir,
            database_url=database_url,
            admin_password=ADMIN_PASSWORD,
            admin_token=token,
            rollout_tick_seconds=0,
            outbound_allow=("127.0.0.1/32",),
            public_url="https://fader.example.com/",
        )
        clock, sink = ServerClock(), LogSink()
        services = clocked_services(settings, clock)
        uv_server, thread, url, app = _serve(settings, sink, services=services)
        if worker:
            app.state.webhooks.start(poll=0.1)
        try:
            yield Running(url, token, clock, sink, services)
        finally:
            uv_server.should_exit = True
            thread.join(timeout=10)
            app.state.webhooks.close()
            app.state.scheduler.close()
            services.store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_committed_change_reaches_its_subscribers_signed_and_filtered(
    backend: str, tmp_path: Path
) -> None:
    with (
        clocked_server(backend, tmp_path) as server,
        receiver() as flags,
        receiver() as rollouts,
    ):
        api = Api(server.url, server.token)
        api.setup()
        hook = api.call("POST", "/webhooks", {"url": hook_url(flags), "events": ["flag"]}, 201)
        assert hook["events"] == ["flag"]
        other = api.call("POST", "/webhooks", {"url": hook_url(rollouts)}, 201)
        assert other["events"] == ["rollout"]  # the default: what webhooks always heard
        api.toggle(True)

        (headers, body) = wait_for("the flag change", lambda: list(flags.received))[0]
        assert verify(hook["secret"], headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        message = json.loads(body)
        link = f"https://fader.example.com/projects/shop/flags/{FLAG}"
        assert message["text"].startswith(f"[shop] Flag configuration {FLAG} in development")
        assert f"<{link}|Open in Fader>" in message["text"]
        fields = message["fader"]
        assert (fields["event"], fields["action"], fields["project"]) == ("flag", "enable", "shop")
        assert (fields["entity"]["type"], fields["entity"]["key"]) == ("config", FLAG)
        assert fields["environment"] == "development"
        audit = api.call("GET", f"/audit?entity_type=config&entity_key={FLAG}")["items"][0]
        assert (fields["actor"], fields["entity"]["version"]) == (audit["actor"], audit["version"])
        assert fields["changes"] == [d["path"] for d in audit["diff"]]
        assert fields["delivery"] == headers[DELIVERY_HEADER]

        log = wait_for(
            "the delivery recorded",
            lambda: [
                d
                for d in api.call("GET", f"/webhooks/{hook['id']}/deliveries")["items"]
                if d["status"] == "delivered"
            ],
        )
        assert log[0]["delivery_id"] == headers[DELIVERY_HEADER]
        assert log[0]["log"][0]["status_code"] == 200
        time.sleep(1.0)  # the worker polls every 0.1 s: the rollout-only webhook had its chance
        assert rollouts.received == []
        assert len(flags.received) == 1  # delivered once

        text = server.log.text()
        assert "webhook_delivered" in text
        for secret in (hook["secret"], other["secret"], "secret-path"):
            assert secret not in text


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_server_errors_are_retried_with_one_delivery_id(backend: str, tmp_path: Path) -> None:
    with clocked_server(backend, tmp_path) as server, receiver(500, 503) as hooks:
        api, clock = Api(server.url, server.token), server.clock
        api.setup()
        hook = api.call("POST", "/webhooks", {"url": hook_url(hooks), "events": ["flag"]}, 201)
        api.toggle(True)
        for attempts in (1, 2, 3):
            wait_for(f"attempt {attempts}", lambda n=attempts: len(hooks.received) >= n)
            clock.advance(3600)  # past any backoff: the retry is due at once
        time.sleep(1.0)
        assert len(hooks.received) == 3  # delivered at the third attempt, then never again
        assert len({h[DELIVERY_HEADER] for h, _ in hooks.received}) == 1
        for headers, body in hooks.received:  # re-signed at every attempt
            assert verify(
                hook["secret"], headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER]
            )
        (delivery,) = wait_for(
            "the delivery recorded",
            lambda: [
                d
                for d in api.call("GET", f"/webhooks/{hook['id']}/deliveries")["items"]
                if d["status"] == "delivered"
            ],
        )
        assert [a["status_code"] for a in delivery["log"]] == [200, 503, 500]
        assert delivery["log"][1]["next_attempt_at"] is not None
        assert delivery["attempts"] == 3

        # redelivery: queued again now, with the same id
        again = api.call(
            "POST", f"/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver", expect=202
        )
        assert again["status"] == "pending"
        wait_for("the redelivery", lambda: len(hooks.received) >= 4)
        assert hooks.received[3][0][DELIVERY_HEADER] == delivery["delivery_id"]


def test_a_refusal_is_not_retried_and_a_blocked_address_fails_at_once(tmp_path: Path) -> None:
    """4xx (other than 429) fails for good after one attempt; so does an address the outbound
    policy blocks (here a worker without FADER_OUTBOUND_ALLOW), which is never connected to."""
    with clocked_server("sqlite", tmp_path) as server, receiver(404) as hooks:
        api = Api(server.url, server.token)
        api.setup()
        hook = api.call("POST", "/webhooks", {"url": hook_url(hooks), "events": ["flag"]}, 201)
        api.toggle(True)
        wait_for("the refused attempt", lambda: hooks.received)
        server.clock.advance(7200)
        time.sleep(1.0)
        assert len(hooks.received) == 1
        (refused,) = api.call("GET", f"/webhooks/{hook['id']}/deliveries")["items"]
        assert (refused["status"], refused["log"][0]["status_code"]) == ("failed", 404)
        assert refused["log"][0]["next_attempt_at"] is None

    with clocked_server("sqlite", tmp_path / "blocked", worker=False) as server:
        with receiver() as target:
            api = Api(server.url, server.token)
            api.setup()
            hook = api.call("POST", "/webhooks", {"url": hook_url(target), "events": ["flag"]}, 201)
            api.toggle(True)
            worker = DeliveryWorker(
                server.services.deliveries,
                public_url="https://fader.example.com",
                clock=server.clock,
                policy=DENY_INTERNAL,
            )
            try:
                assert worker.run_once() == 1
                server.clock.advance(7200)
                assert worker.run_once() == 0  # failed for good: not claimed again
            finally:
                worker.close()
            assert target.received == []
        (blocked,) = api.call("GET", f"/webhooks/{hook['id']}/deliveries")["items"]
        assert blocked["status"] == "failed"
        assert (blocked["log"][0]["error"], blocked["log"][0]["status_code"]) == ("blocked", None)


def test_a_server_killed_after_the_commit_delivers_once_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver answers the first attempt 503 and the server is SIGKILLed at once: the
    delivery waits in the database, and the restarted server posts it, same id."""
    monkeypatch.setenv("FADER_OUTBOUND_ALLOW", "127.0.0.1/32")
    token = "fdr_admin_" + secrets.token_urlsafe(24)
    server = FaderProcess(
        port=free_port(), admin_token=token, log_path=tmp_path / "serve.log", data_dir=tmp_path
    )
    with receiver(503) as hooks:
        server.start()
        try:
            api = Api(server.url, token)
            api.setup()
            hook = api.call("POST", "/webhooks", {"url": hook_url(hooks), "events": ["flag"]}, 201)
            api.toggle(True)
            wait_for("the first attempt", lambda: hooks.received)
            server.kill()
            assert len(hooks.received) == 1
            server.start()
            wait_for("the delivery after the restart", lambda: len(hooks.received) >= 2)
            first, second = hooks.received[0][0], hooks.received[1][0]
            assert first[DELIVERY_HEADER] == second[DELIVERY_HEADER]
            assert verify(
                hook["secret"],
                second[TIMESTAMP_HEADER],
                hooks.received[1][1],
                second[SIGNATURE_HEADER],
            )
            assert hook["secret"] not in server.output(limit=None)
        finally:
            server.kill()


def test_two_replicas_deliver_each_notification_exactly_once(tmp_path: Path) -> None:
    token = "fdr_admin_" + secrets.token_urlsafe(24)
    with (
        dedicated_postgres_database() as database_url,
        receiver() as hooks,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("FADER_OUTBOUND_ALLOW", "127.0.0.1/32")
        replicas = [
            FaderProcess(
                port=free_port(),
                admin_token=token,
                log_path=tmp_path / f"replica-{i}.log",
                data_dir=tmp_path / f"replica-{i}",
                database_url=database_url,
            )
            for i in range(2)
        ]
        try:
            for replica in replicas:
                replica.start()
            api = Api(replicas[0].url, token)
            api.setup()
            api.call("POST", "/webhooks", {"url": hook_url(hooks), "events": ["flag"]}, 201)
            changes = 20
            for i in range(changes):
                Api(replicas[i % 2].url, token).toggle(i % 2 == 0)
            wait_for("every delivery", lambda: len(hooks.received) >= changes)
            time.sleep(2.0)  # a duplicate, if any, would arrive now
            ids = [h[DELIVERY_HEADER] for h, _ in hooks.received]
            assert len(ids) == changes
            assert len(set(ids)) == changes
            versions = sorted(
                json.loads(b)["fader"]["entity"]["version"] for _, b in hooks.received
            )
            assert versions == list(range(versions[0], versions[0] + changes))
        finally:
            for replica in replicas:
                replica.kill()
