"""FaderClient: not-ready defaults, bounded start, early stop on a rejected key, thread safety."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sdk_doubles import KEY, event_stream, sse

from fader_sdk import NOT_READY_MESSAGE, FaderClient
from fader_sdk.testing import TestData


def test_init_timeout_bounds_the_start_and_updates_arrive_later() -> None:
    release = threading.Event()

    def slow_server(request: httpx.Request) -> httpx.Response:
        release.wait(120)
        return event_stream(sse("snapshot", 3))

    started = time.monotonic()
    client = FaderClient(
        KEY, transport=httpx.MockTransport(slow_server), init_timeout=0.1, events=False
    )
    try:
        # Returned at its timeout, not when the server answered (a hang would wait 120 s);
        # the bound is generous so that a loaded machine cannot fail it.
        assert time.monotonic() - started < 30
        assert not client.is_ready
        details = client.boolean_details("new-checkout", {}, False)
        assert (details.value, details.error_message) == (False, NOT_READY_MESSAGE)
        release.set()
        assert client.wait_until_ready(10)
        assert client.boolean("new-checkout", {}, False) is True
    finally:
        release.set()
        client.close()


def test_a_rejected_key_ends_the_wait_at_once(caplog: pytest.LogCaptureFixture) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(401))
    started = time.monotonic()
    with FaderClient(KEY, transport=transport, init_timeout=120, events=False) as client:
        assert time.monotonic() - started < 30  # at once, not after the 120 s init timeout
        assert client.fatal_error is not None
        assert not client.wait_until_ready(0)
    assert KEY not in caplog.text


def test_typed_accessors_and_all_flags() -> None:
    td = TestData()
    td.flag("enabled").value(True)
    td.flag("theme").value("dark")
    td.flag("limit").value(10)
    td.flag("ratio").value(0.5)
    td.flag("config").value({"a": 1})
    with FaderClient.for_testing(td) as client:
        ctx = {"targetingKey": "u-1"}
        assert client.boolean("enabled", ctx, False) is True
        assert client.string("theme", ctx, "light") == "dark"
        assert client.integer("limit", ctx, 0) == 10
        assert client.float("ratio", ctx, 0.0) == 0.5
        assert client.object("config", ctx, {}) == {"a": 1}
        assert client.string("enabled", ctx, "x") == "x"  # TYPE_MISMATCH gives the default
        assert str(client.string_details("enabled", ctx, "x").error_code) == "TYPE_MISMATCH"
        assert client.all_flags(ctx) == {
            "enabled": True,
            "theme": "dark",
            "limit": 10,
            "ratio": 0.5,
            "config": {"a": 1},
        }


def test_evaluations_stay_consistent_while_configuration_changes() -> None:
    td = TestData()
    td.flag("a").value(True)
    client = FaderClient.for_testing(td)
    errors: list[object] = []
    stop = threading.Event()

    def evaluate() -> None:
        while not stop.is_set():
            details = client.boolean_details("a", {"targetingKey": "u"}, False)
            if details.error_code is not None:
                errors.append(details)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(200):
        td.flag("a").value(i % 2 == 0)
    stop.set()
    for thread in threads:
        thread.join()
    client.close()
    assert errors == []


def test_close_is_idempotent_and_context_manager_closes() -> None:
    transport = httpx.MockTransport(lambda r: event_stream(sse("snapshot", 1)))
    with FaderClient(KEY, transport=transport) as client:
        assert client.is_ready
    client.close()
