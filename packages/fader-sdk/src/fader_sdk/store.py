"""The configuration the client evaluates against, swapped whole.

Why a single reference: evaluations run on application threads with no lock; a source thread
builds a complete new :class:`Snapshot` (document validated and compiled by the engine) and
replaces the reference in one assignment, so a reader sees the old configuration or the new
one, never half of each. Writers serialise on a lock only to keep version checks and listener
order consistent.

The store knows nothing of HTTP, files or threads beyond that lock: sources put snapshots in,
the client reads them out, listeners (the cache file, the OpenFeature provider) hear of changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

import fader_engine
from fader_engine import Engine
from fader_engine.patch import apply_patch

log = logging.getLogger("fader_sdk")


class Origin(StrEnum):
    """Where a snapshot came from; decides readiness and whether to persist it."""

    SERVER = "server"
    CACHE = "cache"
    FILE = "file"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One environment's configuration at one version, compiled and ready to evaluate."""

    version: int
    engine: Engine
    document: Mapping[str, Any]
    origin: Origin
    project: str | None = None
    environment: str | None = None

    @classmethod
    def from_wire(cls, payload: Mapping[str, Any], origin: Origin) -> Snapshot:
        """Build from the delivery protocol's snapshot JSON (docs/delivery-protocol.md).

        Raises `ValueError`, or the engine's `ConfigurationError`, when the payload is not a
        valid snapshot; callers log it and keep serving the snapshot they have.
        """
        version = payload.get("version")
        document = payload.get("document")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("snapshot has no integer 'version'")
        if not isinstance(document, Mapping):
            raise ValueError("snapshot has no 'document' object")
        project, environment = payload.get("project"), payload.get("environment")
        return cls(
            version=version,
            engine=fader_engine.load(document),
            document=document,
            origin=origin,
            project=project if isinstance(project, str) else None,
            environment=environment if isinstance(environment, str) else None,
        )

    def patched(self, payload: Mapping[str, Any]) -> Snapshot:
        """The snapshot a stream `patch` event describes, built on this one.

        Why: with ``?patches=true`` the server sends only the entries that changed between
        `base` and `version` (docs/delivery-protocol.md), a few hundred bytes instead of the
        whole document. The patch only means something on top of the exact document it was
        computed from, so `base` must be this snapshot's version; the result is compiled by the
        engine like any snapshot, so a patch that yields an invalid document is rejected here
        rather than half-served. This snapshot is left untouched (other threads evaluate it).

        Raises `ValueError` (:class:`~fader_engine.patch.PatchError` is one), or the engine's
        `ConfigurationError`, when the payload is malformed, applies to another version or
        yields an invalid document; callers keep this snapshot and fetch a whole one instead.
        """
        base, version = payload.get("base"), payload.get("version")
        if not _is_int(base) or not _is_int(version):
            raise ValueError("patch has no integer 'base' and 'version'")
        if base != self.version:
            raise ValueError(f"patch applies to version {base}, not {self.version}")
        if version == base:
            raise ValueError(f"patch leads from version {base} to itself")
        for name, ours in (("project", self.project), ("environment", self.environment)):
            theirs = payload.get(name)
            if ours is not None and theirs is not None and theirs != ours:
                raise ValueError(f"patch is for {name} {theirs!r}, not {ours!r}")
        document = apply_patch(self.document, payload)
        return Snapshot(
            version=version,
            engine=fader_engine.load(document),
            document=document,
            origin=self.origin,
            project=self.project,
            environment=self.environment,
        )

    def to_wire(self) -> dict[str, Any]:
        """The snapshot JSON again, as the cache file stores it."""
        return {
            "project": self.project,
            "environment": self.environment,
            "version": self.version,
            "document": dict(self.document),
        }


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


Listener = Callable[[Snapshot | None, Snapshot], None]


class Store:
    """Holds the current :class:`Snapshot` and tells listeners when it changes."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._fresh = threading.Event()
        self._settled = threading.Event()
        self._fatal: str | None = None

    @property
    def snapshot(self) -> Snapshot | None:
        """The current configuration; `None` until one is known. A plain read: no lock."""
        return self._snapshot

    @property
    def fatal_error(self) -> str | None:
        """Why delivery stopped for good (e.g. a rejected SDK key), if it did."""
        return self._fatal

    def add_listener(self, listener: Listener) -> None:
        """Called (old, new) on the writer's thread after each swap; must not block long."""
        with self._lock:
            self._listeners.append(listener)

    def replace(self, snapshot: Snapshot) -> bool:
        """Swap `snapshot` in unless it is what we already have; returns whether it was.

        The server is authoritative: any server version different from ours replaces it, even
        a lower one (a restored database). A cache or file snapshot never replaces a server one.
        """
        with self._lock:
            old = self._snapshot
            if old is not None:
                if snapshot.origin is Origin.CACHE and old.origin is not Origin.CACHE:
                    return False
                if snapshot.origin is old.origin and snapshot.version == old.version:
                    if snapshot.origin is Origin.SERVER:
                        self._mark_fresh()
                    return False
            self._snapshot = snapshot
            if snapshot.origin is not Origin.CACHE:
                self._mark_fresh()
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(old, snapshot)
            except Exception:
                log.exception("fader: a configuration listener failed")
        return True

    def confirm(self) -> None:
        """The server says our snapshot is current (304, resumed stream): we are fresh."""
        if self._snapshot is not None:
            self._mark_fresh()

    def fail(self, message: str) -> None:
        """Delivery has stopped for good; waiters give up instead of waiting out a timeout."""
        self._fatal = message
        self._settled.set()

    def wait_fresh(self, timeout: float | None) -> bool:
        """Wait until the server delivered (or confirmed) a configuration, or delivery failed."""
        self._settled.wait(timeout)
        return self._fresh.is_set()

    @property
    def is_fresh(self) -> bool:
        return self._fresh.is_set()

    def _mark_fresh(self) -> None:
        self._fresh.set()
        self._settled.set()
