"""Usage retention: deletes old rollup rows and debug events, by itself, on every replica.

Rollups grow with flags x variants x metrics x time (docs/events.md), so time has to be cut:
minute rows are kept `minutes` (``FADER_USAGE_MINUTES_DAYS``, 14 days), hour rows `hours`
(``FADER_USAGE_HOURS_DAYS``, 400 days), debug events one day. One exception: the minute rows a
release plan that is still running (or paused, or waiting for approval) reads, from the start
of its first stage window on, stay until it ends, since its gates recount every window at each
tick.

Why it is safe on every replica at once, and needs no leader: a run deletes rows older than its
cut-offs, which is the same whoever runs it and however often (idempotent); each batch is its
own short transaction of at most `batch` rows per table (no long lock, and on SQLite the one
write lock is released between batches), and on PostgreSQL replicas skip the rows another one
is deleting right now. A run stops after `max_batches` batches and the next one goes on, so a
huge backlog after an upgrade is worked off without one endless run.

The job never raises out of its thread: a failed run (the database down, a bug) is logged, and
the next interval tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from fader_server.logs import get_logger
from fader_server.rollout_logic.plan import State
from fader_server.runtime.periodic import Periodic
from fader_server.storage.ports.rollouts import PlanReads
from fader_server.storage.ports.store import Store
from fader_server.storage.ports.usage import Pruned, UsageRows

INTERVAL = 600.0
"""Seconds between runs."""
FIRST_DELAY = 30.0
"""Seconds from start to the first run: soon, but not in the middle of starting up."""
BATCH = 5_000
"""Rows deleted per table per transaction."""
MAX_BATCHES = 200
"""Batches per run (a million rows per table at most); the next run carries on."""
DEBUG_EVENTS = timedelta(days=1)


class RetentionTx(PlanReads, UsageRows, Protocol):
    """What retention touches: the active plans (to keep what they read) and the usage rows."""


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows from before these are deleted."""

    minutes: datetime
    hours: datetime
    debug_events: datetime


class Retention:
    def __init__(
        self,
        store: Store[RetentionTx],
        *,
        minutes: timedelta = timedelta(days=14),
        hours: timedelta = timedelta(days=400),
        debug_events: timedelta = DEBUG_EVENTS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = BATCH,
        max_batches: int = MAX_BATCHES,
    ) -> None:
        for name, kept in (("minutes", minutes), ("hours", hours), ("debug events", debug_events)):
            if kept <= timedelta(0):
                raise ValueError(f"usage {name} must be kept for a positive time, not {kept}")
        self._store = store
        self.minutes = minutes
        self.hours = hours
        self.debug_events = debug_events
        self._clock = clock
        self._batch = batch
        self._max_batches = max_batches
        self._log = get_logger()
        self._periodic = Periodic("usage_prune", self.run)

    def cutoffs(self, now: datetime) -> Cutoffs:
        """The cut-offs at `now`: the minute rows' moved back to the first window start of
        every active release plan that began before it."""
        minutes = now - self.minutes
        with self._store.read() as tx:
            plans = tx.active_plans()
        for plan in plans:
            windows = State.from_dict(plan.state).windows
            if windows:
                minutes = min(minutes, datetime.fromtimestamp(windows[0], UTC))
        return Cutoffs(minutes, now - self.hours, now - self.debug_events)

    def run(self, now: datetime | None = None) -> Pruned:
        """One run: delete in batches until nothing old is left (or `max_batches`); how many
        rows went, per table."""
        cut = self.cutoffs(self._clock() if now is None else now)
        started = time.perf_counter()
        total = Pruned()
        batches = 0
        while batches < self._max_batches:
            with self._store.transaction() as tx:
                pruned = tx.prune_usage(
                    minutes_before=cut.minutes,
                    hours_before=cut.hours,
                    debug_before=cut.debug_events,
                    limit=self._batch,
                )
            batches += 1
            total = Pruned(
                total.minutes + pruned.minutes,
                total.hours + pruned.hours,
                total.debug_events + pruned.debug_events,
            )
            if max(pruned.minutes, pruned.hours, pruned.debug_events) < self._batch:
                break
        self._log.info(
            "usage_pruned",
            minutes=total.minutes,
            hours=total.hours,
            debug_events=total.debug_events,
            batches=batches,
            minutes_before=cut.minutes.isoformat(),
            hours_before=cut.hours.isoformat(),
            debug_before=cut.debug_events.isoformat(),
            seconds=round(time.perf_counter() - started, 3),
        )
        return total

    # ------------------------------------------------------------- background
    def start(self, interval: float = INTERVAL, first_delay: float = FIRST_DELAY) -> None:
        """Run after `first_delay` seconds, then every `interval`, in a daemon thread until
        :meth:`close`."""
        self._periodic.start(interval, first_delay)

    def close(self) -> None:
        self._periodic.close()
