"""What one report to ``POST /api/v1/sdk/summaries`` holds, and how two reports merge.

A :class:`Summary` is plain data that one thread at a time works on (the sender's): evaluation
counts per (flag, variant, reason) with the distinct contexts behind them, custom metrics per
(metric, flag, variant) as count, sum and sum of squares, and debug events. Two summaries merge
by adding counters, uniting exact context sets and merging sketches. That is what a failed
delivery needs: the unsent summary is merged into the next one instead of queued beside it, so
memory does not grow with the length of an outage, and no evaluation is counted twice.

Bounds (docs/events.md, section 1), whatever is merged into a summary:

- at most `max_keys` items, evaluation and metric items together; an item for a further key is
  dropped and its evaluations or measurements are counted in :attr:`Summary.lost`;
- an evaluation item holds at most :data:`EXACT_CONTEXTS` targeting keys, then one
  :class:`~fader_engine.sketches.DistinctSketch` (1,024 bytes) instead;
- at most :data:`DEBUG_EVENTS_PER_FLAG` debug events per flag.

Wire format: docs/events.md, section 2. :meth:`Summary.chunks` splits a summary into requests
of at most :data:`MAX_ITEMS` items per list.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fader_engine.sketches import DistinctSketch

MAX_ITEMS = 1000
"""The protocol's limit per list and request."""
EXACT_CONTEXTS = 1000
"""Distinct targeting keys an evaluation item keeps exactly; beyond, a sketch counts them."""
DEBUG_EVENTS_PER_FLAG = 100
"""Debug events sent per flag and interval (docs/events.md)."""
DEFAULT_MAX_KEYS = 10_000
"""Evaluation and metric items a summary holds at most."""

EvaluationKey = tuple[str, str | None, str]
"""(flag, variant, reason); variant `None` when none was served (errors, the code default)."""
MetricKey = tuple[str, str | None, str | None]
"""(metric name, flag, variant); flag and variant `None` when `track` named none."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """What never reached the server, counted in what it stood for.

    `evaluations`: flag evaluations whose counts were lost (over the key bound, refused by the
    server, or unsent when delivery stopped or the client closed). `measurements`: `track`
    calls lost the same ways, or refused at once (a value that is not a finite number).
    `debug_events`: individual evaluations of debugged flags not sent (over the per-flag bound
    or lost with their request); their evaluations are still counted in the summaries.
    """

    evaluations: int = 0
    measurements: int = 0
    debug_events: int = 0

    def __add__(self, other: Dropped) -> Dropped:
        return Dropped(
            self.evaluations + other.evaluations,
            self.measurements + other.measurements,
            self.debug_events + other.debug_events,
        )

    @property
    def total(self) -> int:
        """Evaluations and measurements lost (debug events are copies of counted evaluations)."""
        return self.evaluations + self.measurements


class Contexts:
    """The distinct targeting keys behind one evaluation item.

    Exact (a set of at most :data:`EXACT_CONTEXTS` keys) until more keys arrive, or a sketch
    from a thread that had already overflowed; then one sketch holds them all and the exact
    count is unknown. Memory: the keys, or 1,024 bytes.
    """

    __slots__ = ("keys", "sketch")

    def __init__(self) -> None:
        self.keys: set[str] | None = set()
        self.sketch: DistinctSketch | None = None

    def add_keys(self, keys: Iterable[str]) -> None:
        if self.keys is not None:
            self.keys.update(keys)
            if len(self.keys) > EXACT_CONTEXTS:
                self._to_sketch()
        else:
            assert self.sketch is not None
            self.sketch.update(keys)

    def add_sketch(self, sketch: DistinctSketch) -> None:
        if self.keys is not None:
            self._to_sketch()
        assert self.sketch is not None
        self.sketch.merge(sketch)

    def merge(self, other: Contexts) -> None:
        if other.keys is not None:
            self.add_keys(other.keys)
        if other.sketch is not None:
            self.add_sketch(other.sketch)

    @property
    def exact(self) -> int | None:
        return None if self.keys is None else len(self.keys)

    def _to_sketch(self) -> None:
        assert self.keys is not None
        self.sketch = DistinctSketch().update(self.keys)
        self.keys = None

    def to_wire(self) -> dict[str, Any]:
        sketch = self.sketch if self.keys is None else DistinctSketch().update(self.keys)
        assert sketch is not None
        return {"exact": self.exact, "sketch": sketch.encode()}


class EvaluationItem:
    """Evaluations of one (flag, variant, reason) and their distinct contexts.

    `count` may be 0 for a moment: a targeting key can reach the sender one interval after the
    evaluation it came with was counted (see :mod:`fader_sdk.summarizer`). Such an item is not
    sent; it waits one interval for its count (`waited`), then its keys are let go.
    """

    __slots__ = ("contexts", "count", "waited")

    def __init__(self) -> None:
        self.count = 0
        self.contexts = Contexts()
        self.waited = False


class MetricItem:
    """Count, sum and sum of squares of one metric's values for one (flag, variant)."""

    __slots__ = ("count", "total", "total_squares")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.total_squares = 0.0

    @property
    def finite(self) -> bool:
        return math.isfinite(self.total) and math.isfinite(self.total_squares)


