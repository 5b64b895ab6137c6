"""`fader projects|environments|flags|segments|tokens`: the admin CLI against a real server.

Every test runs on SQLite and PostgreSQL (the session `server` fixture), drives the CLI through
typer's runner (one smoke test runs the installed `fader` command), and checks the outcome
through the HTTP API, not through the CLI's own output alone.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from conftest import Server
from server_api import BOOLEAN_FLAG, create_flag, unique
from typer.testing import CliRunner

import fader_engine
from fader_server.cli.client import AdminApi, ProblemError, api_path
from fader_server.cli.configs import TOGGLE_ATTEMPTS, config_path, switch
from fader_server.cli.main import app

runner = CliRunner()
CONNECTION_VARIABLES = ("FADER_URL", "FADER_TOKEN", "FADER_PROJECT")


def run(server: Server, *args: str, token: str | None = None, **env: str) -> Result:
    """`fader ARGS` with the connection from the environment, as a user would set it up."""
    variables: dict[str, str | None] = dict.fromkeys(CONNECTION_VARIABLES)
    variables.update(FADER_URL=server.url, FADER_TOKEN=token or server.admin_token)
    variables.update(env)
    return runner.invoke(app, list(args), env=variables)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def parsed(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def table_rows(result: Result) -> list[list[str]]:
    """The data rows of a table: every line after the header rule, split into cells."""
    lines = ok(result).stdout.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    return [line.split() for line in lines[rule + 1 :] if line.strip()]


def config_url(project: str, environment: str, flag: str) -> str:
    return f"/api/v1/projects/{project}/environments/{environment}/flags/{flag}"


# ------------------------------------------------------------------------ projects
def test_project_created_by_the_cli_is_listed_as_table_and_json(server: Server) -> None:
    key = unique("cli")
    created = ok(run(server, "projects", "create", key, "--name", "Web shop"))
    assert f"created project {key}" in created.stderr
    rows = table_rows(run(server, "projects", "list"))
    assert [key, "Web", "shop"] == next(r for r in rows if r[0] == key)[:3]
    listed = parsed(run(server, "projects", "list", "--json"))
    assert {"key": key, "name": "Web shop"}.items() <= next(
        p for p in listed if p["key"] == key
    ).items()


def test_project_show_lists_its_environments(server: Server, project: str) -> None:
    shown = parsed(run(server, "projects", "show", project, "--json"))
    assert shown["key"] == project
    assert {e["key"]: e["protected"] for e in shown["environments"]} == {
        "development": False,
        "staging": False,
        "production": True,
    }
    rows = table_rows(run(server, "projects", "show", project))
    assert [r[0] for r in rows] == ["development", "production", "staging"]


def test_environment_created_by_the_cli_exists_and_is_listed(
    server: Server, admin: httpx.Client, project: str
) -> None:
    ok(run(server, "environments", "create", "qa", "-p", project, "--name", "QA", "--protected"))
    env = admin.get(f"/api/v1/projects/{project}/environments/qa").json()
    assert (env["name"], env["protected"]) == ("QA", True)
    rows = table_rows(run(server, "environments", "list", "-p", project))
    assert next(r for r in rows if r[0] == "qa")[:4] == ["qa", "QA", "yes", "1"]


# --------------------------------------------------------------------------- flags
def test_flag_created_from_options_has_the_given_definition(
    server: Server, admin: httpx.Client, project: str
) -> None:
    ok(
        run(
            server,
            *("flags", "create", "page-size", "-p", project, "--type", "number"),
            *("--variant", "small=10", "--variant", "large=50", "--tag", "search"),
            *("--kind", "ops", "--owner-team", "search", "--name", "Page size"),
        )
    )
    flag = admin.get(f"/api/v1/projects/{project}/flags/page-size").json()
    assert flag["variants"] == {"small": 10, "large": 50}
    assert (flag["type"], flag["kind"], flag["tags"]) == ("number", "ops", ["search"])
    assert (flag["name"], flag["owner_team"]) == ("Page size", "search")


def test_boolean_flag_defaults_and_string_variants_are_taken_verbatim(
    server: Server, admin: httpx.Client, project: str
) -> None:
    ok(run(server, "flags", "create", "dark-mode", "-p", project))
    ok(
        run(
            server,
            *("flags", "create", "cta", "-p", project, "--type", "string"),
            *("--variant", "a=10", "--variant", "b=Buy now"),
        )
    )
    base = f"/api/v1/projects/{project}/flags"
    dark = admin.get(f"{base}/dark-mode").json()
    assert (dark["name"], dark["type"], dark["variants"]) == (
        "dark-mode",
        "boolean",
        {"on": True, "off": False},
    )
    assert admin.get(f"{base}/cta").json()["variants"] == {"a": "10", "b": "Buy now"}
    assert dark["client_side"] is False


def test_client_side_is_set_and_kept_by_updates(
    server: Server, admin: httpx.Client, project: str
) -> None:
    ok(run(server, "flags", "create", "banner", "-p", project, "--client-side"))
    url = f"/api/v1/projects/{project}/flags/banner"
    assert admin.get(url).json()["client_side"] is True
    ok(run(server, "flags", "update", "banner", "-p", project, "--name", "Banner"))
    assert admin.get(url).json()["client_side"] is True
    ok(run(server, "flags", "update", "banner", "-p", project, "--server-only"))
    assert admin.get(url).json()["client_side"] is False


def test_flag_show_json_can_be_sent_back_to_create_a_copy(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    create_flag(admin, project, key="original")
    shown = parsed(run(server, "flags", "show", "original", "-p", project, "--json"))
    assert set(shown["environments"]) == {"development", "staging", "production"}
    assert shown["environments"]["production"]["enabled"] is False
    file = tmp_path / "flag.json"
    file.write_text(json.dumps(shown))
    ok(run(server, "flags", "create", "copy", "-p", project, "--file", str(file)))
    copy = admin.get(f"/api/v1/projects/{project}/flags/copy").json()
    for field in ("name", "description", "tags", "variants", "owner_team"):
        assert copy[field] == BOOLEAN_FLAG[field]


def test_flag_list_searches_and_limits(server: Server, admin: httpx.Client, project: str) -> None:
    for i in range(4):
        create_flag(admin, project, key=f"flag-{i}", name=f"Flag number {i}")
    create_flag(admin, project, key="dark-mode", description="Night theme for the dashboard")
    found = parsed(run(server, "flags", "list", "-p", project, "-q", "dashboard", "--json"))
    assert [f["key"] for f in found] == ["dark-mode"]
    rows = table_rows(run(server, "flags", "list", "-p", project))
    assert [r[0] for r in rows] == ["dark-mode", "flag-0", "flag-1", "flag-2", "flag-3"]
    limited = parsed(run(server, "flags", "list", "-p", project, "--limit", "3", "--json"))
    assert [f["key"] for f in limited] == ["dark-mode", "flag-0", "flag-1"]


def test_client_follows_the_cursor_through_every_page(
    server: Server, admin: httpx.Client, project: str
) -> None:
    keys = [f"f-{i}" for i in range(7)]
    for key in keys:
        create_flag(admin, project, key=key)
    with AdminApi(server.url, server.admin_token) as api:
        path = api_path("projects", project, "flags")
        assert [f["key"] for f in api.items(path, page_size=2)] == keys
        assert [f["key"] for f in api.items(path, page_size=2, limit=5)] == keys[:5]


def test_flag_update_changes_only_the_given_fields(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    ok(run(server, "flags", "update", "new-checkout", "-p", project, "--name", "Checkout v2"))
    flag = admin.get(f"/api/v1/projects/{project}/flags/new-checkout").json()
    assert (flag["name"], flag["version"]) == ("Checkout v2", 2)
    assert flag["tags"] == BOOLEAN_FLAG["tags"]


def test_flag_update_from_a_stale_file_is_refused(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    create_flag(admin, project)
    file = tmp_path / "flag.json"
    file.write_text(run(server, "flags", "show", "new-checkout", "-p", project, "--json").stdout)
    ok(run(server, "flags", "update", "new-checkout", "-p", project, "--name", "Theirs"))
    stale = run(server, "flags", "update", "new-checkout", "-p", project, "-f", str(file))
    assert stale.exit_code == 1
    assert "is at version 2, not 1" in stale.stderr
    assert admin.get(f"/api/v1/projects/{project}/flags/new-checkout").json()["name"] == "Theirs"


def test_flag_delete_asks_first_and_deletes_with_yes(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    url = f"/api/v1/projects/{project}/flags/new-checkout"
    declined = runner.invoke(
        app,
        ["flags", "delete", "new-checkout", "-p", project],
        input="n\n",
        env={"FADER_URL": server.url, "FADER_TOKEN": server.admin_token},
    )
    assert declined.exit_code == 1
    assert admin.get(url).status_code == 200
    ok(run(server, "flags", "delete", "new-checkout", "-p", project, "--yes", "-m", "unused"))
    assert admin.get(url).status_code == 404
    history = admin.get(f"/api/v1/projects/{project}/audit").json()["items"]
    assert (history[0]["action"], history[0]["comment"]) == ("delete", "unused")


# ----------------------------------------------------------- configuration, kill switch
def test_toggle_turns_the_flag_on_and_off_and_audits_it(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    args = ("flags", "toggle", "new-checkout", "-p", project, "-e", "production")
    on = ok(run(server, *args, "--on", "-m", "launch"))
    assert on.stdout.strip() == "new-checkout is now ON in production (version 1; was OFF)"
    config = admin.get(config_url(project, "production", "new-checkout")).json()
    assert (config["enabled"], config["version"]) == (True, 1)
    flipped = parsed(run(server, *args, "--json", "-m", "incident"))
    assert (flipped["enabled"], flipped["version"]) == (False, 2)
    assert admin.get(config_url(project, "production", "new-checkout")).json()["enabled"] is False
    history = admin.get(f"/api/v1/projects/{project}/flags/new-checkout/history").json()["items"]
    audited = [(e["action"], e["environment"], e["comment"]) for e in history[:2]]
    assert audited == [("disable", "production", "incident"), ("enable", "production", "launch")]
    staging = admin.get(config_url(project, "staging", "new-checkout")).json()
    assert (staging["enabled"], staging["version"]) == (False, 0)


def test_toggle_to_the_current_state_writes_nothing(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    result = ok(
        run(server, "flags", "toggle", "new-checkout", "-p", project, "-e", "staging", "--off")
    )
    assert "already OFF in staging (version 0); nothing changed" in result.stdout
    versions = admin.get(config_url(project, "staging", "new-checkout") + "/versions").json()
    assert versions == []


class Interference(httpx.HTTPTransport):
    """Forwards to the real server, but runs `meddle` just before the first `times` toggles:
    the deterministic version of a colleague writing between the CLI's read and its write."""

    def __init__(self, meddle: Callable[[], None], times: int = 1) -> None:
        super().__init__()
        self.meddle = meddle
        self.times = times
        self.toggles = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/toggle"):
            self.toggles += 1
            if self.toggles <= self.times:
                self.meddle()
        return super().handle_request(request)


