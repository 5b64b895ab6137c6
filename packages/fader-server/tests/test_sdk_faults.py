"""The Python SDK against real `fader serve` processes that fail: down at start, SIGKILLed
mid-stream, behind a proxy that goes silent, one of two replicas dying; plus event delivery and
the OpenFeature provider end to end.

Each test asserts what the application sees (values, reasons, error codes, readiness, the order
in which it saw them) and that it converges; it never asserts how fast. Waits have generous
deadlines (`DEADLINE`) because the suite must pass on a loaded two-core machine; the measured
times are printed (run with ``-s -p no:xdist`` to read them) and attached to the JUnit report as
properties, and speed is measured by ``bench/``, not here. Servers send heartbeats every
`HEARTBEAT` seconds and clients use short reconnect and poll intervals, so the file stays fast;
nothing sleeps blindly: every wait polls for a condition with a deadline.

Process starts dominate the cost, so a server that only has to *exist* before the SDK starts
(a database with a project and a key in it) is prepared in-process (`offline_setup`), and the
tests that never kill their server share one PostgreSQL-backed process (`shared_server`).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN_URL, LogSink, running_server
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode as OFErrorCode
from openfeature.exception import ProviderFatalError, ProviderNotReadyError
from openfeature.flag_evaluation import Reason as OFReason
from openfeature.provider import ProviderStatus
from openfeature.provider.no_op_provider import NoOpProvider
from openfeature.track import TrackingEventDetails
from processes import FaderProcess, free_port
from server_api import unique
from tcp_proxy import TcpProxy

from fader_engine import ErrorCode, Reason
from fader_engine.sketches import DistinctSketch
from fader_sdk import NOT_READY_MESSAGE, FaderClient
from fader_sdk.openfeature import FaderProvider
from fader_server.settings import Settings
from fader_server.storage.sql.tables import projects, usage_hours, usage_minutes

HEARTBEAT = 0.5
"""Seconds between the server's heartbeats (FADER_SSE_HEARTBEAT_SECONDS) in these tests."""
STALL_DETECTION = 2.5 * HEARTBEAT
"""The SDK's read timeout: no byte for this long and the stream is treated as dead."""
RECONNECT_CAP = 0.5
"""The clients' longest reconnect delay (`max_reconnect_delay`)."""
POLL_INTERVAL = 2.0
"""How often a client polls while its stream's breaker is open (the default is 30 s)."""
DEADLINE = 30.0
"""How long a test waits for something that must happen (a change reaching the SDK, a
reconnect, a server coming up). Far above what it takes on an idle machine (printed by the
tests), so that only a behaviour that is missing fails, never a slow machine."""
OVERRUN = 10.0
"""How far past a timeout the SDK may return before a test calls it a hang: the promise checked
is that it returns at its timeout instead of waiting for a server that is down, not how
precisely."""
FLAG = "banner"
USER = {"targetingKey": "u-1", "plan": "free"}


