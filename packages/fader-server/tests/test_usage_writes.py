"""Several replicas add to the same rollup rows at once and nothing is lost (docs/events.md,
section 3): counters add up in the database, sketches merge under the row's lock.

Two stores (two engines and pools, as two replicas have) over one real database, SQLite and
PostgreSQL; four threads each, every transaction adding to the same two rows in a random item
order (so the writers would deadlock if rows were not locked in one order). The counts must be
exact, and the hour sketch must hold exactly the registers of every key added.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import dedicated_postgres_database
from server_api import unique

from fader_engine.sketches import REGISTERS, DistinctSketch
from fader_server.storage.ports.usage import EVALUATIONS, UsageCount
from fader_server.storage.sql.store import SqlStore
from fader_server.storage.sql.tables import usage_hours, usage_minutes
from fader_server.storage.sql.usage_rows import union

NOW = datetime(2031, 3, 2, 10, 0, 30, tzinfo=UTC)
REPLICAS = 2
THREADS = 4
WRITES = 25


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'usage.db'}"
        return
    with dedicated_postgres_database() as url:
        yield url


def test_concurrent_writers_to_the_same_rows_lose_nothing(database_url: str) -> None:
    stores = [SqlStore.open(database_url) for _ in range(REPLICAS)]
    try:
        with stores[0].transaction() as tx:
            project = tx.insert_project(unique("usage"), "Usage", NOW)
        barrier = threading.Barrier(REPLICAS * THREADS)
        failures: list[BaseException] = []

        def write(store: SqlStore, writer: int) -> None:
            rng = random.Random(writer)
            try:
                barrier.wait()
                for n in range(WRITES):
                    key = f"user-{writer}-{n}"
                    items = [
                        UsageCount(
                            "f",
                            EVALUATIONS,
                            "on",
                            2,
                            contexts=DistinctSketch().update([key]).to_bytes(),
                        ),
                        UsageCount("f", "latency", "on", 1, 1.5, 2.25),
                        UsageCount("g", EVALUATIONS, "on", 1),
                    ]
                    rng.shuffle(items)
                    with store.transaction() as tx:
                        tx.add_usage(project.id, "production", "server", items, NOW)
            except BaseException as error:  # reported below, with the thread's name
                failures.append(error)

        threads = [
            threading.Thread(target=write, args=(stores[w % REPLICAS], w))
            for w in range(REPLICAS * THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        assert not any(thread.is_alive() for thread in threads)

        writes = REPLICAS * THREADS * WRITES
        engine = stores[0].engine
        with engine.connect() as connection:
            minutes = connection.execute(
                sa.select(
                    usage_minutes.c.flag,
                    usage_minutes.c.metric,
                    usage_minutes.c.count,
                    usage_minutes.c.total,
                    usage_minutes.c.total_squares,
                )
                .where(usage_minutes.c.project_id == project.id)
                .order_by(usage_minutes.c.flag, usage_minutes.c.metric)
            ).all()
            hours = connection.execute(
                sa.select(usage_hours.c.flag, usage_hours.c.count, usage_hours.c.contexts)
                .where(usage_hours.c.project_id == project.id, usage_hours.c.metric == "")
                .order_by(usage_hours.c.flag)
            ).all()
        assert [tuple(row) for row in minutes] == [
            ("f", "", 2 * writes, 0.0, 0.0),
            ("f", "latency", writes, 1.5 * writes, 2.25 * writes),
            ("g", "", writes, 0.0, 0.0),
        ]
        assert [(row.flag, row.count) for row in hours] == [("f", 2 * writes), ("g", writes)]
        every_key = DistinctSketch().update(
            f"user-{w}-{n}" for w in range(REPLICAS * THREADS) for n in range(WRITES)
        )
        stored = DistinctSketch.from_bytes(hours[0].contexts)
        assert stored.registers == every_key.registers  # every writer's key, none lost
        assert stored.estimate() == pytest.approx(writes, abs=3)
        assert hours[1].contexts is None
        # the minute after: new rows, the hour's rows added to
        with stores[1].transaction() as tx:
            tx.add_usage(
                project.id, "production", "server", [UsageCount("g", "", "on", 1)],
                NOW + timedelta(minutes=1),
            )  # fmt: skip
        with engine.connect() as connection:
            counts = connection.execute(
                sa.select(usage_hours.c.count).where(
                    usage_hours.c.project_id == project.id, usage_hours.c.flag == "g"
                )
            ).scalar_one()
        assert counts == writes + 1
    finally:
        for store in stores:
            store.close()


def test_the_fast_union_of_sketches_is_the_register_by_register_merge() -> None:
    """:func:`union` computes all registers at once (byte lanes of one integer); it must equal
    :meth:`DistinctSketch.merge` everywhere, the extreme ranks (0 and 55) included."""
    rng = random.Random(5)
    for _ in range(200):
        first, second = (
            bytes(rng.choice((0, 0, 1, 2, 54, 55, rng.randrange(56))) for _ in range(REGISTERS))
            for _ in range(2)
        )
        expected = DistinctSketch(first).merge(DistinctSketch(second))
        assert union(DistinctSketch(first), DistinctSketch(second)).registers == expected.registers
