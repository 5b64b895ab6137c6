"""Fan-out of snapshot changes to every stream connected to this process.

Writers commit in worker threads (and, with PostgreSQL, on other replicas); streams are asyncio
tasks. The hub is the bridge: :meth:`ChangeHub.publish` may be called from any thread, and hops
onto the event loop. Per environment with at least one connected stream there is one
:class:`Topic` holding the latest snapshot and the set of streams waiting for a newer one; a
change builds the snapshot and its events once (off the loop, :class:`~.frames.Update`), so
10,000 streams cost one database read and one serialisation, then 10,000 socket writes.

Each waiting stream has a future of its own, kept in an insertion-ordered dict (woken first
come, first served), and a timer for its heartbeat. Not one shared future awaited through
``wait_for(shield(...))``: there, every heartbeat timeout removed the stream's callback from the
shared future's callback *list*, a scan past every other stream, so n streams cost O(n²) per
heartbeat interval; with 10,000 streams that was most of the server's CPU (py-spy, under
``bench/delivery/propagation.py``) and changes waited seconds behind it.

Streams served by ``fader serve`` are *sinks* (:mod:`fader_server.delivery.sinks`): the topic
writes each change's pre-framed event straight to their connections, a slice of sinks per
event-loop turn (:class:`Topic`), and one process-wide timer writes their heartbeats the same
way. Streams under other ASGI servers wait on futures
and send through ASGI, one task each.

Missed notifications (a lost LISTEN connection) are repaired by :meth:`ChangeHub.resync`, which
re-reads the revision of every environment that has streams; it also runs every
`resync_interval` seconds as a safety net, so a stream is never stale for longer than that.

A stream reads its first snapshot before it subscribes (so that a missing environment is an
HTTP error, not a stream that never starts), and a change committed in between is announced
while this process may have no topic for the environment, which drops the announcement. So a
topic re-reads its environment's revision once it exists (:meth:`ChangeHub.subscribe`): every
change is then either announced to the topic or committed before that read, and the stream
gets it at once instead of at the next resync.

Streams also end when the key they were opened with stops working
(:mod:`~fader_server.delivery.stream_keys`): at once when a revocation is announced
(:meth:`ChangeHub.revoke`), and within `key_check_interval` seconds when the key expires or a
periodic re-check (:meth:`ChangeHub.check_keys`, one query over the distinct keys of open
streams) finds it revoked, expired or its environment gone, which covers lost announcements.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass

from fader_server.delivery import sinks
from fader_server.delivery.frames import HEARTBEAT_CHUNK, StreamKind, Update
from fader_server.delivery.keys import SdkKeys
from fader_server.delivery.sinks import Fanout, Sink
from fader_server.delivery.snapshots import EnvironmentRef, Snapshot, SnapshotService
from fader_server.delivery.stream_keys import Hold, KeyedStreams, StreamKey
from fader_server.storage.ports import EnvironmentChange

_log = logging.getLogger("fader.hub")
_MAX_CATCH_UP = 5
"""Rebuild attempts when the database answers an older revision than announced (replica lag
of the read, or a notification overtaking its commit); the periodic resync covers the rest."""
KEY_CHECK_INTERVAL = 2.0
"""Seconds between re-checks of the keys open streams hold: how late an expired key's streams
end, and a revoked key's when the announcement of its revocation was lost."""


class _Pass:
    """One write to every sink a topic had when it began (an update, or a heartbeat when
    `update` is None), taken a slice at a time: the sinks of one kind after the other."""

    __slots__ = ("data", "groups", "kind", "position", "update")

    def __init__(
        self, groups: dict[StreamKind, dict[Sink, None]], update: Update | None, data: bytes
    ) -> None:
        self.update = update
        self.data = data
        self.groups = [(kind, list(group)) for kind, group in groups.items() if group]
        self.kind = 0
        self.position = 0

    def take(self, count: int) -> tuple[StreamKind, list[Sink]] | None:
        """The next (at most) `count` sinks, all of one kind; None when none is left."""
        while self.kind < len(self.groups):
            kind, group = self.groups[self.kind]
            start = self.position
            if start < len(group):
                self.position = start + count
                return kind, group[start : start + count]
            self.kind, self.position = self.kind + 1, 0
        return None


