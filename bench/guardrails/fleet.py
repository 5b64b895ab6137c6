"""A fleet of SDK instances sending summaries, as the server receives them (docs/events.md).

Each instance serves its share of the traffic and sends one summary per flush interval (5 s by
default, at a random phase of its own). A summary sent at `s` holds the evaluations made in
``[s - flush_interval, s)`` and reaches the server after a small network delay; the server adds
it to the minute of its *receive* time. An instance serves what its flag configuration says: a
stage change made by the scheduler at `t` reaches each instance a moment later (the SDK stream's
propagation delay), so the evaluations in a summary may belong to two stages, and a summary sent
just before a stage change may arrive after it. Both are what the server really counts, and the
simulation counts them the same way.

Requests arrive as a Poisson process at each instance and are independently on either arm and
failing or not, so the counts of (arm, outcome) over any stretch of one stage's serving time are
independent Poisson variables whose means add up. The fleet therefore works out, for every
summary, *how many seconds of serving at which stage* it carries and in which minute (and by
which scheduler tick) it arrives, then draws the counts of each (minute, stage) group at once:
the same distribution as drawing each summary's counts apart, for a fraction of the cost.

Speed: summaries far from any boundary (a minute's start, a tick, a stage change) need no
delay drawn: they arrive in the minute and before the tick they were sent in, whatever their
delay (it is bounded by `delay_cap`). Since 60 s is a whole number of flush intervals and of
ticks, which summaries those are repeats every minute: :class:`Cycle` works it out once per
rollout, and only the summaries near a boundary are handled one by one. While a stage change
is reaching the instances (a few seconds after each), every summary is handled one by one.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

MINUTE = 60.0
BEFORE_PLAN = -1
"""The stage index of what the flag served before the plan started (the control to all)."""

Counts = tuple[int, int, int, int]
"""Control trials, control failures, treatment trials, treatment failures."""


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """How the SDK instances behave (defaults: the SDK's and the server's own)."""

    instances: int = 10
    per_minute: float = 200.0
    """Evaluations per minute over the whole fleet."""
    flush_interval: float = 5.0
    """The SDK's ``event_flush_interval``; must divide 60 s (the minute)."""
    delay_mean: float = 0.25
    """Mean seconds from a summary's flush to its receipt (exponential)."""
    delay_cap: float = 2.0
    """No summary takes longer (at 0.25 s on average, 3 in 10,000 would)."""
    propagation: float = 0.25
    """A stage change reaches each instance within this many seconds (uniformly): streaming
    SDKs get it in 50-210 ms (bench/delivery); SDKs polling every 30 s would need 30."""

    def __post_init__(self) -> None:
        cycles = MINUTE / self.flush_interval
        if self.instances < 1 or abs(cycles - round(cycles)) > 1e-9:
            raise ValueError("flush_interval must divide 60 s, and a fleet has an instance")
        if not 0 < self.delay_cap < self.flush_interval:
            raise ValueError("delay_cap must be positive and shorter than the flush interval")


@dataclass(frozen=True, slots=True)
class Mix:
    """What one stage serves: the treatment's share of evaluations and each arm's error rate."""

    share: float
    control_rate: float
    treatment_rate: float


