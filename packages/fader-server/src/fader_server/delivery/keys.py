"""SDK and client keys: which environment a delivery request is for.

Delivery endpoints are hit far more often than the admin API (every poll, every OFREP call), so
a verified key is cached for `ttl` seconds (never past its expiry). The cost is explicit: a
revoked key keeps working on a replica for at most `ttl` seconds. Failures are never cached, so
a key works as soon as it is created. Keys are looked up by their SHA-256 hash; the cache is
keyed by that hash too, so no secret is held in memory longer than the request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fader_server.delivery.snapshots import EnvironmentRef
from fader_server.errors import NotAuthenticatedError, NotFoundError, PermissionDeniedError
from fader_server.services import credentials
from fader_server.storage.ports import Store, TokenKind

DEFAULT_TTL = 5.0
MAX_CACHED = 10_000
_HOW = (
    "send a server SDK key (fdr_srv_...) or a client key (fdr_cli_...) "
    "as 'Authorization: Bearer <key>'"
)


@dataclass(frozen=True, slots=True)
class SdkCaller:
    """An authenticated SDK: its environment and the kind of key it used."""

    ref: EnvironmentRef
    kind: TokenKind
    token_id: int

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}"


class SdkKeys:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        *,
        ttl: float = DEFAULT_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self._monotonic = monotonic
        self._cache: OrderedDict[str, tuple[SdkCaller, float]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, bearer: str | None, accepted: frozenset[TokenKind]) -> SdkCaller:
        """The caller behind `bearer`, if its kind is one of `accepted`; raise otherwise."""
        if not bearer:
            raise NotAuthenticatedError(_HOW)
        digest = credentials.hash_token(bearer)
        caller = self._cached(digest) or self._load(digest)
        if caller.kind not in accepted:
            names = " or ".join(sorted(f"{k.value} key" for k in accepted))
            raise PermissionDeniedError(
                f"this endpoint needs a {names}; a {caller.kind.value} key cannot use it"
            )
        return caller

    def _cached(self, digest: str) -> SdkCaller | None:
        with self._lock:
            entry = self._cache.get(digest)
            if entry is None:
                return None
            if entry[1] <= self._monotonic():
                del self._cache[digest]
                return None
            return entry[0]

    def _load(self, digest: str) -> SdkCaller:
        now = self.clock()
        with self.store.read() as tx:
            token = tx.find_token(digest)
            if token is None:
                raise NotAuthenticatedError("the key is not valid; " + _HOW)
            if token.revoked_at is not None:
                raise NotAuthenticatedError("the key was revoked; create a new one")
            if token.expires_at is not None and token.expires_at <= now:
                raise NotAuthenticatedError("the key has expired; create a new one")
            if token.kind not in (TokenKind.SERVER, TokenKind.CLIENT):
                raise PermissionDeniedError(
                    "admin and user tokens cannot use the delivery endpoints; "
                    "create a server SDK key or a client key for the environment"
                )
            project = tx.get_project_by_id(token.project_id or -1)
            if project is None or token.environment_key is None:
                raise NotFoundError("the key's project no longer exists")
        caller = SdkCaller(
            EnvironmentRef(project.id, project.key, token.environment_key), token.kind, token.id
        )
        lifetime = self.ttl
        if token.expires_at is not None:
            lifetime = min(lifetime, (token.expires_at - now).total_seconds())
        with self._lock:
            self._cache[digest] = (caller, self._monotonic() + lifetime)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)
        return caller