class Topic:
    """One environment's latest :class:`Update`, the streams written to directly (sinks), and
    the streams waiting for a newer update (those served through plain ASGI sends).

    Sinks are written in passes (:class:`_Pass`), one slice of sinks per event-loop turn
    (:attr:`.sinks.Fanout.slice`, sized to hold the loop about two milliseconds), never the
    10,000 of a large topic in one go: the loop stays free for requests, new streams and other
    topics between slices. At most one pass runs per topic, which keeps each connection's bytes
    in order: a newer update replaces the pass under way (sinks it had not reached yet hold the
    older base, so they get the whole snapshot instead of the patch), and a heartbeat is skipped
    while a pass runs (the pass writes to every sink soon anyway)."""

    def __init__(
        self, ref: EnvironmentRef, loop: asyncio.AbstractEventLoop, fanout: Fanout
    ) -> None:
        self.ref = ref
        self._fanout = fanout
        self.update: Update | None = None
        self.gone = False
        self.subscribers = 0
        self.wanted = 0
        self.building = False
        self._loop = loop
        self._waiters: dict[asyncio.Future[bool], None] = {}
        self._sinks: dict[StreamKind, dict[Sink, None]] = {kind: {} for kind in StreamKind}
        self._pass: _Pass | None = None
        self._next: asyncio.Handle | None = None
        """The next slice's turn, while a pass is under way."""

    @property
    def direct(self) -> int:
        """Streams written to directly (sinks)."""
        return sum(len(group) for group in self._sinks.values())

    @property
    def latest(self) -> Snapshot | None:
        return None if self.update is None else self.update.snapshot

    async def newer_than(self, version: int, timeout: float | None) -> Update | None:
        """The latest update once its version exceeds `version`; None on timeout or when the
        environment was deleted (check :attr:`gone`)."""
        while not self.gone and (self.update is None or self.update.version <= version):
            waiter: asyncio.Future[bool] = self._loop.create_future()
            timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter)
            self._waiters[waiter] = None
            try:
                woken = await waiter  # True: woken by a change; False: the timer expired
            finally:
                self._waiters.pop(waiter, None)
                if timer is not None:
                    timer.cancel()
            if not woken:
                return None
        return None if self.gone else self.update

    def advance(self, update: Update) -> None:
        """Make `update` the latest if it is newer: start writing it to every sink (the first
        slice at once, the rest on the following loop turns), wake every waiter.

        A patch is only valid from the version it was computed against; if the topic moved
        meanwhile (a stream subscribed with a newer snapshot), the update goes out whole."""
        current = self.update
        if current is not None and update.version <= current.version:
            return
        if update.base != (None if current is None else current.version):
            update = update.rebased(None if current is None else current.version)
        self.update = update
        self._begin(_Pass(self._sinks, update, b""))
        self._wake()

    def attach(self, sink: Sink) -> None:
        """Write to `sink` from now on, starting with the latest update if it is newer than
        what its client holds (a change that landed while the first event was being sent)."""
        update = self.update
        if update is not None and update.version > sink.version:
            sink.transport.write(update.chunk(sink.kind, sink.version == update.base))
            sink.version = update.version
        self._sinks[sink.kind][sink] = None

    def detach(self, sink: Sink) -> None:
        self._sinks[sink.kind].pop(sink, None)

    def heartbeat(self) -> None:
        if self._pass is None:
            self._begin(_Pass(self._sinks, None, HEARTBEAT_CHUNK))

    @property
    def writing(self) -> bool:
        """A pass is under way (some sinks may not have the latest update yet)."""
        return self._pass is not None

    def _begin(self, started: _Pass) -> None:
        self._pass = started
        if self._next is None:  # else the slice already queued takes up the new pass
            self._step()

    def _step(self) -> None:
        """Write one slice of the pass under way, and queue the next one."""
        self._next = None
        current = self._pass
        if current is None or self.gone:
            return
        taken = current.take(self._fanout.slice)
        if taken is None:
            self._pass = None
            return
        kind, group = taken
        update = current.update
        try:
            if update is None:
                gone = self._fanout.write(group, current.data)
            else:
                at_base, other = update.chunk(kind, True), update.chunk(kind, False)
                gone = self._fanout.deliver(group, update.base, update.version, at_base, other)
        except Exception:  # a bug: drop this pass, so the next change or heartbeat starts anew
            self._pass = None
            _log.exception("writing to the streams of %s failed", self.ref)
            return
        self._forget(gone)
        self._next = self._loop.call_soon(self._step)

    def _forget(self, gone: list[Sink]) -> None:
        for sink in gone:
            self._sinks[sink.kind].pop(sink, None)

    def close(self) -> None:
        """The environment is gone: every stream ends."""
        self.gone = True
        self._pass = None
        if self._next is not None:
            self._next.cancel()
            self._next = None
        for group in self._sinks.values():
            sinks.end(group)
            group.clear()
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(True)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one stream holds while it is open: its environment's topic, and its key's hold
    (done when the key stopped working and the stream must end)."""

    topic: Topic
    hold: Hold


class ChangeHub:
    def __init__(
        self,
        snapshots: SnapshotService,
        keys: SdkKeys | None = None,
        *,
        heartbeat: float = 15.0,
        resync_interval: float = 30.0,
        key_check_interval: float = KEY_CHECK_INTERVAL,
    ) -> None:
        self.snapshots = snapshots
        self.keys = keys
        """Re-checks the keys of open streams; None: streams end only on announcements."""
        self.heartbeat = heartbeat
        self.resync_interval = resync_interval
        self.key_check_interval = key_check_interval
        self._topics: dict[EnvironmentRef, Topic] = {}
        self._held = KeyedStreams()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._periodic: asyncio.Task[None] | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._key_checks: asyncio.Task[None] | None = None
        self._fanout = Fanout()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def streams(self) -> int:
        return sum(t.subscribers for t in self._topics.values())

    @property
    def direct_streams(self) -> int:
        return sum(t.direct for t in self._topics.values())

    # ------------------------------------------------------------ any thread
    def publish(self, changes: Sequence[EnvironmentChange]) -> None:
        """Announce committed changes (called by the store's listeners, from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # no stream was ever opened in this process: nothing to push
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._announce_all, list(changes))

    def resync(self) -> None:
        """Re-read every streamed environment's revision and re-check every streaming key
        (from any thread; after notifications may have been lost)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._spawn, self._resync())
            loop.call_soon_threadsafe(self._spawn, self.check_keys())

    def revoke(self, token_ids: Collection[int]) -> None:
        """End every stream opened with these (revoked) tokens, from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # no stream was ever opened in this process: nothing to end
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._end, list(token_ids), "revoked")

    # ------------------------------------------------------------ event loop
    @contextlib.asynccontextmanager
    async def subscribe(
        self, ref: EnvironmentRef, version: int, key: StreamKey
    ) -> AsyncIterator[Subscription]:
        """Hold the topic of environment `ref` for the duration of one stream opened with
        `key`, whose client gets version `version` first.

        The caller reads that first snapshot itself before subscribing, so that a missing
        environment or an unreachable database becomes an HTTP error instead of a stream that
        never starts. A change committed between that read and this subscription may have been
        announced while no topic listened; a new topic therefore re-reads the revision (see the
        module docstring). A topic that has no update yet, or an older one than the stream's,
        builds one in a worker thread like any change (:meth:`_request`): the event loop never
        serialises a snapshot, not even an environment's first. Until then the stream has its
        first event and nothing older reaches it (:meth:`.sinks.Fanout.deliver` skips sinks that
        hold the version or a newer one; :meth:`Topic.newer_than` waits for a newer one).
        """
        self._bind()
        assert self._loop is not None
        topic = self._topics.get(ref)
        if topic is None:
            topic = self._topics[ref] = Topic(ref, self._loop, self._fanout)
            self._spawn(self._catch_up(topic))
        self._request(topic, version)
        topic.subscribers += 1
        hold = Hold(key, self._loop)
        self._held.add(hold)
        try:
            yield Subscription(topic, hold)
        finally:
            self._held.discard(hold)
            topic.subscribers -= 1
            if topic.subscribers == 0 and self._topics.get(ref) is topic:
                del self._topics[ref]

    async def check_keys(self) -> None:
        """End the streams whose key expired (no database needed), then those whose key the
        database says is revoked, expired or left without its environment."""
        keys = self.keys
        if keys is None:
            return
        self._end(self._held.expired(keys.clock()), "expired")
        held = self._held.token_ids()
        if not held:
            return
        try:
            usable = await asyncio.to_thread(keys.usable, held)
        except Exception as exc:  # the database is down: streams go on, checked next time
            _log.warning("could not re-check the keys of open streams (%s)", type(exc).__name__)
            return
        self._end([token_id for token_id in held if token_id not in usable], "unusable")

    async def aclose(self) -> None:
        for task in [*self._tasks, self._periodic, self._heartbeats, self._key_checks]:
            if task is not None:
                task.cancel()
        self._tasks.clear()
        self._periodic = self._heartbeats = self._key_checks = None
        self._fanout.close()

    def _bind(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._periodic is None and self.resync_interval > 0:
            self._periodic = self._loop.create_task(self._resync_periodically())
        if self._heartbeats is None and self.heartbeat > 0:
            self._heartbeats = self._loop.create_task(self._beat())
        if self._key_checks is None and self.key_check_interval > 0 and self.keys is not None:
            self._key_checks = self._loop.create_task(self._check_keys_periodically())

    def _end(self, token_ids: list[int], why: str) -> None:
        """End every stream opened with these tokens, and forget them as cached keys (a key
        found unusable here may still be cached as usable)."""
        if not token_ids:
            return
        if self.keys is not None:
            self.keys.forget(token_ids)
        ended = self._held.end(token_ids)
        if ended:
            _log.info("ended %d streams of keys %s: %s", ended, sorted(token_ids), why)

    def _spawn(self, coroutine: object) -> None:
        assert self._loop is not None
        task: asyncio.Task[None] = self._loop.create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _announce_all(self, changes: list[EnvironmentChange]) -> None:
        for change in changes:
            ref = EnvironmentRef(change.project_id, change.project_key, change.environment)
            topic = self._topics.get(ref)
            if topic is not None:
                self._request(topic, change.revision)

    def _request(self, topic: Topic, revision: int) -> None:
        if topic.latest is not None and revision <= topic.latest.version:
            return
        topic.wanted = max(topic.wanted, revision)
        if not topic.building:
            topic.building = True
            self._spawn(self._build(topic))

    async def _build(self, topic: Topic) -> None:
        """Single-flight: one build per topic at a time; changes announced meanwhile are
        picked up by the loop instead of starting a second build."""
        try:
            for _ in range(_MAX_CATCH_UP):
                update = await asyncio.to_thread(
                    self._prepare, topic.ref, topic.latest, topic.wanted
                )
                if update is None:
                    topic.close()
                    return
                topic.advance(update)
                if update.version >= topic.wanted:
                    return
                await asyncio.sleep(0.05)
        except Exception:
            _log.exception("could not build the snapshot of %s", topic.ref)
        finally:
            topic.building = False

    def _prepare(
        self, ref: EnvironmentRef, previous: Snapshot | None, wanted: int
    ) -> Update | None:
        """Read the current snapshot (at least revision `wanted`, if the database has it) and
        build its events (in a worker thread)."""
        snapshot = self.snapshots.current(ref, at_least=wanted)
        return None if snapshot is None else Update.between(previous, snapshot)

    async def _catch_up(self, topic: Topic) -> None:
        """A new topic's first revision check: a change committed after its first stream read
        its snapshot, and announced before the topic existed, is requested now."""
        try:
            revisions = await asyncio.to_thread(self.snapshots.revisions, [topic.ref])
        except Exception as exc:  # the database is down: the periodic resync covers it
            _log.warning("could not re-read the revision of %s (%s)", topic.ref, type(exc).__name__)
            return
        revision = revisions.get(topic.ref)
        if revision is not None and self._topics.get(topic.ref) is topic:
            self._request(topic, revision)

    async def _beat(self) -> None:
        """Heartbeats for every directly-written stream, all at once: one timer per process
        instead of one per stream."""
        while True:
            await asyncio.sleep(self.heartbeat)
            for topic in list(self._topics.values()):
                try:
                    topic.heartbeat()
                except Exception:  # one broken topic must not silence every other stream
                    _log.exception("heartbeat failed for %s", topic.ref)

    async def _resync(self) -> None:
        refs = list(self._topics)
        if not refs:
            return
        try:
            revisions = await asyncio.to_thread(self.snapshots.revisions, refs)
        except Exception:
            _log.exception("resync could not read revisions")
            return
        for ref, revision in revisions.items():
            topic = self._topics.get(ref)
            if topic is not None:
                self._request(topic, revision)

    async def _resync_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.resync_interval)
            await self._resync()

    async def _check_keys_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.key_check_interval)
            try:
                await self.check_keys()
            except Exception:  # a bug here must not stop the checks for good
                _log.exception("re-checking the keys of open streams failed")
