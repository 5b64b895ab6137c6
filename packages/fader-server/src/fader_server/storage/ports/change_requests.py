"""Change requests' storage: one row per request, holding its proposal, its operations (each
with the base version it was made against), its reviews and its schedule.

A request is written as a whole and compare-and-swap on its `version`, like a release plan: a
review, an update of its operations and its application each read the row, decide, and write
the next version only if nobody wrote in between. Reviews live in the row (bounded by the use
case) because they are read with it every time and never on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

JSON = dict[str, Any]

OPEN_STATUSES = ("open", "approved", "needs_update")
"""Statuses of a request that may still be applied (after an update, for `needs_update`)."""


@dataclass(frozen=True, slots=True)
class NewChangeRequest:
    project_id: int
    title: str
    proposal: JSON
    author: str
    author_user_id: int | None
    status: str
    operations: list[JSON]
    contexts: list[JSON] = field(default_factory=list)
    apply_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """A stored change request. `reviews`: comments, approvals and rejections in order, each
    ``{"id", "kind", "actor", "user_id", "role", "body", "at"}``. `failure`: why the last
    attempt to apply it did not (a base that moved), for `needs_update` and `apply_failed`."""

    id: int
    project_id: int
    title: str
    proposal: JSON
    author: str
    author_user_id: int | None
    status: str
    operations: list[JSON]
    reviews: list[JSON]
    contexts: list[JSON]
    apply_at: datetime | None
    failure: str | None
    applied_by: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class ChangeRequestRows(Protocol):
    def insert_change_request(self, request: NewChangeRequest, at: datetime) -> ChangeRequest:
        """Store a new request at version 1."""
        ...

    def get_change_request(self, project_id: int, request_id: int) -> ChangeRequest | None: ...

    def list_change_requests(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        statuses: Sequence[str] | None = None,
        scheduled: bool = False,
    ) -> list[ChangeRequest]:
        """Newest first, below `before_id` when given; `statuses` keeps those only;
        `scheduled` keeps those with an `apply_at`."""
        ...

    def update_change_request(self, request: ChangeRequest, at: datetime) -> ChangeRequest | None:
        """Write `request`'s fields as the next version, compare-and-swap on `request.version`
        (the version read); None when someone else wrote first."""
        ...

    def due_change_requests(self, now: datetime, limit: int) -> list[ChangeRequest]:
        """Approved requests of any project whose `apply_at` is at or before `now`, the
        earliest first: what the scheduled-changes runner applies."""
        ...
