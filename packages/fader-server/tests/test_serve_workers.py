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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import PG_ADMIN_URL, dedicated_postgres_database, postgres_login_role
from processes import free_port, terminate, wait_ready
from server_api import create_flag, unique
from sse import EventReader, open_stream

from fader_server.cli.serve_workers import startup_failure
from fader_server.storage.ports import EnvironmentChange
from fader_server.storage.sql import delivery as sql_delivery
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


def test_answers_do_not_name_the_server_software(workers: Workers) -> None:
    """`fader serve` (one worker or several: the same uvicorn options) sends no ``Server``
    header, which would only tell a scanner what to probe for."""
    with httpx.Client(base_url=workers.url, timeout=30) as client:
        answers = [client.get("/healthz"), client.get("/api/v1/projects")]
    assert [a.status_code for a in answers] == [200, 401]
    assert all("server" not in a.headers for a in answers), [a.headers for a in answers]
    assert all(a.headers["x-content-type-options"] == "nosniff" for a in answers)


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


def test_a_setting_a_worker_would_refuse_stops_serve_before_any_worker_starts(
    tmp_path: Path,
) -> None:
    """Usage retention is built with each worker's app, never in the parent: its setting is
    checked with the others when the parent reads them, so a value every worker would refuse
    is one line and exit 1 before anything is created, not a worker failing at start. (A
    worker that fails at start all the same stops the server with its reason: the database
    test below.)"""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FADER_")}
    done = subprocess.run(
        [
            *(sys.executable, "-c", SERVE, "serve", "--workers", "2"),
            *("--port", str(free_port()), "--data-dir", str(tmp_path / "d")),
        ],
        capture_output=True,
        text=True,
        env={**env, "FADER_USAGE_MINUTES_DAYS": "0"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: FADER_USAGE_MINUTES_DAYS must be at least 1, not 0"
    ]
    assert not (tmp_path / "d").exists()


@pytest.fixture
def one_connection_role() -> Iterator[str]:
    """A PostgreSQL login role allowed one connection at a time."""
    with postgres_login_role("fader_one", "CONNECTION LIMIT 1") as role:
        yield role


def test_a_worker_that_cannot_connect_makes_serve_fail_and_says_why(
    tmp_path: Path, one_connection_role: str
) -> None:
    """A database the parent reached but a worker cannot: the role may hold one connection,
    the parent's is closed before the workers start, and the first worker's pool keeps the
    one there is. So the other worker is refused, and `fader serve` fails with its reason."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FADER_")}
    with dedicated_postgres_database(empty=True) as url:
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" OWNER TO "{one_connection_role}"')
        database_url = f"postgresql+psycopg://{one_connection_role}@127.0.0.1:5432/{name}"
        done = subprocess.run(
            [
                *(sys.executable, "-c", SERVE, "serve", "--workers", "2"),
                *("--port", str(free_port()), "--database-url", database_url),
            ],
            capture_output=True,
            text=True,
            env={**env, "FADER_ADMIN_PASSWORD": "not-printed-" + secrets.token_urlsafe(8)},
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: worker "), done.stderr
    assert "too many connections for role" in last, last
    assert last.endswith("the server stopped"), last


def test_a_failed_start_without_a_reason_names_the_worker_and_its_status() -> None:
    """A worker that failed before it could report (e.g. in the app's startup) is named by
    its exit status; workers that stopped as asked are no failure."""
    assert startup_failure("", [(101, 0), (102, 3)]) == (
        "worker 2 of 2 (pid 102) exited with status 3 before it started serving "
        "(its log is above); the server stopped"
    )
    assert startup_failure("", [(101, 0), (102, -15)]) is None
    assert startup_failure("worker 7 could not start (X: y)\n", [(7, 3)]) == (
        "worker 7 could not start (X: y); the server stopped"
    )


SUMMARY = {
    "start": 0,
    "end": 1,
    "evaluations": [{"flag": "new-checkout", "variant": "off", "reason": "DEFAULT", "count": 3}],
}
CLEARS = re.compile(r"^fader_sdk_key_cache_clears_total (\S+)$", re.MULTILINE)


def key_cache_clears(workers: Workers) -> dict[int, float]:
    """Each worker's ``fader_sdk_key_cache_clears_total``: scrapes on new connections until
    each worker has answered one (which worker did is read from the kernel, as for streams)."""
    pids = workers.worker_pids()
    scraped: dict[int, float] = {}
    for _ in range(200):
        with (
            httpx.Client(base_url=workers.url, timeout=30) as client,
            client.stream("GET", "/metrics") as response,
        ):
            port = int(response.extensions["network_stream"].get_extra_info("client_addr")[1])
            pid = holders(workers.port, pids).get(port)
            found = CLEARS.search(response.read().decode())
        assert found is not None
        if pid is not None:
            scraped[pid] = float(found.group(1))
        if len(scraped) == len(pids):
            return scraped
    raise AssertionError(f"/metrics was answered by {sorted(scraped)} only, of {sorted(pids)}")


def test_commits_that_announce_nothing_keep_every_workers_key_cache(workers: Workers) -> None:
    """SDK summaries commit on one worker and change nothing the others cache: no worker
    forgets its keys for them, nor for a change, which reaches every stream by itself."""
    project, _, key = project_with_key(workers)
    with streams_on_every_worker(workers, key) as streams, workers.admin() as admin:
        before = key_cache_clears(workers)
        assert all(count >= 1 for count in before.values()), before  # the feed's start
        with httpx.Client(
            base_url=workers.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as sdk:
            for _ in range(3):
                assert sdk.post("/api/v1/sdk/summaries", json=SUMMARY).status_code == 202
        # Committed after the summaries: once every stream has it, every worker has read
        # past the summaries' commits too.
        toggle(admin, project, True)
        changes = [s.next() for s in streams]
        assert all(e.json()["document"]["flags"]["new-checkout"]["enabled"] for e in changes)
        assert key_cache_clears(workers) == before


@pytest.fixture
def watched_sqlite(tmp_path: Path) -> Iterator[tuple[SqlStore, SqlStore]]:
    """A store watching one SQLite file (as a worker's) and another store over it (as
    another worker's)."""
    url = f"sqlite:///{tmp_path / 'fader.db'}"
    watched = SqlStore.open(url, sqlite_watch=0.01)
    other = SqlStore.open(url, upgrade=False)
    try:
        yield watched, other
    finally:
        watched.close()
        other.close()


class Heard:
    """What a watch handed on, with an event to wait for the next of each."""

    def __init__(self) -> None:
        self.changes: list[EnvironmentChange] = []
        self.revoked: list[int] = []
        self.resyncs = 0
        self.arrived = threading.Condition()

    def changed(self, changes: Sequence[EnvironmentChange]) -> None:
        with self.arrived:
            self.changes.extend(changes)
            self.arrived.notify_all()

    def resync(self) -> None:
        with self.arrived:
            self.resyncs += 1
            self.arrived.notify_all()

    def revoke(self, token_ids: Sequence[int]) -> None:
        with self.arrived:
            self.revoked.extend(token_ids)
            self.arrived.notify_all()

    def wait(self, done: Callable[[], bool]) -> None:
        with self.arrived:
            assert self.arrived.wait_for(done, timeout=20)


def test_the_sqlite_watch_hands_on_what_another_process_announces(
    watched_sqlite: tuple[SqlStore, SqlStore],
) -> None:
    """The watch under the SQLite case above, without servers: another engine (as another
    worker's) commits; its announcements reach the callbacks, in order, and nothing makes the
    watch resync but its start (an unrelated commit, then the announcing ones)."""
    watched, other = watched_sqlite
    heard = Heard()
    watched.listen(heard.changed, heard.resync, heard.revoke)
    heard.wait(lambda: heard.resyncs == 1)  # once at start: nothing seen before counts as known
    at = datetime.now(UTC)
    with other.transaction() as tx:
        project = tx.insert_project(unique("p"), "P", at)
    with other.engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
    with other.transaction() as tx:
        tx.announce_revoked([41, 42])
    with other.transaction() as tx:
        bumped = tx.bump_revisions(project, ["staging", "production"], at)
    heard.wait(lambda: len(heard.changes) == 2)
    assert heard.revoked == [41, 42]
    assert heard.changes == bumped
    assert heard.resyncs == 1


def test_the_sqlite_watch_resyncs_when_announcements_went_unread(
    watched_sqlite: tuple[SqlStore, SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Announcements deleted before the watch read them (only the newest are kept; here two)
    are not handed on piecemeal: the watch finds the gap in their ids and resyncs."""
    watched, other = watched_sqlite
    heard = Heard()
    watched.listen(heard.changed, heard.resync, heard.revoke)
    heard.wait(lambda: heard.resyncs == 1)
    monkeypatch.setattr(sql_delivery, "ANNOUNCEMENTS_KEPT", 2)
    with other.transaction() as tx:
        tx.announce_revoked([1, 2, 3, 4, 5])  # 1 to 3 are gone when it commits
    heard.wait(lambda: heard.resyncs == 2)
    with other.transaction() as tx:
        tx.announce_revoked([6])  # the watch carries on after the gap, one by one again
    heard.wait(lambda: heard.revoked == [6])
    assert heard.resyncs == 2
