"""The bytes each kind of event stream receives for one change, built once for all streams.

When an environment moves from version 17 to 18, every stream of that environment needs an
event, but only three different ones exist: the whole snapshot (``event: change``), the patch
from 17 (``event: patch``, for SDKs that asked for patches and hold 17), or the OFREP
``refetchEvaluation`` notification. An :class:`Update` builds each once, and also its HTTP/1.1
chunk (``<hex length>\\r\\n<event>\\r\\n``), which is what the fan-out writes straight to the
sockets of 10,000 streams (:mod:`fader_server.delivery.sinks`). It builds them all when it is
made, in a worker thread (:meth:`Update.between`): the event loop only picks bytes.
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


def chunk(*parts: bytes) -> bytes:
    """The concatenated `parts` as one chunk of a chunked HTTP/1.1 body (RFC 9112 §7.1), in
    one copy."""
    size = sum(len(part) for part in parts)
    return b"".join((b"%x\r\n" % size, *parts, b"\r\n"))


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
    `snapshot`, with every event and chunk any stream may need, built when the update is
    (:meth:`between`, in a worker thread): nothing about it is serialised or framed later, on
    the event loop, where a document of megabytes would stall every stream of the process.

    The whole-snapshot event is kept as three parts (header, the snapshot's own body, trailer)
    so that streams relayed through ASGI send it without a copy, and only its chunk (for direct
    writes) is one buffer: an update holds one copy of the document besides the snapshot's."""

    __slots__ = ("_change", "_chunks", "_refetch", "base", "patch", "snapshot")

    def __init__(
        self,
        snapshot: Snapshot,
        base: int | None,
        patch: bytes | None,
        change: tuple[bytes, ...],
        refetch: bytes,
        chunks: dict[tuple[StreamKind, bool], bytes],
    ) -> None:
        self.snapshot = snapshot
        self.base = base
        self.patch = patch
        self._change = change
        self._refetch = refetch
        self._chunks = chunks

    @classmethod
    def between(cls, previous: Snapshot | None, snapshot: Snapshot) -> Update:
        """Build the update and every event of it (call it off the loop)."""
        if previous is None or previous.version >= snapshot.version:
            base, patch = None, None
        else:
            base, patch = previous.version, patch_event(previous, snapshot)
        change = snapshot.sse_parts("change")
        whole = chunk(*change)
        refetch = refetch_event(snapshot)
        notification = chunk(refetch)
        chunks = {
            (StreamKind.SNAPSHOTS, True): whole,
            (StreamKind.SNAPSHOTS, False): whole,
            (StreamKind.PATCHES, True): whole if patch is None else chunk(patch),
            (StreamKind.PATCHES, False): whole,
            (StreamKind.OFREP, True): notification,
            (StreamKind.OFREP, False): notification,
        }
        return cls(snapshot, base, patch, change, refetch, chunks)

    def rebased(self, base: int | None) -> Update:
        """The same step from another base, without its patch (valid only from its own base):
        the whole snapshot for every stream. Shares the built events (safe on the loop)."""
        chunks = dict(self._chunks)
        chunks[StreamKind.PATCHES, True] = chunks[StreamKind.PATCHES, False]
        return Update(self.snapshot, base, None, self._change, self._refetch, chunks)

    @property
    def version(self) -> int:
        return self.snapshot.version

    def event(self, kind: StreamKind, held: int) -> tuple[bytes, ...]:
        """The event for a stream of `kind` whose client holds version `held`, in parts to
        send in order (see the class doc)."""
        if kind is StreamKind.OFREP:
            return (self._refetch,)
        if kind is StreamKind.PATCHES and self.patch is not None and held == self.base:
            return (self.patch,)
        return self._change

    def chunk(self, kind: StreamKind, at_base: bool) -> bytes:
        """The event of a stream of `kind` holding the base version (`at_base`) or another one,
        as an HTTP/1.1 chunk."""
        return self._chunks[kind, at_base]
