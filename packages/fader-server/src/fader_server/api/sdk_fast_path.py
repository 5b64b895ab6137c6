"""The SDK hot paths answered in front of FastAPI's routing, when everything they need is in
memory already.

Polls (``GET /api/v1/sdk/flags``, ``GET /api/v1/sdk/flagd``) and OFREP evaluations (``POST
/ofrep/v1/evaluate/flags[/{flag}]``) are most of a server's requests, and nearly all of them
ask a question whose answer is in memory: the key is in :class:`~fader_server.delivery.keys.
SdkKeys`' cache, the environment's snapshot is fresh in :class:`~fader_server.delivery.
snapshots.SnapshotService`, and the body is encoded (or the engine compiled). Profiling showed
such a request spending most of its time in route matching, dependency solving and worker-thread
hops rather than in Fader's work. This middleware answers exactly those requests directly.

Everything else is passed on unchanged to the routes in :mod:`fader_server.api.sdk` and
:mod:`fader_server.api.ofrep`, which remain the reference: a missing, unknown, revoked or
expired key (the cache holds only keys that worked, and drops revoked ones at once), a snapshot
that needs its revision checked, a body or engine a new revision has not built yet, an OFREP
body that is not a usable context, a ``root_path`` deployment. So every error, and every check
that reads the database, keeps one implementation; the fast path only ever serves what the
route would have served at that moment, computed by the same functions
(:mod:`fader_server.api.config_bodies`, :mod:`fader_server.delivery.ofrep`).

The edge (:mod:`fader_server.api.edge`) calls it after its request id, CORS, body-size cap
and input checks, so answers carry the same headers and log line: it sets the route (for the
log's ``path`` and the metrics' ``route`` label), the path parameters and the actor as the
routes would.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from fader_server.api import config_bodies
from fader_server.api.ofrep import KEYS as OFREP_KEYS
from fader_server.api.ofrep import PREFIX as OFREP_PREFIX
from fader_server.api.ofrep import STREAM_GRANT, STREAM_PATH
from fader_server.delivery import ofrep
from fader_server.delivery.keys import SdkCaller
from fader_server.delivery.service import Delivery
from fader_server.delivery.snapshots import Snapshot
from fader_server.storage.ports import TokenKind

FLAGS = "/api/v1/sdk/flags"
FLAGD = "/api/v1/sdk/flagd"
BULK = OFREP_PREFIX + "/evaluate/flags"
SINGLE = BULK + "/{flag}"
_SERVER = frozenset({TokenKind.SERVER})
LOOP_BULK_FLAGS = 100
"""Flags up to which the event loop evaluates a bulk request itself: that takes about as long
as handing it to a worker thread and back (0.1 to 0.2 ms), and holds the loop no longer than
encoding a response does. Larger environments are evaluated in a worker thread, as the route
does, so one bulk request never stalls the loop's other connections for long."""
_JSON = b"application/json"


