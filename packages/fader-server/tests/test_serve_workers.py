"""`fader serve --workers 2`: two server processes behind one port, on SQLite and PostgreSQL.

Which worker holds a connection is read from the kernel (``/proc``: the worker whose file
descriptors include the server side of the connection), so the server exposes nothing for
these tests. The kernel decides which worker accepts a connection; the tests open streams
until each worker holds some.

Deadlines are generous, but the change test's is below the hub's periodic resync (30 s) and
the heartbeat is set above it: a change must be *pushed* to the other worker's streams (by
``LISTEN``/``NOTIFY`` on PostgreSQL, by the ``data_version`` watch on SQLite), not found by
the safety net.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from processes import free_port, terminate, wait_ready
from server_api import create_flag, unique
from sse import EventReader, open_stream

from fader_server.storage.sql.store import SqlStore

SERVE = "from fader_server.cli.main import main; main()"
READ_TIMEOUT = 20.0
"""Seconds a stream read may wait: generous, and below the 30 s periodic resync."""
MAX_STREAMS = 48
PASSWORD_LINE = re.compile(r"Created user 'admin' with password: (\S+)")


@dataclass
class Workers:
    """One `fader serve --workers 2` (its parent process) and where its output goes."""

    process: subprocess.Popen[bytes]
    port: int
    admin_token: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=30
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        """The parent's children that serve (not multiprocessing's resource tracker)."""
        pids = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"resource_tracker" not in command:
                pids.add(int(entry.name))
        return pids


def start_workers(
    log_path: Path, data_dir: Path, database_url: str | None, *, new_session: bool = False
) -> Workers:
    port = free_port()
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "FADER_ADMIN_TOKEN": token,
        "FADER_SSE_HEARTBEAT_SECONDS": "60",  # no bytes to reset the read deadline
    }
    env.pop("FADER_ADMIN_PASSWORD", None)  # so the first run prints a generated password
    env.pop("FADER_DATABASE_URL", None)
    storage = ["--data-dir", str(data_dir)]
    if database_url is not None:
        storage += ["--database-url", database_url]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "serve", "--workers", "2", "--port", str(port), *storage],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    workers = Workers(process, port, token, log_path)
    if not wait_ready(workers.url, process, 120):
        terminate(process)
        raise RuntimeError(f"fader serve --workers 2 did not become ready:\n{workers.output()}")
    return workers


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def workers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    backend: str = request.param
    root = tmp_path_factory.mktemp(f"workers-{backend}")
    database_url = (
        request.getfixturevalue("module_postgres_url") if backend == "postgresql" else None
    )
    started = start_workers(root / "serve.log", root / "data", database_url)
    try:
        yield started
    finally:
        terminate(started.process)


def holders(port: int, pids: set[int]) -> dict[int, int]:
    """Client port → the pid of the worker holding the server side of that connection."""
    inode_pid: dict[str, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inode_pid[target[8:-1]] = pid
    held = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == port and inode in inode_pid:
                    held[int(remote.rsplit(":", 1)[1], 16)] = inode_pid[inode]
    return held


def client_port(stream: EventReader) -> int:
    network = stream.response.extensions["network_stream"]
    return int(network.get_extra_info("client_addr")[1])


@contextlib.contextmanager
def streams_on_every_worker(workers: Workers, key: str) -> Iterator[list[EventReader]]:
    """Streams of `key`, opened until each worker holds at least two; each has read its
    snapshot. Yields them all."""
    pids = workers.worker_pids()
    assert len(pids) == 2, workers.output()
    with contextlib.ExitStack() as stack:
        streams: list[EventReader] = []
        while len(streams) < MAX_STREAMS:
            for _ in range(4):
                stream = stack.enter_context(open_stream(workers.url, key, timeout=READ_TIMEOUT))
                assert stream.next().event == "snapshot"
                streams.append(stream)
            held = holders(workers.port, pids)
            per_worker = [
                sum(1 for s in streams if held.get(client_port(s)) == pid) for pid in pids
            ]
            if min(per_worker) >= 2:
                break
        assert min(per_worker) >= 2, f"connections per worker: {per_worker}"
        assert sum(per_worker) == len(streams)
        yield streams


def drain(stream: EventReader) -> None:
    """Read events until the stream ends (raises EOFError then)."""
    while True:
        stream.next()


def new_key(admin: httpx.Client, project: str) -> tuple[int, str]:
    response = admin.post(
        "/api/v1/tokens",
        json={"kind": "server", "name": "k", "project": project, "environment": "production"},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"]), str(response.json()["token"])


def toggle(admin: httpx.Client, project: str, enabled: bool) -> None:
    response = admin.post(
        f"/api/v1/projects/{project}/environments/production/flags/new-checkout/toggle",
        json={"enabled": enabled},
    )
    assert response.status_code == 200, response.text


def project_with_key(workers: Workers) -> tuple[str, int, str]:
    with workers.admin() as admin:
        project = unique("w")
        assert admin.post("/api/v1/projects", json={"key": project, "name": "W"}).status_code == 201
        create_flag(admin, project)
        token_id, key = new_key(admin, project)
    return project, token_id, key


def test_the_first_run_password_is_printed_once_and_works(workers: Workers) -> None:
    passwords = PASSWORD_LINE.findall(workers.output())
    assert len(passwords) == 1, workers.output()
    with httpx.Client(base_url=workers.url, timeout=30) as client:
        login = client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": passwords[0]}
        )
    assert login.status_code == 201, login.text


def test_a_change_reaches_every_stream_on_every_worker_once(workers: Workers) -> None:
    project, _, key = project_with_key(workers)
    with streams_on_every_worker(workers, key) as streams, workers.admin() as admin:
        toggle(admin, project, True)  # committed by whichever worker accepted the request
        changes = [s.next() for s in streams]
        versions = {int(event.id or 0) for event in changes}
        assert len(versions) == 1, versions
        assert all(e.json()["document"]["flags"]["new-checkout"]["enabled"] for e in changes)
        # Exactly once: the next event on every stream is the next change, not a repeat.
        toggle(admin, project, False)
        following = {int(s.next().id or 0) for s in streams}
        assert following == {versions.pop() + 1}


def test_a_revoked_key_is_refused_by_every_worker(workers: Workers) -> None:
    _, token_id, key = project_with_key(workers)
    with streams_on_every_worker(workers, key) as streams, workers.admin() as admin:
        assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 204
        for stream in streams:  # each ends, whichever worker holds it
            with pytest.raises(EOFError):
                drain(stream)
    for _ in range(20):  # new connections, accepted by either worker
        with httpx.Client(
            base_url=workers.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as sdk:
            assert sdk.get("/api/v1/sdk/flags").status_code == 401


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_stopping_the_server_stops_every_worker(tmp_path: Path, how: str) -> None:
    workers = start_workers(tmp_path / "serve.log", tmp_path / "data", None, new_session=True)
    pids = workers.worker_pids()
    assert len(pids) == 2
    try:
        if how == "sigterm":
            workers.process.send_signal(signal.SIGTERM)
        else:  # a terminal's Ctrl-C: SIGINT to the whole foreground process group
            os.killpg(workers.process.pid, signal.SIGINT)
        assert workers.process.wait(timeout=60) == 0, workers.output()
        deadline = time.monotonic() + 30
        while pids & workers_alive(pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not workers_alive(pids)
    finally:
        terminate(workers.process)


def workers_alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (not zombies: their parent reaps them)."""
    alive = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                alive.add(pid)
    return alive


def test_flagd_sync_needs_a_single_worker(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FADER_")}
    done = subprocess.run(
        [
            *(sys.executable, "-c", SERVE, "serve", "--workers", "2", "--flagd-sync-port", "1"),
            *("--port", str(free_port()), "--data-dir", str(tmp_path / "d")),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "--flagd-sync-port (FADER_FLAGD_SYNC_PORT) needs --workers 1" in done.stderr
    assert "password" not in done.stdout + done.stderr
    assert not (tmp_path / "d").exists()


def test_the_sqlite_watch_resyncs_after_another_process_commits(tmp_path: Path) -> None:
    """The watch under the SQLite case above, without servers: another engine (as another
    worker's) commits to the file, and the watching store calls its resync."""
    url = f"sqlite:///{tmp_path / 'fader.db'}"
    watched = SqlStore.open(url, sqlite_watch=0.01)
    other = SqlStore.open(url, upgrade=False)
    resynced = threading.Event()
    try:
        watched.listen(lambda changes: None, resynced.set)
        assert resynced.wait(20)  # once at start: nothing seen before counts as known
        resynced.clear()
        with other.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
        assert resynced.wait(20)
    finally:
        watched.close()
        other.close()
