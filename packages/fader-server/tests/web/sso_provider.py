"""A real OpenID provider for the single sign-on tests: the certified npm ``oidc-provider`` in
Node (``tests/oidc_provider/provider.mjs``, pinned by its ``package-lock.json`` and installed
with ``npm ci`` the first time), and a Fader server configured to use it.

The provider's accounts are a JSON file it reads at every login (:meth:`Provider.set_groups`
rewrites it), so a test changes someone's groups between two logins exactly as a directory
administrator would. :func:`provider_login` walks the provider's own interactive pages (login
form, consent) with an HTTP client, for the tests that need no browser.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import node_packages
from processes import free_port, terminate

PROVIDER_DIR = Path(__file__).parent.parent / "oidc_provider"
CLIENT_ID = "fader"
CLIENT_SECRET = "fader-sso-tests-" + secrets.token_hex(16)
PROVIDER_ID = "test-id"
PROVIDER_NAME = "Test ID"
STARTUP_SECONDS = 60
_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')


@dataclass(frozen=True)
class Provider:
    issuer: str
    accounts: Path
    log_path: Path

    def set_groups(self, username: str, *groups: str) -> None:
        """Give `username` these groups from their next login on (an account is created)."""
        found: dict[str, Any] = json.loads(self.accounts.read_text())
        found[username] = {"email": f"{username}@example.test", "groups": list(groups)}
        temporary = self.accounts.with_suffix(".tmp")
        temporary.write_text(json.dumps(found))
        temporary.replace(self.accounts)  # the provider never reads half a file


@contextmanager
def oidc_provider(directory: Path) -> Iterator[Provider]:
    """The provider on a free loopback port until the block ends.

    Its one client is Fader (confidential, PKCE required), a native client in the sense of
    RFC 8252, so its loopback redirect URIs match on any port: the console's callback and
    logout return on Fader's port, and ``fader login --sso``'s listener on its own."""
    cwd = node_packages.installed(PROVIDER_DIR, "the OpenID provider")
    port = free_port()
    accounts = directory / "accounts.json"
    accounts.write_text("{}")
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [
            f"http://127.0.0.1/login/sso/{PROVIDER_ID}/callback",
            "http://127.0.0.1/callback",
        ],
        "post_logout_redirect_uris": ["http://127.0.0.1/login"],
    }
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_ACCOUNTS": str(accounts),
        "OIDC_CLIENT": json.dumps(client),
    }
    log_path = directory / "provider.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["node", "provider.mjs"], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while f"ready {issuer}" not in log_path.read_text():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the OpenID provider did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield Provider(issuer, accounts, log_path)
    finally:
        terminate(process)


def sso_settings(directory: Path, provider: Provider, groups: dict[str, Any]) -> dict[str, str]:
    """The ``FADER_*`` variables of a server signing in with `provider` (docs/sso.md)."""
    config = directory / "sso.toml"
    lines = []
    for group, projects in groups.items():
        roles = ", ".join(
            f"{json.dumps(key)} = {json.dumps(role)}" for key, role in projects.items()
        )
        lines.append(f"{json.dumps(group)} = {{ {roles} }}")
    mapping = "\n".join(lines)
    config.write_text(
        f"""
[[providers]]
id = "{PROVIDER_ID}"
name = "{PROVIDER_NAME}"
issuer = "{provider.issuer}"
client_id = "{CLIENT_ID}"
scopes = ["openid", "profile", "email", "groups"]
groups_claim = "groups"
admin_group = "fader-admins"

[providers.groups]
{mapping}
"""
    )
    secret_variable = "FADER_SSO_SECRET_" + PROVIDER_ID.upper().replace("-", "_")
    return {"FADER_SSO_CONFIG": str(config), secret_variable: CLIENT_SECRET}


def provider_login(client: httpx.Client, url: str, username: str, issuer: str) -> str:
    """Follow `url` (an authorization request) through the provider's own login form and
    consent page, as a person would; the address it finally sends the browser to (the
    client's redirect URI with the code)."""
    response = client.get(url, follow_redirects=False)
    for _ in range(20):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if not location.startswith(issuer):
                return location
            response = client.get(location, follow_redirects=False)
            continue
        assert response.status_code == 200, response.text
        action = _ACTION.search(response.text)
        assert action is not None, response.text
        target = urljoin(str(response.url), unescape(action.group(1)))
        if 'name="login"' in response.text:
            form = {"prompt": "login", "login": username, "password": "any"}
        else:
            form = {"prompt": "consent"}
        response = client.post(target, data=form, follow_redirects=False)
    raise AssertionError("the provider kept asking")
