"""OFREP evaluation on the server: engine resolutions in the OpenFeature Remote Evaluation
Protocol's shapes (https://github.com/open-feature/protocol, ``service/openapi.yaml`` 0.3.0).

Knows the protocol's JSON and nothing of HTTP frameworks: :mod:`fader_server.api.ofrep` reads
the request and writes these bytes. Evaluation runs on the snapshot's compiled engine, so a
request costs one revision check, a context parse, the evaluation and one ``json.dumps``.

Where Fader's words and OFREP's differ:

* reasons: OFREP's success schema allows ``STATIC, TARGETING_MATCH, SPLIT, DISABLED, UNKNOWN``.
  Fader's ``DEFAULT`` (targeting exists, nothing matched) becomes ``UNKNOWN``: ``STATIC`` would
  tell a client the value is the same for every context, which it is not.
* error codes: OFREP's evaluation failures allow ``PARSE_ERROR, TARGETING_KEY_MISSING,
  INVALID_CONTEXT, GENERAL``; ``FLAG_NOT_FOUND`` has a shape (and a 404) of its own. The engine's
  ``TYPE_MISMATCH`` cannot happen here (requests carry no type), and would become ``GENERAL``.
* values: OFREP's object values are JSON objects; a Fader object flag may serve an array, which
  OFREP cannot carry, so such an evaluation is a ``GENERAL`` failure that says so.
* client keys: they see only flags marked ``client_side`` (flag metadata ``client_side: true``,
  ``docs/flag-format.md``); any other flag is "not found" for them, indistinguishably from a
  flag that does not exist, and absent from bulk results.
* the request: the schema requires ``context`` and its ``targetingKey``; Fader accepts both
  missing (OpenFeature SDKs send an empty context for flags that need none). A flag whose split
  needs the targeting key then fails alone with ``TARGETING_KEY_MISSING``.

Cost: a bulk request evaluates every visible flag for one context, and nearly all of what it
used to spend beyond the evaluations went into rebuilding and re-encoding the same few results
over and over. A compiled flag returns one of a handful of prebuilt :class:`Resolution` objects
(its variants, its off value, its "targeting key missing"), so each flag keeps the encoded OFREP
form of the resolutions it has returned, by identity (:class:`_Encoded`), and each snapshot keeps
which flags each kind of key sees (:class:`_Plan`). A bulk body is then the flags' fragments
joined between a prefix and a suffix: the same bytes ``json.dumps`` gives for the whole payload
(the dict's keys in the same order, the same separators), which ``tests/test_ofrep_encoding.py``
checks against the plain encoding. Nothing is cached per context: every request evaluates every
flag.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fader_engine.evaluate import Engine
from fader_engine.result import ErrorCode, Reason, Resolution
from fader_server.delivery.snapshots import Snapshot

MAX_BODY = 1 << 20
"""Bytes of request body accepted: a context is a few hundred bytes; this is a safety cap."""

CLIENT_SIDE = "client_side"
"""The flag-metadata entry that makes a flag visible to client keys."""

REASONS: Mapping[Reason, str] = {
    Reason.STATIC: "STATIC",
    Reason.TARGETING_MATCH: "TARGETING_MATCH",
    Reason.SPLIT: "SPLIT",
    Reason.DISABLED: "DISABLED",
    Reason.DEFAULT: "UNKNOWN",
}
ERROR_CODES: Mapping[ErrorCode, str] = {
    ErrorCode.PARSE_ERROR: "PARSE_ERROR",
    ErrorCode.TARGETING_KEY_MISSING: "TARGETING_KEY_MISSING",
    ErrorCode.INVALID_CONTEXT: "INVALID_CONTEXT",
}
_GENERAL = "GENERAL"
_FLAG_NOT_FOUND = "FLAG_NOT_FOUND"


class RequestError(Exception):
    """The request body is unusable: OFREP answers 400 with this error code and details."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def read_context(body: bytes) -> Mapping[str, Any]:
    """The evaluation context of an OFREP request body ``{"context": {...}}``."""
    if len(body) > MAX_BODY:
        raise RequestError(
            "INVALID_CONTEXT", f"the request body exceeds {MAX_BODY} bytes; send a smaller context"
        )
    if not body.strip():
        return {}
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise RequestError(
            "PARSE_ERROR", f'the request body is not JSON ({exc}); send {{"context": {{...}}}}'
        ) from exc
    if not isinstance(request, dict):
        raise RequestError(
            "INVALID_CONTEXT", 'the request body must be a JSON object: {"context": {...}}'
        )
    context = request.get("context", {})
    if not isinstance(context, dict):
        raise RequestError("INVALID_CONTEXT", '"context" must be a JSON object')
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise RequestError("INVALID_CONTEXT", '"context.targetingKey" must be a string')
    return context


