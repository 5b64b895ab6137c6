"""SDK and client keys: which environment a delivery request is for.

Delivery endpoints are hit far more often than the admin API (every poll, every OFREP call), so
a verified key is cached for `ttl` seconds (never past its expiry). A revocation is announced
to every replica with its commit (:meth:`SdkKeys.forget`), which drops the key from the cache at
once; `ttl` only bounds how long a revocation whose announcement was lost goes unnoticed, and a
lost announcement clears the whole cache when the replica finds out (:meth:`SdkKeys.clear`).
Failures are never cached, so a key works as soon as it is created. Keys are looked up by their
SHA-256 hash; the cache is keyed by that hash too, so no secret is held in memory longer than
the request. A key in use is read again in the background during the last `RENEW_WITHIN`
seconds of its entry (:mod:`fader_server.delivery.renewal`), so its requests never all miss at
once; the renewed entry's `ttl` counts from that read, and a renewal that finds the key revoked
or expired drops it.

A *grant* is a narrower credential derived from a key, for places where a key must not travel:
an OFREP event-stream URL, which browsers open with ``EventSource`` (no headers, so the
credential rides in the URL, where proxies log it). It is ``<token id>.<HMAC of a purpose
under the key's stored hash>``: it reveals neither the key nor the hash keys are looked up by,
it is good for its purpose only, it needs no server secret (every replica can check it), and it
stops working with its key.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from fader_server.delivery.renewal import Renewer
from fader_server.delivery.snapshots import EnvironmentRef
from fader_server.errors import NotAuthenticatedError, NotFoundError, PermissionDeniedError
from fader_server.services import credentials
from fader_server.storage.ports import Token, TokenKind
from fader_server.storage.ports.delivery import SdkKeyReads
from fader_server.storage.ports.store import Store

DEFAULT_TTL = 5.0
MAX_CACHED = 10_000
RENEW_WITHIN = 1.0
"""Seconds before a cached key's entry lapses from which a hit renews it (at most half the
`ttl`): far longer than a read takes, short enough that an idle key is not read for nothing."""
_GRANTS = "grant:"
"""The prefix of grants' cache keys."""
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
    expires_at: datetime | None = None
    """When the key stops working by itself (None: never); streams it opens end then."""

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}"


