"""Pydantic models of what the usage endpoints answer (:mod:`fader_server.api.usage`): a
flag's evaluations over time, its debug events, and the stale-flag report."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from fader_server.api.schemas import Strict

PeriodName = Literal["1h", "24h", "7d", "30d", "90d"]
StepName = Literal["minute", "hour", "day"]


class UsagePointOut(Strict):
    start: datetime = Field(description="the start of the step (UTC)")
    evaluations: int = Field(description="every evaluation in the step")
    variants: dict[str, int] = Field(
        description="evaluations per variant listed in `totals.variants` (zeros included)"
    )
    no_variant: int = Field(
        description="evaluations that served no variant (errors, the application's default)"
    )


class UsageTotalsOut(Strict):
    evaluations: int
    variants: dict[str, int] = Field(
        description="evaluations per variant served, the most evaluated first (at most 50)"
    )
    no_variant: int
    variants_left_out: int = Field(
        description="variants evaluated but not listed (beyond 50); they count in `evaluations`"
    )


class DistinctContextsOut(Strict):
    all: int = Field(description="distinct contexts across all variants (estimated)")
    variants: dict[str, int] = Field(description="distinct contexts per listed variant")
    note: str


class FlagUsageOut(Strict):
    flag: str
    environment: str
    period: PeriodName
    step: StepName = Field(description="minute for 1h, hour for 24h and 7d, day for 30d and 90d")
    since: datetime = Field(description="the start of the first step")
    until: datetime = Field(description="the end of the last step (the one in progress)")
    points: list[UsagePointOut] = Field(
        description="every step of the period, oldest first; steps without evaluations are zeros"
    )
    totals: UsageTotalsOut
    distinct_contexts: DistinctContextsOut
    last_evaluated: datetime | None = Field(
        description="the start of the last minute (or hour, beyond minute retention) in which "
        "the flag was evaluated in this environment, whenever that was; null if never"
    )


class DebugEventOut(Strict):
    flag: str
    variant: str | None
    reason: str
    targeting_key: str | None
    occurred_at: datetime = Field(description="when the SDK evaluated (the SDK's clock)")
    received_at: datetime | None = Field(description="when the server received it")
    key_kind: str = Field(description="the kind of key that reported it: server or client")


class DebugEventList(Strict):
    flag: str
    environment: str
    items: list[DebugEventOut] = Field(description="newest first")


class StaleFlagOut(Strict):
    key: str
    name: str
    kind: str
    owner_team: str | None
    reason: str = Field(description="why the flag is stale, in words")
    since: datetime = Field(description="when it became stale")
    last_evaluated: datetime | None = Field(
        description="its last evaluation in a counted environment; null if none was recorded"
    )


class StaleFlagReport(Strict):
    unused_days: int
    unchanged_days: int
    items: list[StaleFlagOut] = Field(description="the longest stale first")
