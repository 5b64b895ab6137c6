"""SQL queries for change requests (a mixin of
:class:`~fader_server.storage.sql.repository.SqlTransaction`).

:meth:`ChangeRequestQueries.update_change_request` is a compare-and-swap on the row's version:
two reviewers, or two replicas applying the same scheduled request, each compute the next
state from what they read, and only the first write lands; the second gets None and re-reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from fader_server.storage.ports.change_requests import ChangeRequest, NewChangeRequest
from fader_server.storage.sql.tables import change_requests


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _request(row: Any) -> ChangeRequest:
    return ChangeRequest(
        id=row.id,
        project_id=row.project_id,
        title=row.title,
        proposal=row.proposal,
        author=row.author,
        author_user_id=row.author_user_id,
        status=row.status,
        operations=row.operations,
        reviews=row.reviews,
        contexts=row.contexts,
        apply_at=None if row.apply_at is None else _utc(row.apply_at),
        failure=row.failure,
        applied_by=row.applied_by,
        version=row.version,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


class ChangeRequestQueries:
    connection: sa.Connection

    def insert_change_request(self, request: NewChangeRequest, at: datetime) -> ChangeRequest:
        row = self.connection.execute(
            sa.insert(change_requests)
            .values(
                project_id=request.project_id,
                title=request.title,
                proposal=request.proposal,
                author=request.author,
                author_user_id=request.author_user_id,
                status=request.status,
                operations=request.operations,
                reviews=[],
                contexts=request.contexts,
                apply_at=request.apply_at,
                version=1,
                created_at=at,
                updated_at=at,
            )
            .returning(change_requests)
        ).one()
        return _request(row)

    def get_change_request(self, project_id: int, request_id: int) -> ChangeRequest | None:
        row = self.connection.execute(
            sa.select(change_requests).where(
                change_requests.c.project_id == project_id, change_requests.c.id == request_id
            )
        ).first()
        return None if row is None else _request(row)

    def list_change_requests(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        statuses: Sequence[str] | None = None,
        scheduled: bool = False,
    ) -> list[ChangeRequest]:
        query = (
            sa.select(change_requests)
            .where(change_requests.c.project_id == project_id)
            .order_by(change_requests.c.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(change_requests.c.id < before_id)
        if statuses is not None:
            query = query.where(change_requests.c.status.in_(list(statuses)))
        if scheduled:
            query = query.where(change_requests.c.apply_at.is_not(None))
        return [_request(r) for r in self.connection.execute(query)]

    def update_change_request(self, request: ChangeRequest, at: datetime) -> ChangeRequest | None:
        row = self.connection.execute(
            sa.update(change_requests)
            .where(
                change_requests.c.id == request.id,
                change_requests.c.project_id == request.project_id,
                change_requests.c.version == request.version,
            )
            .values(
                title=request.title,
                proposal=request.proposal,
                status=request.status,
                operations=request.operations,
                reviews=request.reviews,
                contexts=request.contexts,
                apply_at=request.apply_at,
                failure=request.failure,
                applied_by=request.applied_by,
                version=request.version + 1,
                updated_at=at,
            )
            .returning(change_requests)
        ).first()
        return None if row is None else _request(row)

    def due_change_requests(self, now: datetime, limit: int) -> list[ChangeRequest]:
        rows = self.connection.execute(
            sa.select(change_requests)
            .where(
                change_requests.c.status == "approved",
                change_requests.c.apply_at.is_not(None),
                change_requests.c.apply_at <= now,
            )
            .order_by(change_requests.c.apply_at, change_requests.c.id)
            .limit(limit)
        )
        return [_request(r) for r in rows]
