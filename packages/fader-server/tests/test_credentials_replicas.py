"""Two `fader serve` replicas over one PostgreSQL database share the login throttle: guesses
spread over both are counted together. Both replicas start at once with the same new
FADER_ADMIN_TOKEN, so the bootstrap race (same user, same token inserted twice) is run too."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import httpx
from conftest import dedicated_postgres_database
from processes import FaderProcess, free_port
from server_api import unique

LOGIN = "/api/v1/auth/login"


def _login(replica: FaderProcess, username: str, password: str, address: str) -> httpx.Response:
    return httpx.post(
        replica.url + LOGIN,
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=30,
    )


def test_two_replicas_count_failed_logins_together(tmp_path: Path) -> None:
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    with dedicated_postgres_database() as url:
        replicas = [
            FaderProcess(
                port=free_port(),
                admin_token=token,
                log_path=tmp_path / f"replica-{n}.log",
                data_dir=tmp_path / f"replica-{n}",
                database_url=url,
            )
            for n in (1, 2)
        ]
        failures: list[BaseException] = []

        def start(replica: FaderProcess) -> None:
            try:
                replica.start()
            except BaseException as exc:  # reported below, with the replica's output
                failures.append(exc)

        starting = [threading.Thread(target=start, args=(r,)) for r in replicas]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        try:
            assert not failures, failures
            first, second = replicas
            username, password = unique("alice"), "pw-" + unique("secret")
            with first.admin() as admin:
                created = admin.post(
                    "/api/v1/users", json={"username": username, "password": password}
                )
                assert created.status_code == 201, created.text
            attacker = "203.0.113.50"
            for replica in (first, second, first, second, first):
                assert _login(replica, username, "wrong", attacker).status_code == 401
            for replica in (second, first):  # the sixth guess waits, whichever replica it hits
                refused = _login(replica, username, password, attacker)
                assert refused.status_code == 429, refused.text
                assert 1 <= int(refused.headers["Retry-After"]) <= 30
            assert _login(second, username, password, "198.51.100.20").status_code == 201
            for replica in replicas:
                assert replica.errors() == []
        finally:
            for replica in replicas:
                replica.kill()
