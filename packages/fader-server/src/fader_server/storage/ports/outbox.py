"""Webhook subscriptions, the notification outbox and its delivery log.

A webhook subscribes to event types (:data:`EVENT_TYPES`). The outbox is written where the
audit log is: every audit entry of a project whose event type (:func:`event_of`) an enabled
webhook of that project subscribes to gets one pending delivery per such webhook, inserted by
``append_audit`` itself, in the transaction of the change. So a committed change always has its
deliveries and a rolled-back one never has any, whichever use case wrote it (change requests,
scheduled changes and incidents audit with their own entity types and are covered without
knowing about webhooks).

The delivery worker (:mod:`fader_server.runtime.webhook_delivery`) claims due deliveries
(:meth:`Outbox.claim_deliveries`: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's serialised
write transactions elsewhere), posts them outside any transaction, and records each attempt
(:meth:`Outbox.finish_delivery`). A claim moves the delivery's next attempt to the end of a
lease, so a replica that dies mid-post leaves it to be claimed again once the lease ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from fader_server.storage.ports.records import AuditEntry, Webhook

EVENT_TYPES = ("flag", "change_request", "schedule", "incident", "rollout")
"""What a webhook may subscribe to, in the order people read them."""

DEFAULT_EVENTS = ("rollout",)
"""What a webhook created without event types hears: what webhooks always heard."""

FLAG_ENTITIES = frozenset({"flag", "config", "segment", "environment"})

DeliveryStatus = Literal["pending", "delivered", "failed"]


def event_of(entity_type: str, action: str) -> str | None:
    """The event type an audit entry is announced as; None: never announced (members,
    tokens, webhooks themselves...). A change request's scheduling steps are ``schedule``
    events (any action naming a schedule: ``schedule``, ``reschedule``, ``unschedule``...), as
    are scheduled changes; incidents and their action items (``overdue`` included) are
    ``incident`` events."""
    if entity_type in FLAG_ENTITIES:
        return "flag"
    if entity_type == "scheduled_change":
        return "schedule"
    if entity_type == "change_request":
        return "schedule" if "schedule" in action else "change_request"
    if entity_type in ("incident", "action_item"):
        return "incident"
    if entity_type == "rollout":
        return "rollout"
    return None


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One POST: its HTTP status, or the fixed class of why none came back
    (:data:`~fader_server.services.outbound_policy.ErrorClass`), never the receiver's answer."""

    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    next_attempt_at: datetime | None
    """When the delivery is tried again (None: it is delivered or failed for good)."""


@dataclass(frozen=True, slots=True)
class OutboxDelivery:
    """One audit entry for one webhook, and how delivering it is going."""

    id: int
    project_id: int
    webhook_id: int
    audit_id: int
    event: str
    delivery_id: str
    """The ``X-Fader-Delivery`` header: the same across retries and redeliveries."""
    status: DeliveryStatus
    attempts: int
    """Attempts ever made (also the claim token: a claim increments it)."""
    round_start: int
    """`attempts` when the delivery was last queued: the retry limit counts from here."""
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    entity_type: str
    entity_key: str
    action: str
    log: tuple[DeliveryAttempt, ...] = ()
    """Its attempts, newest first (filled by :meth:`DeliveryLog.list_deliveries`)."""


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """What the worker needs to post one claimed delivery."""

    delivery: OutboxDelivery
    url: str
    secret: str = field(repr=False)
    project_key: str
    entry: AuditEntry

    @property
    def round_attempt(self) -> int:
        """This attempt's number since the delivery was (re)queued, from 1."""
        return self.delivery.attempts - self.delivery.round_start


class WebhookSubscriptions(Protocol):
    def get_webhook(self, project_id: int, webhook_id: int) -> Webhook | None: ...

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
        """None when the webhook does not exist in the project. Raises
        :class:`~fader_server.errors.AlreadyExistsError` for a URL already registered in the
        project."""
        ...


class DeliveryLog(Protocol):
    def list_deliveries(
        self, project_id: int, webhook_id: int, *, limit: int, before_id: int | None
    ) -> list[OutboxDelivery]:
        """Newest first, below `before_id` when given, each with its attempts."""
        ...

    def redeliver(
        self, project_id: int, webhook_id: int, delivery: int, at: datetime
    ) -> OutboxDelivery | None:
        """Queue `delivery` again, due at `at`, with a fresh retry budget and the same delivery
        id; None when it is not one of this webhook's."""
        ...


class Outbox(Protocol):
    def any_due(self, now: datetime) -> bool:
        """Whether a pending delivery is due at `now` (a read: the worker claims, in a write
        transaction, only then)."""
        ...

    def claim_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDelivery]:
        """Up to `limit` pending deliveries due at `now` (oldest due first) whose webhook is
        enabled, each now claimed: one more attempt, next attempt at `lease_until`. Rows
        another transaction is claiming are skipped (PostgreSQL ``SKIP LOCKED``)."""
        ...

    def finish_delivery(
        self, delivery: int, claim: int, attempt: DeliveryAttempt, status: DeliveryStatus
    ) -> bool:
        """Record `attempt` and the delivery's new status (pending again when
        ``attempt.next_attempt_at`` is set). False, recording nothing, when the delivery is
        gone or was claimed again since `claim` (its attempt count then)."""
        ...

    def prune_deliveries(self, before: datetime, keep_per_webhook: int, limit: int) -> int:
        """Delete at most `limit` finished deliveries (and their attempts) last updated before
        `before` or beyond the newest `keep_per_webhook` of their webhook; how many went."""
        ...
