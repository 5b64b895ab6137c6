"""SQL for what metric gates read of the SDK events: totals per variant and stage window.

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction`.
:meth:`EventTotalQueries.event_windows` is one ``GROUP BY`` in the database: a gate reading a
million exposures transfers a handful of rows per stage window, never the events. It windows by
the server's `received_at` (index ``ix_sdk_events_flag_received``) and counts only the key
kinds asked for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from fader_server.storage.ports import EventTotals, VariantTotals
from fader_server.storage.sql.tables import sdk_events


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
        received = sdk_events.c.received_at
        # the window an event falls in, by the server's receive time: the last start before it
        window = sa.case(
            *[(received >= start, index) for index, start in reversed(list(enumerate(starts)))],
            else_=-1,
        ).label("window")
        # windowed in a subquery: PostgreSQL would not see a CASE with bound parameters in
        # the GROUP BY as the same expression as in the select list
        found = (
            sa.select(
                window,
                sdk_events.c.variant,
                sdk_events.c.kind,
                sdk_events.c.name,
                sdk_events.c.value,
            )
            .where(
                sdk_events.c.project_id == project_id,
                sdk_events.c.environment == environment,
                sdk_events.c.flag == flag,
                # the server's clock: a client cannot place its events in a window
                received >= min(starts),
                sdk_events.c.key_kind.in_(list(key_kinds)),
                sdk_events.c.variant.is_not(None),
            )
            .subquery()
        )
        value = found.c.value
        keys = (found.c.window, found.c.variant, found.c.kind, found.c.name)
        rows = self.connection.execute(
            sa.select(
                *keys,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(value), 0.0),
                sa.func.coalesce(sa.func.sum(value * value), 0.0),
            ).group_by(*keys)
        ).all()
        exposures: list[dict[str, int]] = [defaultdict(int) for _ in starts]
        events: list[dict[str, dict[str, EventTotals]]] = [defaultdict(dict) for _ in starts]
        for index, variant, kind, name, count, total, squares in rows:
            if not 0 <= index < len(starts):
                continue
            if kind == "exposure":
                exposures[index][variant] += int(count)
            elif name is not None:
                events[index][variant][name] = EventTotals(int(count), float(total), float(squares))
        return [
            {
                variant: VariantTotals(seen.get(variant, 0), named.get(variant, {}))
                for variant in set(seen) | set(named)
            }
            for seen, named in zip(exposures, events, strict=True)
        ]
