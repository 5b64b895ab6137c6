"""The SSE client: parsing, snapshots, changes and patches, resume, heartbeat timeout, retry
policy."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sdk_doubles import (
    KEY,
    FakeClock,
    Recorder,
    Sleeper,
    document,
    event_stream,
    http_client,
    patch_event,
    snapshot,
    sse,
    sse_data,
)

from fader_engine import ErrorCode
from fader_sdk.backoff import Backoff
from fader_sdk.breaker import BreakerState, CircuitBreaker
from fader_sdk.flag_set import FlagSet, Origin
from fader_sdk.holder import FlagSetHolder
from fader_sdk.sources.polling import PollingSource
from fader_sdk.sources.streaming import Outcome, SSEParser, StreamingSource


def make_source(recorder: Recorder, *, limit: int = 100) -> tuple[StreamingSource, Sleeper]:
    clock = FakeClock()
    sleeper = Sleeper(clock, limit)
    http = http_client(recorder)
    source = StreamingSource(
        http,
        heartbeat_interval=15.0,
        backoff=Backoff(base=1.0, cap=30.0, random=lambda: 0.5, clock=clock),
        breaker=CircuitBreaker(failure_threshold=3, cooldown=60.0, clock=clock),
        poller=PollingSource(http, interval=30.0),
        sleep=sleeper,
    )
    sleeper.stop = source.close
    return source, sleeper


def test_parser_follows_the_event_stream_format() -> None:
    parser = SSEParser()
    lines = [
        "retry: 2500",
        ": heartbeat",
        "event: change",
        "id: 18",
        'data: {"a":',
        "data:1}",
        "",
        "data: no event name",
        "",
        "event: lonely",
        "",
        "id",
        "data: x",
        "",
    ]
    events = list(parser.parse(lines))
    assert [(e.event, e.data, e.id) for e in events] == [
        ("change", '{"a":\n1}', "18"),
        ("message", "no event name", "18"),  # the id persists across events
        ("message", "x", ""),  # "id" with no value resets it
    ]
    assert parser.retry_ms == 2500


def test_first_snapshot_is_served_then_changes_replace_it() -> None:
    recorder = Recorder(lambda r, n: event_stream(sse("snapshot", 17), sse("change", 18, False)))
    source, _ = make_source(recorder)
    holder = FlagSetHolder()
    seen: list[int] = []
    holder.add_listener(lambda old, new: seen.append(new.version))

    assert source.connect_once(holder) is Outcome.DROPPED  # the script then ends the stream
    assert seen == [17, 18]
    assert holder.current is not None
    assert holder.current.engine.resolve_boolean("new-checkout", {}, True).value is False
    assert holder.is_fresh
    assert source.backoff.base == 1.0  # from the server's `retry: 1000`
    request = recorder.requests[0]
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_reconnect_resumes_with_last_event_id() -> None:
    recorder = Recorder(
        lambda r, n: (
            event_stream(sse("snapshot", 17)) if n == 0 else event_stream(b": heartbeat\n\n")
        )
    )
    source, _ = make_source(recorder, limit=2)
    holder = FlagSetHolder()
    source.run(holder)
    assert "Last-Event-ID" not in recorder.requests[0].headers
    assert recorder.requests[1].headers["Last-Event-ID"] == "17"
    assert holder.current is not None
    assert holder.current.version == 17


def test_missing_heartbeats_time_out_the_read_and_reconnect() -> None:
    recorder = Recorder(
        lambda r, n: event_stream(sse("snapshot", 17), error=httpx.ReadTimeout("quiet"))
    )
    source, _sleeper = make_source(recorder, limit=2)
    source.run(FlagSetHolder())
    assert recorder.requests[0].extensions["timeout"]["read"] == 37.5  # 2.5 x 15 s heartbeat
    assert len(recorder.requests) == 2
    assert recorder.requests[1].headers["Last-Event-ID"] == "17"
    assert source.breaker.state is BreakerState.CLOSED  # the stream worked; not a failure


def test_server_errors_back_off_with_jitter_then_fall_back_to_polling() -> None:
    def script(request: httpx.Request, n: int) -> httpx.Response:
        if request.url.path.endswith("/flags"):
            return httpx.Response(200, json=snapshot(5), headers={"ETag": '"5"'})
        return httpx.Response(500)

    recorder = Recorder(script)
    source, sleeper = make_source(recorder, limit=3)
    holder = FlagSetHolder()
    source.run(holder)
    # random()=0.5 of ceilings 1, 2 (third failure trips the breaker: poll at once), then 30 s poll
    assert sleeper.delays == [0.5, 1.0, 30.0]
    assert recorder.paths == ["/api/v1/sdk/stream"] * 3 + ["/api/v1/sdk/flags"]
    assert holder.current is not None
    assert holder.current.version == 5
    assert source.breaker.state is BreakerState.OPEN


def test_stream_is_probed_again_after_the_cooldown_and_resumes() -> None:
    def script(request: httpx.Request, n: int) -> httpx.Response:
        if request.url.path.endswith("/flags"):
            return httpx.Response(304)
        return httpx.Response(503) if n < 3 else event_stream(sse("snapshot", 9))

    recorder = Recorder(script)
    source, _ = make_source(recorder, limit=6)
    source.run(FlagSetHolder())
    # 3 failed streams, polls every 30 s until the 60 s cool-down elapsed, then the probe works
    assert recorder.paths[:6] == ["/api/v1/sdk/stream"] * 3 + ["/api/v1/sdk/flags"] * 2 + [
        "/api/v1/sdk/stream"
    ]
    assert source.breaker.state is BreakerState.CLOSED


def test_rejected_key_stops_with_an_actionable_message_without_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder(lambda r, n: httpx.Response(401, json={"title": "Unauthorized"}))
    source, sleeper = make_source(recorder)
    holder = FlagSetHolder()
    with caplog.at_level(logging.DEBUG, logger="fader_sdk"):
        source.run(holder)
    assert len(recorder.requests) == 1
    assert sleeper.delays == []
    assert holder.fatal_error is not None
    assert "server-side SDK key" in holder.fatal_error
    assert "401" in caplog.text
    assert KEY not in caplog.text
    assert holder.wait_fresh(0) is False  # waiters are released at once


@pytest.mark.parametrize(
    ("response", "retried"),
    [
        (
            httpx.Response(
                503,
                json={"category": "retryable", "title": "x"},
                headers={"content-type": "application/problem+json"},
            ),
            True,
        ),
        (
            httpx.Response(
                503,
                json={"category": "operator_fixable", "detail": "check DB"},
                headers={"content-type": "application/problem+json"},
            ),
            False,
        ),
        (httpx.Response(403), False),
        (httpx.Response(404), False),
        (httpx.Response(502, text="<html>bad gateway</html>"), True),
    ],
)
def test_only_retryable_failures_are_retried(response: httpx.Response, retried: bool) -> None:
    recorder = Recorder(lambda r, n: response)
    source, sleeper = make_source(recorder, limit=1)
    holder = FlagSetHolder()
    source.run(holder)
    assert len(recorder.requests) == 1
    assert bool(sleeper.delays) is retried  # a retry waits first; a stop does not
    assert (holder.fatal_error is None) is retried


def test_retry_after_is_a_floor_for_the_next_attempt() -> None:
    recorder = Recorder(lambda r, n: httpx.Response(429, headers={"Retry-After": "120"}))
    source, sleeper = make_source(recorder, limit=1)
    source.run(FlagSetHolder())
    assert sleeper.delays == [120.0]


def test_network_errors_are_retried() -> None:
    def script(request: httpx.Request, n: int) -> httpx.Response:
        raise httpx.ConnectError("refused")

    recorder = Recorder(script)
    source, sleeper = make_source(recorder, limit=2)
    source.run(FlagSetHolder())
    assert len(recorder.requests) == 2
    assert sleeper.delays == [0.5, 1.0]


def test_a_poll_getting_through_after_an_outage_probes_the_stream_at_once() -> None:
    """A restarted server: streams refused, polls refused, then a poll works. The stream is
    probed right away instead of after the rest of the breaker's cool-down."""

    def script(request: httpx.Request, n: int) -> httpx.Response:
        if n < 4:  # three stream attempts and the first poll: nothing listens
            raise httpx.ConnectError("refused")
        if request.url.path.endswith("/flags"):
            return httpx.Response(200, json=snapshot(5), headers={"ETag": '"5"'})
        return event_stream(sse("snapshot", 6))

    recorder = Recorder(script)
    source, sleeper = make_source(recorder, limit=4)
    holder = FlagSetHolder()
    source.run(holder)
    assert recorder.paths == ["/api/v1/sdk/stream"] * 3 + ["/api/v1/sdk/flags"] * 2 + [
        "/api/v1/sdk/stream"
    ]
    # 0.5 and 1.0 between the refused streams, a poll interval after the refused poll, none
    # after the poll that got through
    assert sleeper.delays[:3] == [0.5, 1.0, 30.0]
    assert holder.current is not None
    assert holder.current.version == 6
    assert source.breaker.state is BreakerState.CLOSED


