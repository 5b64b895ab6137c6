"""`fader db backup` and `fader db restore`: copy a live SQLite database safely, put one back.

Why not ``cp``: in WAL mode the newest commits live in ``fader.db-wal`` until a checkpoint, so a
copy of ``fader.db`` alone loses them, and copying both files while the server writes can catch
them torn. SQLite's online backup API copies through the database's own locking, in one step,
so the copy is the database exactly as of one commit; in WAL mode that read blocks no writer, so
the server keeps serving and writing meanwhile.

A backup is written beside DEST under a temporary name, checked (``PRAGMA integrity_check``),
turned into one self-contained file (journal mode ``DELETE``: no ``-wal`` to forget), flushed,
and only then given its name. An interrupted backup never leaves a half file under DEST, and an
existing DEST is replaced only with ``--force``.

A restore runs only while no process has the database open. In WAL mode every connection that
has read the database holds a shared lock on it, and leaving WAL mode needs an exclusive one, so
``PRAGMA journal_mode=DELETE`` succeeding on the current database proves that nobody else is
connected (a running ``fader serve`` keeps its pooled connections open for as long as it runs).
The backup is copied, checked and migrated to this version's schema under a temporary name, so
a damaged backup, or one from a newer Fader, never replaces a working database; the database it
replaces is kept beside it.

PostgreSQL has tools of its own for this (``pg_dump``, ``pg_restore``; docs/deploy.md): both
commands refuse a ``--database-url`` and say so. Exit status: 0 done; 1 failed (nothing was
changed); 2 usage (DEST exists without ``--force``, PostgreSQL).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fader_server.settings import Settings

EXIT_FAILED = 1
EXIT_USAGE = 2
DATABASE_FILE = "fader.db"
BUSY_TIMEOUT_SECONDS = 30.0
"""How long the backup waits for a lock it cannot get at once (a checkpoint in progress)."""
IN_USE_TIMEOUT_SECONDS = 1.0
"""How long a restore waits before concluding that another process holds the database."""


class BackupError(Exception):
    """A backup or restore that cannot go ahead; `status` is the exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


def backup_command(
    dest: Annotated[Path, typer.Argument(help="File to write the backup to.")],
    force: Annotated[bool, typer.Option("--force", help="Replace DEST if it exists.")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="[env FADER_DATA_DIR]")] = None,
    database_url: Annotated[str | None, typer.Option(help="[env FADER_DATABASE_URL]")] = None,
) -> None:
    """Copy the SQLite database to DEST, safely while the server runs and writes."""
    settings = Settings.load(data_dir=data_dir, database_url=database_url)
    try:
        source = _sqlite_path(settings)
        revision, size = backup(source, dest, force=force)
    except BackupError as exc:
        raise _fail(str(exc), exc.status) from exc
    typer.echo(f"backed up {source} (schema revision {revision}, {size} bytes) to {dest}")


def restore_command(
    backup_file: Annotated[
        Path, typer.Argument(metavar="BACKUP", help="A file written by `fader db backup`.")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace the existing database (it is kept aside).")
    ] = False,
    data_dir: Annotated[Path | None, typer.Option(help="[env FADER_DATA_DIR]")] = None,
    database_url: Annotated[str | None, typer.Option(help="[env FADER_DATABASE_URL]")] = None,
) -> None:
    """Put a backup in place as the SQLite database; only while no server is running on it."""
    settings = Settings.load(data_dir=data_dir, database_url=database_url)
    try:
        target = _sqlite_path(settings, must_exist=False)
        revision, kept = restore(backup_file, target, force=force)
    except BackupError as exc:
        raise _fail(str(exc), exc.status) from exc
    typer.echo(f"restored {backup_file} to {target} (schema revision {revision})")
    if kept is not None:
        typer.echo(f"the database it replaced is kept as {kept}")


def backup(source: Path, dest: Path, *, force: bool = False) -> tuple[str, int]:
    """Copy the database at `source` to `dest`; returns its schema revision and size."""
    if dest.is_dir():
        raise BackupError(f"{dest} is a directory; name the file to write", EXIT_USAGE)
    if dest.exists() and not force:
        raise BackupError(f"{dest} exists; pass --force to replace it", EXIT_USAGE)
    if not dest.parent.is_dir():
        raise BackupError(f"the directory {dest.parent} does not exist")
    with _temporary_beside(dest) as partial:
        try:
            with contextlib.closing(_connect(source, mode="rw")) as origin:
                revision = _revision(origin, source)
                with contextlib.closing(sqlite3.connect(partial)) as copy:
                    # One step (pages=-1): a single read transaction, so one consistent commit.
                    origin.backup(copy, pages=-1)
                    _check(copy, "the copy")
                    copy.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:
            raise BackupError(f"backing up {source} failed: {exc}") from exc
        _flush(partial)
        _publish(partial, dest, replace=force)
    return revision, dest.stat().st_size


