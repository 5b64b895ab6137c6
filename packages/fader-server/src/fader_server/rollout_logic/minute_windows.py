"""Which stage window a minute of rollups counts in (docs/events.md, section 4).

SDK summaries land in per-minute rollups by the server's receive time, so a gate sees minutes,
not evaluations. A minute ``[m, m + 60 s)`` counts in window ``i`` when window ``i`` started at
or before ``m`` and the next window starts at or after ``m + 60 s``. A minute in which a stage
changed holds traffic of two different mixes of who gets what, so it counts in no window:
comparing the arms within a window stays a comparison of like with like, at the price of at
most one minute of evidence per stage change. The SQL store applies the same rule in its query;
the in-memory store and ``bench/guardrails`` call this function.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta

MINUTE = timedelta(minutes=1)


def floor_minute(at: datetime) -> datetime:
    """The start of the minute `at` falls in."""
    return at.replace(second=0, microsecond=0)


def minute_window(minute: datetime, starts: Sequence[datetime]) -> int | None:
    """The index of the window that the minute starting at `minute` counts in, or `None`
    (before the first window, or straddling a window start). `starts` increase."""
    index = bisect_right(starts, minute) - 1
    if index < 0:
        return None
    if index + 1 < len(starts) and starts[index + 1] < minute + MINUTE:
        return None
    return index


def seconds_window(minute: float, starts: Sequence[float]) -> int | None:
    """:func:`minute_window` for times in seconds (the simulation's clock)."""
    index = bisect_right(starts, minute) - 1
    if index < 0:
        return None
    if index + 1 < len(starts) and starts[index + 1] < minute + 60.0:
        return None
    return index
