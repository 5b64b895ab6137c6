"""Interoperability: OpenFeature's web SDK with its stock OFREP provider
(``@openfeature/web-sdk``, ``@openfeature/ofrep-web-provider``), in Debian's Chromium, evaluates
flags of a real ``fader serve`` with a client key. The page is ``examples/browser``, built here
from its lock file with ``npm ci`` and ``npm run build`` (esbuild) when its bundle is missing or
older than its sources, exactly as its README tells a user to.

The page is served from another origin (``localhost`` and its own port; Fader answers on
``127.0.0.1``), so every OFREP request is a real cross-origin one: a preflight for the key
header, the bulk response's ``ETag`` readable only when exposed, and an ``EventSource`` that
needs ``Access-Control-Allow-Origin``. Fader opens ``/ofrep`` to every origin (client keys are
public and travel in headers, never cookies), so there is no refused origin to test; what must
stay closed to other origins is the admin API, and that is checked from the page too.

The provider prefers the change stream Fader advertises and polls when told to (or when the
stream fails); one test holds each path to seeing a change made through the admin API.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Request, Response, expect
from web_console import Console, unique

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "browser"
BUNDLE = EXAMPLE / "dist" / "app.js"
SOURCES = [EXAMPLE / "package.json", EXAMPLE / "package-lock.json", *EXAMPLE.glob("src/*")]
ENVIRONMENT = "web"
NPM_SECONDS = 300  # generous: npm ci downloads esbuild's binary package on a cold cache
SEEN_MS = 30_000  # a change must reach the page within this (generous on a loaded machine)

# key → (definition, configuration in ENVIRONMENT)
FLAGS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "banner": (
        {"type": "boolean", "variants": {"on": True, "off": False}, "client_side": True},
        {"enabled": True, "offVariant": "off", "default": {"variant": "on"}},
    ),
    "headline": (
        {
            "type": "string",
            "variants": {"plain": "Welcome", "bold": "Welcome back!"},
            "client_side": True,
        },
        {"enabled": True, "offVariant": "plain", "default": {"variant": "plain"}},
    ),
    "db-pool-size": (  # server-only: a client key must never see it
        {"type": "number", "variants": {"small": 5, "large": 50}},
        {"enabled": True, "offVariant": "small", "default": {"variant": "large"}},
    ),
}
PAGE_FLAGS = "banner,headline:string,db-pool-size:number"


# ------------------------------------------------------------------------------ the example
def _stale(target: Path, inputs: list[Path]) -> bool:
    return not target.exists() or any(p.stat().st_mtime > target.stat().st_mtime for p in inputs)


def _npm(*args: str) -> None:
    done = subprocess.run(
        ["npm", *args],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=NPM_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The example's bundle, installed and built in place when missing or stale. xdist workers
    share the directory, so one builds while the others wait on a file lock."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to build examples/browser; install Node.js 20+")
    lock_name = hashlib.sha256(str(EXAMPLE).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"fader-browser-example-{lock_name}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stale(EXAMPLE / "node_modules" / ".package-lock.json", [EXAMPLE / "package-lock.json"]):
            _npm("ci", "--no-audit", "--no-fund")
        if _stale(BUNDLE, SOURCES):
            _npm("run", "build")
    return BUNDLE


class _Quiet(SimpleHTTPRequestHandler):
    """Serves the example without a log line per request (pytest would show them all)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin(bundle: Path) -> Iterator[str]:
    """The example directory over HTTP as `http://localhost:<port>`, an origin other than the
    server's `http://127.0.0.1:<port>`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(EXAMPLE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ------------------------------------------------------------------------------ Fader's side
@dataclass(frozen=True)
class WebEnv:
    console: Console
    project: str
    client_key: str
    client_key_id: str

    def flag_path(self, flag: str) -> str:
        return f"/api/v1/projects/{self.project}/environments/{ENVIRONMENT}/flags/{flag}"


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code < 300, f"{response.request.method} {response.url}: {response.text}"
    return response


def _put_config(api: httpx.Client, path: str, config: dict[str, Any]) -> None:
    current = _ok(api.get(path))
    _ok(api.put(path, json=config, headers={"If-Match": current.headers["etag"]}))


@pytest.fixture
def web_env(console: Console) -> WebEnv:
    """A project of its own with an environment `web`, two client-side flags, a server-only
    one, and a client key for `web` (each test its own, so tests never see each other's
    changes)."""
    project = unique("browser")
    with console.api() as api:
        _ok(api.post("/api/v1/projects", json={"key": project, "name": project}))
        _ok(
            api.post(
                f"/api/v1/projects/{project}/environments",
                json={"key": ENVIRONMENT, "name": "Web"},
            )
        )
        for key, (definition, config) in FLAGS.items():
            body = {"key": key, "name": key, "owner_team": "web", **definition}
            _ok(api.post(f"/api/v1/projects/{project}/flags", json=body))
            path = f"/api/v1/projects/{project}/environments/{ENVIRONMENT}/flags/{key}"
            _put_config(api, path, config)
        token = _ok(
            api.post(
                "/api/v1/tokens",
                json={
                    "kind": "client",
                    "name": "browser example",
                    "project": project,
                    "environment": ENVIRONMENT,
                },
            )
        )
    client_key = str(token.json()["token"])
    assert client_key.startswith("fdr_cli_")
    return WebEnv(console, project, client_key, str(token.json()["id"]))


# ------------------------------------------------------------------------------ the browser
@dataclass
class Traffic:
    """What the page did on the network and said on its console."""

    ofrep: list[Response] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def bulk(self) -> list[Response]:
        return [r for r in self.ofrep if r.url.split("?")[0].endswith("/ofrep/v1/evaluate/flags")]

    def streams(self) -> list[Response]:
        return [r for r in self.ofrep if "/ofrep/v1/event-stream" in r.url]


def _open(browser: Browser, url: str) -> tuple[Page, Traffic]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    traffic = Traffic()

    def on_response(response: Response) -> None:
        if "/ofrep/" in response.url:
            traffic.ofrep.append(response)

    def on_failed(request: Request) -> None:
        traffic.failed.append(f"{request.method} {request.url}: {request.failure}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            traffic.errors.append(message.text)

    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.on("console", on_console)
    page.goto(url)
    return page, traffic


def _url(origin: str, env: WebEnv, **settings: str) -> str:
    query = {"fader": env.console.url, "key": env.client_key, "user": "user-1"}
    query |= {"flags": PAGE_FLAGS, **settings}
    return f"{origin}/index.html?{urlencode(query)}"


def _row(page: Page, flag: str, column: str) -> Locator:
    return page.locator(f'tr[data-flag="{flag}"] td.{column}')


def _wait_for(page: Page, condition: Callable[[], bool], what: str) -> None:
    """Wait for what the page's network events show (they arrive while Playwright waits)."""
    deadline = time.monotonic() + SEEN_MS / 1000
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {SEEN_MS / 1000:.0f} s"
        page.wait_for_timeout(100)


