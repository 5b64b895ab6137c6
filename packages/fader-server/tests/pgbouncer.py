"""A PgBouncer of the test's own, in transaction-pooling mode, in front of one test database.

Debian's ``pgbouncer`` package provides the binary (``make system-packages``); its service is
never used. Each bouncer gets a generated configuration in a temporary directory and a free
port, logs to a file there, and is stopped when the block ends. PgBouncer refuses to run as
root, so as root it is told to switch to the ``postgres`` user (``-u``): the directory is made
readable for that user, and the log is a file the test opened, inherited by the process.

``auth_type = any`` with ``user=postgres`` in the database entry: the local PostgreSQL trusts
its clients, and credentials are not what these tests are about. The pool is small
(:data:`POOL_SIZE` server connections) so that the replicas' many client connections really do
share server connections, transaction by transaction: session state that leaked out of a
transaction would meet another client's next one.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from processes import free_port, terminate

PGBOUNCER = Path("/usr/sbin/pgbouncer")
POOL_SIZE = 4
"""Server connections per database and user: far fewer than the replicas' client connections."""


@dataclass(frozen=True)
class Bouncer:
    port: int
    database: str
    log: Path

    @property
    def url(self) -> str:
        """The database through the bouncer, as ``FADER_DATABASE_URL`` takes it."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def show(self, what: str) -> list[dict[str, Any]]:
        """A ``SHOW`` of PgBouncer's admin console (``CLIENTS``, ``SERVERS``, ``POOLS``...), as
        rows by column name. The console speaks the simple query protocol only."""
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/pgbouncer",
            autocommit=True,
            prepare_threshold=None,
        ) as conn:
            cursor = conn.cursor()
            cursor.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_pgbouncer(database: str) -> Iterator[Bouncer]:
    """PgBouncer on a free port of 127.0.0.1, pooling `database` of the local PostgreSQL by
    transaction, until the block ends."""
    with tempfile.TemporaryDirectory(prefix="fader-pgbouncer-") as directory:
        root = Path(directory)
        root.chmod(0o755)  # the postgres user must read it when PgBouncer reloads
        port = free_port()
        config = root / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"{database} = host=127.0.0.1 port=5432 dbname={database} user=postgres\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {port}\n"
            "unix_socket_dir =\n"
            "auth_type = any\n"
            "admin_users = postgres\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {POOL_SIZE}\n"
            "max_client_conn = 500\n"
        )
        config.chmod(0o644)
        bouncer = Bouncer(port, database, root / "pgbouncer.log")
        command = [str(PGBOUNCER), str(config)]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "postgres"]
        with bouncer.log.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(bouncer, process)
            yield bouncer
        finally:
            terminate(process)


def _wait_ready(bouncer: Bouncer, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until a query through the bouncer answers (or it exits, or `timeout` seconds pass)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(bouncer.url, prepare_threshold=None, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start:\n{bouncer.output()}") from None
            time.sleep(0.1)
