"""Every page of the console, for an admin and for a viewer, scanned by axe-core at WCAG 2.2
AA; the main pages reflow at 320 CSS pixels (400% zoom) and are screenshotted."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from web_console import Console, Scanner, add_user, log_in, seed_project

DEMO_PAGES = {
    "dashboard": "/projects/demo?env=production",
    "flags": "/projects/demo/flags?env=production",
    "flag": "/projects/demo/flags/new-checkout?env=production",
    "rules": "/projects/demo/flags/new-checkout/rules?env=production",
    "new-flag": "/projects/demo/flags/_new?env=production",
    "edit-flag": "/projects/demo/flags/new-checkout/edit?env=production",
    "segments": "/projects/demo/segments?env=production",
    "segment": "/projects/demo/segments/internal-users?env=production",
    "new-segment": "/projects/demo/segments/_new?env=production",
    "history": "/projects/demo/history?env=production",
    "tokens": "/projects/demo/tokens?env=production",
    "members": "/projects/demo/members?env=production",
    "import": "/projects/demo/import?env=production",
    "projects": "/projects",
}
SCREENSHOTS = ("dashboard", "flags", "flag", "rules", "history", "tokens")


def test_every_page_passes_axe_and_the_main_ones_are_screenshotted(
    page: Page, scan: Scanner, screenshots: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    for name, path in DEMO_PAGES.items():
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, (name, path)
        expect(page.locator("h1")).to_have_count(1)
        scan(page, name)
        if name in SCREENSHOTS:
            page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    page.goto(DEMO_PAGES["flags"])
    page.get_by_role("button", name="Turn off new-checkout in Production").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    scan(page, "kill switch dialog")
    page.screenshot(path=str(screenshots / "kill-switch.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#flag-new-checkout")).to_contain_text("On")


@pytest.mark.parametrize("name", ["dashboard", "flags", "flag", "rules", "history", "members"])
def test_pages_reflow_at_400_percent_zoom(page: Page, scan: Scanner, name: str) -> None:
    page.set_viewport_size({"width": 320, "height": 640})  # 1280 x 2560 at 400%
    page.goto(DEMO_PAGES[name])
    overflow = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(el => !el.closest('.table-scroll, .visually-hidden, dialog'))
            .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
            .map(el => el.tagName + '#' + el.id + '.' + el.className).slice(0, 5)"""
    )
    assert overflow == [], f"{name} scrolls sideways at 320 px: {overflow}"
    assert page.evaluate("document.documentElement.scrollWidth") <= 321
    scan(page, f"{name} at 320 px")


def test_a_viewers_pages_pass_axe(browser: Browser, console: Console, scan: Scanner) -> None:
    project = seed_project(console)
    username, password = add_user(console, project, "viewer")
    context = browser.new_context(base_url=console.url)
    try:
        page = context.new_page()
        log_in(page, username, password)
        for path in (
            "",
            "/flags",
            "/flags/new-checkout",
            "/segments",
            "/segments/internal-users",
            "/history",
            "/members",
            "/import",
        ):
            page.goto(f"/projects/{project}{path}?env=production")
            expect(page.get_by_role("button", name="Turn off", exact=False)).to_have_count(0)
            scan(page, f"viewer {path or 'dashboard'}")
        response = page.goto(f"/projects/{project}/tokens")
        assert response is not None
        assert response.status == 403
        expect(page.get_by_role("heading", level=1)).to_have_text("Permission denied")
        scan(page, "403 page")
    finally:
        context.close()


def test_login_and_error_pages_pass_axe(
    browser: Browser, console: Console, page: Page, scan: Scanner
) -> None:
    response = page.goto("/projects/no-such-project/flags")
    assert response is not None
    assert response.status == 404
    scan(page, "404 page")
    response = page.goto("/projects/demo/flags/no-such-flag?env=production")
    assert response is not None
    assert response.status == 404
    expect(page.locator("main")).to_contain_text("flag 'no-such-flag' does not exist")
    context = browser.new_context(base_url=console.url)
    try:
        anonymous = context.new_page()
        anonymous.goto("/projects/demo/flags")
        anonymous.wait_for_url("**/login?next=/projects/demo/flags")
        scan(anonymous, "login page")
        anonymous.get_by_label("Username").fill("admin")
        anonymous.get_by_label("Password").fill("not the password")
        anonymous.get_by_role("button", name="Log in").click()
        expect(anonymous.locator("#password-error")).to_contain_text(
            "Unknown user or wrong password"
        )
        expect(anonymous.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
        scan(anonymous, "login page with an error")
    finally:
        context.close()
