"""Posting rollout webhooks: one background thread, retries, and nothing secret in the logs.

Deliveries never run inside a database transaction: the use case that decided builds them
(:mod:`fader_server.rollout_logic.notifications` has the body and the signature), the caller
commits, then hands them to :class:`Notifier`, whose one background thread posts them and
retries 5xx answers and network errors with exponential backoff. The outcome is logged with
the webhook's id and host only: never the secret, never the URL's path (a Slack webhook URL
is itself a credential), and as a status code or a fixed error class, never the receiver's
answer. Deliveries go through :mod:`fader_server.runtime.outbound_http`: a webhook whose host
resolves to an internal address is not posted to (``blocked``, not retried) unless the operator
allows it, and each attempt ends by its deadline, however slowly the receiver answers.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import httpx

from fader_server.logs import get_logger
from fader_server.rollout_logic.notifications import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookDelivery,
    sign,
)
from fader_server.runtime import outbound_http
from fader_server.runtime.outbound_http import FetchError
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy

MAX_ANSWER = 4096
"""A receiver's answer is not used; at most this much of it is read."""


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
        self._http = http or outbound_http.client(policy, user_agent="fader-webhooks")
        self._timeout = timeout
        self._attempts = attempts
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._now = wall_clock
        self._queue: queue.Queue[WebhookDelivery] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._log = get_logger()

    def submit(self, items: Sequence[WebhookDelivery]) -> None:
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

    def deliver(self, item: WebhookDelivery) -> bool:
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
                answer = outbound_http.fetch(
                    self._http,
                    "POST",
                    item.url,
                    content=item.body,
                    headers=headers,
                    deadline=started + self._timeout,
                    limit=MAX_ANSWER,
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
