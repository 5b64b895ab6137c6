"""The web console's test harness: a real `fader serve` process, Debian's Chromium driven by
Playwright, axe-core scans, HTTP logins, and test data made through the JSON API.

Kept out of ``conftest.py`` so fixtures stay thin and these helpers can be read on their own.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Page
from processes import terminate, wait_ready

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
ADMIN = "admin"
PASSWORD = "correct-horse-" + secrets.token_hex(6)
STARTUP_SECONDS = 120
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------------ the server
@dataclass(frozen=True)
class Console:
    url: str
    admin_token: str
    log_path: Path

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30,
        )

    def browser_client(self) -> httpx.Client:
        """A cookie-keeping client that behaves like a browser without JavaScript."""
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of its own (the server tests' PostgreSQL), dropped at the end."""
    name = f"fader_web_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fader_serve(
    data_dir: Path, database_url: str | None = None, extra_env: dict[str, str] | None = None
) -> Iterator[Console]:
    """`fader serve --demo` on a free port until the block ends: SQLite in `data_dir`, or the
    PostgreSQL database at `database_url`; `extra_env`: more ``FADER_*`` settings."""
    port = _free_port()
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    env = {**os.environ, "FADER_ADMIN_PASSWORD": PASSWORD, "FADER_ADMIN_TOKEN": token}
    env.update(extra_env or {})
    env["FADER_OUTBOUND_ALLOW"] = "127.0.0.1/32"  # rollout gates point at this very server
    log_path = data_dir / "server.log"
    command = [sys.executable, "-c", "from fader_server.cli.main import main; main()"]
    command += ["serve", "--demo", "--data-dir", str(data_dir), "--port", str(port)]
    if database_url:
        command += ["--database-url", database_url]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        # generous: on a loaded CI machine importing, migrating and seeding can take long
        if not wait_ready(url, process, STARTUP_SECONDS):
            raise RuntimeError(
                f"fader serve did not answer /readyz within {STARTUP_SECONDS} s "
                f"(exit code {process.poll()}); its output:\n{log_path.read_text()}"
            )
        yield Console(url, token, log_path)
    finally:
        terminate(process)


# ------------------------------------------------------------------------------ accessibility
@dataclass
class Report:
    """What the web tests measured, summed over the session (and over xdist workers)."""

    axe_scans: int = 0
    axe_violations: int = 0
    pages: set[str] = field(default_factory=set)
    kill_switch_ms: list[float] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(
            {
                "axe_scans": self.axe_scans,
                "axe_violations": self.axe_violations,
                "pages": sorted(self.pages),
                "kill_switch_ms": self.kill_switch_ms,
            }
        )

    def merge(self, text: str) -> None:
        data = json.loads(text)
        self.axe_scans += data["axe_scans"]
        self.axe_violations += data["axe_violations"]
        self.pages.update(data["pages"])
        self.kill_switch_ms.extend(data["kill_switch_ms"])


def _describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {' '.join(node['target'])}: {node['html'][:160]}")
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"      {summary[:300]}")
    return "\n".join(lines)


REPORT = pytest.StashKey[Report]()


def axe_check(page: Page, report: Report, state: str) -> None:
    """Scan the page as it is now with axe-core at WCAG 2.2 AA; fail listing every violation.

    It waits for the page's ``load`` event first: after a form post the new document's text can
    be there (what the test waited for) while its stylesheet is still loading on a busy machine,
    and an unstyled page fails target-size checks that the styled one passes."""
    page.wait_for_load_state("load")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT)
    result = page.evaluate(
        """(tags) => axe.run(document, {
            runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})""",
        WCAG_TAGS,
    )
    violations = result["violations"]
    report.axe_scans += 1
    report.axe_violations += len(violations)
    report.pages.add(page_pattern(page.url))
    assert not violations, f"axe-core found violations on {page.url} ({state}):\n" + _describe(
        violations
    )


def page_pattern(url: str) -> str:
    """/projects/shop-1/flags/x/rules → /projects/{project}/flags/{flag}/rules."""
    path = urlsplit(url).path
    path = re.sub(r"^/projects/[^/]+", "/projects/{project}", path)
    path = re.sub(r"/flags/(?!_new)[^/]+", "/flags/{flag}", path)
    path = re.sub(r"/segments/(?!_new)[^/]+", "/segments/{segment}", path)
    path = re.sub(r"/environments/(?!_compare)[^/]+", "/environments/{environment}", path)
    path = re.sub(r"/change-requests/\d+", "/change-requests/{id}", path)
    return re.sub(r"/(tokens|members)/[^/]+", r"/\1/{id}", path)


