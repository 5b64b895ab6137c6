"""Delivery's storage: environment snapshot revisions and SDK key checks, and the two read views
the delivery package (:mod:`fader_server.delivery`) takes of a transaction. What SDKs report
(summaries) is stored through :class:`~fader_server.storage.ports.usage.UsageRows`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from fader_server.storage.ports.accounts import TokenLookup
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.records import EnvironmentChange, Project
from fader_server.storage.ports.resources import ResourceReads


class RevisionReads(Protocol):
    def revision(self, project_id: int, environment: str) -> int:
        """The environment's snapshot revision (0 if nothing was ever written to it)."""
        ...


class Revisions(RevisionReads, Protocol):
    changes: list[EnvironmentChange]
    """What :meth:`bump_revisions` moved in this transaction so far, in order."""

    def bump_revisions(
        self, project: Project, environments: Sequence[str], at: datetime
    ) -> list[EnvironmentChange]:
        """Move each environment's snapshot to its next revision; the changes are published
        to :meth:`~fader_server.storage.ports.store.ChangeFeed.subscribe` listeners (and other
        replicas) once the transaction commits, never if it rolls back."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this transaction has committed (never if it rolls back),
        after the change listeners: for caches of what the transaction wrote, which must not
        learn of a state the database never reached."""
        ...


class KeyChecks(Protocol):
    def usable_keys(self, token_ids: Sequence[int], at: datetime) -> set[int]:
        """The ids among `token_ids` of server and client keys that may still be used at `at`:
        not revoked, not expired, their project and environment still there (one query, for
        the periodic re-check of the keys that open streams hold)."""
        ...


class SnapshotReads(RevisionReads, ProjectAccess, ResourceReads, Protocol):
    """What building an environment's snapshot reads (:mod:`fader_server.delivery.snapshots`)."""


class SdkKeyReads(KeyChecks, TokenLookup, ProjectAccess, Protocol):
    """What admitting an SDK key reads (:mod:`fader_server.delivery.keys`)."""
