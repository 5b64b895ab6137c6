"""Single sign-on against a real OpenID provider (the certified npm ``oidc-provider``, see
``sso_provider.py``), with a real ``fader serve`` configured for it and password login turned
off, driven through Debian's Chromium and, for the CLI, a real ``fader login --sso``.

Covered end to end: the login page (buttons, no password form, axe), signing in lands logged
in with the roles the groups map to, a group removed at the provider loses its role at the
next login while a role given by hand stays, logging out ends the Fader session and the
provider's, a forged state and a replayed answer or code are refused with an explanation,
a cancelled sign-in is explained, ``fader login --sso`` gets a working token that appears in
no URL or log, and ID tokens the provider really issued are refused once their algorithm,
signature, nonce or audience is wrong.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import OctKey
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sso_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    PROVIDER_ID,
    PROVIDER_NAME,
    Provider,
    oidc_provider,
    provider_login,
    sso_settings,
)
from web_console import ADMIN, PASSWORD, Console, Scanner, fader_serve, unique

from fader_server.runtime.oidc import OidcClient, OidcError
from fader_server.services.outbound_policy import OutboundPolicy
from fader_server.services.sso_flow import Flow, challenge_of
from fader_server.services.sso_providers import SsoConfig
from fader_server.web import csrf

TIMEOUT_MS = 30_000
CALLBACK = f"/login/sso/{PROVIDER_ID}/callback"


@dataclass(frozen=True)
class World:
    provider: Provider
    console: Console
    pay: str
    shop: str
    ops: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The provider, and a Fader server signing in with it only (``FADER_LOCAL_LOGIN=false``)
    whose groups map to three projects made for this module."""
    directory = tmp_path_factory.mktemp("sso")
    pay, shop, ops = unique("pay"), unique("shop"), unique("ops")
    groups = {"payments-dev": {pay: "editor", shop: "viewer"}, "shop-admins": {shop: "admin"}}
    with oidc_provider(directory) as provider:
        env = {**sso_settings(directory, provider, groups), "FADER_LOCAL_LOGIN": "false"}
        with fader_serve(tmp_path_factory.mktemp("fader"), extra_env=env) as console:
            with console.api() as api:
                for key in (pay, shop, ops):
                    created = api.post("/api/v1/projects", json={"key": key, "name": key})
                    assert created.status_code == 201, created.text
            yield World(provider, console, pay, shop, ops)


@pytest.fixture
def context(browser: Browser, world: World) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=world.console.url)
    made.set_default_timeout(TIMEOUT_MS)
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def _roles(world: World, username: str) -> dict[str, str]:
    found = {}
    with world.console.api() as api:
        for key in (world.pay, world.shop, world.ops):
            members = api.get(f"/api/v1/projects/{key}/members")
            assert members.status_code == 200, members.text
            for member in members.json():
                if member["username"] == username:
                    found[key] = member["role"]
    return found


def _at_provider(page: Page, username: str) -> None:
    """The provider's own pages: its login form when it has no session, then consent."""
    login = page.locator("input[name=login]")
    consent = page.get_by_role("button", name="Continue")
    expect(login.or_(consent)).to_be_visible()
    if login.is_visible():
        login.fill(username)
        page.locator("input[name=password]").fill("any password")
        page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()


def _sign_in(page: Page, world: World, username: str) -> None:
    page.goto("/login")
    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    page.wait_for_url(world.provider.issuer + "/**")
    _at_provider(page, username)
    page.wait_for_url("**/projects")
    expect(page.locator(".who")).to_contain_text(username)


def _session_token(context: BrowserContext) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == "fader_session")


def _log_out(page: Page, world: World) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(world.provider.issuer + "/session/end**")
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url("**/login")


