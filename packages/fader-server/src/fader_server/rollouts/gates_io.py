"""Reading threshold gates over HTTP: a Prometheus instant query and a synthetic check.

Every failure to read is a *bad reading*, never an exception: an unreachable Prometheus, a
query error, an empty result, a timeout or a wrong status all count as one strike, and only
`trip_after` strikes in a row roll a plan back
(:func:`fader_server.rollouts.decide.threshold_result`).
A gate that cannot be read is not a gate that passes.

The HTTP client is passed in, so tests can use a real server or ``httpx.MockTransport``; the
monotonic clock that times the synthetic check is injected too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import httpx

from fader_server.rollouts.gates import Reading
from fader_server.rollouts.plan import HttpCheckGate, PrometheusGate

PROMETHEUS_TIMEOUT = 5.0
MAX_CHECK_TIMEOUT = 30.0


class GateReader:
    """Reads Prometheus and HTTP-check gates; one per scheduler, thread-confined."""

    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http or httpx.Client(
            headers={"User-Agent": "fader-rollouts"}, follow_redirects=False
        )
        self._monotonic = monotonic

    def close(self) -> None:
        self._http.close()

    def read(self, gate: PrometheusGate | HttpCheckGate) -> Reading:
        if isinstance(gate, PrometheusGate):
            return self.query_prometheus(gate)
        return self.check_http(gate)

    def query_prometheus(self, gate: PrometheusGate) -> Reading:
        """``GET <url>/api/v1/query`` (https://prometheus.io/docs/prometheus/latest/querying/api/);
        the first sample of a vector, or a scalar, is compared with the bounds."""
        seen: dict[str, Any] = {"query": gate.query}
        try:
            response = self._http.get(
                gate.url.rstrip("/") + "/api/v1/query",
                params={"query": gate.query},
                timeout=PROMETHEUS_TIMEOUT,
            )
            body = response.json()
        except httpx.HTTPError as exc:
            return Reading(True, {**seen, "error": f"Prometheus unreachable: {_reason(exc)}"})
        except ValueError:
            return Reading(True, {**seen, "error": f"not JSON (HTTP {response.status_code})"})
        if response.status_code != 200 or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            return Reading(
                True, {**seen, "error": f"HTTP {response.status_code}: {error or 'query failed'}"}
            )
        value = _sample(body.get("data") or {})
        if value is None:
            return Reading(True, {**seen, "error": "the query returned no sample"})
        seen["value"] = value
        bad = math.isnan(value)
        if gate.max_value is not None:
            seen["max_value"] = gate.max_value
            bad = bad or value > gate.max_value
        if gate.min_value is not None:
            seen["min_value"] = gate.min_value
            bad = bad or value < gate.min_value
        return Reading(bad, seen)

    def check_http(self, gate: HttpCheckGate) -> Reading:
        """GET the URL once; the status and the latency are both checked."""
        seen: dict[str, Any] = {"url": gate.url}
        timeout = min(MAX_CHECK_TIMEOUT, gate.max_latency_ms / 1000.0 + 1.0)
        started = self._monotonic()
        try:
            response = self._http.get(gate.url, timeout=timeout)
        except httpx.HTTPError as exc:
            seen["latency_ms"] = round((self._monotonic() - started) * 1000.0, 1)
            return Reading(True, {**seen, "error": _reason(exc)})
        latency = (self._monotonic() - started) * 1000.0
        seen.update(status=response.status_code, latency_ms=round(latency, 1))
        bad = response.status_code != gate.expect_status or latency > gate.max_latency_ms
        if response.status_code != gate.expect_status:
            seen["error"] = f"status {response.status_code}, expected {gate.expect_status}"
        elif latency > gate.max_latency_ms:
            seen["error"] = f"{latency:.0f} ms, over {gate.max_latency_ms:.0f} ms"
        return Reading(bad, seen)


def _sample(data: dict[str, Any]) -> float | None:
    result_type, result = data.get("resultType"), data.get("result")
    try:
        if result_type == "scalar" and isinstance(result, list):
            return float(result[1])
        if result_type == "vector" and isinstance(result, list) and result:
            return float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return None


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__
