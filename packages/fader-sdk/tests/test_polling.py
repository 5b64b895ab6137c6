"""Polling with ETag / If-None-Match."""

from __future__ import annotations

import httpx
from sdk_doubles import FakeClock, Recorder, Sleeper, http_client, snapshot

from fader_sdk.holder import FlagSetHolder
from fader_sdk.sources.polling import PollingSource


def test_unchanged_configuration_costs_a_304() -> None:
    def script(request: httpx.Request, n: int) -> httpx.Response:
        if request.headers.get("If-None-Match") == '"17"':
            return httpx.Response(304)
        return httpx.Response(200, json=snapshot(17), headers={"ETag": '"17"'})

    recorder = Recorder(script)
    sleeper = Sleeper(FakeClock(), limit=3)
    source = PollingSource(http_client(recorder), interval=30.0, sleep=sleeper)
    sleeper.stop = source.close
    holder = FlagSetHolder()
    versions: list[int] = []
    holder.add_listener(lambda old, new: versions.append(new.version))
    source.run(holder)
    assert [r.headers.get("If-None-Match") for r in recorder.requests] == [None, '"17"', '"17"']
    assert versions == [17]  # 304s change nothing
    assert sleeper.delays == [30.0, 30.0, 30.0]
    assert holder.is_fresh


def test_failures_keep_the_interval_and_the_last_snapshot() -> None:
    def script(request: httpx.Request, n: int) -> httpx.Response:
        if n == 0:
            return httpx.Response(200, json=snapshot(3), headers={"ETag": '"3"'})
        return httpx.Response(503, headers={"Retry-After": "90"})

    recorder = Recorder(script)
    sleeper = Sleeper(FakeClock(), limit=2)
    source = PollingSource(http_client(recorder), interval=30.0, sleep=sleeper)
    sleeper.stop = source.close
    holder = FlagSetHolder()
    source.run(holder)
    assert sleeper.delays == [30.0, 90.0]
    assert holder.current is not None
    assert holder.current.version == 3


def test_unauthorized_stops_polling() -> None:
    recorder = Recorder(lambda r, n: httpx.Response(401))
    source = PollingSource(http_client(recorder), sleep=lambda s: None)
    holder = FlagSetHolder()
    source.run(holder)
    assert len(recorder.requests) == 1
    assert holder.fatal_error is not None
