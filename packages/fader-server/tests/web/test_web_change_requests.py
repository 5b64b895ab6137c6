"""Change requests in the console: propose from a flag's rules in an environment that requires
them, approve as a second user and apply, all by keyboard only; the scheduled changes and the
flag page's "Scheduled" notice; an apply refused because its base moved; and who may see and do
what. Every page is scanned with axe-core on the way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from keyboard import focused_name, tab_to
from playwright.sync_api import Browser, Page, expect
from web_console import (
    PRODUCTION_CHECKOUT,
    Console,
    Scanner,
    add_user,
    config,
    csrf_of,
    log_in,
    logged_in,
    unique,
)

TIMEOUT_MS = 15_000
PROPOSAL = {"problem": "The beta cohort needs it", "change": "Serve it to beta users"}
POLICY = {"required": True, "approvals": 1, "approver_roles": ["admin"]}


def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, f"{response.request.url}: {response.text}"
    return response.json() if response.content else None


def require_requests(console: Console, project: str, environment: str = "production") -> None:
    """`environment` takes changes as change requests from now on (one admin approval)."""
    with console.api() as api:
        path = f"/api/v1/projects/{project}/environments/{environment}"
        current = _ok(api.get(path))
        body = {"name": current["name"], "protected": True, "change_requests": POLICY}
        _ok(api.put(path, json=body, headers={"If-Match": f'"{current["version"]}"'}))


def propose(console: Console, project: str, **extra: Any) -> dict[str, Any]:
    """A change request (by the instance admin's token) turning search-page-size on in
    production."""
    operation = {
        "kind": "flag_config",
        "environment": "production",
        "flag": "search-page-size",
        "config": {"enabled": True, "offVariant": "normal", "default": {"variant": "reduced"}},
    }
    body = {"title": "Smaller search pages", "proposal": PROPOSAL, "operations": [operation]}
    with console.api() as api:
        return dict(
            _ok(api.post(f"/api/v1/projects/{project}/change-requests", json={**body, **extra}))
        )


@contextmanager
def _browser_as(browser: Browser, console: Console, username: str, password: str) -> Iterator[Page]:
    context = browser.new_context(base_url=console.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        log_in(page, username, password)
        yield page
    finally:
        context.close()


def test_keyboard_proposes_approves_as_a_second_user_and_applies(
    browser: Browser, console: Console, project: str, scan: Scanner
) -> None:
    require_requests(console, project)
    author = add_user(console, project, "editor")
    approver = add_user(console, project, "admin")
    with _browser_as(browser, console, *author) as page:
        page.goto(f"/projects/{project}/flags/new-checkout?env=production")
        scan(page, "flag page in an environment that requires change requests")
        tab_to(page, "Propose rule changes of new-checkout in Production")
        page.keyboard.press("Enter")
        page.wait_for_url("**/flags/new-checkout/rules?**")
        expect(page.locator("#requires-requests")).to_contain_text("requires change requests")
        scan(page, "rules editor that proposes")
        tab_to(page, "Rule id (optional)")
        page.keyboard.press("Control+A")
        page.keyboard.type("staff")
        tab_to(page, "Continue to propose")
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_contain_text("Propose a change to new-checkout")
        expect(page.locator("#proposed-caption")).to_be_visible()
        expect(page.get_by_role("row", name=re.compile("^Rules"))).to_contain_text("“staff”")
        saved = config(console, project, "production", "new-checkout")
        assert saved["rules"][0]["id"] == "internal"  # nothing was saved directly
        scan(page, "propose form")
        assert focused_name(page) == "Title"
        tab_to(page, "Propose as change request")  # nothing written: each field says why
        page.keyboard.press("Enter")
        expect(page.locator("#cr-title-error")).to_contain_text("1 to 200 characters")
        expect(page.locator("#cr-problem-error")).to_contain_text("Say it in a few words")
        expect(page.get_by_role("row", name=re.compile("^Rules"))).to_contain_text("“staff”")
        scan(page, "propose form with errors")
        tab_to(page, "Title")
        page.keyboard.type("Rename the internal rule")
        tab_to(page, "Problem")
        page.keyboard.type("The rule id says internal; it targets staff.")
        tab_to(page, "Change")
        page.keyboard.type("Rename rule internal to staff.")
        tab_to(page, "Propose as change request")
        page.keyboard.press("Enter")
        page.wait_for_url("**/change-requests/*")
        expect(page.locator("#notice")).to_contain_text("Proposed change request")
        expect(page.locator("#cr-status")).to_contain_text("Open: waiting for approvals")
        expect(
            page.get_by_text("You proposed this request: someone else reviews it.")
        ).to_be_visible()
        expect(page.get_by_role("button", name="Approve")).to_have_count(0)
        scan(page, "change request, open, seen by its author")
        request_url = page.url

        with _browser_as(browser, console, *approver) as second:
            second.goto(f"/projects/{project}/change-requests?env=production")
            scan(second, "change requests list")
            tab_to(second, f"#{request_url.split('/')[-1].split('?')[0]} Rename the internal rule")
            second.keyboard.press("Enter")
            second.wait_for_url("**/change-requests/*")
            tab_to(second, "Comment")
            assert focused_name(second) == "Comment"
            second.keyboard.type("Looks right.")
            tab_to(second, "Approve")
            second.keyboard.press("Enter")
            expect(second.locator("#notice")).to_contain_text("Approved change request")
            expect(second.locator("#cr-status")).to_contain_text("Approved: ready to apply")
            expect(second.locator(".timeline")).to_contain_text("Looks right.")
            scan(second, "change request, approved")

        page.reload()
        tab_to(page, "Apply now")
        page.keyboard.press("Enter")
        expect(page.locator("#notice")).to_contain_text("its changes are live")
        expect(page.locator("#cr-status")).to_contain_text("Applied")
        scan(page, "change request, applied")
    applied = config(console, project, "production", "new-checkout")
    assert applied["rules"][0]["id"] == "staff"
    assert applied["default"] == PRODUCTION_CHECKOUT["default"]


def test_scheduled_changes_are_listed_shown_on_the_flag_and_cancelled_by_keyboard(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    require_requests(console, project)
    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    scheduled = propose(console, project, apply_at=at.isoformat())
    page.goto(f"/projects/{project}/flags/search-page-size?env=production")
    notice = page.locator("#scheduled")
    expect(notice).to_contain_text(f"#{scheduled['id']} Smaller search pages")
    expect(notice).to_contain_text(at.strftime("%Y-%m-%d %H:%M UTC"))
    scan(page, "flag page with a scheduled change")

    page.goto(f"/projects/{project}/change-requests/{scheduled['id']}?env=production")
    expect(page.get_by_role("row", name=re.compile("^State"))).to_contain_text("on")
    scan(page, "scheduled change request with its impact")

    page.goto(f"/projects/{project}/change-requests?env=production")
    tab_to(page, "Scheduled changes")
    page.keyboard.press("Enter")
    page.wait_for_url("**/scheduled-changes?**")
    expect(page.locator(f"#scheduled-{scheduled['id']}")).to_contain_text("Smaller search pages")
    scan(page, "scheduled changes")
    tab_to(page, f"Cancel change request #{scheduled['id']}")
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    if focused_name(page) != f"Cancel #{scheduled['id']}":
        tab_to(page, f"Cancel #{scheduled['id']}")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text(f"Cancelled change request #{scheduled['id']}")
    expect(page.get_by_text("Nothing is scheduled.")).to_be_visible()
    with console.api() as api:
        found = _ok(api.get(f"/api/v1/projects/{project}/change-requests/{scheduled['id']}"))
    assert found["status"] == "cancelled"
    page.goto(f"/projects/{project}/change-requests?env=production&status=rejected")
    expect(page.locator(f"#request-{scheduled['id']}")).to_contain_text("Cancelled")
    scan(page, "change requests, rejected or cancelled")


def test_turning_on_where_requests_are_required_is_proposed_and_off_stays_one_action(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    require_requests(console, project)
    page.goto(f"/projects/{project}/flags?env=production")
    expect(page.get_by_role("button", name="Turn off new-checkout in Production")).to_be_visible()
    page.get_by_role("link", name="Propose turning on button-copy in Production").click()
    expect(page.locator("h1")).to_contain_text("Propose a change to button-copy")
    expect(page.get_by_role("row", name=re.compile("^State"))).to_contain_text("off")
    expect(page.get_by_role("row", name=re.compile("^State"))).to_contain_text("on")
    scan(page, "propose turning on")
    page.get_by_label("Title").fill("Turn on the new button copy")
    page.get_by_label("Problem").fill("The treatment won the experiment.")
    page.get_by_role("textbox", name="Change").fill("Turn the flag on in production.")
    page.get_by_role("button", name="Propose as change request").click()
    expect(page.locator("#cr-status")).to_contain_text("Open: waiting for approvals")
    assert config(console, project, "production", "button-copy")["enabled"] is False


def test_an_apply_whose_base_moved_is_refused_and_explained(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    with console.api() as api:
        base = f"/api/v1/projects/{project}"
        body = {
            "from": "production",
            "to": "development",
            "flags": ["new-checkout"],
            "title": "Bring production's checkout to development",
            "proposal": {"problem": "developers need production's rules"},
        }
        request = _ok(api.post(base + "/promotions", json=body))
        assert request["status"] == "approved"
        turned_on = {"enabled": True, "offVariant": "off", "default": {"variant": "on"}}
        path = base + "/environments/development/flags/new-checkout"
        _ok(api.put(path, json=turned_on, headers={"If-Match": '"0"'}))
    page.goto(f"/projects/{project}/change-requests/{request['id']}?env=development")
    expect(page.locator("#moved")).to_contain_text(
        "'new-checkout' in 'development' is at version 1"
    )
    scan(page, "change request whose base moved")
    page.get_by_role("button", name="Apply now").click()
    expect(page.locator("#error-summary")).to_contain_text("cannot be applied")
    expect(page.locator("#cr-status")).to_contain_text("Needs update")
    scan(page, "apply refused")
    assert config(console, project, "development", "new-checkout")["default"] == {"variant": "on"}


def test_viewers_cannot_review_and_authors_cannot_approve_their_own(
    console: Console, project: str
) -> None:
    require_requests(console, project)
    request = propose(console, project)
    path = f"/projects/{project}/change-requests/{request['id']}"
    with logged_in(console, *add_user(console, project, "viewer")) as viewer:
        page = viewer.get(path)
        assert page.status_code == 200
        assert "Smaller search pages" in page.text
        assert 'formaction="' not in page.text  # no approve or reject buttons
        assert "Apply now" not in page.text
        assert "you are viewer" in page.text
        token = csrf_of(page.text)
        for action in ("approve", "reject", "apply", "cancel"):
            refused = viewer.post(f"{path}/{action}", data={"csrf_token": token, "body": ""})
            assert refused.status_code == 403, action
        commented = viewer.post(f"{path}/comment", data={"csrf_token": token, "body": "Why now?"})
        assert commented.status_code == 303  # anyone who can see it may comment
        empty = viewer.post(f"{path}/comment", data={"csrf_token": token, "body": " "})
        assert empty.status_code == 422
        assert "Write the comment first." in empty.text
    with logged_in(console, *add_user(console, project, "editor")) as editor:
        token = csrf_of(editor.get(path).text)
        refused = editor.post(f"{path}/approve", data={"csrf_token": token, "body": ""})
        assert refused.status_code == 403  # the policy names admins only
    with console.api() as api:
        found = _ok(api.get(f"/api/v1/projects/{project}/change-requests/{request['id']}"))
    assert found["status"] == "open"
    assert [r["kind"] for r in found["reviews"]] == ["comment"]


@pytest.mark.parametrize("suffix", ["change-requests", "change-requests/{id}", "scheduled-changes"])
def test_members_of_another_project_get_404(console: Console, project: str, suffix: str) -> None:
    request = propose(console, project)
    other = unique("other")
    with console.api() as api:
        _ok(api.post("/api/v1/projects", json={"key": other, "name": other}))
    with logged_in(console, *add_user(console, other, "admin")) as outsider:
        path = f"/projects/{project}/" + suffix.format(id=request["id"])
        assert outsider.get(path).status_code == 404
        token = csrf_of(outsider.get(f"/projects/{other}/change-requests").text)
        refused = outsider.post(
            f"/projects/{project}/change-requests/{request['id']}/approve",
            data={"csrf_token": token, "body": ""},
        )
        assert refused.status_code == 404


def test_the_author_updates_a_request_whose_base_moved_by_keyboard(
    page: Page, console: Console, project: str, scan: Scanner
) -> None:
    require_requests(console, project)
    page.goto(f"/projects/{project}/flags?env=production")  # proposed by the browser's user
    page.get_by_role("link", name="Propose turning on search-page-size in Production").click()
    page.get_by_label("Title").fill("Turn on smaller search pages")
    page.get_by_label("Problem").fill("Search is slow for large pages.")
    page.get_by_role("textbox", name="Change").fill("Turn the flag on in production.")
    page.get_by_role("button", name="Propose as change request").click()
    expect(page.locator("#cr-status")).to_contain_text("Open: waiting for approvals")
    mine = {"id": int(page.url.split("/")[-1].split("?")[0])}
    other_config = {"enabled": False, "offVariant": "reduced", "default": {"variant": "normal"}}
    other = propose(  # by the instance admin's token: moves the base of the browser user's
        console,
        project,
        title="Smaller pages while it is off",
        operations=[
            {
                "kind": "flag_config",
                "environment": "production",
                "flag": "search-page-size",
                "config": other_config,
            }
        ],
    )
    path = f"/projects/{project}/change-requests"
    with logged_in(console, *add_user(console, project, "admin")) as approver:
        token = csrf_of(approver.get(f"{path}/{mine['id']}").text)
        form = {"csrf_token": token, "body": "", "env": "production"}
        for request_id, action in [(mine["id"], "approve"), (other["id"], "approve")]:
            assert approver.post(f"{path}/{request_id}/{action}", data=form).status_code == 303
        assert approver.post(f"{path}/{other['id']}/apply", data=form).status_code == 303
        refused = approver.post(f"{path}/{mine['id']}/apply", data=form)  # its base moved
        assert refused.status_code == 409

        page.goto(f"{path}/{mine['id']}?env=production")
        expect(page.locator("#cr-status")).to_contain_text("Needs update")
        expect(page.get_by_role("button", name="Apply now")).to_have_count(0)
        scan(page, "change request that needs an update, seen by its author")
        tab_to(page, "Update against current versions")
        page.keyboard.press("Enter")
        expect(page.locator("#notice")).to_contain_text(f"Updated change request #{mine['id']}")
        expect(page.locator("#cr-status")).to_contain_text("Open: waiting for approvals")
        expect(page.locator(".timeline")).to_contain_text("earlier approvals no longer count")
        expect(page.locator("#moved")).to_have_count(0)

        token = csrf_of(approver.get(f"{path}/{mine['id']}").text)
        form = {"csrf_token": token, "body": "", "env": "production"}
        assert approver.post(f"{path}/{mine['id']}/approve", data=form).status_code == 303
    page.reload()
    expect(page.locator("#cr-status")).to_contain_text("Approved: ready to apply")
    tab_to(page, "Apply now")
    page.keyboard.press("Enter")
    expect(page.locator("#notice")).to_contain_text("its changes are live")
    assert config(console, project, "production", "search-page-size")["enabled"] is True
