"""The delivery side of one server process, wired once: snapshots, fan-out, keys, and what SDKs
report (summaries, stored as rollups)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from fader_server.delivery import sdk_events
from fader_server.delivery.event_limits import (
    DEFAULT_CLIENT_RATE,
    DEFAULT_RATE,
    EventRateLimiter,
)
from fader_server.delivery.hub import ChangeHub
from fader_server.delivery.keys import SdkCaller, SdkKeys
from fader_server.delivery.sdk_events import LegacyEvent, Recorded, Refusal, Summary
from fader_server.delivery.snapshots import SnapshotService
from fader_server.delivery.summary_writer import (
    DEBUG_EVENTS_PER_FLAG,
    DEFAULT_WINDOW,
    SummaryWriter,
    Target,
)
from fader_server.errors import NotFoundError
from fader_server.services import Services
from fader_server.storage.ports import JSON, EnvironmentChange, TokenKind

DEFAULT_HEARTBEAT = 15.0


@dataclass(frozen=True, slots=True)
class Delivery:
    services: Services
    snapshots: SnapshotService
    hub: ChangeHub
    keys: SdkKeys
    event_limits: EventRateLimiter = field(default_factory=EventRateLimiter)
    """Server keys' limit on summary items."""
    client_event_limits: EventRateLimiter = field(
        default_factory=lambda: EventRateLimiter(DEFAULT_CLIENT_RATE)
    )
    """Client keys' own, lower limit: they are public."""
    writer: SummaryWriter | None = None
    """Writes summaries in batches (:mod:`.summary_writer`); None: each in its own
    transaction, from the calling thread."""

    @classmethod
    def over(
        cls,
        services: Services,
        *,
        heartbeat: float = DEFAULT_HEARTBEAT,
        events_per_second: float = DEFAULT_RATE,
        client_events_per_second: float = DEFAULT_CLIENT_RATE,
        summary_window: float = DEFAULT_WINDOW,
    ) -> Delivery:
        """Build it and connect the hub to the store's change and revocation feeds: this
        process's commits directly, other replicas' through the database (LISTEN/NOTIFY on
        PostgreSQL). A revoked key is forgotten before its streams end, so a client that
        reconnects at once is refused."""
        snapshots = SnapshotService(services.store)
        keys = SdkKeys(
            services.store, services.identity.clock, on_use=services.identity.token_use.used
        )
        hub = ChangeHub(snapshots, keys, heartbeat=heartbeat)

        def changed(changes: Sequence[EnvironmentChange]) -> None:
            snapshots.invalidate(changes)
            hub.publish(changes)

        def revoked(token_ids: Sequence[int]) -> None:
            keys.forget(token_ids)
            hub.revoke(token_ids)
            services.identity.forget_principals()  # admin and user tokens, revoked elsewhere

        def resync() -> None:
            snapshots.invalidate_all()
            keys.clear()
            services.identity.forget_principals()
            hub.resync()

        services.store.subscribe(changed)
        services.store.subscribe_revocations(revoked)
        services.store.listen(changed, resync, revoked)
        client_limits = EventRateLimiter(
            client_events_per_second, setting="FADER_CLIENT_EVENTS_PER_SECOND"
        )
        writer = SummaryWriter(services.store, services.identity.clock, window=summary_window)
        return cls(
            services,
            snapshots,
            hub,
            keys,
            EventRateLimiter(events_per_second),
            client_limits,
            writer,
        )

    def close(self) -> None:
        """Write the summaries still queued and stop renewing cached keys and snapshots
        (after the HTTP server stopped taking requests, before the store closes)."""
        if self.writer is not None:
            self.writer.close()
        self.keys.close()
        self.snapshots.close()

    def record_summary(
        self, caller: SdkCaller, summary: Summary, summary_id: str | None = None
    ) -> Recorded:
        """:meth:`submit_summary`, waiting for the commit."""
        return self.submit_summary(caller, summary, summary_id).result()

    def submit_summary(
        self, caller: SdkCaller, summary: Summary, summary_id: str | None = None
    ) -> Future[Recorded]:
        """Queue a summary for the writer, which stores it with the others of its window in
        one transaction (:mod:`.summary_writer`), marked with the kind of key that reported it
        (the server's word, never the request's) and counted in the minute of the server's
        receive time (docs/events.md); the future completes only once that is committed.

        A summary over the key's rate limit is refused whole (:mod:`.event_limits`: items
        count, not the evaluations they stand for); a client key's items about flags it may
        not evaluate are refused one by one and the rest is stored (:mod:`.sdk_events`).

        With a `summary_id`, a summary is counted once however often it is sent: an SDK that
        lost the answer sends it again unchanged, and the receipt the first delivery left in
        the same transaction makes the second one a no-op (``duplicate``)."""
        self._limits(caller).take(caller.token_id, summary.items)
        refused: list[Refusal] = []
        if caller.kind is TokenKind.CLIENT:
            refused = sdk_events.client_refusals(self._document(caller), summary)
        kept = sdk_events.without(summary, refused)
        if self.writer is None or not kept.items:
            done: Future[Recorded] = Future()
            done.set_result(self._store(caller, kept, refused, summary_id))
            return done
        target = Target(
            caller.ref.project_id, caller.ref.environment, caller.kind.value, caller.token_id
        )
        return self.writer.submit(target, kept, summary_id, refused)

    def record_events(self, caller: SdkCaller, events: Sequence[LegacyEvent]) -> Recorded:
        """The deprecated ``POST /api/v1/sdk/events``: the same limits and refusals per item,
        then the events folded into the rollups a summary adds to (:func:`.sdk_events.fold`)."""
        self._limits(caller).take(caller.token_id, len(events))
        refused: list[Refusal] = []
        if caller.kind is TokenKind.CLIENT and any(e.flag for e in events):
            flags = [e.flag for e in events]
            refused = sdk_events.refusals(self._document(caller), [(sdk_events.EVENTS, flags)])
        skipped = {r.index for r in refused}
        kept = [e for i, e in enumerate(events) if i not in skipped]
        recorded = self._store(caller, sdk_events.fold(kept), refused)
        return Recorded(len(kept), recorded.refused)

    def _limits(self, caller: SdkCaller) -> EventRateLimiter:
        return self.client_event_limits if caller.kind is TokenKind.CLIENT else self.event_limits

    def _document(self, caller: SdkCaller) -> JSON:
        snapshot = self.snapshots.current(caller.ref)
        if snapshot is None:
            raise NotFoundError(
                f"environment '{caller.ref.environment}' of project "
                f"'{caller.ref.project_key}' no longer exists"
            )
        return snapshot.document

    def _store(
        self,
        caller: SdkCaller,
        summary: Summary,
        refused: list[Refusal],
        summary_id: str | None = None,
    ) -> Recorded:
        if summary.items:
            project, environment = caller.ref.project_id, caller.ref.environment
            kind = caller.kind.value
            with self.services.store.transaction() as tx:
                at = self.services.identity.clock()
                if summary_id is not None and not tx.claim_summary(caller.token_id, summary_id, at):
                    return Recorded(0, (), duplicate=True)
                tx.add_usage(
                    project, environment, kind, [*summary.evaluations, *summary.metrics], at
                )
                tx.add_debug_events(
                    project, environment, kind, summary.events, at, DEBUG_EVENTS_PER_FLAG
                )
        return Recorded(summary.items, tuple(refused))
