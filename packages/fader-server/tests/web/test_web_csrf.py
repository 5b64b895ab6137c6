"""CSRF: every console POST needs the session's form token; without it nothing changes."""

from __future__ import annotations

import pytest
from web_console import ADMIN, PASSWORD, Console, config, csrf_of, http_login

from fader_server.web import csrf


def test_form_tokens_are_tied_to_one_session() -> None:
    first, second = csrf.session_token("fdr_user_a"), csrf.session_token("fdr_user_b")
    assert first != second
    assert first == csrf.session_token("fdr_user_a")
    csrf.verify(first, [first])
    for sent in ([], [second], [first, first], [""]):
        with pytest.raises(csrf.CsrfError):
            csrf.verify(first, sent)


def test_a_post_without_the_sessions_token_changes_nothing(console: Console, project: str) -> None:
    path = f"/projects/{project}/flags/new-checkout/toggle"
    form = {"env": "staging", "enabled": "on", "back": f"/projects/{project}/flags"}
    with console.browser_client() as other:
        http_login(other, ADMIN, PASSWORD)
        someone_elses = csrf_of(other.get("/projects").text)
    with console.browser_client() as client:
        http_login(client, ADMIN, PASSWORD)
        for token in (None, "forged", someone_elses):
            data = form if token is None else {**form, "csrf_token": token}
            refused = client.post(path, data=data)
            assert refused.status_code == 403
            assert "This form has expired" in refused.text
            assert "Nothing was changed" in refused.text
            assert config(console, project, "staging", "new-checkout")["enabled"] is False
        own = csrf_of(client.get(f"/projects/{project}/flags").text)
        accepted = client.post(path, data={**form, "csrf_token": own})
        assert accepted.status_code == 303
        assert config(console, project, "staging", "new-checkout")["enabled"] is True


def test_pages_forbid_framing_scripts_from_elsewhere_and_caching(console: Console) -> None:
    with console.browser_client() as client:
        http_login(client, ADMIN, PASSWORD)
        response = client.get("/projects")
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert client.get("/static/console.css").status_code == 200