def _revoke(env: WebEnv) -> None:
    with env.console.api() as api:
        revoked = api.delete(f"/api/v1/tokens/{env.client_key_id}")
        assert revoked.status_code == 204, revoked.text


def _assert_cross_origin_clean(traffic: Traffic, page_origin: str) -> None:
    """No request failed and nothing was blocked: every OFREP response carried the CORS
    headers the browser needed, and the page's console has no CORS error."""
    assert not traffic.failed, f"requests failed: {traffic.failed}"
    assert not [e for e in traffic.errors if "CORS" in e or "Access-Control" in e], traffic.errors
    assert traffic.ofrep, "the page made no OFREP request"
    for response in traffic.ofrep:
        assert response.request.header_value("origin") == page_origin, response.url
        assert response.header_value("access-control-allow-origin") == "*", response.url


def _assert_initial_values(page: Page) -> None:
    expect(page.locator("#status")).to_have_attribute("data-state", "ready")
    expect(_row(page, "banner", "value")).to_have_text("true")
    expect(_row(page, "banner", "reason")).to_have_text("STATIC")
    expect(_row(page, "headline", "value")).to_have_text('"Welcome"')
    expect(_row(page, "headline", "variant")).to_have_text("plain")
    # the server-only flag does not exist for a client key: the code default, FLAG_NOT_FOUND
    expect(_row(page, "db-pool-size", "value")).to_have_text("0")
    expect(_row(page, "db-pool-size", "error")).to_have_text("FLAG_NOT_FOUND")


