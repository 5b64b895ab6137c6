"""Threshold-gate readers (Prometheus instant queries, HTTP synthetic checks) and the gate
results built from readings and SDK event totals. HTTP goes through ``httpx.MockTransport``;
the end-to-end tests query a real Prometheus."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from fader_server.rollout_logic.decide import GateStatus
from fader_server.rollout_logic.gates import Reading, due_checks, metric_results, threshold_results
from fader_server.rollout_logic.plan import (
    HttpCheckGate,
    MetricGate,
    Plan,
    PrometheusGate,
    Stage,
    State,
)
from fader_server.runtime.gate_reader import GateReader
from fader_server.storage.ports import EventTotals, VariantTotals

PROM = PrometheusGate(url="http://prom:9090/", query="rate(errors[1m])", max_value=0.05)
CHECK = HttpCheckGate(url="http://app/health", interval=10, max_latency_ms=200, trip_after=2)


def reader(
    answer: Callable[[httpx.Request], httpx.Response],
    monotonic: Callable[[], float] = time.monotonic,
) -> GateReader:
    return GateReader(httpx.Client(transport=httpx.MockTransport(answer)), monotonic=monotonic)


def vector(*values: str) -> httpx.Response:
    result = [{"metric": {}, "value": [1.0, v]} for v in values]
    return httpx.Response(
        200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
    )


def test_a_prometheus_reading_within_bounds_is_good_and_beyond_is_bad() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return vector("0.01")

    good = reader(answer).read(PROM)
    assert good == Reading(False, {"value": 0.01, "max_value": 0.05})
    assert str(seen[0].url) == "http://prom:9090/api/v1/query?query=rate%28errors%5B1m%5D%29"
    bad = reader(lambda _: vector("0.2")).read(PROM)
    assert bad.bad
    assert bad.observation["value"] == 0.2
    low = PrometheusGate(url="http://prom", query="up", min_value=1)
    assert reader(lambda _: vector("0")).read(low).bad
    scalar = httpx.Response(
        200, json={"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}}
    )
    assert not reader(lambda _: scalar).read(low).bad


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda _: vector(), "no_sample"),
        (lambda _: vector("NaN"), None),
        (
            lambda _: httpx.Response(400, json={"status": "error", "error": "parse error"}),
            "http_status",
        ),
        (lambda _: httpx.Response(502, text="<html>bad gateway</html>"), "http_status"),
        (lambda _: httpx.Response(200, text="<html>not json</html>"), "invalid_response"),
        (lambda _: httpx.Response(200, json=[1, 2]), "invalid_response"),
        (lambda _: httpx.Response(200, json={"status": "success", "data": []}), "invalid_response"),
        (
            lambda _: httpx.Response(
                200, json={"status": "success", "data": {"resultType": "vector", "result": [[]]}}
            ),
            "invalid_response",
        ),
        (lambda _: httpx.Response(200, content=b"[" * 100_000), "invalid_response"),
        (lambda _: httpx.Response(200, content=b" " * (1024 * 1024 + 1)), "too_large"),
    ],
)
def test_a_prometheus_that_cannot_answer_is_a_bad_reading(
    answer: Callable[[httpx.Request], httpx.Response], error: str | None
) -> None:
    reading = reader(answer).read(PROM)
    assert reading.bad
    assert reading.observation.get("error") == error


def test_an_unreachable_prometheus_is_a_bad_reading_not_an_exception() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    reading = reader(refuse).read(PROM)
    assert reading.bad
    assert reading.observation == {"max_value": 0.05, "error": "refused"}


def test_an_http_check_fails_on_status_latency_or_timeout() -> None:
    ticks = iter([0.0, 0.05, 10.0, 10.5, 20.0, 20.05, 30.0, 31.0])
    clock = lambda: next(ticks)  # noqa: E731
    answers = iter([200, 200, 503])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers))

    checks = reader(answer, monotonic=clock)
    assert checks.read(CHECK) == Reading(False, {"status": 200, "latency_ms": 50.0})
    slow = checks.read(CHECK)
    assert slow.bad
    assert slow.observation == {"status": 200, "latency_ms": 500.0, "error": "too_slow"}
    failed = checks.read(CHECK)
    assert failed.bad
    assert failed.observation["error"] == "http_status"

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    timed_out = reader(hang, monotonic=clock).read(CHECK)
    assert timed_out.observation == {"latency_ms": 1000.0, "error": "timeout"}
    assert timed_out.bad


# ------------------------------------------------------------------- results
PLAN = Plan(
    flag="f",
    environment="production",
    control="off",
    treatment="on",
    stages=(Stage("all", 60, percent=50),),
    gates=(
        MetricGate("error_rate", "error", min_samples=10),
        PROM,
        CHECK,
        MetricGate("latency", "latency_ms", min_samples=10),
    ),
)


def test_metric_gates_compare_the_arms_from_event_totals() -> None:
    totals = {
        "off": VariantTotals(
            1000,
            {
                "error": EventTotals(10, 10.0, 10.0),
                "latency_ms": EventTotals(100, 10_000.0, 1_000_400.0),
            },
        ),
        "on": VariantTotals(
            1000,
            {
                "error": EventTotals(200, 200.0, 200.0),
                "latency_ms": EventTotals(100, 10_100.0, 1_020_500.0),
            },
        ),
    }
    errors, latency = metric_results(PLAN, totals)
    assert (errors.index, errors.status) == (0, GateStatus.REGRESSION)
    assert errors.evidence["treatment"] == pytest.approx(0.2)
    assert latency.index == 3
    assert latency.status is GateStatus.HEALTHY
    nothing = metric_results(PLAN, {})
    assert [r.status for r in nothing] == [GateStatus.INSUFFICIENT] * 2


def test_threshold_readings_count_strikes_and_checks_wait_for_their_interval() -> None:
    state = State()
    assert due_checks(PLAN, state, 100.0) == [1, 2]
    results, state = threshold_results(PLAN, state, {1: Reading(True), 2: Reading(True)}, 100.0)
    assert [r.status for r in results] == [GateStatus.HEALTHY, GateStatus.HEALTHY]
    assert state.gate_strikes == {1: 1, 2: 1}
    assert due_checks(PLAN, state, 105.0) == [1]  # the HTTP check ran 5 s ago, interval 10 s
    results, state = threshold_results(PLAN, state, {1: Reading(False)}, 105.0)
    assert state.gate_strikes == {1: 0, 2: 1}
    assert results[1].summary == "http_check: not due; 1/2 failures in a row"
    assert due_checks(PLAN, state, 110.0) == [1, 2]
    results, state = threshold_results(PLAN, state, {1: Reading(False), 2: Reading(True)}, 110.0)
    assert results[1].status is GateStatus.REGRESSION
