"""Which key each open stream was opened with, so a key that stops working ends its streams.

A key is checked when a stream opens; the stream then lives for hours. Without this registry a
revoked key's streams kept receiving every change until their client went away. Each stream
holds a :class:`Hold` for as long as it is open; :class:`KeyedStreams` finds every hold of a
token at once when the token is revoked (the announcement of the revocation, in-process or from
another replica), has expired (the stream remembers the expiry it was opened with, so this needs
no database), or is found unusable by the hub's periodic re-check of the keys its streams hold
(:meth:`fader_server.delivery.hub.ChangeHub.check_keys`).

Ending is synchronous and happens on the event loop: a stream written to directly (a sink) is
closed there and then, so no further change reaches it; a stream relayed through ASGI is woken
through :attr:`Hold.ended` and ends its response itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class StreamKey:
    """The credential a stream was opened with: the key's id and when it expires (None:
    never)."""

    token_id: int
    expires_at: datetime | None


class Hold:
    """One open stream, as far as its key is concerned. Event-loop only."""

    __slots__ = ("_on_end", "ended", "key")

    def __init__(self, key: StreamKey, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.ended: asyncio.Future[None] = loop.create_future()
        """Done once the key stopped working: the stream must end."""
        self._on_end: Callable[[], None] | None = None

    def on_end(self, callback: Callable[[], None] | None) -> None:
        """Run `callback` when the stream is ended (at once if it already was): how a stream
        written to directly is closed without waiting for its task to wake up."""
        self._on_end = callback
        if callback is not None and self.ended.done():
            callback()

    def end(self) -> None:
        if self.ended.done():
            return
        self.ended.set_result(None)
        if self._on_end is not None:
            self._on_end()


class KeyedStreams:
    """The holds of this process's open streams, by token id. Event-loop only."""

    def __init__(self) -> None:
        self._by_token: dict[int, dict[Hold, None]] = {}

    def add(self, hold: Hold) -> None:
        self._by_token.setdefault(hold.key.token_id, {})[hold] = None

    def discard(self, hold: Hold) -> None:
        holds = self._by_token.get(hold.key.token_id)
        if holds is None:
            return
        holds.pop(hold, None)
        if not holds:
            del self._by_token[hold.key.token_id]

    def token_ids(self) -> list[int]:
        """The distinct keys that open streams hold."""
        return list(self._by_token)

    def expired(self, now: datetime) -> list[int]:
        """Keys whose expiry has passed (a key's holds all share its expiry)."""
        found = []
        for token_id, holds in self._by_token.items():
            expires_at = next(iter(holds)).key.expires_at
            if expires_at is not None and expires_at <= now:
                found.append(token_id)
        return found

    def end(self, token_ids: Iterable[int]) -> int:
        """End every stream held by these keys; how many there were."""
        ended = 0
        for token_id in token_ids:
            holds = self._by_token.pop(token_id, None)
            for hold in holds or ():
                hold.end()
                ended += 1
        return ended
