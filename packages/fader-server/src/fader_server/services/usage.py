"""Usage you can see (docs/events.md, section 5): how often a flag was evaluated in one
environment over a period, which variants it served, how many distinct contexts saw it
(estimated), when it was last evaluated, and the debug events of a flag being debugged.

Periods are fixed so that every view reads a bounded number of rows and draws a bounded chart:
the last hour per minute (60 steps), the last day or week per hour (24 or 168 steps), the last
30 or 90 days per day. Steps are UTC minutes, hours or days; the last step is the one in
progress. Every step of the period is returned, those without evaluations as zeros, so a chart
and its table have one row per step and a gap in traffic reads as a zero, not as a missing row.

Distinct contexts merge the hour sketches of the period (a minute period counts the hours it
touches): HyperLogLog estimates, about 3% off beyond a few thousand contexts
(:mod:`fader_engine.sketches`), and never summed across steps (the same user in two hours is
one context).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from fader_engine.sketches import RELATIVE_STANDARD_ERROR
from fader_server.errors import FieldProblem, InvalidInputError, NotFoundError
from fader_server.services import documents
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.definitions import live
from fader_server.storage.ports import PROJECT_SCOPE, Project, ResourceType
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.store import Store
from fader_server.storage.ports.usage import DebugEvent, Step, UsageReads, step_start


class UsageTx(ProjectAccess, ResourceReads, UsageReads, Protocol):
    """What the usage views read: the project, the flag and environment, the rollups."""


@dataclass(frozen=True, slots=True)
class Period:
    key: str
    step: Step
    steps: int
    label: str

    @property
    def step_length(self) -> timedelta:
        return {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}.get(
            self.step, timedelta(days=1)
        )


PERIODS: dict[str, Period] = {
    p.key: p
    for p in (
        Period("1h", "minute", 60, "the last hour"),
        Period("24h", "hour", 24, "the last 24 hours"),
        Period("7d", "hour", 168, "the last 7 days"),
        Period("30d", "day", 30, "the last 30 days"),
        Period("90d", "day", 90, "the last 90 days"),
    )
}
DEFAULT_PERIOD = "7d"
NO_VARIANT = ""
"""How the rollups name evaluations that served no variant (errors, the caller's default)."""
MAX_VARIANTS_SHOWN = 50
"""Variants listed by name, the most evaluated first. A flag has few; SDKs may report variants
a flag no longer has, and this keeps a view bounded whatever they reported. The evaluations
of the others still count in every total."""
MAX_DEBUG_EVENTS = 1000
"""The most debug events one read returns (the server keeps the newest 1,000 per flag)."""
CONTEXTS_ERROR_PERCENT = round(100 * RELATIVE_STANDARD_ERROR)
CONTEXTS_NOTE = (
    "Distinct contexts are HyperLogLog estimates (about "
    f"{CONTEXTS_ERROR_PERCENT}% error beyond a few thousand; close to exact below), counted "
    "by targeting key over the hours the period touches."
)


@dataclass(frozen=True, slots=True)
class UsageStep:
    """Evaluations in ``[start, start + step)``: all of them, per listed variant, and those
    that served no variant."""

    start: datetime
    evaluations: int
    variants: Mapping[str, int]
    no_variant: int


@dataclass(frozen=True, slots=True)
class FlagUsage:
    flag: str
    environment: str
    period: Period
    since: datetime
    until: datetime
    points: tuple[UsageStep, ...]
    """Every step of the period, oldest first, zeros included."""
    evaluations: int
    variants: Mapping[str, int]
    """Evaluations per variant over the period, the most evaluated first (at most
    :data:`MAX_VARIANTS_SHOWN`)."""
    no_variant: int
    variants_left_out: int
    """Variants evaluated but not listed (beyond :data:`MAX_VARIANTS_SHOWN`)."""
    distinct_contexts: int
    """Across all variants, estimated."""
    distinct_by_variant: Mapping[str, int]
    last_evaluated: datetime | None
    """The start of the last minute (or hour, beyond minute retention) with an evaluation,
    whenever it was (not only within the period)."""

    @property
    def peak(self) -> int:
        return max((p.evaluations for p in self.points), default=0)


def period(key: str) -> Period:
    """The period named `key`; the refusal names the allowed values."""
    found = PERIODS.get(key)
    if found is None:
        allowed = ", ".join(PERIODS)
        raise InvalidInputError(
            f"unknown period '{key}'; use one of {allowed}",
            [FieldProblem("/query/period", f"must be one of {allowed}")],
        )
    return found


def check_environment(tx: ResourceReads, project: Project, environment: str) -> None:
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, environment)
    if env is None or env.deleted:
        raise NotFoundError(
            f"environment '{environment}' does not exist in project '{project.key}'"
        )