def visible(engine: Engine, flag_key: str, client_only: bool) -> bool:
    flag = engine.flags.get(flag_key)
    return flag is not None and (not client_only or flag.metadata.get(CLIENT_SIDE) is True)


def result(flag_key: str, resolution: Resolution) -> dict[str, Any]:
    """One flag's OFREP evaluation: ``evaluationSuccess`` or ``evaluationFailure``."""
    value = resolution.value
    if resolution.error_code is not None or isinstance(value, list):
        if resolution.error_code is None:
            code, details = (
                _GENERAL,
                (
                    f"flag {flag_key!r} served a JSON array, which OFREP cannot carry (its object "
                    "values are JSON objects); serve an object that holds the array"
                ),
            )
        else:
            code = ERROR_CODES.get(resolution.error_code, _GENERAL)
            details = resolution.error_message or code
        failure: dict[str, Any] = {"key": flag_key, "errorCode": code, "errorDetails": details}
        if resolution.flag_metadata:
            failure["metadata"] = dict(resolution.flag_metadata)
        return failure
    success: dict[str, Any] = {"key": flag_key, "reason": REASONS.get(resolution.reason, "UNKNOWN")}
    if value is not None:  # None: no variant applies, the caller's code default (codeDefaultFlag)
        success["value"] = value
    if resolution.variant is not None:
        success["variant"] = resolution.variant
    if resolution.flag_metadata:
        success["metadata"] = dict(resolution.flag_metadata)
    return success


def not_found(flag_key: str) -> dict[str, Any]:
    return {
        "key": flag_key,
        "errorCode": _FLAG_NOT_FOUND,
        "errorDetails": f"flag {flag_key!r} was not found in this environment",
    }


FRAGMENTS_PER_FLAG = 16
"""Encoded resolutions one flag keeps. A compiled flag returns a few prebuilt resolutions, which
stay; one that builds a new resolution per evaluation (an evaluation failure with its message)
would only ever miss, so when the table is full it is emptied and the frequent ones come back."""

_Entry = tuple[Resolution, bytes, bool]
"""A resolution (held, so its ``id`` cannot be reused while the entry exists), its encoded OFREP
result, and whether that is a failure."""


