"""Change requests in memory (the SQL counterpart is
:mod:`fader_server.storage.sql.change_requests`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from fader_server.storage.memory.state import TransactionState, fresh
from fader_server.storage.ports.change_requests import ChangeRequest, NewChangeRequest


class ChangeRequestQueries(TransactionState):
    def insert_change_request(self, request: NewChangeRequest, at: datetime) -> ChangeRequest:
        tables = self.write()
        request_id = tables.next_id("change_requests")
        stored = ChangeRequest(
            id=request_id,
            project_id=request.project_id,
            title=request.title,
            proposal=fresh(request.proposal),
            author=request.author,
            author_user_id=request.author_user_id,
            status=request.status,
            operations=fresh(request.operations),
            reviews=[],
            contexts=fresh(request.contexts),
            apply_at=request.apply_at,
            failure=None,
            applied_by=None,
            version=1,
            created_at=at,
            updated_at=at,
        )
        tables.change_requests[request_id] = stored
        return fresh(stored)

    def get_change_request(self, project_id: int, request_id: int) -> ChangeRequest | None:
        found = self.tables.change_requests.get(request_id)
        if found is None or found.project_id != project_id:
            return None
        return fresh(found)

    def list_change_requests(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        statuses: Sequence[str] | None = None,
        scheduled: bool = False,
    ) -> list[ChangeRequest]:
        found = [
            r
            for r in self.tables.change_requests.values()
            if r.project_id == project_id
            and (before_id is None or r.id < before_id)
            and (statuses is None or r.status in statuses)
            and (not scheduled or r.apply_at is not None)
        ]
        found.sort(key=lambda r: r.id, reverse=True)
        return [fresh(r) for r in found[:limit]]

    def update_change_request(self, request: ChangeRequest, at: datetime) -> ChangeRequest | None:
        tables = self.write()
        stored = tables.change_requests.get(request.id)
        if (
            stored is None
            or stored.project_id != request.project_id
            or stored.version != request.version
        ):
            return None
        written = replace(
            fresh(request),
            author=stored.author,
            author_user_id=stored.author_user_id,
            created_at=stored.created_at,
            version=stored.version + 1,
            updated_at=at,
        )
        tables.change_requests[request.id] = written
        return fresh(written)

    def due_change_requests(self, now: datetime, limit: int) -> list[ChangeRequest]:
        found = [
            r
            for r in self.tables.change_requests.values()
            if r.status == "approved" and r.apply_at is not None and r.apply_at <= now
        ]
        found.sort(key=lambda r: (r.apply_at or now, r.id))
        return [fresh(r) for r in found[:limit]]
