"""`GET .../flags/{flag}/usage`, `.../debug-events` and `.../reports/stale-flags` on a real
server over SQLite and PostgreSQL (:mod:`usage_deployment`: rollups written into the server's
database at times relative to now, since the server reads with its own clock).

Expectations are exact: a step is found by its start, never by its position, so a minute that
turns during a test changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest
from conftest import LogSink
from server_api import create_flag, unique
from usage_deployment import Deployment, contexts_of, deployed, evaluations

from fader_server.storage.ports.usage import DebugEvent, UsageCount

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[Deployment]:
    backend: str = request.param
    database_url = (
        request.getfixturevalue("module_postgres_url") if backend == "postgresql" else None
    )
    with deployed(backend, tmp_path_factory.mktemp("usage-api"), database_url, log_sink) as made:
        yield made


@pytest.fixture
def project(deployment: Deployment) -> str:
    return deployment.new_project("checkout")


def on(count: int, variant: str = "on", keys: range | None = None) -> UsageCount:
    return evaluations("checkout", count, variant, keys)


def minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def usage(
    deployment: Deployment, project: str, environment: str = "production", **params: Any
) -> dict[str, Any]:
    with deployment.client() as admin:
        response = admin.get(
            f"/api/v1/projects/{project}/flags/checkout/usage",
            params={"environment": environment, **params},
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


def at_start(found: dict[str, Any], start: datetime) -> dict[str, Any]:
    return next(p for p in found["points"] if datetime.fromisoformat(p["start"]) == start)


def test_the_last_hour_per_minute_has_every_step_and_exact_counts(
    deployment: Deployment, project: str
) -> None:
    now = datetime.now(UTC)
    three_ago = now - timedelta(minutes=3)
    deployment.evaluated(project, three_ago, on(5, keys=range(40)), on(2, "off", range(30, 60)))
    deployment.evaluated(project, three_ago, on(1, keys=range(10)), key_kind="client")
    deployment.evaluated(project, now, on(1, ""))
    deployment.evaluated(project, now - timedelta(hours=3), on(100))  # before the last hour
    deployment.evaluated(project, now, on(7), environment="staging")

    found = usage(deployment, project, period="1h")

    assert (found["flag"], found["environment"], found["period"], found["step"]) == (
        "checkout",
        "production",
        "1h",
        "minute",
    )
    starts = [datetime.fromisoformat(p["start"]) for p in found["points"]]
    assert len(starts) == 60
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(starts))
    assert datetime.fromisoformat(found["until"]) == starts[-1] + timedelta(minutes=1)
    assert at_start(found, minute(three_ago)) == {
        "start": at_start(found, minute(three_ago))["start"],
        "evaluations": 8,
        "variants": {"on": 6, "off": 2},
        "no_variant": 0,
    }
    assert sum(p["evaluations"] for p in found["points"]) == 9
    quiet = [p for p in found["points"] if not p["evaluations"]]
    assert len(quiet) == 58  # the minutes written are 3 apart: always two of the 60
    assert all(p["variants"] == {"on": 0, "off": 0} for p in quiet)
    assert found["totals"] == {
        "evaluations": 9,
        "variants": {"on": 6, "off": 2},
        "no_variant": 1,
        "variants_left_out": 0,
    }
    assert list(found["totals"]["variants"]) == ["on", "off"]  # the most evaluated first
    contexts = found["distinct_contexts"]
    assert contexts["all"] == contexts_of(range(60)).estimate()
    assert contexts["variants"] == {
        "on": contexts_of(range(40)).estimate(),
        "off": contexts_of(range(30, 60)).estimate(),
    }
    assert "HyperLogLog" in contexts["note"]
    assert "3%" in contexts["note"]
    assert datetime.fromisoformat(found["last_evaluated"]) == minute(now)


def test_longer_periods_count_per_hour_and_per_day(deployment: Deployment, project: str) -> None:
    now = datetime.now(UTC)
    deployment.evaluated(project, now - timedelta(hours=3), on(100))
    deployment.evaluated(project, now - timedelta(days=3), on(20, "off"))
    deployment.evaluated(project, now - timedelta(days=20), on(300))

    day = usage(deployment, project, period="24h")
    week = usage(deployment, project)  # 7d by default
    month = usage(deployment, project, period="30d")
    quarter = usage(deployment, project, period="90d")

    assert (day["step"], len(day["points"]), day["totals"]["evaluations"]) == ("hour", 24, 100)
    assert at_start(day, hour(now - timedelta(hours=3)))["variants"] == {"on": 100}
    assert (week["period"], week["step"], len(week["points"])) == ("7d", "hour", 168)
    assert week["totals"]["variants"] == {"on": 100, "off": 20}
    assert (month["step"], len(month["points"]), month["totals"]["evaluations"]) == ("day", 30, 420)
    first_day = (now - timedelta(days=20)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert at_start(month, first_day)["evaluations"] == 300
    assert (len(quarter["points"]), quarter["totals"]["evaluations"]) == (90, 420)
    assert datetime.fromisoformat(month["last_evaluated"]) == minute(now - timedelta(hours=3))


def test_at_most_50_variants_are_listed_and_the_rest_still_count(
    deployment: Deployment, project: str
) -> None:
    """SDKs may report variants a flag does not have (an old definition, or a hostile key):
    the answer stays bounded, and every evaluation still counts in the totals."""
    now = datetime.now(UTC)
    deployment.evaluated(project, now, *(on(n + 1, f"v{n:02d}") for n in range(52)))

    found = usage(deployment, project, period="1h")

    listed = [f"v{n:02d}" for n in range(51, 1, -1)]  # the most evaluated first
    assert list(found["totals"]["variants"]) == listed
    assert found["totals"]["variants_left_out"] == 2
    assert found["totals"]["evaluations"] == sum(range(1, 53))
    point = at_start(found, minute(now))
    assert (point["evaluations"], list(point["variants"])) == (sum(range(1, 53)), listed)


def test_a_flag_never_evaluated_has_zeros_and_no_last_evaluation(
    deployment: Deployment, project: str
) -> None:
    found = usage(deployment, project, environment="development", period="24h")
    assert [p["evaluations"] for p in found["points"]] == [0] * 24
    assert found["totals"] == {
        "evaluations": 0,
        "variants": {},
        "no_variant": 0,
        "variants_left_out": 0,
    }
    assert found["distinct_contexts"]["all"] == 0
    assert found["last_evaluated"] is None


def test_unknown_flag_or_environment_is_404_and_a_bad_period_is_422_naming_the_choices(
    deployment: Deployment, project: str
) -> None:
    base = f"/api/v1/projects/{project}/flags"
    with deployment.client() as admin:
        no_flag = admin.get(f"{base}/nope/usage", params={"environment": "production"})
        no_env = admin.get(f"{base}/checkout/usage", params={"environment": "moon"})
        bad = admin.get(
            f"{base}/checkout/usage", params={"environment": "production", "period": "2w"}
        )
        missing = admin.get(f"{base}/checkout/usage")
        events_env = admin.get(f"{base}/checkout/debug-events", params={"environment": "moon"})
        too_many = admin.get(
            f"{base}/checkout/debug-events", params={"environment": "production", "limit": 1001}
        )
    for response in (no_flag, no_env, events_env):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == PROBLEM
    assert "flag 'nope' does not exist" in no_flag.json()["detail"]
    assert "environment 'moon' does not exist" in no_env.json()["detail"]
    assert bad.status_code == 422
    assert bad.headers["content-type"] == PROBLEM
    (error,) = bad.json()["errors"]
    assert error["path"] == "/query/period"
    for choice in ("1h", "24h", "7d", "30d", "90d"):
        assert f"'{choice}'" in error["message"]
    assert missing.status_code == 422
    assert [e["path"] for e in missing.json()["errors"]] == ["/query/environment"]
    assert too_many.status_code == 422
    assert [e["path"] for e in too_many.json()["errors"]] == ["/query/limit"]


def test_viewers_read_usage_and_strangers_learn_nothing(
    deployment: Deployment, project: str
) -> None:
    def user_token(role: str | None) -> str:
        name, password = unique("u"), "pw-" + secrets.token_hex(8)
        with deployment.client() as admin:
            made = admin.post("/api/v1/users", json={"username": name, "password": password})
            assert made.status_code == 201, made.text
            if role:
                member = {"role": role}
                put = admin.put(f"/api/v1/projects/{project}/members/{name}", json=member)
                assert put.status_code == 200, put.text
        with httpx.Client(base_url=deployment.url, timeout=30) as anonymous:
            login = anonymous.post(
                "/api/v1/auth/login", json={"username": name, "password": password}
            )
        assert login.status_code == 201, login.text
        return str(login.json()["token"])

    path = f"/api/v1/projects/{project}/flags/checkout/usage?environment=production"
    with deployment.client(user_token("viewer")) as viewer:
        assert viewer.get(path).status_code == 200
    with deployment.client(user_token(None)) as stranger:
        assert stranger.get(path).status_code == 404
    with httpx.Client(base_url=deployment.url, timeout=30) as anonymous:
        assert anonymous.get(path).status_code == 401


def test_debug_events_are_listed_newest_first_up_to_the_limit(
    deployment: Deployment, project: str
) -> None:
    now = datetime.now(UTC)
    with deployment.store.transaction() as tx:
        project_id = deployment.project_id(project)
        for n, kind in enumerate(("server", "client", "server")):
            event = DebugEvent("checkout", "on" if n else None, "SPLIT", f"user-{n}", now)
            received = now + n * timedelta(seconds=1)
            tx.add_debug_events(project_id, "production", kind, [event], received, 1000)

    base = f"/api/v1/projects/{project}/flags/checkout/debug-events"
    with deployment.client() as admin:
        every = admin.get(base, params={"environment": "production"}).json()
        two = admin.get(base, params={"environment": "production", "limit": 2}).json()
        staging = admin.get(base, params={"environment": "staging"}).json()

    assert (every["flag"], every["environment"]) == ("checkout", "production")
    assert [(e["targeting_key"], e["variant"], e["key_kind"]) for e in every["items"]] == [
        ("user-2", "on", "server"),
        ("user-1", "on", "client"),
        ("user-0", None, "server"),
    ]
    assert every["items"][0]["reason"] == "SPLIT"
    assert [e["targeting_key"] for e in two["items"]] == ["user-2", "user-1"]
    assert staging["items"] == []


def test_the_stale_report_says_how_long_a_flag_was_not_evaluated(
    deployment: Deployment, project: str
) -> None:
    now = datetime.now(UTC)
    with deployment.client() as admin:
        create_flag(admin, project, "fresh")
    deployment.backdate_flags(project, now - timedelta(days=60))
    deployment.evaluated(project, now - timedelta(days=12), on(3))

    with deployment.client() as admin:
        path = f"/api/v1/projects/{project}/reports/stale-flags"
        default = admin.get(path).json()
        week = admin.get(path, params={"unused_days": 7}).json()
        refused = admin.get(path, params={"unused_days": 0})

    assert (default["unused_days"], default["unchanged_days"]) == (30, 30)
    assert [(s["key"], s["reason"]) for s in default["items"]] == [
        ("fresh", "never evaluated in production")
    ]
    assert default["items"][0]["last_evaluated"] is None
    reasons = {s["key"]: s["reason"] for s in week["items"]}
    assert reasons["fresh"] == "never evaluated in production"
    assert reasons["checkout"].startswith("not evaluated for 12 days in production (last")
    assert refused.status_code == 422
    assert [e["path"] for e in refused.json()["errors"]] == ["/query/unused_days"]


def test_the_openapi_document_describes_the_usage_responses(deployment: Deployment) -> None:
    with deployment.client() as admin:
        document = admin.get("/openapi.json").json()
    paths = document["paths"]
    expected = {
        "/api/v1/projects/{project}/flags/{flag}/usage": "FlagUsageOut",
        "/api/v1/projects/{project}/flags/{flag}/debug-events": "DebugEventList",
        "/api/v1/projects/{project}/reports/stale-flags": "StaleFlagReport",
    }
    for path, model in expected.items():
        operation = paths[path]["get"]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}
        assert "404" in operation["responses"]
        assert "422" in operation["responses"]
    period = next(
        p
        for p in paths["/api/v1/projects/{project}/flags/{flag}/usage"]["get"]["parameters"]
        if p["name"] == "period"
    )
    assert period["schema"]["enum"] == ["1h", "24h", "7d", "30d", "90d"]
