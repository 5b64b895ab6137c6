"""The environments console and promotion: create and protect environments, compare two of
them and promote flags as one change request, by keyboard only (Tab, Space, Enter, typing),
with axe-core scans of every page on the way; and who may see and do what.
"""

from __future__ import annotations

from typing import Any

from keyboard import tab_to
from playwright.sync_api import Page, expect
from web_console import Console, Scanner, add_user, config, csrf_of, logged_in, unique

STAGING_CHECKOUT = {
    "enabled": True,
    "offVariant": "off",
    "rules": [],
    "default": {"variant": "on"},
    "prerequisites": [],
}


SETTINGS = {
    "bucketing": "v2",
    "cr-approvals": "1",
    "cr-approver-roles": "admin",
    "cr-emergency-roles": "admin",
}
"""The rest of a complete settings form (a hostile post is as complete as the page's)."""


def _environment(console: Console, project: str, key: str) -> dict[str, Any]:
    with console.api() as api:
        response = api.get(f"/api/v1/projects/{project}/environments/{key}")
        assert response.status_code == 200, response.text
        return dict(response.json())


def test_keyboard_creates_an_environment_and_protects_another(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    key = unique("qa")
    page.goto(f"/projects/{project}/flags?env=production")
    tab_to(page, "Environments")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project}/environments?**")
    scan(page, "environments list")

    tab_to(page, "Create environment")  # nothing typed: the form says what is missing
    page.keyboard.press("Enter")
    expect(page.locator("#error-summary")).to_contain_text("Enter a key for the environment.")
    scan(page, "new environment with errors")

    tab_to(page, "Key")
    page.keyboard.type(key)
    tab_to(page, "Name")
    page.keyboard.type("Quality assurance")
    tab_to(page, "Protected")
    page.keyboard.press("Space")
    tab_to(page, "Create environment")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text(f"Created environment {key}")
    expect(page.locator(f"#environment-{key}")).to_contain_text("Protected")
    created = _environment(console, project, key)
    assert created["name"] == "Quality assurance"
    assert created["protected"] is True
    assert created["change_requests"]["required"] is False

    tab_to(page, "Staging settings")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project}/environments/staging?**")
    scan(page, "environment settings")
    tab_to(page, "Require change requests (protected environments only)")
    page.keyboard.press("Space")
    tab_to(page, "Save environment")  # not protected yet: a policy needs protection
    page.keyboard.press("Enter")
    expect(page.locator("#cr-required-error")).to_contain_text("Only a protected environment")
    scan(page, "environment settings with an error")
    assert _environment(console, project, "staging")["protected"] is False

    tab_to(page, "Protected")
    page.keyboard.press("Space")
    tab_to(page, "Save environment")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("Saved environment staging")
    expect(page.locator("#environment-staging")).to_contain_text("Required: 1 approval by admin")
    staging = _environment(console, project, "staging")
    assert staging["protected"] is True
    assert staging["change_requests"]["required"] is True


def test_keyboard_compares_two_environments_and_promotes_a_flag(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    with console.api() as api:
        path = f"/api/v1/projects/{project}/environments/staging/flags/new-checkout"
        response = api.put(path, json=STAGING_CHECKOUT, headers={"If-Match": '"0"'})
        assert response.status_code == 200, response.text
    page.goto(f"/projects/{project}/environments?env=production")
    tab_to(page, "Compare environments")
    page.keyboard.press("Enter")
    page.wait_for_url("**/environments/_compare?**")
    expect(page.locator("#compare-summary")).to_contain_text("1 differ")
    expect(page.locator("#compare-new-checkout")).to_contain_text("differs")
    expect(page.locator("#compare-new-checkout")).to_contain_text("Default: “on”")
    expect(page.locator("#compare-new-checkout")).to_contain_text("split “on” 5%, “off” 95%")
    scan(page, "environment comparison")

    tab_to(page, "Promote as change request")  # nothing checked yet
    page.keyboard.press("Enter")
    expect(page.locator("#promote-flags-error")).to_contain_text("Check at least one flag")
    scan(page, "promotion with errors")

    tab_to(page, "Promote new-checkout")
    page.keyboard.press("Space")
    tab_to(page, "Title")
    page.keyboard.type("Promote the new checkout to production")
    tab_to(page, "Problem")
    page.keyboard.type("Staging ran it for a week without errors.")
    tab_to(page, "Promote as change request")
    page.keyboard.press("Enter")
    page.wait_for_url("**/change-requests/*")
    expect(page.locator("#notice")).to_contain_text("promote 1 flag(s) from Staging to Production")
    expect(page.locator("h1")).to_contain_text("Promote the new checkout to production")
    expect(page.locator("#operations-title")).to_contain_text("What it changes (1)")
    scan(page, "promotion's change request")
    assert config(console, project, "production", "new-checkout")["enabled"] is True  # unchanged

    tab_to(page, "Apply now")  # production has no policy: approved at once, an admin applies
    page.keyboard.press("Enter")
    expect(page.locator("#cr-status")).to_contain_text("Applied")
    promoted = config(console, project, "production", "new-checkout")
    assert promoted["default"] == {"variant": "on"}


def test_viewers_see_environments_but_change_nothing(console: Console, project: str) -> None:
    with logged_in(console, *add_user(console, project, "viewer")) as viewer:
        listing = viewer.get(f"/projects/{project}/environments")
        assert listing.status_code == 200
        assert "Production" in listing.text
        assert "Create environment" not in listing.text
        settings = viewer.get(f"/projects/{project}/environments/production")
        assert "Save environment" not in settings.text
        assert "Read-only for you" in settings.text
        compared = viewer.get(f"/projects/{project}/environments/_compare")
        assert compared.status_code == 200
        assert "Promote as change request" not in compared.text
        token = csrf_of(listing.text)
        created = viewer.post(
            f"/projects/{project}/environments",
            data={"csrf_token": token, "key": "sneaky", "name": "Sneaky", **SETTINGS},
        )
        assert created.status_code == 403
        version = _environment(console, project, "production")["version"]
        changed = viewer.post(
            f"/projects/{project}/environments/production",
            data={"csrf_token": token, "version": str(version), "name": "Prod", **SETTINGS},
        )
        assert changed.status_code == 403
        promoted = viewer.post(
            f"/projects/{project}/environments/_compare",
            data={"csrf_token": token, "a": "staging", "b": "production", "flag": "new-checkout",
                  "cr-title": "t", "cr-problem": "p"},
        )  # fmt: skip
        assert promoted.status_code == 403
    environment = _environment(console, project, "production")
    assert environment["name"] == "Production"
    assert environment["version"] == version


def test_members_of_another_project_cannot_tell_these_pages_exist(
    console: Console, project: str
) -> None:
    other = unique("other")
    with console.api() as api:
        assert api.post("/api/v1/projects", json={"key": other, "name": other}).status_code == 201
    with logged_in(console, *add_user(console, other, "admin")) as outsider:
        for path in ("environments", "environments/production", "environments/_compare"):
            assert outsider.get(f"/projects/{project}/{path}").status_code == 404, path
        token = csrf_of(outsider.get(f"/projects/{other}/environments").text)
        refused = outsider.post(
            f"/projects/{project}/environments",
            data={"csrf_token": token, "key": "sneaky", "name": "Sneaky", **SETTINGS},
        )
        assert refused.status_code == 404
