"""Read-only reports over flags, configurations and the audit log (the console's dashboard).

What "released" and "stale" mean here, so that every number on the dashboard can be explained:

- A **release** is a change that turns a flag *on* in a protected environment (production):
  its configuration's `enabled` goes from false (or never configured) to true. Reverts do not
  count: restoring a configuration after an incident is not a new release. Projects without a
  protected environment count every environment. Releases are attributed to the flag's owner
  team and to the ISO week (Monday, UTC) of the change.
- A release or experiment flag is **stale** when it is *overdue* (older than its expected
  lifetime) or *fully rolled out and unchanged*: in every counted environment it is on, has no
  rules and no prerequisites, serves one variant other than its off variant to everyone, and
  neither the flag nor those configurations changed for :data:`STALE_UNCHANGED_DAYS` days.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

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


class ReportTx(ProjectAccess, ResourceReads, AuditLog, Protocol):
    """What dashboards read: flags, configurations, environments and the audit log."""


RELEASE_WEEKS = 8
STALE_UNCHANGED_DAYS = 30
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
    """When the flag became stale: the end of its lifetime, or its last change."""


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

    def stale_flags(self, principal: Principal, project_key: str) -> list[StaleFlag]:
        now = self.clock()
        quiet_since = now - timedelta(days=STALE_UNCHANGED_DAYS)
        found: list[StaleFlag] = []
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            counted = sorted(_counted_environments(tx, project))
            configs = {
                env: {c.key: c for c in _resources(tx, project, ResourceType.CONFIG, env)}
                for env in counted
            }
            for flag in _resources(tx, project, ResourceType.FLAG, PROJECT_SCOPE):
                data = flag.data
                if data.get("kind", "release") not in TEMPORARY_KINDS:
                    continue
                reason, since = _overdue(flag, now) or _rolled_out(flag, configs, quiet_since)
                if reason:
                    found.append(
                        StaleFlag(
                            flag.key,
                            data.get("name") or flag.key,
                            data.get("kind", "release"),
                            data.get("owner_team"),
                            reason,
                            since,
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


def _rolled_out(
    flag: Resource, configs: dict[str, dict[str, Resource]], quiet_since: datetime
) -> tuple[str, datetime]:
    """('', ...) unless the flag serves one non-off variant to everyone, unchanged for long."""
    if not configs:
        return "", flag.updated_at
    served: set[str] = set()
    last_change = flag.updated_at
    for env_configs in configs.values():
        config = env_configs.get(flag.key)
        variant = None if config is None else _everyone_gets(config.data)
        if config is None or variant is None:
            return "", flag.updated_at
        served.add(variant)
        last_change = max(last_change, config.updated_at)
    if len(served) != 1 or last_change > quiet_since:
        return "", flag.updated_at
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
