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
"""

from __future__ import annotations

import hashlib
import json
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


def evaluate_flag(
    snapshot: Snapshot, flag_key: str, context: Mapping[str, Any], *, client_only: bool
) -> tuple[int, bytes]:
    """``POST /ofrep/v1/evaluate/flags/{key}``: the status and body."""
    engine = snapshot.engine
    if not visible(engine, flag_key, client_only):
        return 404, encode(not_found(flag_key))
    body = result(flag_key, engine.evaluate(flag_key, context))
    return (400 if "errorCode" in body else 200), encode(body)


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

    The ETag is a hash of the body, not the configuration's version: the body depends on the
    context too (a client that changes its context but keeps its ETag must not get a 304 for
    another context's values), and on the clock (``before``/``after`` rules). Equal bodies have
    equal ETags on every replica, so a change elsewhere in the environment that does not alter
    this context's values still answers 304.
    """
    engine = snapshot.engine
    flags = [
        result(key, engine.evaluate(key, context))
        for key in engine
        if visible(engine, key, client_only)
    ]
    payload: dict[str, Any] = {
        "flags": flags,
        "metadata": {"project": snapshot.ref.project_key, "environment": snapshot.ref.environment},
    }
    if event_stream_uri is not None:
        payload["eventStreams"] = [{"type": "sse", "endpoint": {"requestUri": event_stream_uri}}]
    body = encode(payload)
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