class Scanner:
    """`scan(page, "state")`: one axe-core scan of the page as it is now, counted; `seconds`
    is the time spent scanning (so timings of user flows can leave it out)."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.seconds = 0.0

    def __call__(self, page: Page, state: str) -> None:
        started = time.perf_counter()
        try:
            axe_check(page, self.report, state)
        finally:
            self.seconds += time.perf_counter() - started


# ------------------------------------------------------------------------------ HTTP helpers
def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def http_login(
    client: httpx.Client, username: str, password: str, **headers: str
) -> httpx.Response:
    page = client.get("/login", headers=headers)
    token = csrf_of(page.text)
    return client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": password},
        headers=headers,
    )


@contextmanager
def logged_in(console: Console, username: str, password: str) -> Iterator[httpx.Client]:
    """A browser-like client (no JavaScript) logged in as `username` for the block."""
    with console.browser_client() as client:
        assert http_login(client, username, password).status_code == 303
        yield client


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/projects")


# ------------------------------------------------------------------------------ test data
FLAGS: dict[str, dict[str, Any]] = {
    "new-checkout": {
        "name": "New checkout",
        "description": "Single-page checkout replacing the three-step flow",
        "tags": ["checkout", "web"],
        "kind": "release",
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "owner_team": "payments",
        "expected_lifetime_days": 60,
    },
    "button-copy": {
        "name": "Checkout button copy",
        "description": "Which call to action converts better",
        "tags": ["checkout", "growth"],
        "kind": "experiment",
        "type": "string",
        "variants": {"control": "Buy now", "treatment": "Complete purchase"},
        "owner_team": "growth",
    },
    "search-page-size": {
        "name": "Search page size",
        "description": "Results per page; lower it to shed load",
        "tags": ["search"],
        "kind": "ops",
        "type": "number",
        "variants": {"normal": 50, "reduced": 20},
        "owner_team": "search",
    },
}
INTERNAL = {
    "name": "Internal users",
    "included": ["qa-bot"],
    "rules": [{"clauses": [{"attribute": "email", "op": "ends_with", "values": ["@example.com"]}]}],
}
PRODUCTION_CHECKOUT = {
    "enabled": True,
    "offVariant": "off",
    "rules": [
        {
            "id": "internal",
            "clauses": [{"op": "in_segment", "values": ["internal-users"]}],
            "variant": "on",
        }
    ],
    "default": {
        "split": {"weights": [{"variant": "on", "weight": 5}, {"variant": "off", "weight": 95}]}
    },
    "prerequisites": [],
}


def seed_project(console: Console) -> str:
    """A fresh project with three flags, a segment and new-checkout on in production."""
    key = unique("shop")
    with console.api() as api:
        _ok(api.post("/api/v1/projects", json={"key": key, "name": f"Shop {key[-8:]}"}))
        _ok(
            api.post(f"/api/v1/projects/{key}/segments", json={"key": "internal-users", **INTERNAL})
        )
        for flag, data in FLAGS.items():
            _ok(api.post(f"/api/v1/projects/{key}/flags", json={"key": flag, **data}))
        path = f"/api/v1/projects/{key}/environments/production/flags/new-checkout"
        _ok(api.put(path, json=PRODUCTION_CHECKOUT, headers={"If-Match": '"0"'}))
    return key


def add_user(console: Console, project: str, role: str) -> tuple[str, str]:
    username, password = unique(role), "pw-" + secrets.token_hex(8)
    with console.api() as api:
        _ok(api.post("/api/v1/users", json={"username": username, "password": password}))
        _ok(api.put(f"/api/v1/projects/{project}/members/{username}", json={"role": role}))
    return username, password


def config(console: Console, project: str, env: str, flag: str) -> dict[str, Any]:
    with console.api() as api:
        response = api.get(f"/api/v1/projects/{project}/environments/{env}/flags/{flag}")
        _ok(response)
        return dict(response.json())


def _ok(response: httpx.Response) -> None:
    assert response.status_code < 300, f"{response.request.method} {response.url}: {response.text}"
