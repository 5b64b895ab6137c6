"""Reconnect delays: exponential backoff with full jitter.

Why full jitter: when a server restarts, every SDK connected to it notices at the same moment.
With plain exponential backoff they would all come back in lock-step waves; drawing the delay
uniformly from ``[0, min(cap, base * 2**attempt)]`` spreads them out, and AWS's analysis
("Exponential Backoff And Jitter", 2015) shows it does the least total work of the variants.

Why reset only after a *stable* connection: a server that accepts the connection and drops it
at once must not reset the growth, or a crash-looping server is hammered at `base` forever.
(The same rule as LaunchDarkly's streaming reconnect policy.)

No I/O, no sleeping: the caller asks for a delay and waits however it likes; `random` and
`clock` are injected so tests see exact numbers.
"""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable

_MAX_EXPONENT = 32  # 2**32 * base is far beyond any cap; stops float overflow on long outages


class Backoff:
    """Hands out successive reconnect delays; thread-safe."""

    def __init__(
        self,
        *,
        base: float = 1.0,
        cap: float = 30.0,
        reset_after: float = 60.0,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self._base = base
        self.cap = cap
        self.reset_after = reset_after
        self._random = random
        self._clock = clock
        self._attempt = 0
        self._connected_at: float | None = None
        self._lock = threading.Lock()

    @property
    def base(self) -> float:
        return self._base

    @base.setter
    def base(self, value: float) -> None:
        """The server may suggest a base (SSE `retry:` field); keep it within the cap."""
        self._base = min(max(value, 0.001), self.cap)

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return float(min(self.cap, self._base * 2 ** min(self._attempt, _MAX_EXPONENT)))

    def next_delay(self) -> float:
        """A delay drawn uniformly from ``[0, ceiling)``; grows the ceiling for next time."""
        with self._lock:
            delay = self._random() * self.ceiling()
            self._attempt += 1
            return delay

    def connected(self) -> None:
        """A connection is up; the clock starts on whether it proves stable."""
        with self._lock:
            self._connected_at = self._clock()

    def disconnected(self) -> None:
        """The connection ended: forget past failures only if it had lasted `reset_after`."""
        with self._lock:
            started, self._connected_at = self._connected_at, None
            if started is not None and self._clock() - started >= self.reset_after:
                self._attempt = 0
