"""The flags list (search, tag filters, kill switch), the flag page ("what does this user
get") and the flag form, in a real browser, every state scanned by axe-core."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect
from web_console import Console, Scanner, config


def test_search_and_tags_narrow_the_flags_list(page: Page, project: str, scan: Scanner) -> None:
    page.goto(f"/projects/{project}/flags?env=production")
    expect(page.locator("#flag-count")).to_have_text("3 flags in this project.")
    page.get_by_label("Search flags").fill("checkout")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#flag-count")).to_contain_text("2 flags match “checkout”")
    rows = page.locator("table.flags tbody tr")
    expect(rows).to_have_count(2)
    scan(page, "search results")
    page.get_by_label("growth").check()
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#flag-count")).to_contain_text("1 flag matches “checkout” tagged growth")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("button-copy")
    page.get_by_label("Search flags").fill("nothing-like-this")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_text("No flag matches.")).to_be_visible()
    scan(page, "no results")


def test_kill_switch_works_without_javascript(
    browser: Browser, console: Console, project: str, admin_state: str
) -> None:
    context = browser.new_context(
        base_url=console.url, storage_state=str(admin_state), java_script_enabled=False
    )
    try:
        page = context.new_page()
        page.goto(f"/projects/{project}/flags?env=production")
        page.get_by_role("button", name="Turn off new-checkout in Production").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Turn off new-checkout in Production?"
        )
        assert config(console, project, "production", "new-checkout")["enabled"] is True
        page.get_by_role("textbox", name="Reason (optional; recorded in the history)").fill(
            "no JavaScript"
        )
        page.get_by_role("button", name="Turn off new-checkout in Production").click()
        expect(page.locator("#notice")).to_contain_text("new-checkout is now off in Production")
        assert config(console, project, "production", "new-checkout")["enabled"] is False
    finally:
        context.close()


def test_the_confirmation_page_and_cancel(
    plain_page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page = plain_page
    page.goto(f"/projects/{project}/flags?env=production")
    page.get_by_role("button", name="Turn off new-checkout in Production").click()
    expect(page.get_by_text("Production is a protected environment.")).to_be_visible()
    scan(page, "confirmation page")
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator("#flag-new-checkout")).to_contain_text("On")
    assert config(console, project, "production", "new-checkout")["enabled"] is True


def test_an_unprotected_environment_switches_in_one_click(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page.goto(f"/projects/{project}/flags?env=staging")
    page.get_by_role("button", name="Turn on search-page-size in Staging").click()
    expect(page.locator("#notice")).to_contain_text("search-page-size is now on in Staging")
    expect(page.locator("#flag-search-page-size")).to_contain_text("On")
    assert config(console, project, "staging", "search-page-size")["enabled"] is True
    scan(page, "after switching on")


def test_cancelling_the_dialog_changes_nothing(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page.goto(f"/projects/{project}/flags?env=production")
    toggle = page.get_by_role("button", name="Turn off new-checkout in Production")
    toggle.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Production is protected")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(toggle).to_be_focused()
    scan(page, "after cancelling the dialog")
    assert config(console, project, "production", "new-checkout")["enabled"] is True


def test_what_does_this_user_get(page: Page, project: str, scan: Scanner) -> None:
    page.goto(f"/projects/{project}/flags/new-checkout?env=production")
    scan(page, "flag page")
    context = page.get_by_label("Context (JSON)")
    context.fill('{"targetingKey": "u-1", "email": "ada@example.com"}')
    page.get_by_role("button", name="Evaluate").click()
    result = page.locator("#evaluation")
    expect(result).to_contain_text("Result in Production")
    expect(result).to_contain_text("TARGETING_MATCH")
    expect(result).to_contain_text("true")
    scan(page, "evaluation result")
    page.get_by_label("Evaluate in").select_option("staging")
    page.get_by_role("button", name="Evaluate").click()
    expect(result).to_contain_text("Result in Staging")
    expect(result).to_contain_text("DISABLED")
    context.fill('{"targetingKey": ')
    page.get_by_role("button", name="Evaluate").click()
    expect(page.locator("#context-error")).to_contain_text("This is not valid JSON")
    expect(context).to_have_attribute("aria-invalid", "true")
    expect(result).to_contain_text("Not evaluated")
    scan(page, "evaluation error")


def test_switching_project_and_environment_keeps_the_section(page: Page, project: str) -> None:
    page.goto(f"/projects/{project}/flags?env=production")
    page.get_by_label("Environment", exact=True).select_option("development")
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url(f"**/projects/{project}/flags?env=development")
    expect(page.get_by_role("heading", level=1)).to_contain_text("in Development")
    page.get_by_label("Project", exact=True).select_option("demo")
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url("**/projects/demo/flags?env=development")


def test_a_flag_is_created_and_edited_with_messages_next_to_the_fields(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page.goto(f"/projects/{project}/flags?env=production")
    page.get_by_role("link", name="New flag").click()
    expect(page.get_by_label("Key", exact=True)).to_be_focused()
    scan(page, "new flag form")
    page.get_by_label("Key", exact=True).fill("Dark Mode")
    page.get_by_label("Variant 2 value").fill("maybe")
    page.get_by_role("button", name="Create flag").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(page.locator("#key-error")).to_contain_text("'Dark Mode' is not a valid key")
    expect(page.locator("#name-error")).to_contain_text("Enter a name")
    expect(page.get_by_label("Key", exact=True)).to_have_attribute("aria-invalid", "true")
    scan(page, "new flag form with errors")

    page.get_by_label("Key", exact=True).fill("dark-mode")
    page.get_by_label("Name", exact=True).fill("Dark mode")
    page.get_by_role("button", name="Create flag").click()
    # "maybe" is no boolean: that is the engine's verdict, shown at the variant's value
    expect(page.locator("#variants-1-value-error")).to_contain_text("boolean flags need true")
    page.get_by_label("Variant 2 value").fill("false")
    page.get_by_role("button", name="Add variant").click()
    expect(page.get_by_label("Variant 3 name")).to_be_focused()
    page.get_by_role("button", name="Remove variant 3").click()
    page.get_by_label("Tags (optional)").fill("ui, web")
    page.get_by_label("Owner team (optional)").fill("web")
    page.get_by_label("Available to client-side keys").check()
    page.get_by_role("button", name="Create flag").click()
    expect(page.locator("#notice")).to_contain_text("Created flag dark-mode (version 1)")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dark mode")
    scan(page, "new flag page with its notice")

    page.get_by_role("link", name="Edit details of dark-mode").click()
    expect(page.get_by_label("Available to client-side keys")).to_be_checked()
    page.get_by_label("Name", exact=True).fill("Dark mode everywhere")
    page.get_by_label("Why? (optional; recorded in the history)").fill("broader scope")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#notice")).to_contain_text("Saved flag dark-mode (version 2)")
    with console.api() as api:
        flag = api.get(f"/api/v1/projects/{project}/flags/dark-mode").json()
    assert flag["name"] == "Dark mode everywhere"
    assert flag["tags"] == ["ui", "web"]
    assert flag["client_side"] is True  # kept through an edit that did not touch it


def test_removing_a_variant_still_served_shows_the_engines_message(
    page: Page, project: str, scan: Scanner
) -> None:
    page.goto(f"/projects/{project}/flags/new-checkout/edit?env=production")
    page.get_by_role("button", name="Remove variant 2").click()  # "off", served in production
    page.get_by_role("button", name="Save changes").click()
    message = page.locator("#variants-error")
    expect(message).to_contain_text("'off'")
    expect(page.locator("#error-summary")).to_be_visible()
    scan(page, "flag form with an engine error")
