"""Counting evaluations and metrics on application threads: no lock, no event object per call.

Every evaluation of a flag adds one to a counter, so the counting must cost next to nothing and
must be exact under any number of threads. The scheme, and why it is exact under CPython's GIL:

- **One buffer per thread, written only by that thread.** A thread's first evaluation creates
  its buffer (``threading.local``); from then on an evaluation does ``entry[0] += 1`` on a list
  found by one dictionary lookup of (flag, variant, reason) (the key tuple is the only object
  made, and freed at once), and puts the targeting key in a dict of keys. No other thread writes
  that buffer, so no increment can be lost, and no lock is needed (a lock costs more than the
  increment).
- **The sender only reads, and reads cumulative values.** At each flush the sender copies a
  buffer's dictionaries (``dict.copy()``, one C call, atomic under the GIL) and reads each
  counter once. It remembers, in the entry itself, the count it read last time and sends the
  difference. An increment that lands after the read is in the next difference: every increment
  is sent exactly once, never lost and never twice, whenever the read happens. Targeting keys
  are read the same way: the dict of keys only grows and keeps insertion order, so the keys
  added since the last read are the tail past the length read then.
- **Intervals by epochs, turned over by each thread itself.** A flush starts a new epoch and
  replaces the ``threading.local`` through which threads find their buffers, so a thread's next
  evaluation finds nothing there (no epoch test on every call), puts its buffer aside
  (``retired``) and starts an empty one; the sender reads retired buffers one last time and lets
  them go. So a buffer holds one interval's keys (plus, at most, the one evaluation a thread was
  in the middle of during a flush), and memory never accumulates across intervals. A buffer of a
  thread that stopped evaluating is read each flush and stays until the thread evaluates again
  or ends.
- **Finished threads are folded in and released.** A thread is watched through a weak reference
  to an object kept in its storage of a second, lifelong ``threading.local``, which CPython
  clears when the thread ends; the next flush reads that thread's buffers a last time (nothing
  can write them any more) and drops them.

Distinct contexts cannot be read with an evaluation's count in one step, so a targeting key can
arrive one flush after the count it came with; the sender holds contexts apart from counts
anyway (:class:`~fader_sdk.summary.ContextBuffer`, sent once a minute), so a late key joins
the others there. Counts, sums and dropped counts are exact; contexts are exact up to
:data:`~fader_sdk.summary.EXACT_CONTEXTS` per item, then a HyperLogLog estimate.

Metrics (``track``) replace a (count, sum, sum of squares) tuple in the thread's buffer in one
store, so the sender always reads the three together.

Bounds: at most `max_keys` distinct evaluation and metric keys are admitted per interval, over
all threads (a key over the bound is dropped and its evaluations are counted as lost). Each
thread holds at most two buffers (the current one and, until the next flush, the one before);
a buffer holds at most its interval's admitted keys, and per evaluation key at most
:data:`~fader_sdk.summary.EXACT_CONTEXTS` targeting keys plus one 1,024-byte sketch. Debug
events: at most :data:`~fader_sdk.summary.DEBUG_EVENTS_PER_FLAG` per flag and interval.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Collection, Hashable, Mapping
from typing import Any, TypeVar

from fader_engine import Resolution
from fader_engine.sketches import DistinctSketch
from fader_sdk.summary import (
    DEBUG_EVENTS_PER_FLAG,
    DEFAULT_MAX_KEYS,
    EXACT_CONTEXTS,
    Dropped,
    EvaluationKey,
    MetricKey,
    Summary,
)

log = logging.getLogger("fader_sdk")

MAX_KEY_LENGTH = 128
"""Longest flag key and variant name the server stores; longer ones are dropped and counted."""
MAX_METRIC_NAME = 200
MAX_TARGETING_KEY = 256
"""Longest targeting key a debug event carries (a longer one is sent as `null`)."""
MAX_VALUE = 1e150
"""Largest metric value accepted: its square must stay finite."""

Context = Mapping[str, Any]
_K = TypeVar("_K")
_V = TypeVar("_V")

# An evaluation entry: [count, keys, sketch, count read, keys read, sketch read]. The owner
# thread writes the first three, the sender the last three.
_COUNT, _KEYS, _SKETCH, _READ_COUNT, _READ_KEYS, _READ_SKETCH = range(6)
_NO_METRIC = (0, 0.0, 0.0)


class _Alive:
    """Kept in a thread's ``threading.local`` storage: it dies when the thread does."""

    __slots__ = ("__weakref__",)


