"""The audit log: appended to by every write, read by history pages and incident timelines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from fader_server.storage.ports.records import AuditEntry, NewAuditEntry


class AuditLog(Protocol):
    def append_audit(self, entry: NewAuditEntry, at: datetime) -> None: ...

    def list_audit(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        entity_types: Sequence[str] | None = None,
        entity_key: str | None = None,
    ) -> list[AuditEntry]:
        """Newest first, below `before_id` when given."""
        ...
