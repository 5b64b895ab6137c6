"""Webhook deliveries, unit by unit: the HMAC signature over timestamp and body, the Slack
message made from an audit entry (a release plan's included), what is retried, and the worker
over the in-memory store with ``httpx.MockTransport`` receivers (the real receivers, restarts
and replicas are ``test_webhook_outbox.py``)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fader_server.rollout_logic.notifications import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)
from fader_server.runtime.webhook_delivery import DeliveryWorker, retryable
from fader_server.services import Services
from fader_server.services.access import Principal
from fader_server.services.outbound_policy import OutboundPolicy
from fader_server.services.webhook_messages import console_path, message
from fader_server.services.webhooks import WebhookChange
from fader_server.storage.memory import MemoryStore
from fader_server.storage.ports import AuditEntry

ADMIN = Principal("user:admin", instance_admin=True)
FLAG = {"name": "A flag", "type": "boolean", "variants": {"on": True, "off": False}}
ROLLBACK = AuditEntry(
    id=9,
    project_id=1,
    at=datetime(2030, 1, 1, tzinfo=UTC),
    actor="rollout:7",
    action="rollback",
    entity_type="rollout",
    entity_key="7",
    environment="production",
    version=None,
    diff=[
        {"path": "/status", "before": "running", "after": "rolled_back"},
        {"path": "/evidence", "after": [{"gate": 0, "status": "regression"}]},
    ],
    comment="regression: error rate 9.00% vs control 1.00%",
)


class Hook:
    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world() -> tuple[Services, Clock]:
    clock = Clock()
    services = Services.over(MemoryStore(), clock, OutboundPolicy.parse(["hooks.example"]))
    services.projects.create(ADMIN, "shop", "Shop")
    return services, clock


def worker(services: Services, clock: Clock, hook: Hook) -> DeliveryWorker:
    return DeliveryWorker(
        services.deliveries,
        public_url="https://fader.example",
        clock=clock,
        http=httpx.Client(transport=httpx.MockTransport(hook)),
        attempts=4,
    )


def test_the_signature_covers_timestamp_and_body() -> None:
    body = b'{"text":"hi"}'
    expected = hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("secret", 1700000000, body) == "sha256=" + expected
    assert verify("secret", "1700000000", body, "sha256=" + expected)
    assert not verify("secret", "1700000001", body, "sha256=" + expected)
    assert not verify("secret", "1700000000", body + b" ", "sha256=" + expected)
    assert not verify("secret", "not-a-time", body, "sha256=" + expected)


def test_a_rollout_decision_reads_as_a_slack_message_with_the_structured_event() -> None:
    body = message(
        ROLLBACK, project="shop", event="rollout", public_url="https://f.example/", delivery_id="d"
    )
    link = "https://f.example/projects/shop/rollouts/7"
    assert body["text"].startswith("[shop] Release plan #7 in production: rollback by rollout:7")
    assert "rolled_back" in body["text"]
    assert body["text"].endswith(f"<{link}|Open in Fader>")
    assert [b["type"] for b in body["blocks"]] == ["section", "section", "context"]
    assert body["blocks"][1]["text"]["text"].startswith("regression: error rate")
    assert body["fader"]["rollout"] == {
        "plan": 7,
        "status": "rolled_back",
        "stage": None,
        "gates": [{"gate": 0, "status": "regression"}],
    }
    assert (body["fader"]["url"], body["fader"]["delivery"]) == (link, "d")


def test_every_entity_links_to_its_console_page() -> None:
    assert console_path("shop", "config", "new-checkout") == "/projects/shop/flags/new-checkout"
    assert console_path("shop", "segment", "staff") == "/projects/shop/segments/staff"
    assert console_path("shop", "change_request", "12") == "/projects/shop/change-requests/12"
    assert console_path("shop", "action_item", "4/2") == "/projects/shop/incidents/4"
    assert console_path("a b", "flag", "x/y") == "/projects/a%20b/flags/x"


def test_what_is_retried() -> None:
    assert [retryable(code, None) for code in (500, 503, 429, 404, 400, 301)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    errors = ("timeout", "refused", "tls", "blocked")
    assert [retryable(None, e) for e in errors] == [True, True, True, False]


def test_server_errors_and_network_failures_are_retried_with_one_delivery_id(
    world: tuple[Services, Clock],
) -> None:
    services, clock = world
    webhook = services.webhooks.create(
        ADMIN, "shop", "https://hooks.example/x", secret="whsec_test_0123456789", events=["flag"]
    )
    services.flags.create(ADMIN, "shop", "f", FLAG, None)
    hook = Hook(503, httpx.ConnectError("refused"), 200)
    sender = worker(services, clock, hook)
    try:
        for _ in range(3):
            assert sender.run_once() == 1
            assert sender.run_once() == 0  # not due again before its backoff
            clock.now += timedelta(hours=2)
    finally:
        sender.close()
    assert len(hook.requests) == 3
    assert len({r.headers[DELIVERY_HEADER] for r in hook.requests}) == 1
    for request in hook.requests:  # re-signed at every attempt, with its own timestamp
        assert verify(
            webhook.secret,
            request.headers[TIMESTAMP_HEADER],
            request.content,
            request.headers[SIGNATURE_HEADER],
        )
    assert json.loads(hook.requests[0].content)["fader"]["entity"]["type"] == "flag"
    (logged,) = services.webhooks.deliveries(ADMIN, "shop", webhook.id, limit=5)
    assert logged.status == "delivered"
    assert [(a.status_code, a.error) for a in logged.log] == [
        (200, None),
        (None, "refused"),
        (503, None),
    ]


def test_a_refusal_is_not_retried_and_attempts_are_bounded(
    world: tuple[Services, Clock],
) -> None:
    services, clock = world
    refused = services.webhooks.create(ADMIN, "shop", "https://hooks.example/a", events=["flag"])
    services.flags.create(ADMIN, "shop", "f", FLAG, None)
    hook = Hook(404)
    sender = worker(services, clock, hook)
    try:
        assert sender.run_once() == 1
        clock.now += timedelta(days=1)
        assert sender.run_once() == 0
        services.webhooks.delete(ADMIN, "shop", refused.id)
        failing = services.webhooks.create(
            ADMIN, "shop", "https://hooks.example/b", events=["flag"]
        )
        services.flags.create(ADMIN, "shop", "g", FLAG, None)
        hook.answers = [500] * 10
        while sender.run_once():
            clock.now += timedelta(days=1)
    finally:
        sender.close()
    assert len(hook.requests) == 1 + 4  # the refusal once; then the attempts limit
    (failed,) = services.webhooks.deliveries(ADMIN, "shop", failing.id, limit=5)
    assert (failed.status, failed.attempts, failed.log[0].next_attempt_at) == ("failed", 4, None)


def test_a_disabled_webhook_keeps_its_deliveries_until_enabled_and_retention_prunes(
    world: tuple[Services, Clock],
) -> None:
    services, clock = world
    webhook = services.webhooks.create(ADMIN, "shop", "https://hooks.example/a", events=["flag"])
    services.flags.create(ADMIN, "shop", "f", FLAG, None)
    services.webhooks.update(ADMIN, "shop", webhook.id, WebhookChange(enabled=False))
    services.flags.create(ADMIN, "shop", "g", FLAG, None)
    hook = Hook()
    sender = worker(services, clock, hook)
    try:
        assert sender.run_once() == 0  # one queued while enabled, held; none while disabled
        services.webhooks.update(ADMIN, "shop", webhook.id, WebhookChange(enabled=True))
        assert sender.run_once() == 1
        assert sender.prune() == 0  # recent
        clock.now += timedelta(days=15)
        assert sender.prune() == 1
    finally:
        sender.close()
    assert services.webhooks.deliveries(ADMIN, "shop", webhook.id, limit=5) == []