class SdkFastPath:
    """Answers what it can from memory; :mod:`fader_server.api.edge` calls it for every request
    that passed the edge's checks, before FastAPI."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._routes: dict[tuple[str, str], Any] = {}

    def wanted(self, scope: Scope) -> str | None:
        """The route template of a request this path may answer, or None for any other."""
        if scope.get("root_path"):
            return None
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "GET" and path in (FLAGS, FLAGD):
            return path
        if method == "POST" and path.startswith(BULK):
            if path == BULK:
                return BULK
            flag = path[len(BULK) + 1 :] if path.startswith(BULK + "/") else None
            if flag and "/" not in flag:
                return SINGLE
        return None

    async def answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        template: str,
        headers: Mapping[bytes, str],
    ) -> Receive | None:
        """None when answered; else the `receive` the route is to read the request with (one
        that replays what this path read of the body). `headers`: the first value of each
        header in :data:`HEADERS`, as the edge read them in its one pass."""
        if template in (FLAGS, FLAGD):
            answered = await self._configuration(scope, send, headers, flagd=template == FLAGD)
            return None if answered else receive
        flag = None if template == BULK else scope["path"][len(BULK) + 1 :]
        return await self._ofrep(scope, receive, send, headers, flag)

    # ------------------------------------------------------------- shared steps
    def learn(self, scope: Scope, template: str) -> None:
        """Keep the route object FastAPI matched for `template` (its ``path`` labels the log
        line and the metrics): the fast path answers only once the route has run, which it
        must anyway, since only the route fills the key cache."""
        route = scope.get("route")
        if getattr(route, "path", None) == template:
            self._routes[scope["method"], template] = route

    def _cached(
        self, scope: Scope, secret: str | None, accepted: frozenset[TokenKind]
    ) -> tuple[Delivery, SdkCaller, Snapshot] | None:
        """The caller and its environment's snapshot, if both are in memory and current."""
        if not secret:
            return None
        dlv = self.delivery
        caller = dlv.keys.cached(secret, accepted)
        if caller is None:
            return None
        snapshot = dlv.snapshots.fresh(caller.ref)
        if snapshot is None:
            return None
        return dlv, caller, snapshot

    def _matched(self, scope: Scope, route: Any, caller: SdkCaller, params: dict[str, str]) -> None:
        scope["route"] = route
        scope["path_params"] = params
        scope.setdefault("state", {})["actor"] = caller.actor

    # ------------------------------------------------------- configuration bodies
    async def _configuration(
        self, scope: Scope, send: Send, headers: Mapping[bytes, str], *, flagd: bool
    ) -> bool:
        route = self._routes.get(("GET", FLAGD if flagd else FLAGS))
        found = self._cached(scope, _bearer(headers), _SERVER)
        if route is None or found is None:
            return False
        _, caller, snapshot = found
        answer = config_bodies.answer(
            snapshot,
            flagd=flagd,
            if_none_match=headers.get(b"if-none-match"),
            accept_encoding=headers.get(b"accept-encoding"),
            built_only=True,
        )
        if answer is None:
            return False
        self._matched(scope, route, caller, {})
        await _send(send, answer.status, answer.body, answer.headers, json=answer.status == 200)
        return True

    # --------------------------------------------------------------------- OFREP
    async def _ofrep(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Mapping[bytes, str],
        flag: str | None,
    ) -> Receive | None:
        """Answer an evaluation (None), or give back a `receive` that replays what was read of
        the body for the route to read again."""
        route = self._routes.get(("POST", BULK if flag is None else SINGLE))
        secret = _bearer(headers) or headers.get(b"x-api-key")
        if not secret:
            return receive  # the route refuses it
        found = self._cached(scope, secret, OFREP_KEYS)
        if route is None or found is None or not found[2].built("engine"):
            return receive
        dlv, caller, snapshot = found
        body, more, interrupted = await _read(receive)
        if more or interrupted is not None or len(body) > ofrep.MAX_BODY:
            return _replay(body, more, interrupted, receive)  # the route refuses it
        try:
            context = ofrep.read_context(body)
        except ofrep.RequestError:
            return _replay(body, more, interrupted, receive)  # the route answers the 400
        client_only = caller.kind is TokenKind.CLIENT
        self._matched(scope, route, caller, {} if flag is None else {"flag": flag})
        if flag is not None:
            status, payload = ofrep.evaluate_flag(snapshot, flag, context, client_only=client_only)
            await _send(send, status, payload, {}, json=True)
            return None
        grant = dlv.keys.grant(secret, caller, STREAM_GRANT)
        evaluate = partial(
            ofrep.evaluate_flags,
            snapshot,
            context,
            client_only=client_only,
            event_stream_uri=f"{OFREP_PREFIX}{STREAM_PATH}?grant={grant}",
        )
        if len(snapshot.engine) <= LOOP_BULK_FLAGS:
            bulk = evaluate()
        else:
            bulk = await run_in_threadpool(evaluate)
        if ofrep.not_modified(headers.get(b"if-none-match"), bulk.etag):
            await _send(send, 304, b"", {"ETag": bulk.etag}, json=False)
        else:
            await _send(send, 200, bulk.body, {"ETag": bulk.etag}, json=True)
        return None


HEADERS = frozenset({b"authorization", b"x-api-key", b"if-none-match", b"accept-encoding"})
"""The request headers the fast path reads."""


def _bearer(headers: Mapping[bytes, str]) -> str | None:
    """The credential of ``Authorization: Bearer <key>``, parsed as FastAPI's ``HTTPBearer``
    (``auto_error=False``) parses it for the routes."""
    authorization = headers.get(b"authorization")
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


async def _read(receive: Receive) -> tuple[bytes, bool, Message | None]:
    """The body, up to a little past :data:`ofrep.MAX_BODY`; whether more of it is left unread;
    and the message that interrupted reading (a disconnect)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False, message
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
        if not more or size > ofrep.MAX_BODY:
            return b"".join(chunks), more, None


def _replay(body: bytes, more: bool, interrupted: Message | None, receive: Receive) -> Receive:
    """A `receive` that gives what was read once (as one message, followed by whatever
    interrupted reading), then whatever the connection sends next."""
    pending: list[Message] = [
        {"type": "http.request", "body": body, "more_body": more or interrupted is not None}
    ]
    if interrupted is not None:
        pending.append(interrupted)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _send(
    send: Send, status: int, body: bytes, headers: dict[str, str], *, json: bool
) -> None:
    """What Starlette's ``Response`` would send: content-length and content-type on a body,
    neither on a 304."""
    raw = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]
    if status != 304:
        raw.append((b"content-length", str(len(body)).encode()))
    if json:
        raw.append((b"content-type", _JSON))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
