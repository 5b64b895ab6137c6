"""A real server (uvicorn in a thread) whose database the test also writes usage rollups into,
for the usage API and CLI tests.

The rollups are written with the store's own `add_usage` / `add_debug_events`, through a second
store on the same database (as another replica would write them), at times the test chooses;
the server reads them with its own clock. Each module gets a server and a database of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import sqlalchemy as sa
from conftest import ADMIN_PASSWORD, LogSink, running_server
from server_api import create_flag, unique

from fader_engine.sketches import DistinctSketch
from fader_server.settings import Settings
from fader_server.storage.ports.usage import EVALUATIONS, UsageCount
from fader_server.storage.sql.store import SqlStore
from fader_server.storage.sql.tables import resources


@dataclass
class Deployment:
    url: str
    admin_token: str
    store: SqlStore

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30,
        )

    def new_project(self, *flags: str) -> str:
        """A project (development, staging, protected production) with these boolean flags."""
        key = unique("use")
        with self.client() as admin:
            created = admin.post("/api/v1/projects", json={"key": key, "name": "Usage"})
            assert created.status_code == 201, created.text
            for flag in flags:
                create_flag(admin, key, flag)
        return key

    def project_id(self, key: str) -> int:
        with self.store.read() as tx:
            project = tx.get_project(key)
        assert project is not None
        return project.id

    def backdate_flags(self, project: str, created_at: datetime) -> None:
        """Make every flag of `project` look created at `created_at` (the stale report's unused
        rule skips flags younger than its threshold)."""
        with self.store.engine.begin() as connection:
            connection.execute(
                sa.update(resources)
                .where(resources.c.project_id == self.project_id(project))
                .values(created_at=created_at)
            )

    def evaluated(
        self,
        project: str,
        at: datetime,
        *counts: UsageCount,
        environment: str = "production",
        key_kind: str = "server",
    ) -> None:
        """What one SDK summary received at `at` adds to the rollups."""
        with self.store.transaction() as tx:
            tx.add_usage(self.project_id(project), environment, key_kind, list(counts), at)


@contextmanager
def deployed(
    backend: str, data_dir: Path, database_url: str | None, log_sink: LogSink
) -> Iterator[Deployment]:
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
        admin_token=token,
        rollout_tick_seconds=0,
    )
    with running_server(backend, settings, log_sink) as running:
        store = SqlStore.open(settings.effective_database_url)
        try:
            yield Deployment(running.url, token, store)
        finally:
            store.close()


def contexts_of(keys: range) -> DistinctSketch:
    """The sketch an SDK sends for the targeting keys user-<n>, n in `keys`."""
    return DistinctSketch().update(f"user-{n}" for n in keys)


def evaluations(
    flag: str, count: int, variant: str = "on", keys: range | None = None
) -> UsageCount:
    """`count` evaluations of `flag` serving `variant` ("" for none), by the contexts `keys`."""
    contexts = None if keys is None else contexts_of(keys).to_bytes()
    return UsageCount(flag, EVALUATIONS, variant, count, contexts=contexts)
