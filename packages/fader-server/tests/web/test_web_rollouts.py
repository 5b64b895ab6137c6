"""Rollouts in the console: start a plan from a template, watch it, pause, resume, advance and
abort it (with a confirmation page, without JavaScript) and find the flag as it was before;
a viewer gets no commands and a 403 when posting one; a post without the CSRF token changes
nothing."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from playwright.sync_api import Page, expect
from web_console import (
    ADMIN,
    PASSWORD,
    Console,
    Scanner,
    add_user,
    config,
    csrf_of,
    http_login,
)

# the demo's staged-release template (services/demo.py), on the test's own project
STAGED_RELEASE: dict[str, Any] = {
    "key": "staged-release",
    "name": "Staged release",
    "stages": [
        {"name": "internal users", "min_duration": 3600, "segment": "internal-users"},
        {"name": "1%", "min_duration": 3600, "percent": 1},
        {"name": "5%", "min_duration": 3600, "percent": 5},
        {"name": "25%", "min_duration": 7200, "percent": 25, "approval": True},
        {"name": "50%", "min_duration": 7200, "percent": 50},
        {"name": "100%", "min_duration": 0, "percent": 100},
    ],
    "gates": [
        {"kind": "error_rate", "event": "error", "min_samples": 200, "detect": 0.02},
        {"kind": "latency", "event": "latency", "min_samples": 200, "margin": 20},
    ],
}


def _with_template(console: Console, project: str) -> None:
    with console.api() as api:
        made = api.post(f"/api/v1/projects/{project}/rollout-templates", json=STAGED_RELEASE)
        assert made.status_code == 201, made.text


def _start_plan(console: Console, project: str) -> int:
    with console.api() as api:
        made = api.post(
            f"/api/v1/projects/{project}/rollouts",
            json={
                "flag": "new-checkout",
                "environment": "production",
                "control": "off",
                "treatment": "on",
                "template": "staged-release",
                "start": True,
            },
        )
        assert made.status_code == 201, made.text
        return int(made.json()["id"])


def _plan_id(page: Page) -> str:
    match = re.search(r"/rollouts/(\d+)", page.url)
    assert match, page.url
    return match.group(1)


def test_a_release_starts_from_a_template_and_is_paused_advanced_and_aborted(
    plain_page: Page, console: Console, project: str, scan: Scanner
) -> None:
    page = plain_page
    _with_template(console, project)
    before = config(console, project, "production", "new-checkout")

    page.goto(f"/projects/{project}/flags/new-checkout?env=production")
    page.get_by_role("link", name="Start a release of new-checkout").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Start a release")
    expect(page.get_by_label("Flag", exact=True)).to_have_value("new-checkout")
    page.get_by_role("button", name="Start the release").click()
    expect(page.locator("#error-summary")).to_contain_text("Choose the variant served today.")
    expect(page.get_by_label("Template")).to_have_attribute("aria-invalid", "true")
    scan(page, "start form with errors")

    page.get_by_label("Environment to release in").select_option("production")
    page.get_by_label("Control variant (served today)").select_option("off")
    page.get_by_label("Treatment variant (being rolled out)").select_option("on")
    page.get_by_label("Template").select_option("staged-release")
    page.get_by_role("button", name="Start the release").click()
    expect(page.locator("#notice")).to_contain_text("stage “internal users”")
    expect(page.locator("#plan-status")).to_have_text("Running")
    current = page.locator(".stages li[aria-current=step]")
    expect(current).to_contain_text("internal users")
    expect(current).to_contain_text("current stage")
    expect(page.get_by_role("img", name="Error rate by arm, gate 1")).to_be_visible()
    expect(page.get_by_role("table", name="Gate 1, error rate per arm")).to_be_visible()
    scan(page, "plan running")
    plan_id = _plan_id(page)
    started = config(console, project, "production", "new-checkout")
    assert started["rules"][0]["clauses"][0]["values"] == ["internal-users"]

    page.goto(f"/projects/{project}/rollouts?env=production")
    row = page.get_by_role("row", name=re.compile(f"Plan {plan_id}"))
    expect(row).to_contain_text("Running")
    expect(row).to_contain_text("internal users (1 of 6)")
    expect(row).to_contain_text("of at least 1 h")
    scan(page, "rollout list")

    page.goto(f"/projects/{project}?env=production")
    panel = page.get_by_role("table", name="1 unfinished release plan")
    expect(panel).to_contain_text("new-checkout in production")
    expect(panel).to_contain_text("internal users (1 of 6)")
    expect(panel.locator(".burn-cell")).to_contain_text(re.compile("no (gate evidence|errors)"))
    scan(page, "dashboard with a running rollout")

    page.goto(f"/projects/{project}/rollouts/{plan_id}?env=production")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#plan-status")).to_have_text("Paused")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    scan(page, "plan paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#plan-status")).to_have_text("Running")
    page.get_by_role("button", name="Advance to the next stage").click()
    expect(page.locator("#plan-stage")).to_have_text("1% (2 of 6)")
    expect(page.locator(".stages li[aria-current=step]")).to_contain_text("1%")
    scan(page, "plan advanced")

    page.get_by_role("button", name="Abort (roll back)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Abort release plan {plan_id} and roll new-checkout back?"
    )
    assert config(console, project, "production", "new-checkout")["version"] != before["version"]
    scan(page, "abort confirmation")
    page.get_by_role("textbox", name="Reason (optional; recorded in the history)").fill("test")
    page.get_by_role("button", name="Abort and roll back new-checkout in Production").click()
    expect(page.locator("#plan-status")).to_have_text("Aborted")
    expect(page.get_by_role("button", name="Advance to the next stage")).to_have_count(0)
    scan(page, "plan aborted")

    after = config(console, project, "production", "new-checkout")
    ignored = {"version", "updated_at", "updated_by", "comment"}
    assert {k: v for k, v in after.items() if k not in ignored} == {
        k: v for k, v in before.items() if k not in ignored
    }


def test_a_viewer_sees_no_commands_and_posts_get_403_or_need_the_csrf_token(
    console: Console, project: str
) -> None:
    _with_template(console, project)
    plan_id = _start_plan(console, project)
    path = f"/projects/{project}/rollouts/{plan_id}"
    with console.browser_client() as viewer:
        assert http_login(viewer, *add_user(console, project, "viewer")).status_code == 303
        shown = viewer.get(path + "?env=production")
        assert shown.status_code == 200
        assert "Running" in shown.text
        for label in ("Pause", "Advance to the next stage", "Abort (roll back)"):
            assert f">{label}</button>" not in shown.text
        listed = viewer.get(f"/projects/{project}/rollouts")
        assert "Start a release" not in listed.text
        token = csrf_of(shown.text)
        refused = viewer.post(path + "/pause", data={"csrf_token": token, "env": "production"})
        assert refused.status_code == 403
        assert "needs the editor role" in refused.text

    with console.browser_client() as editor:
        assert http_login(editor, *add_user(console, project, "admin")).status_code == 303
        forged = editor.post(path + "/abort", data={"confirmed": "yes", "env": "production"})
        assert forged.status_code == 403
        assert "This form has expired" in forged.text
        token = csrf_of(editor.get(path).text)
        done = editor.post(path + "/pause", data={"csrf_token": token, "env": "production"})
        assert done.status_code == 303

    with console.api() as api:
        status = api.get(f"/api/v1/projects/{project}/rollouts/{plan_id}").json()["status"]
    assert status == "paused"


def test_an_unknown_plan_is_a_404_page(console: Console, project: str) -> None:
    with console.browser_client() as client:
        assert http_login(client, ADMIN, PASSWORD).status_code == 303
        missing = client.get(f"/projects/{project}/rollouts/999999")
        assert missing.status_code == 404
        assert "release plan 999999 does not exist" in missing.text


def test_a_rollback_shows_its_incident_evidence_and_timeline(
    plain_page: Page, console: Console, project: str, scan: Scanner
) -> None:
    """A real rollback by the scheduler: an HTTP check gate on a page that does not exist."""
    with console.api() as api:
        made = api.post(
            f"/api/v1/projects/{project}/rollouts",
            json={
                "flag": "new-checkout",
                "environment": "production",
                "control": "off",
                "treatment": "on",
                "stages": [
                    {"name": "internal", "min_duration": 3600, "segment": "internal-users"}
                ],
                "gates": [
                    {"kind": "http_check", "url": console.url + "/no-such-page",
                     "interval": 0.1, "trip_after": 1},
                ],
                "start": True,
            },
        )  # fmt: skip
        assert made.status_code == 201, made.text
        plan_id = made.json()["id"]
        deadline = time.monotonic() + 60
        while api.get(f"/api/v1/projects/{project}/rollouts/{plan_id}").json()["status"] != (
            "rolled_back"
        ):
            assert time.monotonic() < deadline, "the scheduler did not roll the plan back"
            time.sleep(0.2)
    with console.browser_client() as client:
        assert http_login(client, ADMIN, PASSWORD).status_code == 303
        page = client.get(f"/projects/{project}/rollouts/{plan_id}")
    assert page.status_code == 200
    incident = page.text[page.text.index('id="incident"') :]
    assert "http_check failed 1 times in a row" in incident
    assert f"rollout:{plan_id}" in incident  # the scheduler, as the actor of the rollback
    assert "rollback plan" in incident
    assert "/api/v1/" not in incident  # nothing a browser session cannot open
    plain_page.goto(f"/projects/{project}/rollouts/{plan_id}")
    expect(
        plain_page.get_by_role("table", name="Timeline: who changed what, oldest first")
    ).to_be_visible()
    scan(plain_page, "plan rolled back, with its incident")
    plain_page.locator("#incident a[href*='/incidents/']").click()
    plain_page.wait_for_url("**/incidents/*")
    expect(plain_page.locator("#incident-state")).to_have_text("Open")
    expect(plain_page.locator("#evidence-title + p")).to_contain_text("At stage “internal”")
    expect(
        plain_page.get_by_role("table", name="Every gate's result when the plan rolled back")
    ).to_contain_text("http_check failed 1 times in a row")
    timeline = plain_page.locator(".timeline")
    expect(timeline).to_contain_text("rollback: moved the release plan")
    expect(timeline).to_contain_text(f"rollout:{plan_id} opened the incident")
    scan(plain_page, "incident opened by a rollback")


class _Hooks(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Any = self.server
        server.received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def test_the_console_asks_before_enabling_a_flag_and_announces_commands(
    console: Console, project: str
) -> None:
    """new-checkout is off in staging (never configured there): the start form refuses until
    the box is ticked. The plan's page says what the stages serve and what gates count, and a
    pause from the console reaches the project's webhook with the person as its actor."""
    _with_template(console, project)
    hooks: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    hooks.received = []
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    try:
        with console.api() as api:
            made = api.post(
                f"/api/v1/projects/{project}/webhooks",
                json={"url": f"http://127.0.0.1:{hooks.server_port}/hook"},
            )
            assert made.status_code == 201, made.text
        username, password = add_user(console, project, "admin")
        with console.browser_client() as browser:
            assert http_login(browser, username, password).status_code == 303
            form = browser.get(f"/projects/{project}/rollouts/_new?env=staging")
            fields = {
                "csrf_token": csrf_of(form.text),
                "env": "staging",
                "flag": "new-checkout",
                "environment": "staging",
                "control": "off",
                "treatment": "on",
                "template": "staged-release",
            }
            refused = browser.post(f"/projects/{project}/rollouts/_new", data=fields)
            assert refused.status_code == 422
            assert "is off in &#39;staging&#39;" in refused.text
            assert 'aria-invalid="true"' in refused.text.split('id="enable"')[1].split(">")[0]
            assert config(console, project, "staging", "new-checkout")["version"] == 0
            started = browser.post(
                f"/projects/{project}/rollouts/_new", data={**fields, "enable": "on"}
            )
            assert started.status_code == 303, started.text
            assert config(console, project, "staging", "new-checkout")["enabled"] is True

            plan_id = _start_plan(console, project)  # the README's example, in production
            page = browser.get(f"/projects/{project}/rollouts/{plan_id}?env=production")
            assert "1% of users (serves 5%, as the flag did before the plan)" in page.text
            assert "Counts summaries reported with server SDK keys, received in whole minutes" in (
                page.text
            )
            paused = browser.post(
                f"/projects/{project}/rollouts/{plan_id}/pause",
                data={"csrf_token": csrf_of(page.text), "env": "production"},
            )
            assert paused.status_code == 303
        deadline = time.monotonic() + 30

        def announced(action: str) -> list[dict[str, Any]]:
            notes = [json.loads(body)["fader"] for body in hooks.received]
            return [n for n in notes if n["action"] == action]

        while not announced("pause"):
            assert time.monotonic() < deadline, "the pause was not announced"
            time.sleep(0.05)
        (note,) = announced("pause")
        assert note["rollout"]["plan"] == plan_id
        assert note["actor"] == f"user:{username}"
        assert announced("start")  # the console's start
    finally:
        hooks.shutdown()
        hooks.server_close()