# --------------------------------------------------------------------------- helpers
def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` every 10 ms; the seconds it took, or fail after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout:.2f} s: {what}")
        time.sleep(0.01)
    return time.monotonic() - started


@dataclass
class Timings:
    test: str
    record: Callable[[str, object], None]

    def __call__(self, name: str, seconds: float) -> float:
        print(f"\n[faults] {self.test}: {name} = {seconds:.3f} s")
        self.record(name, round(seconds, 3))
        return seconds


@pytest.fixture
def timings(
    request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> Timings:
    return Timings(request.node.name, record_property)


def new_admin_token() -> str:
    return "fdr_admin_" + secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def admin_token() -> str:
    """One FADER_ADMIN_TOKEN for every server of this module: they share a PostgreSQL
    database, and a server started with another value would revoke this one (rotation)."""
    return new_admin_token()


@pytest.fixture
def spawn(tmp_path: Path, admin_token: str) -> Iterator[Callable[..., FaderProcess]]:
    """Makes `fader serve` processes (not started); every one is killed at the end."""
    made: list[FaderProcess] = []

    def make(*, data_dir: Path | None = None, database_url: str | None = None) -> FaderProcess:
        server = FaderProcess(
            port=free_port(),
            admin_token=admin_token,
            log_path=tmp_path / f"server-{len(made)}.log",
            data_dir=data_dir or tmp_path / "data",
            database_url=database_url,
            heartbeat=HEARTBEAT,
        )
        made.append(server)
        return server

    yield make
    for server in made:
        server.kill()
    for server in made:  # faults on the outside must not become errors on the inside
        assert server.errors() == [], server.output()


@contextmanager
def offline_setup(data_dir: Path, admin_token: str) -> Iterator[str]:
    """An in-process server over `data_dir` (SQLite) for setting data up; yields its URL.

    The `fader serve` process of the test starts later over the same file."""
    settings = Settings(
        data_dir=data_dir,
        admin_token=admin_token,
        admin_password="pw-" + admin_token[-16:],
        sse_heartbeat_seconds=HEARTBEAT,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    with running_server("sqlite", settings, LogSink()) as server:
        yield server.url


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this module (per xdist worker), dropped at the end."""
    name = f"fader_faults_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def shared_server(
    pg_database: str, tmp_path_factory: pytest.TempPathFactory, admin_token: str
) -> Iterator[FaderProcess]:
    """One `fader serve` over the module's PostgreSQL database, for tests that keep it alive.
    Tests isolate by project; a stream of an earlier test is gone within a heartbeat."""
    data_dir = tmp_path_factory.mktemp("shared")
    server = FaderProcess(
        port=free_port(),
        admin_token=admin_token,
        log_path=data_dir / "server.log",
        data_dir=data_dir,
        database_url=pg_database,
        heartbeat=HEARTBEAT,
    )
    server.start()
    yield server
    server.kill()
    assert server.errors() == [], server.output()


@dataclass(frozen=True)
class Env:
    """A project with the flag `banner`, and a server SDK key of its production environment."""

    project: str
    sdk_key: str
    key_id: int


def admin_client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def prepare(url: str, token: str, variant: str = "green") -> Env:
    """A project with a string flag `banner` (red/green/blue) serving `variant` in production,
    and a server SDK key for production."""
    project = unique("faults")
    with admin_client(url, token) as admin:
        created = admin.post("/api/v1/projects", json={"key": project, "name": "Faults"})
        assert created.status_code == 201, created.text
        flag = admin.post(
            f"/api/v1/projects/{project}/flags",
            json={
                "key": FLAG,
                "name": "Banner",
                "type": "string",
                "variants": {"red": "red", "green": "green", "blue": "blue"},
            },
        )
        assert flag.status_code == 201, flag.text
        key = admin.post(
            "/api/v1/tokens",
            json={"kind": "server", "name": "sdk", "project": project, "environment": "production"},
        )
        assert key.status_code == 201, key.text
    env = Env(project, key.json()["token"], key.json()["id"])
    serve(url, token, env, variant)
    return env


def serve(
    url: str, token: str, env: Env, variant: str, rules: list[dict[str, Any]] | None = None
) -> None:
    """Turn `banner` on in production, serving `variant` to everyone (or after `rules`)."""
    path = f"/api/v1/projects/{env.project}/environments/production/flags/{FLAG}"
    with admin_client(url, token) as admin:
        current = admin.get(path)
        assert current.status_code == 200, current.text
        config = {
            "enabled": True,
            "offVariant": "red",
            "rules": rules or [],
            "default": {"variant": variant},
        }
        written = admin.put(path, json=config, headers={"If-Match": current.headers["etag"]})
        assert written.status_code == 200, written.text


def sdk(url: str, env: Env, **options: Any) -> FaderClient:
    """A FaderClient tuned for fast tests: short heartbeats, reconnects, polls; no events."""
    settings: dict[str, Any] = {
        "base_url": url,
        "heartbeat_interval": HEARTBEAT,
        "poll_interval": POLL_INTERVAL,
        "max_reconnect_delay": RECONNECT_CAP,
        "init_timeout": 10.0,
        "events": False,
        **options,
    }
    return FaderClient(env.sdk_key, **settings)


def banner(client: FaderClient) -> tuple[Any, Reason, ErrorCode | None]:
    details = client.string_details(FLAG, USER, "code-default")
    return details.value, details.reason, details.error_code


def serves(client: FaderClient, value: str) -> Callable[[], bool]:
    return lambda: client.string(FLAG, USER, "code-default") == value


class Sampler:
    """Evaluates `banner` every few milliseconds on a thread, as an application would, and
    keeps every distinct (value, reason, error code) in the order first seen."""

    def __init__(self, client: FaderClient) -> None:
        self.client = client
        self.seen: list[tuple[Any, Reason, ErrorCode | None]] = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(0.005)
            observed = banner(self.client)  # once more after the stop: the final state
            self.count += 1
            if not self.seen or self.seen[-1] != observed:
                self.seen.append(observed)
            if stopping:
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


GREEN = ("green", Reason.STATIC, None)
BLUE = ("blue", Reason.STATIC, None)


# ------------------------------------------------------------- 1. down at start, no cache
def test_server_down_at_start_serves_defaults_within_init_timeout_then_real_values(
    spawn: Callable[..., FaderProcess], timings: Timings, tmp_path: Path, admin_token: str
) -> None:
    with offline_setup(tmp_path / "data", admin_token) as url:
        env = prepare(url, admin_token, "green")
    server = spawn()  # not started: nothing listens on its port

    started = time.monotonic()
    client = sdk(server.url, env, init_timeout=1.0)
    try:
        blocked = timings("constructor, server down, init_timeout 1 s", time.monotonic() - started)
        assert 1.0 - 0.01 <= blocked < 1.0 + OVERRUN
        assert not client.is_ready
        details = client.string_details(FLAG, USER, "code-default")
        assert (details.value, details.reason, details.error_code) == (
            "code-default",
            Reason.ERROR,
            ErrorCode.GENERAL,
        )
        assert details.error_message == NOT_READY_MESSAGE
        assert client.fatal_error is None  # an outage is no reason to give up

        started = time.monotonic()
        assert client.wait_until_ready(0.3) is False
        waited = timings("wait_until_ready(0.3), server down", time.monotonic() - started)
        assert 0.3 - 0.01 <= waited < 0.3 + OVERRUN

        server.start()
        timings(
            "server ready -> SDK ready",
            wait_for(lambda: client.is_fresh, DEADLINE, "the SDK gets the flags"),
        )
        assert client.is_ready
        assert banner(client) == GREEN
        timings(
            "SDK ready -> streaming again",
            wait_for(lambda: server.streams() == 1, DEADLINE, "a stream"),
        )
        serve(server.url, admin_token, env, "blue")
        timings("next change, streamed", wait_for(serves(client, "blue"), DEADLINE, "the change"))
    finally:
        client.close()


# ----------------------------------------------------------- 2. down at start, with a cache
def test_server_down_at_start_with_a_cache_serves_cached_values_then_converges(
    spawn: Callable[..., FaderProcess], timings: Timings, tmp_path: Path, admin_token: str
) -> None:
    cache = tmp_path / "cache" / "flags.json"
    with offline_setup(tmp_path / "data", admin_token) as url:
        env = prepare(url, admin_token, "green")
        with sdk(url, env, cache_path=cache) as earlier_run:
            assert banner(earlier_run) == GREEN
        assert json.loads(cache.read_text())["project"] == env.project
        serve(url, admin_token, env, "blue")  # the server moves on after the cache was written
    server = spawn()  # not started

    started = time.monotonic()
    client = sdk(server.url, env, cache_path=cache, init_timeout=0.5)
    try:
        blocked = timings("constructor, server down, cache", time.monotonic() - started)
        assert blocked < 0.5 + OVERRUN
        assert client.is_ready
        assert not client.is_fresh
        assert banner(client) == GREEN  # the cached value, with its real reason

        server.start()
        timings(
            "server ready -> cached values replaced",
            wait_for(serves(client, "blue"), DEADLINE, "the server's values"),
        )
        assert client.is_fresh
        assert banner(client) == BLUE
        wait_for(
            lambda: (
                json.loads(cache.read_text())["document"]["flags"][FLAG]["default"]
                == {"variant": "blue"}
            ),
            DEADLINE,
            "the cache file holds the new configuration",
        )
        wait_for(lambda: server.streams() == 1, DEADLINE, "a stream")
    finally:
        client.close()


# ------------------------------------------------- 3. killed mid-stream, changed, restarted
def test_server_killed_mid_stream_serves_last_known_values_and_converges_after_restart(
    spawn: Callable[..., FaderProcess], timings: Timings, admin_token: str
) -> None:
    server = spawn()
    server.start()
    env = prepare(server.url, admin_token, "green")
    client = sdk(server.url, env)
    try:
        assert client.is_fresh
        wait_for(lambda: server.streams() == 1, DEADLINE, "the SDK's stream")
        assert server.streams("fader_sdk_streams_direct") == 1, "fader serve writes it directly"
        with Sampler(client) as sampler:
            server.kill()
            killed = time.monotonic()
            # The flag changes while the SDK's server is down: another server over the same
            # SQLite file, on a port the SDK does not know.
            with offline_setup(server.data_dir, admin_token) as url:
                serve(url, admin_token, env, "blue")
            assert banner(client) == GREEN
            assert client.fatal_error is None
            timings("outage before the restart", time.monotonic() - killed)
            server.start()
            timings(
                "restarted server ready -> SDK converged",
                wait_for(serves(client, "blue"), DEADLINE, "the new value"),
            )
        # Through the whole outage: the last known value, then the new one; never a default.
        assert sampler.seen == [GREEN, BLUE]
        assert sampler.count > 100
        timings(
            "converged -> streaming again",
            wait_for(lambda: server.streams() == 1, DEADLINE, "a stream"),
        )
        serve(server.url, admin_token, env, "red")
        timings("next change, streamed", wait_for(serves(client, "red"), DEADLINE, "the change"))
    finally:
        client.close()


# -------------------------------------------------------- 4. a proxy that stops forwarding
def test_a_silent_proxy_is_noticed_by_missing_heartbeats_and_the_sdk_reconnects(
    shared_server: FaderProcess, timings: Timings
) -> None:
    server = shared_server
    env = prepare(server.url, server.admin_token, "green")
    with TcpProxy(server.port) as proxy:
        client = sdk(proxy.url, env)
        try:
            wait_for(lambda: server.streams() == 1, DEADLINE, "only the SDK's stream")
            [stream] = proxy.open_connections()
            with Sampler(client) as sampler:
                proxy.stall()
                stalled = time.monotonic()
                serve(server.url, server.admin_token, env, "blue")  # not through the proxy
                wait_for(
                    lambda: stream.client_closed_at is not None,
                    DEADLINE,
                    "the SDK gives up on the silent stream",
                )
                assert stream.client_closed_at is not None
                assert stream.last_to_client_at is not None
                timings("stall -> SDK drops the stream", stream.client_closed_at - stalled)
                silence = timings(
                    "last byte delivered -> SDK drops the stream",
                    stream.client_closed_at - stream.last_to_client_at,
                )
                assert STALL_DETECTION - 0.05 <= silence <= STALL_DETECTION + OVERRUN
                assert banner(client) == GREEN
                proxy.resume()
                timings(
                    "proxy forwards again -> SDK converged",
                    wait_for(serves(client, "blue"), DEADLINE, "the change"),
                )
                timings("stall -> SDK converged", time.monotonic() - stalled)
            assert sampler.seen == [GREEN, BLUE]
            assert proxy.connections[0] is stream
            assert [c is stream for c in proxy.open_connections()] == [False]
        finally:
            client.close()


# ------------------------------------------------------------ 5. a replica dies behind a LB
def test_when_a_replica_dies_the_sdk_moves_to_another_and_converges(
    spawn: Callable[..., FaderProcess], timings: Timings, pg_database: str, admin_token: str
) -> None:
    a = spawn(database_url=pg_database)
    b = spawn(database_url=pg_database)
    a.start()
    b.start()
    env = prepare(a.url, admin_token, "green")
    with TcpProxy(a.port, b.port) as proxy:  # A while it accepts connections, else B
        client = sdk(proxy.url, env)
        try:
            wait_for(lambda: a.streams() == 1, DEADLINE, "the SDK's stream on replica A")
            assert [c.backend for c in proxy.open_connections()] == [a.port]
            with Sampler(client) as sampler:
                a.kill()
                killed = time.monotonic()
                serve(b.url, admin_token, env, "blue")  # on B, while A is dead
                wait_for(serves(client, "blue"), DEADLINE, "the change")
                timings("replica A killed -> SDK converged via B", time.monotonic() - killed)
            assert sampler.seen == [GREEN, BLUE]
            wait_for(lambda: b.streams() == 1, DEADLINE, "the SDK's stream on replica B")
            assert [c.backend for c in proxy.open_connections()] == [b.port]
            serve(b.url, admin_token, env, "red")
            timings("next change, streamed from B", wait_for(serves(client, "red"), DEADLINE, "it"))
        finally:
            client.close()


# --------------------------------------------------------------------------- 6. summaries
Usage = dict[tuple[str, str, str], tuple[int, float, float]]


def usage(database_url: str, project: str) -> Usage:
    """(flag, metric, variant) -> (count, sum, sum of squares) over every minute row of the
    project's production environment (``""``: evaluations, or no flag or variant)."""
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    m = usage_minutes.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    m.flag, m.metric, m.variant, sa.func.sum(m.count), sa.func.sum(m.total),
                    sa.func.sum(m.total_squares),
                )
                .join(projects, projects.c.id == m.project_id)
                .where(projects.c.key == project, m.environment == "production")
                .group_by(m.flag, m.metric, m.variant)
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    return {(f, n, v): (int(c), float(t), float(q)) for f, n, v, c, t, q in rows}


def contexts(database_url: str, project: str, flag: str, variant: str) -> int:
    """The estimated distinct contexts of the hour sketches of one flag and variant."""
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    h = usage_hours.c
    merged = DistinctSketch()
    try:
        with engine.connect() as conn:
            for (stored,) in conn.execute(
                sa.select(h.contexts)
                .join(projects, projects.c.id == h.project_id)
                .where(
                    projects.c.key == project, h.flag == flag, h.variant == variant,
                    h.metric == "", h.contexts.is_not(None),
                )
            ):  # fmt: skip
                merged.merge(DistinctSketch.from_bytes(stored))
    finally:
        engine.dispose()
    return merged.estimate()


def test_evaluations_and_metrics_reach_the_rollups_as_summaries(
    shared_server: FaderProcess, pg_database: str
) -> None:
    env = prepare(shared_server.url, shared_server.admin_token, "green")
    client = sdk(shared_server.url, env, events=True, event_flush_interval=3600)
    try:
        for i in range(5):
            assert client.string(FLAG, {"targetingKey": f"u-{i}"}, "x") == "green"
        client.string("no-such-flag", {"targetingKey": "u-0"}, "x")  # an error: no variant
        client.track(
            "checkout.completed", {"targetingKey": "u-0"}, 42.5, flag=FLAG, variant="green"
        )
        assert usage(pg_database, env.project) == {}  # nothing sent before the interval ends
        client.flush()
        assert usage(pg_database, env.project) == {
            (FLAG, "", "green"): (5, 0.0, 0.0),
            ("no-such-flag", "", ""): (1, 0.0, 0.0),
            (FLAG, "checkout.completed", "green"): (1, 42.5, 42.5 * 42.5),
        }
        for i in (0, 9):
            client.string(FLAG, {"targetingKey": f"u-{i}"}, "x")
    finally:
        client.close()  # sends the last summary
    assert usage(pg_database, env.project)[(FLAG, "", "green")] == (7, 0.0, 0.0)
    assert contexts(pg_database, env.project, FLAG, "green") == 6  # u-0 to u-4, and u-9
    assert client.dropped.total == 0


def test_summaries_are_kept_through_an_outage_and_sent_when_the_server_is_back(
    spawn: Callable[..., FaderProcess], pg_database: str, admin_token: str
) -> None:
    """Counts wait in the SDK (merged, bounded by its keys) while the server is down, and
    arrive exactly once it is back; a key over the SDK's bound is counted as dropped."""
    server = spawn(database_url=pg_database)
    server.start()
    env = prepare(server.url, admin_token, "green")
    client = sdk(server.url, env, events=True, event_flush_interval=3600, max_summary_keys=2)
    try:
        server.kill()
        for i in range(8):
            client.track("load.ms", {"targetingKey": f"u-{i}"}, float(i))
        client.track("queue.depth", None, 3.0)
        client.track("over.the.bound", None, 1.0)  # a third key: dropped and counted
        client.flush()  # the server is down: the summary is kept for the next try
        server.start()
        for i in range(8, 10):
            client.track("load.ms", {"targetingKey": f"u-{i}"}, float(i))
        client.flush()
    finally:
        client.close()
    assert usage(pg_database, env.project) == {
        ("", "load.ms", ""): (10, 45.0, float(sum(i * i for i in range(10)))),
        ("", "queue.depth", ""): (1, 3.0, 9.0),
    }
    assert client.dropped.measurements == 1


def test_a_revoked_key_stops_sending_and_what_follows_is_counted_as_dropped(
    shared_server: FaderProcess, pg_database: str
) -> None:
    env = prepare(shared_server.url, shared_server.admin_token, "green")
    client = sdk(shared_server.url, env, events=True, event_flush_interval=3600)
    try:
        client.track("checkout.completed", {"targetingKey": "u-1"}, 2.0)
        client.flush()
        with admin_client(shared_server.url, shared_server.admin_token) as admin:
            assert admin.delete(f"/api/v1/tokens/{env.key_id}").status_code == 204
        client.track("checkout.completed", {"targetingKey": "u-2"}, 3.0)
        client.flush()  # 401: the key is revoked, sending stops for good
        client.track("checkout.completed", {"targetingKey": "u-3"}, 4.0)
        client.flush()
    finally:
        client.close()
    assert usage(pg_database, env.project) == {("", "checkout.completed", ""): (1, 2.0, 4.0)}
    assert client.dropped.measurements == 2


# ------------------------------------------------------------------------ 7. OpenFeature
@pytest.fixture
def openfeature_domain() -> Iterator[str]:
    """An OpenFeature domain of this test's own; its provider is shut down at the end."""
    domain = unique("of")
    yield domain
    provider = api.get_client(domain).provider
    api.set_provider(NoOpProvider(), domain)
    if isinstance(provider, FaderProvider):
        provider.shutdown()


def test_openfeature_provider_serves_values_and_reasons_from_a_real_server(
    shared_server: FaderProcess, pg_database: str, openfeature_domain: str
) -> None:
    server = shared_server
    env = prepare(server.url, server.admin_token, "green")
    pro = {"clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}], "variant": "blue"}
    serve(server.url, server.admin_token, env, "green", rules=[pro])
    provider = FaderProvider(sdk(server.url, env, init_timeout=0, events=True), init_timeout=10)
    api.set_provider_and_wait(provider, openfeature_domain)
    client = api.get_client(openfeature_domain)
    assert client.get_provider_status() is ProviderStatus.READY
    assert api.get_provider_metadata(openfeature_domain).name == "fader"

    targeted = client.get_string_details(FLAG, "x", EvaluationContext("u-1", {"plan": "pro"}))
    assert (targeted.value, targeted.reason, targeted.variant) == (
        "blue",
        OFReason.TARGETING_MATCH,
        "blue",
    )
    other = client.get_string_details(FLAG, "x", EvaluationContext("u-2", {"plan": "free"}))
    assert (other.value, other.reason, other.variant, other.error_code) == (
        "green",
        OFReason.DEFAULT,
        "green",
        None,
    )
    missing = client.get_boolean_details("no-such-flag", True)
    assert (missing.value, missing.reason, missing.error_code) == (
        True,
        OFReason.ERROR,
        OFErrorCode.FLAG_NOT_FOUND,
    )
    mismatch = client.get_integer_details(FLAG, 3)
    assert (mismatch.value, mismatch.error_code) == (3, OFErrorCode.TYPE_MISMATCH)

    changed: list[list[str] | None] = []

    def on_change(details: EventDetails) -> None:
        changed.append(details.flags_changed)

    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    try:
        serve(server.url, server.admin_token, env, "red")
        wait_for(lambda: changed == [[FLAG]], DEADLINE, "a configuration-changed event")
    finally:
        client.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    plain = client.get_string_details(FLAG, "x", EvaluationContext("u-1", {"plan": "pro"}))
    assert (plain.value, plain.reason) == ("red", OFReason.STATIC)

    client.track("checkout.completed", EvaluationContext("u-1"), TrackingEventDetails(9.5))
    provider.shutdown()  # sends the last summary
    counted = usage(pg_database, env.project)
    assert counted[("", "checkout.completed", "")] == (1, 9.5, 90.25)
    # every evaluation counted, by the variant served (errors served none)
    assert {k: v[0] for k, v in counted.items() if k[1] == ""} == {
        (FLAG, "", "blue"): 1,
        (FLAG, "", "green"): 1,
        (FLAG, "", "red"): 1,
        (FLAG, "", ""): 1,
        ("no-such-flag", "", ""): 1,
    }


def test_openfeature_provider_becomes_ready_when_a_server_down_at_start_comes_up(
    spawn: Callable[..., FaderProcess],
    timings: Timings,
    tmp_path: Path,
    admin_token: str,
    openfeature_domain: str,
) -> None:
    with offline_setup(tmp_path / "data", admin_token) as url:
        env = prepare(url, admin_token, "green")
    server = spawn()  # not started
    provider = FaderProvider(sdk(server.url, env, init_timeout=0), init_timeout=0.5)
    with pytest.raises(ProviderNotReadyError):
        api.set_provider_and_wait(provider, openfeature_domain)
    client = api.get_client(openfeature_domain)
    assert client.get_provider_status() is ProviderStatus.ERROR
    details = client.get_string_details(FLAG, "x")
    assert (details.value, details.reason, details.error_code) == (
        "x",
        OFReason.ERROR,
        OFErrorCode.PROVIDER_NOT_READY,
    )
    ready = threading.Event()

    def on_ready(details: EventDetails) -> None:
        ready.set()

    client.add_handler(ProviderEvent.PROVIDER_READY, on_ready)
    try:
        server.start()
        timings(
            "server ready -> provider READY",
            wait_for(
                lambda: client.get_provider_status() is ProviderStatus.READY,
                DEADLINE,
                "the provider turns READY",
            ),
        )
        assert ready.wait(DEADLINE)
    finally:
        client.remove_handler(ProviderEvent.PROVIDER_READY, on_ready)
    details = client.get_string_details(FLAG, "x")
    assert (details.value, details.reason, details.error_code) == ("green", OFReason.STATIC, None)


def test_openfeature_provider_with_a_revoked_key_is_fatal_at_once(
    shared_server: FaderProcess, openfeature_domain: str
) -> None:
    env = prepare(shared_server.url, shared_server.admin_token, "green")
    with admin_client(shared_server.url, shared_server.admin_token) as admin:
        assert admin.delete(f"/api/v1/tokens/{env.key_id}").status_code == 204
    started = time.monotonic()
    provider = FaderProvider(sdk(shared_server.url, env, init_timeout=0), init_timeout=120)
    with pytest.raises(ProviderFatalError, match="server-side SDK key"):
        api.set_provider_and_wait(provider, openfeature_domain)
    # At once: not after waiting out the 120 s init timeout (a hang would take all of it).
    assert time.monotonic() - started < DEADLINE
    client = api.get_client(openfeature_domain)
    assert client.get_provider_status() is ProviderStatus.FATAL
    details = client.get_string_details(FLAG, "x")
    assert (details.value, details.error_code) == ("x", OFErrorCode.PROVIDER_FATAL)
