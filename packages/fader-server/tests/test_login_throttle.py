"""The login throttle over a real database (SQLite and PostgreSQL), with a clock the tests move
(no sleeping). Each test gets fresh usernames; each backend a database of its own, because the
tests' clock runs years ahead and pruning would otherwise delete other tests' counters."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import dedicated_postgres_database
from server_api import unique

from fader_server.services.login_throttle import (
    Backoff,
    Limit,
    LoginThrottle,
    Refusal,
    Scope,
    ThrottlePolicy,
    address_key,
)
from fader_server.storage.ports import ThrottleKey
from fader_server.storage.sql.store import SqlStore


def fresh_address() -> str:
    """An IPv4 address no other test uses (counters per address are shared by the module)."""
    n = secrets.randbelow(1 << 24)
    return f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2031, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("throttle") / "fader.db"
        yield f"sqlite:///{path}"
        return
    with dedicated_postgres_database() as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(database_url)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def user() -> str:
    return unique("alice")


@pytest.fixture
def home() -> str:
    """Where the user logs in from."""
    return fresh_address()


@pytest.fixture
def attacker() -> str:
    return fresh_address()


def throttle_over(store: SqlStore, clock: FakeClock, **policy: object) -> LoginThrottle:
    return LoginThrottle(store, clock, ThrottlePolicy(**policy))  # type: ignore[arg-type]


def test_five_failures_are_free_then_the_pair_waits_doubling_to_fifteen_minutes(
    store: SqlStore, clock: FakeClock, user: str, attacker: str
) -> None:
    throttle = throttle_over(store, clock)
    for _ in range(5):
        assert throttle.admit(user, attacker) is None
    waits = []
    for _ in range(8):
        refusal = throttle.admit(user, attacker)
        assert refusal is not None
        assert refusal.scope is Scope.PAIR
        waits.append(refusal.retry_after)
        clock.advance(refusal.retry_after - 0.5)
        assert throttle.admit(user, attacker) == Refusal(Scope.PAIR, 1)  # rounded up, never 0
        clock.advance(0.5)
        assert throttle.admit(user, attacker) is None
    assert waits == [30, 60, 120, 240, 480, 900, 900, 900]


def test_an_attacker_address_never_locks_the_user_out(
    store: SqlStore, clock: FakeClock, user: str, attacker: str
) -> None:
    """One address guessing as fast as the throttle lets it for an hour stays far below the
    username ceiling: the user logs in from anywhere else, even a place never used before."""
    throttle = throttle_over(store, clock)
    admitted = 0
    for _ in range(3600 // 30):
        refusal = throttle.admit(user, attacker)
        admitted += refusal is None
        assert refusal is None or refusal.scope is Scope.PAIR
        clock.advance(30)
    assert admitted == 12  # 5 free, then after 30 s, 1, 2, 4, 8 min, then every 15 min
    assert throttle.admit(user, fresh_address()) is None


def test_refused_attempts_do_not_extend_the_lock(
    store: SqlStore, clock: FakeClock, user: str, attacker: str
) -> None:
    throttle = throttle_over(store, clock)
    for _ in range(5):
        throttle.admit(user, attacker)
    for _ in range(50):
        clock.advance(0.5)
        assert throttle.admit(user, attacker) is not None
    clock.advance(5)  # 30 s after the fifth failure
    assert throttle.admit(user, attacker) is None


def test_a_success_clears_the_pair(store: SqlStore, clock: FakeClock, user: str, home: str) -> None:
    throttle = throttle_over(store, clock)
    for _ in range(5):
        assert throttle.admit(user, home) is None
    throttle.succeeded(user, home)  # the fifth was right
    for _ in range(5):
        assert throttle.admit(user, home) is None
    assert throttle.admit(user, home) == Refusal(Scope.PAIR, 30)


def test_a_spray_from_many_addresses_stops_at_the_username_ceiling_except_at_trusted_ones(
    store: SqlStore, clock: FakeClock, user: str, home: str
) -> None:
    throttle = throttle_over(store, clock, username=Limit(10, 900))
    assert throttle.admit(user, home) is None
    throttle.succeeded(user, home)  # the user logged in from home: trusted for 30 days
    clock.advance(3600)
    for _ in range(10):
        assert throttle.admit(user, fresh_address()) is None
        clock.advance(10)
    elsewhere = fresh_address()
    assert throttle.admit(user, fresh_address()) == Refusal(Scope.USERNAME, 900 - 100)
    assert throttle.admit(user, elsewhere) == Refusal(Scope.USERNAME, 900 - 100)
    assert throttle.admit(user, home) is None  # trusted: the ceiling does not apply
    throttle.succeeded(user, home)
    assert throttle.admit(unique("bob"), elsewhere) is None  # other users are unaffected
    clock.advance(800)
    assert throttle.admit(user, elsewhere) is None  # the window has passed


def test_trust_in_an_address_lapses(
    store: SqlStore, clock: FakeClock, user: str, home: str
) -> None:
    throttle = throttle_over(store, clock, username=Limit(3, 900))
    throttle.admit(user, home)
    throttle.succeeded(user, home)
    clock.advance(timedelta(days=31).total_seconds())
    for _ in range(3):
        throttle.admit(user, fresh_address())
    assert throttle.admit(user, home) == Refusal(Scope.USERNAME, 900)


def test_one_address_spraying_many_usernames_is_refused(
    store: SqlStore, clock: FakeClock, user: str, attacker: str
) -> None:
    throttle = throttle_over(store, clock, address=Limit(3, 60))
    for n in range(3):
        assert throttle.admit(f"{user}-{n}", attacker) is None
    clock.advance(20)
    assert throttle.admit(user, attacker) == Refusal(Scope.ADDRESS, 40)
    assert throttle.admit(user, fresh_address()) is None
    clock.advance(40)
    assert throttle.admit(user, attacker) is None


def test_ipv6_addresses_count_per_64(store: SqlStore, clock: FakeClock, user: str) -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2::ffff")
    assert address_key("2001:db8:1:2::ffff") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("testclient") == "testclient"
    n = secrets.randbelow(1 << 16)
    throttle = throttle_over(store, clock, address=Limit(3, 60))
    for k in range(3):
        assert throttle.admit(f"{user}-{k}", f"2001:db8:{n:x}:2::{k + 1:x}") is None
    refused = throttle.admit(user, f"2001:db8:{n:x}:2:ffff:ffff:ffff:ffff")
    assert refused is not None
    assert refused.scope is Scope.ADDRESS
    assert throttle.admit(user, f"2001:db8:{n:x}:3::1") is None


def test_a_success_uncounts_only_its_own_attempt_for_the_address(
    store: SqlStore, clock: FakeClock, user: str, attacker: str
) -> None:
    throttle = throttle_over(store, clock, address=Limit(3, 60))
    assert throttle.admit(f"{user}-1", attacker) is None
    assert throttle.admit(f"{user}-2", attacker) is None
    assert throttle.admit(user, attacker) is None
    throttle.succeeded(user, attacker)
    assert throttle.admit(f"{user}-3", attacker) is None
    assert throttle.admit(f"{user}-4", attacker) == Refusal(Scope.ADDRESS, 60)


def test_an_undecided_attempt_counts_for_nothing(
    store: SqlStore, clock: FakeClock, user: str, home: str
) -> None:
    throttle = throttle_over(store, clock, pair=Backoff(free_failures=2))
    assert throttle.admit(user, home) is None
    for _ in range(10):
        assert throttle.admit(user, home) is None
        throttle.undecided(user, home)  # e.g. the database was unreachable
    assert throttle.admit(user, home) is None
    assert throttle.admit(user, home) == Refusal(Scope.PAIR, 30)


def test_parallel_attempts_are_counted_before_their_outcome_is_known(
    store: SqlStore, clock: FakeClock, user: str, attacker: str
) -> None:
    throttle = throttle_over(store, clock)
    start = threading.Barrier(16)
    outcomes: list[Refusal | None] = []

    def attempt() -> None:
        start.wait()
        outcomes.append(throttle.admit(user, attacker))

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 16
    assert outcomes.count(None) == 5


def test_replicas_over_one_database_share_the_counts(
    database_url: str, store: SqlStore, clock: FakeClock, user: str, attacker: str
) -> None:
    other = SqlStore.open(database_url)
    try:
        first, second = throttle_over(store, clock), throttle_over(other, clock)
        for replica in (first, second, first, second, first):
            assert replica.admit(user, attacker) is None
        assert second.admit(user, attacker) == Refusal(Scope.PAIR, 30)
        assert first.admit(user, attacker) == Refusal(Scope.PAIR, 30)
    finally:
        other.close()


def test_idle_counters_are_pruned_and_trusted_pairs_kept(
    store: SqlStore, clock: FakeClock, user: str, home: str, attacker: str
) -> None:
    throttle = throttle_over(store, clock)
    throttle.admit(user, attacker)
    throttle.admit(user, home)
    throttle.succeeded(user, home)
    guessed = ThrottleKey(Scope.PAIR, user, attacker)
    trusted = ThrottleKey(Scope.PAIR, user, home)
    clock.advance(timedelta(days=2).total_seconds())
    throttle.admit(unique("bob"), fresh_address())  # admissions prune, at most every 5 minutes
    with store.read() as tx:
        left = tx.read_login_counts([guessed, trusted])
    assert guessed not in left
    assert trusted in left
    assert left[trusted].last_success_at is not None


@pytest.mark.parametrize(("failures", "window"), [(0, 60.0), (5, 0.0), (5, -1.0)])
def test_a_limit_must_allow_something_over_some_time(failures: int, window: float) -> None:
    with pytest.raises(ValueError, match="positive window"):
        Limit(failures, window)


def test_a_backoff_must_start_within_its_cap() -> None:
    with pytest.raises(ValueError, match="first lock"):
        Backoff(first_lock_seconds=60, max_lock_seconds=30)
