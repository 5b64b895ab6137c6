"""Tokens: created with the secret shown once, usable by an SDK, then revoked."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import Page, expect
from web_console import Console, Scanner


def _poll(console: Console, key: str) -> int:
    response = httpx.get(
        console.url + "/api/v1/sdk/flags", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    return response.status_code


def test_an_sdk_key_is_shown_once_works_and_is_revoked(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page.goto(f"/projects/{project}/tokens?env=production")
    scan(page, "tokens, none yet")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#token-name-error")).to_contain_text("Name the token")
    scan(page, "token form with an error")
    page.get_by_label("Name", exact=True).fill("checkout-api")
    page.get_by_label("Server-side SDK key").check()
    page.get_by_label("Environment (SDK and client keys)").select_option("production")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_label("Secret")
    key = secret.input_value()
    assert key.startswith("fdr_srv_")
    expect(page.locator(".secret")).to_contain_text("This is the only time it is shown.")
    expect(page.get_by_role("button", name="Copy to clipboard")).to_be_visible()
    scan(page, "token secret shown once")
    assert _poll(console, key) == 200

    page.goto(f"/projects/{project}/tokens?env=production")
    assert key not in page.content()
    row = page.get_by_role("row", name="checkout-api")
    expect(row).to_contain_text("Active")
    row.get_by_role("button", name="Revoke checkout-api").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Anything still using it is refused from now on.")
    expect(dialog.get_by_role("textbox")).to_have_count(0)
    scan(page, "revoke dialog")
    dialog.get_by_role("button", name="Revoke checkout-api").click()
    expect(page.locator("#notice")).to_contain_text("Revoked checkout-api.")
    expect(page.get_by_role("row", name="checkout-api")).to_contain_text("Revoked")
    scan(page, "tokens after revoking")
    # SDK endpoints cache a verified key for a few seconds (delivery/keys.py): wait that out
    deadline = time.monotonic() + 15
    while _poll(console, key) != 401:
        assert time.monotonic() < deadline, "the revoked key still works after 15 s"
        time.sleep(0.25)