@pytest.fixture
def live_flag(admin: httpx.Client, project: str) -> str:
    """`new-checkout`, ON in production at version 1, serving `on` by default."""
    create_flag(admin, project)
    url = config_url(project, "production", "new-checkout")
    live = {"enabled": True, "offVariant": "off", "default": {"variant": "on"}}
    assert admin.put(url, json=live, headers={"If-Match": '"0"'}).status_code == 200
    return url


def test_kill_switch_retries_over_a_concurrent_edit_and_keeps_it(
    server: Server, admin: httpx.Client, project: str, live_flag: str
) -> None:
    def colleague_edits_rules() -> None:
        current = admin.get(live_flag)
        body = {"enabled": True, "offVariant": "off", "default": {"variant": "off"}}
        edit = admin.put(live_flag, json=body, headers={"If-Match": current.headers["ETag"]})
        assert edit.status_code == 200, edit.text

    transport = Interference(colleague_edits_rules)
    with AdminApi(server.url, server.admin_token, transport=transport) as api:
        path = config_path(project, "production", "new-checkout")
        config, changed = switch(api, path, False, "incident", api.get(path))
    assert changed
    assert transport.toggles == 2
    stored = admin.get(live_flag).json()
    assert (stored["enabled"], stored["version"]) == (False, 3)
    assert stored["default"] == {"variant": "off"}  # the colleague's change survived
    assert config == stored


