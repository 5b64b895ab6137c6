"""Webhook deliveries: Slack-compatible bodies, HMAC signatures over timestamp and body,
retries with backoff on 5xx and network errors, none on other 4xx."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import replace

import httpx

from fader_server.rollout_logic.notifications import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Notification,
    WebhookDelivery,
    deliveries,
    message,
    sign,
    verify,
)
from fader_server.runtime.notifier import Notifier

NOTE = Notification(
    event="rolled_back",
    project="shop",
    flag="new-checkout",
    environment="production",
    plan_id=7,
    stage="25%",
    reason="regression: error rate 9.00% vs control 1.00%",
    actor="rollout:7",
    at="2030-01-01T00:00:00+00:00",
    results=[{"gate": 0, "status": "regression"}],
    incident_id=3,
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


def notifier(hook: Hook, clock: list[float] | None = None) -> Notifier:
    times = iter(clock or [])
    return Notifier(
        httpx.Client(transport=httpx.MockTransport(hook)),
        attempts=4,
        first_backoff=0.001,
        wall_clock=lambda: next(times, 1_900_000_000.0),
    )


def test_the_body_is_a_slack_message_with_the_structured_event() -> None:
    body = message(NOTE)
    assert body["text"].startswith("Fader: rollout of new-checkout in production: rolled_back")
    assert [b["type"] for b in body["blocks"]] == ["section", "section", "context"]
    assert "*rolled back* at stage *25%*" in body["blocks"][0]["text"]["text"]
    assert "incident #3" in body["blocks"][2]["elements"][0]["text"]
    assert body["fader"]["incident"] == 3
    assert body["fader"]["gates"] == [{"gate": 0, "status": "regression"}]


def test_what_people_do_to_a_plan_reads_as_a_sentence_too() -> None:
    """Commands by a person (start, pause, resume, abort) are announced like the scheduler's
    decisions; an abort rewrites production, so its headline says what is served now."""
    headlines = {
        event: message(replace(NOTE, event=event, actor="user:ann", incident_id=None))["blocks"][0][
            "text"
        ]["text"]
        for event in ("started", "paused", "resumed", "aborted")
    }
    assert headlines["started"].endswith("started at stage *25%*")
    assert "paused at stage *25%*" in headlines["paused"]
    assert headlines["resumed"].endswith("resumed at stage *25%*")
    assert "*aborted* at stage *25%*" in headlines["aborted"]
    assert "previous configuration is served again" in headlines["aborted"]


def test_the_signature_covers_timestamp_and_body() -> None:
    body = b'{"text":"hi"}'
    expected = hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("secret", 1700000000, body) == "sha256=" + expected
    assert verify("secret", "1700000000", body, "sha256=" + expected)
    assert not verify("secret", "1700000001", body, "sha256=" + expected)
    assert not verify("secret", "1700000000", body + b" ", "sha256=" + expected)
    assert not verify("secret", "not-a-time", body, "sha256=" + expected)


def test_server_errors_and_network_failures_are_retried_with_one_delivery_id() -> None:
    hook = Hook(503, httpx.ConnectError("refused"), 200)
    (item,) = deliveries([_Webhook()], NOTE)
    assert notifier(hook, [100.0, 101.0, 102.0]).deliver(item)
    assert len(hook.requests) == 3
    assert {r.headers[DELIVERY_HEADER] for r in hook.requests} == {item.id}
    assert [r.headers[TIMESTAMP_HEADER] for r in hook.requests] == ["100", "101", "102"]
    for request in hook.requests:  # re-signed at every attempt, with its own timestamp
        assert verify(
            "whsec_test",
            request.headers[TIMESTAMP_HEADER],
            request.content,
            request.headers[SIGNATURE_HEADER],
        )
    assert json.loads(hook.requests[0].content)["fader"]["plan"] == 7


def test_a_refusal_is_not_retried_and_attempts_are_bounded() -> None:
    refused = Hook(404)
    assert not notifier(refused).deliver(WebhookDelivery(1, "https://h.example/x", "s", b"{}"))
    assert len(refused.requests) == 1
    failing = Hook(500, 500, 500, 500, 500)
    assert not notifier(failing).deliver(WebhookDelivery(1, "https://h.example/x", "s", b"{}"))
    assert len(failing.requests) == 4
    throttled = Hook(429, 200)
    assert notifier(throttled).deliver(WebhookDelivery(1, "https://h.example/x", "s", b"{}"))


def test_submitted_deliveries_are_sent_by_the_background_thread() -> None:
    hook = Hook()
    sender = notifier(hook)
    sender.submit(
        [
            WebhookDelivery(1, "https://a.example/x", "s", b"{}"),
            WebhookDelivery(2, "https://b.example/y", "s", b"{}"),
        ]
    )
    deadline = time.monotonic() + 10
    while len(hook.requests) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sender.close()
    assert sorted(r.url.host for r in hook.requests) == ["a.example", "b.example"]


class _Webhook:
    id = 1
    url = "https://hooks.example/services/T000/B000/XXXX"
    secret = "whsec_test"
