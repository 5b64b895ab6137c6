"""The circuit breaker follows its state table."""

from __future__ import annotations

import pytest
from sdk_doubles import FakeClock

from fader_sdk.breaker import TRANSITIONS, BreakerState, CircuitBreaker, Signal


def test_closed_trips_open_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_open_lets_one_probe_through_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60.0, clock=clock)
    breaker.record_failure()
    clock.advance(59.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time


def test_failed_probe_reopens_for_a_full_cooldown_and_good_probe_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=10.0, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.advance(9)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert breaker.allow()


def test_recovery_elsewhere_lets_a_probe_through_before_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60.0, clock=clock)
    breaker.record_recovery()  # nothing to recover from
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert not breaker.allow()
    breaker.record_recovery()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    breaker.record_recovery()  # a probe is already out: still only one
    assert not breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN  # the probe failed: a full cool-down again
    clock.advance(59)
    assert not breaker.allow()


def test_table_has_no_transition_out_of_half_open_by_time() -> None:
    assert (BreakerState.HALF_OPEN, Signal.COOLDOWN_ELAPSED) not in TRANSITIONS
    assert {state for state, _ in TRANSITIONS} == set(BreakerState)


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(failure_threshold=0)