# ---------------------------------------------------------------------------- the login page
def test_the_login_page_offers_single_sign_on_and_refuses_passwords(
    page: Page, world: World, scan: Scanner
) -> None:
    page.goto("/login")
    expect(page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
    expect(page.get_by_text("Password login is turned off")).to_be_visible()
    scan(page, "login page with single sign-on")

    with world.console.browser_client() as browser:
        browser.get("/login")  # no form, but its cookie: a script posting the form anyway
        token = csrf.login_token(browser.cookies["fader_login"])
        posted = browser.post(
            "/login", data={"csrf_token": token, "username": ADMIN, "password": PASSWORD}
        )
        assert posted.status_code == 403
        assert "Password login is turned off" in posted.text
        assert "fader_session" not in posted.headers.get("set-cookie", "")
    with httpx.Client(base_url=world.console.url) as anonymous:
        refused = anonymous.post(
            "/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
        )
        assert refused.status_code == 403
        assert "single sign-on" in refused.json()["detail"]
        listed = anonymous.get("/api/v1/auth/sso/providers")
        assert listed.json() == [{"id": PROVIDER_ID, "name": PROVIDER_NAME}]
    with world.console.api() as api:  # the operator's admin token still works (break-glass)
        assert api.get("/api/v1/projects").status_code == 200


# --------------------------------------------------------------------------------- signing in
def test_signing_in_lands_logged_in_with_the_roles_the_groups_map_to(
    page: Page, world: World
) -> None:
    alice = unique("alice")
    world.provider.set_groups(alice, "payments-dev")
    _sign_in(page, world, alice)
    assert _roles(world, alice) == {world.pay: "editor", world.shop: "viewer"}
    page.goto(f"/projects/{world.pay}")
    expect(page.locator(".role")).to_contain_text("editor")
    page.goto(f"/projects/{world.ops}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Not found")


def test_a_removed_group_loses_its_role_at_the_next_login_and_hand_given_roles_stay(
    page: Page, world: World
) -> None:
    bob = unique("bob")
    world.provider.set_groups(bob, "payments-dev", "shop-admins")
    _sign_in(page, world, bob)
    assert _roles(world, bob) == {world.pay: "editor", world.shop: "admin"}
    with world.console.api() as api:
        given = api.put(f"/api/v1/projects/{world.ops}/members/{bob}", json={"role": "viewer"})
        assert given.status_code == 200, given.text
    _log_out(page, world)

    world.provider.set_groups(bob, "shop-admins")  # the directory drops payments-dev
    _sign_in(page, world, bob)
    assert _roles(world, bob) == {world.shop: "admin", world.ops: "viewer"}
    page.goto(f"/projects/{world.pay}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Not found")


def test_logging_out_ends_the_fader_session_and_the_providers(
    page: Page, context: BrowserContext, world: World
) -> None:
    carol = unique("carol")
    world.provider.set_groups(carol, "payments-dev")
    _sign_in(page, world, carol)
    token = _session_token(context)
    with world.console.api(token) as api:
        assert api.get("/api/v1/projects").status_code == 200

    _log_out(page, world)
    expect(page.get_by_text("You have logged out")).to_be_visible()
    assert "fader_session" not in {c["name"] for c in context.cookies()}
    with world.console.api(token) as api:
        assert api.get("/api/v1/projects").status_code == 401
    # the provider's session ended too: signing in asks for the account again
    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    expect(page.locator("input[name=login]")).to_be_visible()


# ---------------------------------------------------------------------------------- refusals
def test_a_forged_state_a_replayed_answer_and_a_replayed_code_are_refused(
    page: Page, world: World, scan: Scanner
) -> None:
    dave = unique("dave")
    world.provider.set_groups(dave, "payments-dev")
    answers: list[str] = []
    page.on("request", lambda r: answers.append(r.url) if CALLBACK in r.url else None)
    _sign_in(page, world, dave)
    (answer,) = answers

    page.goto(answer)  # the same answer again: its attempt is over
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "This sign-in is not the one in progress"
    )
    scan(page, "single sign-on refused")
    page.goto(f"{CALLBACK}?code=anything&state=forged")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "This sign-in is not the one in progress"
    )

    # The code again, inside a fresh attempt of another browser: its state is right, but the
    # provider redeems a code once, and only with the verifier of the attempt that asked.
    code = parse_qs(urlsplit(answer).query)["code"][0]
    with world.console.browser_client() as other:
        assert other.get(f"/login/sso/{PROVIDER_ID}").status_code == 303
        forged = other.get(CALLBACK, params={"code": code, "state": "forged"})
        assert forged.status_code == 400  # an attempt in progress, but not this state
        assert "This sign-in is not the one in progress" in forged.text
        begun = other.get(f"/login/sso/{PROVIDER_ID}")
        assert begun.status_code == 303
        state = parse_qs(urlsplit(begun.headers["location"]).query)["state"][0]
        replayed = other.get(CALLBACK, params={"code": code, "state": state})
        assert replayed.status_code == 400
        assert "Sign-in was refused" in replayed.text
        assert "invalid_grant" in replayed.text
        assert "fader_session" not in replayed.headers.get("set-cookie", "")