def restore(backup_file: Path, target: Path, *, force: bool = False) -> tuple[str, Path | None]:
    """Put `backup_file` in place at `target`; returns the schema revision it is at now and
    where the database it replaced was kept (None when there was none)."""
    if not backup_file.is_file():
        raise BackupError(f"no backup at {backup_file}")
    if target.exists() and not force:
        raise BackupError(
            f"a database exists at {target}; pass --force to replace it (it is kept aside)",
            EXIT_USAGE,
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        _ensure_unused(target)
    for leftover in (Path(f"{target}-wal"), Path(f"{target}-shm")):
        # A write-ahead log without its database, or left by a process still running: SQLite
        # would replay it into the restored file.
        if leftover.exists():
            raise BackupError(f"{leftover} is there; is a server running on {target}?")
    with _temporary_beside(target) as staged:
        try:
            with contextlib.closing(_connect(backup_file, mode="ro")) as source:
                _revision(source, backup_file)
                with contextlib.closing(sqlite3.connect(staged)) as copy:
                    source.backup(copy, pages=-1)
                    _check(copy, "the backup")
        except sqlite3.Error as exc:
            raise BackupError(f"{backup_file} is not a usable Fader backup: {exc}") from exc
        revision = _upgrade(staged)
        _flush(staged)
        _owned_like(staged, target.parent)
        kept = None
        if target.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            kept = target.with_name(f"{target.name}.before-restore-{stamp}")
            os.link(target, kept)  # both names stay valid until the swap below
        _publish(staged, target, replace=True)
    return revision, kept


def _sqlite_path(settings: Settings, *, must_exist: bool = True) -> Path:
    if settings.database_url is not None:
        raise BackupError(
            "this database is PostgreSQL: back it up with pg_dump and restore it with "
            "pg_restore (docs/deploy.md)",
            EXIT_USAGE,
        )
    path = (settings.data_dir / DATABASE_FILE).resolve()
    if must_exist and not path.is_file():
        raise BackupError(
            f"no Fader database at {path}; pass the --data-dir that `fader serve` uses"
        )
    return path


def _connect(path: Path, *, mode: str) -> sqlite3.Connection:
    """A connection that never creates a missing file (``mode=rw`` or ``ro``)."""
    if not path.is_file():
        raise BackupError(f"no database at {path}")
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)


def _revision(connection: sqlite3.Connection, path: Path) -> str:
    """The Alembic revision recorded in a Fader database; anything else is refused."""
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a Fader database ({exc})") from exc
    if row is None:
        raise BackupError(f"{path} is not a Fader database (no schema revision)")
    return str(row[0])


def _check(connection: sqlite3.Connection, what: str) -> None:
    problems = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"{what} failed SQLite's integrity check: {'; '.join(problems[:5])}")


def _ensure_unused(target: Path) -> None:
    """Refuse when another process has `target` open (see the module docstring)."""
    try:
        with contextlib.closing(
            sqlite3.connect(target, timeout=IN_USE_TIMEOUT_SECONDS, isolation_level=None)
        ) as probe:
            mode = probe.execute("PRAGMA journal_mode=DELETE").fetchone()
    except sqlite3.OperationalError as exc:
        raise BackupError(
            f"{target} is in use (is `fader serve` running on it?); stop every server that "
            f"uses it, then restore ({exc})"
        ) from exc
    if mode is None or str(mode[0]).lower() != "delete":
        raise BackupError(f"{target} is in use (is `fader serve` running on it?); stop it first")


def _upgrade(path: Path) -> str:
    """Bring a staged copy to this version's schema, as `fader serve` would at start, so a
    backup from a newer Fader fails here instead of after it replaced a working database."""
    from fader_server.storage.sql import migrate  # noqa: PLC0415 - heavy; restore only
    from fader_server.storage.sql.store import create_engine  # noqa: PLC0415 - as above

    engine = create_engine(f"sqlite:///{path}")
    try:
        migrate.upgrade(engine)
        revision = migrate.current_revision(engine)
    except Exception as exc:  # alembic reports an unknown revision with its own errors
        raise BackupError(
            f"the backup cannot be brought to this Fader's schema (was it made by a newer "
            f"version?): {exc}"
        ) from exc
    finally:
        engine.dispose()
    return str(revision)


@contextlib.contextmanager
def _temporary_beside(final: Path) -> Iterator[Path]:
    """A fresh empty file in `final`'s directory (same file system: the rename is atomic),
    removed with its SQLite side files unless it was published. It is created readable by its
    owner only (``mkstemp``), and SQLite writes into it as it is: a database holds password and
    token hashes, so neither a backup nor a restored database is ever readable by others."""
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(handle)
    path = Path(name)
    try:
        yield path
    finally:
        for leftover in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)


def _owned_like(path: Path, directory: Path) -> None:
    """Run as root, give the restored database to the owner of its directory (the service
    user's state directory): a root-owned file there would stop the server from opening it."""
    if os.geteuid() == 0:
        owner = directory.stat()
        os.chown(path, owner.st_uid, owner.st_gid)


def _flush(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def _publish(staged: Path, final: Path, *, replace: bool) -> None:
    """Give `staged` its final name: atomically, and without replacing anything unless told."""
    if replace:
        staged.replace(final)
    else:
        try:
            os.link(staged, final)  # fails if `final` appeared meanwhile: never clobbered
        except FileExistsError as exc:
            raise BackupError(f"{final} exists; pass --force to replace it", EXIT_USAGE) from exc
        staged.unlink()
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _fail(message: str, status: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(status)
