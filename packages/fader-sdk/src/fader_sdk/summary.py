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

Distinct contexts travel apart from the counts: a :class:`ContextBuffer` takes them out of
every interval's summary and hands them back once a minute (see its docstring).

Wire format: docs/events.md, section 2. :meth:`Summary.chunks` splits a summary into requests
of at most :data:`MAX_ITEMS` items per list and :data:`MAX_CONTEXT_ITEMS` sketches.
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
MAX_CONTEXT_ITEMS = 200
"""Evaluation items carrying distinct contexts per request: a sketch is about 1 KiB on the
wire, so a request stays far under the server's 1 MiB body limit whatever it holds."""

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

    def __bool__(self) -> bool:
        """Whether there is anything to send (a sketch, or at least one key)."""
        return self.sketch is not None or bool(self.keys)

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

    `count` may be 0: a targeting key can reach the sender one interval after the evaluation it
    came with was counted (see :mod:`fader_sdk.summarizer`), and the item that carries a
    minute's contexts to the server may have had no evaluation in the last interval.
    """

    __slots__ = ("contexts", "count")

    def __init__(self) -> None:
        self.count = 0
        self.contexts = Contexts()


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

    def drop_unsendable(self) -> None:
        """Drop the metrics whose sum or sum of squares is no longer finite (counted lost):
        the server refuses them, and one such item must not cost the rest of the request."""
        for metric_key, metric in list(self.metrics.items()):
            if not metric.finite:
                del self.metrics[metric_key]
                self.lost += Dropped(measurements=metric.count)

    def chunks(self) -> list[Summary]:
        """This summary as requests of at most :data:`MAX_ITEMS` items per list, and at most
        :data:`MAX_CONTEXT_ITEMS` evaluation items carrying contexts each."""
        groups: list[list[tuple[EvaluationKey, EvaluationItem]]] = []
        carried = 0
        for key, item in self.evaluations.items():
            full = not groups or len(groups[-1]) == MAX_ITEMS
            if full or (item.contexts and carried == MAX_CONTEXT_ITEMS):
                groups.append([])
                carried = 0
            groups[-1].append((key, item))
            carried += bool(item.contexts)
        metrics = list(self.metrics.items())
        size = max(len(groups), -(-len(metrics) // MAX_ITEMS), -(-len(self.events) // MAX_ITEMS))
        out = []
        for n in range(size):
            at = n * MAX_ITEMS
            chunk = Summary(self.start, self.end, self.max_keys)
            chunk.evaluations = dict(groups[n]) if n < len(groups) else {}
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
                    **({"contexts": item.contexts.to_wire()} if item.contexts else {}),
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


class ContextBuffer:
    """Distinct contexts held between their sends, which happen once a minute, not with every
    interval's counts.

    Why apart: the server keeps distinct contexts per hour only (a sketch per flag, variant and
    hour), while counts feed minute rollups and guarded rollouts, which want them within
    seconds. A sketch is most of a request's bytes and most of the server's work on it (it is
    decoded, merged into the hour's and written back), so sending each one every five seconds
    would cost about twelve times what once a minute costs, for no finer answer.

    :meth:`absorb` moves the contexts out of an interval's summary (and drops the items that
    were there only for their contexts); :meth:`attach` puts everything held back into a
    summary about to be sent, on an item of the same flag and variant (one with a count of 0
    when the interval had none). Held per (flag, variant), since that is what the server
    keeps; at most `max_keys` of them (contexts for further keys are not kept: distinct counts
    are estimates, evaluations are never dropped for this), each at most
    :data:`EXACT_CONTEXTS` keys or one 1,024-byte sketch.
    """

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._held: dict[tuple[str, str | None], tuple[str, Contexts]] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def absorb(self, summary: Summary) -> None:
        for key, item in list(summary.evaluations.items()):
            if item.contexts:
                flag, variant, reason = key
                held = self._held.get((flag, variant))
                if held is not None:
                    held[1].merge(item.contexts)
                elif len(self._held) < self.max_keys:
                    self._held[(flag, variant)] = (reason, item.contexts)
                item.contexts = Contexts()
            if item.count == 0:
                del summary.evaluations[key]

    def attach(self, summary: Summary) -> None:
        carriers: dict[tuple[str, str | None], EvaluationItem] = {}
        for (flag, variant, _), item in summary.evaluations.items():
            carriers.setdefault((flag, variant), item)
        for (flag, variant), (reason, contexts) in self._held.items():
            carrier = carriers.get((flag, variant))
            if carrier is None:
                carrier = summary.evaluations[(flag, variant, reason)] = EvaluationItem()
            carrier.contexts.merge(contexts)
        self._held.clear()
