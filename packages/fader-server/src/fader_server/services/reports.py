"""Read-only reports over flags, configurations and the audit log (the console's dashboard).

What "released" and "stale" mean here, so that every number on the dashboard can be explained:

- A **release** is a change that turns a flag *on* in a protected environment (production):
  its configuration's `enabled` goes from false (or never configured) to true. Reverts do not
  count: restoring a configuration after an incident is not a new release. Projects without a
  protected environment count every environment. Releases are attributed to the flag's owner
  team and to the ISO week (Monday, UTC) of the change.
- A release or experiment flag is **stale** when it is *overdue* (older than its expected
  lifetime), *fully rolled out and unchanged* (in every counted environment it is on, has no
  rules and no prerequisites, serves one variant other than its off variant to everyone, and
  neither the flag nor those configurations changed for :data:`STALE_UNCHANGED_DAYS` days), or
  *unused*: not evaluated in any counted environment for `unused_days` days
  (:data:`UNUSED_DAYS` by default), by the usage rollups' last evaluation (docs/events.md).
  The unused rule applies only to flags older than `unused_days`, and only in projects whose
  SDKs report usage (some flag was evaluated in a counted environment in those days, or some
  release or experiment flag ever was): without usage reports, every flag would look unused.
  The first rule that applies gives the reason.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from fader_server.errors import FieldProblem, InvalidInputError
from fader_server.services import documents
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.storage.ports import (
    JSON,
    PROJECT_SCOPE,
    AuditEntry,
    Project,
    Resource,
    ResourceType,
)
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.store import Store
from fader_server.storage.ports.usage import UsageReads


class ReportTx(ProjectAccess, ResourceReads, AuditLog, UsageReads, Protocol):
    """What dashboards read: flags, configurations, environments, the audit log and when
    each flag was last evaluated."""


RELEASE_WEEKS = 8
STALE_UNCHANGED_DAYS = 30
UNUSED_DAYS = 30
MAX_UNUSED_DAYS = 400
"""Hour rollups are kept 400 days by default (``FADER_USAGE_HOURS_DAYS``): beyond that, no
evaluation could be seen anyway."""
TEMPORARY_KINDS = ("release", "experiment")
NO_TEAM = "no team"
_AUDIT_PAGE = 500
_AUDIT_SCAN_LIMIT = 20_000
"""A dashboard must stay fast: at most this many audit entries are read per report."""


@dataclass(frozen=True, slots=True)
class TeamReleases:
    team: str
    counts: tuple[int, ...]
    """Releases per week, oldest week first (aligned with :attr:`ReleaseReport.weeks`)."""

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class ReleaseReport:
    weeks: tuple[date, ...]
    """The Monday of each ISO week, oldest first; the last is the current week."""
    teams: tuple[TeamReleases, ...]
    environments: tuple[str, ...]
    """The environments whose changes were counted."""


@dataclass(frozen=True, slots=True)
class StaleFlag:
    key: str
    name: str
    kind: str
    owner_team: str | None
    reason: str
    since: datetime
    """When the flag became stale: the end of its lifetime, its last change, or its last
    evaluation (its creation, if never evaluated)."""
    last_evaluated: datetime | None = None
    """The last evaluation in any counted environment; None if none was recorded."""


class ReportService:
    def __init__(self, store: Store[ReportTx], clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def releases(
        self, principal: Principal, project_key: str, *, weeks: int = RELEASE_WEEKS
    ) -> ReleaseReport:
        now = self.clock()
        this_monday = (now - timedelta(days=now.weekday())).date()
        mondays = tuple(this_monday - timedelta(weeks=n) for n in reversed(range(weeks)))
        since = datetime(mondays[0].year, mondays[0].month, mondays[0].day, tzinfo=UTC)
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            counted = _counted_environments(tx, project)
            teams = {
                flag.key: flag.data.get("owner_team") or NO_TEAM
                for flag in _resources(tx, project, ResourceType.FLAG, PROJECT_SCOPE)
            }
            counts: dict[str, list[int]] = defaultdict(lambda: [0] * weeks)
            for entry in _config_changes_since(tx, project, since):
                if entry.environment in counted and _turns_on(entry):
                    week = (entry.at.date() - mondays[0]).days // 7
                    if 0 <= week < weeks:
                        counts[teams.get(entry.entity_key, NO_TEAM)][week] += 1
        rows = tuple(TeamReleases(team, tuple(c)) for team, c in sorted(counts.items()))
        return ReleaseReport(mondays, rows, tuple(sorted(counted)))

    def stale_flags(
        self, principal: Principal, project_key: str, *, unused_days: int = UNUSED_DAYS
    ) -> list[StaleFlag]:
        if not 1 <= unused_days <= MAX_UNUSED_DAYS:
            raise InvalidInputError(
                f"unused_days must be from 1 to {MAX_UNUSED_DAYS}",
                [FieldProblem("/query/unused_days", f"must be from 1 to {MAX_UNUSED_DAYS}")],
            )
        now = self.clock()
        quiet_since = now - timedelta(days=STALE_UNCHANGED_DAYS)
        unused_since = now - timedelta(days=unused_days)
        found: list[StaleFlag] = []
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            counted = sorted(_counted_environments(tx, project))
            configs = {
                env: {c.key: c for c in _resources(tx, project, ResourceType.CONFIG, env)}
                for env in counted
            }
            temporary = [
                flag
                for flag in _resources(tx, project, ResourceType.FLAG, PROJECT_SCOPE)
                if flag.data.get("kind", "release") in TEMPORARY_KINDS
            ]
            last = LastEvaluations(tx, project, counted, unused_since)
            old = [flag for flag in temporary if flag.created_at <= unused_since]
            reported = bool(last.recent) or any(last.of(flag.key) for flag in old)
            for flag in temporary:
                data = flag.data
                reason, since = (
                    _overdue(flag, now)
                    or _rolled_out(flag, configs, quiet_since)
                    or (_unused(flag, last, counted, now, unused_since) if reported else None)
                    or ("", now)
                )
                if reason:
                    found.append(
                        StaleFlag(
                            flag.key,
                            data.get("name") or flag.key,
                            data.get("kind", "release"),
                            data.get("owner_team"),
                            reason,
                            since,
                            last.of(flag.key),
                        )
                    )
        return sorted(found, key=lambda s: s.since)


def _resources(
    tx: ResourceReads, project: Project, type: ResourceType, scope: str
) -> list[Resource]:
    return tx.list_resources(project.id, type, scope, limit=documents.MAX_ENTITIES)


def _counted_environments(tx: ResourceReads, project: Project) -> set[str]:
    envs = _resources(tx, project, ResourceType.ENVIRONMENT, PROJECT_SCOPE)
    protected = {e.key for e in envs if e.data.get("protected")}
    return protected or {e.key for e in envs}


def _config_changes_since(tx: AuditLog, project: Project, since: datetime) -> list[AuditEntry]:
    found: list[AuditEntry] = []
    before: int | None = None
    while len(found) < _AUDIT_SCAN_LIMIT:
        page = tx.list_audit(
            project.id, limit=_AUDIT_PAGE, before_id=before, entity_types=("config",)
        )
        found.extend(e for e in page if e.at >= since)
        if len(page) < _AUDIT_PAGE or page[-1].at < since:
            break
        before = page[-1].id
    return found


def _turns_on(entry: AuditEntry) -> bool:
    if entry.action.startswith("revert"):
        return False
    for change in entry.diff:
        if change.get("path") == "/enabled":
            return change.get("after") is True and change.get("before") is not True
        if change.get("path") == "/" and isinstance(change.get("after"), dict):
            return change.get("before") is None and change["after"].get("enabled", True) is True
    return False


def _overdue(flag: Resource, now: datetime) -> tuple[str, datetime] | None:
    days = flag.data.get("expected_lifetime_days")
    if not days:
        return None
    ends = flag.created_at + timedelta(days=int(days))
    if ends >= now:
        return None
    late = (now - ends).days
    return (
        f"overdue: its expected lifetime of {days} days ended {late} days ago ({ends:%Y-%m-%d})",
        ends,
    )


class LastEvaluations:
    """When each flag was last evaluated in the counted environments, reading as little as a
    report over every flag needs: the rows since the cut-off once (the flags in use), then,
    only for a flag the report still asks about (one quiet for long, or never evaluated), that
    flag's own rows. Reading every row of a project instead costs seconds once it holds a year
    of hours of a few hundred flags."""

    def __init__(
        self, tx: UsageReads, project: Project, environments: list[str], since: datetime
    ) -> None:
        self._tx = tx
        self._project = project
        self._environments = environments
        self.recent: dict[str, datetime] = {}
        """Flag key -> last evaluation, for the flags evaluated since the cut-off's hour."""
        for environment in environments:
            for (_, flag), at in tx.last_evaluated(project.id, environment, since=since).items():
                self.recent[flag] = max(at, self.recent.get(flag, at))
        self._known: dict[str, datetime | None] = dict(self.recent)

    def of(self, flag: str) -> datetime | None:
        """The flag's last evaluation in any of the environments; None if none is recorded."""
        if flag not in self._known:
            found = [
                at
                for environment in self._environments
                for at in self._tx.last_evaluated(self._project.id, environment, flag).values()
            ]
            self._known[flag] = max(found, default=None)
        return self._known[flag]


