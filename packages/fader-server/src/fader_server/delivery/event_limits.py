"""Per-key rate limits on what SDKs report: a token bucket per key, in this process.

Client keys are public (they ship in web pages and mobile apps), and server keys leak too, so a
key must not be able to fill the usage tables, or drown a release plan's gates, as fast as it
can post. Each key gets `rate` items per second with a burst of `burst`; a summary takes as
many tokens as it has items (evaluation, metric and debug-event entries: an item's count, the
evaluations it stands for, costs nothing more), whole or not at all (an SDK re-sends a refused
summary as it is). The deprecated events endpoint takes one token per event. A request over
the limit is refused with 429, ``Retry-After`` and the ``retryable`` category, so SDKs keep it
and try again later instead of dropping it.

The limit is per replica: N replicas behind a load balancer admit up to N times `rate` for one
key. That is the trade-off of keeping the database off this path; it bounds the load on each
replica, which is what it is for. Memory is bounded: at most `max_keys` buckets, the least
recently used evicted first (an evicted key starts again with a full burst, which only ever
admits what a fresh key could).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fader_server.errors import TooManyAttemptsError

DEFAULT_RATE = 10_000.0
"""Items per second per key per replica (``FADER_SDK_EVENTS_PER_SECOND``). A whole fleet of
SDK instances usually shares one key, and each sends its (flag, variant) and metric items
every 5 s: 100 instances evaluating 60 such pairs report 1,200 items a second. The default
admits a fleet ten times that on each replica; raise it for larger ones."""
DEFAULT_CLIENT_RATE = 1_000.0
"""Items per second per client key per replica (``FADER_CLIENT_EVENTS_PER_SECOND``). A client
key is public (it ships in every page of a web app), so its limit is what bounds a stranger
who copies it; a browser sends a handful of items per flush, so a thousand a second per
replica serves hundreds of pages flushing at once."""
BURST_SECONDS = 10.0
"""The burst is this many seconds' worth of the rate..."""
MIN_BURST = 1000
"""...and at least one full list of a summary (the protocol's largest); a request costs at most
the burst, so any valid one passes with a full bucket."""
MAX_KEYS = 10_000


class EventRateLimitedError(TooManyAttemptsError):
    """A key reported items faster than its limit; retry after `.retry_after` seconds."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class EventRateLimiter:
    """Token buckets by token id; thread-safe (request handlers run in a thread pool)."""

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        *,
        burst: float | None = None,
        max_keys: int = MAX_KEYS,
        monotonic: Callable[[], float] = time.monotonic,
        setting: str = "FADER_SDK_EVENTS_PER_SECOND",
    ) -> None:
        self.rate = rate
        self.setting = setting
        self.burst = burst if burst is not None else max(MIN_BURST, rate * BURST_SECONDS)
        self.max_keys = max_keys
        self._monotonic = monotonic
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def __len__(self) -> int:
        """How many keys have a bucket (at most `max_keys`)."""
        with self._lock:
            return len(self._buckets)

    def take(self, token_id: int, events: int) -> None:
        """Admit `events` items for the key, or raise :class:`EventRateLimitedError`."""
        if not self.enabled or events <= 0:
            return
        now = self._monotonic()
        with self._lock:
            bucket = self._buckets.get(token_id)
            if bucket is None:
                bucket = _Bucket(self.burst, now)
                self._buckets[token_id] = bucket
                while len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(token_id)
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
                bucket.updated = now
            cost = min(float(events), self.burst)
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return
            wait = math.ceil((cost - bucket.tokens) / self.rate)
        raise EventRateLimitedError(
            f"this key reported more than {self.rate:g} items per second (bursts up to "
            f"{self.burst:g}) to this server; retry after {wait} s, or ask the operator to "
            f"raise {self.setting}",
            retry_after=wait,
        )
