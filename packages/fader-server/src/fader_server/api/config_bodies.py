"""The configuration responses of ``GET /api/v1/sdk/flags`` and ``GET /api/v1/sdk/flagd``:
status, headers and which pre-encoded body (``docs/delivery-protocol.md``, "Caching").

One function decides them for both the FastAPI routes (:mod:`fader_server.api.sdk`) and the
fast path in front of them (:mod:`fader_server.api.sdk_fast_path`), so the two can never answer
differently. Bodies come from the :class:`~fader_server.delivery.snapshots.Snapshot`, which
encodes and compresses each of them once per environment revision.

Encodings: a client that accepts gzip (``Accept-Encoding``) gets the gzip body with
``Content-Encoding: gzip``; any other gets the identity body. Every answer, 304 included, says
``Vary: Accept-Encoding`` so a shared cache keeps the two apart. The ``ETag`` is the same for
both, ``"<version>"``: it names the configuration's version (the protocol promises that, and
SDKs resume from it), both bodies decode to the same bytes, and a client holding either one
holds the current configuration when the version matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from fader_server.delivery.snapshots import Snapshot

VARY = "Accept-Encoding"


@dataclass(frozen=True, slots=True)
class Answer:
    """A response to send: 200 with a body, or 304 without one."""

    status: int
    headers: dict[str, str]
    body: bytes


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2 weak comparison of `If-None-Match` against the current ETag."""
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether `Accept-Encoding` (RFC 9110 §12.5.3) allows gzip: named (or ``x-gzip``, or
    ``*`` when gzip is not named) with a quality above 0. A quality that is not a number
    counts as 0, so a malformed header gets the identity body, which every client can read."""
    if not accept_encoding:
        return False
    named: float | None = None
    anything: float | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        quality = _quality(params)
        if coding in ("gzip", "x-gzip"):
            named = max(named or 0.0, quality)
        elif coding == "*":
            anything = quality
    if named is not None:
        return named > 0
    return anything is not None and anything > 0


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return quality if 0 < quality <= 1 else 0.0
    return 1.0


def body_name(flagd: bool, gzip: bool) -> str:
    """The :class:`Snapshot` property holding the body of that document in that encoding."""
    return ("flagd_" if flagd else "") + ("gzip_body" if gzip else "body")


def answer(
    snapshot: Snapshot,
    *,
    flagd: bool,
    if_none_match: str | None,
    accept_encoding: str | None,
    built_only: bool = False,
) -> Answer | None:
    """The response for `snapshot`. Raises what :attr:`Snapshot.flagd_body` raises for an
    environment flagd cannot express. `built_only`: None instead of computing a body this
    revision has not needed yet (the event loop leaves that to a worker thread)."""
    headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache", "Vary": VARY}
    if not_modified(if_none_match, snapshot.etag):
        return Answer(304, headers, b"")
    gzip = accepts_gzip(accept_encoding)
    name = body_name(flagd, gzip)
    if built_only and not snapshot.built(name):
        return None
    body: bytes = getattr(snapshot, name)
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return Answer(200, headers, body)
