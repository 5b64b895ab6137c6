"""Summaries written in groups (fader_server.delivery.summary_writer): many summaries per
transaction, each acknowledged after its commit, counted exactly once, and a failed
transaction failing exactly the requests it held. Against a real SQLite database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from server_api import unique

from fader_server.delivery.sdk_events import Summary
from fader_server.delivery.summary_writer import SummaryWriter, Target
from fader_server.errors import AlreadyExistsError
from fader_server.storage.ports.usage import EVALUATIONS, UsageCount
from fader_server.storage.sql.store import SqlStore
from fader_server.storage.sql.tables import summary_receipts, usage_minutes

NOW = datetime(2031, 3, 2, 10, 0, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'writer.db'}")
    yield store
    store.close()


def project_target(store: SqlStore) -> Target:
    with store.transaction() as tx:
        project = tx.insert_project(unique("writer"), "Writer", NOW)
    return Target(project.id, "production", "server", token_id=7)


def summary(count: int, variant: str = "on") -> Summary:
    return Summary([UsageCount("f", EVALUATIONS, variant, count)], [], [])


def minute_counts(store: SqlStore, target: Target) -> dict[str, int]:
    m = usage_minutes.c
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.select(m.variant, sa.func.sum(m.count))
            .where(m.project_id == target.project_id)
            .group_by(m.variant)
        ).all()
    return {variant: int(total) for variant, total in rows}


def test_concurrent_summaries_share_transactions_and_count_exactly(store: SqlStore) -> None:
    target = project_target(store)
    writer = SummaryWriter(store, lambda: NOW, window=0.5)
    results: list[object] = []
    barrier = threading.Barrier(40)

    def send(n: int) -> None:
        barrier.wait()
        future = writer.submit(target, summary(n + 1, "on" if n % 2 else "off"), f"id-{n:016d}")
        results.append(future.result(timeout=60))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    writer.close()
    assert len(results) == 40
    assert writer.summaries == 40
    assert writer.batches < 40  # written together, not one transaction each
    assert minute_counts(store, target) == {
        "on": sum(n + 1 for n in range(40) if n % 2),
        "off": sum(n + 1 for n in range(40) if not n % 2),
    }


def test_a_summary_sent_twice_within_one_batch_counts_once(store: SqlStore) -> None:
    target = project_target(store)
    writer = SummaryWriter(store, lambda: NOW, window=2.0, gathering=True)
    first = writer.submit(target, summary(5), "same-id-000000000")
    again = writer.submit(target, summary(5), "same-id-000000000")
    other_key = writer.submit(
        Target(target.project_id, "production", "server", token_id=8),
        summary(1),
        "same-id-000000000",  # ids are per key
    )
    outcomes = [f.result(timeout=60) for f in (first, again, other_key)]
    writer.close()
    assert writer.batches == 1
    assert [(o.accepted, o.duplicate) for o in outcomes] == [(1, False), (0, True), (1, False)]
    assert minute_counts(store, target) == {"on": 6}


def test_a_summary_that_cannot_be_stored_fails_alone(store: SqlStore) -> None:
    """A batch whose transaction fails is written again one summary at a time: the one that
    cannot be stored (its project is gone) fails, the others of its batch are stored."""
    target = project_target(store)
    writer = SummaryWriter(store, lambda: NOW, window=1.0, gathering=True)
    no_project = Target(target.project_id + 1000, "production", "server", token_id=9)
    good = writer.submit(target, summary(3), "good-0000000000000")
    bad = writer.submit(no_project, summary(4), "bad-00000000000000")  # foreign key: refused
    also_good = writer.submit(target, summary(2, "off"), "good-0000000000001")
    assert good.result(timeout=60).accepted == 1
    assert also_good.result(timeout=60).accepted == 1
    with pytest.raises(AlreadyExistsError):  # the store's word for a constraint refusal
        bad.result(timeout=60)
    writer.close()
    assert minute_counts(store, target) == {"on": 3, "off": 2}
    with store.engine.connect() as connection:
        receipts = connection.execute(sa.select(summary_receipts.c.summary_id)).scalars().all()
    assert sorted(receipts) == ["good-0000000000000", "good-0000000000001"]


def test_close_writes_what_is_queued(store: SqlStore) -> None:
    target = project_target(store)
    writer = SummaryWriter(store, lambda: NOW, window=30.0, gathering=True)  # waits for company
    queued = writer.submit(target, summary(2), None)
    writer.close()
    assert queued.result(timeout=0).accepted == 1
    assert minute_counts(store, target) == {"on": 2}
    late = writer.submit(target, summary(1), None)  # after close: written on its own
    assert late.result(timeout=60).accepted == 1
    assert minute_counts(store, target) == {"on": 3}


def test_a_lone_sequential_sender_is_not_kept_waiting_for_company(store: SqlStore) -> None:
    """Batches of one: the writer writes each summary as it comes (no 30 s window waited)."""
    target = project_target(store)
    writer = SummaryWriter(store, lambda: NOW, window=30.0)
    for n in range(5):
        assert writer.submit(target, summary(1), f"alone-{n:012d}").result(timeout=10).accepted
    writer.close()
    assert writer.batches == 5
    assert minute_counts(store, target) == {"on": 5}


def test_a_request_that_went_away_is_not_written_and_the_writer_goes_on(
    store: SqlStore,
) -> None:
    """A client that disconnects while waiting cancels its future: that summary was never
    acknowledged, so it is not written (its SDK sends it again), and the writer keeps going."""
    target = project_target(store)
    writer = SummaryWriter(store, lambda: NOW, window=2.0, gathering=True)
    kept = writer.submit(target, summary(3), "kept-000000000000")
    gone = writer.submit(target, summary(5), "gone-000000000000")
    assert gone.cancel()  # what asyncio.wrap_future does when the awaiting request is cancelled
    assert kept.result(timeout=60).accepted == 1
    assert writer.submit(target, summary(1, "off"), None).result(timeout=60).accepted == 1
    writer.close()
    assert minute_counts(store, target) == {"on": 3, "off": 1}
