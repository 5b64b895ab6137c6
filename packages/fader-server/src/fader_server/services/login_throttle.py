"""Login throttling: how many password guesses a username, and a client address, may make.

PRODUCT §6 "login rate-limited". Each limit is a sliding window over the most recent attempts
that did not succeed: with ``Limit(5, 900)`` a sixth attempt within 15 minutes of the first of
five failures is refused, and admitted again once that first failure is 15 minutes old.

- **Per username** (5 in 15 minutes) stops a guesser aimed at one account from many addresses.
  A success clears the username's failures, so a user who mistyped twice is not carried
  towards a lock.
- **Per client address** (100 in 15 minutes) stops one address spraying guesses over many
  usernames. It is larger because many people can share one address (an office behind NAT),
  and a success does not clear it, or an attacker with one valid account could reset it.

An attempt counts as a failure from the moment it is admitted until it succeeds, so a burst of
parallel guesses cannot all pass the check while the slow password hash runs. Refused attempts
are not counted and never reach the password check: an attacker cannot extend a lock by
hammering, every lock ends when its window has passed, and personal and admin API tokens keep
working throughout (only the password exchange is throttled).

State is in process memory, so each replica limits separately: with N replicas behind a load
balancer a guesser gets at most N times the budget (5N guesses per 15 minutes for one
account), which still makes online guessing of an argon2id-hashed password hopeless, and it
keeps the login path free of a database write per attempt. A restart forgets the counts; so
does the eviction of the least recently failed keys when a table exceeds `max_keys`, which
bounds memory against a spray of invented usernames.

The clock is injected (monotonic seconds, so wall-clock steps cannot open or extend a lock),
which lets tests move time without sleeping. This module knows nothing of HTTP or storage.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

MonotonicClock = Callable[[], float]
"""Seconds from an arbitrary origin that never goes backwards, like :func:`time.monotonic`."""


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `failures` unsuccessful attempts within any `window_seconds`."""

    failures: int
    window_seconds: float

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window_seconds <= 0:
            raise ValueError("a limit needs at least one failure and a positive window")


USERNAME_LIMIT = Limit(failures=5, window_seconds=15 * 60)
ADDRESS_LIMIT = Limit(failures=100, window_seconds=15 * 60)
MAX_KEYS = 50_000


class Scope(StrEnum):
    """Which limit refused an attempt."""

    USERNAME = "username"
    ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class Refusal:
    """An attempt refused: by which limit, and after how many whole seconds to retry."""

    scope: Scope
    retry_after: int


class _FailureWindows:
    """For each key, the times of its last `limit.failures` failures; keys in LRU order.

    Keeping only the last `failures` times is enough: the key is over its limit exactly when it
    holds that many and the oldest is still inside the window.
    """

    def __init__(self, limit: Limit, max_keys: int) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._times: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float | None:
        times = self._times.get(key)
        if times is None or len(times) < self.limit.failures:
            return None
        reopens = times[0] + self.limit.window_seconds
        return reopens - now if reopens > now else None

    def record(self, key: str, now: float) -> None:
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque(maxlen=self.limit.failures)
        times.append(now)
        self._times.move_to_end(key)
        if len(self._times) > self.max_keys:
            self._evict(now)

    def refund(self, key: str) -> None:
        """Take back the most recent failure (the attempt that just succeeded)."""
        times = self._times.get(key)
        if times:
            times.pop()
            if not times:
                del self._times[key]

    def forget(self, key: str) -> None:
        self._times.pop(key, None)

    def __len__(self) -> int:
        return len(self._times)

    def _evict(self, now: float) -> None:
        # Least recently failed first: drop keys whose newest failure has left the window, then,
        # if a spray of keys still overflows the table, the least recently failed live ones.
        while self._times:
            key, times = next(iter(self._times.items()))
            if now - times[-1] < self.limit.window_seconds and len(self._times) <= self.max_keys:
                return
            del self._times[key]


class LoginThrottle:
    """Admits or refuses login attempts; thread-safe (sync handlers run in a thread pool)."""

    def __init__(
        self,
        username_limit: Limit = USERNAME_LIMIT,
        address_limit: Limit = ADDRESS_LIMIT,
        clock: MonotonicClock = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._clock = clock
        self._usernames = _FailureWindows(username_limit, max_keys)
        self._addresses = _FailureWindows(address_limit, max_keys)
        self._lock = threading.Lock()

    def admit(self, username: str, address: str) -> Refusal | None:
        """Refuse the attempt, or admit it and count it as a failure until `succeeded`."""
        with self._lock:
            now = self._clock()
            for scope, windows, key in (
                (Scope.USERNAME, self._usernames, username),
                (Scope.ADDRESS, self._addresses, address),
            ):
                wait = windows.retry_after(key, now)
                if wait is not None:
                    return Refusal(scope, max(1, math.ceil(wait)))
            self._usernames.record(username, now)
            self._addresses.record(address, now)
            return None

    def succeeded(self, username: str, address: str) -> None:
        """The admitted attempt was right: clear the username, un-count it for the address."""
        with self._lock:
            self._usernames.forget(username)
            self._addresses.refund(address)

    def undecided(self, username: str, address: str) -> None:
        """The admitted attempt could not be judged (storage failed): un-count it for both."""
        with self._lock:
            self._usernames.refund(username)
            self._addresses.refund(address)

    def tracked_keys(self) -> tuple[int, int]:
        """How many usernames and addresses are held in memory (for tests and metrics)."""
        with self._lock:
            return len(self._usernames), len(self._addresses)
