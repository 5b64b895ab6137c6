"""Sending summaries: the wire format, splitting, retry by merging, refusals, close."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import httpx
from sdk_doubles import KEY, Recorder, event_stream, http_client, sse

from fader_engine import Reason, Resolution
from fader_engine.sketches import DistinctSketch
from fader_sdk import FaderClient
from fader_sdk.events import SummarySender
from fader_sdk.summarizer import Summarizer
from fader_sdk.summary import Dropped


def accepted(request: httpx.Request, n: int) -> httpx.Response:
    return httpx.Response(200, json={"accepted": 1, "refused": []})


def bodies(recorder: Recorder) -> list[dict[str, Any]]:
    return [json.loads(r.content) for r in recorder.requests]


def sent_counts(recorder: Recorder) -> Counter[tuple[Any, ...]]:
    counts: Counter[tuple[Any, ...]] = Counter()
    for body in bodies(recorder):
        for item in body["evaluations"]:
            counts[(item["flag"], item["variant"], item["reason"])] += item["count"]
    return counts


def on(variant: str = "on") -> Resolution:
    return Resolution(True, variant, Reason.SPLIT)


def sender(recorder: Recorder, **options: Any) -> tuple[Summarizer, SummarySender]:
    summarizer = Summarizer(**{k: v for k, v in options.items() if k != "flush_interval"})
    return summarizer, SummarySender(
        http_client(recorder), summarizer, flush_interval=options.get("flush_interval", 3600)
    )


def test_distinct_contexts_go_once_a_minute_apart_from_the_counts() -> None:
    """Counts every interval; the contexts behind them once per `contexts_interval`, on an
    item of their flag and variant (count 0 when the interval had none), and at close."""
    recorder = Recorder(accepted)
    now = [1000.0]
    summarizer = Summarizer()
    events = SummarySender(
        http_client(recorder), summarizer, flush_interval=3600, clock=lambda: now[0]
    )
    summarizer.evaluated("a", {"targetingKey": "u-1"}, on())
    summarizer.evaluated("a", {"targetingKey": "u-2"}, on())
    events._cycle(final=False, forced=False)  # the thread's interval flush
    now[0] += 30
    summarizer.evaluated("a", {"targetingKey": "u-2"}, on())
    summarizer.evaluated("a", {"targetingKey": "u-3"}, on())
    events._cycle(final=False, forced=False)
    now[0] += 31  # a minute since the sender started: the contexts are due
    events._cycle(final=False, forced=False)
    summarizer.evaluated("b", {"targetingKey": "u-9"}, on())
    events.close()
    first, second, minute, last = bodies(recorder)
    assert [(e["count"], "contexts" in e) for e in first["evaluations"]] == [(2, False)]
    assert [(e["count"], "contexts" in e) for e in second["evaluations"]] == [(2, False)]
    assert [(e["flag"], e["count"]) for e in minute["evaluations"]] == [("a", 0)]
    assert minute["evaluations"][0]["contexts"]["exact"] == 3  # u-1, u-2, u-3
    assert [(e["flag"], e["count"], e["contexts"]["exact"]) for e in last["evaluations"]] == [
        ("b", 1, 1)
    ]


def test_one_request_per_flush_in_the_documented_format() -> None:
    recorder = Recorder(accepted)
    summarizer, events = sender(recorder, debug_flags={"a"})
    for i in range(3):
        summarizer.evaluated("a", {"targetingKey": f"u-{i}"}, on())
    summarizer.evaluated("a", {"targetingKey": "u-0"}, on("off"))
    summarizer.measured("checkout.error", "a", "on", 1)
    summarizer.measured("checkout.error", "a", "on", None)
    events.flush()
    events.flush()  # nothing new: nothing sent
    assert recorder.paths == ["/api/v1/sdk/summaries"]
    body = bodies(recorder)[0]
    assert set(body) == {"id", "start", "end", "evaluations", "metrics", "events"}
    assert len(body["id"]) == 32
    assert body["start"] <= body["end"]
    first = body["evaluations"][0]
    assert {k: v for k, v in first.items() if k != "contexts"} == {
        "flag": "a",
        "variant": "on",
        "reason": "SPLIT",
        "count": 3,
    }
    assert first["contexts"]["exact"] == 3
    assert DistinctSketch.decode(first["contexts"]["sketch"]).estimate() == 3
    assert body["metrics"] == [
        {
            "name": "checkout.error",
            "flag": "a",
            "variant": "on",
            "count": 2,
            "sum": 1.0,
            "sum_squares": 1.0,
        }
    ]
    assert [(e["variant"], e["targeting_key"]) for e in body["events"]] == [
        ("on", "u-0"),
        ("on", "u-1"),
        ("on", "u-2"),
        ("off", "u-0"),
    ]
    events.close()
    assert events.dropped == Dropped()


def test_more_than_1000_items_are_split_into_requests() -> None:
    recorder = Recorder(accepted)
    summarizer, events = sender(recorder)
    for i in range(2500):
        summarizer.evaluated(f"flag-{i}", None, on())
    for i in range(1200):
        summarizer.measured(f"metric-{i}", None, None, 2.0)
    events.close()
    sent = bodies(recorder)
    assert [(len(b["evaluations"]), len(b["metrics"])) for b in sent] == [
        (1000, 1000),
        (1000, 200),
        (500, 0),
    ]
    assert len({item["flag"] for b in sent for item in b["evaluations"]}) == 2500
    assert sum(m["count"] for b in sent for m in b["metrics"]) == 1200


def test_a_retryable_failure_sends_the_same_request_again_then_what_came_after() -> None:
    """The failed request may have arrived (an answer lost after the commit): it goes again
    byte for byte, id included, so the server can count it once; newer counts go apart."""
    recorder = Recorder(lambda r, n: httpx.Response(503) if n == 0 else accepted(r, n))
    summarizer, events = sender(recorder)
    summarizer.evaluated("a", {"targetingKey": "u-1"}, on())
    summarizer.evaluated("a", {"targetingKey": "u-2"}, on())
    summarizer.measured("latency", "a", "on", 3.0)
    events.flush()
    assert events.awaiting_answer == 1
    assert events.pending is None
    assert events.dropped == Dropped()
    summarizer.evaluated("a", {"targetingKey": "u-2"}, on())
    summarizer.evaluated("a", {"targetingKey": "u-3"}, on())
    summarizer.measured("latency", "a", "on", 4.0)
    events.flush()
    assert events.awaiting_answer == 0
    assert events.pending is None
    events.close()
    first, again, later = bodies(recorder)
    assert again == first
    assert [(e["count"], e["contexts"]["exact"]) for e in first["evaluations"]] == [(2, 2)]
    assert [(e["count"], e["contexts"]["exact"]) for e in later["evaluations"]] == [(2, 2)]
    assert [(m["count"], m["sum"], m["sum_squares"]) for m in later["metrics"]] == [(1, 4.0, 16.0)]
    assert later["id"] != first["id"]
    assert len(recorder.requests) == 3
    assert events.dropped == Dropped()


def test_what_waits_through_an_outage_stays_bounded_and_counted() -> None:
    down = threading.Event()
    down.set()
    recorder = Recorder(lambda r, n: httpx.Response(503) if down.is_set() else accepted(r, n))
    summarizer, events = sender(recorder, max_keys=100)
    evaluated = 0
    for interval in range(10):  # 50 new keys per interval, the server down throughout
        for i in range(50):
            summarizer.evaluated(f"flag-{interval}-{i}", None, on())
            evaluated += 1
        events.flush()
        assert events.awaiting_answer == 1  # the first request, kept as it was
        assert events.pending is None or len(events.pending.evaluations) <= 100
    failed = len(recorder.requests)
    down.clear()
    events.flush()
    events.close()
    sent = bodies(recorder)[failed:]
    delivered = sum(item["count"] for body in sent for item in body["evaluations"])
    assert delivered == 50 + 100  # the kept request, then what the bounded summary held
    assert delivered + events.dropped.evaluations == evaluated


def test_a_failing_server_is_not_retried_before_the_next_interval_nor_a_retry_after() -> None:
    first = threading.Event()

    def server(request: httpx.Request, n: int) -> httpx.Response:
        first.set()
        return httpx.Response(429, headers={"Retry-After": "3600"})

    recorder = Recorder(server)
    summarizer, events = sender(recorder, flush_interval=0.05)
    summarizer.evaluated("a", None, on())
    assert first.wait(10)
    summarizer.evaluated("a", None, on())
    threading.Event().wait(0.5)  # ten intervals: all inside the Retry-After
    assert len(recorder.requests) == 1
    assert events.awaiting_answer == 1
    assert events.pending is not None
    assert events.pending.evaluations[("a", "on", "SPLIT")].count == 1
    events.close()  # one last attempt
    assert len(recorder.requests) == 2
    assert events.dropped == Dropped(evaluations=2)


def test_a_request_refused_for_its_content_is_dropped_and_sending_goes_on() -> None:
    refused = httpx.Response(
        422,
        json={"category": "user_fixable", "detail": "evaluations/0/flag: too long"},
        headers={"content-type": "application/problem+json"},
    )
    recorder = Recorder(lambda r, n: refused if n == 0 else accepted(r, n))
    summarizer, events = sender(recorder)
    for _ in range(3):
        summarizer.evaluated("a", None, on())
    events.flush()
    assert events.dropped == Dropped(evaluations=3)
    assert events.pending is None
    summarizer.evaluated("b", None, on())
    events.close()
    assert sent_counts(recorder) == {("a", "on", "SPLIT"): 3, ("b", "on", "SPLIT"): 1}
    assert len(recorder.requests) == 2
    assert events.dropped == Dropped(evaluations=3)


def test_items_refused_one_by_one_are_counted() -> None:
    answer = {
        "accepted": 1,
        "refused": [
            {"list": "evaluations", "index": 1, "reason": "flag not client-side"},
            {"list": "metrics", "index": 0, "reason": "flag not client-side"},
            {"list": "evaluations", "index": 1, "reason": "repeated"},
            {"list": "evaluations", "index": 99},
            {"list": "nonsense", "index": 0},
            "junk",
        ],
    }
    recorder = Recorder(lambda r, n: httpx.Response(200, json=answer))
    summarizer, events = sender(recorder)
    summarizer.evaluated("a", None, on())
    summarizer.evaluated("secret", None, on())
    summarizer.evaluated("secret", None, on())
    summarizer.measured("m", "secret", "on", 1.0)
    events.close()
    assert events.dropped == Dropped(evaluations=2, measurements=1)


def test_a_rejected_key_stops_sending_and_counts_the_loss() -> None:
    recorder = Recorder(lambda r, n: httpx.Response(401))
    summarizer, events = sender(recorder)
    summarizer.evaluated("a", None, on())
    summarizer.evaluated("a", None, on())
    events.flush()
    assert events.dropped == Dropped(evaluations=2)
    summarizer.evaluated("a", None, on())
    summarizer.measured("m", None, None, 1.0)
    events.flush()
    events.close()
    assert len(recorder.requests) == 1
    assert events.dropped == Dropped(evaluations=3, measurements=1)


def test_close_sends_once_and_counts_what_it_could_not_send() -> None:
    recorder = Recorder(lambda r, n: httpx.Response(503))
    summarizer, events = sender(recorder)
    for i in range(1500):  # two requests' worth
        summarizer.evaluated(f"flag-{i}", None, on())
    events.close()
    assert len(recorder.requests) == 1  # the server is failing: one try, not one per request
    assert events.dropped == Dropped(evaluations=1500)
    summarizer.evaluated("late", None, on())  # after close: counted as lost
    assert events.dropped == Dropped(evaluations=1501)


def test_the_thread_sends_every_interval() -> None:
    arrived = threading.Event()

    def server(request: httpx.Request, n: int) -> httpx.Response:
        arrived.set()
        return accepted(request, n)

    recorder = Recorder(server)
    summarizer, events = sender(recorder, flush_interval=0.05)
    summarizer.evaluated("a", None, on())
    assert arrived.wait(10)
    events.close()
    assert sent_counts(recorder) == {("a", "on", "SPLIT"): 1}


def serve_flags(posted: Recorder) -> httpx.MockTransport:
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/summaries"):
            return posted(request)
        return event_stream(sse("snapshot", 2))

    return httpx.MockTransport(server)


def test_client_counts_evaluations_and_metrics_and_sends_them_on_close() -> None:
    posted = Recorder(accepted)
    client = FaderClient(KEY, transport=serve_flags(posted), event_flush_interval=3600)
    ctx = {"targetingKey": "u-1"}
    assert client.boolean("new-checkout", ctx, False) is True
    assert client.boolean_details("new-checkout", {"targetingKey": "u-2"}, False).value is True
    client.boolean("missing-flag", ctx, False)  # an error counts, with no variant
    client.track("checkout.completed", ctx, 42.5, flag="new-checkout", variant="served")
    client.track("checkout.completed", ctx, flag="new-checkout", variant="served")
    client.close()
    (body,) = bodies(posted)
    assert [
        (e["flag"], e["variant"], e["reason"], e["count"], e["contexts"]["exact"])
        for e in body["evaluations"]
    ] == [("new-checkout", "served", "STATIC", 2, 2), ("missing-flag", None, "ERROR", 1, 1)]
    assert [(m["name"], m["count"], m["sum"]) for m in body["metrics"]] == [
        ("checkout.completed", 2, 42.5)
    ]
    assert body["events"] == []
    assert client.dropped_events == 0


def test_client_counts_evaluations_before_any_configuration() -> None:
    posted = Recorder(accepted)

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/summaries"):
            return posted(request)
        return httpx.Response(503)

    client = FaderClient(
        KEY, transport=httpx.MockTransport(server), init_timeout=0, event_flush_interval=3600
    )
    assert client.boolean("new-checkout", {"targetingKey": "u-1"}, False) is False
    client.close()
    (body,) = bodies(posted)
    assert [(e["flag"], e["variant"], e["reason"]) for e in body["evaluations"]] == [
        ("new-checkout", None, "ERROR")
    ]


def test_client_debug_flags_send_individual_evaluations() -> None:
    posted = Recorder(accepted)
    client = FaderClient(
        KEY, transport=serve_flags(posted), event_flush_interval=3600, debug_flags={"new-checkout"}
    )
    client.boolean("new-checkout", {"targetingKey": "u-1"}, False)
    client.close()
    (body,) = bodies(posted)
    assert [(e["flag"], e["variant"], e["reason"], e["targeting_key"]) for e in body["events"]] == [
        ("new-checkout", "served", "STATIC", "u-1")
    ]


def test_track_drops_and_counts_values_that_are_not_numbers() -> None:
    posted = Recorder(accepted)
    client = FaderClient(KEY, transport=serve_flags(posted), event_flush_interval=3600)
    client.track("checkout.currency", {"targetingKey": "u-1"}, "EUR")  # type: ignore[arg-type]
    client.track("checkout.ok", {"targetingKey": "u-1"}, True)
    client.track("checkout.ms", {"targetingKey": "u-1"}, 12)
    client.track("checkout.done", {"targetingKey": "u-1"})
    assert client.dropped_events == 2  # refused at once
    client.close()
    (body,) = bodies(posted)
    assert [(m["name"], m["count"], m["sum"]) for m in body["metrics"]] == [
        ("checkout.ms", 1, 12.0),
        ("checkout.done", 1, 0.0),
    ]
    assert client.dropped == Dropped(measurements=2)


def test_events_off_means_no_thread_and_nothing_sent() -> None:
    posted = Recorder(accepted)
    before = {t.name for t in threading.enumerate()}
    client = FaderClient(KEY, transport=serve_flags(posted), events=False)
    assert "fader-summaries" not in {t.name for t in threading.enumerate()} - before
    client.boolean("new-checkout", {"targetingKey": "u-1"}, False)
    client.track("m", None, 1.0)
    client.flush()
    client.close()
    assert posted.requests == []
    assert client.dropped == Dropped()