def poisson(rng: random.Random, mean: float) -> int:
    """An exact Poisson draw: inversion for small means, Hormann's PTRS rejection (1993, as
    numpy does) for large ones."""
    if mean <= 0.0:
        return 0
    if mean < 10.0:
        u = rng.random()
        term = math.exp(-mean)
        total, k = term, 0
        while u > total:
            k += 1
            term *= mean / k
            total += term
            if term < 1e-300:  # u within rounding of 1: the tail beyond is empty
                break
        return k
    slam, loglam = math.sqrt(mean), math.log(mean)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    log_inv_alpha = math.log(1.1239 + 1.1328 / (b - 3.4))
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        if us <= 0.0 or v <= 0.0:  # a uniform of exactly 0 (one in 2^53): draw again
            continue
        k = math.floor((2 * a / us + b) * u + mean + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        accept = -mean + k * loglam - math.lgamma(k + 1)
        if math.log(v) + log_inv_alpha - math.log(a / (us * us) + b) <= accept:
            return k


@dataclass(frozen=True, slots=True)
class _Slot:
    """The summaries of one scheduler interval, relative to its cycle (one minute)."""

    bulk: tuple[tuple[int, int], ...]
    """(minute, summaries): summaries that arrive in the minute they were sent in, before the
    interval's tick, whatever their delay."""
    near: tuple[tuple[int, float], ...]
    """(instance, send time): summaries within `delay_cap` of a minute's start or the tick."""


class Cycle:
    """Which summaries of each scheduler interval need their delay drawn: the pattern repeats
    every minute, since the flush phases, the ticks and the minutes all have 60 s periods.

    Interval `n` ends at the tick ``first + n * every``; it holds the summaries sent after the
    previous tick and up to its own. Slot ``n % slots`` describes it shifted by ``n // slots``
    minutes."""

    def __init__(self, phases: Sequence[float], config: FleetConfig, first: float, every: float):
        self.slots = round(MINUTE / every)
        if abs(self.slots * every - MINUTE) > 1e-9:
            raise ValueError("the evaluation interval must divide 60 s")
        self.first, self.every = first, every
        step, cap = config.flush_interval, config.delay_cap
        built = []
        for slot in range(self.slots):
            low, high = first + (slot - 1) * every, first + slot * every
            bulk: dict[int, int] = defaultdict(int)
            near: list[tuple[int, float]] = []
            for instance, phase in enumerate(phases):
                k = math.floor((low - phase) / step) + 1
                while (sent := phase + k * step) <= high:
                    minute = math.floor(sent / MINUTE)
                    if sent + cap <= high and sent + cap < (minute + 1) * MINUTE:
                        bulk[minute] += 1
                    else:
                        near.append((instance, sent))
                    k += 1
            built.append(_Slot(tuple(sorted(bulk.items())), tuple(near)))
        self._built = tuple(built)

    def slot(self, interval: int) -> tuple[_Slot, int, float]:
        """The slot of interval `interval` (>= 0), and its shift in minutes and seconds."""
        cycle, slot = divmod(interval, self.slots)
        return self._built[slot], cycle, cycle * MINUTE


class Fleet:
    """The SDK instances of one rollout: what they serve when, and what reaches the server.

    :meth:`receive` returns what arrived up to a tick, as counts per (minute, served stage)."""

    def __init__(
        self,
        config: FleetConfig,
        mixes: dict[int, Mix],
        rng: random.Random,
        *,
        since: float,
        one_by_one: bool = False,
    ) -> None:
        """`one_by_one`: handle every summary apart, never by :class:`Cycle` (the same
        result, slower: ``selfcheck.py`` compares the two)."""
        self.config = config
        self.one_by_one = one_by_one
        self._mixes = mixes
        self._rng = rng
        self.phases = [rng.uniform(0.0, config.flush_interval) for _ in range(config.instances)]
        self._rate = config.per_minute / MINUTE / config.instances  # per instance per second
        # per instance: (time the instance started serving it, stage), oldest first
        self._served: list[list[tuple[float, int]]] = [
            [(-math.inf, BEFORE_PLAN)] for _ in range(config.instances)
        ]
        self._pending: list[tuple[float, int, float]] = []  # (receipt, instance, send time)
        self._received_until = since
        self._settled_at = since  # every instance serves the latest stage for a full flush
        self._cycle: Cycle | None = None
        self._interval = -1

    def change(self, at: float, stage: int) -> None:
        """The scheduler changed the flag's configuration to `stage` at `at`; each instance
        starts serving it once the change reaches it."""
        latest = at
        for served in self._served:
            arrives = at + self._rng.uniform(0.0, self.config.propagation)
            served.append((arrives, stage))
            latest = max(latest, arrives)
        self._settled_at = latest + self.config.flush_interval

    def schedule(self, first: float, every: float) -> None:
        """Ticks come at ``first + n * every``; :meth:`receive` must be called at each."""
        self._cycle = Cycle(self.phases, self.config, first, every)

    def receive(self, until: float) -> dict[tuple[int, int], Counts]:
        """Everything received after the previous call and up to `until` (a tick)."""
        assert self._cycle is not None, "schedule() first"
        since = self._received_until
        seconds: dict[tuple[int, int], float] = defaultdict(float)
        self._take_pending(until, seconds)
        self._interval += 1
        step = self.config.flush_interval
        if self.one_by_one or since < self._settled_at or self._interval == 0:
            for instance, phase in enumerate(self.phases):
                k = math.floor((since - phase) / step) + 1
                while (sent := phase + k * step) <= until:
                    self._one(instance, sent, until, seconds)
                    k += 1
        else:
            slot, minutes, shift = self._cycle.slot(self._interval)
            stage = self._served[0][-1][1]
            for minute, summaries in slot.bulk:
                seconds[minute + minutes, stage] += summaries * step
            # as _one() does, knowing every instance serves `stage` all along
            delay = self._delay
            for instance, sent in slot.near:
                received = sent + shift + delay()
                if received > until:
                    self._pending.append((received, instance, sent + shift))
                else:
                    seconds[math.floor(received / MINUTE), stage] += step
        self._received_until = until
        return self._draw(seconds)

    def _one(
        self, instance: int, sent: float, until: float, seconds: dict[tuple[int, int], float]
    ) -> None:
        received = sent + self._delay()
        if received > until:
            self._pending.append((received, instance, sent))
            return
        self._add(instance, sent, received, seconds)

    def _delay(self) -> float:
        """Seconds from a flush to its receipt."""
        return min(self._rng.expovariate(1.0 / self.config.delay_mean), self.config.delay_cap)

    def _take_pending(self, until: float, seconds: dict[tuple[int, int], float]) -> None:
        waiting = []
        for received, instance, sent in self._pending:
            if received <= until:
                self._add(instance, sent, received, seconds)
            else:
                waiting.append((received, instance, sent))
        self._pending = waiting

    def _add(
        self,
        instance: int,
        sent: float,
        received: float,
        seconds: dict[tuple[int, int], float],
    ) -> None:
        """The summary sent at `sent`: its serving seconds per stage, in its receipt minute."""
        minute = math.floor(received / MINUTE)
        start = sent - self.config.flush_interval
        served = self._served[instance]
        for index in range(len(served) - 1, -1, -1):
            began, stage = served[index]
            ended = served[index + 1][0] if index + 1 < len(served) else math.inf
            low, high = max(began, start), min(ended, sent)
            if high > low:
                seconds[minute, stage] += high - low
            if began <= start:
                break

    def _draw(self, seconds: dict[tuple[int, int], float]) -> dict[tuple[int, int], Counts]:
        rng, rate = self._rng, self._rate
        drawn: dict[tuple[int, int], Counts] = {}
        for key in sorted(seconds):
            mix = self._mixes[key[1]]
            mean = rate * seconds[key]
            control, treatment = mean * (1.0 - mix.share), mean * mix.share
            control_failures = poisson(rng, control * mix.control_rate)
            treatment_failures = poisson(rng, treatment * mix.treatment_rate)
            drawn[key] = (
                control_failures + poisson(rng, control * (1.0 - mix.control_rate)),
                control_failures,
                treatment_failures + poisson(rng, treatment * (1.0 - mix.treatment_rate)),
                treatment_failures,
            )
        return drawn
