"""Webhooks: subscriptions per project to event types, and their delivery log.

Every route needs the project's admin role (a webhook URL can be a credential, and its log
tells what the project did); anyone else gets the same 404 as for a missing project. The
signing secret is in the answer to the creation only. See ``docs/notifications.md``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from fader_server.api import pagination, problems
from fader_server.api.pagination import Cursor, Limit
from fader_server.api.schemas import MAX_INTEGER
from fader_server.api.security import Caller, Svc
from fader_server.api.webhook_schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryPage,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookPatch,
)
from fader_server.services.webhooks import WebhookChange
from fader_server.storage.ports import Webhook
from fader_server.storage.ports.outbox import OutboxDelivery

router = APIRouter(
    prefix="/api/v1/projects/{project}/webhooks",
    tags=["webhooks"],
    responses=problems.API_ERRORS,
)

WebhookId = Annotated[int, Path(ge=1, le=MAX_INTEGER, description="webhook id")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_INTEGER, description="delivery id")]


def webhook_out(webhook: Webhook) -> WebhookOut:
    return WebhookOut(
        id=webhook.id,
        url=webhook.url,
        description=webhook.description,
        events=list(webhook.events),
        enabled=webhook.enabled,
        created_by=webhook.created_by,
        created_at=webhook.created_at,
    )


def delivery_out(delivery: OutboxDelivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        entity_type=delivery.entity_type,
        entity_key=delivery.entity_key,
        action=delivery.action,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        log=[
            AttemptOut(
                at=a.at,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
                next_attempt_at=a.next_attempt_at,
            )
            for a in delivery.log
        ],
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_webhook(project: str, body: WebhookIn, svc: Svc, caller: Caller) -> WebhookCreated:
    """Subscribe a URL to event types; the answer carries the signing secret, once."""
    webhook = svc.webhooks.create(
        caller,
        project,
        body.url,
        body.description,
        body.secret,
        events=body.events,
        enabled=body.enabled,
    )
    return WebhookCreated(**webhook_out(webhook).model_dump(), secret=webhook.secret)


@router.get("")
def list_webhooks(project: str, svc: Svc, caller: Caller) -> WebhookList:
    return WebhookList(items=[webhook_out(w) for w in svc.webhooks.list_webhooks(caller, project)])


@router.get("/{webhook}")
def get_webhook(project: str, webhook: WebhookId, svc: Svc, caller: Caller) -> WebhookOut:
    return webhook_out(svc.webhooks.get(caller, project, webhook))


@router.patch("/{webhook}")
def update_webhook(
    project: str, webhook: WebhookId, body: WebhookPatch, svc: Svc, caller: Caller
) -> WebhookOut:
    """Change the URL, the description, the event types or whether it is enabled (a disabled
    webhook keeps its pending deliveries until it is enabled again)."""
    change = WebhookChange(
        url=body.url, description=body.description, enabled=body.enabled, events=body.events
    )
    return webhook_out(svc.webhooks.update(caller, project, webhook, change))


@router.delete("/{webhook}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(project: str, webhook: WebhookId, svc: Svc, caller: Caller) -> None:
    """Its pending deliveries and its delivery log go with it."""
    svc.webhooks.delete(caller, project, webhook)


@router.get("/{webhook}/deliveries")
def list_deliveries(
    project: str,
    webhook: WebhookId,
    svc: Svc,
    caller: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    """The delivery log, newest first: every delivery with its attempts."""
    found = svc.webhooks.deliveries(
        caller, project, webhook, limit=limit, before_id=pagination.decode_int(cursor)
    )
    return DeliveryPage(
        items=[delivery_out(d) for d in found],
        next_cursor=pagination.next_cursor([str(d.id) for d in found], limit),
    )


@router.post("/{webhook}/deliveries/{delivery}/redeliver", status_code=status.HTTP_202_ACCEPTED)
def redeliver(
    project: str, webhook: WebhookId, delivery: DeliveryId, svc: Svc, caller: Caller
) -> DeliveryOut:
    """Queue the delivery again now (same delivery id, a fresh retry budget)."""
    return delivery_out(svc.webhooks.redeliver(caller, project, webhook, delivery))
