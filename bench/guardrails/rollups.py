"""Per-minute rollups of one flag, and the stage windows a metric gate reads from them.

The server adds each summary to the row of its receive minute; a gate counts a minute in a
stage window by :func:`fader_server.rollout_logic.minute_windows.seconds_window` (the minute
in which a stage changed counts in no window). This module keeps the same rows and applies
that function, so the windows handed to the gate are the server's.

Each row is also kept per *served* stage (which configuration the instances were serving when
they made the evaluations), which the server cannot know: that is how the simulation measures
the contamination of a window by another stage's evaluations (a summary made before a stage
change and received after it), and the evidence lost in the minutes that count nowhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from fleet import MINUTE, Counts

from fader_server.rollout_logic.minute_windows import seconds_window
from fader_server.rollout_logic.stats import RateCounts

ArmCounts = tuple[RateCounts, RateCounts]


@dataclass(frozen=True, slots=True)
class Mixing:
    """Where one rollout's evaluations were counted, in evaluations (both arms)."""

    counted: int = 0
    """Counted in some stage window."""
    foreign: int = 0
    """Counted in a window other than the one of the stage that served them."""
    uncounted: int = 0
    """In minutes that count in no window (a stage changed in them), from the plan's start on."""


class MinuteRollups:
    """The `usage_minutes` rows of one flag (one key kind), and their stage windows."""

    def __init__(self, start: float) -> None:
        self.starts: list[float] = [start]
        self._rows: dict[int, list[int]] = {}
        self._served: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._window: dict[int, int | None] = {}
        self._totals: list[list[int]] = [[0, 0, 0, 0]]

    def add(self, received: Mapping[tuple[int, int], Counts]) -> None:
        """Add what arrived, per (receive minute, served stage)."""
        for (minute, stage), counts in received.items():
            served = self._served[minute, stage]
            row = self._rows.get(minute)
            if row is None:
                row = self._rows[minute] = [0, 0, 0, 0]
                self._window[minute] = seconds_window(minute * MINUTE, self.starts)
            window = self._window[minute]
            total = None if window is None else self._totals[window]
            for index in range(4):
                served[index] += counts[index]
                row[index] += counts[index]
                if total is not None:
                    total[index] += counts[index]

    def new_window(self, start: float) -> None:
        """A stage began at `start`: windows are recomputed for every minute, as the server's
        query does at every tick (only the minute holding `start` changes)."""
        self.starts.append(start)
        self._totals = [[0, 0, 0, 0] for _ in self.starts]
        for minute, row in self._rows.items():
            window = self._window[minute] = seconds_window(minute * MINUTE, self.starts)
            if window is not None:
                total = self._totals[window]
                for index in range(4):
                    total[index] += row[index]

    def windows(self) -> list[ArmCounts]:
        """(control, treatment) per stage window, oldest first: what the gate reads."""
        return [(RateCounts(t[0], t[1]), RateCounts(t[2], t[3])) for t in self._totals]

    def mixing(self) -> Mixing:
        counted = foreign = uncounted = 0
        first = int(self.starts[0] // MINUTE)
        for (minute, stage), counts in self._served.items():
            evaluations = counts[0] + counts[2]
            window = self._window[minute]
            if window is None:
                if minute >= first:
                    uncounted += evaluations
                continue
            counted += evaluations
            if window != stage:
                foreign += evaluations
        return Mixing(counted, foreign, uncounted)
