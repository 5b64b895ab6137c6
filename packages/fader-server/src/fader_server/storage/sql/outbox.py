"""SQL for webhooks, their subscriptions, the notification outbox and the delivery log.

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction` implementing
:class:`~fader_server.storage.ports.rollouts.WebhookRows` and the Protocols of
:mod:`fader_server.storage.ports.outbox`. :meth:`OutboxQueries.queue_notifications` is called
by ``append_audit`` with the new entry's id, so the outbox rows commit or roll back with the
change they announce.

Claims: on PostgreSQL the due rows are selected ``FOR UPDATE SKIP LOCKED`` and moved to the end
of their lease in the same transaction, so two replicas claiming at once get disjoint rows and
neither waits for the other; SQLite's write transactions (``BEGIN IMMEDIATE``) run one at a
time, so the second claimer sees the first one's lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from fader_server.errors import AlreadyExistsError
from fader_server.storage.ports import AuditEntry, NewAuditEntry, Webhook
from fader_server.storage.ports.outbox import (
    ClaimedDelivery,
    DeliveryAttempt,
    DeliveryStatus,
    OutboxDelivery,
    event_of,
)
from fader_server.storage.sql.tables import (
    audit_log,
    projects,
    rollout_webhooks,
    webhook_attempts,
    webhook_deliveries,
    webhook_events,
)

DUPLICATE_URL = "this URL is already a webhook of the project"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _at(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _delivery(row: Any, log: tuple[DeliveryAttempt, ...] = ()) -> OutboxDelivery:
    return OutboxDelivery(
        id=row.id,
        project_id=row.project_id,
        webhook_id=row.webhook_id,
        audit_id=row.audit_id,
        event=row.event,
        delivery_id=row.delivery_id,
        status=row.status,
        attempts=row.attempts,
        round_start=row.round_start,
        next_attempt_at=_utc(row.next_attempt_at),
        created_at=_at(row.created_at),
        updated_at=_at(row.updated_at),
        entity_type=row.entity_type,
        entity_key=row.entity_key,
        action=row.action,
        log=log,
    )


def _attempt(row: Any) -> DeliveryAttempt:
    return DeliveryAttempt(
        at=_at(row.at),
        status_code=row.status_code,
        error=row.error,
        duration_ms=row.duration_ms,
        next_attempt_at=_utc(row.next_attempt_at),
    )


_DELIVERY_COLUMNS = (
    webhook_deliveries,
    audit_log.c.entity_type,
    audit_log.c.entity_key,
    audit_log.c.action,
)

_SUBSCRIBED_HOOKS = (
    sa.select(rollout_webhooks.c.id)
    .join(webhook_events, webhook_events.c.webhook_id == rollout_webhooks.c.id)
    .where(
        rollout_webhooks.c.project_id == sa.bindparam("project_id"),
        rollout_webhooks.c.enabled.is_(True),
        webhook_events.c.event == sa.bindparam("event"),
    )
    .order_by(rollout_webhooks.c.id)
)
"""The enabled webhooks of a project subscribed to an event: built once, since every audited
change reads it."""


class OutboxQueries:
    connection: sa.Connection

    # ---------------------------------------------------------------- webhooks
    def _webhooks(self, where: Any) -> list[Webhook]:
        rows = self.connection.execute(
            sa.select(rollout_webhooks).where(where).order_by(rollout_webhooks.c.id)
        ).all()
        events: dict[int, list[str]] = {}
        if rows:
            for hook, event in self.connection.execute(
                sa.select(webhook_events.c.webhook_id, webhook_events.c.event).where(
                    webhook_events.c.webhook_id.in_([r.id for r in rows])
                )
            ):
                events.setdefault(hook, []).append(event)
        return [
            Webhook(
                id=r.id,
                project_id=r.project_id,
                url=r.url,
                description=r.description,
                secret=r.secret,
                created_by=r.created_by,
                created_at=_at(r.created_at),
                events=tuple(sorted(events.get(r.id, []))),
                enabled=r.enabled,
            )
            for r in rows
        ]

    def _set_events(self, webhook_id: int, events: Sequence[str]) -> None:
        self.connection.execute(
            sa.delete(webhook_events).where(webhook_events.c.webhook_id == webhook_id)
        )
        if events:
            self.connection.execute(
                sa.insert(webhook_events),
                [{"webhook_id": webhook_id, "event": e} for e in sorted(set(events))],
            )

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
        try:
            with self.connection.begin_nested():
                webhook_id = self.connection.execute(
                    sa.insert(rollout_webhooks)
                    .values(
                        project_id=project_id,
                        url=url,
                        description=description,
                        secret=secret,
                        created_by=created_by,
                        created_at=at,
                        enabled=enabled,
                    )
                    .returning(rollout_webhooks.c.id)
                ).scalar_one()
        except sa.exc.IntegrityError:
            raise AlreadyExistsError(DUPLICATE_URL) from None
        self._set_events(webhook_id, events)
        (webhook,) = self._webhooks(rollout_webhooks.c.id == webhook_id)
        return webhook

    def list_webhooks(self, project_id: int) -> list[Webhook]:
        return self._webhooks(rollout_webhooks.c.project_id == project_id)

    def get_webhook(self, project_id: int, webhook_id: int) -> Webhook | None:
        found = self._webhooks(
            sa.and_(
                rollout_webhooks.c.project_id == project_id, rollout_webhooks.c.id == webhook_id
            )
        )
        return found[0] if found else None

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
        try:
            with self.connection.begin_nested():
                updated = self.connection.execute(
                    sa.update(rollout_webhooks)
                    .where(
                        rollout_webhooks.c.project_id == project_id,
                        rollout_webhooks.c.id == webhook_id,
                    )
                    .values(url=url, description=description, enabled=enabled)
                ).rowcount
        except sa.exc.IntegrityError:
            raise AlreadyExistsError(DUPLICATE_URL) from None
        if not updated:
            return None
        self._set_events(webhook_id, events)
        return self.get_webhook(project_id, webhook_id)

    def delete_webhook(self, project_id: int, webhook_id: int) -> bool:
        owned = sa.select(rollout_webhooks.c.id).where(
            rollout_webhooks.c.project_id == project_id, rollout_webhooks.c.id == webhook_id
        )
        if self.connection.execute(owned).first() is None:
            return False
        deliveries = sa.select(webhook_deliveries.c.id).where(
            webhook_deliveries.c.webhook_id == webhook_id
        )
        self.connection.execute(
            sa.delete(webhook_attempts).where(webhook_attempts.c.delivery.in_(deliveries))
        )
        self.connection.execute(
            sa.delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)
        )
        self.connection.execute(
            sa.delete(webhook_events).where(webhook_events.c.webhook_id == webhook_id)
        )
        self.connection.execute(
            sa.delete(rollout_webhooks).where(rollout_webhooks.c.id == webhook_id)
        )
        return True

    # ------------------------------------------------------------------ outbox
    def queue_notifications(self, audit_id: int, entry: NewAuditEntry, at: datetime) -> None:
        """One pending delivery per enabled webhook of the entry's project subscribed to its
        event type (called by ``append_audit``, in the change's transaction)."""
        event = event_of(entry.entity_type, entry.action)
        if event is None or entry.project_id is None:
            return
        hooks = self.connection.execute(
            _SUBSCRIBED_HOOKS, {"project_id": entry.project_id, "event": event}
        ).scalars()
        rows = [
            {
                "project_id": entry.project_id,
                "webhook_id": hook,
                "audit_id": audit_id,
                "event": event,
                "delivery_id": uuid.uuid4().hex,
                "status": "pending",
                "attempts": 0,
                "round_start": 0,
                "next_attempt_at": at,
                "created_at": at,
                "updated_at": at,
            }
            for hook in hooks
        ]
        if rows:
            self.connection.execute(sa.insert(webhook_deliveries), rows)

    def any_due(self, now: datetime) -> bool:
        return (
            self.connection.execute(
                sa.select(webhook_deliveries.c.id)
                .where(
                    webhook_deliveries.c.status == "pending",
                    webhook_deliveries.c.next_attempt_at <= now,
                )
                .limit(1)
            ).first()
            is not None
        )

    def claim_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDelivery]:
        due = self.connection.execute(
            sa.select(webhook_deliveries.c.id, webhook_deliveries.c.attempts)
            .join(rollout_webhooks, rollout_webhooks.c.id == webhook_deliveries.c.webhook_id)
            .where(
                webhook_deliveries.c.status == "pending",
                webhook_deliveries.c.next_attempt_at <= now,
                rollout_webhooks.c.enabled.is_(True),
            )
            .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
            .limit(limit)
            .with_for_update(of=webhook_deliveries, skip_locked=True)
        ).all()
        if not due:
            return []
        for row in due:
            self.connection.execute(
                sa.update(webhook_deliveries)
                .where(webhook_deliveries.c.id == row.id)
                .values(attempts=row.attempts + 1, next_attempt_at=lease_until, updated_at=now)
            )
        rows = self.connection.execute(
            sa.select(
                *_DELIVERY_COLUMNS,
                audit_log.c.at.label("audit_at"),
                audit_log.c.actor,
                audit_log.c.environment,
                audit_log.c.version,
                audit_log.c.diff,
                audit_log.c.comment,
                rollout_webhooks.c.url,
                rollout_webhooks.c.secret,
                projects.c.key.label("project_key"),
            )
            .join(audit_log, audit_log.c.id == webhook_deliveries.c.audit_id)
            .join(rollout_webhooks, rollout_webhooks.c.id == webhook_deliveries.c.webhook_id)
            .join(projects, projects.c.id == webhook_deliveries.c.project_id)
            .where(webhook_deliveries.c.id.in_([r.id for r in due]))
            .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
        ).all()
        return [
            ClaimedDelivery(
                delivery=_delivery(r),
                url=r.url,
                secret=r.secret,
                project_key=r.project_key,
                entry=AuditEntry(
                    id=r.audit_id,
                    project_id=r.project_id,
                    at=_at(r.audit_at),
                    actor=r.actor,
                    action=r.action,
                    entity_type=r.entity_type,
                    entity_key=r.entity_key,
                    environment=r.environment,
                    version=r.version,
                    diff=r.diff,
                    comment=r.comment,
                ),
            )
            for r in rows
        ]

    def finish_delivery(
        self, delivery: int, claim: int, attempt: DeliveryAttempt, status: DeliveryStatus
    ) -> bool:
        updated = self.connection.execute(
            sa.update(webhook_deliveries)
            .where(webhook_deliveries.c.id == delivery, webhook_deliveries.c.attempts == claim)
            .values(status=status, next_attempt_at=attempt.next_attempt_at, updated_at=attempt.at)
        ).rowcount
        if not updated:
            return False
        self.connection.execute(
            sa.insert(webhook_attempts).values(
                delivery=delivery,
                at=attempt.at,
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
                next_attempt_at=attempt.next_attempt_at,
            )
        )
        return True

    # ------------------------------------------------------------ delivery log
    def list_deliveries(
        self, project_id: int, webhook_id: int, *, limit: int, before_id: int | None
    ) -> list[OutboxDelivery]:
        query = (
            sa.select(*_DELIVERY_COLUMNS)
            .join(audit_log, audit_log.c.id == webhook_deliveries.c.audit_id)
            .where(
                webhook_deliveries.c.project_id == project_id,
                webhook_deliveries.c.webhook_id == webhook_id,
            )
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(webhook_deliveries.c.id < before_id)
        rows = self.connection.execute(query).all()
        logs: dict[int, list[DeliveryAttempt]] = {}
        if rows:
            for attempt in self.connection.execute(
                sa.select(webhook_attempts)
                .where(webhook_attempts.c.delivery.in_([r.id for r in rows]))
                .order_by(webhook_attempts.c.id.desc())
            ):
                logs.setdefault(attempt.delivery, []).append(_attempt(attempt))
        return [_delivery(r, tuple(logs.get(r.id, []))) for r in rows]

    def redeliver(
        self, project_id: int, webhook_id: int, delivery: int, at: datetime
    ) -> OutboxDelivery | None:
        updated = self.connection.execute(
            sa.update(webhook_deliveries)
            .where(
                webhook_deliveries.c.id == delivery,
                webhook_deliveries.c.project_id == project_id,
                webhook_deliveries.c.webhook_id == webhook_id,
            )
            .values(
                status="pending",
                round_start=webhook_deliveries.c.attempts,
                next_attempt_at=at,
                updated_at=at,
            )
        ).rowcount
        if not updated:
            return None
        row = self.connection.execute(
            sa.select(*_DELIVERY_COLUMNS)
            .join(audit_log, audit_log.c.id == webhook_deliveries.c.audit_id)
            .where(webhook_deliveries.c.id == delivery)
        ).one()
        return _delivery(row)

    def prune_deliveries(self, before: datetime, keep_per_webhook: int, limit: int) -> int:
        finished = webhook_deliveries.c.status.in_(("delivered", "failed"))
        newer = webhook_deliveries.alias("newer")
        rank = (
            sa.select(sa.func.count())
            .select_from(newer)
            .where(
                newer.c.webhook_id == webhook_deliveries.c.webhook_id,
                newer.c.id > webhook_deliveries.c.id,
            )
            .scalar_subquery()
        )
        doomed = [
            r.id
            for r in self.connection.execute(
                sa.select(webhook_deliveries.c.id)
                .where(
                    finished,
                    sa.or_(webhook_deliveries.c.updated_at < before, rank >= keep_per_webhook),
                )
                .order_by(webhook_deliveries.c.id)
                .limit(limit)
            )
        ]
        if not doomed:
            return 0
        self.connection.execute(
            sa.delete(webhook_attempts).where(webhook_attempts.c.delivery.in_(doomed))
        )
        self.connection.execute(
            sa.delete(webhook_deliveries).where(webhook_deliveries.c.id.in_(doomed))
        )
        return len(doomed)
