"""What rollout webhooks are told: a Slack-compatible body, signed so receivers can trust it.

Body: Slack's incoming-webhook message shape (``text`` as the fallback, ``blocks`` for layout;
https://api.slack.com/messaging/webhooks), plus a ``fader`` object with the structured event,
so one payload serves a Slack channel and a program alike.

Signature (so a receiver can tell Fader's deliveries from forgeries and replays)::

    X-Fader-Timestamp: <unix seconds>
    X-Fader-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + raw body, keyed with the secret>

The timestamp is inside the signed content, so an old delivery cannot be replayed with a fresh
timestamp; receivers should compare signatures in constant time and reject timestamps more than
a few minutes old. ``X-Fader-Delivery`` is a unique id per delivery (the same across its
retries), for receivers that want to drop duplicates.

This module only builds bodies and signatures. The use cases build a :class:`WebhookDelivery`
per webhook inside the transaction that decided (:mod:`fader_server.services.rollouts`), and
:class:`~fader_server.runtime.notifier.Notifier` posts them after the commit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fader_server.rollout_logic.plan import JSON

SIGNATURE_HEADER = "X-Fader-Signature"
TIMESTAMP_HEADER = "X-Fader-Timestamp"
DELIVERY_HEADER = "X-Fader-Delivery"
_MAX_TEXT = 2900  # Slack's limit for a text object is 3000 characters

_HEADLINES = {
    "advanced": "moved to stage *{stage}*",
    "awaiting_approval": "is healthy at stage *{stage}* and waits for approval",
    "completed": "is complete (last stage *{stage}*)",
    "rolled_back": "was *rolled back* at stage *{stage}*",
    "started": "started at stage *{stage}*",
    "paused": "was paused at stage *{stage}* (its gates still guard it)",
    "resumed": "resumed at stage *{stage}*",
    "aborted": "was *aborted* at stage *{stage}*; the previous configuration is served again",
}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Fader-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and what the tests check): recompute, compare in constant time."""
    try:
        expected = sign(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signature)


@dataclass(frozen=True, slots=True)
class Notification:
    """Something a plan did that its owners should hear about."""

    event: str  # one of _HEADLINES: what the scheduler decided, or what a person did
    project: str
    flag: str
    environment: str
    plan_id: int
    stage: str
    reason: str
    actor: str
    at: str
    results: list[JSON] = field(default_factory=list)
    incident_id: int | None = None


def message(note: Notification) -> JSON:
    """The webhook body: Slack blocks, a plain-text fallback, and the structured event."""
    headline = _HEADLINES.get(note.event, note.event).format(stage=note.stage)
    title = f"Rollout of `{note.flag}` in *{note.environment}* {headline}"
    context = f"project {note.project} · plan #{note.plan_id}"
    if note.incident_id is not None:
        context += f" · incident #{note.incident_id}"
    context += f" · {note.actor}"
    blocks: list[JSON] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": title}},
        {"type": "section", "text": {"type": "mrkdwn", "text": note.reason[:_MAX_TEXT]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    ]
    plain = f"Fader: rollout of {note.flag} in {note.environment}: {note.event} ({note.reason})"
    return {
        "text": plain[:_MAX_TEXT],
        "blocks": blocks,
        "fader": {
            "event": note.event,
            "project": note.project,
            "flag": note.flag,
            "environment": note.environment,
            "plan": note.plan_id,
            "stage": note.stage,
            "reason": note.reason,
            "actor": note.actor,
            "at": note.at,
            "gates": note.results,
            "incident": note.incident_id,
        },
    }


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One signed body for one webhook (what :class:`~fader_server.runtime.notifier.Notifier`
    posts, and retries under the same `id`)."""

    webhook_id: int
    url: str
    secret: str = field(repr=False)
    body: bytes
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class Endpoint(Protocol):
    """What a delivery needs of a webhook: a stored
    :class:`~fader_server.storage.ports.records.Webhook` has it."""

    @property
    def id(self) -> int: ...
    @property
    def url(self) -> str: ...
    @property
    def secret(self) -> str: ...


def deliveries(webhooks: Sequence[Endpoint], note: Notification) -> list[WebhookDelivery]:
    """The body, encoded once, for every webhook."""
    body = json.dumps(message(note), separators=(",", ":"), default=str).encode()
    return [WebhookDelivery(w.id, w.url, w.secret, body) for w in webhooks]
