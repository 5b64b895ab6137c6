"""A real `fader serve` process: demo seeding once, and no acknowledged write lost to SIGKILL.

Runs on both backends. SQLite keeps its file in the test's temporary directory; the
PostgreSQL variant creates a database of its own and drops it at the end, so a killed server's
leftovers can never reach another test.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import PG_ADMIN_URL
from processes import wait_ready

WRITERS = 4
WRITES_PER_WRITER = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fader_serve(
    data_dir: Path, token: str, *extra: str
) -> Iterator[tuple[str, subprocess.Popen[str], list[str]]]:
    """Start `fader serve`, wait until ready; yields its url, process and (after) its output."""
    port = _free_port()
    env = {**os.environ, "FADER_ADMIN_TOKEN": token, "FADER_ADMIN_PASSWORD": "pw-" + token[-12:]}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from fader_server.cli.main import main; main()",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    # Generous: importing the server takes seconds, and far longer on a busy two-core machine.
    if not wait_ready(url, process, 90):
        process.kill()
        raise RuntimeError("fader serve did not become ready: " + (process.communicate()[0]))
    output: list[str] = []
    try:
        yield url, process, output
    finally:
        if process.poll() is None:
            process.kill()
        output.append(process.communicate()[0])


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_args(request: pytest.FixtureRequest) -> Iterator[tuple[str, ...]]:
    """Extra `fader serve` arguments for the backend; PostgreSQL gets a database of its own."""
    if request.param == "sqlite":
        yield ()
        return
    name = f"fader_durability_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield ("--database-url", f"postgresql://postgres@127.0.0.1:5432/{name}")
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_acknowledged_writes_survive_sigkill(tmp_path: Path, storage_args: tuple[str, ...]) -> None:
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {token}"}
    acknowledged: list[str] = []
    lock = threading.Lock()
    with fader_serve(tmp_path, token, "--demo", *storage_args) as (url, process, _):

        def writer(n: int) -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                for i in range(WRITES_PER_WRITER):
                    key = f"durable-{n}-{i}"
                    body = {
                        "key": key,
                        "name": key,
                        "type": "boolean",
                        "variants": {"on": True, "off": False},
                    }
                    try:
                        response = client.post("/api/v1/projects/demo/flags", json=body)
                    except httpx.TransportError:
                        return
                    if response.status_code == 201:
                        with lock:
                            acknowledged.append(key)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < WRITERS * WRITES_PER_WRITER // 2:
            assert time.monotonic() < deadline, f"only {len(acknowledged)} writes acknowledged"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        for t in threads:
            t.join()
    assert acknowledged

    with (
        fader_serve(tmp_path, token, "--demo", *storage_args) as (url, _, restarted_output),
        httpx.Client(base_url=url, headers=headers) as client,
    ):
        flags = client.get("/api/v1/projects/demo/flags", params={"limit": 500}).json()
        audit = client.get("/api/v1/projects/demo/audit", params={"limit": 500}).json()
        templates = client.get("/api/v1/projects/demo/rollout-templates").json()
    # The demo comes with a release-plan template for its internal-users segment.
    assert [t["key"] for t in templates["items"]] == ["staged-release"]
    assert templates["items"][0]["stages"][0]["segment"] == "internal-users"
    present = {f["key"] for f in flags["items"]}
    assert set(acknowledged) <= present
    created = {
        e["entity_key"]
        for e in audit["items"]
        if e["entity_type"] == "flag" and e["action"] == "create"
    }
    assert created == present  # each flag with its audit entry, and no entry without its flag
    assert "Seeded the demo project" not in restarted_output[0]  # seeded once only
    assert "Created user" not in restarted_output[0]  # the first run happens once