def test_kill_switch_stops_when_a_colleague_already_switched_it(
    server: Server, admin: httpx.Client, project: str, live_flag: str
) -> None:
    def colleague_turns_it_off() -> None:
        assert admin.post(live_flag + "/toggle", json={"enabled": False}).status_code == 200

    transport = Interference(colleague_turns_it_off)
    with AdminApi(server.url, server.admin_token, transport=transport) as api:
        path = config_path(project, "production", "new-checkout")
        config, changed = switch(api, path, False, None, api.get(path))
    assert not changed
    assert (config["enabled"], config["version"]) == (False, 2)
    assert admin.get(live_flag).json()["version"] == 2


def test_kill_switch_gives_up_with_the_conflict_when_edits_never_stop(
    server: Server, admin: httpx.Client, project: str, live_flag: str
) -> None:
    def colleague_keeps_editing() -> None:
        current = admin.get(live_flag)
        body = {**current.json(), "rules": []}
        for field in ("flag", "environment", "version"):
            body.pop(field)
        edit = admin.put(live_flag, json=body, headers={"If-Match": current.headers["ETag"]})
        assert edit.status_code == 200, edit.text

    transport = Interference(colleague_keeps_editing, times=TOGGLE_ATTEMPTS)
    with AdminApi(server.url, server.admin_token, transport=transport) as api:
        path = config_path(project, "production", "new-checkout")
        with pytest.raises(ProblemError) as raised:
            switch(api, path, False, None, api.get(path))
    assert raised.value.status == 412
    assert transport.toggles == TOGGLE_ATTEMPTS
    assert admin.get(live_flag).json()["enabled"] is True


