"""SQL for what SDK summaries become: per-minute and per-hour rollup rows, debug events, and
retention's batched deletes of them (docs/events.md, section 3).

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction` implementing
:class:`~fader_server.storage.ports.usage.UsageRows`.

Why upserts: any number of replicas add to the same row (the same flag, variant and minute)
at once. ``INSERT ... ON CONFLICT DO UPDATE SET count = count + excluded.count`` (one construct
per dialect) adds in the database, under the row's lock, so no addition is ever lost and no
replica reads a counter to write it back. A summary's items are merged per row first and
written in one sorted order, so two transactions touching the same rows lock them in the same
order (no deadlock on PostgreSQL); SQLite's ``BEGIN IMMEDIATE`` runs writers one at a time.

Why the hour sketches are read back: a HyperLogLog sketch merges register by register (the
larger wins), which SQL cannot express portably. The hour rows are upserted first, which on
PostgreSQL locks them until the commit; the stored sketches are then read, merged in Python
and written back while that lock is held, so a concurrent writer on another replica waits and
then merges into the result. Merging is idempotent, so a row the upsert has just created
(holding exactly the new sketch) is left as it is.

Counters never overflow: a count saturates at :data:`COUNT_CAP` and sums at :data:`SUM_CAP`
(items are clamped to it first, then the stored value is clamped to leave room for the item
before adding), so neither a hostile key nor an application measuring huge values can make
a write to a row fail with an arithmetic error (PostgreSQL refuses a float that overflows).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fader_engine.sketches import DistinctSketch, SketchError
from fader_server.storage.ports.usage import EVALUATIONS, DebugEvent, Pruned, UsageCount
from fader_server.storage.sql.tables import (
    debug_events,
    summary_receipts,
    usage_hours,
    usage_minutes,
)

COUNT_CAP = 2**62
"""Where a row's count stops growing (a BIGINT holds up to 2^63 - 1)."""
SUM_CAP = 1e306
"""Where a row's sums stop growing (a double overflows near 1.8e308)."""
ROWS_PER_STATEMENT = 500
"""Rows per ``IN`` list when reading sketches back: far under SQLite's limit on bound
parameters."""

_T = TypeVar("_T")
_KEY = ("project_id", "environment", "flag", "metric", "variant", "key_kind")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _clamped(value: float) -> float:
    """`value` within ±:data:`SUM_CAP` (an infinite sum of huge finite items included), so the
    database never adds anything that could overflow."""
    return max(-SUM_CAP, min(SUM_CAP, value))


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def union(first: DistinctSketch, second: DistinctSketch) -> DistinctSketch:
    """The sketch of the keys of both, leaving both as they were (the engine merges all 1,024
    registers at once, fast enough for the thousand sketches of a full summary)."""
    return DistinctSketch(first.registers).merge(second)


@dataclass(slots=True)
class _Sums:
    """The items of one summary that add to one row, added up. `encoded`: the stored form of
    `sketch` when it is the one an item brought (no need to compress it again)."""

    count: int = 0
    total: float = 0.0
    total_squares: float = 0.0
    sketch: DistinctSketch | None = None
    encoded: bytes | None = None

    def add(self, item: UsageCount) -> None:
        self.count = min(self.count + item.count, COUNT_CAP)
        self.total = _clamped(self.total + item.total)
        self.total_squares = _clamped(self.total_squares + item.total_squares)
        if item.contexts is not None:
            sketch = DistinctSketch.from_bytes(item.contexts)
            if self.sketch is None:
                self.sketch, self.encoded = sketch, item.contexts
            else:
                self.sketch, self.encoded = union(self.sketch, sketch), None

    def contexts(self) -> bytes | None:
        if self.sketch is not None and self.encoded is None:
            self.encoded = self.sketch.to_bytes()
        return self.encoded


def merged_counts(counts: Sequence[UsageCount]) -> dict[tuple[str, str, str], _Sums]:
    """(flag, metric, variant) -> the items' sums, in key order."""
    merged: dict[tuple[str, str, str], _Sums] = {}
    for item in counts:
        merged.setdefault((item.flag, item.metric, item.variant), _Sums()).add(item)
    return dict(sorted(merged.items()))


def _merge_stored(stored: bytes | None, new: _Sums) -> bytes | None:
    """The sketch to store for a row holding `stored` that `new` adds to; None to leave it
    (nothing new: e.g. the row the upsert has just created with exactly this sketch). A stored
    value that is not a sketch is replaced rather than kept failing every later write to its
    row."""
    assert new.sketch is not None
    if stored is None:
        return new.contexts()
    if stored == new.contexts():
        return None
    try:
        current = DistinctSketch.from_bytes(stored)
    except SketchError:
        return new.contexts()
    merged = union(current, new.sketch)
    return None if merged.registers == current.registers else merged.to_bytes()


