"""Incidents in the console (a real `fader serve`, Chromium, axe-core): the list, opening one,
an incident's page with its lifecycle, post-mortem and action items, the action items page and
the dashboard's overdue items, all with zero axe violations; acknowledging an incident and
adding an action item with the keyboard only; and a viewer, who sees no controls and whose
posts are refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from keyboard import focused_name, tab_to
from playwright.sync_api import Page, expect
from web_console import Console, Scanner, add_user, csrf_of, http_login

from fader_server.storage.sql.store import SqlStore


def _api(console: Console, method: str, path: str, body: Any = None) -> Any:
    with console.api() as api:
        response = api.request(method, path, json=body)
    assert response.status_code < 300, response.text
    return response.json()


def _incident(console: Console, project: str, title: str = "Checkout 500s") -> int:
    body = {
        "title": title,
        "severity": "critical",
        "flag": "new-checkout",
        "environment": "production",
        "description": "Payments fail for one user in ten.",
    }
    created = _api(console, "POST", f"/api/v1/projects/{project}/incidents", body)
    return int(created["id"])


def _item(console: Console, project: str, incident: int, title: str, owner: str) -> dict[str, Any]:
    due = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    path = f"/api/v1/projects/{project}/incidents/{incident}/action-items"
    created: dict[str, Any] = _api(
        console, "POST", path, {"title": title, "owner": owner, "due_on": due}
    )
    return created


def _make_overdue(console: Console, project: str, item_id: int) -> None:
    """Move an item's due day into the past in the server's database (time passing)."""
    store = SqlStore.open(f"sqlite:///{console.log_path.parent / 'fader.db'}", upgrade=False)
    try:
        with store.transaction() as tx:
            found = tx.get_project(project)
            assert found is not None
            item = tx.get_action_item(found.id, item_id)
            assert item is not None
            moved = replace(item, due_on=item.due_on - timedelta(days=9))
            assert tx.update_action_item(moved, datetime.now(UTC)) is not None
    finally:
        store.close()


def test_incident_pages_have_no_axe_violations(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    owner, _ = add_user(console, project, "editor")
    incident = _incident(console, project)
    first = _item(console, project, incident, "Alert on payment errors", owner)
    _item(console, project, incident, "Canary the payment client", owner)
    _make_overdue(console, project, first["id"])
    _incident(console, project, "Search slow")

    page.goto(f"/projects/{project}/incidents")
    expect(page.locator("#incidents-caption")).to_contain_text("2 incidents")
    scan(page, "incident list")
    page.goto(f"/projects/{project}/incidents?state=acknowledged")
    expect(page.locator("main")).to_contain_text("No incidents in this state.")
    scan(page, "incident list, filtered, empty")

    page.goto(f"/projects/{project}/incidents/_new")
    page.get_by_role("button", name="Open incident").click()
    expect(page.locator("#error-summary")).to_contain_text("Say in a line what is wrong.")
    scan(page, "open an incident, refused")

    page.goto(f"/projects/{project}/incidents/{incident}")
    expect(page.locator("#incident-state")).to_have_text("Open")
    rows = page.locator("#items-caption + thead + tbody tr")
    expect(rows.first).to_contain_text("Overdue")
    assert page.locator("time").count() >= 4
    assert page.locator("time:not([datetime])").count() == 0  # every date machine-readable
    scan(page, "incident page")
    page.get_by_label("Resolution: what ended it").fill("Reverted the payment client.")
    page.get_by_role("button", name=f"Resolve incident {incident}").click()
    expect(page.locator("#notice")).to_contain_text(f"Resolved incident {incident}.")
    expect(page.locator("#incident-state")).to_have_text("Resolved")
    page.get_by_label("Summary: what happened, why, and what the action items change").fill(
        "A client upgrade dropped retries."
    )
    page.get_by_role("button", name="Save the post-mortem").click()
    expect(page.locator("#notice")).to_contain_text("Saved the post-mortem.")
    expect(page.locator(".timeline")).to_contain_text("updated the post-mortem")
    expect(page.locator(".timeline")).to_contain_text("resolved the incident")
    scan(page, "incident page, resolved, with a post-mortem")

    page.goto(f"/projects/{project}/action-items?status=overdue")
    expect(page.locator("#items-caption")).to_contain_text("1 overdue action item")
    scan(page, "overdue action items")
    page.goto(f"/projects/{project}")
    expect(page.locator("#overdue-caption")).to_contain_text("1 overdue action item")
    expect(page.locator("#overdue-title + p + div")).to_contain_text("Alert on payment errors")
    scan(page, "dashboard with an overdue item")

    page.goto(f"/projects/{project}/action-items")
    page.get_by_role("button", name="Mark “Alert on payment errors” done").click()
    expect(page.locator("#notice")).to_contain_text("Marked “Alert on payment errors” done.")
    expect(page.locator("#items-caption")).to_contain_text("1 open action item")
    scan(page, "open action items")
    page.goto(f"/projects/{project}")
    expect(page.locator("main")).to_contain_text("No overdue action items.")


def test_keyboard_acknowledges_an_incident_and_adds_an_action_item(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    owner, _ = add_user(console, project, "editor")
    incident = _incident(console, project)
    page.goto(f"/projects/{project}")
    tab_to(page, "Incidents")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project}/incidents?**")
    tab_to(page, f"{incident}: Checkout 500s")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/incidents/{incident}?**")
    scan(page, "incident page before acknowledging")

    tab_to(page, f"Acknowledge incident {incident}")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text(f"Acknowledged incident {incident}")
    expect(page.locator("#incident-state")).to_have_text("Acknowledged")

    tab_to(page, "What will be fixed")
    page.keyboard.type("Alert when payment errors pass 1%")
    page.keyboard.press("Tab")
    assert focused_name(page) == "Owner"
    page.keyboard.type(owner)  # type-ahead picks the member in the list
    page.keyboard.press("Tab")
    assert focused_name(page) == "Due day (UTC)"  # a week ahead already
    tab_to(page, "Add action item")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text(
        f"Added action item “Alert when payment errors pass 1%” for {owner}"
    )
    scan(page, "incident page after adding an item by keyboard")

    detail = _api(console, "GET", f"/api/v1/projects/{project}/incidents/{incident}")
    assert detail["state"] == "acknowledged"
    assert detail["acknowledged_by"] == "user:admin"
    assert [(i["title"], i["owner"], i["state"]) for i in detail["action_items"]] == [
        ("Alert when payment errors pass 1%", owner, "open")
    ]
    assert [e["action"] for e in detail["events"]] == ["opened", "acknowledged", "added"]


def test_a_viewer_sees_no_incident_controls_and_posts_get_403(
    console: Console, project: str
) -> None:
    incident = _incident(console, project)
    path = f"/projects/{project}/incidents/{incident}"
    with console.browser_client() as viewer:
        assert http_login(viewer, *add_user(console, project, "viewer")).status_code == 303
        shown = viewer.get(path)
        assert shown.status_code == 200
        assert "Checkout 500s" in shown.text
        for control in ("Acknowledge incident", "Add action item", "Save the post-mortem"):
            assert control not in shown.text
        assert "Open an incident" not in viewer.get(f"/projects/{project}/incidents").text
        token = csrf_of(shown.text)
        refused = viewer.post(path + "/acknowledge", data={"csrf_token": token})
        assert refused.status_code == 403
        assert "needs the editor role" in refused.text
    assert (
        _api(console, "GET", f"/api/v1/projects/{project}/incidents/{incident}")["state"] == "open"
    )
