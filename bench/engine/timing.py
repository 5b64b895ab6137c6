"""Interleaved timing of many calls, and how busy the machine was while it ran.

Absolute times on a shared two-core machine drift by up to 2x between runs, so the systems are
never timed one after another: each round times every system once, in an order rotated by one
each round, and the figures quoted are medians over rounds with their spread. A run during
which other processes or the hypervisor took CPU shows it in `LoadWindow`, so that it can be
recognised and repeated.

Standard library only: this module knows nothing about feature flags.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# timeit turns the garbage collector off while it times; an SDK that allocates a lot would then
# look cheaper than it is in an application, so it is switched back on inside the timed
# function (and the heap is collected before each loop, outside the timer).
_SETUP = "import gc; gc.enable()"


@dataclass(frozen=True, slots=True)
class Timeable:
    """A statement to time, run in `namespace` (its globals)."""

    statement: str
    namespace: dict[str, Any]


@dataclass(slots=True)
class Series:
    """Nanoseconds per call, one figure per round, and the loop size that produced them."""

    loop_size: int
    ns_per_call: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ns_per_call)

    @property
    def low(self) -> float:
        return min(self.ns_per_call)

    @property
    def high(self) -> float:
        return max(self.ns_per_call)


def _timer(item: Timeable) -> timeit.Timer:
    return timeit.Timer(
        item.statement, setup=_SETUP, timer=time.perf_counter, globals=item.namespace
    )


def loop_size(timer: timeit.Timer, target_seconds: float) -> int:
    """The number of calls that takes about `target_seconds` (also warms the call up)."""
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= target_seconds / 10:
            return max(1, round(number * target_seconds / elapsed))
        number *= 4 if elapsed < target_seconds / 100 else 2


def interleaved(
    items: Mapping[str, Timeable],
    rounds: int,
    target_seconds: float,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, Series]:
    """Time every item once per round, rotating the order, and return ns/call per round."""
    timers = {name: _timer(item) for name, item in items.items()}
    series = {name: Series(loop_size(timer, target_seconds)) for name, timer in timers.items()}
    names = list(timers)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            number = series[name].loop_size
            gc.collect()
            elapsed = timers[name].timeit(number)
            series[name].ns_per_call.append(elapsed * 1e9 / number)
        if on_round is not None:
            on_round(index)
    return series


# --- machine load -------------------------------------------------------------------------


def _cpu_ticks() -> Sequence[int] | None:
    """The aggregate ``cpu`` line of /proc/stat: user nice system idle iowait irq softirq steal."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0]
    except OSError:
        return None
    return [int(part) for part in line.split()[1:9]]


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@dataclass(frozen=True, slots=True)
class LoadWindow:
    """How the machine's CPU time was spent between `start` and `stop`.

    Percentages are of all CPUs together (100% = every core busy for the whole window).
    ``others_pct`` is what neither this process nor the idle loop used: other processes.
    """

    cpus: int
    wall_seconds: float
    loadavg_before: str
    loadavg_after: str
    busy_pct: float | None
    own_pct: float
    others_pct: float | None
    steal_pct: float | None

    @property
    def disturbed(self) -> bool:
        """Other processes took over 10% of the CPUs, or the hypervisor over 5%."""
        return (self.others_pct or 0) > 10 or (self.steal_pct or 0) > 5

    def describe(self) -> str:
        def pct(value: float | None) -> str:
            return "?" if value is None else f"{value:.1f}%"

        return (
            f"{self.cpus} CPUs, {self.wall_seconds:.1f} s; loadavg {self.loadavg_before} -> "
            f"{self.loadavg_after}; CPU busy {pct(self.busy_pct)} (this process "
            f"{pct(self.own_pct)}, others {pct(self.others_pct)}), steal {pct(self.steal_pct)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class LoadMeter:
    """Snapshot /proc/stat and this process's CPU time now; `stop()` returns the window."""

    def __init__(self) -> None:
        self._ticks = _cpu_ticks()
        self._loadavg = _loadavg()
        self._own = self._own_seconds()
        self._wall = time.monotonic()

    @staticmethod
    def _own_seconds() -> float:
        times = os.times()
        return times.user + times.system

    def stop(self) -> LoadWindow:
        wall = time.monotonic() - self._wall
        cpus = os.cpu_count() or 1
        own_pct = 100 * (self._own_seconds() - self._own) / (wall * cpus)
        after = _cpu_ticks()
        busy_pct = others_pct = steal_pct = None
        if self._ticks is not None and after is not None:
            delta = [b - a for a, b in zip(self._ticks, after, strict=True)]
            total = sum(delta) or 1
            idle = delta[3] + delta[4]
            busy_pct = 100 * (total - idle) / total
            steal_pct = 100 * delta[7] / total
            others_pct = max(0.0, busy_pct - own_pct - steal_pct)
        return LoadWindow(
            cpus, wall, self._loadavg, _loadavg(), busy_pct, own_pct, others_pct, steal_pct
        )
