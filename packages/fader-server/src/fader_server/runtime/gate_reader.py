"""Reading threshold gates over HTTP: a Prometheus instant query and a synthetic check.

Every failure to read is a *bad reading*, never an exception: an unreachable Prometheus, a
query error, an empty result, a malformed answer, a timeout or a wrong status all count as one
strike, and only `trip_after` strikes in a row roll a plan back
(:func:`fader_server.rollout_logic.decide.threshold_result`).
A gate that cannot be read is not a gate that passes.

What a reading observes is what viewers of the plan, its incidents and its audit entries see,
so it holds only numbers (HTTP status, latency in ms, the value and its bounds) and, for a bad
reading, one fixed word from :data:`fader_server.services.outbound_policy.ErrorClass`: never
the body of an answer nor an exception's text (a gate pointed at an internal service must not
become a way to read it). Requests go through :mod:`.outbound_http` (address policy, total
deadline, byte cap).

The HTTP client is passed in, so tests can use a real server or ``httpx.MockTransport``; the
monotonic clock that times the synthetic check is injected too. One reader serves the
scheduler's worker threads at once (httpx clients are thread-safe).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import httpx

from fader_server.logs import get_logger
from fader_server.rollout_logic.gates import Reading
from fader_server.rollout_logic.plan import HttpCheckGate, PrometheusGate
from fader_server.runtime import outbound_http
from fader_server.runtime.outbound_http import FetchError
from fader_server.services.outbound_policy import DENY_INTERNAL, ErrorClass, OutboundPolicy

PROMETHEUS_TIMEOUT = 5.0
"""Seconds, in total, for one Prometheus query (connection, headers and body)."""
MAX_CHECK_TIMEOUT = 30.0
PROMETHEUS_MAX_BYTES = 1024 * 1024
"""An instant query's answer is a few hundred bytes; anything over 1 MiB is not one."""
CHECK_MAX_BYTES = 4096
"""An HTTP check looks at the status and the time; at most this much of the page is read."""


class GateReader:
    """Reads Prometheus and HTTP-check gates."""

    def __init__(
        self,
        http: httpx.Client | None = None,
        *,
        policy: OutboundPolicy = DENY_INTERNAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http or outbound_http.client(policy, user_agent="fader-rollouts")
        self._monotonic = monotonic
        self._log = get_logger()

    def close(self) -> None:
        self._http.close()

    def read(self, gate: PrometheusGate | HttpCheckGate, deadline: float | None = None) -> Reading:
        """One reading, by `deadline` (``time.monotonic``) at the latest; never raises."""
        try:
            if isinstance(gate, PrometheusGate):
                return self.query_prometheus(gate, deadline)
            return self.check_http(gate, deadline)
        except Exception as exc:  # a reader bug must cost one gate one strike, nothing more
            self._log.error("gate_read_failed", kind=gate.kind, exception=type(exc).__name__)
            return _bad({}, "invalid_response")

    def query_prometheus(self, gate: PrometheusGate, deadline: float | None = None) -> Reading:
        """``GET <url>/api/v1/query`` (https://prometheus.io/docs/prometheus/latest/querying/api/);
        the first sample of a vector, or a scalar, is compared with the bounds."""
        seen: dict[str, Any] = {}
        if gate.max_value is not None:
            seen["max_value"] = gate.max_value
        if gate.min_value is not None:
            seen["min_value"] = gate.min_value
        try:
            answer = outbound_http.fetch(
                self._http,
                "GET",
                gate.url.rstrip("/") + "/api/v1/query",
                params={"query": gate.query},
                deadline=_earliest(deadline, time.monotonic() + PROMETHEUS_TIMEOUT),
                limit=PROMETHEUS_MAX_BYTES,
            )
        except FetchError as exc:
            return _bad(seen, exc.error)
        if answer.status != 200:
            return _bad({**seen, "status": answer.status}, "http_status")
        try:
            body = json.loads(answer.body)
        except (ValueError, RecursionError):
            return _bad(seen, "invalid_response")
        if not isinstance(body, dict) or body.get("status") != "success":
            return _bad(seen, "invalid_response")
        data = body.get("data")
        if not isinstance(data, dict) or data.get("resultType") not in ("vector", "scalar"):
            return _bad(seen, "invalid_response")
        value = _sample(data)
        if value is None:
            empty = data.get("resultType") == "vector" and data.get("result") == []
            return _bad(seen, "no_sample" if empty else "invalid_response")
        seen["value"] = value
        bad = math.isnan(value)
        if gate.max_value is not None:
            bad = bad or value > gate.max_value
        if gate.min_value is not None:
            bad = bad or value < gate.min_value
        return Reading(bad, _ordered(seen))

    def check_http(self, gate: HttpCheckGate, deadline: float | None = None) -> Reading:
        """GET the URL once; the status and the latency are both checked."""
        budget = min(MAX_CHECK_TIMEOUT, gate.max_latency_ms / 1000.0 + 1.0)
        started = self._monotonic()
        try:
            answer = outbound_http.fetch(
                self._http,
                "GET",
                gate.url,
                deadline=_earliest(deadline, time.monotonic() + budget),
                limit=CHECK_MAX_BYTES,
                truncate=True,
            )
        except FetchError as exc:
            latency = round((self._monotonic() - started) * 1000.0, 1)
            return _bad({"latency_ms": latency}, exc.error)
        latency = (self._monotonic() - started) * 1000.0
        seen: dict[str, Any] = {"status": answer.status, "latency_ms": round(latency, 1)}
        if answer.status != gate.expect_status:
            return _bad(seen, "http_status")
        if latency > gate.max_latency_ms:
            return _bad(seen, "too_slow")
        return Reading(False, seen)


def timed_out() -> Reading:
    """The reading of a gate whose plan ran out of time before it could be read."""
    return _bad({}, "timeout")


def _bad(seen: dict[str, Any], error: ErrorClass) -> Reading:
    return Reading(True, {**seen, "error": error})


def _ordered(seen: dict[str, Any]) -> dict[str, Any]:
    """The value first, then its bounds (as readings were always shown)."""
    return {k: seen[k] for k in ("value", "max_value", "min_value") if k in seen}


def _earliest(deadline: float | None, own: float) -> float:
    return own if deadline is None else min(deadline, own)


def _sample(data: dict[str, Any]) -> float | None:
    result_type, result = data.get("resultType"), data.get("result")
    try:
        if result_type == "scalar" and isinstance(result, list):
            return _number(result[1])
        if result_type == "vector" and isinstance(result, list) and result:
            first = result[0]
            if isinstance(first, dict) and isinstance(first.get("value"), list):
                return _number(first["value"][1])
    except IndexError:
        return None
    return None


def _number(raw: object) -> float | None:
    """Prometheus sends sample values as strings ("0.5", "NaN", "+Inf")."""
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        return None
    try:
        return float(raw)
    except ValueError:
        return None
