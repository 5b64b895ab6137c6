"""Events: batching, bounded queue with drop counting, flush on close, retry policy."""

from __future__ import annotations

import json
import threading

import httpx
from sdk_doubles import KEY, Recorder, event_stream, http_client, sse

from fader_sdk import FaderClient
from fader_sdk.events import EventProcessor


def accepted(request: httpx.Request, n: int) -> httpx.Response:
    return httpx.Response(202)


def batches(recorder: Recorder) -> list[list[dict[str, object]]]:
    return [json.loads(r.content)["events"] for r in recorder.requests]


def test_events_are_sent_in_batches() -> None:
    recorder = Recorder(accepted)
    events = EventProcessor(
        http_client(recorder), batch_size=2, flush_interval=3600, wall_clock=lambda: 1.5
    )
    for i in range(5):
        events.record({"kind": "custom", "name": f"e{i}"})
    events.close()
    sent = batches(recorder)
    assert [len(b) for b in sent] == [2, 2, 1]
    assert [e["name"] for b in sent for e in b] == [f"e{i}" for i in range(5)]
    assert sent[0][0]["timestamp"] == 1.5
    assert recorder.paths[0] == "/api/v1/sdk/events"


def test_a_full_queue_drops_and_counts_instead_of_growing() -> None:
    recorder = Recorder(accepted)
    events = EventProcessor(http_client(recorder), capacity=3, batch_size=10, flush_interval=3600)
    assert [events.record({"n": i}) for i in range(5)] == [True, True, True, False, False]
    assert events.dropped == 2
    events.close()
    assert [len(b) for b in batches(recorder)] == [3]
    assert not events.record({"n": 9})  # closed: dropped and counted
    assert events.dropped == 3


def test_retryable_failures_keep_events_for_the_next_flush() -> None:
    recorder = Recorder(lambda r, n: httpx.Response(503) if n == 0 else httpx.Response(202))
    events = EventProcessor(http_client(recorder), flush_interval=3600)
    events.record({"n": 1})
    events.flush()
    assert (events.pending, events.dropped) == (1, 0)
    events.flush()
    assert (events.pending, events.dropped) == (0, 0)
    events.close()
    assert len(recorder.requests) == 2


def test_a_rejected_key_stops_sending_and_counts_the_loss() -> None:
    recorder = Recorder(lambda r, n: httpx.Response(401))
    events = EventProcessor(http_client(recorder), batch_size=1, flush_interval=3600)
    events.record({"n": 1})
    events.record({"n": 2})
    events.flush()
    events.record({"n": 3})
    events.close()
    assert len(recorder.requests) == 1
    assert events.dropped == 3


def test_client_records_exposures_and_custom_events_and_flushes_on_close() -> None:
    posted = Recorder(accepted)

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return posted(request)
        return event_stream(sse("snapshot", 2))

    client = FaderClient(KEY, transport=httpx.MockTransport(server), event_flush_interval=3600)
    ctx = {"targetingKey": "u-1"}
    assert client.boolean("new-checkout", ctx, False) is True
    client.boolean("missing-flag", ctx, False)  # errors expose nothing
    client.track("checkout.completed", ctx, 42.5, flag="new-checkout", variant="served")
    client.close()
    sent = [e for b in batches(posted) for e in b]
    assert [(e["kind"], e.get("flag"), e.get("variant"), e["targeting_key"]) for e in sent] == [
        ("exposure", "new-checkout", "served", "u-1"),
        ("custom", "new-checkout", "served", "u-1"),
    ]
    assert sent[0]["reason"] == "STATIC"
    assert sent[1]["value"] == 42.5
    assert client.dropped_events == 0


def test_a_batch_refused_for_its_content_is_dropped_and_sending_goes_on() -> None:
    refused = httpx.Response(
        422,
        json={"category": "user_fixable", "detail": "targeting_key: too long"},
        headers={"content-type": "application/problem+json"},
    )
    recorder = Recorder(lambda r, n: refused if n == 0 else httpx.Response(202))
    events = EventProcessor(http_client(recorder), batch_size=1, flush_interval=3600)
    events.record({"n": 1})
    events.record({"n": 2})
    events.flush()
    assert (events.pending, events.dropped) == (0, 1)
    events.record({"n": 3})
    events.close()
    assert [b[0]["n"] for b in batches(recorder)] == [1, 2, 3]
    assert events.dropped == 1


def test_close_counts_what_its_last_attempt_could_not_send() -> None:
    recorder = Recorder(lambda r, n: httpx.Response(503))
    events = EventProcessor(http_client(recorder), batch_size=2, flush_interval=3600)
    for i in range(5):
        events.record({"n": i})
    events.close()
    assert len(recorder.requests) == 1  # the server is failing: one try, not one per batch
    assert events.dropped == 5


def test_track_drops_and_counts_values_that_are_not_numbers() -> None:
    posted = Recorder(accepted)

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return posted(request)
        return event_stream(sse("snapshot", 2))

    client = FaderClient(KEY, transport=httpx.MockTransport(server), event_flush_interval=3600)
    client.track("checkout.currency", {"targetingKey": "u-1"}, "EUR")  # type: ignore[arg-type]
    client.track("checkout.ok", {"targetingKey": "u-1"}, True)
    client.track("checkout.ms", {"targetingKey": "u-1"}, 12)
    client.track("checkout.done", {"targetingKey": "u-1"})
    client.close()
    sent = [(e["name"], e["value"]) for b in batches(posted) for e in b]
    assert sent == [("checkout.ms", 12), ("checkout.done", None)]
    assert client.dropped_events == 2


def test_full_batches_go_out_at_once_and_the_rest_at_the_interval() -> None:
    sent = threading.Event()

    def server(request: httpx.Request, n: int) -> httpx.Response:
        sent.set()
        return httpx.Response(202)

    recorder = Recorder(server)
    events = EventProcessor(http_client(recorder), batch_size=2, flush_interval=3600)
    for i in range(3):
        events.record({"n": i})
    assert sent.wait(10)
    assert [[e["n"] for e in b] for b in batches(recorder)] == [[0, 1]]
    assert events.pending == 1  # a partial batch waits for the interval (or close)
    events.close()
    assert [[e["n"] for e in b] for b in batches(recorder)] == [[0, 1], [2]]


def test_a_failing_server_is_not_retried_before_the_next_interval() -> None:
    first, second = threading.Event(), threading.Event()

    def server(request: httpx.Request, n: int) -> httpx.Response:
        (second if first.is_set() else first).set()
        return httpx.Response(503)

    recorder = Recorder(server)
    events = EventProcessor(http_client(recorder), batch_size=2, flush_interval=3600)
    events.record({"n": 1})
    events.record({"n": 2})
    assert first.wait(10)
    events.record({"n": 3})
    events.record({"n": 4})  # the queue holds two full batches again
    assert not second.wait(0.3)  # and still nothing is sent until the interval
    assert events.pending == 4
    events.close()  # one last attempt
    assert len(recorder.requests) == 2
    assert events.dropped == 4
