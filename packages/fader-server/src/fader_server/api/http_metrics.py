"""The HTTP metrics of one app: requests by method, route template and status, their
durations, and gauges read at scrape time (streams, the SDK key cache). The edge
(:mod:`fader_server.api.edge`) counts every request here; ``/metrics`` exports the registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

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
        # Collections per generation (python_gc_*): full ones stop the event loop for a time
        # that grows with the objects alive, streams' included (runtime/gc_policy.py).
        GCCollector(registry=self.registry)

    def children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request counter and duration histogram of one (method, route template, status),
        looked up once: ``labels()`` takes a lock and builds its key on every call. Bounded
        as the labels are (:data:`_KNOWN_METHODS`, any other method as ``_OTHER``; routes are
        templates, ``unmatched`` for the rest)."""
        if method not in _KNOWN_METHODS:
            method = "_OTHER"
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
