"""Login throttling through the real server (both backends).

The session server is shared with tests that log in, and the test client always connects from
127.0.0.1; so every test here uses usernames of its own and sends a made-up client address
(documentation range) in ``X-Forwarded-For``, which uvicorn trusts from 127.0.0.1. Nothing here
can lock out `admin` or the loopback address.

The address ceiling is answered by a server of this module whose ceiling is a few failures
instead of ``ADDRESS_LIMIT``'s hundred: reaching the real one means a hundred argon2 checks (slow
on purpose), while how the counting works is tests/test_login_throttle.py's subject, against
both databases. That every server counts to ``ADDRESS_LIMIT`` is asserted on its way up.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from conftest import (
    ADMIN_PASSWORD,
    LogSink,
    Server,
    dedicated_postgres_database,
    running_server,
)
from server_api import unique

from fader_server.app import open_services
from fader_server.services.access import system_clock
from fader_server.services.login_throttle import (
    ADDRESS_LIMIT,
    PAIR_BACKOFF,
    USERNAME_LIMIT,
    Limit,
    LoginThrottle,
    ThrottlePolicy,
)
from fader_server.settings import Settings

LOGIN = "/api/v1/auth/login"
_addresses = itertools.count(1)


def made_up_address() -> str:
    """An address in TEST-NET-3 (RFC 5737), new on each call in this process (= this server)."""
    n = next(_addresses)
    assert n < 255, "out of made-up addresses"
    return f"203.0.113.{n}"


def new_user(admin: httpx.Client) -> tuple[str, str]:
    username, password = unique("throttled"), "pw-" + unique("secret")
    response = admin.post("/api/v1/users", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return username, password


def login(client: httpx.Client, username: str, password: str, address: str) -> httpx.Response:
    return client.post(
        LOGIN,
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )


ADDRESS_CEILING = Limit(failures=3, window_seconds=ADDRESS_LIMIT.window_seconds)
"""The address ceiling of `low_ceiling_server` (the module docstring says why)."""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def low_ceiling_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[Server]:
    """A server (and database) of this module whose address ceiling is `ADDRESS_CEILING`."""
    backend: str = request.param
    with ExitStack() as stack:
        database_url = None
        if backend == "postgresql":
            database_url = stack.enter_context(dedicated_postgres_database())
        settings = Settings(
            data_dir=tmp_path_factory.mktemp(f"identity-{backend}"),
            database_url=database_url,
            admin_password=ADMIN_PASSWORD,
            admin_token="fdr_admin_" + secrets.token_urlsafe(32),
        )
        services, _ = open_services(settings)
        # What every server counts to, before this one is made to count to less.
        assert services.identity.login_throttle.policy.address == ADDRESS_LIMIT
        assert ADDRESS_CEILING.failures < ADDRESS_LIMIT.failures
        services.identity.login_throttle = LoginThrottle(
            services.store, system_clock, ThrottlePolicy(address=ADDRESS_CEILING)
        )
        yield stack.enter_context(running_server(backend, settings, log_sink, services=services))


def assert_throttled(response: httpx.Response, who: str) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= USERNAME_LIMIT.window_seconds
    problem = response.json()
    assert problem["category"] == "retryable"
    assert problem["type"] == "urn:fader:problem:too-many-attempts"
    assert who in problem["detail"]
    assert f"try again in {retry_after} seconds" in problem["detail"]
    return retry_after


def test_failures_from_one_address_make_it_wait_but_never_lock_the_user_out_elsewhere(
    server: Server, admin: httpx.Client
) -> None:
    victim, password = new_user(admin)
    bystander, bystander_password = new_user(admin)
    attacker = made_up_address()
    with server.client() as anonymous:
        for _ in range(PAIR_BACKOFF.free_failures):
            assert login(anonymous, victim, "wrong", attacker).status_code == 401
        locked = login(anonymous, victim, password, attacker)  # even the right password waits
        from_elsewhere = login(anonymous, victim, password, made_up_address())
        other_user = login(anonymous, bystander, bystander_password, attacker)
    retry_after = assert_throttled(locked, "this username from your address")
    assert retry_after <= PAIR_BACKOFF.first_lock_seconds
    assert from_elsewhere.status_code == 201, from_elsewhere.text
    assert other_user.status_code == 201, other_user.text


def test_a_successful_login_clears_the_failures_of_its_username_and_address(
    server: Server, admin: httpx.Client
) -> None:
    username, password = new_user(admin)
    address = made_up_address()
    with server.client() as anonymous:
        for _ in range(2):
            for _ in range(PAIR_BACKOFF.free_failures - 1):
                assert login(anonymous, username, "wrong", address).status_code == 401
            assert login(anonymous, username, password, address).status_code == 201


def test_one_address_guessing_many_usernames_answers_429_for_that_address_only(
    low_ceiling_server: Server,
) -> None:
    server = low_ceiling_server
    with server.admin() as admin:
        username, password = new_user(admin)
    address = made_up_address()
    with server.client() as anonymous:
        for n in range(ADDRESS_CEILING.failures):
            guess = login(anonymous, f"{username}-guess-{n}", "wrong", address)
            assert guess.status_code == 401, guess.text
        refused = login(anonymous, username, password, address)
        elsewhere = login(anonymous, username, password, made_up_address())
    assert_throttled(refused, "your address")
    assert elsewhere.status_code == 201, elsewhere.text


def test_the_429_is_declared_in_the_openapi_document(server: Server) -> None:
    with server.client() as client:
        spec = client.get("/openapi.json").json()
    declared = spec["paths"][LOGIN]["post"]["responses"]["429"]
    assert "Retry-After" in declared["headers"]
    assert "application/problem+json" in declared["content"]
