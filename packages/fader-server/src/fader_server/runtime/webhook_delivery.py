"""The webhook delivery worker: posts the notification outbox, on every replica, once.

Every audited change of a project writes its outbox rows in its own transaction
(:mod:`fader_server.storage.ports.outbox`); this worker, one thread per process, polls for due
rows, claims a batch (a short write transaction: PostgreSQL ``FOR UPDATE SKIP LOCKED``, so
replicas take disjoint rows; SQLite serialises claims), posts each one outside any transaction,
and records the attempt. Because the rows are in the database, a delivery survives a crash or a
restart: a claim is a lease (:data:`LEASE`), and a replica that dies mid-post leaves its claim
to run out and the delivery to be claimed again.

Semantics: each (change, webhook) pair is posted once, unless an attempt's outcome is unknown
to Fader (the receiver timed out, or the process died between its POST and recording the
answer): then it is posted again. That is at-least-once, with ``X-Fader-Delivery`` the same
across every attempt so receivers can drop duplicates.

Retries: a 5xx answer, a 429, or a network failure (refused, timeout, TLS) is retried with
exponential backoff and jitter (:data:`FIRST_BACKOFF` doubling up to :data:`MAX_BACKOFF`,
each delay drawn between half and all of it) until :data:`ATTEMPTS` attempts, then the
delivery is ``failed``. Any other 4xx (and a 3xx: redirects are not followed) fails at once:
the receiver said no. An address the outbound policy blocks fails at once too: it stays
blocked until the operator changes ``FADER_OUTBOUND_ALLOW``.

Every delivery goes through :mod:`fader_server.runtime.outbound_http` (the address policy at
every connection, a total deadline, a byte cap). Logs name the webhook's id, host and delivery
id, and the outcome as a status code or a fixed error class: never the secret, never the URL's
path (a Slack webhook URL is itself a credential), never the receiver's answer.

The worker also keeps the delivery log bounded: every :data:`PRUNE_INTERVAL` it deletes
finished deliveries older than `retention` or beyond the newest `keep_per_webhook` of their
webhook (idempotent, so every replica may do it).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from fader_server.errors import StorageUnavailableError
from fader_server.logs import get_logger
from fader_server.rollout_logic.notifications import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from fader_server.runtime import outbound_http
from fader_server.runtime.outbound_http import FetchError
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy
from fader_server.services.webhook_messages import message
from fader_server.services.webhooks import DeliveryQueue
from fader_server.storage.ports.outbox import ClaimedDelivery, DeliveryAttempt, DeliveryStatus

ATTEMPTS = 8
"""Attempts per delivery (and per redelivery) before it is failed."""
FIRST_BACKOFF = 10.0
"""Seconds before the first retry; each next one doubles, up to :data:`MAX_BACKOFF`."""
MAX_BACKOFF = 3600.0
TIMEOUT = 10.0
"""Seconds an attempt may take in all (resolution, connection, TLS, answer)."""
LEASE = timedelta(seconds=60)
"""How long a claim holds a delivery: longer than an attempt can take."""
POLL = 0.5
"""Seconds between looks for due deliveries."""
BATCH = 20
"""Deliveries claimed at a time."""
MAX_ANSWER = 4096
"""A receiver's answer is not used; at most this much of it is read."""
RETENTION = timedelta(days=14)
KEEP_PER_WEBHOOK = 1000
PRUNE_INTERVAL = 600.0
PRUNE_BATCH = 1000


def retryable(status: int | None, error: str | None) -> bool:
    """Whether an attempt may succeed later: 5xx, 429, or a network failure that is not the
    outbound policy's refusal."""
    if status is None:
        return error != "blocked"
    return status >= 500 or status == 429