def _unused(
    flag: Resource,
    evaluations: LastEvaluations,
    counted: list[str],
    now: datetime,
    cutoff: datetime,
) -> tuple[str, datetime] | None:
    """A flag older than the cut-off that no counted environment evaluated since (else None)."""
    if flag.created_at > cutoff:
        return None
    last = evaluations.of(flag.key)
    if last is not None and last > cutoff:
        return None
    where = ", ".join(counted)
    if last is None:
        return f"never evaluated in {where}", flag.created_at
    quiet = (now - last).days
    return (
        f"not evaluated for {quiet} days in {where} (last evaluated {last:%Y-%m-%d %H:%M} UTC)",
        last,
    )


def _rolled_out(
    flag: Resource, configs: dict[str, dict[str, Resource]], quiet_since: datetime
) -> tuple[str, datetime] | None:
    """None unless the flag serves one non-off variant to everyone, unchanged for long."""
    if not configs:
        return None
    served: set[str] = set()
    last_change = flag.updated_at
    for env_configs in configs.values():
        config = env_configs.get(flag.key)
        variant = None if config is None else _everyone_gets(config.data)
        if config is None or variant is None:
            return None
        served.add(variant)
        last_change = max(last_change, config.updated_at)
    if len(served) != 1 or last_change > quiet_since:
        return None
    envs = ", ".join(sorted(configs))
    return (
        f"fully rolled out: serves '{served.pop()}' to everyone in {envs}, "
        f"unchanged since {last_change:%Y-%m-%d}",
        last_change,
    )


def _everyone_gets(config: JSON) -> str | None:
    """The one variant an enabled, rule-less configuration serves to everyone, if any."""
    if not config.get("enabled", True) or config.get("rules") or config.get("prerequisites"):
        return None
    default = config.get("default") or {}
    variant = default.get("variant")
    if variant is None:
        weights = [w for w in (default.get("split") or {}).get("weights", []) if w.get("weight")]
        variant = weights[0].get("variant") if len(weights) == 1 else None
    if variant is None or variant == config.get("offVariant"):
        return None
    return str(variant)
