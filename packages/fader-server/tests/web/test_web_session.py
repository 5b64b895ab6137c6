"""Sessions over plain HTTP against the real server: the cookie's attributes, the transport
rule, logout revoking the token, the login throttle and CSRF on the login form itself."""

from __future__ import annotations

import httpx
from web_console import ADMIN, PASSWORD, Console, csrf_of, http_login, unique


def _session_cookie(response: httpx.Response) -> str:
    found = [c for c in response.headers.get_list("set-cookie") if c.startswith("fader_session=")]
    assert found, response.headers
    return found[0]


def test_login_sets_an_httponly_samesite_cookie_that_expires_with_the_token(
    console: Console,
) -> None:
    with console.browser_client() as client:
        response = http_login(client, ADMIN, PASSWORD)
        assert response.status_code == 303
        assert response.headers["location"] == "/projects"
        cookie = _session_cookie(response).lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "expires=" in cookie
        assert "path=/" in cookie
        assert "secure" not in cookie  # plain HTTP to 127.0.0.1: the development exception
        assert client.get("/projects").status_code == 200


def test_login_through_an_https_proxy_marks_the_cookie_secure(console: Console) -> None:
    proxied = {"X-Forwarded-Proto": "https"}  # uvicorn trusts it from 127.0.0.1
    with console.browser_client() as client:
        form = client.get("/login", headers=proxied)
        login_cookie = form.headers["set-cookie"]
        assert "secure" in login_cookie.lower()
        # httpx keeps Secure cookies for https URLs only; hand it back as the browser would
        client.cookies.set("fader_login", login_cookie.split(";")[0].split("=", 1)[1])
        response = client.post(
            "/login",
            data={"csrf_token": csrf_of(form.text), "username": ADMIN, "password": PASSWORD},
            headers=proxied,
        )
        assert response.status_code == 303
        assert "secure" in _session_cookie(response).lower()


def test_plain_http_to_another_host_refuses_to_log_in(console: Console) -> None:
    with console.browser_client() as client:
        form = client.get("/login", headers={"Host": "fader.example.com"})
        assert "Not over this connection" in form.text
        response = client.post(
            "/login",
            data={"csrf_token": csrf_of(form.text), "username": ADMIN, "password": PASSWORD},
            headers={"Host": "fader.example.com"},
        )
        assert response.status_code == 403
        assert "unencrypted" in response.text
        assert not [c for c in response.headers.get_list("set-cookie") if "fader_session=" in c]


def test_logout_revokes_the_session_token(console: Console) -> None:
    with console.browser_client() as client:
        http_login(client, ADMIN, PASSWORD)
        token = client.cookies["fader_session"]
        with console.api(token) as api:
            assert api.get("/api/v1/projects").status_code == 200
        page = client.get("/projects")
        response = client.post("/logout", data={"csrf_token": csrf_of(page.text)})
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        with console.api(token) as api:
            assert api.get("/api/v1/projects").status_code == 401
    with console.browser_client() as stale:
        stale.cookies.set("fader_session", token)
        again = stale.get("/projects")
        assert again.status_code == 303
        assert again.headers["location"] == "/login?next=/projects"


def test_wrong_passwords_are_explained_then_throttled(console: Console) -> None:
    username = unique("guesser")
    with console.api() as api:
        api.post("/api/v1/users", json={"username": username, "password": "x" * 16})
    with console.browser_client() as client:
        for _ in range(5):
            response = http_login(client, username, "wrong-password")
            assert response.status_code == 422
            assert "Unknown user or wrong password" in response.text
            assert 'id="password" name="password" value=""' in response.text
            assert 'aria-invalid="true"' in response.text
        throttled = http_login(client, username, "x" * 16)
        assert throttled.status_code == 429
        assert int(throttled.headers["retry-after"]) > 0
        assert "Too many failed logins for this username" in throttled.text


def test_the_login_form_needs_its_own_token(console: Console) -> None:
    with console.browser_client() as client:
        client.get("/login")
        response = client.post(
            "/login", data={"csrf_token": "forged", "username": ADMIN, "password": PASSWORD}
        )
        assert response.status_code == 403
        assert "This form has expired" in response.text
        assert not client.cookies.get("fader_session")


def test_after_login_only_paths_of_this_console_are_followed(console: Console) -> None:
    for target, expected in (
        ("/projects/demo/flags", "/projects/demo/flags"),
        ("//evil.example/x", "/projects"),
        ("https://evil.example/", "/projects"),
        ("/\\evil.example", "/projects"),
    ):
        with console.browser_client() as client:
            page = client.get("/login", params={"next": target})
            response = client.post(
                "/login",
                data={
                    "csrf_token": csrf_of(page.text),
                    "username": ADMIN,
                    "password": PASSWORD,
                    "next": target,
                },
            )
            assert response.headers["location"] == expected, target