class UsageService:
    def __init__(self, store: Store[UsageTx], clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def flag_usage(
        self,
        principal: Principal,
        project_key: str,
        flag: str,
        environment: str,
        period_key: str = DEFAULT_PERIOD,
    ) -> FlagUsage:
        chosen = period(period_key)
        length = chosen.step_length
        first = step_start(self.clock(), chosen.step) - (chosen.steps - 1) * length
        starts = [first + n * length for n in range(chosen.steps)]
        since, until = starts[0], starts[-1] + length
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            live(tx, project, ResourceType.FLAG, "flag", flag)
            check_environment(tx, project, environment)
            found = tx.usage_series(project.id, environment, flag, since, until, chosen.step)
            contexts = tx.distinct_contexts(project.id, environment, flag, since, until)
            last = tx.last_evaluated(project.id, environment, flag).get((environment, flag))
        by_start = {point.start: point.variants for point in found}
        totals: dict[str, int] = defaultdict(int)
        for counts in by_start.values():
            for variant, count in counts.items():
                totals[variant] += count
        no_variant = totals.pop(NO_VARIANT, 0)
        ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
        shown = dict(ranked[:MAX_VARIANTS_SHOWN])
        points = tuple(_step(start, by_start.get(start, {}), shown) for start in starts)
        return FlagUsage(
            flag=flag,
            environment=environment,
            period=chosen,
            since=since,
            until=until,
            points=points,
            evaluations=sum(p.evaluations for p in points),
            variants=shown,
            no_variant=no_variant,
            variants_left_out=len(ranked) - len(shown),
            distinct_contexts=contexts.all,
            distinct_by_variant={v: contexts.variants[v] for v in shown if v in contexts.variants},
            last_evaluated=last,
        )

    def last_evaluated(
        self, principal: Principal, project_key: str, flag: str
    ) -> dict[str, datetime]:
        """Environment key -> when `flag` was last evaluated there (absent: never). One read
        per environment, each of that flag's rows only."""
        found: dict[str, datetime] = {}
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            live(tx, project, ResourceType.FLAG, "flag", flag)
            environments = tx.list_resources(
                project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, limit=documents.MAX_ENTITIES
            )
            for env in environments:
                last = tx.last_evaluated(project.id, env.key, flag).get((env.key, flag))
                if last is not None:
                    found[env.key] = last
        return found

    def debug_events(
        self, principal: Principal, project_key: str, flag: str, environment: str, limit: int
    ) -> list[DebugEvent]:
        """The newest debug events of `flag` in `environment`, newest first."""
        if not 1 <= limit <= MAX_DEBUG_EVENTS:
            raise InvalidInputError(
                f"limit must be from 1 to {MAX_DEBUG_EVENTS}",
                [FieldProblem("/query/limit", f"must be from 1 to {MAX_DEBUG_EVENTS}")],
            )
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            live(tx, project, ResourceType.FLAG, "flag", flag)
            check_environment(tx, project, environment)
            return tx.debug_events(project.id, environment, flag, limit)


def _step(start: datetime, counts: Mapping[str, int], shown: Mapping[str, int]) -> UsageStep:
    return UsageStep(
        start=start,
        evaluations=sum(counts.values()),
        variants={variant: counts.get(variant, 0) for variant in shown},
        no_variant=counts.get(NO_VARIANT, 0),
    )
