"""Segments: create with included keys and rules, the engine's messages while typing, edit."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from web_console import Console, Scanner


def test_a_segment_is_created_checked_and_edited(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page.goto(f"/projects/{project}/segments?env=production")
    expect(page.locator("table")).to_contain_text("internal-users")
    scan(page, "segments list")
    page.get_by_role("link", name="New segment").click()
    scan(page, "new segment form")
    page.get_by_label("Key", exact=True).fill("beta-testers")
    page.get_by_label("Name (optional)").fill("Beta testers")
    page.get_by_label("Always included targeting keys").fill("user-1\nuser-2")
    page.locator("#rules-0-clauses-0-attribute").fill("email")
    page.locator("#rules-0-clauses-0-op").select_option("matches")
    page.locator("#rules-0-clauses-0-values").fill("([a-z]+@beta")
    page.get_by_role("button", name="Create segment").click()
    expect(page.locator("#rules-0-clauses-0-values-error")).to_contain_text(
        "invalid regular expression"
    )
    scan(page, "new segment with an engine error")
    page.locator("#rules-0-clauses-0-values").fill("@beta\\.example\\.com$")
    page.get_by_role("button", name="Create segment").click()
    expect(page.locator("#notice")).to_contain_text("Created segment beta-testers (version 1)")
    scan(page, "segments list with its notice")

    page.get_by_role("link", name="Beta testers").click()
    values = page.locator("#rules-0-clauses-0-values")
    values.fill("(")
    expect(page.locator("#check-status")).to_contain_text("the engine found 1 problem")
    expect(values).to_have_attribute("aria-invalid", "true")
    scan(page, "segment checked as you type")
    values.fill("@beta")
    expect(page.locator("#check-status")).to_contain_text("no problems")
    page.get_by_label("Always excluded targeting keys").fill("user-3")
    page.get_by_role("button", name="Save segment").click()
    expect(page.locator("#notice")).to_contain_text("Saved segment beta-testers (version 2)")
    with console.api() as api:
        saved = api.get(f"/api/v1/projects/{project}/segments/beta-testers").json()
    assert saved["included"] == ["user-1", "user-2"]
    assert saved["excluded"] == ["user-3"]
    assert saved["rules"] == [
        {"clauses": [{"attribute": "email", "op": "matches", "values": ["@beta"]}]}
    ]
