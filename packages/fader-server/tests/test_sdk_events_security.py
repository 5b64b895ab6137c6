"""Browser keys cannot steer releases (docs/security.md), and what SDKs send is bounded
(docs/events.md, section 2): a client key reports only about client-side flags, every stored
rollup row says which kind of key reported it and counts in the minute the server received it,
each key is rate limited by items, and summaries the server cannot store (bad counts, sums,
timestamps, sketches) are refused naming the item. The deprecated events endpoint folds its
items into the same rollups and says it is deprecated.

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
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from conftest import ADMIN_PASSWORD, LogSink, running_server
from server_api import create_flag, unique

from fader_engine.sketches import DistinctSketch
from fader_server.delivery.event_limits import EventRateLimitedError, EventRateLimiter
from fader_server.settings import Settings
from fader_server.storage.sql.tables import debug_events, projects, usage_hours, usage_minutes

PROBLEM = "application/problem+json"
SUMMARIES = "/api/v1/sdk/summaries"
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
    """One item per second per key: the burst is one full list (1,000), then 429."""
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


def aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes (stored as UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def stored(deployment: Deployment, project: str) -> list[dict[str, Any]]:
    """The project's minute rows, by flag, metric, variant and key kind."""
    engine = sa.create_engine(deployment.database_url)
    m = usage_minutes.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    m.flag, m.metric, m.variant, m.key_kind, m.minute, m.count, m.total,
                    m.total_squares,
                )
                .join(projects, projects.c.id == m.project_id)
                .where(projects.c.key == project)
                .order_by(m.flag, m.metric, m.variant, m.key_kind, m.minute)
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    return [{**r._mapping, "minute": aware(r.minute)} for r in rows]


def hour_sketches(deployment: Deployment, project: str) -> list[tuple[str, str, int]]:
    engine = sa.create_engine(deployment.database_url)
    h = usage_hours.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(h.flag, h.key_kind, h.contexts)
                .join(projects, projects.c.id == h.project_id)
                .where(projects.c.key == project, h.metric == "", h.contexts.is_not(None))
                .order_by(h.flag, h.key_kind)
            ).all()
    finally:
        engine.dispose()
    return [(r.flag, r.key_kind, DistinctSketch.from_bytes(r.contexts).estimate()) for r in rows]


def debug_rows(deployment: Deployment, project: str) -> list[tuple[str, str, str | None]]:
    engine = sa.create_engine(deployment.database_url)
    d = debug_events.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(d.flag, d.key_kind, d.targeting_key)
                .join(projects, projects.c.id == d.project_id)
                .where(projects.c.key == project)
                .order_by(d.id)
            ).all()
    finally:
        engine.dispose()
    return [tuple(r) for r in rows]


def evaluation(flag: str, count: int = 1, variant: str | None = "on", **extra: Any) -> Any:
    return {"flag": flag, "variant": variant, "reason": "SPLIT", "count": count, **extra}


def metric(name: str, flag: str | None = None, count: int = 1, value: float = 1.0) -> Any:
    item: dict[str, Any] = {
        "name": name, "count": count, "sum": value * count, "sum_squares": value * value * count,
    }  # fmt: skip
    if flag is not None:
        item.update(flag=flag, variant="on")
    return item


def debug(flag: str, key: str, when: float) -> Any:
    return {"flag": flag, "variant": "on", "reason": "SPLIT", "targeting_key": key,
            "timestamp": when}  # fmt: skip


def summary(when: float, **lists: Any) -> dict[str, Any]:
    return {"start": when - 5, "end": when, **lists}


