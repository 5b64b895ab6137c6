"""SQL for what metric gates read of the usage rollups: totals per variant and stage window.

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction`.
:meth:`EventTotalQueries.event_windows` is one ``GROUP BY`` over the per-minute rows
(``usage_minutes``): a gate reading a billion evaluations transfers a handful of rows per stage
window. Minutes are placed in windows by the rule of
:mod:`fader_server.rollout_logic.minute_windows` (a minute counts in window ``i`` when the
window started at or before it and the next one starts at or after its end; a minute in which
a stage changed counts nowhere), written as a ``CASE`` over bounds computed here, so SQLite and
PostgreSQL run the same SQL. Only the key kinds asked for count, and only rows naming a
variant (evaluations that served none are no arm's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from fader_server.storage.ports import EventTotals, VariantTotals
from fader_server.storage.ports.usage import EVALUATIONS
from fader_server.storage.sql.tables import usage_minutes

_MINUTE = timedelta(minutes=1)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EventTotalQueries:
    connection: sa.Connection

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
        minute = usage_minutes.c.minute
        # window i: starts[i] <= minute and, unless i is the last, minute + 60 s <= starts[i + 1]
        whens = [(minute >= bounds[-1], len(bounds) - 1)]
        for index in reversed(range(len(bounds) - 1)):
            whens.append(
                (sa.and_(minute >= bounds[index], minute <= bounds[index + 1] - _MINUTE), index)
            )
        window = sa.case(*whens, else_=-1).label("window")
        # windowed in a subquery: PostgreSQL would not see a CASE with bound parameters in
        # the GROUP BY as the same expression as in the select list
        found = (
            sa.select(
                window,
                usage_minutes.c.variant,
                usage_minutes.c.metric,
                usage_minutes.c.count,
                usage_minutes.c.total,
                usage_minutes.c.total_squares,
            )
            .where(
                usage_minutes.c.project_id == project_id,
                usage_minutes.c.environment == environment,
                usage_minutes.c.flag == flag,
                minute >= bounds[0],
                usage_minutes.c.key_kind.in_(list(key_kinds)),
                usage_minutes.c.variant != "",
            )
            .subquery()
        )
        keys = (found.c.window, found.c.variant, found.c.metric)
        rows = self.connection.execute(
            sa.select(
                *keys,
                sa.func.sum(found.c.count),
                sa.func.sum(found.c.total),
                sa.func.sum(found.c.total_squares),
            ).group_by(*keys)
        ).all()
        exposures: list[dict[str, int]] = [defaultdict(int) for _ in bounds]
        metrics: list[dict[str, dict[str, EventTotals]]] = [defaultdict(dict) for _ in bounds]
        for index, variant, metric, count, total, squares in rows:
            if not 0 <= index < len(bounds):
                continue
            if metric == EVALUATIONS:
                exposures[index][variant] += int(count)
            else:
                metrics[index][variant][metric] = EventTotals(
                    int(count), float(total), float(squares)
                )
        return [
            {
                variant: VariantTotals(seen.get(variant, 0), named.get(variant, {}))
                for variant in set(seen) | set(named)
            }
            for seen, named in zip(exposures, metrics, strict=True)
        ]