def test_a_stream_broken_by_a_proxy_is_not_probed_at_every_poll() -> None:
    """Streams fail although the server answers (a proxy that cuts them): polls succeed all
    along, so nothing says the stream would work now; the cool-down decides."""

    def script(request: httpx.Request, n: int) -> httpx.Response:
        if request.url.path.endswith("/flags"):
            return httpx.Response(304 if n > 3 else 200, json=snapshot(5))
        return httpx.Response(502, text="bad gateway")

    recorder = Recorder(script)
    source, sleeper = make_source(recorder, limit=4)
    source.run(FlagSetHolder())
    assert recorder.paths == ["/api/v1/sdk/stream"] * 3 + ["/api/v1/sdk/flags"] * 2
    assert sleeper.delays == [0.5, 1.0, 30.0, 30.0]  # polling at its interval, no probe


# -- patches ----------------------------------------------------------------------------------


def three_flags(version: int, checkout: bool = True) -> dict[str, Any]:
    """A snapshot with `new-checkout`, `banner` ("blue") and `old-limit` (3)."""
    doc = document(checkout)
    doc["flags"].update(document("blue", "banner")["flags"])
    doc["flags"].update(document(3, "old-limit")["flags"])
    return {"project": "demo", "environment": "production", "version": version, "document": doc}


