"""Fader behind PgBouncer in transaction-pooling mode (docs/deploy.md, "PgBouncer in
transaction mode").

Two `fader serve` replicas start together on a new, empty database with
``FADER_DATABASE_URL`` through a PgBouncer of the test's own (``pool_mode = transaction``, a
pool of four server connections for both), ``FADER_DATABASE_POOLER=transaction`` and
``FADER_LISTEN_URL`` straight to PostgreSQL. So the migrations run through the pooler, both
replicas at once; every write takes its project's advisory lock through it; and psycopg's
server-side prepared statements, which would meet the wrong server connection, must be off.

Checked: concurrent If-Match writes through both replicas each either commit as the next
version or get 412, nothing is lost (every writer's tag is in the flag at the end) and every
commit has its audit entry; a change written on one replica reaches an SDK stream on the other
(its listener bypasses the pooler); both replicas' background jobs run through the pooler
(ticking every 0.2 s), and each due scheduled change is applied once; and a store told it is
behind a transaction pooler but given no listen URL refuses to LISTEN (so a replica refuses to
start) rather than miss other replicas' changes and key revocations.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import PG_ADMIN_URL, dedicated_postgres_database
from pgbouncer import PGBOUNCER, POOL_SIZE, Bouncer, running_pgbouncer
from processes import FaderProcess, free_port
from server_api import BOOLEAN_FLAG, unique
from sse import open_stream

from fader_server.settings import Settings

pytestmark = pytest.mark.skipif(
    not PGBOUNCER.is_file(),
    reason="needs Debian's pgbouncer (/usr/sbin/pgbouncer): `make system-packages`",
)

WRITERS = 8
WRITES_EACH = 10
DEADLINE = 180.0
"""Seconds the writers have for all their writes: generous, for a loaded two-core machine."""
TICKS = (
    "FADER_ROLLOUT_TICK_SECONDS",
    "FADER_SCHEDULED_CHANGES_TICK_SECONDS",
    "FADER_ESCALATION_SECONDS",
)
PROPOSAL = {
    "problem": "the old checkout loses carts",
    "change": "serve the new checkout",
    "alternatives": "fix the old one",
    "rollback": "turn the flag off",
}


@dataclass(frozen=True)
class Deployment:
    bouncer: Bouncer
    replicas: tuple[FaderProcess, FaderProcess]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Two replicas started at once on an empty database, through one bouncer."""
    tmp = tmp_path_factory.mktemp("pgbouncer")
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    with dedicated_postgres_database(empty=True) as url:
        database = url.rsplit("/", 1)[1]
        with running_pgbouncer(database) as bouncer, pytest.MonkeyPatch.context() as env:
            env.setenv("FADER_DATABASE_POOLER", "transaction")
            env.setenv("FADER_LISTEN_URL", f"postgresql://postgres@127.0.0.1:5432/{database}")
            for job in TICKS:  # the background jobs' queries run through the bouncer too
                env.setenv(job, "0.2")
            started = [
                FaderProcess(
                    port=free_port(),
                    admin_token=token,
                    log_path=tmp / f"replica-{n}.log",
                    data_dir=tmp / f"replica-{n}",
                    database_url=bouncer.url,
                )
                for n in (1, 2)
            ]
            failures: list[BaseException] = []

            def start(replica: FaderProcess) -> None:
                try:
                    replica.start(timeout=180)
                except BaseException as exc:  # reported below, with the replica's output
                    failures.append(exc)

            starting = [threading.Thread(target=start, args=(r,)) for r in started]
            for thread in starting:
                thread.start()
            for thread in starting:
                thread.join()
            try:
                assert not failures, (failures, bouncer.output())
                yield Deployment(bouncer, (started[0], started[1]))
                for replica in started:
                    assert replica.errors() == [], replica.output()
            finally:
                for replica in started:
                    replica.kill()


def test_the_replicas_migrated_and_query_through_the_bouncer(deployment: Deployment) -> None:
    bouncer, replicas = deployment.bouncer, deployment.replicas
    for replica in replicas:
        with replica.admin() as admin:
            assert admin.get("/api/v1/projects").status_code == 200
    clients = [c for c in bouncer.show("CLIENTS") if c["database"] == bouncer.database]
    assert clients, "no replica connection goes through the bouncer"
    servers = [s for s in bouncer.show("SERVERS") if s["database"] == bouncer.database]
    assert len(servers) <= POOL_SIZE
    deadline = time.monotonic() + DEADLINE
    while _listeners(bouncer.database) != len(replicas):
        assert time.monotonic() < deadline, "each replica LISTENs on a direct connection"
        time.sleep(0.1)


def test_concurrent_if_match_writes_lose_nothing(deployment: Deployment) -> None:
    replicas = deployment.replicas
    project = unique("pgb")
    with replicas[0].admin() as admin:
        assert admin.post("/api/v1/projects", json={"key": project, "name": "P"}).status_code == 201
        created = admin.post(
            f"/api/v1/projects/{project}/flags", json={**BOOLEAN_FLAG, "key": "f", "tags": []}
        )
        assert created.status_code == 201, created.text
    url = f"/api/v1/projects/{project}/flags/f"
    committed: list[int] = []
    refused: list[int] = []
    problems: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + DEADLINE

    def write(writer: int) -> None:
        replica = replicas[writer % len(replicas)]
        with replica.admin() as admin:
            for n in range(WRITES_EACH):
                tag = f"w{writer}-{n}"
                while time.monotonic() < deadline:
                    current = admin.get(url)
                    if current.status_code != 200:
                        problems.append(f"GET {current.status_code}: {current.text}")
                        return
                    body = _flag_body(current.json(), tag)
                    etag = current.headers["ETag"]
                    answer = admin.put(url, json=body, headers={"If-Match": etag})
                    if answer.status_code == 200:
                        version = int(answer.headers["ETag"].strip('"'))
                        if version != int(etag.strip('"')) + 1:
                            problems.append(f"{etag} was followed by {version}")
                        with lock:
                            committed.append(version)
                        break
                    if answer.status_code != 412:
                        problems.append(f"PUT {answer.status_code}: {answer.text}")
                        return
                    with lock:
                        refused.append(writer)
                else:
                    problems.append(f"writer {writer} ran out of time")
                    return

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    total = WRITERS * WRITES_EACH
    assert sorted(committed) == list(range(2, total + 2)), "one commit per version, no gaps"
    with replicas[1].admin() as admin:
        final = admin.get(url)
        assert final.headers["ETag"] == f'"{total + 1}"'
        expected = {f"w{w}-{n}" for w in range(WRITERS) for n in range(WRITES_EACH)}
        assert set(final.json()["tags"]) == expected, "a write was lost"
        audited = _audit(admin, project, "f")
    updates = sorted(e["version"] for e in audited if e["action"] == "update")
    assert updates == list(range(2, total + 2)), "every commit audited once"


