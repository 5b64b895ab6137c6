"""SQL for what people read of the usage rollups: evaluations over time, distinct contexts,
when each flag was last evaluated, and debug events (docs/events.md, section 5).

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction` implementing
:class:`~fader_server.storage.ports.usage.UsageReads`. Every query sums in the database
(``GROUP BY`` step and variant, all key kinds together), so a read transfers one row per step
and variant however many evaluations and replicas wrote them. Days are folded from hour rows
here rather than in SQL: SQLite and PostgreSQL truncate dates differently, and 90 days are at
most 2,160 hours per variant.

Times are compared in UTC: SQLite keeps ``DateTime`` values as text without a zone, so every
bound is converted to UTC first, and every value read is given back its zone.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from fader_server.storage.ports.usage import (
    EVALUATIONS,
    DebugEvent,
    DistinctContexts,
    Step,
    UsagePoint,
    step_start,
)
from fader_server.storage.sketch_union import distinct_by_variant
from fader_server.storage.sql.tables import debug_events, usage_hours, usage_minutes

HOUR = timedelta(hours=1)
HOURS_PER_READ = 50
"""Distinct last hours whose minute rows one statement reads (an ``OR`` of ranges)."""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UsageReadQueries:
    connection: sa.Connection

    def usage_series(
        self,
        project_id: int,
        environment: str,
        flag: str,
        since: datetime,
        until: datetime,
        step: Step,
    ) -> list[UsagePoint]:
        table = usage_minutes if step == "minute" else usage_hours
        at = table.c.minute if step == "minute" else table.c.hour
        rows = self.connection.execute(
            sa.select(at, table.c.variant, sa.func.sum(table.c.count))
            .where(
                table.c.project_id == project_id,
                table.c.environment == environment,
                table.c.flag == flag,
                table.c.metric == EVALUATIONS,
                at >= _utc(since),
                at < _utc(until),
            )
            .group_by(at, table.c.variant)
        )
        steps: dict[datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for start, variant, count in rows:
            steps[step_start(start, step)][variant] += int(count)
        return [UsagePoint(start, dict(steps[start])) for start in sorted(steps)]

    def distinct_contexts(
        self, project_id: int, environment: str, flag: str, since: datetime, until: datetime
    ) -> DistinctContexts:
        """Merges the hour sketches of each variant as they stream in (one union per variant
        in memory, :mod:`~fader_server.storage.sketch_union`), then the variants' unions into
        the one across all of them."""
        rows = self.connection.execute(
            sa.select(usage_hours.c.variant, usage_hours.c.contexts).where(
                usage_hours.c.project_id == project_id,
                usage_hours.c.environment == environment,
                usage_hours.c.flag == flag,
                usage_hours.c.metric == EVALUATIONS,
                usage_hours.c.hour >= step_start(since, "hour"),
                usage_hours.c.hour < _utc(until),
                usage_hours.c.contexts.is_not(None),
            )
        )
        return distinct_by_variant((variant, contexts) for variant, contexts in rows)

    def last_evaluated(
        self,
        project_id: int,
        environment: str | None = None,
        flag: str | None = None,
        since: datetime | None = None,
    ) -> dict[tuple[str, str], datetime]:
        """The last hour of each flag from the hour rows (kept longest), then its last minute
        from the minute rows of that hour only: a flag's last minute lies in its last hour, so
        the minute rows read are those of the few distinct last hours (most flags in use share
        the current one), never a flag's whole history of minutes.

        What the hour read costs: with `environment` and `flag`, the rows of that flag (the
        primary key's prefix); with `since`, the rows from then on; with neither, every
        evaluation row of the project, which a report over all flags should avoid
        (:class:`~fader_server.services.reports.LastEvaluations` reads recent rows, then only
        the flags it still needs, one by one)."""
        start = None if since is None else step_start(since, "hour")
        hours = self._last_hours(project_id, environment, flag, start)
        found = dict(hours)
        last_hours = sorted(set(hours.values()))
        for first in range(0, len(last_hours), HOURS_PER_READ):
            chosen = last_hours[first : first + HOURS_PER_READ]
            for key, minute in self._last_minutes(project_id, environment, flag, chosen).items():
                if key in hours and hours[key] <= minute < hours[key] + HOUR:
                    found[key] = max(found[key], minute)
        return found

    def _last_hours(
        self,
        project_id: int,
        environment: str | None,
        flag: str | None,
        since: datetime | None,
    ) -> dict[tuple[str, str], datetime]:
        t = usage_hours.c
        query = self._narrowed(
            sa.select(t.environment, t.flag, sa.func.max(t.hour)), usage_hours, environment, flag
        ).where(t.project_id == project_id)
        if since is not None:
            query = query.where(t.hour >= since)
        return {(env, key): _utc(at) for env, key, at in self.connection.execute(query)}

    def _last_minutes(
        self,
        project_id: int,
        environment: str | None,
        flag: str | None,
        hours: list[datetime],
    ) -> dict[tuple[str, str], datetime]:
        t = usage_minutes.c
        within = sa.or_(*[sa.and_(t.minute >= h, t.minute < h + HOUR) for h in hours])
        query = self._narrowed(
            sa.select(t.environment, t.flag, sa.func.max(t.minute)),
            usage_minutes,
            environment,
            flag,
        ).where(t.project_id == project_id, within)
        return {(env, key): _utc(at) for env, key, at in self.connection.execute(query)}

    @staticmethod
    def _narrowed(
        query: sa.Select[Any],
        table: sa.Table,
        environment: str | None,
        flag: str | None,
    ) -> sa.Select[Any]:
        query = query.where(table.c.metric == EVALUATIONS, table.c.count > 0).group_by(
            table.c.environment, table.c.flag
        )
        if environment is not None:
            query = query.where(table.c.environment == environment)
        if flag is not None:
            query = query.where(table.c.flag == flag)
        return query

    def debug_events(
        self, project_id: int, environment: str, flag: str, limit: int
    ) -> list[DebugEvent]:
        rows = self.connection.execute(
            sa.select(debug_events)
            .where(
                debug_events.c.project_id == project_id,
                debug_events.c.environment == environment,
                debug_events.c.flag == flag,
            )
            .order_by(debug_events.c.received_at.desc(), debug_events.c.id.desc())
            .limit(limit)
        )
        return [
            DebugEvent(
                flag=row.flag,
                variant=row.variant,
                reason=row.reason,
                targeting_key=row.targeting_key,
                occurred_at=_utc(row.occurred_at),
                received_at=_utc(row.received_at),
                key_kind=row.key_kind,
            )
            for row in rows
        ]
