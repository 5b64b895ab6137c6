"""Pydantic models of the webhook API: subscriptions and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from fader_server.api.schemas import Page, Strict

Url = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Description = Annotated[str, StringConstraints(max_length=200)]
EventType = Literal["flag", "change_request", "schedule", "incident", "rollout"]
Events = Annotated[list[EventType], Field(min_length=1, max_length=5)]


def _rollout_only() -> list[EventType]:
    return ["rollout"]


class WebhookIn(Strict):
    url: Url
    description: Description = ""
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] | None = Field(
        default=None, description="the signing secret; omit to have one generated"
    )
    events: Events = Field(
        default_factory=_rollout_only,
        description="event types to hear about; without it, rollout decisions only",
    )
    enabled: bool = True


class WebhookPatch(Strict):
    """Only the fields given change."""

    url: Url | None = None
    description: Description | None = None
    events: Events | None = None
    enabled: bool | None = None


class WebhookOut(Strict):
    id: int
    url: str
    description: str
    events: list[str]
    enabled: bool
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="signs every delivery; shown only in this response")


class WebhookList(Strict):
    items: list[WebhookOut]


class AttemptOut(Strict):
    at: datetime
    status_code: int | None = Field(description="the receiver's HTTP status, if it answered")
    error: str | None = Field(
        description="why no answer came: timeout, refused, blocked, tls, invalid_response"
    )
    duration_ms: float
    next_attempt_at: datetime | None


class DeliveryOut(Strict):
    id: int
    delivery_id: str = Field(description="the X-Fader-Delivery header, stable across retries")
    event: str
    entity_type: str
    entity_key: str
    action: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    log: list[AttemptOut] = Field(description="attempts, newest first")


class DeliveryPage(Page):
    items: list[DeliveryOut]
