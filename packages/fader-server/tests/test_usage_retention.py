"""Usage retention (docs/events.md, section 3): old minute rows, hour rows and debug events go,
recent ones stay, and the minute rows a running release plan still reads stay until it ends;
in batches, idempotently, by itself, and a failed run never stops the job.

Real databases (SQLite and PostgreSQL); the retention clock is injected, so "400 days ago" is
a date, not a wait. The job's thread is checked against a server built by ``create_app``, with
its PostgreSQL connection going through a proxy the test takes down and brings back.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import ADMIN_PASSWORD, LogSink, dedicated_postgres_database
from server_api import unique
from tcp_proxy import TcpProxy

from fader_server.app import create_app
from fader_server.rollout_logic.plan import State, Status
from fader_server.runtime.retention import Retention
from fader_server.settings import Settings
from fader_server.storage.ports import NewPlan, PlanUpdate, Project
from fader_server.storage.ports.usage import DebugEvent, Pruned, UsageCount
from fader_server.storage.sql.store import SqlStore
from fader_server.storage.sql.tables import debug_events, usage_hours, usage_minutes

NOW = datetime(2031, 3, 20, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """A database of the test's own: retention prunes every project's rows."""
    if request.param == "sqlite":
        opened = SqlStore.open(f"sqlite:///{tmp_path / 'retention.db'}")
        yield opened
        opened.close()
        return
    with dedicated_postgres_database() as url:
        opened = SqlStore.open(url)
        yield opened
        opened.close()


def add(store: SqlStore, project: Project, flag: str, at: datetime, count: int = 1) -> None:
    with store.transaction() as tx:
        tx.add_usage(project.id, "production", "server", [UsageCount(flag, "", "on", count)], at)


def remaining(store: SqlStore, project: Project) -> dict[str, list[tuple[str, datetime]]]:
    """Per table: (flag, time) of the rows left, oldest first."""

    def utc(value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    found: dict[str, list[tuple[str, datetime]]] = {}
    with store.engine.connect() as connection:
        for name, table, at in (
            ("minutes", usage_minutes, usage_minutes.c.minute),
            ("hours", usage_hours, usage_hours.c.hour),
            ("debug", debug_events, debug_events.c.received_at),
        ):
            rows = connection.execute(
                sa.select(table.c.flag, at).where(table.c.project_id == project.id).order_by(at)
            )
            found[name] = [(flag, utc(when)) for flag, when in rows]
    return found


def running_plan(store: SqlStore, project: Project, flag: str, started: datetime) -> int:
    """A release plan whose first stage window began at `started`, still running."""
    state = State(
        status=Status.RUNNING,
        started_at=started.timestamp(),
        stage_started_at=started.timestamp(),
        stage_starts=(started.timestamp(), (started + DAY).timestamp()),
    )
    with store.transaction() as tx:
        plan = tx.insert_plan(
            NewPlan(project.id, flag, "production", None, {}, state.to_dict(), "running", "t"),
            started,
        )
    return plan.id


def test_old_rows_go_recent_ones_stay_and_a_running_plan_keeps_what_it_reads(
    store: SqlStore,
) -> None:
    with store.transaction() as tx:
        project = tx.insert_project(unique("ret"), "Retention", NOW - 500 * DAY)
    add(store, project, "old", NOW - 20 * DAY)  # minute and hour rows
    add(store, project, "recent", NOW - 13 * DAY)
    add(store, project, "ancient", NOW - 401 * DAY)
    with store.transaction() as tx:
        for flag, at in (("stale", NOW - 2 * DAY), ("fresh", NOW - timedelta(hours=20))):
            event = DebugEvent(flag, "on", "SPLIT", "u", at)
            tx.add_debug_events(project.id, "production", "server", [event], at, 1000)
    retention = Retention(store, clock=lambda: NOW, batch=2)

    assert retention.run() == Pruned(minutes=2, hours=1, debug_events=1)
    left = remaining(store, project)
    assert left["minutes"] == [("recent", NOW - 13 * DAY)]
    assert left["hours"] == [("old", NOW - 20 * DAY), ("recent", NOW - 13 * DAY)]
    assert left["debug"] == [("fresh", NOW - timedelta(hours=20))]
    assert retention.run() == Pruned()  # idempotent: a second run (or replica) finds nothing

    # A plan running for 17 days reads minutes from its first window on: they stay, older go.
    started = NOW - 17 * DAY
    plan_id = running_plan(store, project, "guarded", started)
    for minute in (started - timedelta(minutes=1), started, started + 2 * DAY):
        add(store, project, "guarded", minute)
    assert retention.run().minutes == 1
    assert [flag_at[1] for flag_at in remaining(store, project)["minutes"]] == [
        started,
        NOW - 15 * DAY,
        NOW - 13 * DAY,
    ]
    with store.transaction() as tx:
        stored = tx.lock_plan(plan_id, wait=True)
        assert stored is not None
        done = State.from_dict(stored.state).evolve(status=Status.COMPLETED)
        tx.update_plan(stored, PlanUpdate(done.to_dict(), "completed", active=False), NOW)
    assert retention.run().minutes == 2  # the plan ended: its old minutes go
    assert remaining(store, project)["minutes"] == [("recent", NOW - 13 * DAY)]


def test_settings_say_how_long_rows_are_kept(store: SqlStore) -> None:
    with store.transaction() as tx:
        project = tx.insert_project(unique("ret"), "Retention", NOW)
    add(store, project, "f", NOW - 3 * DAY)
    add(store, project, "f", NOW - 30 * DAY)
    short = Retention(store, minutes=2 * DAY, hours=29 * DAY, clock=lambda: NOW)
    assert short.run() == Pruned(minutes=2, hours=1)
    assert remaining(store, project)["hours"] == [("f", (NOW - 3 * DAY).replace(minute=0))]
    with pytest.raises(ValueError, match="positive"):
        Retention(store, minutes=timedelta(0))
    loaded = Settings.load({"FADER_USAGE_MINUTES_DAYS": "3", "FADER_USAGE_HOURS_DAYS": "90"})
    assert (loaded.usage_minutes_days, loaded.usage_hours_days) == (3, 90)
    assert (Settings().usage_minutes_days, Settings().usage_hours_days) == (14, 400)


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_job_runs_by_itself_and_a_failed_run_does_not_stop_it(
    tmp_path: Path, log_sink: LogSink
) -> None:
    """The server's own job (``create_app`` wires it with the settings): its database goes
    away (a proxy in front of PostgreSQL stops forwarding new connections and cuts the open
    ones), the run fails and is logged, the thread lives on, and once the database is back the
    next run prunes."""
    with dedicated_postgres_database() as url, TcpProxy(5432) as proxy:
        proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        settings = Settings(
            data_dir=tmp_path,
            database_url=proxied,
            admin_password=ADMIN_PASSWORD,
            admin_token="fdr_admin_" + secrets.token_urlsafe(32),
            usage_minutes_days=7,
        )
        app = create_app(settings, log_stream=log_sink)
        store = app.state.services.store
        retention: Retention = app.state.retention
        try:
            assert retention.minutes == 7 * DAY
            with store.transaction() as tx:
                project = tx.insert_project(unique("job"), "Job", NOW)
            marker = unique("flag")
            now = datetime.now(UTC)
            add(store, project, marker, now - 8 * DAY, count=3)
            add(store, project, marker, now - DAY)
            proxy.backends = (1,)  # nothing listens on port 1: connections are refused
            proxy.cut()
            seen = len(log_sink.text())  # the sink is the session's: read only what follows
            retention.start(interval=0.2, first_delay=0)
            wait_for("a failed run", lambda: "usage_prune_deferred" in log_sink.text()[seen:])
            proxy.backends = (5432,)

            def pruned() -> bool:
                return any(
                    line.get("event") == "usage_pruned" and line.get("minutes", 0) >= 1
                    for line in map(json.loads, filter(None, log_sink.text()[seen:].splitlines()))
                )

            def only_recent_left() -> bool:
                left = remaining(store, project)["minutes"]
                return [flag for flag, _ in left] == [marker] and left[0][1] > now - 2 * DAY

            wait_for("a run after the database came back", pruned)
            wait_for("the old row pruned, the recent one kept", only_recent_left)
        finally:
            retention.close()
            app.state.scheduler.close()
            store.close()
