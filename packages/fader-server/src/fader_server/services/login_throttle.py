"""Login throttling: how many password guesses may be made, and why nobody can be locked out.

Logins are rate-limited (docs/security.md), without handing attackers a way to lock users
out. Three counters judge every attempt, all kept in the database so every replica enforces the same
limits (a guesser gains nothing by spreading attempts over replicas):

- **Per (username, address) pair**, exponential backoff: 5 failures are free, then each further
  attempt waits 30 s after the previous failure, doubling up to 15 minutes (30 s, 1 min,
  2 min, ... 15 min). A success clears it; failures are forgotten after a day without one.
  This is the limit an attacker meets, and it is theirs alone: guessing from their address
  never slows the user down at the user's own address.
- **Per username, across all addresses**, a much higher ceiling: 100 failures in a 15-minute
  window, which one address cannot reach (backoff lets it make about 10 in 15 minutes), but a
  spray from many addresses does, and is then stopped. Even then an address the user logged in
  from during the last 30 days (the pair's last success) is not refused by this ceiling, so a
  distributed attack does not lock the user out of their usual place either. Successes do not
  clear this count (an attacker must not be able to reset it with the user's help).
- **Per client address, across all usernames**: 100 failures in a 15-minute window, which stops
  one address spraying guesses over many accounts. It is large because many people can share
  one address (an office behind NAT); a success un-counts only its own attempt. IPv6 addresses
  are counted per /64, the block one subscriber usually gets, so rotating through it does not
  help.

The windows of the ceilings are fixed (they start with their first failure), so in the worst
case twice the ceiling fits in 15 minutes across a window boundary; `Retry-After` says when the
refusing counter lets the next attempt through.

An admitted attempt counts as a failure from the moment it is admitted (before the password is
checked) until it is known to have succeeded, and admission locks the counters, so parallel
guesses on any number of replicas cannot all pass while the slow password hash runs. Refused
attempts are not counted and never reach the password check: hammering cannot extend a lock,
and every lock ends. Personal and admin API tokens keep working throughout (only the password
exchange is throttled). Refusals are answered from a plain read, so a flood of refused attempts
costs no database writes.

Time comes from the injected wall clock (replicas must agree on it, as NTP keeps them), so tests
move time without sleeping. Counters idle for a day are pruned, except pairs that succeeded
within the trust period. This module knows nothing of HTTP or SQL.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from fader_server.errors import StorageUnavailableError
from fader_server.services.access import Clock
from fader_server.storage.ports import ThrottleCount, ThrottleKey, ThrottleScope
from fader_server.storage.ports.login_throttle import LoginCounts
from fader_server.storage.ports.store import Store

Scope = ThrottleScope
"""Which counter refused an attempt."""

_USERNAME_KEY_LENGTH = 128
_ADDRESS_KEY_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `failures` unsuccessful attempts in a window of `window_seconds`."""

    failures: int
    window_seconds: float

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window_seconds <= 0:
            raise ValueError("a limit needs at least one failure and a positive window")


@dataclass(frozen=True, slots=True)
class Backoff:
    """`free_failures` in a row cost nothing; then the wait after the last failure starts at
    `first_lock_seconds` and doubles with each further failure, up to `max_lock_seconds`."""

    free_failures: int = 5
    first_lock_seconds: float = 30.0
    max_lock_seconds: float = 15 * 60.0
    forget_after_seconds: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if self.free_failures < 1 or not 0 < self.first_lock_seconds <= self.max_lock_seconds:
            raise ValueError("a backoff needs a free failure and 0 < first lock <= max lock")

    def lock_seconds(self, failures: int) -> float:
        """How long after the last of `failures` consecutive failures the next may come."""
        if failures < self.free_failures:
            return 0.0
        doublings = min(failures - self.free_failures, 62)  # 2**62 s is past any cap
        return min(self.max_lock_seconds, self.first_lock_seconds * 2.0**doublings)


USERNAME_LIMIT = Limit(failures=100, window_seconds=15 * 60)
ADDRESS_LIMIT = Limit(failures=100, window_seconds=15 * 60)
PAIR_BACKOFF = Backoff()


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    pair: Backoff = PAIR_BACKOFF
    username: Limit = USERNAME_LIMIT
    address: Limit = ADDRESS_LIMIT
    trusted_for: timedelta = timedelta(days=30)
    """An address the user logged in from this recently is exempt from the username ceiling."""
    keep_idle: timedelta = timedelta(days=1)
    """Counters untouched this long are pruned (trusted pairs are kept for `trusted_for`)."""
    prune_every: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An attempt refused: by which counter, and after how many whole seconds to retry."""

    scope: Scope
    retry_after: int


def address_key(address: str) -> str:
    """What an address is counted as: itself (IPv4, or IPv4 mapped into IPv6), its /64 (IPv6),
    or the text as given when it is no IP address (a test client, a unix socket)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address[:_ADDRESS_KEY_LENGTH]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


