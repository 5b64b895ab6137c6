"""What the operator does on the server's host, against real servers (SQLite and PostgreSQL):
rotate FADER_ADMIN_TOKEN (the old value stops working), and reset a lost password with
`fader users reset-password` (the old sessions stop working).

The servers run in this process (a thread each), built from ``FADER_*`` variables by
:meth:`Settings.load`, as `fader serve` builds its own: what a restart does with the variables
is the same, and each restart costs a fraction of a new Python process. The CLI runs as the
operator runs it, a process of its own beside the server.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from conftest import ADMIN_PASSWORD, LogSink, Server, dedicated_postgres_database, serving
from server_api import unique

from fader_server.settings import Settings

LOGIN = "/api/v1/auth/login"


@dataclass
class Deployment:
    """Where one Fader installation keeps its data; servers come and go over it."""

    backend: str
    data_dir: Path
    database_url: str | None
    logs: LogSink

    @contextmanager
    def running(self, admin_token: str) -> Iterator[Server]:
        """A server started with FADER_ADMIN_TOKEN set to `admin_token` ("" leaves it unset)."""
        environment = {"FADER_ADMIN_TOKEN": admin_token, "FADER_ADMIN_PASSWORD": ADMIN_PASSWORD}
        settings = Settings.load(
            environment, data_dir=self.data_dir, database_url=self.database_url
        )
        with serving(settings, self.logs) as url:
            yield Server(self.backend, url, admin_token, ADMIN_PASSWORD)

    def storage_options(self) -> list[str]:
        options = ["--data-dir", str(self.data_dir)]
        if self.database_url is not None:
            options += ["--database-url", self.database_url]
        return options

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.database_url or f"sqlite:///{self.data_dir / 'fader.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, log_sink: LogSink
) -> Iterator[Deployment]:
    with ExitStack() as stack:
        url = None
        if request.param == "postgresql":
            url = stack.enter_context(dedicated_postgres_database())
        yield Deployment(request.param, tmp_path / "data", url, log_sink)


def _status(server: Server, token: str) -> int:
    response = httpx.get(
        server.url + "/api/v1/projects", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return response.status_code


def _refused_soon(server: Server, token: str) -> None:
    deadline = time.monotonic() + 60
    while _status(server, token) != 401:
        assert time.monotonic() < deadline, "the revoked token is still accepted after 60 s"
        time.sleep(0.2)


def _audit(deployment: Deployment, action: str) -> list[tuple[str, str, str | None]]:
    """Instance-wide audit entries of `action` as (actor, entity key, comment), read directly."""
    engine = deployment.engine()
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT actor, entity_key, comment FROM audit_log "
                    "WHERE action = :action AND project_id IS NULL ORDER BY id"
                ),
                {"action": action},
            )
            return [(r.actor, r.entity_key, r.comment) for r in rows]
    finally:
        engine.dispose()


def test_changing_fader_admin_token_revokes_the_previous_one(deployment: Deployment) -> None:
    first, second = ("fdr_admin_" + secrets.token_urlsafe(32) for _ in range(2))
    with deployment.running(first) as server:
        assert _status(server, first) == 200
    with deployment.running(second) as server:
        assert _status(server, second) == 200
        refused = httpx.get(
            server.url + "/api/v1/projects", headers={"Authorization": f"Bearer {first}"}
        )
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]
        listed = httpx.get(
            server.url + "/api/v1/tokens", headers={"Authorization": f"Bearer {second}"}
        ).json()
        bootstrap = [t for t in listed if t["name"] == "FADER_ADMIN_TOKEN"]
        assert [t["revoked_at"] is None for t in bootstrap] == [False, True]
        assert {t["created_by"] for t in bootstrap} == {"system"}
    revoked_id = str(bootstrap[0]["id"])
    assert ("system", revoked_id, "FADER_ADMIN_TOKEN changed") in _audit(deployment, "revoke")
    # Unsetting the variable revokes nothing (a missing variable must not lock automation out).
    with deployment.running("") as server:
        assert _status(server, second) == 200
    # A revoked value stays revoked, whatever the environment says.
    with deployment.running(first) as server:
        assert _status(server, first) == 401
        assert _status(server, second) == 200


def _login(server: Server, username: str, password: str, address: str) -> httpx.Response:
    return httpx.post(
        server.url + LOGIN,
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=30,
    )


def _reset(deployment: Deployment, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`fader users reset-password ARGS` on the server's host, with the storage options."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FADER_")}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from fader_server.cli.main import main; main()",
            "users",
            "reset-password",
            *args,
            *deployment.storage_options(),
        ],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def test_the_operator_resets_a_lost_password_and_the_old_sessions_end(
    deployment: Deployment,
) -> None:
    admin_token = "fdr_admin_" + secrets.token_urlsafe(32)
    username, old_password = unique("alice"), "pw-" + unique("forgotten")
    office = "203.0.113.9"
    with deployment.running(admin_token) as server:
        with server.admin() as admin:
            created = admin.post(
                "/api/v1/users", json={"username": username, "password": old_password}
            )
            assert created.status_code == 201, created.text
        session = _login(server, username, old_password, office).json()["token"]
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {session}"}
        ) as as_user:
            personal = as_user.post("/api/v1/tokens", json={"kind": "user", "name": "laptop"})
            assert personal.status_code == 201, personal.text
            assert as_user.get("/api/v1/projects").status_code == 200
        for _ in range(6):  # guessing at the lost password until the office has to wait
            last = _login(server, username, "not-it-" + unique("x"), office)
        assert last.status_code == 429

        reset = _reset(deployment, username)
        assert reset.returncode == 0, reset.stderr
        new_password = reset.stdout.strip()
        assert len(new_password) >= 20
        assert reset.stdout == new_password + "\n"  # alone on stdout, for PW=$(...)
        assert "revoked 2 personal tokens" in reset.stderr

        assert _login(server, username, new_password, office).status_code == 201
        assert _login(server, username, old_password, "203.0.113.10").status_code == 401
        # Another process revoked them: the server's cached lookups go within 5 seconds
        # (docs/security.md); a deadline well beyond that, for a loaded machine.
        _refused_soon(server, session)
        _refused_soon(server, personal.json()["token"])

        chosen = "pw-" + unique("chosen-by-alice")
        from_stdin = _reset(deployment, username, "--password-stdin", stdin=chosen + "\n")
        assert from_stdin.returncode == 0, from_stdin.stderr
        assert from_stdin.stdout == ""
        assert _login(server, username, chosen, office).status_code == 201
        assert _login(server, username, new_password, office).status_code == 401

    missing = _reset(deployment, unique("nobody"))
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    too_short = _reset(deployment, username, "--password-stdin", stdin="short\n")
    assert too_short.returncode == 1
    assert "at least 12 characters" in too_short.stderr
    audited = _audit(deployment, "reset-password")
    assert [(actor.startswith("operator"), key) for actor, key, _ in audited] == [
        (True, username),
        (True, username),
    ]
    assert new_password not in deployment.logs.text()
