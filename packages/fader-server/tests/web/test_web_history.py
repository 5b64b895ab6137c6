"""History: readable diffs, filters, and one-click restore of definitions and configurations;
a restore that changes what a protected environment serves asks first (a dialog, or a page
without JavaScript), and editors get no button for one only admins may make."""

from __future__ import annotations

from keyboard import assert_focus_visible, focused_name, tab_to
from playwright.sync_api import Page, expect
from web_console import FLAGS, Console, Scanner, add_user, config, csrf_of, http_login


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


def _toggle_off_in_production(console: Console, project: str) -> None:
    with console.api() as api:
        path = f"/api/v1/projects/{project}/environments/production/flags/new-checkout/toggle"
        response = api.post(path, json={"enabled": False})
        assert response.status_code == 200, response.text


def _change_served_copy(console: Console, project: str) -> None:
    """button-copy is never configured in production, which serves its off variant
    ("control", its first): changing that value changes what production serves."""
    with console.api() as api:
        variants = {"control": "Pay", "treatment": "Complete purchase"}
        response = api.put(
            f"/api/v1/projects/{project}/flags/button-copy",
            json={**FLAGS["button-copy"], "variants": variants},
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text


def test_restoring_what_production_serves_asks_first_in_a_dialog(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    _toggle_off_in_production(console, project)
    page.goto(f"/projects/{project}/history?env=production&type=flag&key=new-checkout")
    page.get_by_role(
        "button",
        name="Restore version 1 of the configuration of new-checkout in Production "
        "(undo this change)",
    ).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Production is a protected environment.")
    scan(page, "restore confirmation dialog")
    dialog.get_by_label("Reason (optional; recorded in the history)").fill("incident over")
    dialog.get_by_role("button", name="Restore version 1").click()
    expect(page.locator("#notice")).to_contain_text(
        "Restored new-checkout in Production to version 1; it is now version 3."
    )
    assert config(console, project, "production", "new-checkout")["enabled"] is True
    expect(page.locator(".entry").first).to_contain_text("Reason: “incident over”")

    # A definition whose earlier version changes what production serves asks too; cancelling
    # changes nothing and gives the focus back to the button.
    _change_served_copy(console, project)
    page.goto(f"/projects/{project}/history?env=production&type=flag&key=button-copy")
    restore = page.get_by_role(
        "button", name="Restore version 1 of the flag button-copy (undo this change)"
    )
    restore.click()
    expect(dialog).to_contain_text("changes what Production serves")
    expect(dialog).to_contain_text("the value of variant 'control' of flag 'button-copy'")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(restore).to_be_focused()
    with console.api() as api:
        flag = api.get(f"/api/v1/projects/{project}/flags/button-copy").json()
    assert (flag["version"], flag["variants"]["control"]) == (2, "Pay")


def test_restoring_what_production_serves_without_javascript_shows_a_confirmation_page(
    plain_page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page = plain_page
    _change_served_copy(console, project)
    page.goto(f"/projects/{project}/history?env=production&type=flag&key=button-copy")
    page.get_by_role(
        "button", name="Restore version 1 of the flag button-copy (undo this change)"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Restore version 1?")
    expect(page.get_by_text("changes what Production serves")).to_be_visible()
    scan(page, "restore confirmation page")
    page.get_by_role("textbox", name="Reason (optional; recorded in the history)").fill(
        "copy test over"
    )
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.locator("#notice")).to_contain_text(
        "Restored flag button-copy to version 1; it is now version 3."
    )
    with console.api() as api:
        flag = api.get(f"/api/v1/projects/{project}/flags/button-copy").json()
    assert flag["variants"]["control"] == "Buy now"
    expect(page.locator(".entry").first).to_contain_text("Reason: “copy test over”")


def test_an_editor_gets_no_restore_that_would_change_production(
    console: Console, project: str
) -> None:
    _change_served_copy(console, project)
    with console.api() as api:  # a descriptive change: production serves the same
        renamed = {**FLAGS["search-page-size"], "name": "Results per page"}
        response = api.put(
            f"/api/v1/projects/{project}/flags/search-page-size",
            json=renamed,
            headers={"If-Match": '"1"'},
        )
        assert response.status_code == 200, response.text
    with console.browser_client() as editor:
        assert http_login(editor, *add_user(console, project, "editor")).status_code == 303
        history = editor.get(f"/projects/{project}/history?env=production&type=flag")
        assert "of the flag search-page-size (undo this change)" in history.text
        assert "of the flag button-copy (undo this change)" not in history.text
        forged = editor.post(
            f"/projects/{project}/history/revert",
            data={
                "csrf_token": csrf_of(history.text),
                "env": "production",
                "type": "flag",
                "key": "button-copy",
                "environment": "",
                "version": "1",
                "confirmed": "yes",
            },
        )
    assert forged.status_code == 403
    assert "protected environment &#39;production&#39;" in forged.text
    with console.api() as api:
        flag = api.get(f"/api/v1/projects/{project}/flags/button-copy").json()
    assert flag["variants"]["control"] == "Pay"


def test_the_restore_confirmation_works_by_keyboard_alone(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    _toggle_off_in_production(console, project)
    page.goto(f"/projects/{project}/history?env=production&type=flag&key=new-checkout")
    tab_to(
        page,
        "Restore version 1 of the configuration of new-checkout in Production (undo this change)",
    )
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    assert focused_name(page).startswith("Reason")
    page.keyboard.type("back to normal")
    page.keyboard.press("Tab")
    assert focused_name(page) == "Restore version 1"
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text(
        "Restored new-checkout in Production to version 1; it is now version 3."
    )
    assert config(console, project, "production", "new-checkout")["enabled"] is True
    scan(page, "after a restore by keyboard")
