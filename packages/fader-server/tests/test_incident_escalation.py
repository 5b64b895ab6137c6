"""The escalation of overdue action items, with real servers: a server's own job announces an
item once its due day has passed on the server's clock (SQLite, a clock the test moves), and
two `fader serve` replicas over one PostgreSQL database announce each overdue item exactly
once between them, as do two replicas' use cases racing each other at the same moment."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, LogSink, _serve, dedicated_postgres_database
from processes import FaderProcess, free_port
from server_api import unique
from server_clock import ServerClock, clocked_services

from fader_server.services import Services
from fader_server.services.access import Principal
from fader_server.settings import Settings
from fader_server.storage.sql.store import SqlStore

DEADLINE = 60.0
ADMIN = Principal("user:admin", instance_admin=True)


def _wait_for(check: Any, what: str) -> Any:
    """Poll `check` until it returns something truthy (generous deadline: a busy machine)."""
    deadline = threading.Event()
    timer = threading.Timer(DEADLINE, deadline.set)
    timer.start()
    try:
        while not deadline.is_set():
            found = check()
            if found:
                return found
            deadline.wait(0.1)
    finally:
        timer.cancel()
    raise AssertionError(f"timed out waiting for {what}")


def _items(admin: httpx.Client, project: str, incidents: int) -> list[dict[str, Any]]:
    """`incidents` incidents with three items each, owned by the admin, due today (UTC)."""
    base = f"/api/v1/projects/{project}/incidents"
    today = datetime.now(UTC).date().isoformat()
    made = []
    for n in range(incidents):
        incident = admin.post(base, json={"title": f"Incident {n}"}).json()["id"]
        for title in ("Alert", "Canary", "Runbook"):
            response = admin.post(
                f"{base}/{incident}/action-items",
                json={"title": title, "owner": "admin", "due_on": today},
            )
            assert response.status_code == 201, response.text
            made.append(response.json())
    return made


def _overdue_entries(admin: httpx.Client, project: str) -> Counter[str]:
    audit = admin.get(f"/api/v1/projects/{project}/audit?limit=500").json()["items"]
    return Counter(e["entity_key"] for e in audit if e["action"] == "overdue")


def _project(admin: httpx.Client) -> str:
    key = unique("esc")
    assert (
        admin.post("/api/v1/projects", json={"key": key, "name": "Escalation"}).status_code == 201
    )
    return key


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[str, str, ServerClock]]:
    """A server on SQLite reading a clock the test moves, its escalation job every 0.1 s."""
    token = "fdr_admin_" + unique("t").replace("-", "")
    settings = Settings(
        data_dir=tmp_path,
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        rollout_tick_seconds=0,
        escalation_seconds=0,  # started below, as the app's lifespan starts it
    )
    clock = ServerClock()
    services = clocked_services(settings, clock)
    uv_server, thread, url, app = _serve(settings, LogSink(), services=services)
    app.state.escalation.start(0.1, first_delay=0.1)
    try:
        yield url, token, clock
    finally:
        uv_server.should_exit = True
        thread.join(timeout=10)
        app.state.escalation.close()
        services.store.close()


def test_the_servers_job_announces_an_item_once_its_due_day_has_passed(
    clocked: tuple[str, str, ServerClock],
) -> None:
    url, token, clock = clocked
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as admin:
        project = _project(admin)
        items = _items(admin, project, 1)
        listing = f"/api/v1/projects/{project}/action-items"
        assert admin.get(listing, params={"status": "overdue"}).json()["items"] == []
        clock.advance(86_400 * 2)
        overdue = _wait_for(
            lambda: len(_overdue_entries(admin, project)) == 3, "three overdue announcements"
        )
        assert overdue
        listed = admin.get(listing, params={"status": "overdue"}).json()["items"]
        assert [i["id"] for i in listed] == [i["id"] for i in items]
        assert all(i["state"] == "overdue" and i["escalated_at"] for i in listed)
        incident = items[0]["incident"]
        done = admin.post(f"/api/v1/projects/{project}/incidents/{incident}/action-items/"
                          f"{items[0]['id']}/done")  # fmt: skip
        assert done.status_code == 200, done.text
        still = admin.get(listing, params={"status": "overdue"}).json()["items"]
        assert [i["id"] for i in still] == [i["id"] for i in items[1:]]
        clock.advance(3600)
        threading.Event().wait(1.0)  # ten more runs of the job
        assert set(_overdue_entries(admin, project).values()) == {1}


def _backdate(database_url: str, project: str, days: int) -> None:
    """Move every item of `project` `days` back, in one transaction (as if time had passed)."""
    store = SqlStore.open(database_url, upgrade=False)
    try:
        with store.transaction() as tx:
            found = tx.get_project(project)
            assert found is not None
            for item in tx.list_action_items(found.id, limit=500, after=None):
                moved = replace(item, due_on=item.due_on - timedelta(days=days))
                assert tx.update_action_item(moved, datetime.now(UTC)) is not None
    finally:
        store.close()


def test_two_replicas_announce_each_overdue_item_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FADER_ESCALATION_SECONDS", "0.05")
    token = "fdr_admin_" + unique("t").replace("-", "")
    with dedicated_postgres_database() as url:
        replicas = [
            FaderProcess(
                port=free_port(),
                admin_token=token,
                log_path=tmp_path / f"replica-{n}.log",
                data_dir=tmp_path / f"replica-{n}",
                database_url=url,
            )
            for n in (1, 2)
        ]
        try:
            for replica in replicas:
                replica.start()
            with replicas[0].admin() as admin:
                project = _project(admin)
                items = _items(admin, project, 4)
                _backdate(url, project, 2)
                _wait_for(
                    lambda: len(_overdue_entries(admin, project)) == len(items),
                    "every item announced",
                )
                threading.Event().wait(1.0)  # twenty more runs on each replica
                entries = _overdue_entries(admin, project)
            assert entries == Counter({f"{i['incident']}/{i['id']}": 1 for i in items})
            for replica in replicas:
                with replica.admin() as client:
                    listed = client.get(
                        f"/api/v1/projects/{project}/action-items", params={"status": "overdue"}
                    ).json()["items"]
                assert len(listed) == len(items)
                assert replica.errors() == []
        finally:
            for replica in replicas:
                replica.kill()


def _race(first: Services, second: Services) -> list[list[int]]:
    """Both replicas' escalation released at one moment; the items each announced."""
    barrier = threading.Barrier(2)
    results: list[list[int]] = [[], []]

    def run(index: int, services: Services) -> None:
        barrier.wait(timeout=30)
        results[index] = [i.id for i in services.incidents.escalate_overdue()]

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_replicas_use_cases_racing_write_one_announcement_per_item(tmp_path: Path) -> None:
    """The race itself, many times: two stores (two replicas' connection pools) call the
    escalation at the same moment, on PostgreSQL, over items that fell due together."""
    with dedicated_postgres_database() as url:
        clock = ServerClock()
        settings = Settings(data_dir=tmp_path, database_url=url, admin_password=ADMIN_PASSWORD)
        first = clocked_services(settings, clock)
        second = Services.over(SqlStore.open(url, upgrade=False), clock)
        try:
            admin = ADMIN
            first.projects.create(admin, "race", "Race")
            escalated: list[int] = []
            for round_ in range(5):
                today = clock().date()
                for n in range(3):
                    incident = first.incidents.open(
                        admin, "race", title=f"{round_}-{n}", severity="minor"
                    )
                    for title in ("a", "b", "c"):
                        first.incidents.add_item(
                            admin, "race", incident.incident.id, title=title, owner="admin",
                            due_on=today,
                        )  # fmt: skip
                clock.advance(86_400 * 2)
                results = _race(first, second)
                assert len(results[0]) + len(results[1]) == 9
                assert not set(results[0]) & set(results[1])
                escalated += results[0] + results[1]
            audit = first.projects.audit(admin, "race", limit=500, before_id=None)
            keys = Counter(e.entity_key for e in audit if e.action == "overdue")
            assert len(keys) == len(escalated) == 45
            assert set(keys.values()) == {1}
        finally:
            second.store.close()
            first.store.close()
