"""Snapshot revisions, SDK events (stored, and aggregated for metric gates) and SDK key checks,
in memory (the SQL counterparts are :mod:`fader_server.storage.sql.delivery` and
:mod:`fader_server.storage.sql.event_totals`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from fader_server.storage.memory.state import TransactionState, fresh
from fader_server.storage.memory.tables import EventRow
from fader_server.storage.ports import (
    PROJECT_SCOPE,
    EnvironmentChange,
    EventTotals,
    Project,
    ResourceType,
    SdkEvent,
    TokenKind,
    VariantTotals,
)


class DeliveryQueries(TransactionState):
    # --------------------------------------------------------------- revisions
    def bump_revisions(
        self, project: Project, environments: Sequence[str], at: datetime
    ) -> list[EnvironmentChange]:
        tables = self.write()
        bumped: list[EnvironmentChange] = []
        for environment in sorted(set(environments)):
            key = (project.id, environment)
            tables.revisions[key] = tables.revisions.get(key, 0) + 1
            bumped.append(
                EnvironmentChange(project.id, project.key, environment, tables.revisions[key])
            )
        self.changes.extend(bumped)
        return bumped

    def revision(self, project_id: int, environment: str) -> int:
        return self.tables.revisions.get((project_id, environment), 0)

    # -------------------------------------------------------------- SDK events
    def insert_sdk_events(
        self, project_id: int, environment: str, events: Sequence[SdkEvent], at: datetime
    ) -> None:
        tables = self.write()
        tables.events.extend(EventRow(project_id, environment, fresh(e), at) for e in events)

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
        exposures: list[dict[str, int]] = [defaultdict(int) for _ in starts]
        sums: list[dict[str, dict[str, list[float]]]] = [defaultdict(dict) for _ in starts]
        for row in self.tables.events:
            event = row.event
            if (
                row.project_id != project_id
                or row.environment != environment
                or event.flag != flag
                or row.received_at < min(starts)
                or event.key_kind not in key_kinds
                or event.variant is None
            ):
                continue
            # the window is the last one started by the event's receive time (the server's)
            index = next(
                (i for i in reversed(range(len(starts))) if row.received_at >= starts[i]), -1
            )
            if index < 0:
                continue
            if event.kind == "exposure":
                exposures[index][event.variant] += 1
            elif event.name is not None:
                count, total, squares = sums[index][event.variant].get(event.name, [0, 0.0, 0.0])
                value = event.value
                sums[index][event.variant][event.name] = [
                    count + 1,
                    total + (value or 0.0),
                    squares + (value * value if value is not None else 0.0),
                ]
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

    # ---------------------------------------------------------------- SDK keys
    def usable_keys(self, token_ids: Sequence[int], at: datetime) -> set[int]:
        usable: set[int] = set()
        for token_id in set(token_ids):
            token = self.tables.tokens.get(token_id)
            if (
                token is None
                or token.kind not in (TokenKind.SERVER, TokenKind.CLIENT)
                or token.revoked_at is not None
                or token.project_id not in self.tables.projects
                or (token.expires_at is not None and token.expires_at <= at)
            ):
                continue
            env = next(
                (
                    row.resource
                    for row in self.tables.resources.values()
                    if row.resource.project_id == token.project_id
                    and row.resource.type is ResourceType.ENVIRONMENT
                    and row.resource.scope == PROJECT_SCOPE
                    and row.resource.key == token.environment_key
                ),
                None,
            )
            if env is not None and not env.deleted:
                usable.add(token_id)
        return usable
