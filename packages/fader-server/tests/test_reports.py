"""Dashboard reports over a real SQLite store with an injected clock: releases per team per
week, and stale flags (overdue, or fully rolled out and unchanged)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fader_server.services import Services
from fader_server.services.access import Principal
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
