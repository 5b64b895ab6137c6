"""The delivery side of one server process, wired once: snapshots, fan-out, keys, events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from fader_server.delivery import sdk_events
from fader_server.delivery.event_limits import DEFAULT_RATE, EventRateLimiter
from fader_server.delivery.hub import ChangeHub
from fader_server.delivery.keys import SdkCaller, SdkKeys
from fader_server.delivery.sdk_events import Recorded
from fader_server.delivery.snapshots import SnapshotService
from fader_server.errors import NotFoundError
from fader_server.services import Services
from fader_server.storage.ports import EnvironmentChange, SdkEvent, TokenKind

DEFAULT_HEARTBEAT = 15.0


@dataclass(frozen=True, slots=True)
class Delivery:
    services: Services
    snapshots: SnapshotService
    hub: ChangeHub
    keys: SdkKeys
    event_limits: EventRateLimiter = field(default_factory=EventRateLimiter)

    @classmethod
    def over(
        cls,
        services: Services,
        *,
        heartbeat: float = DEFAULT_HEARTBEAT,
        events_per_second: float = DEFAULT_RATE,
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

        def resync() -> None:
            snapshots.invalidate_all()
            keys.clear()
            hub.resync()

        services.store.subscribe(changed)
        services.store.subscribe_revocations(revoked)
        services.store.listen(changed, resync, revoked)
        return cls(services, snapshots, hub, keys, EventRateLimiter(events_per_second))

    def record_events(self, caller: SdkCaller, events: Sequence[SdkEvent]) -> Recorded:
        """Store a batch of SDK events in one transaction, each marked with the kind of key
        that reported it (the server's word, never the request's).

        A batch over the key's rate limit is refused whole (:mod:`.event_limits`); a client
        key's events about flags it may not evaluate are refused one by one and the rest is
        stored (:mod:`.sdk_events`)."""
        self.event_limits.take(caller.token_id, len(events))
        refused: list[sdk_events.Refusal] = []
        if caller.kind is TokenKind.CLIENT and any(e.flag is not None for e in events):
            snapshot = self.snapshots.current(caller.ref)
            if snapshot is None:
                raise NotFoundError(
                    f"environment '{caller.ref.environment}' of project "
                    f"'{caller.ref.project_key}' no longer exists"
                )
            refused = sdk_events.client_refusals(snapshot.document, events)
        skipped = {r.index for r in refused}
        kind = caller.kind.value
        kept = [replace(e, key_kind=kind) for i, e in enumerate(events) if i not in skipped]
        if kept:
            with self.services.store.transaction() as tx:
                tx.insert_sdk_events(
                    caller.ref.project_id,
                    caller.ref.environment,
                    kept,
                    self.services.identity.clock(),
                )
        return Recorded(len(kept), tuple(refused))
