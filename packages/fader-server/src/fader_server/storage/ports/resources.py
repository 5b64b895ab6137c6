"""Versioned resources (environments, flags, flag configurations, segments) and their
immutable versions: what every versioned write and read goes through
(:mod:`fader_server.services.versioning`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from fader_server.storage.ports.records import JSON, Project, Resource, ResourceType, Version


class ResourceReads(Protocol):
    def get_resource(
        self, project_id: int, type: ResourceType, scope: str, key: str
    ) -> Resource | None:
        """The resource, deleted or not (callers decide what a tombstone means)."""
        ...

    def get_resources(
        self, project_id: int, wanted: Sequence[tuple[ResourceType, str, str]]
    ) -> list[Resource | None]:
        """The resources named ``(type, scope, key)``, in order, each deleted or not (None
        where there is none): one read where a use case needs several at once."""
        ...

    def get_project_resources(
        self, project_key: str, wanted: Sequence[tuple[ResourceType, str, str]]
    ) -> tuple[Project | None, list[Resource | None]]:
        """The project named `project_key` (None if there is none) and its resources named
        as for :meth:`get_resources`, in one read: for a read-only use case, which checks the
        caller's access to the project before it looks at the resources. (A write cannot use
        it: it locks the project between reading it and reading what it validates against.)"""
        ...

    def list_resources(
        self,
        project_id: int,
        type: ResourceType,
        scope: str,
        *,
        limit: int,
        after_key: str | None = None,
        query: str | None = None,
    ) -> list[Resource]:
        """Live resources ordered by key; `query` is full-text over their search text."""
        ...

    def get_version(self, resource_id: int, version: int) -> Version | None: ...

    def list_versions(self, resource_id: int, limit: int, before: int | None) -> list[Version]:
        """Newest first, below `before` when given."""
        ...


class ResourceRows(ResourceReads, Protocol):
    """Reads, and the writes of :mod:`fader_server.services.versioning`."""

    def insert_resource(
        self,
        project_id: int,
        type: ResourceType,
        scope: str,
        key: str,
        data: JSON,
        search_text: str,
        at: datetime,
    ) -> Resource | None:
        """Version 1 of a new resource; None when one with that identity exists already
        (deleted or not: a concurrent writer inserted it first), so the caller answers with a
        domain error."""
        ...

    def update_resource(
        self,
        resource: Resource,
        data: JSON,
        *,
        deleted: bool,
        search_text: str,
        at: datetime,
    ) -> Resource | None:
        """Compare-and-swap: write version `resource.version + 1` only if the stored version is
        still `resource.version`; return None when someone else won (no lost update)."""
        ...

    def insert_version(self, version: Version) -> None: ...
