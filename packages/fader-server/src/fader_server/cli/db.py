"""`fader db upgrade`: apply schema migrations without starting the server. (`fader db backup`
and `fader db restore`, for SQLite, live in :mod:`fader_server.cli.backup`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fader_server.cli.backup import backup_command, restore_command
from fader_server.settings import Settings
from fader_server.storage.sql import migrate
from fader_server.storage.sql.store import create_engine

app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.command("backup")(backup_command)
app.command("restore")(restore_command)


@app.command("upgrade")
def upgrade(
    data_dir: Annotated[Path | None, typer.Option(help="[env FADER_DATA_DIR]")] = None,
    database_url: Annotated[str | None, typer.Option(help="[env FADER_DATABASE_URL]")] = None,
) -> None:
    """Bring the database schema to the newest revision (safe to run repeatedly)."""
    settings = Settings.load(data_dir=data_dir, database_url=database_url)
    engine = create_engine(
        settings.effective_database_url,
        transaction_pooler=settings.database_pooler == "transaction",
    )
    try:
        migrate.upgrade(engine)
        typer.echo(f"database at revision {migrate.current_revision(engine)}")
    finally:
        engine.dispose()
