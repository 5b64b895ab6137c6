"""`fader incidents ...` against a real server (SQLite and PostgreSQL), checked through the API:
open by hand, acknowledge, write the post-mortem, add action items up to the limit, mark one
done, resolve, and the failures a person meets (an impossible step, a fourth item)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from conftest import Server
from server_api import create_flag
from test_cli_admin import ok, parsed, run, table_rows

DUE = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()


def test_an_incident_is_worked_through_from_the_command_line(
    server: Server, admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    opened = parsed(
        run(
            server,
            *("incidents", "open", "-p", project, "--title", "Checkout 500s"),
            *("--severity", "critical", "--flag", "new-checkout", "-e", "production", "--json"),
        )
    )
    incident = str(opened["id"])
    assert (opened["state"], opened["flag"]) == ("open", "new-checkout")
    rows = table_rows(run(server, "incidents", "list", "-p", project, "--state", "open"))
    assert rows[0][:3] == [incident, "open", "critical"]

    acked = ok(run(server, "incidents", "ack", incident, "-p", project, "-m", "paged"))
    assert f"incident {incident} acknowledged: acknowledged" in acked.stderr
    again = run(server, "incidents", "ack", incident, "-p", project)
    assert again.exit_code == 1
    assert "only an open incident can be acknowledged" in again.stderr

    ok(run(server, "incidents", "postmortem", incident, "-p", project, "-s", "A bad deploy."))
    for title in ("Alert on 5xx", "Canary first", "Runbook"):
        added = ok(
            run(
                server,
                *("incidents", "action", "add", incident, "-p", project),
                *("--title", title, "--owner", "admin", "--due", DUE),
            )
        )
        assert f"added to incident {incident}: admin, due {DUE}" in added.stderr
    fourth = run(
        server,
        *("incidents", "action", "add", incident, "-p", project),
        *("--title", "More", "--owner", "admin", "--due", DUE),
    )
    assert fourth.exit_code == 1
    assert "3 action items already" in fourth.stderr
    bad_day = run(
        server,
        *("incidents", "action", "add", incident, "-p", project),
        *("--title", "x", "--owner", "admin", "--due", "next friday"),
    )
    assert bad_day.exit_code == 2

    items = parsed(run(server, "incidents", "action", "list", "-p", project, "--json"))
    assert [i["state"] for i in items] == ["open"] * 3
    first = str(items[0]["id"])
    ok(run(server, "incidents", "action", "done", incident, first, "-p", project))
    open_rows = table_rows(
        run(server, "incidents", "action", "list", "-p", project, "--status", "open")
    )
    assert len(open_rows) == 2
    assert all(row[2] == "OPEN" for row in open_rows)

    resolved = ok(
        run(server, "incidents", "resolve", incident, "-p", project, "-r", "Rolled back v42")
    )
    assert f"incident {incident} resolved: resolved" in resolved.stderr
    shown = ok(run(server, "incidents", "show", incident, "-p", project)).stdout
    assert "RESOLVED" in shown
    assert "A bad deploy." in shown
    assert "Alert on 5xx" in shown
    for action in ("opened", "acknowledged", "postmortem_updated", "added", "done", "resolved"):
        assert action in shown
    incident_json = admin.get(f"/api/v1/projects/{project}/incidents/{incident}").json()
    assert incident_json["summary"] == "A bad deploy."
    assert [i["status"] for i in incident_json["action_items"]] == ["done", "open", "open"]
