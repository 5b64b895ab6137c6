"""The usage reads (storage/ports/usage.py `UsageReads`) on SQLite, PostgreSQL and the in-memory
store: evaluations per minute, hour and day summed over key kinds; distinct contexts as merged
hour sketches; the last evaluation of each flag; debug events newest first. And the fast sketch
union both stores merge with: exactly the engine's merge, and junk adds nothing.

Rows are written with the store's own `add_usage` / `add_debug_events` at chosen times (the
server's receive time decides the minute), and every expectation is exact.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import opened_store
from hypothesis import given, settings
from hypothesis import strategies as st
from server_api import unique

from fader_engine.sketches import REGISTERS, DistinctSketch
from fader_server.storage.ports import Project
from fader_server.storage.ports.store import Database
from fader_server.storage.ports.usage import (
    EVALUATIONS,
    DebugEvent,
    DistinctContexts,
    UsageCount,
    UsagePoint,
)
from fader_server.storage.sketch_union import MAX_RANK, SketchUnion

T0 = datetime(2031, 3, 2, 10, 0, tzinfo=UTC)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "memory"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    with opened_store(request, tmp_path_factory.mktemp("usage")) as opened:
        yield opened


@pytest.fixture
def project(store: Database) -> Project:
    with store.transaction() as tx:
        return tx.insert_project(unique("usage"), "Usage", T0)


def evaluations(flag: str, variant: str, count: int, keys: range | None = None) -> UsageCount:
    contexts = None if keys is None else sketch(keys).to_bytes()
    return UsageCount(flag, EVALUATIONS, variant, count, contexts=contexts)


def sketch(keys: range) -> DistinctSketch:
    return DistinctSketch().update(f"user-{n}" for n in keys)


def add(
    store: Database,
    project: Project,
    at: datetime,
    *counts: UsageCount,
    environment: str = "production",
    key_kind: str = "server",
) -> None:
    with store.transaction() as tx:
        tx.add_usage(project.id, environment, key_kind, list(counts), at)


def test_evaluations_per_minute_sum_key_kinds_and_leave_out_other_rows(
    store: Database, project: Project
) -> None:
    add(store, project, T0 + timedelta(seconds=5), evaluations("checkout", "on", 3))
    add(store, project, T0 + timedelta(seconds=50), evaluations("checkout", "on", 4))
    add(
        store,
        project,
        T0 + timedelta(seconds=59),
        evaluations("checkout", "off", 2),
        evaluations("checkout", "", 1),
        key_kind="client",
    )
    add(store, project, T0 + 2 * MINUTE, evaluations("checkout", "off", 5))
    # not evaluations of checkout in production in the window: never counted
    add(store, project, T0 + MINUTE, UsageCount("checkout", "latency", "on", 9, 9.0, 81.0))
    add(store, project, T0 + MINUTE, evaluations("search", "on", 8))
    add(store, project, T0 + MINUTE, evaluations("checkout", "on", 6), environment="staging")
    add(store, project, T0 - MINUTE, evaluations("checkout", "on", 7))
    add(store, project, T0 + 3 * MINUTE, evaluations("checkout", "on", 7))

    with store.read() as tx:
        points = tx.usage_series(
            project.id, "production", "checkout", T0, T0 + 3 * MINUTE, "minute"
        )

    assert points == [
        UsagePoint(T0, {"on": 7, "off": 2, "": 1}),
        UsagePoint(T0 + 2 * MINUTE, {"off": 5}),
    ]
    assert [p.evaluations for p in points] == [10, 5]


def test_hours_and_days_read_hour_rows(store: Database, project: Project) -> None:
    day = T0.replace(hour=0)
    add(store, project, day + 30 * MINUTE, evaluations("checkout", "on", 1))
    add(store, project, day + 90 * MINUTE, evaluations("checkout", "on", 2))
    add(store, project, day + 23 * HOUR + 59 * MINUTE, evaluations("checkout", "off", 4))
    add(store, project, day + DAY + 5 * HOUR, evaluations("checkout", "on", 8))

    with store.read() as tx:
        hours = tx.usage_series(project.id, "production", "checkout", day, day + DAY, "hour")
        days = tx.usage_series(project.id, "production", "checkout", day, day + 2 * DAY, "day")

    assert hours == [
        UsagePoint(day, {"on": 1}),
        UsagePoint(day + HOUR, {"on": 2}),
        UsagePoint(day + 23 * HOUR, {"off": 4}),
    ]
    assert days == [UsagePoint(day, {"on": 3, "off": 4}), UsagePoint(day + DAY, {"on": 8})]


def test_distinct_contexts_merge_hour_sketches_per_variant_and_across(
    store: Database, project: Project
) -> None:
    add(store, project, T0, evaluations("checkout", "on", 100, range(0, 100)))
    # the same users an hour later and through a client key: still 100 contexts, not 200
    add(
        store,
        project,
        T0 + HOUR,
        evaluations("checkout", "on", 100, range(0, 100)),
        key_kind="client",
    )
    add(store, project, T0 + HOUR, evaluations("checkout", "off", 100, range(50, 150)))
    add(store, project, T0 + 5 * HOUR, evaluations("checkout", "off", 1, range(900, 1000)))

    with store.read() as tx:
        found = tx.distinct_contexts(
            project.id, "production", "checkout", T0 + 10 * MINUTE, T0 + 2 * HOUR
        )

    # the period's first hour counts whole (its start is in the period's first hour)
    assert found == DistinctContexts(
        sketch(range(0, 150)).estimate(),
        {"on": sketch(range(0, 100)).estimate(), "off": sketch(range(50, 150)).estimate()},
    )
    assert found.all == pytest.approx(150, rel=0.05)  # linear counting: about 2% error here
    with store.read() as tx:
        nothing = tx.distinct_contexts(project.id, "production", "checkout", T0 - DAY, T0)
    assert nothing == DistinctContexts(0, {})


def test_last_evaluated_is_the_last_minute_or_beyond_minute_retention_the_last_hour(
    store: Database, project: Project
) -> None:
    add(store, project, T0 + 17 * MINUTE, evaluations("checkout", "on", 1))
    add(store, project, T0 + 42 * MINUTE, evaluations("checkout", "", 1))
    add(store, project, T0 + 3 * MINUTE, evaluations("checkout", "on", 1), environment="staging")
    add(store, project, T0 - 20 * DAY + 33 * MINUTE, evaluations("old", "on", 1))
    add(store, project, T0 - 3 * HOUR + 5 * MINUTE, evaluations("search", "on", 1))
    add(store, project, T0 - 3 * HOUR + 25 * MINUTE, evaluations("search", "off", 1))
    add(store, project, T0 - 4 * HOUR + 55 * MINUTE, evaluations("search", "on", 1))
    add(store, project, T0, UsageCount("metric-only", "latency", "on", 1, 1.0, 1.0))
    with store.transaction() as tx:  # retention dropped the old flag's minute rows
        tx.prune_usage(
            minutes_before=T0 - 14 * DAY,
            hours_before=T0 - 400 * DAY,
            debug_before=T0 - DAY,
            limit=1000,
        )

    with store.read() as tx:
        everything = tx.last_evaluated(project.id)
        production = tx.last_evaluated(project.id, "production")
        one_flag = tx.last_evaluated(project.id, None, "checkout")
        recent = tx.last_evaluated(project.id, since=T0 - DAY)
        this_hour = tx.last_evaluated(project.id, since=T0 + 30 * MINUTE)  # read from T0
        later = tx.last_evaluated(project.id, since=T0 + HOUR)

    assert everything == {
        ("production", "checkout"): T0 + 42 * MINUTE,
        ("staging", "checkout"): T0 + 3 * MINUTE,
        ("production", "search"): T0 - 3 * HOUR + 25 * MINUTE,
        ("production", "old"): T0 - 20 * DAY,
    }
    assert production == {
        ("production", "checkout"): T0 + 42 * MINUTE,
        ("production", "search"): T0 - 3 * HOUR + 25 * MINUTE,
        ("production", "old"): T0 - 20 * DAY,
    }
    assert one_flag == {
        ("production", "checkout"): T0 + 42 * MINUTE,
        ("staging", "checkout"): T0 + 3 * MINUTE,
    }
    assert recent == {**one_flag, ("production", "search"): T0 - 3 * HOUR + 25 * MINUTE}
    assert this_hour == one_flag
    assert later == {}


def test_debug_events_are_read_newest_first_per_flag_and_environment(
    store: Database, project: Project
) -> None:
    def event(n: int, flag: str = "checkout") -> DebugEvent:
        return DebugEvent(flag, "on" if n % 2 else None, "SPLIT", f"user-{n}", T0 + n * MINUTE)

    with store.transaction() as tx:
        tx.add_debug_events(project.id, "production", "server", [event(0), event(1)], T0, 1000)
        tx.add_debug_events(
            project.id, "production", "client", [event(2), event(3, "search")], T0 + HOUR, 1000
        )
        tx.add_debug_events(project.id, "staging", "server", [event(4)], T0 + 2 * HOUR, 1000)

    with store.read() as tx:
        newest = tx.debug_events(project.id, "production", "checkout", 10)
        two = tx.debug_events(project.id, "production", "checkout", 2)

    assert [(e.targeting_key, e.variant, e.key_kind, e.received_at) for e in newest] == [
        ("user-2", None, "client", T0 + HOUR),
        ("user-1", "on", "server", T0),
        ("user-0", None, "server", T0),
    ]
    assert newest[0].occurred_at == T0 + 2 * MINUTE
    assert [e.targeting_key for e in two] == ["user-2", "user-1"]


ranks = st.binary(min_size=REGISTERS, max_size=REGISTERS).map(
    lambda raw: bytes(byte % (MAX_RANK + 1) for byte in raw)  # every rank a register can hold
)


@settings(max_examples=100, deadline=None)
@given(st.lists(ranks, min_size=1, max_size=8))
def test_a_sketch_union_is_exactly_the_engines_merge(sketches: list[bytes]) -> None:
    engine = DistinctSketch()
    union = SketchUnion()
    for registers in sketches:
        engine.merge(DistinctSketch(registers))
        assert union.add(DistinctSketch(registers).to_bytes())
    assert union.sketch().registers == engine.registers
    assert union.estimate() == engine.estimate()
    assert SketchUnion().update(union).sketch().registers == engine.registers


@pytest.mark.parametrize(
    "junk",
    [
        b"not zlib",
        zlib.compress(bytes(REGISTERS - 1)),
        zlib.compress(bytes(REGISTERS + 1)),
        zlib.compress(bytes([MAX_RANK + 1]) * REGISTERS),
        zlib.compress(bytes(REGISTERS)) + b"trailing",
        b"x" * (5 * REGISTERS),
    ],
)
def test_what_is_not_a_sketch_adds_nothing(junk: bytes) -> None:
    union = SketchUnion()
    assert union.add(sketch(range(10)).to_bytes())
    assert not union.add(junk)
    assert union.sketch().registers == sketch(range(10)).registers
