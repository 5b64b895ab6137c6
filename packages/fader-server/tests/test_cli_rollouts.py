"""`fader rollouts ...` against a real server (SQLite and PostgreSQL), checked through the API.

The session servers run without a scheduler, so plans here move only by hand; the end-to-end
tests cover the scheduler (and `fader rollouts incident` after a real rollback).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from conftest import Server
from server_api import create_flag
from test_cli_admin import ok, parsed, run, table_rows

STAGES = {
    "stages": [
        {"name": "internal", "min_duration": 600, "segment": "staff"},
        {"name": "25%", "min_duration": 600, "percent": 25},
        {"name": "all", "min_duration": 600, "percent": 100},
    ],
    "gates": [{"kind": "error_rate", "event": "error", "min_samples": 500}],
}


def setup(admin: httpx.Client, project: str, tmp_path: Path) -> Path:
    create_flag(admin, project)
    segment = {"key": "staff", "included": ["u1"]}
    assert admin.post(f"/api/v1/projects/{project}/segments", json=segment).status_code == 201
    file = tmp_path / "plan.json"
    file.write_text(json.dumps(STAGES))
    return file


def test_a_plan_from_a_template_is_moved_by_hand_to_the_end(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    file = setup(admin, project, tmp_path)
    created = ok(
        run(server, "rollouts", "templates", "create", "standard", "-p", project, "-f", str(file))
    )
    assert "created template standard" in created.stderr
    rows = table_rows(run(server, "rollouts", "templates", "list", "-p", project))
    assert rows[0][:2] == ["standard", "standard"]
    shown = parsed(
        run(server, "rollouts", "templates", "show", "standard", "-p", project, "--json")
    )
    assert [s["name"] for s in shown["stages"]] == ["internal", "25%", "all"]

    plan = parsed(
        run(
            server,
            *("rollouts", "create", "-p", project, "--flag", "new-checkout", "-e", "development"),
            *("--control", "off", "--treatment", "on", "-t", "standard", "--start", "--json"),
            "--enable",  # the flag was never turned on in development
        )
    )
    plan_id = str(plan["id"])
    assert (plan["status"], plan["stage_name"]) == ("running", "internal")
    config = admin.get(f"/api/v1/projects/{project}/environments/development/flags/new-checkout")
    assert config.json()["rules"][0]["clauses"][0] == {"op": "in_segment", "values": ["staff"]}

    status = ok(run(server, "rollouts", "status", plan_id, "-p", project)).stdout
    assert "1/3 internal" in status
    assert "of at least 10 min" in status
    paused = ok(run(server, "rollouts", "pause", plan_id, "-p", project, "-m", "lunch"))
    assert "paused at stage 1/3 internal" in paused.stderr
    ok(run(server, "rollouts", "resume", plan_id, "-p", project))
    ok(run(server, "rollouts", "advance", plan_id, "-p", project, "-m", "internal looks fine"))
    ok(run(server, "rollouts", "advance", plan_id, "-p", project))
    done = ok(run(server, "rollouts", "advance", plan_id, "-p", project))
    assert "completed at stage 3/3 all" in done.stderr

    rows = table_rows(run(server, "rollouts", "list", "-p", project))
    assert rows[0][:4] == [plan_id, "new-checkout", "development", "completed"]
    audit = admin.get(
        f"/api/v1/projects/{project}/audit",
        params={"entity_type": "rollout", "entity_key": plan_id},
    ).json()["items"]
    assert [e["action"] for e in reversed(audit)] == [
        "create",
        "start",
        "pause",
        "resume",
        "advance",
        "advance",
        "complete",
    ]
    assert audit[-3]["comment"] == "lunch"


def test_commands_that_do_not_apply_fail_with_the_servers_reason(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    file = setup(admin, project, tmp_path)
    plan = parsed(
        run(
            server,
            *("rollouts", "create", "-p", project, "--flag", "new-checkout", "-e", "development"),
            *("--control", "off", "--treatment", "on", "-f", str(file), "--json", "--enable"),
        )
    )
    refused = run(server, "rollouts", "resume", str(plan["id"]), "-p", project)
    assert refused.exit_code == 1
    assert "the plan is pending; only a paused plan resumes" in refused.stderr
    both = run(
        server,
        *("rollouts", "create", "-p", project, "--flag", "new-checkout", "-e", "development"),
        *("--control", "off", "--treatment", "on", "-f", str(file), "-t", "standard"),
    )
    assert both.exit_code == 2
    assert "either --template or --file" in both.stderr
    bad = run(
        server,
        *("rollouts", "create", "-p", project, "--flag", "new-checkout", "-e", "staging"),
        *("--control", "off", "--treatment", "nope", "-f", str(file)),
    )
    assert bad.exit_code == 1
    assert "/body/treatment: flag 'new-checkout' has no variant 'nope'" in bad.stderr
    aborted = ok(run(server, "rollouts", "abort", str(plan["id"]), "-p", project, "--yes"))
    assert "aborted" in aborted.stderr
    assert parsed(run(server, "rollouts", "list", "-p", project, "--status", "aborted", "--json"))


def test_a_webhook_secret_is_printed_once(server: Server, project: str) -> None:
    added = ok(run(server, "webhooks", "add", "-p", project, "https://h.example/x"))
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    assert "(rollout)" in added.stderr  # without --event: rollout decisions, as always
    listed = ok(run(server, "webhooks", "list", "-p", project))
    assert "https://h.example/x" in listed.stdout
    assert secret not in listed.stdout
    hook = parsed(run(server, "webhooks", "list", "-p", project, "--json"))[0]["id"]
    ok(run(server, "webhooks", "remove", str(hook), "-p", project))
    assert parsed(run(server, "webhooks", "list", "-p", project, "--json")) == []
    assert "(none)" in ok(run(server, "rollouts", "incidents", "-p", project)).stderr


def test_webhook_subscriptions_and_their_delivery_log(server: Server, project: str) -> None:
    added = ok(
        run(server, "webhooks", "add", "-p", project, "https://h.example/f", "--event", "flag",
            "--event", "incident", "--json")
    ).stdout  # fmt: skip
    hook = json.loads(added)
    assert hook["events"] == ["flag", "incident"]
    disabled = ok(run(server, "webhooks", "update", str(hook["id"]), "-p", project, "--disable"))
    assert "disabled" in disabled.stdout
    ok(run(server, "webhooks", "update", str(hook["id"]), "-p", project, "--enable"))
    with server.admin() as client:
        create_flag(client, project, "hooked")  # a flag event: queued for the webhook
    log = parsed(run(server, "webhooks", "deliveries", str(hook["id"]), "-p", project, "--json"))
    assert [(d["event"], d["entity_key"], d["status"]) for d in log] == [
        ("flag", "hooked", "pending")
    ]
    shown = ok(run(server, "webhooks", "deliveries", str(hook["id"]), "-p", project))
    assert "pending" in shown.stdout
    queued = ok(
        run(server, "webhooks", "redeliver", str(hook["id"]), str(log[0]["id"]), "-p", project)
    )
    assert log[0]["delivery_id"] in queued.stderr
    bad = run(server, "webhooks", "add", "-p", project, "https://h.example/g", "--event", "nope")
    assert bad.exit_code != 0
    ok(run(server, "webhooks", "remove", str(hook["id"]), "-p", project))
