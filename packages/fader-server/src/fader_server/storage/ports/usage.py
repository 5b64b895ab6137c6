"""Usage storage: what SDK summaries become (per-minute and per-hour rollups, a few debug
events) and what the usage views, the stale-flag report and retention read and prune of them.

Storage grows with flags x variants x metrics x time, never with evaluations: a summary item
adds to a row's counters (docs/events.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

EVALUATIONS = ""
"""The `metric` of rollup rows that count evaluations (custom metrics carry their name)."""

Step = Literal["minute", "hour", "day"]


@dataclass(frozen=True, slots=True)
class DistinctContexts:
    """Estimated distinct contexts: across every variant (`all`), and per variant (a union
    of the variants' counts is not their sum: one context may have seen several)."""

    all: int = 0
    variants: Mapping[str, int] = field(default_factory=dict)


def step_start(moment: datetime, step: Step) -> datetime:
    """The start of the UTC minute, hour or day that `moment` falls in (a naive `moment` is
    read as UTC): where usage steps begin, for the stores and the usage views alike."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if step == "minute":
        return moment.replace(second=0, microsecond=0)
    if step == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class UsageCount:
    """One summary item as the server adds it to a rollup row.

    `flag`, `variant`: ``""`` when the report named none (an evaluation that failed has no
    variant; a custom metric may be about no flag). `metric`: :data:`EVALUATIONS` or a custom
    metric's name. `count` evaluations or measurements; `total` and `total_squares` the sum and
    sum of squares of a metric's values (0 for evaluations). `contexts`: for evaluations, the
    compressed distinct-context sketch (:meth:`fader_engine.sketches.DistinctSketch.to_bytes`)
    of the contexts counted, or `None`."""

    flag: str
    metric: str
    variant: str
    count: int
    total: float = 0.0
    total_squares: float = 0.0
    contexts: bytes | None = None


@dataclass(frozen=True, slots=True)
class DebugEvent:
    """One evaluation an SDK reported individually (its flag was being debugged)."""

    flag: str
    variant: str | None
    reason: str
    targeting_key: str | None
    occurred_at: datetime
    received_at: datetime | None = None
    key_kind: str = "server"


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """Evaluations of one flag in one environment in ``[start, start + step)``, per variant
    (``""``: evaluations that served no variant)."""

    start: datetime
    variants: Mapping[str, int] = field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        return sum(self.variants.values())


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows retention deleted, per table."""

    minutes: int = 0
    hours: int = 0
    debug_events: int = 0
    receipts: int = 0


class UsageRows(Protocol):
    def add_usage(
        self,
        project_id: int,
        environment: str,
        key_kind: str,
        counts: Sequence[UsageCount],
        at: datetime,
    ) -> None:
        """Add `counts` to the minute and hour rows of `at` (the server's receive time):
        counters add up, sketches merge. Safe against concurrent writers (other replicas)."""
        ...

    def claim_summary(self, token_id: int, summary_id: str, at: datetime) -> bool:
        """Record that the key delivered the summary `summary_id`; `False` when it already
        had (then nothing of it may be added again). Concurrent claims of one id: one wins."""
        ...

    def add_debug_events(
        self,
        project_id: int,
        environment: str,
        key_kind: str,
        events: Sequence[DebugEvent],
        at: datetime,
        keep_per_flag: int,
    ) -> None:
        """Store the events with `at` as their receive time, then keep only the newest
        `keep_per_flag` of each of their flags."""
        ...

    def prune_usage(
        self,
        *,
        minutes_before: datetime,
        hours_before: datetime,
        debug_before: datetime,
        limit: int,
    ) -> Pruned:
        """Delete at most `limit` rows of each table older than its cut-off (minute rows
        from before `minutes_before`, and so on; summary receipts with the debug events);
        called again while it deletes `limit`."""
        ...


class UsageReads(Protocol):
    def usage_series(
        self,
        project_id: int,
        environment: str,
        flag: str,
        since: datetime,
        until: datetime,
        step: Step,
    ) -> list[UsagePoint]:
        """Evaluations of `flag` per `step` from `since` to `until` (all key kinds), oldest
        first; steps without evaluations are left out. Minute steps read minute rows, hour and
        day steps read hour rows."""
        ...

    def distinct_contexts(
        self, project_id: int, environment: str, flag: str, since: datetime, until: datetime
    ) -> DistinctContexts:
        """Estimated distinct contexts, per variant and across all, that evaluated `flag` in
        the hours from `since` to `until` (hour sketches merged)."""
        ...

    def last_evaluated(
        self,
        project_id: int,
        environment: str | None = None,
        flag: str | None = None,
        since: datetime | None = None,
    ) -> dict[tuple[str, str], datetime]:
        """(environment, flag) -> the start of the last minute (or, beyond minute retention,
        hour) in which the flag was evaluated; flags never evaluated are absent. `environment`
        and `flag` narrow the read to one of each (a flag's page reads only that flag);
        `since` reads only the hours from the one it falls in (flags last evaluated before are
        absent), so a report over many flags reads recent rows rather than all of them."""
        ...

    def debug_events(
        self, project_id: int, environment: str, flag: str, limit: int
    ) -> list[DebugEvent]:
        """The newest debug events of `flag`, newest first."""
        ...
