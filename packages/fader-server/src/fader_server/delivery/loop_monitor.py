"""How long the event loop stalls: the figure behind "streams get a change within milliseconds".

Every stream, poll and admin request of a process shares one event loop, so anything that holds
it (a fan-out to 10,000 sockets written in one go, a serialisation, a garbage collection) delays
all of them by as long. :class:`LoopMonitor` measures that from the inside, the way Node's
``monitorEventLoopDelay`` does: a timer callback re-armed every `interval` seconds notes how late
it ran. A stall of *s* seconds makes the next tick late by between *s* - `interval` and *s*, so
stalls shorter than the interval may go unseen and longer ones are measured to within it. It
works on any asyncio loop (only ``call_later`` is used; lateness is read on ``time.monotonic``,
not on ``loop.time()``, which uvloop caches per loop iteration in whole milliseconds) and costs
a few microseconds per tick, about 0.1% of a core at the default 5 ms.

Two Prometheus series on the app's ``/metrics``:

- ``fader_event_loop_lag_seconds``, a histogram of every tick's lateness (quantiles over any
  window, with ``histogram_quantile``);
- ``fader_event_loop_lag_max_seconds``, the longest lateness since the previous scrape: the
  exact worst stall, which a histogram's buckets only bound. Each scrape restarts it, so with
  several scrapers each sees the longest stall since *any* scrape; the histogram is the one to
  alert on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

INTERVAL = 0.005
"""Seconds between ticks: the monitor's resolution."""
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Lateness buckets, seconds: from below the timer's own jitter (about 1 ms on uvloop, whose
timers count whole milliseconds) to stalls that break SSE heartbeats."""


class LoopMonitor(Collector):
    """Measures the event loop it is started on; a collector of `registry` for the maximum."""

    def __init__(self, registry: CollectorRegistry, *, interval: float = INTERVAL) -> None:
        if interval <= 0:
            raise ValueError("the monitor's interval must be positive")
        self.interval = interval
        self._lag = Histogram(
            "fader_event_loop_lag_seconds",
            "How late a timer re-armed every few milliseconds ran on the event loop: how long "
            "the loop was blocked",
            buckets=BUCKETS,
            registry=registry,
        )
        self._longest = 0.0
        self._lock = threading.Lock()  # scrapes run in worker threads, ticks on the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        registry.register(self)

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        """Start measuring the running loop (from a coroutine on it, e.g. the app's lifespan)."""
        if self._handle is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._arm(time.monotonic())

    def stop(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    def take_longest(self) -> float:
        """The longest lateness, in seconds, since the previous call (and restart from zero)."""
        with self._lock:
            longest, self._longest = self._longest, 0.0
        return longest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Called by the registry at each scrape (prometheus_client's collector protocol)."""
        yield GaugeMetricFamily(
            "fader_event_loop_lag_max_seconds",
            "Longest event-loop stall (how late the monitor's timer ran) since the previous "
            "scrape of this endpoint",
            value=self.take_longest(),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """Only the name (registering must not take the maximum, which collect() restarts)."""
        yield GaugeMetricFamily("fader_event_loop_lag_max_seconds", "", value=0.0)

    def _arm(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + self.interval
        self._handle = self._loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        if self._handle is None:  # stopped while this callback was already queued
            return
        now = time.monotonic()
        late = max(0.0, now - self._due)
        self._lag.observe(late)
        with self._lock:
            self._longest = max(self._longest, late)
        self._arm(now)
