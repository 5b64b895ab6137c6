"""A circuit breaker around the stream, written as a state table (after h11's `_state.py`).

Why a breaker on top of backoff: backoff spaces out reconnects, but a stream that keeps failing
should stop being the plan. When the breaker opens, the SDK switches to polling (a plain request
that proxies and load balancers rarely break) and only *probes* the stream again after a
cool-down; one successful probe closes the breaker and streaming resumes.

The whole behaviour is the table below; the class only counts failures and reads the clock::

    state      signal             next state   why
    ---------  -----------------  -----------  ------------------------------------------------
    CLOSED     SUCCESS            CLOSED       healthy; the failure count starts again at 0
    CLOSED     FAILURE            CLOSED       counted; below the threshold we keep trying
    CLOSED     TRIP               OPEN         threshold consecutive failures: stop trying
    CLOSED     RECOVERED          CLOSED       nothing to recover from
    OPEN       COOLDOWN_ELAPSED   HALF_OPEN    time to let exactly one probe through
    OPEN       RECOVERED          HALF_OPEN    the remote was unreachable and answers again
                                               (a poll got through): probe now, not after
                                               the rest of the cool-down
    OPEN       FAILURE            OPEN         a late failure restarts the cool-down
    OPEN       SUCCESS            CLOSED       a late success: the remote is fine after all
    HALF_OPEN  SUCCESS            CLOSED       the probe worked: back to normal
    HALF_OPEN  FAILURE            OPEN         the probe failed: another full cool-down
    HALF_OPEN  RECOVERED          HALF_OPEN    a probe is allowed already

A (state, signal) pair missing from the table is a bug in the caller and raises `KeyError`.
The clock is injected; nothing here sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    """Calls go through."""
    OPEN = "open"
    """Calls are refused until the cool-down elapses."""
    HALF_OPEN = "half_open"
    """One probe call is allowed; its outcome decides."""


class Signal(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    TRIP = "trip"
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    RECOVERED = "recovered"


S, G = BreakerState, Signal
TRANSITIONS: dict[tuple[BreakerState, Signal], BreakerState] = {
    (S.CLOSED, G.SUCCESS): S.CLOSED,
    (S.CLOSED, G.FAILURE): S.CLOSED,
    (S.CLOSED, G.TRIP): S.OPEN,
    (S.CLOSED, G.RECOVERED): S.CLOSED,
    (S.OPEN, G.COOLDOWN_ELAPSED): S.HALF_OPEN,
    (S.OPEN, G.RECOVERED): S.HALF_OPEN,
    (S.OPEN, G.FAILURE): S.OPEN,
    (S.OPEN, G.SUCCESS): S.CLOSED,
    (S.HALF_OPEN, G.SUCCESS): S.CLOSED,
    (S.HALF_OPEN, G.FAILURE): S.OPEN,
    (S.HALF_OPEN, G.RECOVERED): S.HALF_OPEN,
}
del S, G


class CircuitBreaker:
    """Counts consecutive failures and applies :data:`TRANSITIONS`; thread-safe."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._check_cooldown()
            return self._state

    def allow(self) -> bool:
        """May a call go out now? In HALF_OPEN only the first caller gets the probe."""
        with self._lock:
            self._check_cooldown()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._apply(Signal.SUCCESS)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
                self._apply(Signal.TRIP)
            else:
                self._apply(Signal.FAILURE)

    def record_recovery(self) -> None:
        """The remote answered on another channel after being unreachable.

        Why a separate signal: an outage of the whole server trips the breaker just like a
        stream that proxies keep breaking. Only in the first case does a working poll say the
        stream will work too; without this, a server restart would leave every SDK polling for
        a full cool-down before it streams again.
        """
        with self._lock:
            self._check_cooldown()
            self._apply(Signal.RECOVERED)

    def _check_cooldown(self) -> None:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown:
            self._apply(Signal.COOLDOWN_ELAPSED)

    def _apply(self, signal: Signal) -> None:
        new = TRANSITIONS[(self._state, signal)]
        if new is BreakerState.OPEN:
            self._opened_at = self._clock()
        if new is not BreakerState.HALF_OPEN:
            self._probe_in_flight = False
        self._state = new