def test_config_get_json_edited_and_set_back(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    create_flag(admin, project)
    args = ("new-checkout", "-p", project, "-e", "staging")
    config = parsed(run(server, "flags", "config", "get", *args, "--json"))
    assert (config["enabled"], config["version"]) == (False, 0)
    config.update(
        enabled=True,
        default={
            "split": {"weights": [{"variant": "on", "weight": 5}, {"variant": "off", "weight": 95}]}
        },
    )
    file = tmp_path / "config.json"
    file.write_text(json.dumps(config))
    shown = ok(run(server, "flags", "config", "set", *args, "-f", str(file), "-m", "5%"))
    assert "on 5%, off 95%" in shown.stdout
    stored = admin.get(config_url(project, "staging", "new-checkout")).json()
    assert (stored["enabled"], stored["version"]) == (True, 1)
    assert stored["default"] == config["default"]
    again = run(server, "flags", "config", "set", *args, "-f", str(file))
    assert again.exit_code == 1
    assert "is at version 1, not 0" in again.stderr


def test_config_file_from_another_environment_is_copied_over_the_current_version(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    create_flag(admin, project)
    admin.post(
        config_url(project, "development", "new-checkout") + "/toggle", json={"enabled": True}
    )
    staging = admin.get(config_url(project, "staging", "new-checkout")).json()
    file = tmp_path / "staging.json"
    file.write_text(json.dumps({**staging, "enabled": True}))
    args = ("flags", "config", "set", "new-checkout", "-p", project, "-e", "development")
    ok(run(server, *args, "-f", str(file)))
    stored = admin.get(config_url(project, "development", "new-checkout")).json()
    assert (stored["environment"], stored["version"]) == ("development", 2)


def test_config_invalid_for_the_engine_lists_each_problem_with_its_path(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    create_flag(admin, project)
    file = tmp_path / "bad.json"
    file.write_text(
        json.dumps({"enabled": True, "offVariant": "nope", "default": {"variant": "on"}})
    )
    args = ("flags", "config", "set", "new-checkout", "-p", project, "-e", "staging")
    result = run(server, *args, "-f", str(file))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the change would make the flag configuration invalid")
    assert "  /flags/new-checkout/offVariant: " in result.stderr


def test_history_versions_and_revert(server: Server, admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    toggle = config_url(project, "production", "new-checkout") + "/toggle"
    admin.post(toggle, json={"enabled": True, "comment": "launch"})
    admin.post(toggle, json={"enabled": False, "comment": "errors"})
    history = parsed(run(server, "flags", "history", "new-checkout", "-p", project, "--json"))
    assert [(e["entity_type"], e["action"]) for e in history] == [
        ("config", "disable"),
        ("config", "enable"),
        ("flag", "create"),
    ]
    rows = table_rows(
        run(server, "flags", "history", "new-checkout", "-p", project, "--limit", "1")
    )
    assert len(rows) == 1
    assert "errors" in rows[0]
    versions = table_rows(
        run(server, "flags", "versions", "new-checkout", "-p", project, "-e", "production")
    )
    assert [r[0] for r in versions] == ["2", "1"]
    args = ("flags", "revert", "new-checkout", "-p", project, "-e", "production", "--to", "1")
    reverted = parsed(run(server, *args, "-m", "false alarm", "--json"))
    assert (reverted["enabled"], reverted["version"]) == (True, 3)
    assert admin.get(config_url(project, "production", "new-checkout")).json()["enabled"] is True


def test_revert_of_the_definition(server: Server, admin: httpx.Client, project: str) -> None:
    create_flag(admin, project)
    ok(run(server, "flags", "update", "new-checkout", "-p", project, "--name", "Renamed"))
    ok(run(server, "flags", "revert", "new-checkout", "-p", project, "--to", "1"))
    flag = admin.get(f"/api/v1/projects/{project}/flags/new-checkout").json()
    assert (flag["name"], flag["version"]) == (BOOLEAN_FLAG["name"], 3)


# ------------------------------------------------------------------------- segments
def test_segments_create_list_show_and_delete(
    server: Server, admin: httpx.Client, project: str, tmp_path: Path
) -> None:
    ok(
        run(
            server,
            "segments",
            "create",
            "beta",
            "-p",
            project,
            "--include",
            "u1",
            "--include",
            "u2",
        )
    )
    rules = {
        "rules": [
            {"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]}
        ]
    }
    file = tmp_path / "segment.json"
    file.write_text(json.dumps(rules))
    ok(
        run(
            server, "segments", "create", "staff", "-p", project, "-f", str(file), "--name", "Staff"
        )
    )
    rows = table_rows(run(server, "segments", "list", "-p", project))
    assert [r[:5] for r in rows] == [
        ["beta", "2", "0", "0", "1"],
        ["staff", "Staff", "0", "0", "1"],
    ]
    staff = parsed(run(server, "segments", "show", "staff", "-p", project, "--json"))
    clause = staff["rules"][0]["clauses"][0]
    assert (clause["attribute"], clause["op"], clause["values"]) == (
        "email",
        "ends_with",
        ["@example.com"],
    )
    ok(run(server, "segments", "delete", "beta", "-p", project, "-y"))
    assert admin.get(f"/api/v1/projects/{project}/segments/beta").status_code == 404


# --------------------------------------------------------------------------- tokens
def test_created_server_key_is_printed_once_and_delivers_its_environment(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    ok(run(server, "flags", "toggle", "new-checkout", "-p", project, "-e", "production", "--on"))
    result = ok(
        run(
            server,
            "tokens",
            "create",
            "--project",
            project,
            "--env",
            "production",
            "--kind",
            "server",
        )
    )
    secret = result.stdout.strip()
    assert secret.startswith("fdr_srv_")
    assert "only time" in result.stderr
    assert secret not in result.stderr
    with server.client(secret) as sdk:
        snapshot = sdk.get("/api/v1/sdk/flags").json()
    assert (snapshot["project"], snapshot["environment"]) == (project, "production")
    served = fader_engine.load(snapshot["document"]).evaluate("new-checkout", {"targetingKey": "u"})
    assert str(served.reason) != "DISABLED"
    listed = parsed(run(server, "tokens", "list", "-p", project, "--json"))
    assert [(t["kind"], t["environment"]) for t in listed] == [("server", "production")]
    refused = run(server, "projects", "list", token=secret)
    assert refused.exit_code == 1
    assert "SDK and client keys cannot use the admin API" in refused.stderr


def test_created_admin_token_sees_its_project_only_and_stops_when_revoked(
    server: Server, project: str
) -> None:
    other = unique("other")
    ok(run(server, "projects", "create", other))
    created = parsed(run(server, "tokens", "create", "-p", project, "--kind", "admin", "--json"))
    assert (created["kind"], created["project"]) == ("admin", project)
    keys = [
        p["key"] for p in parsed(run(server, "projects", "list", "--json", token=created["token"]))
    ]
    assert keys == [project]
    ok(run(server, "tokens", "revoke", str(created["id"])))
    revoked = run(server, "projects", "list", token=created["token"])
    assert revoked.exit_code == 1
    assert "the API token was revoked" in revoked.stderr
    assert "refused the API token. Set FADER_TOKEN" in revoked.stderr


def test_token_expiry_is_set_from_expires_in(server: Server, project: str) -> None:
    args = ("tokens", "create", "-p", project, "-e", "staging", "--kind", "client")
    created = parsed(run(server, *args, "--expires-in", "30d", "--name", "web app", "--json"))
    expires = datetime.fromisoformat(created["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    assert created["name"] == "web app"
    bad = run(server, *args, "--expires-in", "soon")
    assert bad.exit_code == 2
    assert "not a duration" in bad.stderr


# --------------------------------------------------------------- errors, connection
def test_not_found_prints_the_problem_detail_and_exits_1(server: Server, project: str) -> None:
    result = run(server, "flags", "show", "missing", "-p", project)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: flag 'missing' does not exist in project '{project}'\n"


def test_schema_errors_list_each_field_with_its_path(server: Server) -> None:
    result = run(server, "projects", "create", "Not A Key")
    assert result.exit_code == 1
    assert "  /body/key: String should match pattern" in result.stderr


def test_missing_token_says_to_set_fader_token(server: Server) -> None:
    result = runner.invoke(
        app, ["projects", "list"], env={"FADER_URL": server.url, "FADER_TOKEN": None}
    )
    assert result.exit_code == 1
    assert "No API token was given. Set FADER_TOKEN" in result.stderr


def test_unreachable_server_is_named_in_the_message() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = runner.invoke(app, ["projects", "list", "--url", url, "--token", "x"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot reach the Fader server at {url}")


def test_usage_errors_keep_exit_status_2(server: Server) -> None:
    assert run(server, "flags", "list").exit_code == 2  # no --project
    assert run(server, "tokens", "create", "--kind", "root").exit_code == 2


def test_options_work_without_environment_variables(server: Server, project: str) -> None:
    args = [
        "flags",
        "list",
        "-p",
        project,
        "--json",
        "--url",
        server.url,
        "--token",
        server.admin_token,
    ]
    result = runner.invoke(app, args, env=dict.fromkeys(CONNECTION_VARIABLES))
    assert json.loads(ok(result).stdout) == []


def test_project_can_come_from_fader_project(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    found = parsed(run(server, "flags", "list", "--json", FADER_PROJECT=project))
    assert [f["key"] for f in found] == ["new-checkout"]


def test_the_token_is_never_printed(server: Server, project: str) -> None:
    for args in (
        ["projects", "list"],
        ["flags", "show", "missing", "-p", project],
        ["flags", "toggle", "--help"],
        ["tokens", "list", "-p", project],
    ):
        result = run(server, *args)
        assert server.admin_token not in result.stdout + result.stderr


def test_problem_that_is_not_json_is_described() -> None:
    """A proxy's HTML error page in front of the server: status and text, marked temporary."""

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html><body>Bad gateway</body></html>")

    api = AdminApi("http://fader.internal", "t", transport=httpx.MockTransport(proxy))
    with api, pytest.raises(ProblemError) as raised:
        api.get(api_path("projects"))
    problem = raised.value
    assert (problem.status, problem.category) == (502, "retryable")
    assert "HTTP 502 Bad Gateway from http://fader.internal" in problem.detail
    assert "Bad gateway" in problem.detail


def test_installed_fader_command_talks_to_the_server(server: Server, project: str) -> None:
    fader = Path(sys.executable).parent / "fader"
    completed = subprocess.run(
        [str(fader), "projects", "show", project, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"FADER_URL": server.url, "FADER_TOKEN": server.admin_token, "PATH": "/usr/bin:/bin"},
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["key"] == project
