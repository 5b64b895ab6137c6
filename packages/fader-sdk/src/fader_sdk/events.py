"""Sending summaries: one ``POST /api/v1/sdk/summaries`` per flush interval, from one thread.

Why summaries: an application may evaluate flags millions of times a minute; what Fader needs
is how often each flag served each variant, to whom (distinct contexts) and the custom metrics
guarded rollouts watch. The :class:`~fader_sdk.summarizer.Summarizer` counts those on the
application's threads; this module reads them out every `flush_interval` (5 s by default) and
posts them, at most 1,000 items per list per request (docs/events.md, section 2). Distinct
contexts go once a minute (`contexts_interval`), not with every interval's counts: the server
keeps them per hour, and they are most of a request's bytes and of the server's work on it
(:class:`~fader_sdk.summary.ContextBuffer`).

Failures, as for every delivery request (:mod:`fader_sdk.retry`):

- **retryable** (network, 5xx, 429, a ``retryable`` problem): the request that failed may have
  arrived all the same (a connection lost after the server committed), so it is kept as it
  was, with its random ``id``, and sent again unchanged before anything else: the server counts
  a key's summary once per id. What was never sent is kept and merged into the next summary
  (counters add, sketches merge), so memory stays within the summary's bounds however long the
  server is away; nothing is sent before the next interval, nor before a ``Retry-After`` has
  passed.
- **refused for its content** (e.g. 422): that request's content is dropped and counted, and
  sending goes on: the next request is different, and one odd item must not silence a whole
  process's metrics. Items the server refuses one by one in a successful answer are counted too.
- **anything else** (401, 403: the key is wrong or revoked): sending stops for good; whatever is
  counted from then on is counted as dropped.

:meth:`SummarySender.close` sends what is left, once. :attr:`SummarySender.dropped` says what
never reached the server (:class:`~fader_sdk.summary.Dropped`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import httpx

from fader_sdk import retry
from fader_sdk.summarizer import Summarizer
from fader_sdk.summary import ContextBuffer, Dropped, Summary

log = logging.getLogger("fader_sdk")

SUMMARIES_PATH = "/api/v1/sdk/summaries"
MAX_RETRY_AFTER = 600.0
"""A server asking to wait longer than this (seconds) is asked again after this long."""
MAX_UNACKED = 3
"""Requests whose answer was lost kept to be sent again unchanged (each within a summary's
bounds); beyond, the oldest is counted lost."""
CONTEXTS_INTERVAL = 60.0
"""Seconds between two sends of distinct contexts (and at close)."""
MAX_REFUSALS_READ = 10_000
"""Refusals read from one answer at most (a hostile answer cannot make us loop for long)."""


class SummarySender:
    """Posts what `summarizer` counted every `flush_interval` seconds from a daemon thread."""

    def __init__(
        self,
        http: httpx.Client,
        summarizer: Summarizer,
        *,
        flush_interval: float = 5.0,
        contexts_interval: float = CONTEXTS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.summarizer = summarizer
        self.flush_interval = flush_interval
        self._clock = clock
        self.contexts_interval = contexts_interval
        self._contexts = ContextBuffer(summarizer.max_keys)
        self._contexts_sent = clock()
        self._pending: Summary | None = None  # unsent, merged into the next summary
        self._unacked: deque[tuple[dict[str, Any], Summary]] = deque()  # sent, answer lost
        self._not_before = 0.0  # a Retry-After, on `clock`
        self._dropped = Dropped()
        self._disabled = False
        self._closed = False
        self._stop = threading.Event()
        self._send_lock = threading.Lock()  # one reader and sender at a time: exact counts
        self._thread = threading.Thread(target=self._run, name="fader-summaries", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> Dropped:
        """What never reached the server, updated at each flush (after :meth:`close`, at
        each read: what was counted since is lost)."""
        if self._closed:
            with self._send_lock:
                self._lose(self.summarizer.collect())
        return self._dropped + self.summarizer.refused

    @property
    def pending(self) -> Summary | None:
        """The unsent summary kept for the next interval after a retryable failure."""
        return self._pending

    @property
    def awaiting_answer(self) -> int:
        """Requests whose answer was lost, kept to be sent again unchanged."""
        return len(self._unacked)

    def flush(self) -> None:
        """Send what was counted until now, distinct contexts included, from the calling
        thread (even during a backoff)."""
        self._cycle(final=self._closed, forced=True)

    def close(self) -> None:
        """Stop the thread, then send what is left (one attempt; what fails is counted lost)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=30.0)
        self._cycle(final=True, forced=True)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self._cycle(final=False, forced=False)
            except Exception:  # a bug here must not end the thread; the next interval retries
                log.exception("fader: sending summaries failed")

    def _cycle(self, *, final: bool, forced: bool) -> None:
        """Collect, merge with what is pending, send; one summary per interval."""
        with self._send_lock:
            summary = self.summarizer.collect()
            if self._disabled:
                self._lose(summary)
                return
            pending, self._pending = self._pending, None
            if pending is not None:
                pending.merge(summary)
                summary = pending
            self._contexts.absorb(summary)
            if not forced and self._clock() < self._not_before:
                self._dropped += summary.lost
                summary.lost = Dropped()
                self._pending = summary
                return
            summary.drop_unsendable()
            self._dropped += summary.lost
            summary.lost = Dropped()
            if forced or self._clock() - self._contexts_sent >= self.contexts_interval:
                self._contexts.attach(summary)
                self._contexts_sent = self._clock()
            outcome = self._send(summary, final=final)
            if outcome == "sent":
                self._not_before = 0.0

    def _send(self, summary: Summary, *, final: bool) -> Literal["sent", "kept", "stopped"]:
        """Resend what may already have arrived (unchanged, oldest first), then `summary`."""
        while self._unacked:
            body, chunk = self._unacked[0]
            outcome = self._deliver(body, chunk, final=final)
            if outcome == "kept":
                self._keep([summary])
                return "kept"
            self._unacked.popleft()
            if outcome == "stopped":
                self._dropped += summary.counted()
                return "stopped"
        chunks = summary.chunks()
        for at, chunk in enumerate(chunks):
            body = chunk.to_wire()
            body["id"] = uuid.uuid4().hex
            outcome = self._deliver(body, chunk, final=final)
            if outcome == "kept":
                self._freeze(body, chunk)
                self._keep(chunks[at + 1 :])
                return "kept"
            if outcome == "stopped":
                for rest in chunks[at + 1 :]:
                    self._dropped += rest.counted()
                return "stopped"
        return "sent"

    def _deliver(
        self, body: dict[str, Any], chunk: Summary, *, final: bool
    ) -> Literal["sent", "kept", "refused", "stopped"]:
        """POST one request. "kept": a retryable failure, try again later; "refused": its
        content was refused and counted, go on; "stopped": counted lost, stop for now (or for
        good, when the key was refused)."""
        failure, refused = self._post(body)
        if failure is None:
            if refused:
                self._dropped += chunk.lost_items(refused)
            return "sent"
        if failure.retryable and not final:
            log.warning("fader: could not send summaries, will retry: %s", failure.message)
            wait = min(failure.retry_after or 0.0, MAX_RETRY_AFTER)
            self._not_before = self._clock() + wait
            return "kept"
        self._dropped += chunk.counted()
        if failure.refused_request:
            log.error("fader: the server refused summaries, dropped: %s", failure.message)
            return "refused"
        if not failure.retryable:
            self._disabled = True
            log.error("fader: stopped sending summaries: %s", failure.message)
        else:
            log.error("fader: dropped the last summaries: %s", failure.message)
        return "stopped"

    def _freeze(self, body: dict[str, Any], chunk: Summary) -> None:
        """Keep a request that may have arrived (its answer was lost) to send again exactly as
        it was, id included, so the server can tell it counted it already. Merging it into
        the next summary instead would count it twice whenever it had arrived. At most
        :data:`MAX_UNACKED` are kept; beyond, the oldest is counted lost."""
        if len(self._unacked) >= MAX_UNACKED:
            _, oldest = self._unacked.popleft()
            self._dropped += oldest.counted()
        self._unacked.append((body, chunk))

    def _keep(self, unsent: list[Summary]) -> None:
        """Keep summaries that were never sent for the next interval, merged into one."""
        for rest in unsent:
            if self._pending is None:
                self._pending = rest
            else:
                self._pending.merge(rest)
                self._dropped += self._pending.lost
                self._pending.lost = Dropped()

    def _post(self, body: dict[str, Any]) -> tuple[retry.Failure | None, list[tuple[str, int]]]:
        try:
            response = self._http.post(SUMMARIES_PATH, json=body)
        except httpx.HTTPError as error:
            return retry.from_exception(error), []
        if response.is_success:
            return None, _refusals(response)
        return retry.from_response(response), []

    def _lose(self, summary: Summary) -> None:
        self._dropped += summary.lost + summary.counted()
        while self._unacked:
            self._dropped += self._unacked.popleft()[1].counted()
        pending, self._pending = self._pending, None
        if pending is not None:
            self._dropped += pending.lost + pending.counted()


def _refusals(response: httpx.Response) -> list[tuple[str, int]]:
    """(list, index) of the items a successful answer refused (docs/events.md, section 2)."""
    try:
        body: Any = response.json()
    except ValueError:
        return []
    refused = body.get("refused") if isinstance(body, dict) else None
    if not isinstance(refused, list):
        return []
    out = []
    for item in refused[:MAX_REFUSALS_READ]:
        if not isinstance(item, dict):
            continue
        name, index = item.get("list"), item.get("index")
        if isinstance(name, str) and isinstance(index, int) and not isinstance(index, bool):
            out.append((name, index))
    if out:
        log.warning("fader: the server refused %d summary items", len(out))
    return out