def _least(postgres: bool, *values: Any) -> Any:
    return sa.func.least(*values) if postgres else sa.func.min(*values)


def _greatest(postgres: bool, *values: Any) -> Any:
    return sa.func.greatest(*values) if postgres else sa.func.max(*values)


_BIG = sa.BigInteger()
_FLOAT = sa.Float()


def _added(
    postgres: bool, column: sa.ColumnElement[Any], new: Any, cap: float, signed: bool
) -> Any:
    """``column + new`` saturating at ±`cap`, without ever computing a value beyond it:
    the stored value is clamped to leave room for `new` before adding it."""
    kind = _BIG if isinstance(cap, int) else _FLOAT
    room = _least(postgres, column, sa.literal(cap, kind) - new)
    if signed:
        room = _greatest(postgres, room, sa.literal(-cap, kind) - new)
    return room + new


@functools.cache
def _upsert_statement(postgres: bool, table: sa.Table) -> sa.Executable:
    """The rollup upsert of `table` for one dialect, built once per process.

    Why cached: building this statement and deriving SQLAlchemy's cache key from it (a walk
    over every clause, literal and type) cost more CPU than executing it; a statement object
    that is reused keeps its cache key, so each summary pays only for its parameters."""
    insert = postgresql.insert if postgres else sqlite.insert
    key = [*_KEY, "minute" if table is usage_minutes else "hour"]
    statement = insert(table)
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=key,
        set_={
            "count": _added(postgres, table.c.count, new.count, COUNT_CAP, signed=False),
            "total": _added(postgres, table.c.total, new.total, SUM_CAP, signed=True),
            "total_squares": _added(
                postgres, table.c.total_squares, new.total_squares, SUM_CAP, signed=True
            ),
        },
    )


_H = usage_hours.c
# (parameters named apart from the columns: an UPDATE reserves the columns' names for SET)
_HOUR_ROW = sa.and_(
    _H.project_id == sa.bindparam("row_project"),
    _H.environment == sa.bindparam("row_environment"),
    _H.key_kind == sa.bindparam("row_kind"),
    _H.hour == sa.bindparam("row_hour"),
    _H.metric == EVALUATIONS,
)


@functools.cache
def _stored_sketches_statement(postgres: bool) -> sa.Executable:
    """The sketches of one hour's evaluation rows for a list of (flag, variant) pairs (an
    expanding parameter: one cached statement whatever the list's length)."""
    query = sa.select(_H.flag, _H.variant, _H.contexts).where(
        _HOUR_ROW, sa.tuple_(_H.flag, _H.variant).in_(sa.bindparam("pairs", expanding=True))
    )
    # On PostgreSQL the rows are locked already, since the upsert: said plainly
    return query.with_for_update() if postgres else query


_UPDATE_SKETCH = (
    sa.update(usage_hours)
    .where(_HOUR_ROW, _H.flag == sa.bindparam("f"), _H.variant == sa.bindparam("v"))
    .values(contexts=sa.bindparam("sketch"))
)


@functools.cache
def _claim_statement(postgres: bool) -> sa.Executable:
    insert = (postgresql if postgres else sqlite).insert(summary_receipts)
    # RETURNING, not rowcount: psycopg reports no row count for this statement
    claim: sa.Executable = insert.on_conflict_do_nothing().returning(summary_receipts.c.token_id)
    return claim


