"""Browser keys cannot steer releases (docs/security.md): a client key reports events only about
client-side flags, every stored event says which kind of key reported it and when the server
received it, each key is rate limited, and timestamps the server cannot store are refused.

Real servers (uvicorn in a thread) on SQLite and PostgreSQL; the stored rows are read back from
the database. The rate limiter's own arithmetic (refill, LRU bound) is checked with an injected
clock at the end.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import ADMIN_PASSWORD, LogSink, running_server
from server_api import create_flag, unique

from fader_server.delivery.event_limits import EventRateLimitedError, EventRateLimiter
from fader_server.settings import Settings
from fader_server.storage.sql.tables import sdk_events

PROBLEM = "application/problem+json"
EVENTS = "/api/v1/sdk/events"


@dataclass
class Deployment:
    url: str
    admin_token: str
    database_url: str

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


def _deployment(
    request: pytest.FixtureRequest, data_dir: Path, log_sink: LogSink, **settings: Any
) -> Iterator[Deployment]:
    backend: str = request.param
    database_url = (
        request.getfixturevalue("module_postgres_url") if backend == "postgresql" else None
    )
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    configured = Settings(
        data_dir=data_dir,
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        rollout_tick_seconds=0,
        **settings,
    )
    with running_server(backend, configured, log_sink) as running:
        yield Deployment(running.url, token, configured.effective_database_url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[Deployment]:
    yield from _deployment(request, tmp_path_factory.mktemp("events"), log_sink)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[Deployment]:
    """One event per second per key: the burst is one full batch (1,000), then 429."""
    data_dir = tmp_path_factory.mktemp("limited")
    yield from _deployment(request, data_dir, log_sink, sdk_events_per_second=1.0)


@dataclass
class Keys:
    project: str
    server: str
    client: str


def keys_for(deployment: Deployment) -> Keys:
    """A project whose production has a client-side flag and a server-only one, and a server
    key and a client key for production."""
    project = unique("ev")
    with deployment.client(deployment.admin_token) as admin:
        created = admin.post("/api/v1/projects", json={"key": project, "name": "Events"})
        assert created.status_code == 201, created.text
        create_flag(admin, project, "public-banner", client_side=True)
        create_flag(admin, project, "checkout")  # server-only
        made = {}
        for kind in ("server", "client"):
            response = admin.post(
                "/api/v1/tokens",
                json={"kind": kind, "name": kind, "project": project, "environment": "production"},
            )
            assert response.status_code == 201, response.text
            made[kind] = response.json()["token"]
    return Keys(project, made["server"], made["client"])


def stored(deployment: Deployment, project: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(deployment.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    sdk_events.c.kind,
                    sdk_events.c.flag,
                    sdk_events.c.name,
                    sdk_events.c.key_kind,
                    sdk_events.c.occurred_at,
                    sdk_events.c.received_at,
                )
                .join_from(
                    sdk_events,
                    sa.table("projects", sa.column("id"), sa.column("key")),
                    sa.text("projects.id = sdk_events.project_id"),
                )
                .where(sa.text("projects.key = :p"))
                .params(p=project)
                .order_by(sdk_events.c.id)
            ).all()
    finally:
        engine.dispose()
    return [dict(r._mapping) for r in rows]


def exposure(flag: str, when: float, variant: str = "on") -> dict[str, Any]:
    return {"kind": "exposure", "flag": flag, "variant": variant, "timestamp": when}


def custom(name: str, when: float, flag: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"kind": "custom", "name": name, "value": 1, "timestamp": when}
    if flag is not None:
        event.update(flag=flag, variant="on")
    return event


def aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes (stored as UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------- refusals
def test_a_client_key_reports_events_only_about_client_side_flags(
    deployment: Deployment,
) -> None:
    keys = keys_for(deployment)
    now = time.time()
    tomorrow = now + 86_400
    batch = [
        exposure("checkout", now),  # server-only: refused
        exposure("public-banner", now),
        custom("checkout.error", now, flag="checkout"),  # about a server-only flag: refused
        custom("page.view", tomorrow),  # no flag: stored, feeds no gate
        exposure("no-such-flag", now),  # refused
    ]
    with deployment.client(keys.client) as browser:
        response = browser.post(EVENTS, json={"events": batch})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["refused"]] == [0, 2, 4]
    assert "not available to client keys" in body["refused"][0]["reason"]
    assert "no flag 'no-such-flag'" in body["refused"][2]["reason"]

    with deployment.client(keys.server) as backend:
        response = backend.post(EVENTS, json={"events": [exposure("checkout", tomorrow)]})
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1}  # no `refused` when nothing was refused

    rows = stored(deployment, keys.project)
    assert [(r["kind"], r["flag"], r["name"], r["key_kind"]) for r in rows] == [
        ("exposure", "public-banner", None, "client"),
        ("custom", None, "page.view", "client"),
        ("exposure", "checkout", None, "server"),
    ]
    # The server's clock says when each event arrived, whatever the reporter claimed: an event
    # stamped tomorrow is received today (and gates count by `received_at`).
    received = aware(rows[2]["received_at"]).timestamp()
    assert abs(received - now) < 3600
    assert aware(rows[2]["occurred_at"]).timestamp() == pytest.approx(tomorrow, abs=1e-3)


def test_a_flag_made_server_only_stops_taking_client_events(deployment: Deployment) -> None:
    keys = keys_for(deployment)
    with deployment.client(deployment.admin_token) as admin:
        path = f"/api/v1/projects/{keys.project}/flags/public-banner"
        flag = admin.get(path).json()
        body = {k: flag[k] for k in ("name", "type", "variants")}
        changed = admin.put(path, json={**body, "client_side": False}, headers={"If-Match": '"1"'})
        assert changed.status_code == 200, changed.text
    deadline = time.monotonic() + 30  # the snapshot a replica holds is confirmed within 1 s
    with deployment.client(keys.client) as browser:
        while True:
            response = browser.post(EVENTS, json={"events": [exposure("public-banner", 1.0)]})
            assert response.status_code == 202, response.text
            if response.json()["accepted"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert response.json()["accepted"] == 0


@pytest.mark.parametrize(
    "timestamp", ["1e20", "-5", "NaN", "Infinity"], ids=["far-future", "negative", "nan", "inf"]
)
def test_timestamps_the_server_cannot_store_are_refused_not_a_crash(
    deployment: Deployment, timestamp: str
) -> None:
    keys = keys_for(deployment)
    raw = '{"events": [{"kind": "custom", "name": "n", "timestamp": ' + timestamp + "}]}"
    with deployment.client(keys.server) as backend:
        response = backend.post(EVENTS, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "/body/events/0" in json.dumps(response.json()["errors"])


# ---------------------------------------------------------------------------- rate limit
def test_a_key_over_its_rate_gets_429_and_other_keys_do_not(limited: Deployment) -> None:
    keys = keys_for(limited)
    now = time.time()
    full = [custom("tick", now) for _ in range(1000)]
    with limited.client(keys.server) as backend:
        first = backend.post(EVENTS, json={"events": full})
        assert first.status_code == 202, first.text
        # The burst is spent; 500 more would take 500 s at one event per second.
        over = backend.post(EVENTS, json={"events": full[:500]})
    assert over.status_code == 429, over.text
    assert over.headers["content-type"] == PROBLEM
    problem = over.json()
    assert problem["category"] == "retryable"
    assert "FADER_SDK_EVENTS_PER_SECOND" in problem["detail"]
    assert int(over.headers["retry-after"]) >= 1
    with limited.client(keys.client) as browser:  # another key has its own bucket
        assert browser.post(EVENTS, json={"events": full[:10]}).status_code == 202
    assert len(stored(limited, keys.project)) == 1010


# ------------------------------------------------------------------------ the limiter
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_buckets_refill_at_the_rate_and_a_batch_is_all_or_nothing() -> None:
    clock = FakeClock()
    limiter = EventRateLimiter(10, burst=100, monotonic=clock)
    limiter.take(1, 100)
    with pytest.raises(EventRateLimitedError) as refused:
        limiter.take(1, 20)
    assert refused.value.retry_after == 2  # 20 events at 10 per second
    clock.now += 1.5
    limiter.take(1, 15)  # refilled 15
    with pytest.raises(EventRateLimitedError):
        limiter.take(1, 1)
    limiter.take(2, 100)  # another key


def test_the_limiter_keeps_a_bounded_number_of_buckets() -> None:
    clock = FakeClock()
    limiter = EventRateLimiter(1, burst=10, max_keys=3, monotonic=clock)
    for key in (1, 2, 3):
        limiter.take(key, 10)
    with pytest.raises(EventRateLimitedError):
        limiter.take(1, 1)  # key 1 is now the most recently used (and empty)
    limiter.take(4, 1)  # a fourth key evicts key 2, the least recently used
    assert len(limiter) == 3
    with pytest.raises(EventRateLimitedError):
        limiter.take(1, 1)  # kept
    limiter.take(2, 10)  # evicted: a fresh bucket, never more than a new key would get


def test_a_limiter_with_a_zero_rate_admits_everything() -> None:
    limiter = EventRateLimiter(0)
    for _ in range(100):
        limiter.take(1, 1000)
    assert len(limiter) == 0
