"""One tenant's broken gates cannot hold another tenant's rollback, nor the server's memory.

A real `fader serve` (SQLite, then PostgreSQL) with three plans of project A whose Prometheus
gates misbehave: one answers 400 MB, one drips its answer a byte at a time for ever, one
answers a JSON array. Project B's plan, created after them, has a gate that goes bad: it must
roll back within a few ticks while A's gates are still being read, each of A's plans must roll
back on its own gate's error class, and the server's peak resident memory must stay close to
where it started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import dedicated_postgres_database
from outbound_targets import (
    endless_drip,
    fader_serve,
    gated_plan,
    huge,
    json_answer,
    prometheus_value,
    rollout_project,
    target,
    wait_for,
)
from processes import FaderProcess
from server_api import unique

ANSWER_BYTES = 400 * 1024 * 1024
MEMORY_SLACK = 150 * 1024 * 1024
"""Peak resident memory may grow this much over the run (reading one 400 MB answer whole
takes several times 400 MB)."""


def _memory(process: FaderProcess, field: str) -> int:
    """`VmRSS` (resident now) or `VmHWM` (peak resident) of the server, in bytes."""
    assert process.process is not None
    status = Path(f"/proc/{process.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    with dedicated_postgres_database() as url:
        yield url


def test_bad_gates_of_one_project_do_not_hold_another_projects_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> None:
    a, b = unique("tenant-a"), unique("tenant-b")
    with (
        target(huge(ANSWER_BYTES)) as enormous,
        target(endless_drip(every=0.5)) as dripping,
        target(json_answer([{"status": "success"}])) as malformed,
        target(json_answer(prometheus_value("0.9"))) as regressed,
        fader_serve(
            tmp_path, monkeypatch, allow="127.0.0.1/32", database_url=database_url
        ) as server,
        server.admin() as admin,
    ):
        rollout_project(admin, a, ["huge", "drip", "array"])
        rollout_project(admin, b, ["checkout"])
        baseline = max(_memory(server, "VmHWM"), _memory(server, "VmRSS"))

        def gate(url: str) -> dict[str, object]:
            return {"kind": "prometheus", "url": url, "query": "errors", "max_value": 0.1}

        plans = {}
        # A's plans first: they come before B's in every tick
        for project, flag, url in [
            (a, "huge", enormous.url()),
            (a, "drip", dripping.url()),
            (a, "array", malformed.url()),
            (b, "checkout", regressed.url()),
        ]:
            made = admin.post(
                f"/api/v1/projects/{project}/rollouts", json=gated_plan(flag, gate(url))
            )
            assert made.status_code == 201, made.text
            plans[flag] = (project, made.json()["id"])

        def status(flag: str) -> dict[str, object]:
            project, plan_id = plans[flag]
            found: dict[str, object] = admin.get(
                f"/api/v1/projects/{project}/rollouts/{plan_id}"
            ).json()
            return found

        wait_for("project B's rollback", lambda: status("checkout")["status"] == "rolled_back")
        for flag in ("huge", "drip", "array"):
            wait_for(f"A's {flag} plan", lambda flag=flag: status(flag)["status"] == "rolled_back")

        errors = {}
        for flag, (project, _) in plans.items():
            incident = admin.get(
                f"/api/v1/projects/{project}/incidents/{status(flag)['incident']}"
            ).json()
            errors[flag] = incident["evidence"][0]["evidence"]
        assert {flag: seen.get("error") for flag, seen in errors.items()} == {
            "huge": "too_large",
            "drip": "timeout",
            "array": "invalid_response",
            "checkout": None,
        }
        assert errors["checkout"] == {"value": 0.9, "max_value": 0.1, "strikes": 2}
        peak = _memory(server, "VmHWM")
        assert peak - baseline < MEMORY_SLACK, (baseline, peak)
        assert enormous.bytes_sent < 64 * 1024 * 1024  # cut after the first MiB, every time
        assert server.errors() == [], server.errors()
        logged = json.dumps(server.output(None))
        assert "rollout_tick_failed" not in logged
