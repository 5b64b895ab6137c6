"""Full-jitter exponential backoff: bounds, growth, cap, reset only after a stable connection."""

from __future__ import annotations

import random

from sdk_doubles import FakeClock

from fader_sdk.backoff import Backoff


def test_delays_stay_within_the_growing_ceiling_and_the_cap() -> None:
    rng = random.Random(7)
    backoff = Backoff(base=1.0, cap=30.0, random=rng.random)
    ceilings = []
    for _ in range(12):
        ceiling = backoff.ceiling()
        ceilings.append(ceiling)
        assert 0.0 <= backoff.next_delay() < ceiling
    assert ceilings[:6] == [1, 2, 4, 8, 16, 30]
    assert set(ceilings[5:]) == {30}


def test_jitter_is_full_range() -> None:
    low = Backoff(random=lambda: 0.0, cap=8.0)
    high = Backoff(random=lambda: 0.999, cap=8.0)
    assert [low.next_delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert [round(high.next_delay(), 3) for _ in range(3)] == [0.999, 1.998, 3.996]


def test_a_brief_connection_does_not_reset_but_a_stable_one_does() -> None:
    clock = FakeClock()
    backoff = Backoff(random=lambda: 1.0, reset_after=60.0, clock=clock)
    for _ in range(4):
        backoff.next_delay()
    backoff.connected()
    clock.advance(5)
    backoff.disconnected()
    assert backoff.attempt == 4  # a server that drops us at once keeps the delays growing
    backoff.connected()
    clock.advance(60)
    backoff.disconnected()
    assert backoff.attempt == 0
    assert backoff.next_delay() == 1.0


def test_long_outages_do_not_overflow() -> None:
    backoff = Backoff(random=lambda: 1.0, cap=30.0)
    for _ in range(5000):
        delay = backoff.next_delay()
    assert delay == 30.0