class _Encoded:
    """One flag's encoded results, by the identity of the resolution they encode.

    Identity rather than equality: resolutions are frozen, but their values may be dicts (object
    flags), so they are not hashable, and comparing values would cost what encoding costs. Shared
    by threads: a lost insert only means encoding that resolution again."""

    __slots__ = ("key", "known")

    def __init__(self, key: str) -> None:
        self.key = key
        self.known: dict[int, _Entry] = {}

    def entry(self, resolution: Resolution) -> _Entry:
        found = self.known.get(id(resolution))
        if found is not None and found[0] is resolution:
            return found
        body = result(self.key, resolution)
        made = (resolution, encode(body), "errorCode" in body)
        if len(self.known) >= FRAGMENTS_PER_FLAG:
            self.known.clear()
        self.known[id(resolution)] = made
        return made


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a snapshot's OFREP evaluations need besides its engine, worked out once per
    snapshot: the flags each kind of key sees, in the engine's order, and the fixed end of a
    bulk body."""

    encoded: dict[str, _Encoded]
    server: tuple[tuple[str, ...], tuple[_Encoded, ...]]
    """The flags a server key sees, and their encoders, in the same order."""
    client: tuple[tuple[str, ...], tuple[_Encoded, ...]]
    metadata: bytes
    """``],"metadata":{...}``: what follows the flags in a bulk body."""


_plans: weakref.WeakKeyDictionary[Snapshot, _Plan] = weakref.WeakKeyDictionary()
_plans_lock = threading.Lock()


def _plan(snapshot: Snapshot) -> _Plan:
    """The snapshot's plan: built on first use, forgotten with the snapshot."""
    plan = _plans.get(snapshot)
    if plan is not None:
        return plan
    engine = snapshot.engine
    encoded = {key: _Encoded(key) for key in engine}
    metadata = {"project": snapshot.ref.project_key, "environment": snapshot.ref.environment}
    client = [key for key in encoded if visible(engine, key, client_only=True)]
    built = _Plan(
        encoded,
        (tuple(encoded), tuple(encoded.values())),
        (tuple(client), tuple(encoded[key] for key in client)),
        b'],"metadata":' + encode(metadata),
    )
    with _plans_lock:
        return _plans.setdefault(snapshot, built)


def evaluate_flag(
    snapshot: Snapshot, flag_key: str, context: Mapping[str, Any], *, client_only: bool
) -> tuple[int, bytes]:
    """``POST /ofrep/v1/evaluate/flags/{key}``: the status and body."""
    engine = snapshot.engine
    if not visible(engine, flag_key, client_only):
        return 404, encode(not_found(flag_key))
    _, body, failed = _plan(snapshot).encoded[flag_key].entry(engine.evaluate(flag_key, context))
    return (400 if failed else 200), body


@dataclass(frozen=True, slots=True)
class Bulk:
    """A bulk evaluation's body and its ``ETag``."""

    body: bytes
    etag: str


def evaluate_flags(
    snapshot: Snapshot,
    context: Mapping[str, Any],
    *,
    client_only: bool,
    event_stream_uri: str | None,
) -> Bulk:
    """``POST /ofrep/v1/evaluate/flags``: every visible flag, and where to hear of changes.

    The body is what ``encode`` gives for ``{"flags": [...], "metadata": {...},
    "eventStreams": [...]}``, assembled from the flags' encoded results (see the module's
    docstring).

    The ETag is a hash of the body, not the configuration's version: the body depends on the
    context too (a client that changes its context but keeps its ETag must not get a 304 for
    another context's values), and on the clock (``before``/``after`` rules). Equal bodies have
    equal ETags on every replica, so a change elsewhere in the environment that does not alter
    this context's values still answers 304.
    """
    plan = _plan(snapshot)
    keys, encoders = plan.client if client_only else plan.server
    parts: list[bytes] = []
    append = parts.append
    for resolution, encoded in zip(
        snapshot.engine.evaluate_each(keys, context), encoders, strict=True
    ):
        found = encoded.known.get(id(resolution))
        if found is None or found[0] is not resolution:
            found = encoded.entry(resolution)
        append(found[1])
    streams = b""
    if event_stream_uri is not None:
        streams = (
            b',"eventStreams":[{"type":"sse","endpoint":{"requestUri":'
            + encode(event_stream_uri)
            + b"}}]"
        )
    body = b"".join((b'{"flags":[', b",".join(parts), plan.metadata, streams, b"}"))
    return Bulk(body, '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"')


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2 weak comparison of `If-None-Match` against the current ETag."""
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


def refetch_event(snapshot: Snapshot) -> bytes:
    """The OFREP change notification (``service/event-streams.yaml``, ADR-0008): re-fetch the
    bulk evaluation. `etag` is the configuration's version, which clients send back as
    ``flagConfigEtag``; the SSE `id` is the version too, so a reconnecting client's
    ``Last-Event-ID`` says which version it heard of last."""
    data = encode({"type": "refetchEvaluation", "etag": snapshot.etag})
    return b"id: %d\nevent: message\ndata: %s\n\n" % (snapshot.version, data)


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
