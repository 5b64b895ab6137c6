"""Members and roles: create a user, change their role, remove them (with confirmation)."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from web_console import Console, Scanner, http_login, unique


def test_a_user_is_created_given_a_role_and_removed(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    username = unique("ada")
    page.goto(f"/projects/{project}/members?env=production")
    scan(page, "members")
    page.get_by_label("Username", exact=True).last.fill(username)
    page.get_by_label("Initial password").fill("short")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#new-password-error")).to_contain_text("Use at least 12 characters.")
    scan(page, "members with an error")
    page.get_by_label("Initial password").fill("a-long-enough-password")
    page.get_by_label("Role in this project").select_option("viewer")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#notice")).to_contain_text(f"Created user {username}")
    row = page.get_by_role("row", name=username)
    expect(row).to_contain_text("viewer")

    row.get_by_label(f"Role of {username}").select_option("editor")
    row.get_by_role("button", name=f"Change the role of {username}").click()
    expect(page.locator("#notice")).to_contain_text(f"{username} is now editor in this project.")
    scan(page, "members after a role change")
    with console.browser_client() as client:
        assert http_login(client, username, "a-long-enough-password").status_code == 303
        assert client.get(f"/projects/{project}/flags").status_code == 200

    page.get_by_role("row", name=username).get_by_role("button", name=f"Remove {username}").click()
    page.get_by_role("dialog").get_by_role("button", name=f"Remove {username}").click()
    expect(page.locator("#notice")).to_contain_text(f"Removed {username} from this project.")
    expect(page.get_by_role("row", name=username)).to_have_count(0)
    with console.api() as api:
        members = api.get(f"/api/v1/projects/{project}/members").json()
    assert username not in [m["username"] for m in members]
