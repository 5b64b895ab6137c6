"""Interoperability: the PyPI OpenFeature SDK with its stock OFREP provider
(``openfeature-provider-ofrep``) evaluates flags of a real ``fader serve`` process, with no
Fader code on the client side.

That provider implements the single-flag endpoint only (no bulk, no change stream), sends
``{"context": {...}}`` with ``headers_factory`` headers, maps 404 to FLAG_NOT_FOUND, 401/403 to
GENERAL, and 400 bodies' ``errorCode`` to OpenFeature errors. Every result below is what an
application using it sees.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ofrep_flags import create_flags, new_key
from ofrep_spec import check
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from processes import wait_ready
from server_api import unique

NL = EvaluationContext("user-1", {"country": "NL"})


@dataclass
class Fader:
    url: str
    admin: httpx.Client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def fader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fader]:
    """`fader serve --demo` on SQLite in a temporary directory, stopped at the end."""
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    port = _free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("fader")),
            "serve",
            "--demo",
            "--data-dir",
            str(tmp_path_factory.mktemp("ofrep-provider")),
            "--port",
            str(port),
        ],
        env={**os.environ, "FADER_ADMIN_TOKEN": token, "FADER_ADMIN_PASSWORD": "pw-" + token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_ready(url, process, 90):  # generous: a loaded CI machine starts slowly
            process.kill()
            raise RuntimeError("fader serve did not start: " + process.communicate()[0])
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as admin:
            yield Fader(url, admin)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def project(fader: Fader) -> str:
    key = unique("interop")
    assert fader.admin.post("/api/v1/projects", json={"key": key, "name": "I"}).status_code == 201
    create_flags(fader.admin, key)
    return key


@pytest.fixture
def openfeature() -> Iterator[Callable[[str, dict[str, str]], OpenFeatureClient]]:
    """Makes an OpenFeature client whose provider is OFREP against `url` with `headers`."""
    providers: list[OFREPProvider] = []

    def client(url: str, headers: dict[str, str]) -> OpenFeatureClient:
        provider = OFREPProvider(url, headers_factory=lambda: headers)
        providers.append(provider)
        domain = unique("fader")
        api.set_provider_and_wait(provider, domain)
        return api.get_client(domain)

    yield client
    api.shutdown()
    api.clear_providers()
    for provider in providers:
        provider.session.close()  # the provider never closes its requests session


def test_the_ofrep_provider_resolves_every_type(fader: Fader, project: str, openfeature) -> None:
    key = new_key(fader.admin, project, "server")
    client = openfeature(fader.url, {"Authorization": f"Bearer {key}"})

    banner = client.get_boolean_details("banner", False, NL)
    assert (banner.value, banner.variant, banner.reason) == (True, "on", Reason.TARGETING_MATCH)
    assert banner.error_code is None
    assert banner.flag_metadata == {"owner_team": "web", "client_side": True}
    other = client.get_boolean_details("banner", True, EvaluationContext("u", {"country": "DE"}))
    assert (other.value, other.variant, other.reason) == (False, "off", Reason.UNKNOWN)

    copy = client.get_string_details("button-copy", "?", EvaluationContext("user-7"))
    assert copy.reason == Reason.SPLIT
    assert copy.value == {"control": "Buy now", "treatment": "Complete purchase"}[copy.variant]
    again = client.get_string_details("button-copy", "?", EvaluationContext("user-7"))
    assert again.variant == copy.variant

    size = client.get_integer_details("page-size", 0, NL)
    assert (size.value, size.reason, size.variant) == (50, Reason.STATIC, "normal")
    discount = client.get_float_details("discount", 0.0, EvaluationContext("u", {"plan": "pro"}))
    assert (discount.value, discount.reason) == (0.75, Reason.TARGETING_MATCH)
    theme = client.get_object_details("theme", {}, NL)
    assert (theme.value, theme.variant, theme.reason) == ({"bg": "#fff"}, "light", Reason.DISABLED)


def test_the_ofrep_provider_reports_errors_with_the_default(
    fader: Fader, project: str, openfeature
) -> None:
    key = new_key(fader.admin, project, "server")
    client = openfeature(fader.url, {"X-API-Key": key})

    missing = client.get_boolean_details("no-such-flag", True, NL)
    assert (missing.value, missing.reason) == (True, Reason.ERROR)
    assert missing.error_code == ErrorCode.FLAG_NOT_FOUND
    assert "no-such-flag" in (missing.error_message or "")

    no_key = client.get_string_details("button-copy", "fallback", EvaluationContext())
    assert (no_key.value, no_key.error_code) == ("fallback", ErrorCode.TARGETING_KEY_MISSING)
    array = client.get_object_details("regions", {"default": True}, NL)
    assert (array.value, array.error_code) == ({"default": True}, ErrorCode.GENERAL)
    wrong_type = client.get_string_details("banner", "text", NL)
    assert (wrong_type.value, wrong_type.error_code) == ("text", ErrorCode.TYPE_MISMATCH)

    forged = openfeature(fader.url, {"Authorization": "Bearer fdr_srv_" + "x" * 43})
    refused = forged.get_boolean_details("banner", False, NL)
    assert (refused.value, refused.error_code) == (False, ErrorCode.GENERAL)


def test_a_client_key_through_the_provider_sees_client_side_flags_only(
    fader: Fader, project: str, openfeature
) -> None:
    key = new_key(fader.admin, project, "client")
    client = openfeature(fader.url, {"Authorization": f"Bearer {key}"})
    assert client.get_boolean_value("banner", False, NL) is True
    hidden = client.get_integer_details("page-size", 7, NL)
    assert (hidden.value, hidden.error_code) == (7, ErrorCode.FLAG_NOT_FOUND)


def test_the_demo_project_serves_its_client_side_flags(fader: Fader) -> None:
    """`fader serve --demo` marks the storefront's flags client-side."""
    key = new_key(fader.admin, "demo", "client")
    response = httpx.post(
        fader.url + "/ofrep/v1/evaluate/flags",
        json={"context": {"targetingKey": "user-1", "email": "ana@example.com"}},
        headers={"X-API-Key": key},
        timeout=30,
    )
    assert response.status_code == 200
    flags = {item["key"]: item for item in check("bulkEvaluationSuccess", response.json())["flags"]}
    assert set(flags) == {"new-checkout", "checkout-button-copy"}
    assert flags["new-checkout"]["reason"] == "TARGETING_MATCH"  # internal users, by e-mail
