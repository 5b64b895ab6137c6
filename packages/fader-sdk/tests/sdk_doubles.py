"""Test doubles for the SDK: a scripted SSE body for `httpx.MockTransport`, a clock, a sleeper."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

KEY = "fdr_srv_secret-test-key"


def document(value: Any = True, key: str = "new-checkout") -> dict[str, Any]:
    """A one-flag Fader document serving `value` to everyone."""
    kind = {bool: "boolean", str: "string", int: "number", float: "number"}[type(value)]
    return {
        "format": "fader/v1",
        "flags": {
            key: {
                "type": kind,
                "variants": {"served": value},
                "offVariant": "served",
                "default": {"variant": "served"},
                "metadata": {"owner": "payments"},
            }
        },
    }


def snapshot(version: int, value: Any = True) -> dict[str, Any]:
    return {
        "project": "demo",
        "environment": "production",
        "version": version,
        "document": document(value),
    }


def sse(event: str, version: int, value: Any = True) -> bytes:
    return sse_data(event, version, json.dumps(snapshot(version, value)))


def sse_data(event: str, event_id: int, data: str) -> bytes:
    """One event with `data` as given (JSON or not), for malformed payloads."""
    return f"event: {event}\nid: {event_id}\ndata: {data}\n\n".encode()


def patch_event(
    base: int,
    version: int,
    flags: dict[str, Any] | None = None,
    segments: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
) -> bytes:
    """A `patch` event (docs/delivery-protocol.md) from `base` to `version`."""
    payload = {
        "project": "demo",
        "environment": "production",
        "base": base,
        "version": version,
        "flags": flags or {},
        "segments": segments or {},
        "fields": fields or {},
    }
    return sse_data("patch", version, json.dumps(payload))


class ScriptedStream(httpx.SyncByteStream):
    """A response body that yields `chunks`, then raises `error` (e.g. a ReadTimeout) if given."""

    def __init__(self, *chunks: bytes, error: Exception | None = None) -> None:
        self.chunks = chunks
        self.error = error

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error


def event_stream(*chunks: bytes, error: Exception | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        stream=ScriptedStream(b"retry: 1000\n\n", *chunks, error=error),
    )


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeper:
    """Records delays and advances the clock; after `limit` sleeps it calls `stop`."""

    def __init__(self, clock: FakeClock, limit: int = 100) -> None:
        self.clock = clock
        self.limit = limit
        self.delays: list[float] = []
        self.stop: Callable[[], None] = lambda: None

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)
        if len(self.delays) >= self.limit:
            self.stop()


class Recorder:
    """An httpx handler answering from `script(request, n)` and recording every request."""

    def __init__(self, script: Callable[[httpx.Request, int], httpx.Response]) -> None:
        self.script = script
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.script(request, len(self.requests) - 1)

    @property
    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def http_client(recorder: Recorder) -> httpx.Client:
    return httpx.Client(
        base_url="http://fader.test",
        transport=httpx.MockTransport(recorder),
        headers={"Authorization": f"Bearer {KEY}"},
    )
