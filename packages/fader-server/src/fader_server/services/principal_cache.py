"""Who an admin or user token is, remembered for a few seconds.

Why: every admin API request names its caller with a bearer token, and looking it up (and the
user's roles) is a transaction of its own: on PostgreSQL a pooled connection, a round trip per
statement and a commit, a third of the CPU of a request that reads one flag. Peer servers keep
their API tokens in memory; this cache keeps the answer for :data:`TTL_SECONDS`, keyed by the
token's hash (never the token).

What it must not do is keep honouring a token after it stopped being good:

* **expiry** is checked on every use against the cached expiry time, as the lookup does;
* **this process's commits** that revoke a token, change a password or a membership drop the
  whole cache once they commit (the store's account listeners, fed by the repositories'
  mutators), and a lookup that raced such a commit is not stored (:attr:`generation`);
* **other processes** (replicas, ``fader users`` on the command line): a revocation announced
  to this process drops the cache at once (the same notification that ends SDK streams);
  anything else is seen within :data:`TTL_SECONDS`, the bound SDK keys have had all along.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fader_server.services.access import Principal
from fader_server.storage.ports import Token

TTL_SECONDS = 5.0
"""How long a token's lookup is reused; also the bound on a role change made on another
replica reaching this one."""
CAPACITY = 10_000
"""Tokens remembered (least recently used out first): far more than callers active at once."""


class PrincipalCache:
    """Token hash → (token record, principal), for :data:`TTL_SECONDS`."""

    def __init__(
        self,
        ttl: float = TTL_SECONDS,
        capacity: int = CAPACITY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Token, Principal]] = OrderedDict()
        self.generation = 0
        """Moves on every :meth:`clear`: a lookup read under an older generation is stale."""

    def get(self, token_hash: str) -> tuple[Token, Principal] | None:
        with self._lock:
            found = self._entries.get(token_hash)
            if found is None:
                return None
            if self._monotonic() - found[0] >= self.ttl:
                del self._entries[token_hash]
                return None
            self._entries.move_to_end(token_hash)
            return found[1], found[2]

    def put(self, token_hash: str, token: Token, principal: Principal, generation: int) -> None:
        """Remember a lookup made while :attr:`generation` was `generation`; a lookup that
        raced a clear (a revocation committed meanwhile) is dropped."""
        with self._lock:
            if generation != self.generation:
                return
            self._entries[token_hash] = (self._monotonic(), token, principal)
            self._entries.move_to_end(token_hash)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()