def test_a_change_on_one_replica_reaches_a_stream_on_the_other(deployment: Deployment) -> None:
    writer, reader = deployment.replicas
    project = unique("pgbs")
    with writer.admin() as admin:
        assert admin.post("/api/v1/projects", json={"key": project, "name": "S"}).status_code == 201
        flag = {**BOOLEAN_FLAG, "key": "f"}
        assert admin.post(f"/api/v1/projects/{project}/flags", json=flag).status_code == 201
        key = admin.post(
            "/api/v1/tokens",
            json={"kind": "server", "name": "k", "project": project, "environment": "staging"},
        ).json()["token"]
        with open_stream(reader.url, key, timeout=60) as stream:
            assert stream.next().event == "snapshot"
            toggled = admin.post(
                f"/api/v1/projects/{project}/environments/staging/flags/f/toggle",
                json={"enabled": True},
            )
            assert toggled.status_code == 200, toggled.text
            change = stream.next()
            assert change.json()["document"]["flags"]["f"]["enabled"] is True


def test_both_replicas_schedulers_apply_each_due_change_once(deployment: Deployment) -> None:
    """The scheduled-changes job runs on both replicas every 0.2 s through the bouncer; each
    due request is applied by one of them, under the project's transaction-scoped lock."""
    project = unique("pgbc")
    with deployment.replicas[0].admin() as admin:
        assert admin.post("/api/v1/projects", json={"key": project, "name": "C"}).is_success
        base = f"/api/v1/projects/{project}"
        keys = [f"f{i}" for i in range(6)]
        for key in keys:
            flag = {**BOOLEAN_FLAG, "key": key}
            assert admin.post(f"{base}/flags", json=flag).status_code == 201
        at = datetime.now(UTC) + timedelta(seconds=5)
        ids = []
        for key in keys:
            op = {"kind": "flag_config", "environment": "development", "flag": key, "enabled": True}
            body = {
                "title": key,
                "proposal": PROPOSAL,
                "operations": [op],
                "apply_at": at.isoformat(),
            }
            created = admin.post(f"{base}/change-requests", json=body)
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        deadline = time.monotonic() + DEADLINE
        for rid in ids:
            while admin.get(f"{base}/change-requests/{rid}").json()["status"] != "applied":
                assert time.monotonic() < deadline, f"request {rid} was not applied"
                time.sleep(0.1)
        audit = admin.get(f"{base}/audit", params={"limit": 100}).json()["items"]
    applied = [e["entity_key"] for e in audit if e["action"] == "applied"]
    assert sorted(applied) == sorted(str(r) for r in ids), "each request applied once"
    configs = [e["entity_key"] for e in audit if e["entity_type"] == "config"]
    assert sorted(configs) == keys, "one write per flag"


def test_behind_a_transaction_pooler_a_replica_without_listen_url_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FADER_DATABASE_POOLER", "transaction")
    monkeypatch.delenv("FADER_LISTEN_URL", raising=False)
    with dedicated_postgres_database() as url:
        replica = FaderProcess(
            port=free_port(),
            admin_token="fdr_admin_" + secrets.token_urlsafe(32),
            log_path=tmp_path / "replica.log",
            data_dir=tmp_path / "replica",
            database_url=url,
        )
        with pytest.raises(RuntimeError, match="did not become ready"):
            replica.start(timeout=120)
        assert "FADER_DATABASE_POOLER=transaction needs FADER_LISTEN_URL" in replica.output()
        assert "Traceback" not in replica.output()  # one clear line, before anything is made


def test_the_pooler_setting_is_read_and_checked() -> None:
    assert Settings.load({}).database_pooler == "none"
    assert Settings.load({"FADER_DATABASE_POOLER": "Transaction"}).database_pooler == "transaction"
    with pytest.raises(ValueError, match="FADER_DATABASE_POOLER"):
        Settings.load({"FADER_DATABASE_POOLER": "statement"})


def _listeners(database: str) -> int:
    """Sessions on `database` that PostgreSQL sees from Fader's listeners (not the bouncer's)."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'fader-listener'",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


def _flag_body(current: dict[str, Any], tag: str) -> dict[str, Any]:
    """The flag as read, with `tag` added: what a writer means to change."""
    fields = ("name", "description", "kind", "type", "variants", "owner_team")
    return {**{f: current[f] for f in fields}, "tags": [*current["tags"], tag]}


def _audit(admin: httpx.Client, project: str, flag: str) -> list[dict[str, Any]]:
    """Every audit entry of `flag`, all pages."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"entity_type": "flag", "entity_key": flag, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = admin.get(f"/api/v1/projects/{project}/audit", params=params).json()
        entries += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries
