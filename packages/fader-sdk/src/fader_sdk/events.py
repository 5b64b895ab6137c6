"""Exposure and custom events: a bounded queue drained in batches by one background thread.

Why bounded and counted: an application must not run out of memory because Fader is down. When
the queue is full a new event is dropped and counted (`dropped`), so the loss is visible in the
application's own metrics instead of silent or unbounded.

Why batches: one ``POST /api/v1/sdk/events`` per event would cost more than the evaluation it
records; the protocol allows up to 1,000 items per request. A batch that fails with a retryable
error goes back to the front of the queue (as far as room allows) and is retried at the next
interval; a non-retryable answer (e.g. a rejected key) stops sending, and everything after that
is counted as dropped. `close()` sends what is left, once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from fader_sdk import retry
from fader_sdk.sources import EVENTS_PATH

log = logging.getLogger("fader_sdk")

MAX_BATCH = 1000  # the protocol's limit per request

Event = dict[str, Any]


class EventProcessor:
    """Queues events from any thread; a daemon thread posts them every `flush_interval`."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        capacity: int = 10_000,
        batch_size: int = MAX_BATCH,
        flush_interval: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self.capacity = capacity
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.flush_interval = flush_interval
        self._now = wall_clock
        self._queue: deque[Event] = deque()
        self._dropped = 0
        self._disabled = False
        self._closed = False
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()  # one POST at a time keeps order and counts exact
        self._thread = threading.Thread(target=self._run, name="fader-events", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Events lost to a full queue, a closed processor or a failed delivery."""
        return self._dropped

    @property
    def pending(self) -> int:
        return len(self._queue)

    def record(self, event: Event) -> bool:
        """Queue `event` (its timestamp is added); `False` when it was dropped instead."""
        with self._cond:
            if self._closed or self._disabled or len(self._queue) >= self.capacity:
                self._dropped += 1
                return False
            event.setdefault("timestamp", self._now())
            self._queue.append(event)
            if len(self._queue) >= self.batch_size:
                self._cond.notify()
            return True

    def flush(self) -> None:
        """Send everything queued now, from the calling thread; stops at the first failure."""
        with self._send_lock:
            while self._send_one_batch():
                pass

    def close(self) -> None:
        """Stop accepting events, send what is queued (one attempt), stop the thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10.0)
        with self._send_lock:
            while self._send_one_batch(final=True):
                pass

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._closed and len(self._queue) < self.batch_size:
                    self._cond.wait(self.flush_interval)
                if self._closed:
                    return
            self.flush()

    def _send_one_batch(self, *, final: bool = False) -> bool:
        """POST one batch; `True` if there may be more to send now."""
        with self._cond:
            size = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
        if not batch:
            return False
        failure = self._post(batch)
        if failure is None:
            return True
        if failure.retryable and not final:
            log.warning(
                "fader: could not send %d events, will retry: %s", len(batch), failure.message
            )
            self._requeue(batch)
            return False
        with self._cond:
            self._dropped += len(batch)
            if not failure.retryable:
                self._disabled = True
                self._dropped += len(self._queue)
                self._queue.clear()
        log.error("fader: dropped %d events: %s", len(batch), failure.message)
        return False

    def _post(self, batch: list[Event]) -> retry.Failure | None:
        try:
            response = self._http.post(EVENTS_PATH, json={"events": batch})
        except httpx.HTTPError as error:
            return retry.from_exception(error)
        if response.is_success:
            return None
        return retry.from_response(response)

    def _requeue(self, batch: list[Event]) -> None:
        with self._cond:
            room = max(0, self.capacity - len(self._queue))
            keep = batch[:room]
            self._dropped += len(batch) - len(keep)
            self._queue.extendleft(reversed(keep))
