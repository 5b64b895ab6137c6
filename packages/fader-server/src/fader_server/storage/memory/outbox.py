"""Webhooks, their subscriptions, the notification outbox and the delivery log, in memory (the
SQL counterpart is :mod:`fader_server.storage.sql.outbox`). Write transactions run one at a
time, so a claim never meets another one (as on SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from fader_server.errors import AlreadyExistsError
from fader_server.storage.memory.state import TransactionState, fresh
from fader_server.storage.memory.tables import OutboxRow, Tables
from fader_server.storage.ports import NewAuditEntry, Webhook
from fader_server.storage.ports.outbox import (
    ClaimedDelivery,
    DeliveryAttempt,
    DeliveryStatus,
    OutboxDelivery,
    event_of,
)

DUPLICATE_URL = "this URL is already a webhook of the project"


def queue_notifications(tables: Tables, audit_id: int, entry: NewAuditEntry, at: datetime) -> None:
    """One pending delivery per enabled webhook of the entry's project subscribed to its event
    type (called by ``append_audit``, in the change's transaction)."""
    event = event_of(entry.entity_type, entry.action)
    if event is None or entry.project_id is None:
        return
    for hook in sorted(tables.webhooks.values(), key=lambda w: w.id):
        if hook.project_id != entry.project_id or not hook.enabled or event not in hook.events:
            continue
        row_id = tables.next_id("outbox")
        tables.outbox[row_id] = OutboxRow(
            OutboxDelivery(
                id=row_id,
                project_id=entry.project_id,
                webhook_id=hook.id,
                audit_id=audit_id,
                event=event,
                delivery_id=uuid.uuid4().hex,
                status="pending",
                attempts=0,
                round_start=0,
                next_attempt_at=at,
                created_at=at,
                updated_at=at,
                entity_type=entry.entity_type,
                entity_key=entry.entity_key,
                action=entry.action,
            )
        )


class OutboxQueries(TransactionState):
    # ---------------------------------------------------------------- webhooks
    def insert_webhook(
        self,
        project_id: int,
        url: str,
        description: str,
        secret: str,
        created_by: str,
        at: datetime,
        *,
        events: Sequence[str] = ("rollout",),
        enabled: bool = True,
    ) -> Webhook:
        tables = self.write()
        if any(w.project_id == project_id and w.url == url for w in tables.webhooks.values()):
            raise AlreadyExistsError(DUPLICATE_URL)
        webhook_id = tables.next_id("webhooks")
        webhook = Webhook(
            webhook_id,
            project_id,
            url,
            description,
            secret,
            created_by,
            at,
            events=tuple(sorted(set(events))),
            enabled=enabled,
        )
        tables.webhooks[webhook_id] = webhook
        return webhook

    def list_webhooks(self, project_id: int) -> list[Webhook]:
        found = [w for w in self.tables.webhooks.values() if w.project_id == project_id]
        return sorted(found, key=lambda w: w.id)

    def get_webhook(self, project_id: int, webhook_id: int) -> Webhook | None:
        found = self.tables.webhooks.get(webhook_id)
        return found if found is not None and found.project_id == project_id else None

    def update_webhook(
        self,
        project_id: int,
        webhook_id: int,
        *,
        url: str,
        description: str,
        enabled: bool,
        events: Sequence[str],
    ) -> Webhook | None:
        tables = self.write()
        found = self.get_webhook(project_id, webhook_id)
        if found is None:
            return None
        if any(
            w.project_id == project_id and w.url == url and w.id != webhook_id
            for w in tables.webhooks.values()
        ):
            raise AlreadyExistsError(DUPLICATE_URL)
        updated = replace(
            found,
            url=url,
            description=description,
            enabled=enabled,
            events=tuple(sorted(set(events))),
        )
        tables.webhooks[webhook_id] = updated
        return updated

    def delete_webhook(self, project_id: int, webhook_id: int) -> bool:
        tables = self.write()
        if self.get_webhook(project_id, webhook_id) is None:
            return False
        del tables.webhooks[webhook_id]
        for key in [k for k, r in tables.outbox.items() if r.delivery.webhook_id == webhook_id]:
            del tables.outbox[key]
        return True

    # ------------------------------------------------------------------ outbox
    def any_due(self, now: datetime) -> bool:
        return any(
            r.delivery.status == "pending"
            and r.delivery.next_attempt_at is not None
            and r.delivery.next_attempt_at <= now
            for r in self.tables.outbox.values()
        )

    def claim_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDelivery]:
        tables = self.write()
        due = sorted(
            (
                r.delivery
                for r in tables.outbox.values()
                if r.delivery.status == "pending"
                and r.delivery.next_attempt_at is not None
                and r.delivery.next_attempt_at <= now
                and tables.webhooks[r.delivery.webhook_id].enabled
            ),
            key=lambda d: (d.next_attempt_at or now, d.id),
        )[:limit]
        claimed = []
        for delivery in due:
            moved = replace(
                delivery,
                attempts=delivery.attempts + 1,
                next_attempt_at=lease_until,
                updated_at=now,
            )
            tables.outbox[delivery.id].delivery = moved
            hook = tables.webhooks[delivery.webhook_id]
            claimed.append(
                ClaimedDelivery(
                    delivery=moved,
                    url=hook.url,
                    secret=hook.secret,
                    project_key=tables.projects[delivery.project_id].key,
                    entry=fresh(tables.audit[delivery.audit_id]),
                )
            )
        return claimed

    def finish_delivery(
        self, delivery: int, claim: int, attempt: DeliveryAttempt, status: DeliveryStatus
    ) -> bool:
        tables = self.write()
        row = tables.outbox.get(delivery)
        if row is None or row.delivery.attempts != claim:
            return False
        row.delivery = replace(
            row.delivery,
            status=status,
            next_attempt_at=attempt.next_attempt_at,
            updated_at=attempt.at,
        )
        row.attempts.append(attempt)
        return True

    # ------------------------------------------------------------ delivery log
    def list_deliveries(
        self, project_id: int, webhook_id: int, *, limit: int, before_id: int | None
    ) -> list[OutboxDelivery]:
        found = [
            replace(r.delivery, log=tuple(reversed(r.attempts)))
            for r in self.tables.outbox.values()
            if r.delivery.project_id == project_id
            and r.delivery.webhook_id == webhook_id
            and (before_id is None or r.delivery.id < before_id)
        ]
        return sorted(found, key=lambda d: -d.id)[:limit]

    def redeliver(
        self, project_id: int, webhook_id: int, delivery: int, at: datetime
    ) -> OutboxDelivery | None:
        tables = self.write()
        row = tables.outbox.get(delivery)
        if row is None or (row.delivery.project_id, row.delivery.webhook_id) != (
            project_id,
            webhook_id,
        ):
            return None
        row.delivery = replace(
            row.delivery,
            status="pending",
            round_start=row.delivery.attempts,
            next_attempt_at=at,
            updated_at=at,
        )
        return row.delivery

    def prune_deliveries(self, before: datetime, keep_per_webhook: int, limit: int) -> int:
        tables = self.write()
        newest: dict[int, list[int]] = {}
        for key in sorted(tables.outbox, reverse=True):
            newest.setdefault(tables.outbox[key].delivery.webhook_id, []).append(key)
        doomed = []
        for key in sorted(tables.outbox):
            delivery = tables.outbox[key].delivery
            if delivery.status == "pending":
                continue
            rank = newest[delivery.webhook_id].index(key)
            if delivery.updated_at < before or rank >= keep_per_webhook:
                doomed.append(key)
        for key in doomed[:limit]:
            del tables.outbox[key]
        return len(doomed[:limit])
