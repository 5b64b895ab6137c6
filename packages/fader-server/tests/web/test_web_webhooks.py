"""Webhooks in the console, by keyboard: subscribe a receiver to flag changes (the secret shown
once), see the change delivered in the delivery log (status in words), redeliver it; edit a
webhook's event types (project admins only)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from keyboard import tab_to
from playwright.sync_api import Page, expect
from web_console import Console, Scanner, add_user, csrf_of, logged_in

from fader_server.rollout_logic.notifications import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: Any = self.server
        server.received.append((dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _wait(what: str, probe: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_webhook_is_created_and_its_delivery_log_read_by_keyboard(
    page: Page, console: Console, project: str, scan: Scanner, receiver: Any
) -> None:
    hook_url = f"http://127.0.0.1:{receiver.server_port}/hooks/console"
    page.goto(f"/projects/{project}/webhooks?env=production")
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    scan(page, "webhooks, none yet")

    tab_to(page, "Flag changes")  # checked by default: uncheck it to see the error
    page.keyboard.press("Space")
    tab_to(page, "Create webhook")
    page.keyboard.press("Enter")
    expect(page.locator("#webhook-url-error")).to_contain_text("Enter the URL")
    expect(page.locator("#webhook-event-flag-error")).to_contain_text("at least one kind")
    scan(page, "webhook form with errors")

    tab_to(page, "URL")
    page.keyboard.type(hook_url)
    tab_to(page, "Description (optional)")
    page.keyboard.type("#deploys")
    tab_to(page, "Flag changes")
    page.keyboard.press("Space")
    tab_to(page, "Incidents")
    page.keyboard.press("Space")
    tab_to(page, "Create webhook")
    page.keyboard.press("Enter")
    secret = page.get_by_role("textbox", name="Signing secret").input_value()
    assert secret.startswith("whsec_")
    expect(page.locator(".secret")).to_contain_text("This is the only time it is shown.")
    scan(page, "webhook secret shown once")

    page.goto(f"/projects/{project}/webhooks?env=production")
    assert secret not in page.content()
    with console.api() as api:
        (hook,) = api.get(f"/api/v1/projects/{project}/webhooks").json()["items"]
    row = page.get_by_role("row", name=f"Webhook {hook['id']}")
    expect(row).to_contain_text("Flag changes, Incidents")
    expect(row).to_contain_text("Enabled")

    with console.api() as api:  # a flag change: the webhook hears it
        path = f"/api/v1/projects/{project}/environments/production/flags/new-checkout"
        etag = api.get(path).headers["ETag"]
        toggled = api.post(path + "/toggle", json={"enabled": False}, headers={"If-Match": etag})
        assert toggled.status_code == 200, toggled.text
    _wait("the delivery", lambda: receiver.received)
    headers, body = receiver.received[0]
    assert verify(secret, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])

    page.goto(f"/projects/{project}/webhooks?env=production")
    tab_to(page, f"Webhook {hook['id']}: delivery log")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Deliveries of webhook")

    def delivered() -> bool:
        page.reload()
        return "Delivered" in page.get_by_role("table").inner_text()

    _wait("the log to say delivered", delivered)
    log = page.get_by_role("table")
    expect(log).to_contain_text("HTTP 200")
    expect(log).to_contain_text("config new-checkout, disable")
    expect(log).to_contain_text(headers[DELIVERY_HEADER])
    scan(page, "delivery log")

    with console.api() as api:
        path = f"/api/v1/projects/{project}/webhooks/{hook['id']}/deliveries"
        (delivery,) = api.get(path).json()["items"]
    tab_to(page, f"Redeliver delivery {delivery['id']}")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("is queued again")
    _wait("the redelivery", lambda: len(receiver.received) >= 2)
    assert receiver.received[1][0][DELIVERY_HEADER] == headers[DELIVERY_HEADER]
    scan(page, "delivery log after redelivering")


def test_a_webhook_is_edited_by_keyboard_and_only_by_admins(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    body = {"url": "http://127.0.0.1:9/hooks/edit", "description": "#deploys", "events": ["flag"]}
    with console.api() as api:
        created = api.post(f"/api/v1/projects/{project}/webhooks", json=body)
        assert created.status_code == 201, created.text
    hook_id = created.json()["id"]
    page.goto(f"/projects/{project}/webhooks?env=production")
    tab_to(page, f"Edit webhook {hook_id}")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Edit webhook {hook_id}")
    expect(page.get_by_label("URL")).to_have_value(body["url"])
    expect(page.get_by_label("Enabled")).to_be_checked()
    scan(page, "webhook edit form")

    tab_to(page, "URL")
    page.keyboard.press("Control+A")
    page.keyboard.type("ftp://example.test/hook")
    tab_to(page, "Incidents")
    page.keyboard.press("Space")
    tab_to(page, "Save webhook")
    page.keyboard.press("Enter")
    expect(page.locator("#webhook-url-error")).to_be_visible()
    expect(page.get_by_label("Incidents")).to_be_checked()  # the form keeps what was typed
    scan(page, "webhook edit form with errors")

    tab_to(page, "URL")
    page.keyboard.press("Control+A")
    page.keyboard.type(body["url"])
    tab_to(page, "Flag changes")
    page.keyboard.press("Space")
    tab_to(page, "Save webhook")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text(f"Saved webhook {hook_id}.")
    row = page.get_by_role("row", name=f"Webhook {hook_id}")
    expect(row).to_contain_text("Incidents")
    expect(row).not_to_contain_text("Flag changes")
    expect(row).to_contain_text("Enabled")
    with console.api() as api:
        (saved,) = api.get(f"/api/v1/projects/{project}/webhooks").json()["items"]
    assert saved["events"] == ["incident"]
    assert saved["url"] == body["url"]

    with logged_in(console, *add_user(console, project, "editor")) as editor:
        path = f"/projects/{project}/webhooks/{hook_id}/edit"
        assert editor.get(path).status_code == 403
        token = csrf_of(editor.get(f"/projects/{project}/flags").text)
        form = {"csrf_token": token, "url": body["url"], "events": "flag", "enabled": "yes"}
        assert editor.post(path, data=form).status_code == 403
    with console.api() as api:
        (unchanged,) = api.get(f"/api/v1/projects/{project}/webhooks").json()["items"]
    assert unchanged["events"] == ["incident"]
