"""The API documentation (`/docs`: Swagger UI, `/redoc`: ReDoc) works with no other host
reachable: every asset comes from Fader itself, and the pages' Content Security Policy forbids
everything else.

The browser reaches the server under a non-local name (`fader-docs.test`, mapped to 127.0.0.1 by
Chromium's resolver), as a deployment is reached: what these libraries fetch can depend on the
address (Swagger UI's validator badge, for one, is skipped for `localhost`). Every request for
any other host is recorded and aborted, and the pages' policy violations are recorded.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, expect
from web_console import CHROMIUM, CHROMIUM_ARGS, Console

from fader_server.web.rendering import SECURITY_HEADERS

HOST = "fader-docs.test"
DOCS_PAGES = ("/docs", "/redoc")
TIMEOUT_MS = 30_000
REFERENCE = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""ReDoc's footer always asks for this image (no option turns it off); the policy's img-src
refuses it before any request is made, and ReDoc then hides the image. The one violation
expected."""
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def offline_browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"],
    )
    yield launched
    launched.close()


class Offline:
    """A browser context that reaches only the server; what else pages ask for is recorded."""

    def __init__(self, browser: Browser, console: Console) -> None:
        port = urlsplit(console.url).port
        self.origin = f"http://{HOST}:{port}"
        self.elsewhere: list[str] = []
        self.errors: list[str] = []  # uncaught exceptions in the pages' scripts
        self.context: BrowserContext = browser.new_context(base_url=self.origin)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.route("**/*", self._route)
        self.context.add_init_script(
            "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation', (e) =>"
            " window.__violations.push(e.effectiveDirective + ' ' + e.blockedURI));"
        )

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(self.origin + "/") or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.elsewhere.append(url)
            route.abort()

    def open(self, path: str) -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, path
        return page


@pytest.fixture
def offline(offline_browser: Browser, console: Console) -> Iterator[Offline]:
    made = Offline(offline_browser, console)
    yield made
    made.context.close()


def operations(console: Console) -> list[dict[str, str]]:
    spec = httpx.get(console.url + "/openapi.json", timeout=30).json()
    return [
        {"method": method, "path": path, "summary": operation.get("summary", "")}
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def violations(page: Page) -> list[str]:
    found: list[str] = page.evaluate("window.__violations")
    return found


# ------------------------------------------------------------------------------ the pages
@pytest.mark.parametrize("path", DOCS_PAGES)
def test_docs_pages_reference_only_their_own_origin(console: Console, path: str) -> None:
    response = httpx.get(console.url + path, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html
    assert "https://" not in html
    references = [a or b for a, b in REFERENCE.findall(html)]
    assert references, html
    for reference in references:
        assert reference.startswith("/"), reference
        assert not reference.startswith("//"), reference
        if reference != "/openapi.json":
            assert reference.startswith("/static/vendor/"), reference
        asset = httpx.get(console.url + reference, timeout=30)
        assert asset.status_code == 200, reference
        assert asset.content, reference


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_docs_pages_policy_allows_only_this_origin_and_their_own_start_up_script(
    console: Console, path: str
) -> None:
    response = httpx.get(console.url + path, timeout=30)
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["content-security-policy"].split(";")
    }
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    inline = {
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(response.text)
    }
    assert set(policy["script-src"]) == {"'self'", *inline}
    if path == "/docs":  # only ReDoc needs inline styles (its styled-components)
        assert policy["style-src"] == ["'self'"]
    for sources in policy.values():  # no other host, by name or by scheme
        for source in sources:
            assert source.startswith("'") or source in ("data:", "blob:"), source
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_console_keeps_its_stricter_policy(console: Console) -> None:
    login = httpx.get(console.url + "/login", timeout=30)
    assert login.status_code == 200
    console_policy = SECURITY_HEADERS["Content-Security-Policy"]
    assert login.headers["content-security-policy"] == console_policy
    assert "unsafe-inline" not in console_policy


# ------------------------------------------------------------------------------ in Chromium
def test_swagger_ui_lists_every_operation_with_no_other_host_reachable(
    offline: Offline, console: Console
) -> None:
    expected = {(op["method"].upper(), op["path"]) for op in operations(console)}
    page = offline.open("/docs")
    expect(page.locator(".information-container .title")).to_contain_text(
        "Fader", timeout=TIMEOUT_MS
    )
    expect(page.locator(".opblock").first).to_be_visible(timeout=TIMEOUT_MS)
    listed = page.evaluate(
        """() => Array.from(document.querySelectorAll('.opblock'), (block) => [
            block.querySelector('.opblock-summary-method').textContent,
            block.querySelector('[data-path]').dataset.path])"""
    )
    assert {(method, path) for method, path in listed} == expected  # tags may list one twice
    page.locator(".opblock-summary-control").first.click()  # an operation's details render too
    expect(page.locator(".opblock-body").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator(".opblock-body .responses-table").first).to_be_visible(timeout=TIMEOUT_MS)
    assert offline.elsewhere == []
    assert violations(page) == []
    assert offline.errors == []


def test_redoc_renders_the_operations_with_no_other_host_reachable(
    offline: Offline, console: Console
) -> None:
    expected = [op for op in operations(console) if op["summary"]]
    page = offline.open("/redoc")
    expect(page.locator("h1").first).to_contain_text("Fader", timeout=TIMEOUT_MS)
    for operation in (expected[0], expected[-1]):
        heading = page.locator("h2", has_text=operation["summary"]).first
        expect(heading).to_be_attached(timeout=TIMEOUT_MS)
    assert offline.elsewhere == []
    assert [found for found in violations(page) if found != f"img-src {REDOCLY_LOGO}"] == []
    assert offline.errors == []
