"""Incident use cases on their own, over the in-memory store and SQLite: roles, tenant
isolation, the lifecycle's compare-and-swap, and the escalation of overdue action items by a
clock the test moves (once per item, listed until done)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fader_server.errors import (
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    VersionConflictError,
)
from fader_server.services import Services
from fader_server.services.access import Principal, Role
from fader_server.storage.memory import MemoryStore
from fader_server.storage.ports.store import Database
from fader_server.storage.sql.store import SqlStore

ADMIN = Principal("user:admin", instance_admin=True)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    opened: Database
    if request.param == "memory":
        opened = MemoryStore()
    else:
        opened = SqlStore.open(f"sqlite:///{tmp_path / 'fader.db'}")
    yield opened
    opened.close()


@pytest.fixture
def services(store: Database, clock: Clock) -> Services:
    found = Services.over(store, clock)
    found.projects.create(ADMIN, "shop", "Shop")
    found.projects.create(ADMIN, "other", "Other")
    return found


def _member(services: Services, name: str, role: Role) -> Principal:
    user = services.identity.create_user(ADMIN, name, "pw-" + "x" * 12)
    services.projects.set_member(ADMIN, "shop", name, role.label, None)
    return Principal(f"user:{name}", user_id=user.id, roles={_shop(services): role})


def _shop(services: Services) -> int:
    return services.projects.get(ADMIN, "shop").id


def test_viewers_read_editors_act_and_other_projects_see_nothing(services: Services) -> None:
    viewer = _member(services, "vic", Role.VIEWER)
    editor = _member(services, "eve", Role.EDITOR)
    opened = services.incidents.open(editor, "shop", title="Slow checkout", severity="minor")
    incident = opened.incident.id
    assert services.incidents.get(viewer, "shop", incident).incident.title == "Slow checkout"
    with pytest.raises(PermissionDeniedError):
        services.incidents.acknowledge(viewer, "shop", incident)
    with pytest.raises(PermissionDeniedError):
        services.incidents.open(viewer, "shop", title="t", severity="minor")
    with pytest.raises(NotFoundError):
        services.incidents.get(ADMIN, "other", incident)
    outsider = Principal("user:out", roles={services.projects.get(ADMIN, "other").id: Role.ADMIN})
    with pytest.raises(NotFoundError):
        services.incidents.list_incidents(outsider, "shop", limit=10, before_id=None)
    with pytest.raises(InvalidInputError):
        services.incidents.add_item(
            editor, "shop", incident, title="t", owner="out", due_on=datetime(2031, 5, 2).date()
        )


def test_a_step_from_a_stale_read_is_refused_and_writes_nothing(services: Services) -> None:
    view = services.incidents.open(ADMIN, "shop", title="Errors", severity="major")
    incident = view.incident.id
    services.incidents.update_postmortem(ADMIN, "shop", incident, summary="first", expected=1)
    with pytest.raises(VersionConflictError):
        services.incidents.acknowledge(ADMIN, "shop", incident, expected=1)
    now = services.incidents.get(ADMIN, "shop", incident)
    assert (now.incident.state, now.incident.version, now.incident.summary) == ("open", 2, "first")
    assert [e.action for e in now.timeline] == ["opened", "postmortem_updated"]
    assert now.timeline[-1].changes == [{"path": "/summary", "before": "", "after": "first"}]


def test_an_overdue_item_is_escalated_once_and_listed_until_done(
    services: Services, clock: Clock
) -> None:
    owner = _member(services, "olga", Role.EDITOR)
    incident = services.incidents.open(ADMIN, "shop", title="Outage", severity="critical")
    day = clock.now.date()
    first, second = (
        services.incidents.add_item(
            ADMIN, "shop", incident.incident.id, title=title, owner="olga", due_on=day
        )
        for title in ("Alert on 5xx", "Canary")
    )
    assert services.incidents.escalate_overdue() == []  # due today: not late yet
    clock.now += timedelta(days=1)  # the due day has ended
    overdue = services.incidents.action_items(ADMIN, "shop", status="overdue", limit=10)
    assert [i.id for i in overdue] == [first.id, second.id]
    escalated = services.incidents.escalate_overdue()
    assert [i.id for i in escalated] == [first.id, second.id]
    assert all(i.overdue_at == clock.now for i in escalated)
    clock.now += timedelta(hours=1)
    assert services.incidents.escalate_overdue() == []  # once
    other_replica = Services.over(services.store, clock)
    assert other_replica.incidents.escalate_overdue() == []

    services.incidents.complete_item(owner, "shop", incident.incident.id, first.id)
    later = clock.now.date() + timedelta(days=3)
    moved = services.incidents.update_item(
        ADMIN, "shop", incident.incident.id, second.id, expected=2, due_on=later
    )
    assert moved.overdue_at is None  # a new due day may be announced again
    assert services.incidents.action_items(ADMIN, "shop", status="overdue", limit=10) == []
    assert [
        i.id for i in services.incidents.action_items(ADMIN, "shop", status="open", limit=10)
    ] == [second.id]
    clock.now += timedelta(days=4)
    assert [i.id for i in services.incidents.escalate_overdue()] == [second.id]

    audit = services.projects.audit(ADMIN, "shop", limit=100, before_id=None)
    overdue_entries = [e for e in audit if e.action == "overdue"]
    assert sorted(e.entity_key for e in overdue_entries) == [
        f"{incident.incident.id}/{first.id}",
        f"{incident.incident.id}/{second.id}",
        f"{incident.incident.id}/{second.id}",
    ]
    assert {e.actor for e in overdue_entries} == {"fader:escalation"}
    assert {e.entity_type for e in overdue_entries} == {"action_item"}
