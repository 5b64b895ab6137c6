"""Fixtures: a real Fader server (uvicorn in a thread) per storage backend, real databases.

Every API test runs twice, on SQLite and on PostgreSQL (`backend` is a session fixture
parametrised over both). The PostgreSQL database is created with a unique name for this test
session (each xdist worker has its own session) and dropped at the end, so runs never see each
other's data. Tests isolate from each other by creating their own projects (`new_project`).
"""

from __future__ import annotations

import asyncio
import io
import os
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from server_api import unique

from fader_server.app import create_app
from fader_server.services import Services
from fader_server.settings import Settings
from fader_server.storage.memory import MemoryStore
from fader_server.storage.ports.store import Database
from fader_server.storage.sql import migrate
from fader_server.storage.sql.store import SqlStore

# The tests start hundreds of Python processes (`fader serve`, CLI calls) that inherit this
# environment; with PYTHONDONTWRITEBYTECODE (some machines set it) every one of them compiles the
# server, FastAPI and SQLAlchemy from source again: seconds of CPU each. Let them cache bytecode.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
OUTBOUND_ALLOW = ("127.0.0.1/32", "hooks.example", "h.example", "prometheus.example")
"""What test servers let gates and webhooks reach: the local receivers and Prometheus the tests
run, and the reserved names some tests register without ever delivering to (by default Fader
reaches public addresses only; tests/test_outbound.py runs a server with that default)."""
ADMIN_PASSWORD = "correct-horse-battery-" + secrets.token_hex(4)


class LogSink(io.TextIOBase):
    """Every log line the servers of this session wrote (searched for secrets)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._lines.append(text)
        return len(text)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)


@dataclass(frozen=True)
class Server:
    backend: str
    url: str
    admin_token: str
    admin_password: str

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return self.client(self.admin_token)


LONGEST_FIRST = (
    "test_api_fuzz.py",
    "test_packaging.py",
    "test_durability.py",
    "test_concurrent_writes_property.py",
    "test_flagd_sync_replicas.py",
    "test_scheduler_isolation.py",
    "test_credentials_replicas.py",
    "test_readme.py",
    "test_rollout_e2e.py",
    "test_input_bounds_memory.py",
    "test_deploy_nginx.py",
    "test_flagd_sync_python.py",
    "test_sdk_faults.py",
    "test_db_backup.py",
    "test_flagd_sync_node.py",
)
"""Modules whose tests take the longest each (tens of seconds to minutes), longest first.

`make test` runs the suite on two xdist workers with ``--dist worksteal``: each starts on its
half of the collection, and one that runs out takes half of what the other has queued, from the
end. A long test that starts last leaves the other worker idle until it ends; so these start
first, whole modules at a time (their module fixtures are set up once)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest in order


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many cases the schemathesis fuzzing sent (`test_api_fuzz` records them)."""
    recorded = {
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == "schemathesis_cases"
    }
    for line in sorted(recorded):
        terminalreporter.write_line(f"schemathesis: {line}")


@pytest.fixture(scope="session")
def log_sink() -> LogSink:
    return LogSink()


_template: list[str] = []
"""This process's migrated template database, once made (one per xdist worker)."""


def _migrated_template() -> str:
    """A database at the schema's head, made once per test process and copied for each test.

    Migrating a new PostgreSQL database costs about a second of CPU (Alembic runs every
    migration); ``CREATE DATABASE ... TEMPLATE`` copies a migrated one in a fraction of that.
    Servers started on the copy find it at head and migrate nothing. It is dropped when the
    process's session ends (:func:`pytest_sessionfinish`).
    """
    if not _template:
        name = f"fader_template_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()  # a template must have no connections when it is copied
        _template.append(name)
    return _template[0]


def pytest_sessionfinish(session: pytest.Session) -> None:
    for name in _template:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def dedicated_postgres_database(*, empty: bool = False) -> Iterator[str]:
    """A PostgreSQL database with a unique name, dropped at the end (connections or not).

    It is already migrated to the schema's head (a copy of :func:`_migrated_template`) unless
    `empty`, for tests of the migrations themselves.
    """
    name = f"fader_test_{uuid.uuid4().hex[:12]}"
    template = "" if empty else f' TEMPLATE "{_migrated_template()}"'
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres_login_role(prefix: str, options: str = "") -> Iterator[str]:
    """A PostgreSQL login role with a unique name (`options`: more of ``CREATE ROLE``, e.g.
    ``CONNECTION LIMIT 1``); at the end its sessions are ended and it is dropped."""
    role = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN {options}')
    try:
        yield role
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database for a store-level test, once per backend: a SQLite file of the test's own,
    or this session's PostgreSQL database (tests there isolate by unique keys)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fader.db'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with dedicated_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of one test module, for modules that start servers of their own
    with their own FADER_ADMIN_TOKEN: on the session's database that would revoke the session
    server's token (a new FADER_ADMIN_TOKEN revokes the previous one)."""
    with dedicated_postgres_database() as url:
        yield url