def snapshot_event(payload: dict[str, Any]) -> bytes:
    return sse_data("snapshot", payload["version"], json.dumps(payload))


CHECKOUT_OFF = {"new-checkout": document(False)["flags"]["new-checkout"]}


def resyncing_server(
    first: Callable[[], httpx.Response], version: int
) -> Callable[[httpx.Request, int], httpx.Response]:
    """Answers the first stream with `first()`, later ones as the server does at `version`: a
    full snapshot unless ``Last-Event-ID`` already names that version (then only heartbeats)."""

    def script(request: httpx.Request, n: int) -> httpx.Response:
        if n == 0:
            return first()
        if request.headers.get("Last-Event-ID") == str(version):
            return event_stream(b": heartbeat\n\n")
        return event_stream(sse("snapshot", version, False))

    return script


def test_the_stream_opts_in_to_patches() -> None:
    recorder = Recorder(lambda r, n: event_stream(sse("snapshot", 17)))
    source, _ = make_source(recorder, limit=2)
    source.run(FlagSetHolder())
    assert len(recorder.requests) == 2
    for request in recorder.requests:  # the first connection and the resumed one
        assert request.url.path == "/api/v1/sdk/stream"
        assert request.url.params["patches"] == "true"


def test_a_patch_at_the_store_version_is_applied() -> None:
    recorder = Recorder(
        lambda r, n: event_stream(
            snapshot_event(three_flags(17)),
            patch_event(17, 18, flags={**CHECKOUT_OFF, "old-limit": None}),
        )
    )
    source, _ = make_source(recorder)
    holder = FlagSetHolder()
    seen: list[int] = []
    holder.add_listener(lambda old, new: seen.append(new.version))

    assert source.connect_once(holder) is Outcome.DROPPED  # the script then ends the stream
    assert seen == [17, 18]
    current = holder.current
    assert current is not None
    assert (current.version, current.origin) == (18, Origin.SERVER)
    assert (current.project, current.environment) == ("demo", "production")
    engine = current.engine
    assert engine.resolve_boolean("new-checkout", {}, True).value is False  # changed
    assert engine.resolve_string("banner", {}, "default").value == "blue"  # untouched
    gone = engine.resolve_integer("old-limit", {}, 0)  # removed
    assert (gone.value, gone.error_code) == (0, ErrorCode.FLAG_NOT_FOUND)
    expected = three_flags(18, checkout=False)
    del expected["document"]["flags"]["old-limit"]
    assert current.to_wire() == expected  # what the cache file stores: the whole document
    assert source.last_event_id == "18"  # a reconnect resumes after the patch


