"""The delivery side of one server process, wired once: snapshots, fan-out, keys, events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fader_server.delivery.hub import ChangeHub
from fader_server.delivery.keys import SdkCaller, SdkKeys
from fader_server.delivery.snapshots import SnapshotService
from fader_server.services import Services
from fader_server.storage.ports import EnvironmentChange, SdkEvent

DEFAULT_HEARTBEAT = 15.0


@dataclass(frozen=True, slots=True)
class Delivery:
    services: Services
    snapshots: SnapshotService
    hub: ChangeHub
    keys: SdkKeys

    @classmethod
    def over(cls, services: Services, *, heartbeat: float = DEFAULT_HEARTBEAT) -> Delivery:
        """Build it and connect the hub to the store's change feeds: this process's commits
        directly, other replicas' through the database (LISTEN/NOTIFY on PostgreSQL)."""
        snapshots = SnapshotService(services.store)
        hub = ChangeHub(snapshots, heartbeat=heartbeat)

        def changed(changes: Sequence[EnvironmentChange]) -> None:
            snapshots.invalidate(changes)
            hub.publish(changes)

        def resync() -> None:
            snapshots.invalidate_all()
            hub.resync()

        services.store.subscribe(changed)
        services.store.listen(changed, resync)
        keys = SdkKeys(services.store, services.identity.clock)
        return cls(services, snapshots, hub, keys)

    def record_events(self, caller: SdkCaller, events: Sequence[SdkEvent]) -> None:
        """Store a batch of SDK events in one transaction (all or nothing)."""
        with self.services.store.transaction() as tx:
            tx.insert_sdk_events(
                caller.ref.project_id,
                caller.ref.environment,
                events,
                self.services.identity.clock(),
            )
