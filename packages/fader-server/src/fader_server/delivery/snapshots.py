"""Environment snapshots: one environment's flag document at one revision, built once.

Every delivery endpoint (polling, streaming, OFREP, flagd export) serves the same
:class:`Snapshot`, so a revision is read from the database, validated and serialised once per
process no matter how many SDKs ask. Bodies are pre-encoded bytes because the hot path (10,000
streams receiving one change) must not serialise 10,000 times.

Freshness: a cached snapshot is served without touching the database for up to `fresh_for`
seconds after it was last confirmed current. Every change this process commits, and every change
another replica announces (LISTEN/NOTIFY), invalidates that confirmation at once through
:meth:`SnapshotService.invalidate`, so reads see a change within milliseconds; the time bound only
matters if a notification is lost (a dropped LISTEN connection), and then caps the staleness.
This takes the database off the hot path of polling and OFREP evaluation. A snapshot in use is
confirmed again in the background once half of `fresh_for` has passed (:meth:`SnapshotService.
fresh`, :mod:`fader_server.delivery.renewal`), so its requests do not all go to the database
together when the confirmation lapses.

Configuration bodies (the snapshot object and the flagd document) are serialised once per
snapshot, that is once per environment revision, and so are their gzip forms
(:attr:`Snapshot.gzip_body`, :attr:`Snapshot.flagd_gzip_body`): a poll costs a cache lookup, not
an encoding or a compression. A new revision is a new :class:`Snapshot`, so nothing of the old
one is ever served for it.

Consistency: the revision is read *before* the document, in the same transaction. Under
PostgreSQL's READ COMMITTED a write may commit between the two reads; then the document is newer
than its label, never older, and the next revision makes every client fetch again. The opposite
order could label old content with a new revision, and clients would keep it.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

from fader_engine.evaluate import Engine
from fader_engine.flagd.export import to_flagd
from fader_engine.formats import load
from fader_engine.parse import parse_document
from fader_server.delivery.renewal import Renewer
from fader_server.services import documents
from fader_server.storage.ports import JSON, PROJECT_SCOPE, EnvironmentChange, ResourceType
from fader_server.storage.ports.delivery import SnapshotReads
from fader_server.storage.ports.store import Store

CACHE_SIZE = 4096
"""Environments whose latest snapshot is kept in memory (least recently used ones go)."""
FRESH_FOR = 1.0
"""Seconds a snapshot is served unchecked when no change notification arrived meanwhile."""


@dataclass(frozen=True, slots=True)
class EnvironmentRef:
    """Which environment: what an SDK or client key points at."""

    project_id: int
    project_key: str
    environment: str


class Snapshot:
    """Immutable once built; properties that cost something are computed on first use."""

    def __init__(self, ref: EnvironmentRef, version: int, document: JSON) -> None:
        self.ref = ref
        self.version = version
        self.document = document

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    @cached_property
    def body(self) -> bytes:
        """The protocol's snapshot object (``docs/delivery-protocol.md``)."""
        payload = {
            "project": self.ref.project_key,
            "environment": self.ref.environment,
            "version": self.version,
            "document": self.document,
        }
        return _json(payload)

    def sse_parts(self, kind: str) -> tuple[bytes, bytes, bytes]:
        """The server-sent event `kind` carrying this snapshot, as (header, body, trailer) to
        send in order: the body is the cached :attr:`body`, shared by every stream rather than
        copied into an event for each."""
        return b"event: %s\nid: %d\ndata: " % (kind.encode(), self.version), self.body, b"\n\n"

    @cached_property
    def gzip_body(self) -> bytes:
        """:attr:`body`, gzip-compressed once (``mtime=0``: the same bytes on every replica)."""
        return _gzip(self.body)

    @cached_property
    def flagd_gzip_body(self) -> bytes:
        """:attr:`flagd_body`, gzip-compressed once (raises as it does)."""
        return _gzip(self.flagd_body)

    def built(self, name: str) -> bool:
        """Whether the cached property `name` was computed already: the event loop serves only
        what costs nothing more (:mod:`fader_server.api.sdk_fast_path`), and leaves the first
        encoding or compilation of a revision to a worker thread."""
        return name in self.__dict__

    @cached_property
    def engine(self) -> Engine:
        """The compiled document, for evaluation on the server (OFREP). Dates compare against
        the wall clock at evaluation time, like an SDK does."""
        return load(self.document, clock=time.time)

    @cached_property
    def flagd_body(self) -> bytes:
        """The flagd form (raises :class:`fader_engine.flagd.export.ExportError`)."""
        return _json(to_flagd(parse_document(self.document)))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)