class LoginThrottle:
    """Admits or refuses login attempts; thread-safe, and shared by replicas through `store`."""

    def __init__(
        self, store: Store[LoginCounts], clock: Clock, policy: ThrottlePolicy | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy or ThrottlePolicy()
        self._next_prune: datetime | None = None
        self._prune_lock = threading.Lock()

    # ------------------------------------------------------------------ use
    def admit(self, username: str, address: str) -> Refusal | None:
        """Refuse the attempt, or admit it and count it as a failure until `succeeded`."""
        now = self.clock()
        keys = self._keys(username, address)
        with self.store.read() as tx:
            refusal = self._refusal(tx.read_login_counts(keys), keys, now)
        if refusal is not None:
            return refusal
        with self.store.transaction() as tx:
            counts = tx.lock_login_counts(keys, now)
            refusal = self._refusal(counts, keys, now)  # another attempt may have come first
            if refusal is None:
                tx.save_login_counts([self._failed(counts[k], now) for k in keys], now)
        if refusal is None:
            self._maybe_prune(now)
        return refusal

    def succeeded(self, username: str, address: str) -> None:
        """The admitted attempt was right: clear the pair (and trust its address for this
        username); un-count the attempt for the username and the address."""
        now = self.clock()
        pair, user, place = self._keys(username, address)
        with self.store.transaction() as tx:
            counts = tx.lock_login_counts((pair, user, place), now)
            cleared = replace(counts[pair], failures=0, last_success_at=now)
            tx.save_login_counts([cleared, _refunded(counts[user]), _refunded(counts[place])], now)

    def undecided(self, username: str, address: str) -> None:
        """The admitted attempt could not be judged (storage failed): un-count it everywhere."""
        now = self.clock()
        keys = self._keys(username, address)
        with self.store.transaction() as tx:
            counts = tx.lock_login_counts(keys, now)
            tx.save_login_counts([_refunded(counts[k]) for k in keys], now)

    # -------------------------------------------------------------- judging
    def _keys(self, username: str, address: str) -> tuple[ThrottleKey, ThrottleKey, ThrottleKey]:
        name = username[:_USERNAME_KEY_LENGTH]
        place = address_key(address)
        return (
            ThrottleKey(Scope.PAIR, name, place),
            ThrottleKey(Scope.USERNAME, name, ""),
            ThrottleKey(Scope.ADDRESS, "", place),
        )

    def _pair_failures(self, count: ThrottleCount, now: datetime) -> int:
        last = count.last_failure_at
        if last is None or _seconds(now - last) >= self.policy.pair.forget_after_seconds:
            return 0
        return count.failures

    def _limit(self, scope: Scope) -> Limit:
        return self.policy.username if scope is Scope.USERNAME else self.policy.address

    def _refusal(
        self, counts: dict[ThrottleKey, ThrottleCount], keys: tuple[ThrottleKey, ...], now: datetime
    ) -> Refusal | None:
        pair_key = keys[0]
        waits: list[tuple[float, Scope]] = []
        pair = counts.get(pair_key)
        trusted = False
        if pair is not None:
            lock = self.policy.pair.lock_seconds(self._pair_failures(pair, now))
            if lock > 0 and pair.last_failure_at is not None:
                waits.append((_seconds(pair.last_failure_at - now) + lock, Scope.PAIR))
            success = pair.last_success_at
            trusted = success is not None and now - success < self.policy.trusted_for
        for key in keys[1:]:
            count = counts.get(key)
            if count is None or (key.scope is Scope.USERNAME and trusted):
                continue
            limit = self._limit(key.scope)
            if count.failures >= limit.failures:
                waits.append((_seconds(count.window_start - now) + limit.window_seconds, key.scope))
        waits = [(wait, scope) for wait, scope in waits if wait > 0]
        if not waits:
            return None
        wait, scope = max(waits, key=lambda item: item[0])
        return Refusal(scope, max(1, math.ceil(wait)))

    def _failed(self, count: ThrottleCount, now: datetime) -> ThrottleCount:
        """`count` after one more failure at `now`."""
        if count.key.scope is Scope.PAIR:
            failures = self._pair_failures(count, now)
            start = count.window_start if failures else now
            return replace(count, failures=failures + 1, window_start=start, last_failure_at=now)
        window = self._limit(count.key.scope).window_seconds
        if _seconds(now - count.window_start) >= window:
            return replace(count, failures=1, window_start=now, last_failure_at=now)
        return replace(count, failures=count.failures + 1, last_failure_at=now)

    # -------------------------------------------------------------- pruning
    def _maybe_prune(self, now: datetime) -> None:
        """Delete idle counters, at most every `prune_every` per process; best effort (a
        failure only means the rows wait for the next prune)."""
        with self._prune_lock:
            if self._next_prune is not None and now < self._next_prune:
                return
            self._next_prune = now + self.policy.prune_every
        try:
            with self.store.transaction() as tx:
                tx.prune_login_counts(now - self.policy.keep_idle, now - self.policy.trusted_for)
        except StorageUnavailableError:
            pass


def _refunded(count: ThrottleCount) -> ThrottleCount:
    return replace(count, failures=max(0, count.failures - 1))
