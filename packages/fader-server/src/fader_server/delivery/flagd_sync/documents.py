"""Each snapshot's flagd document, as the bytes of a ``SyncFlagsResponse``, built once.

A change reaches every open sync stream of its environment with the same document. Serialising
it per stream would cost, for n streams of a document of d bytes, n encodings of d bytes on the
event loop; here the flagd export, its JSON text and the protobuf message are built once per
snapshot in a worker thread, and every stream writes the same bytes (the service's handler is
registered with an identity serialiser, :mod:`.service`). The export may fail (a construct
flagd cannot express): that failure is built once too, and every waiting stream gets it.

Event-loop only. Entries go with their snapshot (a weak key): a snapshot no topic or cache
holds any more takes its document with it.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass

from fader_server.delivery.flagd_sync import sync_pb2
from fader_server.delivery.snapshots import Snapshot


@dataclass(frozen=True, slots=True)
class FlagdDocument:
    """One snapshot's flagd document: its JSON text and the serialised stream message."""

    version: int
    text: str
    sync_message: bytes


def build(snapshot: Snapshot) -> FlagdDocument:
    """Export and serialise (in a worker thread: documents can be large); raises
    :class:`fader_engine.flagd.export.ExportError` when flagd cannot express the document.

    The document is ``GET /api/v1/sdk/flagd``'s with one addition: the flag-set metadata
    ``scope`` (``project/environment``) unless the environment's metadata sets one. The
    JavaScript provider puts its selector into every evaluation's flag metadata as ``scope``
    when the document has none, and here the selector is the key: applications log flag
    metadata, keys must not reach logs."""
    document = json.loads(snapshot.flagd_body)
    metadata = document.setdefault("metadata", {})
    metadata.setdefault("scope", f"{snapshot.ref.project_key}/{snapshot.ref.environment}")
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    message = sync_pb2.SyncFlagsResponse(flag_configuration=text).SerializeToString()
    return FlagdDocument(snapshot.version, text, message)


class FlagdDocuments:
    def __init__(self) -> None:
        self._builds: weakref.WeakKeyDictionary[Snapshot, asyncio.Task[FlagdDocument]] = (
            weakref.WeakKeyDictionary()
        )

    async def of(self, snapshot: Snapshot) -> FlagdDocument:
        """The document of `snapshot`: built by the first stream that needs it, awaited by the
        others. Shielded: a stream that goes away does not cancel the build the rest await."""
        task = self._builds.get(snapshot)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(build, snapshot))
            task.add_done_callback(_retrieve)
            self._builds[snapshot] = task
        return await asyncio.shield(task)


def _retrieve(task: asyncio.Task[FlagdDocument]) -> None:
    """Mark a failed build's exception as seen: when every stream awaiting it went away, no
    one else would, and asyncio would log it as never retrieved."""
    if not task.cancelled():
        task.exception()