class Summary:
    """One interval's counters (or several intervals', merged after failed deliveries)."""

    def __init__(self, start: float, end: float, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.start = start
        self.end = end
        self.max_keys = max_keys
        self.evaluations: dict[EvaluationKey, EvaluationItem] = {}
        self.metrics: dict[MetricKey, MetricItem] = {}
        self.events: list[dict[str, Any]] = []
        self._events_per_flag: dict[str, int] = {}
        self.lost = Dropped()
        """What bounds refused while this summary was built or merged."""

    # -- building ---------------------------------------------------------------------------

    def _has_room(self) -> bool:
        return len(self.evaluations) + len(self.metrics) < self.max_keys

    def add_evaluations(
        self,
        key: EvaluationKey,
        count: int,
        keys: Iterable[str] = (),
        sketch: DistinctSketch | None = None,
    ) -> None:
        item = self.evaluations.get(key)
        if item is None:
            if not self._has_room():
                self.lost += Dropped(evaluations=count)
                return
            item = self.evaluations[key] = EvaluationItem()
        item.count += count
        item.contexts.add_keys(keys)
        if sketch is not None:
            item.contexts.add_sketch(sketch)

    def add_metric(self, key: MetricKey, count: int, total: float, total_squares: float) -> None:
        item = self.metrics.get(key)
        if item is None:
            if not self._has_room():
                self.lost += Dropped(measurements=count)
                return
            item = self.metrics[key] = MetricItem()
        item.count += count
        item.total += total
        item.total_squares += total_squares

    def add_event(self, event: dict[str, Any]) -> None:
        flag = event["flag"]
        sent = self._events_per_flag.get(flag, 0)
        if sent >= DEBUG_EVENTS_PER_FLAG:
            self.lost += Dropped(debug_events=1)
            return
        self._events_per_flag[flag] = sent + 1
        self.events.append(event)

    def merge(self, other: Summary) -> None:
        """Add `other` into this summary (bounds apply; what they refuse is counted)."""
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        self.lost += other.lost
        for key, item in other.evaluations.items():
            mine = self.evaluations.get(key)
            if mine is None:
                if not self._has_room():
                    self.lost += Dropped(evaluations=item.count)
                    continue
                self.evaluations[key] = item  # `other` is consumed: adopt its item
                continue
            mine.count += item.count
            mine.contexts.merge(item.contexts)
            mine.waited = mine.waited and item.waited
        for metric_key, metric in other.metrics.items():
            self.add_metric(metric_key, metric.count, metric.total, metric.total_squares)
        for event in other.events:
            self.add_event(event)

    # -- reading ----------------------------------------------------------------------------

    def __bool__(self) -> bool:
        return bool(self.evaluations or self.metrics or self.events)

    def counted(self) -> Dropped:
        """What this summary stands for, should it be lost."""
        return Dropped(
            sum(item.count for item in self.evaluations.values()),
            sum(item.count for item in self.metrics.values()),
            len(self.events),
        )

    def take_waiting(self) -> Summary:
        """Remove the items that cannot be sent yet (no count, or sums that overflowed).

        Returns the items that may still be sent next interval: an item without count waits
        once for its count, then its context keys are let go (its evaluations were sent). A
        metric whose sum or sum of squares is no longer finite is dropped and counted.
        """
        waiting = Summary(self.start, self.end, self.max_keys)
        for key, item in list(self.evaluations.items()):
            if item.count > 0:
                continue
            del self.evaluations[key]
            if not item.waited:
                item.waited = True
                waiting.evaluations[key] = item
        for metric_key, metric in list(self.metrics.items()):
            if not metric.finite:
                del self.metrics[metric_key]
                self.lost += Dropped(measurements=metric.count)
        return waiting

    def chunks(self) -> list[Summary]:
        """This summary as requests of at most :data:`MAX_ITEMS` items per list."""
        evaluations = list(self.evaluations.items())
        metrics = list(self.metrics.items())
        size = max(len(evaluations), len(metrics), len(self.events))
        out = []
        for at in range(0, size, MAX_ITEMS):
            chunk = Summary(self.start, self.end, self.max_keys)
            chunk.evaluations = dict(evaluations[at : at + MAX_ITEMS])
            chunk.metrics = dict(metrics[at : at + MAX_ITEMS])
            chunk.events = self.events[at : at + MAX_ITEMS]
            for event in chunk.events:
                flag = event["flag"]
                chunk._events_per_flag[flag] = chunk._events_per_flag.get(flag, 0) + 1
            out.append(chunk)
        return out

    def to_wire(self) -> dict[str, Any]:
        """The request body (docs/events.md, section 2)."""
        return {
            "start": self.start,
            "end": self.end,
            "evaluations": [
                {
                    "flag": flag,
                    "variant": variant,
                    "reason": reason,
                    "count": item.count,
                    "contexts": item.contexts.to_wire(),
                }
                for (flag, variant, reason), item in self.evaluations.items()
            ],
            "metrics": [
                {
                    "name": name,
                    "flag": flag,
                    "variant": variant,
                    "count": item.count,
                    "sum": item.total,
                    "sum_squares": item.total_squares,
                }
                for (name, flag, variant), item in self.metrics.items()
            ],
            "events": list(self.events),
        }

    def lost_items(self, refused: Iterable[tuple[str, int]]) -> Dropped:
        """What the items at (list, index) of :meth:`to_wire` stood for (the server's answer
        names refused items that way); unknown lists and indexes count nothing."""
        evaluations = list(self.evaluations.values())
        metrics = list(self.metrics.values())
        lost = Dropped()
        seen: set[tuple[str, int]] = set()
        for name, index in refused:
            if (name, index) in seen or index < 0:
                continue
            seen.add((name, index))
            if name == "evaluations" and index < len(evaluations):
                lost += Dropped(evaluations=evaluations[index].count)
            elif name == "metrics" and index < len(metrics):
                lost += Dropped(measurements=metrics[index].count)
            elif name == "events" and index < len(self.events):
                lost += Dropped(debug_events=1)
        return lost