class UsageRowQueries:
    connection: sa.Connection

    @property
    def _postgres(self) -> bool:
        return self.connection.dialect.name == "postgresql"

    # ---------------------------------------------------------------- rollups
    def add_usage(
        self,
        project_id: int,
        environment: str,
        key_kind: str,
        counts: Sequence[UsageCount],
        at: datetime,
    ) -> None:
        if not counts:
            return
        at = _utc(at)
        minute = at.replace(second=0, microsecond=0)
        hour = minute.replace(minute=0)
        merged = merged_counts(counts)
        identity = {"project_id": project_id, "environment": environment, "key_kind": key_kind}
        rows = [
            {
                **identity,
                "flag": flag,
                "metric": metric,
                "variant": variant,
                "count": sums.count,
                "total": sums.total,
                "total_squares": sums.total_squares,
            }
            for (flag, metric, variant), sums in merged.items()
        ]
        postgres = self._postgres
        # an item that only brings contexts (count 0) has nothing for the minute
        minute_rows = [{**row, "minute": minute} for row in rows if row["count"]]
        if minute_rows:
            self.connection.execute(_upsert_statement(postgres, usage_minutes), minute_rows)
        self.connection.execute(
            _upsert_statement(postgres, usage_hours),
            [
                {**row, "hour": hour, "contexts": sums.contexts()}
                for row, sums in zip(rows, merged.values(), strict=True)
            ],
        )
        sketches = {
            (flag, variant): sums
            for (flag, metric, variant), sums in merged.items()
            if metric == EVALUATIONS and sums.sketch is not None
        }
        if sketches:
            hour_row = {
                "row_project": project_id,
                "row_environment": environment,
                "row_kind": key_kind,
                "row_hour": hour,
            }
            self._merge_sketches(hour_row, sketches)

    def _merge_sketches(
        self, hour_row: dict[str, Any], sketches: dict[tuple[str, str], _Sums]
    ) -> None:
        """Merge `sketches` into the stored sketches of the rows `hour_row` names (see the
        module's docstring: read back and written under the row locks the upsert holds)."""
        query = _stored_sketches_statement(self._postgres)
        changed: list[dict[str, Any]] = []
        for chunk in _chunks(list(sketches), ROWS_PER_STATEMENT):
            for flag, variant, stored in self.connection.execute(
                query, {**hour_row, "pairs": list(chunk)}
            ):
                merged = _merge_stored(stored, sketches[(flag, variant)])
                if merged is not None:
                    changed.append({**hour_row, "f": flag, "v": variant, "sketch": merged})
        if changed:
            self.connection.execute(_UPDATE_SKETCH, changed)

    # ------------------------------------------------------- summary receipts
    def claim_summary(self, token_id: int, summary_id: str, at: datetime) -> bool:
        """``INSERT ... ON CONFLICT DO NOTHING``: on PostgreSQL a concurrent claim of the same
        id waits for the first transaction, then inserts nothing; SQLite runs writers one at
        a time. Either way exactly one transaction sees a row inserted."""
        row = {"token_id": token_id, "summary_id": summary_id, "received_at": _utc(at)}
        return self.connection.execute(_claim_statement(self._postgres), row).first() is not None

    # ----------------------------------------------------------- debug events
    def add_debug_events(
        self,
        project_id: int,
        environment: str,
        key_kind: str,
        events: Sequence[DebugEvent],
        at: datetime,
        keep_per_flag: int,
    ) -> None:
        if not events:
            return
        self.connection.execute(
            debug_events.insert(),
            [
                {
                    "project_id": project_id,
                    "environment": environment,
                    "flag": e.flag,
                    "variant": e.variant,
                    "reason": e.reason,
                    "targeting_key": e.targeting_key,
                    "occurred_at": _utc(e.occurred_at),
                    "received_at": _utc(at),
                    "key_kind": key_kind,
                }
                for e in events
            ],
        )
        d = debug_events.c
        for flag in sorted({e.flag for e in events}):
            older = (
                sa.select(d.id)
                .where(d.project_id == project_id, d.environment == environment, d.flag == flag)
                .order_by(d.received_at.desc(), d.id.desc())
                .offset(keep_per_flag)
            )
            self.connection.execute(sa.delete(debug_events).where(d.id.in_(older)))

    # -------------------------------------------------------------- retention
    def prune_usage(
        self,
        *,
        minutes_before: datetime,
        hours_before: datetime,
        debug_before: datetime,
        limit: int,
    ) -> Pruned:
        minute_key = [usage_minutes.c[name] for name in (*_KEY, "minute")]
        hour_key = [usage_hours.c[name] for name in (*_KEY, "hour")]
        return Pruned(
            minutes=self._prune(
                usage_minutes, minute_key, usage_minutes.c.minute < _utc(minutes_before), limit
            ),
            hours=self._prune(
                usage_hours, hour_key, usage_hours.c.hour < _utc(hours_before), limit
            ),
            debug_events=self._prune(
                debug_events,
                [debug_events.c.id],
                debug_events.c.received_at < _utc(debug_before),
                limit,
            ),
            receipts=self._prune(
                summary_receipts,
                [summary_receipts.c.token_id, summary_receipts.c.summary_id],
                summary_receipts.c.received_at < _utc(debug_before),
                limit,
            ),
        )

    def _prune(
        self,
        table: sa.Table,
        key: list[sa.Column[Any]],
        old: sa.ColumnElement[bool],
        limit: int,
    ) -> int:
        """Delete up to `limit` rows matching `old`, chosen by their primary key. On
        PostgreSQL rows another replica is deleting right now are skipped (``SKIP LOCKED``):
        replicas pruning at once share the work instead of queueing behind each other."""
        chosen = sa.select(*key).where(old).limit(limit)
        if self._postgres:
            chosen = chosen.with_for_update(skip_locked=True)
        target = key[0] if len(key) == 1 else sa.tuple_(*key)
        result = self.connection.execute(sa.delete(table).where(target.in_(chosen)))
        return int(result.rowcount or 0)
