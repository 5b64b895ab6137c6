"""`fader flags usage|debug-events|stale` against a real server over SQLite and PostgreSQL
(:mod:`usage_deployment`), driven through typer's runner; `--json` is checked against the API's
own answer, and tables cell by cell.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import Result
from conftest import LogSink
from server_api import create_flag
from typer.testing import CliRunner
from usage_deployment import Deployment, contexts_of, deployed, evaluations

from fader_server.cli.main import app
from fader_server.storage.ports.usage import DebugEvent

runner = CliRunner()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[Deployment]:
    backend: str = request.param
    database_url = (
        request.getfixturevalue("module_postgres_url") if backend == "postgresql" else None
    )
    with deployed(backend, tmp_path_factory.mktemp("usage-cli"), database_url, log_sink) as made:
        yield made


def fader(deployment: Deployment, *args: str) -> Result:
    env = {"FADER_URL": deployment.url, "FADER_TOKEN": deployment.admin_token}
    return runner.invoke(app, list(args), env={**env, "FADER_PROJECT": None})


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def tables(result: Result) -> list[list[list[str]]]:
    """Every table printed, as rows of cells (the rows after each header rule)."""
    found: list[list[list[str]]] = []
    rows: list[list[str]] | None = None
    for line in ok(result).stdout.splitlines():
        if line.strip() and set(line.strip()) <= {"─", " "}:
            rows = []
            found.append(rows)
        elif not line.strip():
            rows = None
        elif rows is not None:
            rows.append(line.split())
    return found


def fields(result: Result) -> dict[str, str]:
    """The `name value` lines printed before the first table."""
    out: dict[str, str] = {}
    for line in ok(result).stdout.splitlines():
        if not line.strip():
            break
        name, _, value = line.partition("  ")
        out[name.strip()] = value.strip()
    return out


@pytest.fixture
def seeded(deployment: Deployment) -> tuple[str, datetime]:
    """A project whose `checkout` was evaluated 3 hours ago and now, in production."""
    project = deployment.new_project("checkout")
    now = datetime.now(UTC)
    deployment.evaluated(
        project,
        now - timedelta(hours=3),
        evaluations("checkout", 30, "on", range(20)),
        evaluations("checkout", 10, "off", range(20, 30)),
    )
    deployment.evaluated(project, now, evaluations("checkout", 2, ""))
    return project, now


def test_usage_json_is_the_api_answer(deployment: Deployment, seeded: tuple[str, datetime]) -> None:
    project, _ = seeded
    args = ("flags", "usage", "checkout", "-p", project, "--env", "production", "--period", "24h")
    printed = json.loads(ok(fader(deployment, *args, "--json")).stdout)
    with deployment.client() as admin:
        answer = admin.get(
            f"/api/v1/projects/{project}/flags/checkout/usage",
            params={"environment": "production", "period": "24h"},
        ).json()
    assert printed == answer
    assert printed["totals"]["evaluations"] == 42


def test_usage_table_shows_totals_variants_and_the_steps_with_evaluations(
    deployment: Deployment, seeded: tuple[str, datetime]
) -> None:
    project, now = seeded
    result = fader(deployment, "flags", "usage", "checkout", "-p", project, "-e", "production")

    shown = fields(result)
    assert shown["flag"] == "checkout"
    assert shown["period"] == "7d (per hour, UTC)"
    assert shown["evaluations"] == "42"
    assert shown["distinct contexts"] == f"{contexts_of(range(30)).estimate()} (estimated)"
    assert shown["last evaluated"] == f"{now:%Y-%m-%d %H:%M}:00Z"
    variants, steps = tables(result)
    assert variants == [
        ["on", "30", "71.4%", str(contexts_of(range(20)).estimate())],
        ["off", "10", "23.8%", str(contexts_of(range(20, 30)).estimate())],
        ["(none)", "2", "4.8%"],
    ]
    hour = lambda at: f"{at:%Y-%m-%d %H}:00:00Z".split()  # noqa: E731 - a cell pair
    assert steps == [
        [*hour(now - timedelta(hours=3)), "40", "30", "10", "0"],
        [*hour(now), "2", "0", "0", "2"],
    ]
    assert "166 hours without evaluations not shown" in result.stderr
    assert "HyperLogLog" in result.stderr


def test_usage_of_an_unknown_environment_or_period_fails_with_the_reason(
    deployment: Deployment, seeded: tuple[str, datetime]
) -> None:
    project, _ = seeded
    unknown = fader(deployment, "flags", "usage", "checkout", "-p", project, "--env", "moon")
    assert unknown.exit_code == 1
    assert "environment 'moon' does not exist" in unknown.stderr
    usage = ("flags", "usage", "checkout", "-p", project, "-e", "production")
    period = fader(deployment, *usage, "--period", "2w")
    assert period.exit_code == 2
    said = " ".join(period.stderr.replace("│", " ").split())  # rich draws a box around it
    assert "'2w' is not one of '1h', '24h', '7d', '30d', '90d'" in said


def test_debug_events_are_listed_newest_first(
    deployment: Deployment, seeded: tuple[str, datetime]
) -> None:
    project, now = seeded
    with deployment.store.transaction() as tx:
        project_id = deployment.project_id(project)
        for n in range(3):
            event = DebugEvent("checkout", "off" if n else None, "SPLIT", f"user-{n}", now)
            received = now + timedelta(seconds=n)
            tx.add_debug_events(project_id, "production", "server", [event], received, 1000)

    base = ("flags", "debug-events", "checkout", "-p", project, "-e", "production")
    (rows,) = tables(fader(deployment, *base, "--limit", "2"))
    assert [(r[4], r[5], r[6], r[7]) for r in rows] == [
        ("off", "SPLIT", "user-2", "server"),
        ("off", "SPLIT", "user-1", "server"),
    ]
    printed: list[dict[str, Any]] = json.loads(ok(fader(deployment, *base, "--json")).stdout)
    assert [(e["targeting_key"], e["variant"]) for e in printed] == [
        ("user-2", "off"),
        ("user-1", "off"),
        ("user-0", None),
    ]


def test_stale_lists_flags_not_evaluated_for_the_given_days(
    deployment: Deployment, seeded: tuple[str, datetime]
) -> None:
    project, now = seeded
    with deployment.client() as admin:
        create_flag(admin, project, "quiet")
    deployment.backdate_flags(project, now - timedelta(days=60))

    (rows,) = tables(fader(deployment, "flags", "stale", "-p", project))
    assert rows == [["quiet", "release", "payments", "never", "evaluated", "in", "production"]]
    printed = json.loads(ok(fader(deployment, "flags", "stale", "-p", project, "--json")).stdout)
    assert [(s["key"], s["last_evaluated"]) for s in printed] == [("quiet", None)]
    # "checkout" was evaluated 3 hours ago: stale only for a threshold under that
    (rows,) = tables(fader(deployment, "flags", "stale", "-p", project, "--unused-days", "1"))
    assert [row[0] for row in rows] == ["quiet"]
    refused = fader(deployment, "flags", "stale", "-p", project, "--unused-days", "0")
    assert refused.exit_code == 2