class _Buffer:
    """One thread's counters for one epoch. The owner thread writes `evaluations`, `metrics`
    and the dropped counts; the sender writes only the `read_*` fields."""

    __slots__ = (
        "dropped_evaluations",
        "dropped_measurements",
        "epoch",
        "evaluations",
        "metrics",
        "read_dropped",
        "read_metrics",
    )

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.evaluations: dict[EvaluationKey, list[Any]] = {}
        self.metrics: dict[MetricKey, tuple[int, float, float]] = {}
        self.dropped_evaluations = 0
        self.dropped_measurements = 0
        self.read_metrics: dict[MetricKey, tuple[int, float, float]] = {}
        self.read_dropped = (0, 0)


class _Thread:
    """An application thread that evaluated flags, as the sender sees it."""

    __slots__ = ("alive", "buffer", "retired")

    def __init__(self, alive: weakref.ref[_Alive], epoch: int) -> None:
        self.alive = alive
        self.buffer = _Buffer(epoch)
        self.retired: deque[_Buffer] = deque()


class Summarizer:
    """Counts evaluations and metrics from any thread; :meth:`collect` reads them out."""

    def __init__(
        self,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        debug_flags: Collection[str] = (),
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self.debug_flags = frozenset(debug_flags)
        self._now = wall_clock
        self._local = threading.local()  # .entries, .buffer: replaced every epoch
        self._thread_local = threading.local()  # .thread, .alive: for a thread's lifetime
        self._lock = threading.Lock()  # registration, admission, debug events: never per call
        self._epoch = 0
        self._threads: list[_Thread] = []
        self._admitted: dict[Hashable, None] = {}
        self._debug_events: list[dict[str, Any]] = []
        self._debug_per_flag: dict[str, int] = {}
        self._refused_total = Dropped()  # refused at once, since the start (under _lock)
        self._warned = False
        self._start = wall_clock()
        self.evaluated: Callable[[str, Context | None, Resolution], Resolution] = (
            self._evaluated_debugging if self.debug_flags else self._evaluated
        )
        """Count one evaluation and return its resolution (the client's hot path)."""

    # -- application threads ------------------------------------------------------------------

    def _evaluated(self, flag: str, context: Context | None, resolution: Resolution) -> Resolution:
        try:
            try:
                entries: dict[EvaluationKey, list[Any]] = self._local.entries
            except AttributeError:
                entries = self._enter().evaluations
            key = (flag, resolution.variant, resolution.reason)
            entry = entries.get(key)
            if entry is None:
                entry = self._admit(key)
                if entry is None:
                    return resolution
            entry[0] += 1
            if context is not None:
                targeting_key = context.get("targetingKey")
                if type(targeting_key) is str:
                    keys = entry[1]
                    if targeting_key not in keys:
                        if len(keys) < EXACT_CONTEXTS:
                            keys[targeting_key] = None
                        else:
                            _overflow(entry, targeting_key)
        except Exception:  # counting must never break an evaluation
            self._refused("evaluations", "could not count an evaluation", exc_info=True)
        return resolution

    def _evaluated_debugging(
        self, flag: str, context: Context | None, resolution: Resolution
    ) -> Resolution:
        try:
            if flag in self.debug_flags:
                self._debug_event(flag, context, resolution)
        except Exception:
            self._refused("debug_events", "could not record a debug event", exc_info=True)
        return self._evaluated(flag, context, resolution)

    def measured(
        self, name: str, flag: str | None, variant: str | None, value: float | None
    ) -> None:
        """Count one `track` call (`None` counts 1 with value 0); never raises."""
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or abs(value) > MAX_VALUE
        ):
            self._refused("measurements", f"track({name!r}): value {value!r} is not a number")
            return
        if not _fits(name, MAX_METRIC_NAME) or not _fits_or_none(flag, MAX_KEY_LENGTH):
            self._refused("measurements", f"track({name!r}): name or flag too long or not text")
            return
        if not _fits_or_none(variant, MAX_KEY_LENGTH):
            self._refused("measurements", f"track({name!r}): variant too long or not text")
            return
        number = 0.0 if value is None else float(value)
        try:
            try:
                buffer: _Buffer = self._local.buffer
            except AttributeError:
                buffer = self._enter()
            key = (name, flag, variant)
            current = buffer.metrics.get(key)
            if current is None:
                if not self._admit_key(("metric", *key)):
                    buffer.dropped_measurements += 1
                    return
                current = _NO_METRIC
            count, total, squares = current
            buffer.metrics[key] = (count + 1, total + number, squares + number * number)
        except Exception:
            self._refused("measurements", "could not count a measurement", exc_info=True)

    def _enter(self) -> _Buffer:
        """This thread's first call in this epoch: register the thread if new, start an empty
        buffer if the epoch changed (the sender reads the old one once more), and put the
        buffer where the next calls find it."""
        local = self._local  # (collect() sets the epoch before it replaces the local)
        try:
            thread: _Thread = self._thread_local.thread
        except AttributeError:
            alive = _Alive()
            thread = _Thread(weakref.ref(alive), self._epoch)
            self._thread_local.alive = alive
            self._thread_local.thread = thread
            with self._lock:
                self._threads.append(thread)
        buffer = thread.buffer
        if buffer.epoch != self._epoch:
            buffer = _Buffer(self._epoch)
            old, thread.buffer = thread.buffer, buffer
            thread.retired.append(old)
        local.buffer = buffer
        local.entries = buffer.evaluations
        return buffer

    def _admit(self, key: EvaluationKey) -> list[Any] | None:
        """The first evaluation of `key` in this thread's buffer: check the key and the bound."""
        buffer: _Buffer = self._thread_local.thread.buffer
        flag, variant, _reason = key
        if (
            not _fits(flag, MAX_KEY_LENGTH)
            or not _fits_or_none(variant, MAX_KEY_LENGTH)
            or not self._admit_key(key)
        ):
            buffer.dropped_evaluations += 1
            return None
        entry: list[Any] = [0, {}, None, 0, 0, None]
        buffer.evaluations[key] = entry
        return entry

    def _admit_key(self, key: Hashable) -> bool:
        """Whether `key` may be counted this epoch (at most `max_keys` keys per epoch).

        A key already admitted, or a bound already reached, is decided without the lock (the
        registry only grows within an epoch); only a new key takes it.
        """
        admitted = self._admitted
        if key in admitted:
            return True
        if len(admitted) >= self.max_keys:
            return False
        with self._lock:
            admitted = self._admitted
            if key not in admitted:
                if len(admitted) >= self.max_keys:
                    return False
                admitted[key] = None
        return True

    def _debug_event(self, flag: str, context: Context | None, resolution: Resolution) -> None:
        targeting_key = None if context is None else context.get("targetingKey")
        if type(targeting_key) is not str or len(targeting_key) > MAX_TARGETING_KEY:
            targeting_key = None
        event = {
            "flag": flag,
            "variant": resolution.variant,
            "reason": str(resolution.reason),
            "targeting_key": targeting_key,
            "timestamp": self._now(),
        }
        with self._lock:
            recorded = self._debug_per_flag.get(flag, 0)
            if recorded >= DEBUG_EVENTS_PER_FLAG:
                self._refused_total += Dropped(debug_events=1)
                return
            self._debug_per_flag[flag] = recorded + 1
            self._debug_events.append(event)

    def _refused(self, kind: str, why: str, *, exc_info: bool = False) -> None:
        """Count one thing refused at once; log the first only (this may be on a hot path)."""
        with self._lock:
            self._refused_total += Dropped(**{kind: 1})
            first, self._warned = not self._warned, True
        if first:
            log.warning("fader: dropped (later ones are only counted): %s", why, exc_info=exc_info)

    # -- the sender ---------------------------------------------------------------------------

    def collect(self) -> Summary:
        """Start a new interval and return what was counted since the last call.

        Call from one thread at a time (the sender holds its lock). Application threads go on
        counting meanwhile; what they add after their buffer was read is in the next summary.
        """
        end = self._now()
        with self._lock:
            self._epoch += 1
            self._local = threading.local()  # after the epoch: see _enter
            self._admitted = {}
            threads = list(self._threads)
            events, self._debug_events = self._debug_events, []
            self._debug_per_flag = {}
        summary = Summary(self._start, end, self.max_keys)
        self._start = end
        finished = []
        for thread in threads:
            ended = thread.alive() is None  # checked first: then nothing writes its buffers
            while thread.retired:
                _read(thread.retired.popleft(), summary)
            _read(thread.buffer, summary)
            if ended:
                finished.append(thread)
        if finished:
            gone = {id(thread) for thread in finished}
            with self._lock:
                self._threads = [t for t in self._threads if id(t) not in gone]
        for event in events:
            summary.add_event(event)
        return summary

    @property
    def refused(self) -> Dropped:
        """What was refused at once since the start (values that are not numbers, debug events
        over their bound); not part of any summary's `lost`."""
        return self._refused_total

    @property
    def threads(self) -> int:
        """Threads whose buffers are held (for tests and diagnostics)."""
        return len(self._threads)


