"""One environment's flags at one version, compiled: what the client evaluates against.

A :class:`FlagSet` is immutable. It is built whole from the delivery protocol's snapshot JSON
(docs/delivery-protocol.md), or from an older flag set and a stream `patch` event, and the
engine validates and compiles its document before anything can evaluate it; a source then swaps
it in (:class:`~fader_sdk.holder.FlagSetHolder`). The server's own word for the JSON it
sends is "snapshot"; a flag set is what the SDK makes of one.

A patch is validated and compiled by what it changed (:mod:`fader_engine.incremental`): a flag
set keeps its :class:`~fader_engine.incremental.LoadedDocument`, so that the next one reuses
the compiled flags a patch left alone instead of compiling the whole environment again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeGuard

from fader_engine import Engine
from fader_engine.incremental import LoadedDocument
from fader_engine.patch import apply_patch


class Origin(StrEnum):
    """Where a flag set came from; decides readiness and whether to persist it."""

    SERVER = "server"
    CACHE = "cache"
    FILE = "file"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class FlagSet:
    """One environment's configuration at one version, compiled and ready to evaluate."""

    version: int
    engine: Engine
    document: Mapping[str, Any]
    origin: Origin
    project: str | None = None
    environment: str | None = None
    loaded: LoadedDocument | None = field(default=None, repr=False, compare=False)
    """`document` as loaded, for :meth:`patched` to build on; ``None`` for a flag set built
    around a ready engine (test data), whose patches are then loaded whole."""

    @classmethod
    def from_wire(cls, payload: Mapping[str, Any], origin: Origin) -> FlagSet:
        """Build from the delivery protocol's snapshot JSON (docs/delivery-protocol.md).

        Raises `ValueError`, or the engine's `ConfigurationError`, when the payload is not a
        valid snapshot; callers log it and keep serving the flag set they have.
        """
        version = payload.get("version")
        document = payload.get("document")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("snapshot has no integer 'version'")
        if not isinstance(document, Mapping):
            raise ValueError("snapshot has no 'document' object")
        project, environment = payload.get("project"), payload.get("environment")
        loaded = LoadedDocument.load(document)
        return cls(
            version=version,
            engine=loaded.engine,
            document=document,
            origin=origin,
            project=project if isinstance(project, str) else None,
            environment=environment if isinstance(environment, str) else None,
            loaded=loaded,
        )

    def patched(self, payload: Mapping[str, Any]) -> FlagSet:
        """The flag set a stream `patch` event describes, built on this one.

        Why: with ``?patches=true`` the server sends only the entries that changed between
        `base` and `version` (docs/delivery-protocol.md), a few hundred bytes instead of the
        whole document. The patch only means something on top of the exact document it was
        computed from, so `base` must be this flag set's version; the result is validated like
        any flag set, so a patch that yields an invalid document is rejected here rather than
        half-served. Only what the patch changed is validated and compiled: the flags it left
        alone keep their compiled functions (:mod:`fader_engine.incremental`), and evaluate
        exactly as a flag set loaded whole would. This flag set is left untouched (other
        threads evaluate it).

        Raises `ValueError` (:class:`~fader_engine.errors.PatchError` is one), or the engine's
        `ConfigurationError`, when the payload is malformed, applies to another version or
        yields an invalid document; callers keep this flag set and fetch a whole one instead.
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
        if self.loaded is not None:
            loaded = self.loaded.patched(payload)
        else:
            loaded = LoadedDocument.load(apply_patch(self.document, payload))
        return FlagSet(
            version=version,
            engine=loaded.engine,
            document=loaded.data,
            origin=self.origin,
            project=self.project,
            environment=self.environment,
            loaded=loaded,
        )

    def to_wire(self) -> dict[str, Any]:
        """The delivery protocol's snapshot JSON again, as the cache file stores it."""
        return {
            "project": self.project,
            "environment": self.environment,
            "version": self.version,
            "document": dict(self.document),
        }


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