def test_cancelling_at_the_provider_is_explained(page: Page, world: World, scan: Scanner) -> None:
    erin = unique("erin")
    world.provider.set_groups(erin)
    page.goto("/login")
    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    page.get_by_role("link", name="[ Cancel ]").click()
    page.wait_for_url(f"**{CALLBACK}**")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in was not completed")
    expect(page.get_by_text("You cancelled")).to_be_visible()
    scan(page, "single sign-on cancelled")
    expect(page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME} again")).to_be_visible()


# --------------------------------------------------------------------------------------- CLI
def _fader(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from fader_server.cli.main import main; main()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_fader_login_sso_keeps_a_working_token_that_no_url_or_log_shows(
    page: Page, world: World, tmp_path: Path
) -> None:
    frank = unique("frank")
    world.provider.set_groups(frank, "payments-dev")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("FADER_TOKEN", None)
    login = _fader(
        "login", "--url", world.console.url, "--sso", PROVIDER_ID, "--no-browser", env=env
    )
    assert login.stderr is not None
    printed = []
    deadline = time.monotonic() + 60
    while not any(line.strip().startswith(world.provider.issuer) for line in printed):
        assert time.monotonic() < deadline, printed
        printed.append(login.stderr.readline())
    url = next(line.strip() for line in printed if line.strip().startswith(world.provider.issuer))

    visited: list[str] = []
    page.on("request", lambda r: visited.append(r.url))
    page.goto(url)
    _at_provider(page, frank)
    page.wait_for_url("http://127.0.0.1:*/callback?**")
    expect(page.get_by_role("heading", level=1)).to_have_text("Signed in")
    out, err = login.communicate(timeout=60)
    assert login.returncode == 0, err
    assert "Logged in to" in err

    kept = json.loads((tmp_path / "fader" / "logins.json").read_text())
    token = kept["servers"][world.console.url]["token"]
    with world.console.api(token) as api:
        projects = {p["key"] for p in api.get("/api/v1/projects").json()["items"]}
        assert world.pay in projects
        assert world.ops not in projects
    assert not any(token in seen for seen in visited)
    assert token not in "".join(printed) + out + err
    assert token not in world.console.log_path.read_text()
    assert CLIENT_SECRET not in world.console.log_path.read_text()

    logout = _fader("logout", "--url", world.console.url, env=env)
    logout.communicate(timeout=60)
    assert logout.returncode == 0
    with world.console.api(token) as api:
        assert api.get("/api/v1/projects").status_code == 401


def test_the_cli_sign_in_takes_only_a_loopback_redirect_and_its_own_state(world: World) -> None:
    with httpx.Client(base_url=world.console.url) as anonymous:
        for redirect in ("https://evil.example/callback", "http://localhost:50000/callback"):
            started = anonymous.post(
                f"/api/v1/auth/sso/{PROVIDER_ID}/start",
                json={"redirect_uri": redirect, "code_challenge": "c" * 43},
            )
            assert started.status_code == 422, started.text
        unknown = anonymous.post(
            "/api/v1/auth/sso/nobody/start",
            json={"redirect_uri": "http://127.0.0.1:50000/callback", "code_challenge": "c" * 43},
        )
        assert unknown.status_code == 404
        started = anonymous.post(
            f"/api/v1/auth/sso/{PROVIDER_ID}/start",
            json={"redirect_uri": "http://127.0.0.1:50000/callback", "code_challenge": "c" * 43},
        )
        assert started.status_code == 200, started.text
        forged = anonymous.post(
            f"/api/v1/auth/sso/{PROVIDER_ID}/token",
            json={
                "flow": started.json()["flow"],
                "state": "forged",
                "code": "anything",
                "code_verifier": "c" * 43,
            },
        )
        assert forged.status_code == 401
        assert "does not belong to the sign-in in progress" in forged.json()["detail"]


# ----------------------------------------------------------------------------- the ID token
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _real_id_token(world: World, username: str) -> tuple[str, str]:
    """An ID token the provider issued to Fader's client for `username`, and its nonce: the
    sign-in begun through Fader's API, the provider's pages walked by an HTTP client, the code
    redeemed at the provider's token endpoint as Fader would."""
    verifier = "v" * 64
    redirect = "http://127.0.0.1:50000/callback"
    with httpx.Client(base_url=world.console.url) as anonymous:
        started = anonymous.post(
            f"/api/v1/auth/sso/{PROVIDER_ID}/start",
            json={"redirect_uri": redirect, "code_challenge": challenge_of(verifier)},
        ).json()
    flow = Flow.decode(started["flow"])
    assert flow is not None
    with httpx.Client(timeout=30) as browser:
        back = provider_login(
            browser, started["authorization_url"], username, world.provider.issuer
        )
        code = parse_qs(urlsplit(back).query)["code"][0]
        redeemed = browser.post(
            world.provider.issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "code_verifier": verifier,
            },
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
    assert redeemed.status_code == 200, redeemed.text
    return redeemed.json()["id_token"], flow.nonce


def test_id_tokens_are_refused_once_algorithm_signature_nonce_or_audience_is_wrong(
    world: World,
) -> None:
    grace = unique("grace")
    world.provider.set_groups(grace, "payments-dev")
    id_token, nonce = _real_id_token(world, grace)
    issuer = world.provider.issuer
    provider_config = {
        "id": PROVIDER_ID,
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "groups": {"payments-dev": {world.pay: "viewer"}},
    }
    config = SsoConfig.parse({"providers": [provider_config]}, {PROVIDER_ID: CLIENT_SECRET})
    provider = config.providers[PROVIDER_ID]
    client = OidcClient(config, OutboundPolicy())
    try:
        claims = client.validate(provider, id_token, nonce)
        assert claims["sub"] == grace
        assert claims["groups"] == ["payments-dev"]

        with pytest.raises(OidcError, match="refused"):
            client.validate(provider, id_token, "another attempt's nonce")
        header, payload, signature = id_token.split(".")
        claims_json = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        altered = _b64(json.dumps({**claims_json, "sub": "someone-else"}).encode())
        with pytest.raises(OidcError, match="refused"):
            client.validate(provider, f"{header}.{altered}.{signature}", nonce)
        unsigned = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        with pytest.raises(OidcError, match="'none'"):
            client.validate(provider, f"{unsigned}.{payload}.", nonce)
        # the classic confusion: HMAC "signed" with the provider's public key as the secret
        public = httpx.get(issuer + "/jwks").content
        forged = jws.serialize_compact(
            {"alg": "HS256", "kid": json.loads(public)["keys"][0]["kid"]},
            json.dumps(claims_json).encode(),
            OctKey.import_key(public),
            algorithms=["HS256"],
        )
        with pytest.raises(OidcError, match="'HS256'"):
            client.validate(provider, forged, nonce)
        other_client = SsoConfig.parse(
            {"providers": [{**provider_config, "client_id": "another-client"}]},
            {PROVIDER_ID: CLIENT_SECRET},
        ).providers[PROVIDER_ID]
        with pytest.raises(OidcError, match="refused"):
            client.validate(other_client, id_token, nonce)
    finally:
        client.close()


class _Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_signing_keys_are_cached_and_fetched_again_when_stale_or_for_an_unknown_key(
    world: World,
) -> None:
    henry = unique("henry")
    world.provider.set_groups(henry)
    id_token, nonce = _real_id_token(world, henry)
    config = SsoConfig.parse(
        {
            "providers": [
                {"id": PROVIDER_ID, "issuer": world.provider.issuer, "client_id": CLIENT_ID}
            ]
        },
        {PROVIDER_ID: CLIENT_SECRET},
    )
    provider = config.providers[PROVIDER_ID]
    clock = _Monotonic()
    client = OidcClient(config, OutboundPolicy(), monotonic=clock)
    try:
        client.validate(provider, id_token, nonce)
        first = client._keys[PROVIDER_ID]
        clock.now += 10
        client.validate(provider, id_token, nonce)
        assert client._keys[PROVIDER_ID] is first  # cached

        header, payload, signature = id_token.split(".")
        fields = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        rotated = _b64(json.dumps({**fields, "kid": "rotated-away"}).encode())
        with pytest.raises(OidcError, match="does not publish"):
            client.validate(provider, f"{rotated}.{payload}.{signature}", nonce)
        assert client._keys[PROVIDER_ID] is first  # too soon after the last fetch to refetch
        clock.now += 60
        with pytest.raises(OidcError, match="does not publish"):
            client.validate(provider, f"{rotated}.{payload}.{signature}", nonce)
        refetched = client._keys[PROVIDER_ID]
        assert refetched is not first  # an unknown key id: the keys were fetched again
        clock.now += 3600
        client.validate(provider, id_token, nonce)
        assert client._keys[PROVIDER_ID] is not refetched  # stale after an hour
    finally:
        client.close()
