"""Dashboard reports over a real SQLite store with an injected clock: releases per team per
week, and stale flags (overdue, fully rolled out and unchanged, or not evaluated for N days)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fader_server.errors import InvalidInputError
from fader_server.services import Services
from fader_server.services.access import Principal
from fader_server.storage.ports.usage import UsageCount
from fader_server.storage.sql.store import SqlStore

ADMIN = Principal("user:admin", instance_admin=True)
START = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)  # a Wednesday
BOOLEAN = {"type": "boolean", "variants": {"on": True, "off": False}}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(tmp_path: Path, clock: Clock) -> Iterator[Services]:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'reports.db'}")
    built = Services.over(store, clock)
    built.projects.create(ADMIN, "shop", "Shop")
    yield built
    store.close()


def _flag(services: Services, key: str, **data: object) -> None:
    services.flags.create(ADMIN, "shop", key, {"name": key, **BOOLEAN, **data}, None)


def test_releases_are_flags_turned_on_in_production_per_owner_team_and_week(
    services: Services, clock: Clock
) -> None:
    _flag(services, "checkout", owner_team="payments")
    _flag(services, "search", owner_team="search")
    _flag(services, "orphan")
    flags = services.flags
    flags.toggle(ADMIN, "shop", "production", "checkout", True, None, None)  # week 1
    flags.toggle(ADMIN, "shop", "staging", "search", True, None, None)  # not production
    clock.now += timedelta(weeks=1)
    flags.toggle(ADMIN, "shop", "production", "checkout", False, None, "incident")
    flags.revert_config(ADMIN, "shop", "production", "checkout", 1, None, None)  # a restore
    flags.toggle(ADMIN, "shop", "production", "search", True, None, None)
    flags.toggle(ADMIN, "shop", "production", "search", True, None, None)  # already on
    flags.toggle(ADMIN, "shop", "production", "orphan", True, None, None)
    clock.now += timedelta(weeks=1)

    report = services.reports.releases(ADMIN, "shop", weeks=4)

    assert report.environments == ("production",)
    assert report.weeks[-1] == datetime(2025, 3, 17, tzinfo=UTC).date()  # this week's Monday
    assert {t.team: t.counts for t in report.teams} == {
        "no team": (0, 0, 1, 0),
        "payments": (0, 1, 0, 0),
        "search": (0, 0, 1, 0),
    }


def test_a_flag_is_stale_when_overdue_or_fully_rolled_out_and_unchanged(
    services: Services, clock: Clock
) -> None:
    _flag(services, "short-lived", expected_lifetime_days=10)
    _flag(services, "rolled-out")
    _flag(services, "still-splitting")
    _flag(services, "kill-switch", kind="ops")
    everyone_on = {"enabled": True, "offVariant": "off", "default": {"variant": "on"}}
    split = {
        **everyone_on,
        "default": {
            "split": {
                "weights": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]
            }
        },
    }
    services.flags.put_config(ADMIN, "shop", "production", "rolled-out", everyone_on, 0, None)
    services.flags.put_config(ADMIN, "shop", "production", "still-splitting", split, 0, None)
    services.flags.put_config(ADMIN, "shop", "production", "kill-switch", everyone_on, 0, None)
    assert services.reports.stale_flags(ADMIN, "shop") == []

    clock.now += timedelta(days=31)
    stale = {s.key: s for s in services.reports.stale_flags(ADMIN, "shop")}

    assert sorted(stale) == ["rolled-out", "short-lived"]
    assert stale["short-lived"].reason.startswith("overdue: its expected lifetime of 10 days")
    assert stale["rolled-out"].reason == (
        "fully rolled out: serves 'on' to everyone in production, unchanged since 2025-03-05"
    )


def _evaluated(
    services: Services, flag: str, at: datetime, environment: str = "production"
) -> None:
    """One evaluation of `flag`, received at `at` (as an SDK summary would be)."""
    with services.store.transaction() as tx:
        project = tx.get_project("shop")
        assert project is not None
        tx.add_usage(project.id, environment, "server", [UsageCount(flag, "", "on", 1)], at)


def test_a_flag_is_stale_when_not_evaluated_for_n_days_in_the_counted_environments(
    services: Services, clock: Clock
) -> None:
    for key in ("quiet", "busy", "never", "staging-only"):
        _flag(services, key)
    _flag(services, "kill-switch", kind="ops")  # not a temporary flag: never reported
    _evaluated(services, "quiet", START + timedelta(days=1, minutes=7))
    _evaluated(services, "staging-only", START + timedelta(days=50), environment="staging")
    clock.now = START + timedelta(days=45)
    _evaluated(services, "busy", clock.now - timedelta(days=2))
    _evaluated(services, "kill-switch", START)

    stale = {s.key: s for s in services.reports.stale_flags(ADMIN, "shop")}

    assert sorted(stale) == ["never", "quiet", "staging-only"]
    assert stale["quiet"].reason == (
        "not evaluated for 43 days in production (last evaluated 2025-03-06 12:07 UTC)"
    )
    assert stale["quiet"].last_evaluated == START + timedelta(days=1, minutes=7)
    assert stale["quiet"].since == stale["quiet"].last_evaluated
    assert stale["never"].reason == "never evaluated in production"
    assert (stale["never"].since, stale["never"].last_evaluated) == (START, None)
    assert stale["staging-only"].reason == "never evaluated in production"
    # ordered by how long each flag has been stale (the two never evaluated: since created)
    order = [s.key for s in services.reports.stale_flags(ADMIN, "shop")]
    assert order == ["never", "staging-only", "quiet"]

    # a longer threshold: 43 days without evaluations is not yet stale
    longer = {s.key for s in services.reports.stale_flags(ADMIN, "shop", unused_days=44)}
    assert longer == {"never", "staging-only"}
    assert not {s.key for s in services.reports.stale_flags(ADMIN, "shop", unused_days=46)}


def test_unused_flags_are_reported_only_where_usage_is_reported_and_flags_are_old_enough(
    services: Services, clock: Clock
) -> None:
    _flag(services, "old")
    clock.now = START + timedelta(days=40)
    # no SDK of this project reports usage: no flag looks unused for want of reports
    assert services.reports.stale_flags(ADMIN, "shop") == []

    _flag(services, "young")  # created 40 days after "old"
    _evaluated(services, "old", clock.now - timedelta(days=35))
    clock.now += timedelta(days=10)

    stale = {s.key: s.reason for s in services.reports.stale_flags(ADMIN, "shop")}
    assert stale == {
        "old": "not evaluated for 45 days in production (last evaluated 2025-03-10 12:00 UTC)"
    }
    for days in (0, 401):
        with pytest.raises(InvalidInputError, match="unused_days must be from 1 to 400"):
            services.reports.stale_flags(ADMIN, "shop", unused_days=days)
