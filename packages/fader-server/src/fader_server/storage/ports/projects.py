"""Projects: finding one for a caller (every use case), and managing them (projects' own)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from fader_server.storage.ports.records import Project


class ProjectAccess(Protocol):
    """What every use case needs to act inside a project: find it, and (to write) lock it."""

    @property
    def writable(self) -> bool:
        """True in a read-write transaction, False in a read-only one: said by the store that
        opened it, so use cases never guess whether they may write (or must lock)."""
        ...

    def get_project(self, key: str) -> Project | None: ...
    def get_project_by_id(self, project_id: int) -> Project | None: ...

    def lock_project(self, project_id: int) -> None:
        """Wait until no other transaction holds this project's write lock, then hold it until
        this transaction ends (commit or rollback).

        Writes that validate one resource against others (a rule naming a segment, a
        prerequisite naming a flag) take it before their first validation read, so they run
        one after another per project and each sees everything the previous one committed
        (docs/adr/0005-project-write-lock.md). Waiting longer than the database's lock timeout
        raises :class:`~fader_server.errors.StorageUnavailableError` (retryable)."""
        ...


class ProjectRows(ProjectAccess, Protocol):
    """Listing, creating and renaming projects."""

    def list_projects(self, limit: int, after_key: str | None) -> list[Project]:
        """Projects ordered by key, after `after_key`."""
        ...

    def insert_project(self, key: str, name: str, at: datetime) -> Project:
        """Raises :class:`~fader_server.errors.AlreadyExistsError` if the key is taken."""
        ...

    def update_project(self, project_id: int, name: str) -> None: ...