# ----------------------------------------------------------------------------- refusals
def test_a_client_key_reports_only_about_client_side_flags(deployment: Deployment) -> None:
    keys = keys_for(deployment)
    now = time.time()
    tomorrow = now + 86_400
    sent = summary(
        tomorrow,  # the SDK's clock says tomorrow: the server's receive time counts
        evaluations=[
            evaluation("checkout", 40),  # server-only: refused
            evaluation("public-banner", 30),
            evaluation("no-such-flag", 5),  # refused
        ],
        metrics=[
            metric("checkout.error", flag="checkout"),  # about a server-only flag: refused
            metric("page.view", count=4, value=2.0),  # no flag: stored, feeds no gate
        ],
        events=[debug("checkout", "u-1", now), debug("public-banner", "u-2", now)],
    )
    with deployment.client(keys.client) as browser:
        response = browser.post(SUMMARIES, json=sent)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 3
    assert [(r["list"], r["index"]) for r in body["refused"]] == [
        ("evaluations", 0),
        ("evaluations", 2),
        ("metrics", 0),
        ("events", 0),
    ]
    assert "not available to client keys" in body["refused"][0]["reason"]
    assert "no flag 'no-such-flag'" in body["refused"][1]["reason"]

    with deployment.client(keys.server) as backend:
        response = backend.post(SUMMARIES, json=summary(tomorrow, evaluations=[
            evaluation("checkout", 7, contexts={"exact": 2, "sketch": DistinctSketch().update(
                ["a", "b"]).encode()}),
        ]))  # fmt: skip
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "refused": [], "duplicate": False}

    rows = stored(deployment, keys.project)
    assert [(r["flag"], r["metric"], r["variant"], r["key_kind"], r["count"]) for r in rows] == [
        ("", "page.view", "", "client", 4),
        ("checkout", "", "on", "server", 7),
        ("public-banner", "", "on", "client", 30),
    ]
    assert (rows[0]["total"], rows[0]["total_squares"]) == (8.0, 16.0)
    # The server's clock says when each item arrived, whatever the reporter claimed: a summary
    # stamped tomorrow is received today (and gates count by the minute received).
    assert all(abs(r["minute"].timestamp() - now) < 3600 for r in rows)
    assert hour_sketches(deployment, keys.project) == [("checkout", "server", 2)]
    assert debug_rows(deployment, keys.project) == [("public-banner", "client", "u-2")]


