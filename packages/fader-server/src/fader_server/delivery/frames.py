"""The bytes each kind of event stream receives for one change, built once for all streams.

When an environment moves from version 17 to 18, every stream of that environment needs an
event, but only three different ones exist: the whole snapshot (``event: change``), the patch
from 17 (``event: patch``, for SDKs that asked for patches and hold 17), or the OFREP
``refetchEvaluation`` notification. An :class:`Update` builds each at most once, and also its
HTTP/1.1 chunk (``<hex length>\\r\\n<event>\\r\\n``), which is what the fan-out writes straight
to the sockets of 10,000 streams (:mod:`fader_server.delivery.sinks`).
"""

from __future__ import annotations

import json
from enum import Enum

from fader_engine.patch import diff_documents, is_empty
from fader_server.delivery.ofrep import refetch_event
from fader_server.delivery.snapshots import Snapshot

HEARTBEAT = b": heartbeat\n\n"


class StreamKind(Enum):
    """What a stream wants to hear on a change."""

    SNAPSHOTS = "snapshots"
    """The SDK stream: the whole snapshot at every change (``event: change``)."""
    PATCHES = "patches"
    """The SDK stream with ``patches=true``: the changed entries when the stream holds the
    patch's base version, the whole snapshot otherwise."""
    OFREP = "ofrep"
    """The OFREP change stream: a notification to re-fetch, no configuration."""


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked HTTP/1.1 body (RFC 9112 §7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


HEARTBEAT_CHUNK = chunk(HEARTBEAT)
END_CHUNK = b"0\r\n\r\n"
"""The last chunk: the response is complete (the server ends the stream)."""


def patch_event(previous: Snapshot, snapshot: Snapshot) -> bytes | None:
    """The ``patch`` event from `previous` to `snapshot`, or None when it would not be smaller
    than the whole snapshot (then the stream gets a ``change`` event, which also works)."""
    patch = diff_documents(previous.document, snapshot.document)
    if is_empty(patch):
        return None  # the version moved without a visible difference: send it whole
    payload = {
        "project": snapshot.ref.project_key,
        "environment": snapshot.ref.environment,
        "base": previous.version,
        "version": snapshot.version,
        **patch,
    }
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) >= len(snapshot.body):
        return None
    return b"event: patch\nid: %d\ndata: %s\n\n" % (snapshot.version, data)


class Update:
    """One step of a topic: from version `base` (None: the first snapshot it saw) to
    `snapshot`. Thread-safe to build (the patch is computed off the event loop); the events and
    chunks are cached on first use, which is on the loop."""

    __slots__ = ("_chunks", "base", "patch", "snapshot")

    def __init__(self, snapshot: Snapshot, base: int | None, patch: bytes | None) -> None:
        self.snapshot = snapshot
        self.base = base
        self.patch = patch
        self._chunks: dict[tuple[StreamKind, bool], bytes] = {}

    @classmethod
    def between(cls, previous: Snapshot | None, snapshot: Snapshot) -> Update:
        """Build the update and everything costly about it (call it off the loop)."""
        snapshot.body  # noqa: B018 - serialise now, in this thread, not on the event loop
        if previous is None or previous.version >= snapshot.version:
            return cls(snapshot, None, None)
        return cls(snapshot, previous.version, patch_event(previous, snapshot))

    @property
    def version(self) -> int:
        return self.snapshot.version

    def event(self, kind: StreamKind, held: int) -> bytes:
        """The event for a stream of `kind` whose client holds version `held`."""
        if kind is StreamKind.OFREP:
            return refetch_event(self.snapshot)
        if kind is StreamKind.PATCHES and self.patch is not None and held == self.base:
            return self.patch
        return self.snapshot.sse_event("change")

    def chunk(self, kind: StreamKind, at_base: bool) -> bytes:
        """`event(kind, base if at_base else other)` as a cached HTTP/1.1 chunk."""
        key = (kind, at_base)
        found = self._chunks.get(key)
        if found is None:
            held = self.base if at_base and self.base is not None else -1
            found = self._chunks[key] = chunk(self.event(kind, held))
        return found
