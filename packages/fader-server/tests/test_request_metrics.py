"""The request metrics' labels stay bounded whatever methods clients send (api/http_metrics.py):
a method outside HTTP's standard set is counted as ``_OTHER``, so inventing methods cannot
grow the series. The edge runs with a real Prometheus registry; the ASGI server is left
out on purpose, since uvicorn's parser would refuse such methods before the app saw them, and
other ASGI servers (h11's parser) let any token through."""

from __future__ import annotations

import asyncio

from prometheus_client import generate_latest
from starlette.types import Message, Receive, Scope, Send

from fader_server.api.edge import Edge
from fader_server.api.http_metrics import HttpMetrics


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 405, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _request(app: Edge, method: str) -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    scope: Scope = {"type": "http", "method": method, "path": "/healthz", "headers": []}
    asyncio.run(app(scope, receive, send))


def test_invented_methods_are_counted_as_other() -> None:
    metrics = HttpMetrics()
    app = Edge(_answer, metrics=metrics, max_body_bytes=1024)
    for method in ("GET", "BREW", "WHEN", "X" * 200):
        _request(app, method)
    text = generate_latest(metrics.registry).decode()
    counted = [line for line in text.splitlines() if line.startswith("fader_http_requests_total")]
    assert any('method="GET"' in line for line in counted)
    other = [line for line in counted if 'method="_OTHER"' in line]
    assert len(other) == 1, counted
    assert other[0].endswith(" 3.0"), counted
    assert not any("BREW" in line or "WHEN" in line or "XXX" in line for line in counted)
