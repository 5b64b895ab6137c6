"""`fader db backup` copies a SQLite database while a real `fader serve` writes to it, and
`fader db restore` puts the copy in place for another server, only while nothing uses it.

The writer creates flags one after another, so the flags of any consistent copy are a prefix of
the ones created: every flag created before the backup began, and no gap. A restored copy is
read back through a second real server's API.
"""

from __future__ import annotations

import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from processes import FaderProcess, free_port
from server_api import create_flag, unique
from typer.testing import CliRunner, Result

from fader_server.cli.main import app

runner = CliRunner()
STARTUP_SECONDS = 180.0
"""Generous: on a loaded two-core machine a server start has been seen to take over 60 s."""
NO_ENV: dict[str, str | None] = {"FADER_DATA_DIR": None, "FADER_DATABASE_URL": None}


def fader_db(*args: str) -> Result:
    return runner.invoke(app, ["db", *args], env=NO_ENV)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


class FlagWriter:
    """Creates flags `f-0000`, `f-0001`... one at a time until stopped; `created` is how many
    the server confirmed (201) so far."""

    def __init__(self, server: FaderProcess, project: str) -> None:
        self.server = server
        self.project = project
        self.created = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with self.server.admin() as admin:
                while not self._stop.is_set():
                    create_flag(admin, self.project, key=f"f-{self.created:04d}")
                    self.created += 1
        except BaseException as exc:  # reported by stop()
            self.failure = exc

    @contextmanager
    def running(self) -> Iterator[FlagWriter]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=30)
        assert self.failure is None, self.failure


def flag_keys(server: FaderProcess, project: str) -> list[str]:
    keys: list[str] = []
    params: dict[str, str | int] = {"limit": 500}
    with server.admin() as admin:
        while True:
            listed = admin.get(f"/api/v1/projects/{project}/flags", params=params)
            assert listed.status_code == 200, listed.text
            keys += [str(flag["key"]) for flag in listed.json()["items"]]
            if not listed.json()["next_cursor"]:
                return sorted(keys)
            params["cursor"] = listed.json()["next_cursor"]


def new_server(tmp_path: Path, name: str, token: str) -> FaderProcess:
    return FaderProcess(
        port=free_port(),
        admin_token=token,
        log_path=tmp_path / f"{name}.log",
        data_dir=tmp_path / name,
    )


def flags_in(database: Path) -> set[str]:
    """The flag keys stored in a SQLite database file, read directly."""
    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT key FROM resources WHERE type = 'flag'").fetchall()
    return {str(row[0]) for row in rows}


def test_backup_of_a_live_server_restores_into_a_new_server(tmp_path: Path) -> None:
    token = "fdr_admin_" + secrets.token_urlsafe(32)
    live = new_server(tmp_path, "live", token)
    live.start(timeout=STARTUP_SECONDS)
    project = unique("backup")
    try:
        with live.admin() as admin:
            created = admin.post("/api/v1/projects", json={"key": project, "name": "Backup"})
            assert created.status_code == 201, created.text
        dest = tmp_path / "backups" / "fader.db"
        dest.parent.mkdir()
        with FlagWriter(live, project).running() as writer:
            while writer.created < 5 and writer.failure is None:  # writes are under way
                threading.Event().wait(0.05)
            before = writer.created
            backed_up = ok(fader_db("backup", str(dest), "--data-dir", str(live.data_dir)))
            after = writer.created
            # A second backup while writes go on: refused without --force, DEST untouched.
            size = dest.stat().st_size
            refused = fader_db("backup", str(dest), "--data-dir", str(live.data_dir))
            assert refused.exit_code == 2
            assert "--force" in refused.stderr
            assert dest.stat().st_size == size
            # Restoring over the live database is refused: the server has it open.
            in_use = fader_db("restore", str(dest), "--data-dir", str(live.data_dir), "--force")
            assert in_use.exit_code == 1
            assert "in use" in in_use.stderr
            # The writer had a request in flight all along (the backup may take less time than
            # one), and the server goes on writing after the backup and the refused restore.
            deadline = time.monotonic() + 60
            while writer.created <= after + 1 and writer.failure is None:
                assert time.monotonic() < deadline, "the server stopped writing"
                threading.Event().wait(0.05)
        assert f"to {dest}" in backed_up.stdout
        assert sorted(p.name for p in dest.parent.iterdir()) == ["fader.db"]  # no side files
        assert stat.S_IMODE(dest.stat().st_mode) == 0o600  # it holds password and token hashes
        with sqlite3.connect(f"{dest.as_uri()}?mode=ro", uri=True) as copy:
            assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert len(flag_keys(live, project)) == writer.created  # the live server is unharmed
    finally:
        live.kill()

    restored_dir = tmp_path / "restored"
    restored = ok(fader_db("restore", str(dest), "--data-dir", str(restored_dir)))
    assert "schema revision" in restored.stdout
    second = new_server(tmp_path, "restored", token)
    second.start(timeout=STARTUP_SECONDS)
    try:
        keys = flag_keys(second, project)
        # Consistent: a prefix of the creations, holding every flag made before it began.
        assert keys == [f"f-{n:04d}" for n in range(len(keys))]
        assert before <= len(keys) <= after + 1
        assert second.errors() == []
    finally:
        second.kill()

    # Over the stopped live database: only with --force, and the replaced one is kept aside.
    target = live.data_dir
    assert fader_db("restore", str(dest), "--data-dir", str(target)).exit_code == 2
    done = ok(fader_db("restore", str(dest), "--data-dir", str(target), "--force"))
    (aside,) = target.glob("fader.db.before-restore-*")
    assert str(aside) in done.stdout
    assert len(flags_in(aside)) == writer.created
    assert flags_in(target / "fader.db") == set(keys)


def test_backup_and_restore_refuse_what_they_cannot_do_safely(tmp_path: Path) -> None:
    postgres = fader_db("backup", str(tmp_path / "x.db"), "--database-url", "postgresql://h/db")
    assert postgres.exit_code == 2
    assert "pg_dump" in postgres.stderr
    missing = fader_db("backup", str(tmp_path / "x.db"), "--data-dir", str(tmp_path / "none"))
    assert missing.exit_code == 1
    assert "no Fader database" in missing.stderr
    assert not (tmp_path / "none").exists()  # nothing created while looking
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    rejected = fader_db("restore", str(garbage), "--data-dir", str(tmp_path / "new"))
    assert rejected.exit_code == 1
    assert "not a usable Fader backup" in rejected.stderr or "not a Fader" in rejected.stderr
    assert not (tmp_path / "new" / "fader.db").exists()
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as other:
        other.execute("CREATE TABLE t (x)")
    assert fader_db("restore", str(foreign), "--data-dir", str(tmp_path / "new")).exit_code == 1
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == []  # no partial files
    # A write-ahead log without its database would be replayed into the restored one.
    ok(fader_db("upgrade", "--data-dir", str(tmp_path / "made")))
    made = tmp_path / "made.db"
    ok(fader_db("backup", str(made), "--data-dir", str(tmp_path / "made")))
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "fader.db-wal").write_bytes(b"\0" * 64)
    stray = fader_db("restore", str(made), "--data-dir", str(tmp_path / "stray"))
    assert stray.exit_code == 1
    assert "fader.db-wal" in stray.stderr
    assert not (tmp_path / "stray" / "fader.db").exists()
