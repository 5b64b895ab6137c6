"""`fader users reset-password`: the operator's way back in when a password is lost.

It runs on the server's host against the database directly, like `fader db upgrade`, and finds
it the same way `fader serve` does (``--data-dir`` / ``--database-url`` / ``FADER_*``): no
server, no token, no API. Whoever can write that database controls the instance anyway; an API
endpoint for it would only be one more thing to attack.

The new password is generated and printed once, alone on standard output (so
``PW=$(fader users reset-password alice)`` works), unless ``--password-stdin`` reads it from the
first line of standard input (never from the command line, where `ps` and shell history would
see it). Every personal token of the user is revoked, console sessions included, because
whoever knew the old password may have made some; the user's failed-login counts are cleared,
and the reset is in the audit log. Exit status: 0 done; 1 no such user, an unusable password or
no database; 2 usage.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from fader_server.errors import FaderServerError
from fader_server.services.access import system_clock
from fader_server.services.bootstrap import PasswordReset
from fader_server.services.identity import IdentityService
from fader_server.settings import Settings
from fader_server.storage.sql.store import SqlStore

app = typer.Typer(help="User accounts, on the server's host.", no_args_is_help=True)

EXIT_FAILED = 1
EXIT_USAGE = 2


def _fail(message: str, status: int = EXIT_FAILED) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(status)


def _operator() -> str:
    """The audit log's actor: the operating-system account that ran the command."""
    try:
        return f"operator:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return "operator"


def _open(settings: Settings) -> SqlStore:
    """The server's database, as it is: never created or migrated by this command."""
    if settings.database_url is None:
        path = settings.data_dir / "fader.db"
        if not path.is_file():
            raise _fail(
                f"no Fader database at {path.resolve()}; pass the --data-dir or --database-url "
                "that `fader serve` uses"
            )
    try:
        store = SqlStore.open(
            settings.effective_database_url,
            upgrade=False,
            transaction_pooler=settings.database_pooler == "transaction",
        )
        current = store.migrations_current()
    except sa.exc.SQLAlchemyError as exc:
        raise _fail(f"cannot open the database: {getattr(exc, 'orig', None) or exc}") from exc
    if not current:
        store.close()
        raise _fail("the database schema is not at this version's revision; run `fader db upgrade`")
    return store


@app.command("reset-password")
def reset_password(
    username: Annotated[str, typer.Argument(help="Whose password to reset.")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the new password from the first line of stdin."
        ),
    ] = False,
    data_dir: Annotated[Path | None, typer.Option(help="[env FADER_DATA_DIR]")] = None,
    database_url: Annotated[str | None, typer.Option(help="[env FADER_DATABASE_URL]")] = None,
) -> None:
    """Set a new password (printed once), revoke the user's personal tokens and sessions."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _fail("--password-stdin: standard input has no password line", EXIT_USAGE)
    store = _open(Settings.load(data_dir=data_dir, database_url=database_url))
    try:
        identity = IdentityService(store, system_clock)
        reset: PasswordReset = identity.reset_password(username, password, actor=_operator())
    except FaderServerError as exc:
        raise _fail(exc.detail) from exc
    finally:
        store.close()
    sessions = "token" if reset.revoked_tokens == 1 else "tokens"
    typer.echo(
        f"reset the password of '{reset.username}'; revoked {reset.revoked_tokens} personal "
        f"{sessions} (sessions included)",
        err=True,
    )
    if reset.generated_password is not None:
        typer.echo("new password (shown only now):", err=True)
        typer.echo(reset.generated_password)
