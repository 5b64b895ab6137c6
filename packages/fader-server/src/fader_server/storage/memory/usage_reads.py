"""What people read of the usage rollups, in memory (the SQL counterpart is
:mod:`fader_server.storage.sql.usage_reads`, whose docstring says what each read means): the
same steps, the same merged sketches, the same orderings, over the dictionaries of
:mod:`.usage_rows`."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from fader_server.storage.memory.state import TransactionState, fresh
from fader_server.storage.memory.tables import UsageKey, UsageRow
from fader_server.storage.ports.usage import (
    EVALUATIONS,
    DebugEvent,
    DistinctContexts,
    Step,
    UsagePoint,
    step_start,
)
from fader_server.storage.sketch_union import distinct_by_variant


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UsageReadQueries(TransactionState):
    def _evaluations(
        self, rows: dict[UsageKey, UsageRow], project_id: int, environment: str, flag: str
    ) -> list[tuple[UsageKey, UsageRow]]:
        return [
            (key, row)
            for key, row in rows.items()
            if (key.project_id, key.environment, key.flag, key.metric)
            == (project_id, environment, flag, EVALUATIONS)
        ]

    def usage_series(
        self,
        project_id: int,
        environment: str,
        flag: str,
        since: datetime,
        until: datetime,
        step: Step,
    ) -> list[UsagePoint]:
        rows = self.tables.usage_minutes if step == "minute" else self.tables.usage_hours
        low, high = _utc(since), _utc(until)
        steps: dict[datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for key, row in self._evaluations(rows, project_id, environment, flag):
            if low <= key.at < high:
                steps[step_start(key.at, step)][key.variant] += row.count
        return [UsagePoint(start, dict(steps[start])) for start in sorted(steps)]

    def distinct_contexts(
        self, project_id: int, environment: str, flag: str, since: datetime, until: datetime
    ) -> DistinctContexts:
        low, high = step_start(since, "hour"), _utc(until)
        rows = self._evaluations(self.tables.usage_hours, project_id, environment, flag)
        return distinct_by_variant(
            (key.variant, row.contexts)
            for key, row in rows
            if row.contexts is not None and low <= key.at < high
        )

    def last_evaluated(
        self,
        project_id: int,
        environment: str | None = None,
        flag: str | None = None,
        since: datetime | None = None,
    ) -> dict[tuple[str, str], datetime]:
        start = None if since is None else step_start(since, "hour")
        last: dict[tuple[str, str], datetime] = {}
        for rows in (self.tables.usage_hours, self.tables.usage_minutes):
            for key, row in rows.items():
                if (
                    key.project_id != project_id
                    or key.metric != EVALUATIONS
                    or row.count <= 0
                    or (environment is not None and key.environment != environment)
                    or (flag is not None and key.flag != flag)
                    or (start is not None and key.at < start)
                ):
                    continue
                found = (key.environment, key.flag)
                last[found] = max(key.at, last.get(found, key.at))
        return last

    def debug_events(
        self, project_id: int, environment: str, flag: str, limit: int
    ) -> list[DebugEvent]:
        found = [
            (row.event.received_at, row_id, row.event)
            for row_id, row in self.tables.debug_events.items()
            if (row.project_id, row.environment, row.event.flag) == (project_id, environment, flag)
        ]
        found.sort(key=lambda item: (item[0] or datetime.min.replace(tzinfo=UTC), item[1]))
        return [fresh(event) for _, _, event in reversed(found[-limit:])] if limit > 0 else []
