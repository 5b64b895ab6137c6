"""The login throttle on its own, with a clock the tests move (no sleeping)."""

from __future__ import annotations

import threading

import pytest

from fader_server.services.login_throttle import Limit, LoginThrottle, Refusal, Scope

WINDOW = 15 * 60


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fail(throttle: LoginThrottle, username: str, address: str = "198.51.100.1") -> Refusal | None:
    """One attempt that turns out wrong: admitted (and counted) or refused."""
    return throttle.admit(username, address)


def test_sixth_failure_within_the_window_is_refused_until_the_first_expires(
    clock: FakeClock,
) -> None:
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        assert fail(throttle, "alice") is None
        clock.now += 10
    assert fail(throttle, "alice") == Refusal(Scope.USERNAME, WINDOW - 50)
    clock.now = 1000.0 + WINDOW - 0.5
    assert fail(throttle, "alice") == Refusal(Scope.USERNAME, 1)  # rounded up, never 0
    clock.now = 1000.0 + WINDOW
    assert fail(throttle, "alice") is None


def test_the_window_slides_one_failure_at_a_time(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        fail(throttle, "alice")
        clock.now += 10  # failures at 1000, 1010, ..., 1040
    clock.now = 1000.0 + WINDOW
    assert fail(throttle, "alice") is None  # the failure at 1000 left; this one takes its place
    refusal = fail(throttle, "alice")
    assert refusal == Refusal(Scope.USERNAME, 10)  # until the failure at 1010 leaves


def test_refused_attempts_do_not_extend_the_lock(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        fail(throttle, "alice")
    for _ in range(1000):
        clock.now += 0.5
        assert fail(throttle, "alice") is not None
    clock.now = 1000.0 + WINDOW
    assert fail(throttle, "alice") is None


def test_success_clears_the_username_count(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock=clock)
    for _ in range(4):
        fail(throttle, "alice")
    assert throttle.admit("alice", "198.51.100.1") is None
    throttle.succeeded("alice", "198.51.100.1")
    for _ in range(5):
        assert fail(throttle, "alice") is None
    assert fail(throttle, "alice") is not None


def test_a_locked_username_does_not_affect_other_usernames(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock=clock)
    for _ in range(5):
        fail(throttle, "alice")
    assert fail(throttle, "alice") is not None
    assert fail(throttle, "bob") is None


def test_one_address_spraying_many_usernames_is_refused(clock: FakeClock) -> None:
    throttle = LoginThrottle(address_limit=Limit(3, 60), clock=clock)
    for name in ("u1", "u2", "u3"):
        assert throttle.admit(name, "203.0.113.9") is None
    clock.now += 20
    assert throttle.admit("u4", "203.0.113.9") == Refusal(Scope.ADDRESS, 40)
    assert throttle.admit("u4", "203.0.113.10") is None


def test_success_neither_counts_nor_clears_for_the_address(clock: FakeClock) -> None:
    throttle = LoginThrottle(address_limit=Limit(3, 60), clock=clock)
    address = "203.0.113.9"
    assert throttle.admit("u1", address) is None
    assert throttle.admit("u2", address) is None
    assert throttle.admit("carol", address) is None
    throttle.succeeded("carol", address)  # carol's attempt no longer counts; u1, u2 still do
    assert throttle.admit("u3", address) is None
    assert throttle.admit("u4", address) == Refusal(Scope.ADDRESS, 60)


def test_an_undecided_attempt_counts_for_neither(clock: FakeClock) -> None:
    throttle = LoginThrottle(username_limit=Limit(2, 60), clock=clock)
    assert throttle.admit("alice", "198.51.100.1") is None
    for _ in range(10):
        assert throttle.admit("alice", "198.51.100.1") is None
        throttle.undecided("alice", "198.51.100.1")  # e.g. the database was unreachable
    assert throttle.admit("alice", "198.51.100.1") is None
    assert throttle.admit("alice", "198.51.100.1") is not None


def test_parallel_attempts_are_counted_before_their_outcome_is_known(clock: FakeClock) -> None:
    throttle = LoginThrottle(clock=clock)
    start = threading.Barrier(20)
    outcomes: list[Refusal | None] = []

    def attempt() -> None:
        start.wait()
        outcomes.append(throttle.admit("alice", "198.51.100.1"))

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(None) == 5


def test_memory_is_bounded_and_expired_keys_are_evicted_before_live_locks(
    clock: FakeClock,
) -> None:
    throttle = LoginThrottle(clock=clock, max_keys=3)
    fail(throttle, "old", "198.51.100.1")
    clock.now += 800
    for _ in range(5):
        fail(throttle, "victim", "198.51.100.2")
    clock.now += 200  # "old" has left its window; "victim" is still locked
    fail(throttle, "k1", "198.51.100.3")
    fail(throttle, "k2", "198.51.100.4")
    assert throttle.tracked_keys() == (3, 3)
    assert fail(throttle, "victim", "198.51.100.5") == Refusal(Scope.USERNAME, WINDOW - 200)
    for n in range(100):
        fail(throttle, f"spray-{n}", f"198.51.101.{n}")
    assert throttle.tracked_keys() == (3, 3)


@pytest.mark.parametrize(("failures", "window"), [(0, 60.0), (5, 0.0), (5, -1.0)])
def test_a_limit_must_allow_something_over_some_time(failures: int, window: float) -> None:
    with pytest.raises(ValueError, match="positive window"):
        Limit(failures, window)
