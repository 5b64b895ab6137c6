"""One ASGI middleware for request ids, the request log line and HTTP metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming responses are not buffered. The log line is
written after the response starts, with the route's path parameters (project, environment,
flag) and the actor that :mod:`fader_server.api.security` put on ``request.state``.

Every response, of the API and of the console alike, carries ``X-Content-Type-Options:
nosniff``, so a browser never reinterprets a JSON body or a problem document (which can echo
input) as HTML or script.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fader_server.logs import get_logger

_NOSNIFF = (b"x-content-type-options", b"nosniff")
_KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
)
"""Methods counted under their own name in the request metrics; any other token a lenient
HTTP parser lets through is counted as ``_OTHER`` (OpenTelemetry's convention), so a client
inventing methods cannot grow the metric series or :meth:`HttpMetrics.children` without bound."""


class HttpMetrics:
    """Prometheus collectors in a registry owned by one app (tests build many apps), and the
    token `/metrics` requires, if any (``FADER_METRICS_TOKEN``)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fader_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "fader_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request counter and duration histogram of one (method, route template, status),
        looked up once: ``labels()`` takes a lock and builds its key on every call. Bounded
        as the labels are (:data:`_KNOWN_METHODS` or ``_OTHER``; routes are templates,
        ``unmatched`` for the rest)."""
        key = (method, route, status)
        found = self._children.get(key)
        if found is None:
            found = (
                self.requests.labels(method, route, str(status)),
                self.duration.labels(method, route),
            )
            self._children[key] = found
        return found

    def watch_streams(self, count: Callable[[], int], direct: Callable[[], int]) -> None:
        """Export the number of connected streams (SDK and OFREP), read at scrape time, and
        how many of them the hub writes to directly (``delivery/sinks.py``): fewer than all
        means some are on the slower plain-ASGI path."""
        streams = Gauge(
            "fader_sdk_streams", "SDK streams connected to this process", registry=self.registry
        )
        streams.set_function(count)
        written = Gauge(
            "fader_sdk_streams_direct",
            "connected streams whose events are written straight to their connection",
            registry=self.registry,
        )
        written.set_function(direct)

    def watch_key_cache(self, clears: Callable[[], int]) -> None:
        """Export how many times this process forgot every cached SDK key, read at scrape time:
        it rises when the change feed (re)starts or may have missed an announcement, not with
        ordinary commits; a steady climb means the feed keeps failing, and every poll after one
        reads its key from the database again."""
        self.registry.register(
            _ReadCounter(
                "fader_sdk_key_cache_clears",
                "times this process forgot every cached SDK key (its change feed (re)started "
                "or may have missed announcements)",
                clears,
            )
        )


class _ReadCounter(Collector):
    """A counter whose value is read from the object that counts, at scrape time."""

    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self._name = name
        self._documentation = documentation
        self._read = read

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, value=self._read())


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Bound once, to the configuration of the app's creation: the lazy logger would look
        # its processors up again on every request line (a third of the line's cost).
        self.log = get_logger().bind()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = next(
            (value for name, value in scope.get("headers") or () if name == b"x-request-id"), b""
        ).decode("latin-1")[:64]
        request_id = supplied if supplied.isprintable() and supplied else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                sent = [*message["headers"], (b"x-request-id", request_id.encode())]
                if not any(name.lower() == _NOSNIFF[0] for name, _ in sent):
                    sent.append(_NOSNIFF)
                message["headers"] = sent
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route: Any = scope.get("route")
            template = getattr(route, "path", "unmatched")
            params = scope.get("path_params") or {}
            method = scope["method"]
            counted, timed = self.metrics.children(
                method if method in _KNOWN_METHODS else "_OTHER", template, status
            )
            counted.inc()
            timed.observe(elapsed)
            self.log.info(
                "request",
                method=method,
                path=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                actor=scope["state"].get("actor"),
                project=params.get("project"),
                environment=params.get("environment"),
                flag=params.get("flag"),
            )
            structlog.contextvars.unbind_contextvars("request_id")
