"""Incidents through the API, on SQLite and PostgreSQL: opened by hand, acknowledged, resolved
and reopened (impossible steps refused with 409, stale ones with 412), the post-mortem and its
at most three action items, the project's list of open, overdue and done items, and the audit
entries every step leaves. Rollbacks opening incidents are in test_api_rollouts.py; the
escalation of overdue items in test_incident_escalation.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import Server
from server_api import create_flag, unique

TODAY = datetime.now(UTC).date()


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["category"] == "user_fixable"
    return body


def _open(admin: httpx.Client, project: str, **fields: Any) -> dict[str, Any]:
    body = {"title": "Checkout errors", "severity": "critical", **fields}
    response = admin.post(f"/api/v1/projects/{project}/incidents", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _member(server: Server, admin: httpx.Client, project: str, role: str) -> str:
    name = unique(role)
    created = admin.post("/api/v1/users", json={"username": name, "password": "pw-" + "x" * 12})
    assert created.status_code == 201, created.text
    added = admin.put(f"/api/v1/projects/{project}/members/{name}", json={"role": role})
    assert added.status_code == 200, added.text
    return name


def _audit(admin: httpx.Client, project: str, entity: str) -> list[dict[str, Any]]:
    items = admin.get(f"/api/v1/projects/{project}/audit?limit=500").json()["items"]
    return [e for e in items if e["entity_type"] == entity]


def test_an_incident_opened_by_hand_is_acknowledged_resolved_and_reopened(
    admin: httpx.Client, project: str
) -> None:
    create_flag(admin, project)
    base = f"/api/v1/projects/{project}/incidents"
    opened = _open(
        admin, project, flag="new-checkout", environment="production", description="5xx on pay"
    )
    assert (opened["state"], opened["severity"], opened["rollout"]) == ("open", "critical", None)
    assert (opened["flag"], opened["environment"]) == ("new-checkout", "production")
    assert opened["opened_by"].startswith(("token:", "user:"))
    incident = opened["id"]
    listed = admin.get(base, params={"state": "open"}).json()["items"]
    assert [i["id"] for i in listed] == [incident]
    assert admin.get(base, params={"state": "resolved"}).json()["items"] == []

    stale = admin.post(f"{base}/{incident}/acknowledge", headers={"If-Match": '"7"'})
    assert "version 1, not 7" in _problem(stale, 412)["detail"]
    acked = admin.post(f"{base}/{incident}/acknowledge", json={"comment": "on it"})
    assert acked.status_code == 200, acked.text
    assert acked.headers["ETag"] == '"2"'
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == opened["opened_by"]
    again = _problem(admin.post(f"{base}/{incident}/acknowledge"), 409)
    assert "acknowledged; only an open incident can be acknowledged" in again["detail"]

    missing = admin.post(f"{base}/{incident}/resolve", json={"resolution": ""})
    assert missing.status_code == 422, missing.text
    resolved = admin.post(f"{base}/{incident}/resolve", json={"resolution": "Reverted v42"})
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["state"], resolved.json()["resolution"]) == ("resolved", "Reverted v42")
    twice = admin.post(f"{base}/{incident}/resolve", json={"resolution": "again"})
    assert "resolved already" in _problem(twice, 409)["detail"]
    _problem(admin.post(f"{base}/{incident}/acknowledge"), 409)

    reopened = admin.post(f"{base}/{incident}/reopen").json()
    assert (reopened["state"], reopened["resolution"]) == ("acknowledged", None)
    _problem(admin.post(f"{base}/{incident}/reopen"), 409)

    events = admin.get(f"{base}/{incident}").json()["events"]
    assert [e["action"] for e in events] == ["opened", "acknowledged", "resolved", "reopened"]
    assert events[1]["comment"] == "on it"
    audit = _audit(admin, project, "incident")
    assert {e["entity_key"] for e in audit} == {str(incident)}
    assert sorted(e["action"] for e in audit) == ["acknowledged", "opened", "reopened", "resolved"]


def test_open_refuses_unknown_flags_environments_and_severities(
    admin: httpx.Client, project: str
) -> None:
    base = f"/api/v1/projects/{project}/incidents"
    flag = _problem(admin.post(base, json={"title": "t", "flag": "nope"}), 422)
    assert [e["path"] for e in flag["errors"]] == ["/flag"]
    env = _problem(admin.post(base, json={"title": "t", "environment": "mars"}), 422)
    assert [e["path"] for e in env["errors"]] == ["/environment"]
    severity = admin.post(base, json={"title": "t", "severity": "apocalyptic"})
    assert severity.status_code == 422
    assert admin.post(base, json={"title": "x" * 201}).status_code == 422
    assert admin.get(base).json()["items"] == []


def test_the_postmortem_needs_if_match_and_never_overwrites_a_newer_summary(
    admin: httpx.Client, project: str
) -> None:
    incident = _open(admin, project)["id"]
    url = f"/api/v1/projects/{project}/incidents/{incident}/postmortem"
    _problem(admin.put(url, json={"summary": "Bad deploy"}), 428)
    written = admin.put(url, json={"summary": "Bad deploy"}, headers={"If-Match": '"1"'})
    assert written.status_code == 200, written.text
    assert written.json()["summary"] == "Bad deploy"
    _problem(admin.put(url, json={"summary": "Lost"}, headers={"If-Match": '"1"'}), 412)
    assert admin.put(url, json={"summary": "x" * 10_001}, headers={"If-Match": '"2"'}).status_code
    assert admin.get(url.removesuffix("/postmortem")).json()["summary"] == "Bad deploy"
    actions = [e["action"] for e in _audit(admin, project, "incident")]
    assert actions.count("postmortem_updated") == 1


def test_at_most_three_action_items_each_owned_by_a_member_and_due_on_a_day(
    server: Server, admin: httpx.Client, project: str
) -> None:
    owner = _member(server, admin, project, "editor")
    incident = _open(admin, project)["id"]
    items = f"/api/v1/projects/{project}/incidents/{incident}/action-items"
    due = (TODAY + timedelta(days=7)).isoformat()
    stranger = _problem(
        admin.post(items, json={"title": "Alert", "owner": "nobody-here", "due_on": due}), 422
    )
    assert [e["path"] for e in stranger["errors"]] == ["/owner"]
    past = (TODAY - timedelta(days=2)).isoformat()
    late = _problem(admin.post(items, json={"title": "Alert", "owner": owner, "due_on": past}), 422)
    assert [e["path"] for e in late["errors"]] == ["/due_on"]
    bad_day = admin.post(items, json={"title": "Alert", "owner": owner, "due_on": 1_900_000_000})
    assert bad_day.status_code == 422

    made = []
    for title in ("Add an alert", "Canary first", "Runbook"):
        response = admin.post(items, json={"title": title, "owner": owner, "due_on": due})
        assert response.status_code == 201, response.text
        made.append(response.json())
    assert [(i["status"], i["state"], i["owner"]) for i in made] == [("open", "open", owner)] * 3
    fourth = _problem(admin.post(items, json={"title": "More", "owner": owner, "due_on": due}), 422)
    assert "3 action items already" in fourth["detail"]
    assert "a few owned fixes get done" in fourth["detail"]

    first = f"{items}/{made[0]['id']}"
    _problem(admin.patch(first, json={"title": "Page on-call"}), 428)
    later = (TODAY + timedelta(days=14)).isoformat()
    edited = admin.patch(
        first, json={"title": "Page on-call", "due_on": later}, headers={"If-Match": '"1"'}
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["title"], edited.json()["due_on"], edited.json()["version"]) == (
        "Page on-call",
        later,
        2,
    )
    done = admin.post(f"{items}/{made[1]['id']}/done", json={"comment": "shipped"})
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["state"]) == ("done", "done")
    assert "done already" in _problem(admin.post(f"{items}/{made[1]['id']}/done"), 409)["detail"]
    frozen = admin.patch(
        f"{items}/{made[1]['id']}", json={"title": "x"}, headers={"If-Match": '"2"'}
    )
    _problem(frozen, 409)

    listing = f"/api/v1/projects/{project}/action-items"
    open_items = admin.get(listing, params={"status": "open"}).json()["items"]
    assert [i["id"] for i in open_items] == [made[2]["id"], made[0]["id"]]  # soonest due first
    assert [i["id"] for i in admin.get(listing, params={"status": "done"}).json()["items"]] == [
        made[1]["id"]
    ]
    assert admin.get(listing, params={"status": "overdue"}).json()["items"] == []
    page = admin.get(listing, params={"limit": 2}).json()
    rest = admin.get(listing, params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert len(page["items"]) + len(rest["items"]) == 3
    assert rest["next_cursor"] is None

    detail = admin.get(f"/api/v1/projects/{project}/incidents/{incident}").json()
    assert [i["title"] for i in detail["action_items"]] == [
        "Page on-call",
        "Canary first",
        "Runbook",
    ]
    assert [e["action"] for e in detail["events"]] == [
        "opened", "added", "added", "added", "updated", "done"
    ]  # fmt: skip
    audit = _audit(admin, project, "action_item")
    assert {e["entity_key"] for e in audit} == {f"{incident}/{i['id']}" for i in made}


@pytest.mark.parametrize("path", ["/incidents/{i}", "/incidents/{i}/action-items/{a}/done"])
def test_another_projects_incidents_and_items_are_not_found(
    admin: httpx.Client, project: str, path: str
) -> None:
    incident = _open(admin, project)["id"]
    item = admin.post(
        f"/api/v1/projects/{project}/incidents/{incident}/action-items",
        json={"title": "t", "owner": "admin", "due_on": TODAY.isoformat()},
    ).json()["id"]
    other = unique("p")
    assert admin.post("/api/v1/projects", json={"key": other, "name": "Other"}).status_code == 201
    url = f"/api/v1/projects/{other}" + path.format(i=incident, a=item)
    response = admin.post(url) if path.endswith("done") else admin.get(url)
    _problem(response, 404)
