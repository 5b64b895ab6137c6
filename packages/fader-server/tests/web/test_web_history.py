"""History: readable diffs, filters, and one-click restore of definitions and configurations."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from web_console import FLAGS, Console, Scanner


def test_history_shows_what_changed_and_restores_a_flag_definition(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    with console.api() as api:
        changed = {**FLAGS["button-copy"], "name": "Buy button text", "comment": "clearer"}
        response = api.put(
            f"/api/v1/projects/{project}/flags/button-copy",
            json=changed,
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
    page.goto(f"/projects/{project}/history?env=production&type=flag&key=button-copy")
    newest = page.locator(".entry").first
    expect(newest).to_contain_text("Update flag button-copy → version 2")
    expect(newest).to_contain_text("name: was Checkout button copy → now Buy button text")
    expect(newest.locator("del")).to_have_text(["Checkout button copy"])
    expect(newest).to_contain_text("Reason: “clearer”")
    scan(page, "history of a flag")
    newest.get_by_role(
        "button", name="Restore version 1 of the flag button-copy (undo this change)"
    ).click()
    expect(page.locator("#notice")).to_contain_text(
        "Restored flag button-copy to version 1; it is now version 3."
    )
    with console.api() as api:
        flag = api.get(f"/api/v1/projects/{project}/flags/button-copy").json()
    assert flag["name"] == "Checkout button copy"
    expect(page.locator(".entry").first).to_contain_text("Revert to v1 flag button-copy")
    scan(page, "history after a restore")


def test_history_filters_by_kind_and_pages(page: Page, project: str, scan: Scanner) -> None:
    page.goto(f"/projects/{project}/history?env=production")
    page.get_by_label("Show").select_option("segment")
    page.get_by_role("button", name="Filter").click()
    entries = page.locator(".entry")
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text("Create segment internal-users")
    expect(entries.first.get_by_role("button")).to_have_count(0)  # nothing before version 1
    entries.first.locator("summary").click()
    expect(entries.first.locator("pre")).to_contain_text("@example.com")
    scan(page, "history filtered to segments")