def _serve(
    settings: Settings,
    log_sink: LogSink,
    *,
    http: str | type[asyncio.Protocol] = "auto",
    services: Services | None = None,
) -> tuple[uvicorn.Server, threading.Thread, str, FastAPI]:
    """Serve in a thread. `http`: uvicorn's protocol; ``fader serve`` runs
    :class:`~fader_server.http_protocol.TransportExposingProtocol`, under which SSE streams are
    written to directly, while the default exercises their plain-ASGI path. `services`: built
    by the test (e.g. over a clock it moves), else opened from `settings`."""
    app = create_app(settings, services, log_stream=log_sink)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, Nagle's algorithm and delayed ACKs add
    # ~40 ms to every response (uvicorn sets TCP_NODELAY only on sockets it binds itself).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        http=http,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}", app


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, log_sink: LogSink
) -> Iterator[Server]:
    backend: str = request.param
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    data_dir: Path = tmp_path_factory.mktemp(backend)
    database_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        outbound_allow=OUTBOUND_ALLOW,
    )
    with running_server(backend, settings, log_sink) as running:
        yield running


@contextmanager
def serving(
    settings: Settings, log_sink: LogSink, *, services: Services | None = None
) -> Iterator[str]:
    """A real server over `settings` for the block (its URL); then stopped and its store closed.
    `services`: built by the test (see :func:`_serve`), else opened from `settings`."""
    uv_server, thread, url, app = _serve(settings, log_sink, services=services)
    try:
        yield url
    finally:
        uv_server.should_exit = True
        thread.join(timeout=10)
        app.state.services.store.close()


@contextmanager
def running_server(
    backend: str, settings: Settings, log_sink: LogSink, *, services: Services | None = None
) -> Iterator[Server]:
    """:func:`serving`, as a :class:`Server` with the admin token and password of `settings`."""
    assert settings.admin_token is not None
    assert settings.admin_password is not None
    with serving(settings, log_sink, services=services) as url:
        yield Server(backend, url, settings.admin_token, settings.admin_password)


@dataclass
class Deployment:
    """Servers over one database: one on SQLite, two replicas on PostgreSQL (:func:`deployed`)."""

    backend: str
    admin_token: str
    urls: list[str]
    logs: LogSink

    def admin(self, replica: int = 0) -> httpx.Client:
        return httpx.Client(
            base_url=self.urls[replica],
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )


@contextmanager
def deployed(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    **settings: Any,
) -> Iterator[Deployment]:
    """A :class:`Deployment` for a module fixture parametrized by backend (``request.param``:
    sqlite or postgresql, on the module's own database), with `settings` beyond the admin's."""
    backend: str = request.param
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    database_url = (
        request.getfixturevalue("module_postgres_url") if backend == "postgresql" else None
    )
    configured = Settings(
        data_dir=tmp_path_factory.mktemp(f"{name}-{backend}"),
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        **settings,
    )
    sink = LogSink()
    with ExitStack() as stack:
        replicas = 2 if backend == "postgresql" else 1
        urls = [stack.enter_context(serving(configured, sink)) for _ in range(replicas)]
        yield Deployment(backend, token, urls, sink)


@contextmanager
def opened_store(request: pytest.FixtureRequest, sqlite_dir: Path) -> Iterator[Database]:
    """The store of a fixture parametrized by ``request.param`` (sqlite, in `sqlite_dir`;
    postgresql, on the module's own database; memory), closed after the block."""
    opened: Database
    if request.param == "sqlite":
        opened = SqlStore.open(f"sqlite:///{sqlite_dir / 'fader.db'}")
    elif request.param == "postgresql":
        opened = SqlStore.open(request.getfixturevalue("module_postgres_url"))
    else:
        opened = MemoryStore()
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.admin() as client:
        yield client


@pytest.fixture
def project(admin: httpx.Client) -> str:
    """A fresh project (development, staging, protected production) for one test."""
    key = unique("p")
    response = admin.post("/api/v1/projects", json={"key": key, "name": "Test project"})
    assert response.status_code == 201, response.text
    return key