class SnapshotService:
    def __init__(
        self,
        store: Store[SnapshotReads],
        *,
        fresh_for: float = FRESH_FOR,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.fresh_for = fresh_for
        self._monotonic = monotonic
        self._cache: OrderedDict[EnvironmentRef, Snapshot] = OrderedDict()
        self._confirmed: dict[EnvironmentRef, float] = {}
        self._renewing: dict[EnvironmentRef, float] = {}
        """The confirmation (its time) a renewal was started for: one renewal per confirmation,
        and none again after one failed (the confirmation then lapses)."""
        self._renewer = Renewer("snapshot")
        self._epoch = 0
        """Bumped by every invalidation: a read that began before one must not confirm what it
        read as current (it may predate the change)."""
        self._lock = threading.Lock()

    def invalidate(self, changes: Sequence[EnvironmentChange]) -> None:
        """Forget that these environments' cached snapshots are current (any thread)."""
        with self._lock:
            self._epoch += 1
            for change in changes:
                ref = EnvironmentRef(change.project_id, change.project_key, change.environment)
                self._confirmed.pop(ref, None)

    def close(self) -> None:
        """Stop renewing (the server is stopping; the store closes next)."""
        self._renewer.close()

    def invalidate_all(self) -> None:
        """After notifications may have been lost: confirm everything again on next use."""
        with self._lock:
            self._epoch += 1
            self._confirmed.clear()

    def current(self, ref: EnvironmentRef, *, at_least: int = 0) -> Snapshot | None:
        """The environment's snapshot at its current revision; None if it no longer exists.

        `at_least`: a revision known to exist (announced, or read by a revision check); a
        cached snapshot older than that is not served unchecked, however fresh it seems."""
        checked_at = self._monotonic()
        with self._lock:
            epoch = self._epoch
            cached = self._fresh(ref, checked_at, at_least)
            if cached is not None:
                return cached
        return self._read(ref, checked_at, epoch)

    def _renew(self, ref: EnvironmentRef) -> None:
        """(On the renewer's thread.) Confirm the cached snapshot again, or replace it."""
        checked_at = self._monotonic()
        with self._lock:
            epoch = self._epoch
        self._read(ref, checked_at, epoch)

    def _read(self, ref: EnvironmentRef, checked_at: float, epoch: int) -> Snapshot | None:
        """The revision check and, when it moved, the new snapshot: confirmed as of
        `checked_at` unless an invalidation came after `epoch`."""
        with self.store.read() as tx:
            revision = tx.revision(ref.project_id, ref.environment)
            with self._lock:
                cached = self._cache.get(ref)
                if cached is not None and cached.version == revision:
                    self._cache.move_to_end(ref)
                    if epoch == self._epoch:
                        self._confirmed[ref] = checked_at
                    return cached
            project = tx.get_project_by_id(ref.project_id)
            env = tx.get_resource(
                ref.project_id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, ref.environment
            )
            if project is None or env is None or env.deleted:
                return None
            snapshot = Snapshot(ref, revision, documents.build(tx, project, ref.environment))
        with self._lock:
            cached = self._cache.get(ref)
            if cached is None or cached.version < snapshot.version:
                self._cache[ref] = snapshot
                self._cache.move_to_end(ref)
                if epoch == self._epoch:
                    self._confirmed[ref] = checked_at
                while len(self._cache) > CACHE_SIZE:
                    evicted, _ = self._cache.popitem(last=False)
                    self._confirmed.pop(evicted, None)
                    self._renewing.pop(evicted, None)
        return snapshot

    def fresh(self, ref: EnvironmentRef) -> Snapshot | None:
        """The cached snapshot if it may be served unchecked now (what :meth:`current` would
        return without reading the database), else None. Never blocks on the database, so the
        event loop may call it; past half of `fresh_for` it starts a renewal in the background
        (once per confirmation)."""
        checked_at = self._monotonic()
        with self._lock:
            cached = self._fresh(ref, checked_at, 0)
            confirmed = self._confirmed.get(ref)
            if (
                cached is None
                or confirmed is None
                or checked_at - confirmed < self.fresh_for / 2
                or self._renewing.get(ref) == confirmed
            ):
                return cached
            self._renewing[ref] = confirmed
        self._renewer.submit(partial(self._renew, ref))
        return cached

    def _fresh(self, ref: EnvironmentRef, checked_at: float, at_least: int) -> Snapshot | None:
        """(Under the lock.)"""
        cached = self._cache.get(ref)
        confirmed = self._confirmed.get(ref)
        if (
            cached is not None
            and cached.version >= at_least
            and confirmed is not None
            and checked_at - confirmed < self.fresh_for
        ):
            return cached
        return None

    def revisions(self, refs: list[EnvironmentRef]) -> dict[EnvironmentRef, int]:
        with self.store.read() as tx:
            return {ref: tx.revision(ref.project_id, ref.environment) for ref in refs}
