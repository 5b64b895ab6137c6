"""Rollups of SDK summaries, debug events, their retention, and the totals metric gates read of
them, in memory (the SQL counterparts are :mod:`fader_server.storage.sql.usage_rows` and
:mod:`fader_server.storage.sql.event_totals`). Windows are placed by
:func:`~fader_server.rollout_logic.minute_windows.minute_window`, the rule the SQL query
writes as a ``CASE``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime

from fader_engine.sketches import DistinctSketch, SketchError
from fader_server.rollout_logic.minute_windows import minute_window
from fader_server.storage.memory.state import TransactionState
from fader_server.storage.memory.tables import DebugRow, UsageKey, UsageRow
from fader_server.storage.ports import EventTotals, VariantTotals
from fader_server.storage.ports.usage import EVALUATIONS, DebugEvent, Pruned, UsageCount

COUNT_CAP = 2**62
SUM_CAP = 1e306
"""Where counts and sums saturate, as in the SQL store."""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _clamp(value: float) -> float:
    return max(-SUM_CAP, min(SUM_CAP, value))


def _add(row: UsageRow | None, item: UsageCount, contexts: bool) -> UsageRow:
    if row is None:
        row = UsageRow(0, 0.0, 0.0)
    sketch = None
    if contexts and item.contexts is not None:
        sketch = DistinctSketch.from_bytes(item.contexts)
        if row.contexts is not None:
            with suppress(SketchError):  # not a sketch: replaced, as the SQL store does
                sketch = DistinctSketch.from_bytes(row.contexts).merge(sketch)
    return UsageRow(
        min(row.count + item.count, COUNT_CAP),
        _clamp(row.total + item.total),
        _clamp(row.total_squares + item.total_squares),
        row.contexts if sketch is None else sketch.to_bytes(),
    )


class UsageRowQueries(TransactionState):
    # ---------------------------------------------------------------- rollups
    def add_usage(
        self,
        project_id: int,
        environment: str,
        key_kind: str,
        counts: Sequence[UsageCount],
        at: datetime,
    ) -> None:
        tables = self.write()
        minute = _utc(at).replace(second=0, microsecond=0)
        hour = minute.replace(minute=0)
        for item in counts:
            key = UsageKey(
                project_id, environment, item.flag, item.metric, item.variant, key_kind, minute
            )
            if item.count:  # an item that only brings contexts has nothing for the minute
                tables.usage_minutes[key] = _add(tables.usage_minutes.get(key), item, False)
            key = replace(key, at=hour)
            tables.usage_hours[key] = _add(
                tables.usage_hours.get(key), item, item.metric == EVALUATIONS
            )

    def add_debug_events(
        self,
        project_id: int,
        environment: str,
        key_kind: str,
        events: Sequence[DebugEvent],
        at: datetime,
        keep_per_flag: int,
    ) -> None:
        tables = self.write()
        for event in events:
            stored = replace(
                event, occurred_at=_utc(event.occurred_at), received_at=_utc(at), key_kind=key_kind
            )
            row_id = tables.next_id("debug_events")
            tables.debug_events[row_id] = DebugRow(project_id, environment, stored)
        for flag in {e.flag for e in events}:
            newest = sorted(
                (
                    (row.event.received_at, row_id)
                    for row_id, row in tables.debug_events.items()
                    if (row.project_id, row.environment, row.event.flag)
                    == (project_id, environment, flag)
                ),
                reverse=True,
            )
            for _, row_id in newest[keep_per_flag:]:
                del tables.debug_events[row_id]

    def claim_summary(self, token_id: int, summary_id: str, at: datetime) -> bool:
        receipts = self.write().summary_receipts
        if (token_id, summary_id) in receipts:
            return False
        receipts[(token_id, summary_id)] = _utc(at)
        return True

    def prune_usage(
        self,
        *,
        minutes_before: datetime,
        hours_before: datetime,
        debug_before: datetime,
        limit: int,
    ) -> Pruned:
        tables = self.write()
        minutes = [k for k in tables.usage_minutes if k.at < _utc(minutes_before)][:limit]
        hours = [k for k in tables.usage_hours if k.at < _utc(hours_before)][:limit]
        debug = [
            row_id
            for row_id, row in tables.debug_events.items()
            if row.event.received_at is not None and row.event.received_at < _utc(debug_before)
        ][:limit]
        for key in minutes:
            del tables.usage_minutes[key]
        for key in hours:
            del tables.usage_hours[key]
        for row_id in debug:
            del tables.debug_events[row_id]
        cut = _utc(debug_before)
        receipts = [k for k, at in tables.summary_receipts.items() if at < cut][:limit]
        for receipt in receipts:
            del tables.summary_receipts[receipt]
        return Pruned(len(minutes), len(hours), len(debug), len(receipts))

    # ------------------------------------------------------------ gate totals
    def event_totals(
        self,
        project_id: int,
        environment: str,
        flag: str,
        since: datetime,
        key_kinds: Sequence[str] = ("server",),
    ) -> dict[str, VariantTotals]:
        return self.event_windows(project_id, environment, flag, [since], key_kinds)[0]

    def event_windows(
        self,
        project_id: int,
        environment: str,
        flag: str,
        starts: Sequence[datetime],
        key_kinds: Sequence[str] = ("server",),
    ) -> list[dict[str, VariantTotals]]:
        if not starts:
            return []
        bounds = [_utc(start) for start in starts]
        exposures: list[dict[str, int]] = [defaultdict(int) for _ in bounds]
        sums: list[dict[str, dict[str, list[float]]]] = [defaultdict(dict) for _ in bounds]
        for key, row in self.tables.usage_minutes.items():
            if (
                (key.project_id, key.environment, key.flag) != (project_id, environment, flag)
                or key.key_kind not in key_kinds
                or key.variant == ""
            ):
                continue
            index = minute_window(key.at, bounds)
            if index is None:
                continue
            if key.metric == EVALUATIONS:
                exposures[index][key.variant] += row.count
                continue
            found = sums[index][key.variant].setdefault(key.metric, [0, 0.0, 0.0])
            found[0] += row.count
            found[1] += row.total
            found[2] += row.total_squares
        return [
            {
                variant: VariantTotals(
                    seen.get(variant, 0),
                    {
                        name: EventTotals(int(c), float(t), float(s))
                        for name, (c, t, s) in named.get(variant, {}).items()
                    },
                )
                for variant in set(seen) | set(named)
            }
            for seen, named in zip(exposures, sums, strict=True)
        ]