def test_a_flag_made_server_only_stops_taking_client_reports(deployment: Deployment) -> None:
    keys = keys_for(deployment)
    with deployment.client(deployment.admin_token) as admin:
        path = f"/api/v1/projects/{keys.project}/flags/public-banner"
        flag = admin.get(path).json()
        body = {k: flag[k] for k in ("name", "type", "variants")}
        changed = admin.put(path, json={**body, "client_side": False}, headers={"If-Match": '"1"'})
        assert changed.status_code == 200, changed.text
    deadline = time.monotonic() + 30  # the snapshot a replica holds is confirmed within 1 s
    sent = summary(time.time(), evaluations=[evaluation("public-banner")])
    with deployment.client(keys.client) as browser:
        while True:
            response = browser.post(SUMMARIES, json=sent)
            assert response.status_code == 202, response.text
            if response.json()["accepted"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert response.json()["accepted"] == 0


def test_an_item_may_bring_only_contexts_to_the_hour(deployment: Deployment) -> None:
    """SDKs send distinct contexts once a minute, on an item of count 0 when the interval had
    no evaluation of that flag and variant: the hour's sketch grows, no minute row appears."""
    keys = keys_for(deployment)
    sketch = DistinctSketch().update(["u-1", "u-2", "u-3"]).encode()
    sent = summary(time.time(), evaluations=[
        evaluation("checkout", 0, contexts={"exact": 3, "sketch": sketch}),
    ])  # fmt: skip
    with deployment.client(keys.server) as backend:
        response = backend.post(SUMMARIES, json=sent)
    assert response.status_code == 202, response.text
    assert stored(deployment, keys.project) == []  # no minute row
    assert hour_sketches(deployment, keys.project) == [("checkout", "server", 3)]


# ------------------------------------------------------------------------- bad summaries
SKETCH = DistinctSketch().update(["a"]).encode()
BAD_ITEMS = {
    "count-zero": ("evaluations", evaluation("checkout", 0), "count"),
    "count-over-2^53": ("evaluations", evaluation("checkout", 2**53 + 1), "count"),
    "count-not-integer": ("evaluations", evaluation("checkout", 1.5), "count"),
    "flag-empty": ("evaluations", evaluation("", 1), "flag"),
    "flag-too-long": ("evaluations", evaluation("f" * 129, 1), "flag"),
    "variant-too-long": ("evaluations", evaluation("checkout", 1, "v" * 129), "variant"),
    "sketch-not-base64": (
        "evaluations", evaluation("checkout", contexts={"sketch": "***"}), "contexts/sketch",
    ),
    "sketch-not-zlib": (
        "evaluations", evaluation("checkout", contexts={"sketch": "AAAA"}), "contexts/sketch",
    ),
    "sketch-wrong-size": (
        "evaluations",
        evaluation("checkout", contexts={"sketch": DistinctSketch().encode()[:-8] + "AAAAAAAA"}),
        "contexts/sketch",
    ),
    "unknown-field": ("evaluations", evaluation("checkout", colour="red"), "colour"),
    "metric-name-empty": ("metrics", metric(""), "name"),
    "sum-not-a-number": ("metrics", {**metric("m"), "sum": "3.0"}, "sum"),
    "sum-squares-negative": ("metrics", {**metric("m"), "sum_squares": -1.0}, "sum_squares"),
    "event-key-too-long": ("events", debug("checkout", "k" * 257, 1.0), "targeting_key"),
    "event-time-negative": ("events", debug("checkout", "k", -1.0), "timestamp"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_ITEMS))
def test_a_summary_with_an_item_the_server_cannot_store_is_refused_naming_it(
    deployment: Deployment, case: str
) -> None:
    keys = keys_for(deployment)
    name, item, field = BAD_ITEMS[case]
    good = {"evaluations": evaluation("checkout"), "metrics": metric("m"),
            "events": debug("checkout", "k", 1.0)}[name]  # fmt: skip
    sent = summary(time.time(), **{name: [good, item]})
    with deployment.client(keys.server) as backend:
        response = backend.post(SUMMARIES, json=sent)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    paths = [e["path"] for e in response.json()["errors"]]
    assert any(p.startswith(f"/body/{name}/1/{field}") for p in paths), paths
    assert stored(deployment, keys.project) == []  # refused whole: nothing of it is stored


@pytest.mark.parametrize(
    "raw",
    [
        '{"start": 1e20, "end": 1}',
        '{"start": -5, "end": 1}',
        '{"start": NaN, "end": 1}',
        '{"start": 1, "end": Infinity}',
        '{"start": 1, "end": 2, "metrics": [{"name": "m", "count": 1, "sum": NaN, '
        '"sum_squares": 0}]}',
        '{"start": 1, "end": 2, "evaluations": ['
        + ",".join(['{"flag": "f", "count": 1}'] * 1001)
        + "]}",
    ],
    ids=["far-future", "negative", "nan", "inf", "nan-sum", "1001-items"],
)
def test_numbers_and_lists_the_server_cannot_store_are_refused_not_a_crash(
    deployment: Deployment, raw: str
) -> None:
    keys = keys_for(deployment)
    with deployment.client(keys.server) as backend:
        response = backend.post(
            SUMMARIES, content=raw, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM


# ------------------------------------------------------------------ the deprecated events
def test_older_sdks_events_fold_into_the_same_rollups_and_are_told_of_the_sunset(
    deployment: Deployment,
) -> None:
    keys = keys_for(deployment)
    now = time.time()
    batch = [
        {"kind": "exposure", "flag": "checkout", "variant": "on", "targeting_key": "u-1",
         "timestamp": now},
        {"kind": "exposure", "flag": "checkout", "variant": "on", "targeting_key": "u-2",
         "timestamp": now},
        {"kind": "exposure", "flag": "checkout", "variant": "on", "targeting_key": "u-1",
         "timestamp": now + 86_400},
        {"kind": "custom", "name": "latency", "value": 3.0, "flag": "checkout", "variant": "on",
         "timestamp": now},
        {"kind": "custom", "name": "latency", "flag": "checkout", "variant": "on",
         "timestamp": now},
    ]  # fmt: skip
    with deployment.client(keys.server) as backend:
        response = backend.post(EVENTS, json={"events": batch})
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 5}
    assert response.headers["deprecation"].startswith("@")
    assert parsedate_to_datetime(response.headers["sunset"]).date().isoformat() == "2027-06-01"
    assert "/api/v1/sdk/summaries" in response.headers["warning"]
    rows = stored(deployment, keys.project)
    assert [(r["metric"], r["count"], r["total"], r["total_squares"]) for r in rows] == [
        ("", 3, 0.0, 0.0),
        ("latency", 2, 3.0, 9.0),  # a custom event without a value counts 1 with value 0
    ]
    assert hour_sketches(deployment, keys.project) == [("checkout", "server", 2)]

    browser_batch = [
        {"kind": "exposure", "flag": "checkout", "timestamp": now},  # refused
        {"kind": "exposure", "flag": "public-banner", "variant": "on", "timestamp": now},
        {"kind": "custom", "name": "page.view", "timestamp": now},
    ]
    with deployment.client(keys.client) as browser:
        response = browser.post(EVENTS, json={"events": browser_batch})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 2
    assert [r["index"] for r in response.json()["refused"]] == [0]

    with deployment.client(deployment.admin_token) as admin:
        schema = admin.get("/openapi.json").json()
    assert schema["paths"]["/api/v1/sdk/events"]["post"]["deprecated"] is True
    assert not schema["paths"]["/api/v1/sdk/summaries"]["post"].get("deprecated")


@pytest.mark.parametrize(
    "timestamp", ["1e20", "-5", "NaN", "Infinity"], ids=["far-future", "negative", "nan", "inf"]
)
def test_event_timestamps_the_server_cannot_store_are_refused_not_a_crash(
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
    """The limit counts items, not the evaluations they stand for: 1,000 items spend the
    burst whatever their counts."""
    keys = keys_for(limited)
    now = time.time()
    full = summary(
        now,
        evaluations=[evaluation("checkout", 1_000_000, variant=f"v{i}") for i in range(600)],
        metrics=[metric(f"m{i}") for i in range(400)],
    )
    with limited.client(keys.server) as backend:
        first = backend.post(SUMMARIES, json=full)
        assert first.status_code == 202, first.text
        # The burst is spent; 500 more items would take 500 s at one item per second.
        over = backend.post(SUMMARIES, json=summary(now, metrics=[metric("m")] * 500))
    assert over.status_code == 429, over.text
    assert over.headers["content-type"] == PROBLEM
    problem = over.json()
    assert problem["category"] == "retryable"
    assert "FADER_SDK_EVENTS_PER_SECOND" in problem["detail"]
    assert int(over.headers["retry-after"]) >= 1
    with limited.client(keys.client) as browser:  # another key has its own bucket
        small = summary(now, metrics=[metric("page.view")] * 10)
        assert browser.post(SUMMARIES, json=small).status_code == 202
    rows = stored(limited, keys.project)
    assert len(rows) == 1001  # 600 variants, 400 metrics, and the browser's one metric row
    assert sum(r["count"] for r in rows if r["metric"] == "") == 600_000_000


@pytest.fixture(scope="module", params=["sqlite"])
def client_limited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[Deployment]:
    """Server keys unlimited, client keys one item per second."""
    data_dir = tmp_path_factory.mktemp("client-limited")
    yield from _deployment(
        request, data_dir, log_sink, sdk_events_per_second=0, client_events_per_second=1.0
    )


def test_client_keys_have_their_own_lower_limit(client_limited: Deployment) -> None:
    """A client key is public: a stranger who copies it meets FADER_CLIENT_EVENTS_PER_SECOND,
    whatever server keys may send."""
    keys = keys_for(client_limited)
    now = time.time()
    burst = summary(now, metrics=[metric(f"page.view.{i}") for i in range(1000)])
    with client_limited.client(keys.client) as browser:
        assert browser.post(SUMMARIES, json=burst).status_code == 202
        over = browser.post(SUMMARIES, json=summary(now, metrics=[metric("page.view")]))
    assert over.status_code == 429, over.text
    assert "FADER_CLIENT_EVENTS_PER_SECOND" in over.json()["detail"]
    with client_limited.client(keys.server) as backend:  # no limit on server keys here
        for _ in range(3):
            assert backend.post(SUMMARIES, json=burst).status_code == 202


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