class SdkKeys:
    def __init__(
        self,
        store: Store[SdkKeyReads],
        clock: Callable[[], datetime],
        *,
        ttl: float = DEFAULT_TTL,
        monotonic: Callable[[], float] = time.monotonic,
        on_use: Callable[[Token], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self._monotonic = monotonic
        self._on_use = on_use
        """Told of every key read from the database (about once per `ttl` per key while it is
        in use, since hits on the cache are not reported): token lists show its last use."""
        self._cache: OrderedDict[str, tuple[SdkCaller, float, bool]] = OrderedDict()
        """Hash (or grant) → (caller, monotonic expiry, whether a renewal was started)."""
        self._renewer = Renewer("key")
        self._renew_within = min(RENEW_WITHIN, ttl / 2)
        self._lock = threading.Lock()
        self._epoch = 0
        """Bumped by every :meth:`forget` and :meth:`clear`: a key read from the database
        before one of them must not be cached after it (it may predate the revocation)."""
        self.clears = 0
        """How many times :meth:`clear` forgot every key (``/metrics``): once per start of the
        change feed and after announcements may have been missed, never per commit."""

    def forget(self, token_ids: Collection[int]) -> None:
        """Drop these tokens from the cache (they were revoked); from any thread."""
        gone = set(token_ids)
        with self._lock:
            self._epoch += 1
            for cache_key in [k for k, (c, _, _) in self._cache.items() if c.token_id in gone]:
                del self._cache[cache_key]

    def close(self) -> None:
        """Stop renewing (the server is stopping; the store closes next)."""
        self._renewer.close()

    def clear(self) -> None:
        """Forget every cached key (revocations may have been announced while no one
        listened)."""
        with self._lock:
            self._epoch += 1
            self.clears += 1
            self._cache.clear()

    def usable(self, token_ids: Sequence[int]) -> set[int]:
        """The ids among `token_ids` whose keys may still be used now (one database read)."""
        now = self.clock()
        with self.store.read() as tx:
            return tx.usable_keys(token_ids, now)

    def authenticate(self, bearer: str | None, accepted: frozenset[TokenKind]) -> SdkCaller:
        """The caller behind `bearer`, if its kind is one of `accepted`; raise otherwise."""
        if not bearer:
            raise NotAuthenticatedError(_HOW)
        digest = credentials.hash_token(bearer)
        return _check_kind(self._cached(digest) or self._load(digest), accepted)

    def cached(self, bearer: str, accepted: frozenset[TokenKind]) -> SdkCaller | None:
        """The caller behind `bearer` if the cache holds it unexpired and its kind is accepted;
        None otherwise (then :meth:`authenticate` decides, and raises what it must). Never reads
        the database, so the event loop may call it; a hit is exactly what :meth:`authenticate`
        would return, under the same expiry and revocation rules."""
        caller = self._cached(credentials.hash_token(bearer)) if bearer else None
        if caller is None or caller.kind not in accepted:
            return None
        return caller

    def grant(self, bearer: str, caller: SdkCaller, purpose: str) -> str:
        """A grant for `purpose` derived from `bearer`, the key `caller` authenticated with."""
        return f"{caller.token_id}.{_proof(credentials.hash_token(bearer), purpose)}"

    def authenticate_grant(
        self, grant: str, purpose: str, accepted: frozenset[TokenKind]
    ) -> SdkCaller:
        """The caller behind a grant made by :meth:`grant` for the same `purpose`."""
        cache_key = f"{_GRANTS}{purpose}:{grant}"  # never a hex digest: never another's key
        caller = self._cached(cache_key) or self._load_grant(cache_key, grant, purpose)
        return _check_kind(caller, accepted)

    def _cached(self, digest: str) -> SdkCaller | None:
        now = self._monotonic()
        with self._lock:
            entry = self._cache.get(digest)
            if entry is None:
                return None
            caller, expires, renewing = entry
            if expires <= now:
                del self._cache[digest]
                return None
            if renewing or expires - now > self._renew_within or digest.startswith(_GRANTS):
                return caller
            self._cache[digest] = (caller, expires, True)  # one renewal per entry
        self._renewer.submit(partial(self._renew, digest))
        return caller

    def _renew(self, digest: str) -> None:
        """(On the renewer's thread.) Read the key again: a fresh entry if it still works, none
        if it does not (a revocation whose announcement was lost, an expiry, a deleted project).
        Grants are not renewed: they are used by streams when they open, not polled."""
        try:
            self._load(digest)
        except (NotAuthenticatedError, PermissionDeniedError, NotFoundError):
            with self._lock:
                self._cache.pop(digest, None)

    def _load(self, digest: str) -> SdkCaller:
        now = self.clock()
        epoch = self._epoch
        with self.store.read() as tx:
            token = tx.find_token(digest)
            if token is None:
                raise NotAuthenticatedError("the key is not valid; " + _HOW)
            caller = _admit(tx, token, now)
        self._remember(digest, caller, token, now, epoch)
        return caller

    def _load_grant(self, cache_key: str, grant: str, purpose: str) -> SdkCaller:
        invalid = NotAuthenticatedError(
            "the grant is not valid; take the URL from a new response of the endpoint that "
            "handed it out"
        )
        token_id, _, proof = grant.partition(".")
        if not token_id.isdigit() or len(token_id) > 18:
            raise invalid
        now = self.clock()
        epoch = self._epoch
        with self.store.read() as tx:
            token = tx.get_token(int(token_id))
            if token is None or not hmac.compare_digest(
                proof.encode(), _proof(token.token_hash, purpose).encode()
            ):
                raise invalid
            caller = _admit(tx, token, now)
        self._remember(cache_key, caller, token, now, epoch)
        return caller

    def _remember(
        self, cache_key: str, caller: SdkCaller, token: Token, now: datetime, epoch: int
    ) -> None:
        if self._on_use is not None:
            self._on_use(token)
        lifetime = self.ttl
        if token.expires_at is not None:
            lifetime = min(lifetime, (token.expires_at - now).total_seconds())
        with self._lock:
            if epoch != self._epoch:
                return  # a revocation was announced while this key was being read
            # An entry cut short by the key's expiry is not renewed: the key stops working then.
            renewable = lifetime >= self.ttl
            self._cache[cache_key] = (caller, self._monotonic() + lifetime, not renewable)
            while len(self._cache) > MAX_CACHED:
                self._cache.popitem(last=False)


def _admit(tx: SdkKeyReads, token: Token, now: datetime) -> SdkCaller:
    """The caller of a found token, if the token may use the delivery endpoints now."""
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
    return SdkCaller(
        EnvironmentRef(project.id, project.key, token.environment_key),
        token.kind,
        token.id,
        token.expires_at,
    )


def _check_kind(caller: SdkCaller, accepted: frozenset[TokenKind]) -> SdkCaller:
    if caller.kind not in accepted:
        names = " or ".join(sorted(f"{k.value} key" for k in accepted))
        raise PermissionDeniedError(
            f"this endpoint needs a {names}; a {caller.kind.value} key cannot use it"
        )
    return caller


def _proof(token_hash: str, purpose: str) -> str:
    return hmac.new(token_hash.encode(), purpose.encode(), hashlib.sha256).hexdigest()[:32]
