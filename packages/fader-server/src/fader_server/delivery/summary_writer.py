"""Summaries written in groups: one transaction for every summary that arrived within a short
window, each acknowledged only once that transaction has committed.

Why: a fleet of SDK instances sharing a key reports the same few hundred (flag, variant,
metric) rows every few seconds. Written one summary per transaction, each request pays for
its own transaction, commit (an fsync on SQLite) and upsert of those rows; written together,
the summaries of a window are added up first and every row is upserted once per window. The
server's work per summary then shrinks with the fleet instead of growing with it
(bench/events/ingest.py prints the figures).

What does not change (docs/events.md):

- **Acknowledged once durable.** A request's future is completed after the commit. When a
  batch's transaction fails, its summaries are written again one per transaction, so a
  summary that cannot be stored (its project deleted meanwhile) fails alone, with the error
  it would have had on its own (a database that is down fails each, ``retryable``, and their
  SDKs send them again unchanged).
- **Exactly once.** Each summary's receipt (key, id) is claimed in the same transaction as the
  counts; a summary sent twice within one window finds the first claim and adds nothing.
- **Receive time.** One clock reading per transaction, taken inside it, as before: a summary
  counts in the minute the server wrote it, never in one a client claims.
- **Lock order.** Rows are upserted per (project, environment, key kind) in sorted order, and
  each group's rows in key order (:mod:`~fader_server.storage.sql.usage_rows`), so concurrent
  writers on several replicas lock rows in the same order.

One daemon thread per process writes; requests wait on a future without holding a worker
thread. The writer always takes whatever queued while the previous transaction ran; while
summaries arrive concurrently (the previous batch held more than one), it also gathers for a
window (``FADER_SUMMARY_WINDOW_SECONDS``, default 0.2 s) after a batch's first summary, so a
fleet's summaries share transactions while a lone, sequential sender waits for nobody. A batch
also closes at :data:`MAX_BATCH_ITEMS`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime

from fader_server.delivery.sdk_events import Recorded, Refusal, Summary
from fader_server.storage.ports.store import Store
from fader_server.storage.ports.usage import DebugEvent, UsageCount, UsageRows

_log = logging.getLogger("fader.summaries")

DEFAULT_WINDOW = 0.2
"""Seconds a batch gathers summaries after its first one."""
MAX_BATCH_ITEMS = 50_000
"""Items after which a batch is written at once (a bound on one transaction's size)."""
DEBUG_EVENTS_PER_FLAG = 1000
"""Debug events kept per flag and environment (the newest; docs/events.md)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a summary's items go: the caller's project and environment, and the kind of key
    that reported them (the server's word, never the request's)."""

    project_id: int
    environment: str
    key_kind: str
    token_id: int


@dataclass(slots=True)
class _Job:
    target: Target
    summary: Summary
    summary_id: str | None
    refused: tuple[Refusal, ...]
    future: Future[Recorded] = field(default_factory=Future)


@dataclass(slots=True)
class _Group:
    counts: list[UsageCount] = field(default_factory=list)
    events: list[DebugEvent] = field(default_factory=list)


class SummaryWriter:
    """Writes summaries in batches from one thread; :meth:`submit` is thread-safe."""

    def __init__(
        self,
        store: Store[UsageRows],
        clock: Callable[[], datetime],
        *,
        window: float = DEFAULT_WINDOW,
        max_items: int = MAX_BATCH_ITEMS,
        gathering: bool = False,
    ) -> None:
        """`clock`: the receive time, read once per transaction. `gathering`: whether the first
        batch already waits for the window (later ones do while summaries come concurrently)."""
        self._store = store
        self._clock = clock
        self.window = window
        self.max_items = max_items
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._concurrent = gathering  # then: whether the last batch held several (see _run)
        self.batches = 0
        """Transactions written (with :attr:`summaries`: how much batching there was)."""
        self.summaries = 0
        self._thread = threading.Thread(target=self._run, name="fader-summaries", daemon=True)
        self._thread.start()

    def submit(
        self,
        target: Target,
        summary: Summary,
        summary_id: str | None,
        refused: Sequence[Refusal] = (),
    ) -> Future[Recorded]:
        """Queue a summary; the future completes once it is committed (or fails with the
        transaction's error)."""
        job = _Job(target, summary, summary_id, tuple(refused))
        with self._lock:
            closed = self._closed
            if not closed:
                self._queue.put(job)
        if closed and job.future.set_running_or_notify_cancel():
            self._write_batch([job])  # after close (a request finishing during shutdown)
        return job.future

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        """Take batches and write them until :meth:`close`. A job whose request has gone
        (its future cancelled: the client disconnected while waiting) is not written: it was
        never acknowledged, and its SDK sends it again."""
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            if not first.future.set_running_or_notify_cancel():
                continue
            batch, items = [first], first.summary.items
            # Gather only while summaries arrive concurrently (the last batch held several): a
            # fleet's summaries then share a transaction, while a lone client posting one
            # summary after another is never kept waiting for company that does not come.
            deadline = time.monotonic() + (self.window if self._concurrent else 0.0)
            while items < self.max_items:
                try:
                    remaining = deadline - time.monotonic()
                    job = self._queue.get(timeout=remaining) if remaining > 0 else None
                    if job is None and remaining <= 0:
                        job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                if job.future.set_running_or_notify_cancel():
                    batch.append(job)
                    items += job.summary.items
            self._concurrent = len(batch) > 1
            self._write_batch(batch)

    def _write_batch(self, batch: list[_Job]) -> None:
        try:
            outcome = self._commit(batch)
        except Exception as error:
            if len(batch) > 1:
                # One summary may be what failed (say its project was deleted meanwhile):
                # each goes again on its own, so it cannot fail another key's, or tenant's.
                _log.warning(
                    "a batch of %d summaries failed (%s); writing them one by one",
                    len(batch),
                    type(error).__name__,
                )
                for job in batch:
                    self._write_batch([job])
                return
            batch[0].future.set_exception(error)
            return
        self.batches += 1
        self.summaries += len(batch)
        for job, recorded in zip(batch, outcome, strict=True):
            job.future.set_result(recorded)

    def _commit(self, batch: list[_Job]) -> list[Recorded]:
        outcome: list[Recorded] = []
        with self._store.transaction() as tx:
            at = self._clock()
            groups: dict[tuple[int, str, str], _Group] = {}
            for job in batch:
                t = job.target
                if job.summary_id is not None and not tx.claim_summary(
                    t.token_id, job.summary_id, at
                ):
                    outcome.append(Recorded(0, (), duplicate=True))
                    continue
                group = groups.setdefault((t.project_id, t.environment, t.key_kind), _Group())
                group.counts += job.summary.evaluations
                group.counts += job.summary.metrics
                group.events += job.summary.events
                outcome.append(Recorded(job.summary.items, job.refused))
            for (project, environment, kind), group in sorted(groups.items()):
                tx.add_usage(project, environment, kind, group.counts, at)
                tx.add_debug_events(
                    project, environment, kind, group.events, at, DEBUG_EVENTS_PER_FLAG
                )
        return outcome
