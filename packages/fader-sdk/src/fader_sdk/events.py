"""Exposure and custom events: a bounded queue drained in batches by one background thread.

Why bounded and counted: an application must not run out of memory because Fader is down. When
the queue is full a new event is dropped and counted (`dropped`), so the loss is visible in the
application's own metrics instead of silent or unbounded.

Why batches: one ``POST /api/v1/sdk/events`` per event would cost more than the evaluation it
records; the protocol allows up to 1,000 items per request. A full batch goes out at once, the
rest at every `flush_interval`. A batch that fails with a retryable error goes back to the front
of the queue (as far as room allows) and nothing is sent before the next interval, however full
the queue. A batch the server refuses for its content (e.g. 422: a field over the server's limit)
is dropped and counted, and sending goes on: the next batch is different, and one odd event
must not silence a whole process's metrics. Any other non-retryable answer (e.g. a rejected
key) stops sending, and everything after that is counted as dropped. `close()` sends what is
left, once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

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
        self._discarded = False
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

    def discard(self, why: str) -> None:
        """Count an event that cannot be sent at all; logs the first such event only (this may
        be on a hot path), the count shows the rest."""
        with self._cond:
            self._dropped += 1
            first, self._discarded = not self._discarded, True
        if first:
            log.warning("fader: dropped an event (later ones are only counted): %s", why)

    def flush(self) -> None:
        """Send everything queued now, from the calling thread; stops at the first failure."""
        self._drain()

    def close(self) -> None:
        """Stop accepting events, send what is queued (one attempt), stop the thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10.0)
        self._drain(final=True)
        with self._cond:  # what one last attempt could not send is lost: count it
            self._dropped += len(self._queue)
            self._queue.clear()

    def _run(self) -> None:
        """Every `flush_interval`: send everything. In between: send full batches as soon as
        they are full, unless the last attempt failed; then nothing goes out before the next
        interval (a full queue must not turn into a retry loop against a server that is down).
        """
        tick = time.monotonic() + self.flush_interval
        failing = False
        while True:
            with self._cond:
                while not self._closed:
                    wait = tick - time.monotonic()
                    if wait <= 0 or (not failing and len(self._queue) >= self.batch_size):
                        break
                    self._cond.wait(wait)
                if self._closed:
                    return
                at_tick = time.monotonic() >= tick
            if at_tick:
                tick = time.monotonic() + self.flush_interval
            failing = self._drain(full_only=not at_tick) == "stop"

    def _drain(self, *, full_only: bool = False, final: bool = False) -> Literal["idle", "stop"]:
        """Send batch after batch: until the queue is empty (or holds no full batch), or a
        failure stops it."""
        with self._send_lock:
            while True:
                outcome = self._send_one_batch(full_only=full_only, final=final)
                if outcome != "more":
                    return outcome

    def _send_one_batch(
        self, *, full_only: bool = False, final: bool = False
    ) -> Literal["more", "idle", "stop"]:
        """POST one batch: "more" when it was handled (sent, or refused and dropped), "idle"
        when there was nothing to send, "stop" when sending must wait or has ended."""
        with self._cond:
            if full_only and len(self._queue) < self.batch_size:
                return "idle"
            size = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(size)]
        if not batch:
            return "idle"
        failure = self._post(batch)
        if failure is None:
            return "more"
        if failure.retryable and not final:
            log.warning(
                "fader: could not send %d events, will retry: %s", len(batch), failure.message
            )
            self._requeue(batch)
            return "stop"
        with self._cond:
            self._dropped += len(batch)
            if not failure.retryable and not failure.refused_request:
                self._disabled = True
                self._dropped += len(self._queue)
                self._queue.clear()
        log.error("fader: dropped %d events: %s", len(batch), failure.message)
        return "more" if failure.refused_request else "stop"

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