def test_a_patch_at_another_version_reconnects_for_a_full_snapshot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The holder is at 17 and a patch from 18 to 19 arrives (the change to 18 was lost): it is
    not applied, the rest of that stream is not read, and the reconnect resumes from 17, not
    from the patch's id 19, so the server (at 19) sends the whole snapshot."""
    recorder = Recorder(
        resyncing_server(
            lambda: event_stream(
                sse("snapshot", 17), patch_event(18, 19, flags=CHECKOUT_OFF), sse("change", 20)
            ),
            version=19,
        )
    )
    source, sleeper = make_source(recorder, limit=2)
    holder = FlagSetHolder()
    seen: list[int] = []
    holder.add_listener(lambda old, new: seen.append(new.version))
    with caplog.at_level(logging.WARNING, logger="fader_sdk"):
        source.run(holder)

    assert seen == [17, 19]  # never 20: that connection was ended at the patch
    assert "applies to version 18" in caplog.text
    assert recorder.requests[1].headers["Last-Event-ID"] == "17"
    assert holder.current is not None
    assert holder.current.engine.resolve_boolean("new-checkout", {}, True).value is False
    # a dropped connection (backoff, breaker closed), not a failure and not a stop
    assert len(sleeper.delays) == 2
    assert source.breaker.state is BreakerState.CLOSED
    assert holder.fatal_error is None


@pytest.mark.parametrize("held", [None, Origin.CACHE])
def test_a_patch_without_a_server_snapshot_at_its_base_is_not_applied(
    held: Origin | None,
) -> None:
    """Nothing, or only the cache file's copy of version 17: the patch's base cannot be trusted
    to be the document the server diffed against, so the SDK asks for a full snapshot."""
    recorder = Recorder(lambda r, n: event_stream(patch_event(17, 18, flags=CHECKOUT_OFF)))
    source, _ = make_source(recorder)
    holder = FlagSetHolder()
    if held is not None:
        holder.replace(FlagSet.from_wire(snapshot(17), held))
    before = holder.current

    assert source.connect_once(holder) is Outcome.DROPPED
    assert holder.current is before
    assert source.last_event_id is None
    assert source.connect_once(holder) is Outcome.DROPPED
    assert "Last-Event-ID" not in recorder.requests[1].headers  # so the server sends it all


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        '["not", "an", "object"]',
        '{"base": 17, "flags": {}}',  # no version
        '{"base": 17, "version": 17, "flags": {}}',  # to itself
        '{"base": true, "version": 18}',
        '{"base": 17, "version": 18, "flags": ["new-checkout"]}',
        '{"base": 17, "version": 18, "flags": {"new-checkout": 3}}',
        '{"base": 17, "version": 18, "flags": {"new-checkout": {"type": "boolean"}}}',
        '{"base": 17, "version": 18, "fields": {"flags": {}}}',
        '{"base": 17, "version": 18, "environment": "staging", "flags": {}}',
    ],
)
def test_a_malformed_patch_keeps_the_previous_configuration(data: str) -> None:
    recorder = Recorder(
        resyncing_server(
            lambda: event_stream(sse("snapshot", 17), sse_data("patch", 18, data)), version=18
        )
    )
    source, _ = make_source(recorder)
    holder = FlagSetHolder()
    seen: list[int] = []
    holder.add_listener(lambda old, new: seen.append(new.version))

    assert source.connect_once(holder) is Outcome.DROPPED
    assert seen == [17]
    assert holder.current is not None
    assert holder.current.engine.resolve_boolean("new-checkout", {}, False).value is True
    assert source.connect_once(holder) is Outcome.DROPPED
    assert recorder.requests[1].headers["Last-Event-ID"] == "17"
    assert seen == [17, 18]  # the full snapshot repaired it


def test_a_resumed_stream_applies_patches_without_a_snapshot() -> None:
    """The usual case after a reconnect: the server is still at our version, sends no
    snapshot, and the next change arrives as a patch on it."""
    recorder = Recorder(
        lambda r, n: (
            event_stream(sse("snapshot", 17))
            if n == 0
            else event_stream(b": heartbeat\n\n", patch_event(17, 18, flags=CHECKOUT_OFF))
        )
    )
    source, _ = make_source(recorder, limit=2)
    holder = FlagSetHolder()
    source.run(holder)
    assert recorder.requests[1].headers["Last-Event-ID"] == "17"
    assert holder.current is not None
    assert holder.current.version == 18
    assert holder.current.engine.resolve_boolean("new-checkout", {}, True).value is False