class DeliveryWorker:
    def __init__(
        self,
        queue: DeliveryQueue,
        *,
        public_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        http: httpx.Client | None = None,
        policy: OutboundPolicy = DENY_INTERNAL,
        attempts: int = ATTEMPTS,
        first_backoff: float = FIRST_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        timeout: float = TIMEOUT,
        retention: timedelta = RETENTION,
        keep_per_webhook: int = KEEP_PER_WEBHOOK,
    ) -> None:
        self._queue = queue
        self._public_url = public_url
        self._clock = clock
        self._http = http or outbound_http.client(policy, user_agent="fader-webhooks")
        self._attempts = attempts
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._timeout = timeout
        self._retention = retention
        self._keep = keep_per_webhook
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = get_logger()

    # ------------------------------------------------------------------ work
    def run_once(self) -> int:
        """Claim and post one batch of due deliveries; how many were posted."""
        claimed = self._queue.claim(self._clock(), LEASE, BATCH)
        for item in claimed:
            if self._stop.is_set():
                break  # the lease runs out; another replica (or this one restarted) goes on
            self.deliver(item)
        return len(claimed)

    def deliver(self, item: ClaimedDelivery) -> DeliveryStatus:
        """Post one claimed delivery and record the attempt; the delivery's new status."""
        delivery = item.delivery
        body = json.dumps(
            message(
                item.entry,
                project=item.project_key,
                event=delivery.event,
                public_url=self._public_url,
                delivery_id=delivery.delivery_id,
            ),
            separators=(",", ":"),
            default=str,
        ).encode()
        timestamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(item.secret, timestamp, body),
            DELIVERY_HEADER: delivery.delivery_id,
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            answer = outbound_http.fetch(
                self._http,
                "POST",
                item.url,
                content=body,
                headers=headers,
                deadline=started + self._timeout,
                limit=MAX_ANSWER,
                truncate=True,
            )
            status = answer.status
        except FetchError as exc:
            error = exc.error
        duration = round((time.monotonic() - started) * 1000, 1)
        now = self._clock()
        attempt_number = item.round_attempt
        next_at: datetime | None = None
        result: DeliveryStatus
        if status is not None and 200 <= status < 300:
            result = "delivered"
        elif retryable(status, error) and attempt_number < self._attempts:
            result = "pending"
            delay = min(self._max_backoff, self._first_backoff * 2 ** (attempt_number - 1))
            jitter = 0.5 + random.random() / 2
            next_at = now + timedelta(seconds=delay * jitter)
        else:
            result = "failed"
        recorded = self._queue.finish(
            item, DeliveryAttempt(now, status, error, duration, next_at), result
        )
        fields = {
            "webhook": delivery.webhook_id,
            "host": urlsplit(item.url).hostname or "?",
            "delivery": delivery.delivery_id,
            "event_type": delivery.event,
            "attempt": attempt_number,
            "outcome": f"HTTP {status}" if status is not None else error,
            "duration_ms": duration,
        }
        if not recorded:
            self._log.warning("webhook_claim_lost", **fields)
        elif result == "delivered":
            self._log.info("webhook_delivered", **fields)
        elif result == "pending":
            self._log.info(
                "webhook_retry", next_attempt_at=next_at.isoformat() if next_at else None, **fields
            )
        else:
            self._log.warning("webhook_failed", **fields)
        return result

    def prune(self) -> int:
        """Delete old finished deliveries in batches; how many went."""
        before = self._clock() - self._retention
        total = 0
        while True:
            pruned = self._queue.prune(before, self._keep, PRUNE_BATCH)
            total += pruned
            if pruned < PRUNE_BATCH:
                return total

    # ------------------------------------------------------------ background
    def start(self, poll: float = POLL, prune_interval: float = PRUNE_INTERVAL) -> None:
        """Poll every `poll` seconds and prune every `prune_interval`, in a daemon thread
        until :meth:`close`."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._loop, args=(poll, prune_interval), name="fader-webhooks", daemon=True
        )
        self._thread.start()

    def _loop(self, poll: float, prune_interval: float) -> None:
        next_prune = time.monotonic() + min(30.0, prune_interval)
        while not self._stop.is_set():
            try:
                busy = self.run_once()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + prune_interval
                    self.prune()
            except StorageUnavailableError:
                busy = 0
                self._log.warning("webhook_delivery_deferred", reason="database unavailable")
            except Exception:  # a bug must not end notifications for good
                busy = 0
                self._log.exception("webhook_delivery_error")
            if not busy:
                self._stop.wait(poll)

    def close(self, timeout: float = 15.0) -> None:
        """Stop after the attempt in flight (claims not yet posted run out their lease)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self._http.close()