def test_the_page_evaluates_client_side_flags_and_hears_of_changes_on_the_stream(
    browser: Browser, web_env: WebEnv, page_origin: str
) -> None:
    """The provider re-fetches on the stream's notifications; when the key is revoked, Fader
    ends the stream and refuses it, and the provider falls back to polling, which fails."""
    page, traffic = _open(browser, _url(page_origin, web_env, poll="1000"))
    try:
        _assert_initial_values(page)
        bodies = [r.json() for r in traffic.bulk() if r.status == 200]
        assert bodies, "no bulk evaluation reached the page"
        assert {f["key"] for f in bodies[0]["flags"]} == {"banner", "headline"}

        with web_env.console.api() as api:
            _ok(api.post(web_env.flag_path("banner") + "/toggle", json={"enabled": False}))
        expect(_row(page, "banner", "value")).to_have_text("false", timeout=SEEN_MS)
        expect(_row(page, "banner", "reason")).to_have_text("DISABLED")
        with web_env.console.api() as api:
            _put_config(
                api,
                web_env.flag_path("headline"),
                {"enabled": True, "offVariant": "plain", "default": {"variant": "bold"}},
            )
        expect(_row(page, "headline", "value")).to_have_text('"Welcome back!"', timeout=SEEN_MS)
        expect(page.locator("#change-log")).not_to_have_attribute("data-count", "0")
        expect(_row(page, "db-pool-size", "error")).to_have_text("FLAG_NOT_FOUND")

        streams = traffic.streams()
        assert streams, "the provider never opened the event stream Fader advertised"
        assert all(s.status == 200 for s in streams), [(s.url, s.status) for s in streams]
        assert "text/event-stream" in (streams[0].header_value("content-type") or "")
        # the re-fetches came from the stream's notifications, which carry the new version
        assert any("flagConfigEtag=" in r.url for r in traffic.bulk()), traffic.bulk()
        _assert_cross_origin_clean(traffic, page_origin)

        _revoke(web_env)
        _wait_for(page, lambda: any(r.status == 401 for r in traffic.streams()), "stream refused")
        _wait_for(page, lambda: any(r.status == 401 for r in traffic.bulk()), "polls refused")
        expect(page.locator("#status")).to_have_attribute("data-state", "stale")
        expect(_row(page, "headline", "value")).to_have_text('"Welcome back!"')
    finally:
        page.context.close()


def test_a_polling_page_revalidates_with_the_etag_sees_a_change_and_a_revoked_key(
    browser: Browser, web_env: WebEnv, page_origin: str
) -> None:
    """Polling sends `If-None-Match` with the ETag of the last bulk response, which a page of
    another origin can read only when Fader exposes it: unchanged flags then cost a 304. Once
    the key is revoked, polls get 401: the page says so and keeps the last values."""
    page, traffic = _open(browser, _url(page_origin, web_env, changes="polling", poll="300"))
    try:
        _assert_initial_values(page)
        # a 304 shows the ETag was read and sent back
        _wait_for(page, lambda: any(r.status == 304 for r in traffic.bulk()), "a 304")
        not_modified = [r for r in traffic.bulk() if r.status == 304]
        assert (not_modified[0].request.header_value("if-none-match") or "").startswith('"')

        with web_env.console.api() as api:
            _ok(api.post(web_env.flag_path("banner") + "/toggle", json={"enabled": False}))
        expect(_row(page, "banner", "value")).to_have_text("false", timeout=SEEN_MS)
        assert not traffic.streams(), "polling was asked for, yet the page opened a stream"
        _assert_cross_origin_clean(traffic, page_origin)

        _revoke(web_env)
        _wait_for(page, lambda: any(r.status == 401 for r in traffic.bulk()), "polls refused")
        expect(page.locator("#status")).to_have_attribute("data-state", "stale")
        assert all(r.header_value("access-control-allow-origin") == "*" for r in traffic.bulk())
        expect(_row(page, "banner", "value")).to_have_text("false")
    finally:
        page.context.close()


def test_ofrep_is_open_to_the_page_origin_and_the_admin_api_is_not(
    browser: Browser, web_env: WebEnv, page_origin: str
) -> None:
    bulk = f"{web_env.console.url}/ofrep/v1/evaluate/flags"
    origin = {"Origin": page_origin}
    with httpx.Client(timeout=30) as http:
        preflight = http.options(
            bulk,
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,if-none-match",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert {"authorization", "content-type", "if-none-match"} <= {h.lower() for h in allowed}
        answer = http.post(
            bulk,
            json={"context": {"targetingKey": "user-1"}},
            headers={**origin, "Authorization": f"Bearer {web_env.client_key}"},
        )
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == "*"
        assert "etag" in answer.headers["access-control-expose-headers"].lower()
        admin_preflight = http.options(
            f"{web_env.console.url}/api/v1/projects",
            headers={**origin, "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in admin_preflight.headers

    # and in the browser: the page's own fetch to the admin API is blocked, OFREP's is not
    page, _ = _open(browser, f"{page_origin}/index.html")
    try:
        expect(page.locator("#status")).to_have_attribute("data-state", "idle")
        outcome = page.evaluate(
            """async ([base, key, admin]) => {
                const attempt = async (path, init) => {
                    try { return String((await fetch(base + path, init)).status); }
                    catch (error) { return "blocked: " + error.name; }
                };
                return {
                    ofrep: await attempt("/ofrep/v1/evaluate/flags/banner", {
                        method: "POST",
                        headers: {"Authorization": "Bearer " + key,
                                  "Content-Type": "application/json"},
                        body: JSON.stringify({context: {targetingKey: "user-1"}}),
                    }),
                    admin: await attempt("/api/v1/projects", {
                        headers: {"Authorization": "Bearer " + admin},
                    }),
                };
            }""",
            [web_env.console.url, web_env.client_key, web_env.console.admin_token],
        )
        assert outcome == {"ofrep": "200", "admin": "blocked: TypeError"}
    finally:
        page.context.close()
