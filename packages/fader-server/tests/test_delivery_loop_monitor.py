"""The event-loop stall monitor: it measures how long the loop was held, on asyncio's loop and
on uvloop, and a real `fader serve` exports it on /metrics while it serves streams.

The stalls measured here are made by the tests themselves (a callback that holds the loop);
nothing in the server blocks on purpose. No test bounds a latency: a stall is only checked to
be seen as at least as long as the tests made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import uvloop
from processes import FaderProcess, free_port
from prometheus_client import CollectorRegistry, generate_latest
from server_api import create_flag, unique
from sse import open_stream

from fader_server.delivery.loop_monitor import LoopMonitor

HELD = 0.06
"""Seconds the tests hold the loop."""
STREAMS = 12


def _hold_loop(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_a_held_loop_is_measured_and_each_reading_restarts_the_maximum(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    registry = CollectorRegistry()
    monitor = LoopMonitor(registry, interval=0.005)

    async def scenario() -> tuple[float, float, bool]:
        monitor.start()
        await asyncio.sleep(0.05)  # a few ticks first
        monitor.take_longest()
        asyncio.get_running_loop().call_soon(_hold_loop, HELD)
        await asyncio.sleep(0.05)  # the tick after the stall has run
        longest = monitor.take_longest()
        again = monitor.take_longest()
        monitor.stop()
        return longest, again, monitor.running

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        longest, again, running = runner.run(scenario())
    assert longest >= HELD - monitor.interval, "the stall is seen, to within one interval"
    assert again == 0.0, "reading the maximum restarts it"
    assert not running
    samples = {
        (s.name, s.labels.get("le")): s.value
        for metric in registry.collect()
        for s in metric.samples
    }
    # Ticks before and after the stall at least; how many more depends on the machine's load
    # (a busy machine wakes the loop later than every interval), so no higher count is asked.
    assert samples["fader_event_loop_lag_seconds_count", None] >= 2
    assert (
        samples["fader_event_loop_lag_seconds_bucket", "0.05"]
        < (samples["fader_event_loop_lag_seconds_bucket", "+Inf"])
    ), "the stall landed above the 50 ms bucket"


def test_the_maximum_is_exported_and_restarted_by_each_scrape() -> None:
    registry = CollectorRegistry()
    monitor = LoopMonitor(registry)

    async def scenario() -> tuple[bytes, bytes]:
        monitor.start()
        asyncio.get_running_loop().call_soon(_hold_loop, HELD)
        await asyncio.sleep(0.05)
        monitor.stop()
        return generate_latest(registry), generate_latest(registry)

    first, second = asyncio.run(scenario())
    assert _value(first.decode(), "fader_event_loop_lag_max_seconds") >= HELD - monitor.interval
    assert _value(second.decode(), "fader_event_loop_lag_max_seconds") == 0.0


def test_a_monitor_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        LoopMonitor(CollectorRegistry(), interval=0)


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def test_fader_serve_exports_its_loop_stalls_while_it_fans_out(tmp_path: Path) -> None:
    server = FaderProcess(
        port=free_port(),
        admin_token="fdr_admin_" + secrets.token_urlsafe(32),
        log_path=tmp_path / "serve.log",
        data_dir=tmp_path / "data",
        heartbeat=60,
    )
    server.start()
    try:
        with server.admin() as admin:
            project = unique("loop")
            created = admin.post("/api/v1/projects", json={"key": project, "name": "Loop"})
            assert created.status_code == 201, created.text
            create_flag(admin, project, "new-checkout")
            scope = {"project": project, "environment": "production"}
            token = admin.post("/api/v1/tokens", json={"kind": "server", "name": "k", **scope})
            assert token.status_code == 201, token.text
            key = token.json()["token"]
            before = httpx.get(server.url + "/metrics", timeout=30).text
            with contextlib.ExitStack() as stack:
                streams = [
                    stack.enter_context(open_stream(server.url, key, patches=True, timeout=30))
                    for _ in range(STREAMS)
                ]
                versions = [stream.next().json()["version"] for stream in streams]
                toggled = admin.post(
                    f"/api/v1/projects/{project}/environments/production/flags/new-checkout/toggle",
                    json={"enabled": True},
                )
                assert toggled.status_code == 200, toggled.text
                patches = [stream.next() for stream in streams]
            after = httpx.get(server.url + "/metrics", timeout=30).text
    finally:
        server.kill()
    assert [p.event for p in patches] == ["patch"] * STREAMS
    assert [p.json()["base"] for p in patches] == versions
    ticks = "fader_event_loop_lag_seconds_count"
    assert _value(after, ticks) > _value(before, ticks), "the monitor ticks in the server"
    assert _value(after, "fader_event_loop_lag_max_seconds") > 0.0, (
        "the requests, streams and fan-out since the previous scrape held the loop a little"
    )
    assert 'python_gc_collections_total{generation="2"}' in after  # runtime/gc_policy.py
    assert not server.errors()
