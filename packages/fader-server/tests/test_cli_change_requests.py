"""`fader environments policy`, `fader change-requests ...` and `fader schedules ...` against a
real server (SQLite and PostgreSQL), checked through the HTTP API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from conftest import Server
from server_api import create_flag
from test_cli_admin import ok, parsed, run, table_rows
from test_protected_environments import login


def _user_token(client: httpx.Client) -> str:
    return str(client.headers["Authorization"].removeprefix("Bearer "))


def test_policy_propose_approve_apply_from_the_cli(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    create_flag(admin, project, "checkout")
    policy = parsed(
        run(server, "environments", "policy", "production", "-p", project, "--require",
            "--approvals", "1", "--approver-role", "admin", "--json")
    )  # fmt: skip
    assert policy["required"] is True
    refused = run(server, "flags", "toggle", "checkout", "-p", project, "-e", "production", "--on")
    assert refused.exit_code == 1
    assert "fader change-requests propose" in refused.stderr
    contexts = tmp_path / "contexts.json"
    contexts.write_text(json.dumps({"contexts": [{"targetingKey": "a"}, {"targetingKey": "b"}]}))
    with login(server, admin, project, "editor") as editor:
        proposed = parsed(
            run(server, "change-requests", "propose", "-p", project, "--title", "Checkout on",
                "--problem", "carts lost", "--change", "new checkout",
                "--enable", "production/checkout", "--contexts", str(contexts), "--json",
                token=_user_token(editor))
        )  # fmt: skip
        rid = str(proposed["id"])
        assert proposed["status"] == "open"
        mine = run(server, "change-requests", "approve", rid, "-p", project,
                   token=_user_token(editor))  # fmt: skip
        assert mine.exit_code == 1
        assert "someone else" in mine.stderr
        ok(run(server, "change-requests", "comment", rid, "-p", project, "-m", "ok?"))
        approved = parsed(run(server, "change-requests", "approve", rid, "-p", project, "--json"))
        assert approved["status"] == "approved"
        shown = ok(run(server, "change-requests", "show", rid, "-p", project))
        assert "/enabled: false -> true" in shown.stdout
        assert "Impact (2 contexts, source: uploaded)" in shown.stdout
        rows = table_rows(run(server, "change-requests", "list", "-p", project))
        assert [rid, "approved"] == rows[0][:2]
        ok(run(server, "change-requests", "apply", rid, "-p", project, token=_user_token(editor)))
    config = admin.get(f"/api/v1/projects/{project}/environments/production/flags/checkout")
    assert config.json()["enabled"] is True


def test_schedules_are_listed_and_cancelled(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project, "checkout")
    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    proposed = parsed(
        run(server, "change-requests", "propose", "-p", project, "--title", "Later",
            "--problem", "p", "--change", "c", "--disable", "development/checkout",
            "--apply-at", at, "--json")
    )  # fmt: skip
    rid = str(proposed["id"])
    listed = parsed(run(server, "schedules", "list", "-p", project, "--json"))
    assert [str(r["id"]) for r in listed] == [rid]
    for_flag = parsed(
        run(server, "schedules", "list", "-p", project, "--flag", "checkout", "--json")
    )
    assert [str(r["id"]) for r in for_flag] == [rid]
    ok(run(server, "schedules", "cancel", rid, "-p", project, "-m", "not needed"))
    assert parsed(run(server, "schedules", "list", "-p", project, "--json")) == []
    status = admin.get(f"/api/v1/projects/{project}/change-requests/{rid}?impact=false")
    assert status.json()["status"] == "cancelled"
