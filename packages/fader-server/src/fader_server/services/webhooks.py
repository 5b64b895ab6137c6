"""Use cases for webhooks: subscriptions per project, their delivery log, and what the delivery
worker asks of storage.

Webhooks are a project admin's business: creating, changing, listing and deleting them, reading
their delivery log and redelivering all need the admin role (a Slack webhook URL is itself a
credential, and the log tells what the project did). A webhook's secret is generated here (or
given by the caller), stored as is because every delivery is signed with it, and returned only
in the answer to the creation.

Webhook URLs must reach a public address unless the operator allows more
(:class:`~fader_server.services.outbound_policy.OutboundPolicy`, ``FADER_OUTBOUND_ALLOW``):
checked here when saved, so the person who typed it hears why, and again at every delivery by
the guarded client, since DNS may change in between.

Notifications themselves are not written here: ``append_audit`` writes the outbox rows of
every audited change (:mod:`fader_server.storage.ports.outbox`). :class:`DeliveryQueue` is the
worker's side (:mod:`fader_server.runtime.webhook_delivery`): claim due deliveries, record each
attempt, prune the log.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from fader_server.errors import FieldProblem, InvalidInputError, NotFoundError
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy
from fader_server.services.rollouts import checks
from fader_server.services.versioning import Change, audit_entity
from fader_server.storage.ports import JSON, Webhook
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.outbox import (
    DEFAULT_EVENTS,
    EVENT_TYPES,
    ClaimedDelivery,
    DeliveryAttempt,
    DeliveryLog,
    DeliveryStatus,
    Outbox,
    OutboxDelivery,
    WebhookSubscriptions,
)
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.rollouts import WebhookRows
from fader_server.storage.ports.store import Store

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that tells secrets apart, not a secret
MAX_DESCRIPTION = 200


class WebhookTx(ProjectAccess, WebhookRows, WebhookSubscriptions, DeliveryLog, AuditLog, Protocol):
    """What the webhook use cases touch."""


class DeliveryQueueTx(Outbox, Protocol):
    """What the delivery worker touches."""


@dataclass(frozen=True, slots=True)
class WebhookChange:
    """The fields of an update; None keeps the stored value."""

    url: str | None = None
    description: str | None = None
    enabled: bool | None = None
    events: Sequence[str] | None = None


def check_events(events: Sequence[str], path: str = "/body/events") -> tuple[str, ...]:
    """`events` as stored: known event types, at least one, no repeats."""
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown or not events:
        raise InvalidInputError(
            "a webhook subscribes to at least one event type",
            [FieldProblem(path, "choose from " + ", ".join(EVENT_TYPES))],
        )
    return tuple(e for e in EVENT_TYPES if e in events)


def _diff(webhook: Webhook) -> list[JSON]:
    # The audit log names the webhook's subscriptions, never its URL (a Slack URL is a
    # credential) nor its secret.
    return [{"path": "/", "after": {"events": list(webhook.events), "enabled": webhook.enabled}}]


class WebhookService:
    def __init__(
        self,
        store: Store[WebhookTx],
        clock: Clock,
        outbound: OutboundPolicy = DENY_INTERNAL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.outbound = outbound

    def _check_admin(self, principal: Principal, project_key: str) -> None:
        """The role first: a URL check must tell nothing to someone who may not add webhooks
        (the host is then resolved outside the write transaction)."""
        with self.store.read() as tx:
            load_project(tx, principal, project_key, Role.ADMIN)

    def create(
        self,
        principal: Principal,
        project_key: str,
        url: str,
        description: str = "",
        secret: str | None = None,
        events: Sequence[str] = DEFAULT_EVENTS,
        enabled: bool = True,
    ) -> Webhook:
        """Register `url`; the returned webhook carries its secret (the only time it does)."""
        change = Change(principal, self.clock, None)
        self._check_admin(principal, project_key)
        chosen = check_events(events)
        checks.check_webhook_url(url, self.outbound)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            webhook = tx.insert_webhook(
                project.id,
                url,
                description,
                secret or SECRET_PREFIX + secrets.token_urlsafe(32),
                principal.actor,
                self.clock(),
                events=chosen,
                enabled=enabled,
            )
            audit_entity(tx, project, change, "create", "webhook", str(webhook.id), _diff(webhook))
            return webhook

    def update(
        self, principal: Principal, project_key: str, webhook_id: int, update: WebhookChange
    ) -> Webhook:
        change = Change(principal, self.clock, None)
        self._check_admin(principal, project_key)
        events = None if update.events is None else check_events(update.events)
        if update.url is not None:
            checks.check_webhook_url(update.url, self.outbound)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            found = tx.get_webhook(project.id, webhook_id)
            if found is None:
                raise NotFoundError(f"webhook {webhook_id} does not exist in '{project_key}'")
            written = tx.update_webhook(
                project.id,
                webhook_id,
                url=found.url if update.url is None else update.url,
                description=found.description if update.description is None else update.description,
                enabled=found.enabled if update.enabled is None else update.enabled,
                events=found.events if events is None else events,
            )
            assert written is not None  # the write transaction holds the project's lock
            audit_entity(tx, project, change, "update", "webhook", str(webhook_id), _diff(written))
            return written

    def list_webhooks(self, principal: Principal, project_key: str) -> list[Webhook]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            return tx.list_webhooks(project.id)

    def get(self, principal: Principal, project_key: str, webhook_id: int) -> Webhook:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            found = tx.get_webhook(project.id, webhook_id)
        if found is None:
            raise NotFoundError(f"webhook {webhook_id} does not exist in '{project_key}'")
        return found

    def delete(self, principal: Principal, project_key: str, webhook_id: int) -> None:
        """Its pending deliveries and its delivery log go with it."""
        change = Change(principal, self.clock, None)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            if not tx.delete_webhook(project.id, webhook_id):
                raise NotFoundError(f"webhook {webhook_id} does not exist in '{project_key}'")
            audit_entity(tx, project, change, "delete", "webhook", str(webhook_id), [])

    def deliveries(
        self,
        principal: Principal,
        project_key: str,
        webhook_id: int,
        *,
        limit: int,
        before_id: int | None = None,
    ) -> list[OutboxDelivery]:
        """The delivery log, newest first, each delivery with its attempts."""
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            if tx.get_webhook(project.id, webhook_id) is None:
                raise NotFoundError(f"webhook {webhook_id} does not exist in '{project_key}'")
            return tx.list_deliveries(project.id, webhook_id, limit=limit, before_id=before_id)

    def redeliver(
        self, principal: Principal, project_key: str, webhook_id: int, delivery: int
    ) -> OutboxDelivery:
        """Queue a delivery again now, with a fresh retry budget and its delivery id (a
        receiver that already processed it may drop it; one that failed gets another go)."""
        change = Change(principal, self.clock, None)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            queued = tx.redeliver(project.id, webhook_id, delivery, self.clock())
            if queued is None:
                raise NotFoundError(
                    f"delivery {delivery} of webhook {webhook_id} does not exist in '{project_key}'"
                )
            audit_entity(
                tx,
                project,
                change,
                "redeliver",
                "webhook",
                str(webhook_id),
                [{"path": "/delivery", "after": queued.delivery_id}],
            )
            return queued


class DeliveryQueue:
    """The delivery worker's use cases: no principal, the server acts for the project."""

    def __init__(self, store: Store[DeliveryQueueTx]) -> None:
        self.store = store

    def claim(self, now: datetime, lease: timedelta, limit: int) -> list[ClaimedDelivery]:
        """Due deliveries, claimed for `lease` (nothing, without a write transaction, when
        none is due)."""
        with self.store.read() as tx:
            if not tx.any_due(now):
                return []
        with self.store.transaction() as tx:
            return tx.claim_deliveries(now, now + lease, limit)

    def finish(
        self, claimed: ClaimedDelivery, attempt: DeliveryAttempt, status: DeliveryStatus
    ) -> bool:
        """Record an attempt; False when the claim was lost (its lease ended and another
        worker claimed the delivery again, or the webhook was deleted)."""
        with self.store.transaction() as tx:
            return tx.finish_delivery(
                claimed.delivery.id, claimed.delivery.attempts, attempt, status
            )

    def prune(self, before: datetime, keep_per_webhook: int, limit: int) -> int:
        with self.store.transaction() as tx:
            return tx.prune_deliveries(before, keep_per_webhook, limit)