def _overflow(entry: list[Any], targeting_key: str) -> None:
    """A key beyond the exact bound of its entry goes into the entry's sketch."""
    sketch: DistinctSketch | None = entry[_SKETCH]
    if sketch is None:
        sketch = entry[_SKETCH] = DistinctSketch()
    sketch.add(targeting_key)


def _read(buffer: _Buffer, summary: Summary) -> None:
    """Add what `buffer` counted since its last read to `summary` (see the module docstring)."""
    for key, entry in _snapshot(buffer.evaluations).items():
        count = entry[_COUNT]
        delta = count - entry[_READ_COUNT]
        keys: dict[str, None] = entry[_KEYS]
        new_keys: list[str] = []
        if len(keys) != entry[_READ_KEYS]:
            every = list(_snapshot(keys))
            new_keys = every[entry[_READ_KEYS] :]
            entry[_READ_KEYS] = len(every)
        changed = None
        sketch: DistinctSketch | None = entry[_SKETCH]
        if sketch is not None:
            registers = bytes(sketch.registers)
            if registers != entry[_READ_SKETCH]:
                entry[_READ_SKETCH] = registers
                changed = DistinctSketch(registers)
        if delta or new_keys or changed is not None:
            entry[_READ_COUNT] = count
            flag, variant, reason = key
            summary.add_evaluations((flag, variant, str(reason)), delta, new_keys, changed)
    read = buffer.read_metrics
    for metric_key, (count, total, squares) in _snapshot(buffer.metrics).items():
        before = read.get(metric_key, _NO_METRIC)
        if count != before[0]:
            read[metric_key] = (count, total, squares)
            summary.add_metric(
                metric_key, count - before[0], total - before[1], squares - before[2]
            )
    evaluations, measurements = buffer.dropped_evaluations, buffer.dropped_measurements
    before_evaluations, before_measurements = buffer.read_dropped
    if evaluations != before_evaluations or measurements != before_measurements:
        buffer.read_dropped = (evaluations, measurements)
        summary.lost += Dropped(
            evaluations - before_evaluations, measurements - before_measurements
        )


def _snapshot(counters: dict[_K, _V]) -> dict[_K, _V]:
    """A copy of a dict another thread may be adding to.

    ``dict.copy()`` of a dict that never had a key deleted clones its table in one C call,
    without running Python code, so under the GIL no other thread can add a key halfway. Should
    another interpreter copy differently and see a key added during the copy, it raises
    `RuntimeError`, and copying again is right.
    """
    while True:
        try:
            return counters.copy()
        except RuntimeError:
            continue


def _fits(text: object, limit: int) -> bool:
    return type(text) is str and 0 < len(text) <= limit


def _fits_or_none(text: object, limit: int) -> bool:
    return text is None or _fits(text, limit)
