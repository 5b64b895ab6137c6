"""The HTTP protocol ``fader serve`` runs: uvicorn's httptools protocol, plus the connection's
transport in every request's scope.

Why: an SSE stream that has sent its headers and first event through ASGI can receive the rest
of its events as bytes written straight to its connection (:mod:`fader_server.delivery.sinks`),
which is what lets one process push a change to 10,000 streams within tens of milliseconds.
ASGI has no standard way to reach the connection, so this protocol adds one scope extension,
``extensions["fader.transport"] = {"transport": <asyncio transport>}``. Requests served by any
other protocol lack it, and their streams use ordinary ASGI sends.

What this relies on in uvicorn: ``on_message_begin`` builds ``self.scope`` for each request
(before the application sees it) and ``self.transport`` is the connection's transport. Tests
check that streams under ``fader serve`` take the direct path (``test_sdk_faults.py``, through
the ``fader_sdk_streams_direct`` gauge) and that both paths behave alike
(``test_event_stream.py``).
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fader_server.delivery.sinks import TRANSPORT_EXTENSION


class TransportExposingProtocol(HttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions = self.scope.setdefault("extensions", {})
        extensions[TRANSPORT_EXTENSION] = {"transport": self.transport}
