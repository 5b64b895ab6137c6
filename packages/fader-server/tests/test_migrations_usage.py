"""Migration 0006 folds the stored SDK events into usage rollups, exactly, then drops them; and
the way back (downgrade to 0005) exists.

A database is brought to revision 0005, given events the way that release stored them, and
upgraded: every minute and hour row must hold the exact counts, sums and sums of squares of
its events, and every hour row of evaluations the sketch of exactly its targeting keys. On
PostgreSQL the database's time zone is set to +05:30, so a truncation done in the session's
zone instead of UTC would put rows in the wrong minute and hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN_URL, dedicated_postgres_database

from fader_engine.sketches import DistinctSketch
from fader_server.storage.sql import migrate
from fader_server.storage.sql.store import SqlStore
from fader_server.storage.sql.tables import usage_hours, usage_minutes

T = datetime(2031, 3, 2, 10, 17, 20, 250_000, tzinfo=UTC)
MINUTE = T.replace(second=0, microsecond=0)
HOUR = MINUTE.replace(minute=0)

_TS = sa.DateTime(timezone=True)
_COLUMNS = (
    "project_id", "environment", "kind", "flag", "variant", "reason", "name", "value",
    "targeting_key", "key_kind",
)  # fmt: skip
sdk_events = sa.table(
    "sdk_events",
    *[sa.column(name) for name in _COLUMNS],
    sa.column("occurred_at", _TS),
    sa.column("received_at", _TS),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        created = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
        yield created
        created.dispose()
        return
    with dedicated_postgres_database(empty=True) as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Kolkata'")
        created = sa.create_engine(url)
        yield created
        created.dispose()


def event(
    kind: str,
    flag: str | None,
    variant: str | None,
    at: datetime,
    *,
    key: str | None = None,
    name: str | None = None,
    value: float | None = None,
    project: int = 1,
    environment: str = "production",
    key_kind: str = "server",
) -> dict[str, Any]:
    return {
        "project_id": project,
        "environment": environment,
        "kind": kind,
        "flag": flag,
        "variant": variant,
        "reason": "SPLIT" if kind == "exposure" else None,
        "name": name,
        "value": value,
        "targeting_key": key,
        "key_kind": key_kind,
        "occurred_at": at - timedelta(days=3),  # the SDK's claim: never what counts
        "received_at": at,
    }


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


EVENTS = [
    # minute 10:17, variant on, server keys: 5 exposures of 3 distinct keys (one without a key)
    event("exposure", "f", "on", at(0), key="u1"),
    event("exposure", "f", "on", at(1), key="u2"),
    event("exposure", "f", "on", at(2), key="u1"),
    event("exposure", "f", "on", at(39), key="u3"),
    event("exposure", "f", "on", at(39.7), key=None),
    event("exposure", "f", None, at(10), key="u9"),  # served no variant
    event("exposure", "f", "on", at(5), key="c1", key_kind="client"),
    # minute 10:18, same hour
    event("exposure", "f", "on", at(40), key="u4"),
    # hour 11
    event("exposure", "f", "on", at(2600), key="u1"),
    # custom events: values 1, none (counts as 0), 3
    event("custom", "f", "on", at(20), name="error", value=1.0),
    event("custom", "f", "on", at(21), name="error"),
    event("custom", "f", "on", at(22), name="error", value=3.0),
    event("custom", None, None, at(25), name="page.view", value=2.5),
    # another project's environment
    event("exposure", "f", "off", at(0), key="u1", project=2, environment="staging"),
]


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sketch(*keys: str) -> bytes:
    return bytes(DistinctSketch().update(keys).registers)


def test_events_are_folded_into_exact_rollups_and_the_table_dropped(engine: sa.Engine) -> None:
    migrate.upgrade(engine, "0005")
    with engine.begin() as connection:
        for key in ("a", "b"):
            connection.execute(
                sa.text("INSERT INTO projects (key, name, created_at) VALUES (:k, :k, :t)"),
                {"k": key, "t": T},
            )
        connection.execute(sa.insert(sdk_events), EVENTS)
    migrate.upgrade(engine)

    with engine.connect() as connection:
        m, h = usage_minutes.c, usage_hours.c
        minutes = connection.execute(
            sa.select(
                m.project_id, m.environment, m.flag, m.metric, m.variant, m.key_kind, m.minute,
                m.count, m.total, m.total_squares,
            ).order_by(m.project_id, m.minute, m.flag, m.metric, m.variant, m.key_kind)
        ).all()  # fmt: skip
        hours = connection.execute(
            sa.select(
                h.project_id, h.flag, h.metric, h.variant, h.key_kind, h.hour, h.count, h.total,
                h.total_squares, h.contexts,
            ).order_by(h.project_id, h.hour, h.flag, h.metric, h.variant, h.key_kind)
        ).all()  # fmt: skip
        tables = set(sa.inspect(connection).get_table_names())
    next_minute = MINUTE + timedelta(minutes=1)
    assert [(*row[:6], utc(row[6]), *row[7:]) for row in minutes] == [
        (1, "production", "", "page.view", "", "server", MINUTE, 1, 2.5, 6.25),
        (1, "production", "f", "", "", "server", MINUTE, 1, 0.0, 0.0),
        (1, "production", "f", "", "on", "client", MINUTE, 1, 0.0, 0.0),
        (1, "production", "f", "", "on", "server", MINUTE, 5, 0.0, 0.0),
        (1, "production", "f", "error", "on", "server", MINUTE, 3, 4.0, 10.0),
        (1, "production", "f", "", "on", "server", next_minute, 1, 0.0, 0.0),
        (1, "production", "f", "", "on", "server", HOUR + timedelta(hours=1), 1, 0.0, 0.0),
        (2, "staging", "f", "", "off", "server", MINUTE, 1, 0.0, 0.0),
    ]
    found = [
        (*row[:5], utc(row[5]), *row[6:9], None if row[9] is None else row[9]) for row in hours
    ]
    expected_sketches = {
        (1, "f", "", "", "server", HOUR): sketch("u9"),
        (1, "f", "", "on", "client", HOUR): sketch("c1"),
        (1, "f", "", "on", "server", HOUR): sketch("u1", "u2", "u3", "u4"),
        (1, "f", "", "on", "server", HOUR + timedelta(hours=1)): sketch("u1"),
        (2, "f", "", "off", "server", HOUR): sketch("u1"),
    }
    assert [(*row[:9],) for row in found] == [
        (1, "", "page.view", "", "server", HOUR, 1, 2.5, 6.25),
        (1, "f", "", "", "server", HOUR, 1, 0.0, 0.0),
        (1, "f", "", "on", "client", HOUR, 1, 0.0, 0.0),
        (1, "f", "", "on", "server", HOUR, 6, 0.0, 0.0),
        (1, "f", "error", "on", "server", HOUR, 3, 4.0, 10.0),
        (1, "f", "", "on", "server", HOUR + timedelta(hours=1), 1, 0.0, 0.0),
        (2, "f", "", "off", "server", HOUR, 1, 0.0, 0.0),
    ]
    for row in found:
        want = expected_sketches.get((*row[:5], row[5]))
        if want is None:
            assert row[9] is None, row
        else:
            assert bytes(DistinctSketch.from_bytes(row[9]).registers) == want, row
    assert "sdk_events" not in tables
    assert {"usage_minutes", "usage_hours", "debug_events"} <= tables

    # What gates and usage views read of it, through the store.
    store = SqlStore(engine)
    with store.read() as tx:
        totals = tx.event_totals(1, "production", "f", MINUTE)
        client = tx.event_totals(1, "production", "f", MINUTE, ("client",))
        contexts = tx.distinct_contexts(1, "production", "f", HOUR, HOUR + timedelta(hours=2))
    assert totals["on"].exposures == 7
    assert (totals["on"].events["error"].count, totals["on"].events["error"].total) == (3, 4.0)
    assert client["on"].exposures == 1
    assert contexts.variants["on"] == 5  # u1-u4 and the client key's c1


def test_the_migration_goes_back_to_0005_and_forward_again(engine: sa.Engine) -> None:
    migrate.upgrade(engine)
    migrate.downgrade(engine, "0005")
    assert migrate.current_revision(engine) == "0005"
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        columns = {c["name"] for c in sa.inspect(connection).get_columns("sdk_events")}
    assert "sdk_events" in tables
    assert not {"usage_minutes", "usage_hours", "debug_events"} & tables
    assert {"key_kind", "received_at", "targeting_key"} <= columns
    with engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO projects (key, name, created_at) VALUES ('p', 'p', :t)"),
            {"t": T},
        )
        connection.execute(sa.insert(sdk_events), [event("exposure", "f", "on", T, key="u")])
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    with SqlStore(engine).read() as tx:
        assert tx.event_totals(1, "production", "f", MINUTE)["on"].exposures == 1
