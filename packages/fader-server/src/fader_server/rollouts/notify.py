"""Rollout notifications: signed webhook deliveries with a Slack-compatible body.

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

Deliveries never run inside a database transaction: the scheduler commits its decision first,
then hands the deliveries to :class:`Notifier`, whose one background thread posts them and
retries 5xx answers and network errors with exponential backoff. The outcome is logged with
the webhook's id and host only: never the secret, never the URL's path (a Slack webhook URL
is itself a credential), and as a status code or a fixed error class, never the receiver's
answer. Deliveries go through :mod:`fader_server.outbound`: a webhook whose host resolves to
an internal address is not posted to (``blocked``, not retried) unless the operator allows it,
and each attempt ends by its deadline, however slowly the receiver answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from fader_server import outbound
from fader_server.logs import get_logger
from fader_server.outbound import DENY_INTERNAL, FetchError, OutboundPolicy
from fader_server.rollouts.plan import JSON

SIGNATURE_HEADER = "X-Fader-Signature"
TIMESTAMP_HEADER = "X-Fader-Timestamp"
DELIVERY_HEADER = "X-Fader-Delivery"
_MAX_TEXT = 2900  # Slack's limit for a text object is 3000 characters
_MAX_ANSWER = 4096  # a receiver's answer is not used; at most this much of it is read

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
class Delivery:
    """One body for one webhook."""

    webhook_id: int
    url: str
    secret: str = field(repr=False)
    body: bytes
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


def deliveries(webhooks: Sequence[Any], note: Notification) -> list[Delivery]:
    """The body, encoded once, for every webhook (`id`, `url`, `secret` attributes)."""
    body = json.dumps(message(note), separators=(",", ":"), default=str).encode()
    return [Delivery(w.id, w.url, w.secret, body) for w in webhooks]


class Notifier:
    """Posts deliveries from a background thread, retrying what may succeed later."""

    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        attempts: int = 5,
        first_backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 10.0,
        wall_clock: Callable[[], float] = time.time,
        policy: OutboundPolicy = DENY_INTERNAL,
    ) -> None:
        self._http = http or outbound.client(policy, user_agent="fader-webhooks")
        self._timeout = timeout
        self._attempts = attempts
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._now = wall_clock
        self._queue: queue.Queue[Delivery] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._log = get_logger()

    def submit(self, items: Sequence[Delivery]) -> None:
        if not items:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fader-webhooks", daemon=True
                )
                self._thread.start()
        for item in items:
            self._queue.put(item)

    def close(self, timeout: float = 5.0) -> None:
        """Give queued deliveries up to `timeout` seconds, then stop."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.deliver(item)
            except Exception:  # a bug must not end notifications for good
                self._log.exception("webhook_failed", webhook=item.webhook_id)
            finally:
                self._queue.task_done()

    def deliver(self, item: Delivery) -> bool:
        """POST until delivered, refused (4xx) or out of attempts; True when delivered."""
        host = urlsplit(item.url).hostname or "?"
        for attempt in range(1, self._attempts + 1):
            timestamp = int(self._now())
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(item.secret, timestamp, item.body),
                DELIVERY_HEADER: item.id,
            }
            started = time.monotonic()
            try:
                answer = outbound.fetch(
                    self._http,
                    "POST",
                    item.url,
                    content=item.body,
                    headers=headers,
                    deadline=started + self._timeout,
                    limit=_MAX_ANSWER,
                    truncate=True,
                )
                status: int | None = answer.status
                outcome = f"HTTP {status}"
            except FetchError as exc:
                status, outcome = None, exc.error
            fields = {
                "webhook": item.webhook_id,
                "host": host,
                "delivery": item.id,
                "attempt": attempt,
                "outcome": outcome,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
            if status is not None and status < 300:
                self._log.info("webhook_delivered", **fields)
                return True
            # a blocked address stays blocked until the operator changes the setting
            retryable = (status is None and outcome != "blocked") or (
                status is not None and (status >= 500 or status in (408, 429))
            )
            if not retryable or attempt == self._attempts:
                self._log.warning("webhook_failed", **fields)
                return False
            self._log.info("webhook_retry", **fields)
            delay = min(self._max_backoff, self._first_backoff * 2 ** (attempt - 1))
            if self._stop.wait(delay * (0.5 + random.random() / 2)):
                return False
        return False
