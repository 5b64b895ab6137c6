"""Usage you can see (docs/events.md, section 5): a flag's evaluations over time in one
environment, its debug events, and the stale-flag report. Reads, for the viewer role and above.

An unknown flag or environment is a 404 problem; a period, limit or number of days outside
the allowed values is a 422 problem naming them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from fader_server.api import problems
from fader_server.api.security import Caller, Svc
from fader_server.api.usage_schemas import (
    DebugEventList,
    DebugEventOut,
    DistinctContextsOut,
    FlagUsageOut,
    PeriodName,
    StaleFlagOut,
    StaleFlagReport,
    UsagePointOut,
    UsageTotalsOut,
)
from fader_server.services.reports import MAX_UNUSED_DAYS, STALE_UNCHANGED_DAYS, UNUSED_DAYS
from fader_server.services.usage import CONTEXTS_NOTE, MAX_DEBUG_EVENTS

router = APIRouter(
    prefix="/api/v1/projects/{project}", tags=["usage"], responses=problems.API_ERRORS
)

EnvironmentKey = Annotated[
    str, Query(min_length=1, max_length=128, description="the environment's key")
]


@router.get("/flags/{flag}/usage")
def flag_usage(
    project: str,
    flag: str,
    environment: EnvironmentKey,
    svc: Svc,
    caller: Caller,
    period: Annotated[
        PeriodName,
        Query(description="1h per minute, 24h and 7d per hour, 30d and 90d per day"),
    ] = "7d",
) -> FlagUsageOut:
    """How often the flag was evaluated in the environment, per step of the period, which
    variants it served, how many distinct contexts saw it (estimated), and when it was last
    evaluated. Counts come from SDK summaries (docs/events.md)."""
    usage = svc.usage.flag_usage(caller, project, flag, environment, period)
    return FlagUsageOut(
        flag=usage.flag,
        environment=usage.environment,
        period=period,
        step=usage.period.step,
        since=usage.since,
        until=usage.until,
        points=[
            UsagePointOut(
                start=p.start,
                evaluations=p.evaluations,
                variants=dict(p.variants),
                no_variant=p.no_variant,
            )
            for p in usage.points
        ],
        totals=UsageTotalsOut(
            evaluations=usage.evaluations,
            variants=dict(usage.variants),
            no_variant=usage.no_variant,
            variants_left_out=usage.variants_left_out,
        ),
        distinct_contexts=DistinctContextsOut(
            all=usage.distinct_contexts,
            variants=dict(usage.distinct_by_variant),
            note=CONTEXTS_NOTE,
        ),
        last_evaluated=usage.last_evaluated,
    )


@router.get("/flags/{flag}/debug-events")
def flag_debug_events(
    project: str,
    flag: str,
    environment: EnvironmentKey,
    svc: Svc,
    caller: Caller,
    limit: Annotated[
        int, Query(ge=1, le=MAX_DEBUG_EVENTS, description="at most this many events")
    ] = 100,
) -> DebugEventList:
    """The newest evaluations SDKs reported one by one for this flag (only while it is in
    their `debug_flags`); the server keeps the newest 1,000 per flag for a day."""
    found = svc.usage.debug_events(caller, project, flag, environment, limit)
    return DebugEventList(
        flag=flag,
        environment=environment,
        items=[
            DebugEventOut(
                flag=e.flag,
                variant=e.variant,
                reason=e.reason,
                targeting_key=e.targeting_key,
                occurred_at=e.occurred_at,
                received_at=e.received_at,
                key_kind=e.key_kind,
            )
            for e in found
        ],
    )


@router.get("/reports/stale-flags", tags=["reports"])
def stale_flags(
    project: str,
    svc: Svc,
    caller: Caller,
    unused_days: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_UNUSED_DAYS,
            description="a flag not evaluated for this many days is stale",
        ),
    ] = UNUSED_DAYS,
) -> StaleFlagReport:
    """Release and experiment flags that are candidates for removal: past their expected
    lifetime, serving one variant to everyone and unchanged for 30 days, or not evaluated in
    the counted environments (the protected ones, else all) for `unused_days` days."""
    found = svc.reports.stale_flags(caller, project, unused_days=unused_days)
    return StaleFlagReport(
        unused_days=unused_days,
        unchanged_days=STALE_UNCHANGED_DAYS,
        items=[
            StaleFlagOut(
                key=s.key,
                name=s.name,
                kind=s.kind,
                owner_team=s.owner_team,
                reason=s.reason,
                since=s.since,
                last_evaluated=s.last_evaluated,
            )
            for s in found
        ],
    )
