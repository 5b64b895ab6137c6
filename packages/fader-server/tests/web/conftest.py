"""Fixtures of the web console tests: one `fader serve --demo` process (SQLite) and one Chromium
per test session (per xdist worker), a logged-in browser context per test.

Tests never change the seeded `demo` project (the screenshots and page sweeps show it); each
test that changes something makes its own project through the API (`project`).

What the tests measure (axe scans, pages scanned, the kill-switch time) is summed per worker,
written to ``web-console-report-<worker>.json`` in the session's temporary directory, and
printed at the end of the run when the run includes this directory's conftest (e.g.
``pytest packages/fader-server/tests/web``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from web_console import (
    ADMIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    REPORT,
    Console,
    Report,
    Scanner,
    fader_serve,
    log_in,
    seed_project,
)

TIMEOUT_MS = 15_000


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT] = Report()


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = session.config.stash[REPORT]
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["fader_web_report"] = report.as_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    output = getattr(node, "workeroutput", {})
    config = getattr(node, "config", None)
    if "fader_web_report" in output and config is not None:
        config.stash[REPORT].merge(output["fader_web_report"])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report = terminalreporter.config.stash[REPORT]
    if not report.axe_scans:
        return
    terminalreporter.section("web console")
    terminalreporter.write_line(
        f"axe-core WCAG 2.2 AA scans: {report.axe_scans}, violations: {report.axe_violations}, "
        f"distinct pages: {len(report.pages)}"
    )
    for page in sorted(report.pages):
        terminalreporter.write_line(f"  {page}")
    for ms in report.kill_switch_ms:
        terminalreporter.write_line(
            f"keyboard only: flags list opened -> kill switch confirmed in {ms:.0f} ms"
        )


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Report]:
    found = request.config.stash[REPORT]
    yield found
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    root = tmp_path_factory.getbasetemp()
    root = root.parent if worker != "main" else root
    (root / f"web-console-report-{worker}.json").write_text(found.as_json())


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    # Minute rows kept 60 days: the usage pages' tests write evaluations 40 days old, which the
    # retention job (first run 30 s after start) would otherwise prune under them.
    minutes = {"FADER_USAGE_MINUTES_DAYS": "60"}
    with fader_serve(tmp_path_factory.mktemp("console"), extra_env=minutes) as running:
        yield running


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: a temporary directory, or $FADER_SCREENSHOT_DIR when set (that is
    how docs/screenshots is refreshed, by hand: see docs/screenshots/README.md)."""
    chosen = os.environ.get("FADER_SCREENSHOT_DIR")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def admin_state(
    browser: Browser, console: Console, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The admin's logged-in browser state, made once by logging in through the form."""
    path = tmp_path_factory.mktemp("state") / "admin.json"
    context = browser.new_context(base_url=console.url)
    page = context.new_page()
    log_in(page, ADMIN, PASSWORD)
    context.storage_state(path=str(path))
    context.close()
    return path


@pytest.fixture
def context(browser: Browser, console: Console, admin_state: Path) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=console.url, storage_state=str(admin_state))
    made.set_default_timeout(TIMEOUT_MS)
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def plain_page(context: BrowserContext) -> Page:
    """A page that never gets the console's script: the pages as they work without JavaScript.
    (Scripts stay enabled in the browser so that axe-core can still scan these pages.)"""
    made = context.new_page()
    made.route("**/static/console.js*", lambda route: route.abort())
    return made


@pytest.fixture
def project(console: Console) -> str:
    return seed_project(console)


@pytest.fixture
def scan(report: Report) -> Scanner:
    return Scanner(report)
