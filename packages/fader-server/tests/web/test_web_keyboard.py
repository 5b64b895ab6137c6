"""Keyboard only (the console aims at WCAG 2.2 AA): find a flag, turn it off in production,
revert it from history.

Nothing here clicks: only page.keyboard (Tab, Enter, typing). The time from opening the flags
list to the confirmed kill switch is measured in the browser (without the time spent in the
axe-core scans made on the way) and reported at the end of the run.
"""

from __future__ import annotations

import time

import pytest
from keyboard import assert_focus_visible, focused_name, tab_to
from playwright.sync_api import Page, expect
from web_console import REPORT, Console, Scanner, config


def test_keyboard_finds_a_flag_kills_it_in_production_and_reverts_it(
    page: Page, console: Console, project: str, scan: Scanner, request: pytest.FixtureRequest
) -> None:
    started = time.perf_counter()
    page.goto(f"/projects/{project}/flags?env=production")
    scan(page, "flags list")

    tab_to(page, "Search flags")
    page.keyboard.type("new-checkout")
    page.keyboard.press("Enter")
    page.wait_for_url("**q=new-checkout**")
    expect(page.locator("#flag-count")).to_contain_text("1 flag matches")
    scan(page, "search results")

    tab_to(page, "Turn off new-checkout in Production")
    page.keyboard.press("Enter")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    scan(page, "confirmation dialog open")
    assert focused_name(page).startswith("Reason")
    page.keyboard.type("checkout errors spiking")
    page.keyboard.press("Tab")
    assert focused_name(page) == "Turn off in Production"
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("new-checkout is now off in Production")
    elapsed_ms = (time.perf_counter() - started - scan.seconds) * 1000
    request.config.stash[REPORT].kill_switch_ms.append(elapsed_ms)
    expect(page.locator("#flag-new-checkout")).to_contain_text("Off")
    assert config(console, project, "production", "new-checkout")["enabled"] is False
    scan(page, "after the kill switch")

    tab_to(page, "New checkout")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project}/flags/new-checkout?**")
    tab_to(page, "History of new-checkout")
    page.keyboard.press("Enter")
    page.wait_for_url("**/history?**key=new-checkout**")
    expect(page.locator(".entry").first).to_contain_text("checkout errors spiking")
    scan(page, "flag history")

    tab_to(
        page,
        "Restore version 1 of the configuration of new-checkout in Production (undo this change)",
    )
    page.keyboard.press("Enter")
    # Production is protected: the restore asks for confirmation and a reason, like the kill
    # switch, and the dialog is driven by keyboard too.
    expect(page.locator("#confirm-dialog")).to_be_visible()
    scan(page, "restore confirmation open")
    assert focused_name(page).startswith("Reason")
    page.keyboard.type("errors are back to normal")
    page.keyboard.press("Tab")
    assert focused_name(page) == "Restore version 1"
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text(
        "Restored new-checkout in Production to version 1; it is now version 3."
    )
    restored = config(console, project, "production", "new-checkout")
    assert restored["enabled"] is True
    assert restored["version"] == 3
    scan(page, "after the revert")
