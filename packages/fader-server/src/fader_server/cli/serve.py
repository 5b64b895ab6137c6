"""`fader serve`: run the server (uvicorn) over SQLite or PostgreSQL.

The server's modules (FastAPI, SQLAlchemy, uvicorn...) are imported when the server starts, not
when this module is, so `fader serve --help` answers at once. The port is checked before the
database is touched: a `fader serve` that cannot listen stops without creating the first user
or seeding the demo project (whose password it would print for a server that never ran).

With ``--workers N`` (N > 1) this process does the same first steps, then hands the port to N
worker processes (:mod:`.serve_workers`); if one of them cannot start, all stop and this exits 1
with the worker's reason (a SIGTERM or Ctrl-C still exits 0).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from fader_server.settings import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, Settings

EXIT_FAILED = 1


def serve_command(
    host: Annotated[str, typer.Option(envvar="FADER_HOST", help="Address to bind.")] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option(envvar="FADER_PORT", min=1, max=65535, help="Port to listen on.")
    ] = DEFAULT_PORT,
    data_dir: Annotated[
        Path,
        typer.Option(
            envvar="FADER_DATA_DIR", help="SQLite data directory (without --database-url)."
        ),
    ] = Path(DEFAULT_DATA_DIR),
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="FADER_DATABASE_URL",
            help="PostgreSQL instead of SQLite, e.g. postgresql://user@host/db.",
            show_default=False,
        ),
    ] = None,
    demo_data: Annotated[
        bool,
        typer.Option(
            "--demo", envvar="FADER_DEMO", help="Seed a demo project once (FADER_DEMO=1)."
        ),
    ] = False,
    flagd_sync_port: Annotated[
        int | None,
        typer.Option(
            help="serve flagd's gRPC flag sync for flagd in-process providers on this port "
            "(off by default) [env FADER_FLAGD_SYNC_PORT; bind address FADER_FLAGD_SYNC_HOST]"
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            envvar="FADER_WORKERS",
            min=1,
            help="Server processes sharing the port (about one per core); each is a replica.",
        ),
    ] = 1,
) -> None:
    """Run the Fader server: admin API on /api/v1, docs on /docs."""
    try:
        settings = Settings.load(
            host=host,
            port=port,
            data_dir=data_dir,
            database_url=database_url,
            demo=demo_data or None,
            flagd_sync_port=flagd_sync_port,
        )
    except ValueError as exc:  # a FADER_* variable that does not parse: say which, one line
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from exc
    settings = dataclasses.replace(settings, workers=workers)
    if workers > 1 and settings.flagd_sync_port is not None:
        # Workers share the HTTP port through the one socket uvicorn binds; flag sync binds
        # its own in each worker, without SO_REUSEPORT (so that a port in use is an error),
        # and the second worker could not bind it.
        typer.echo(
            "error: --flagd-sync-port (FADER_FLAGD_SYNC_PORT) needs --workers 1: serve flagd "
            "sync from a single-worker server (docs/deploy.md, Several workers).",
            err=True,
        )
        raise typer.Exit(EXIT_FAILED)
    if workers > 1 and not settings.sqlite_watch_seconds > 0:
        typer.echo("error: FADER_SQLITE_WATCH_SECONDS must be a positive number.", err=True)
        raise typer.Exit(EXIT_FAILED)
    if settings.database_pooler == "transaction" and settings.listen_url is None:
        # Checked here, before anything is created, as well as by the store (its own guard).
        typer.echo(
            "error: FADER_DATABASE_POOLER=transaction needs FADER_LISTEN_URL: a connection to "
            "PostgreSQL that bypasses the pooler, for LISTEN (docs/deploy.md, PgBouncer in "
            "transaction mode).",
            err=True,
        )
        raise typer.Exit(EXIT_FAILED)
    _check_port_free(settings.host, settings.port)
    import uvicorn  # noqa: PLC0415 - the server's imports, only when it runs (module docstring)

    from fader_server.app import create_app, open_services  # noqa: PLC0415 - as above
    from fader_server.runtime import gc_policy  # noqa: PLC0415 - as above
    from fader_server.runtime.oidc import load_config  # noqa: PLC0415 - as above
    from fader_server.services import demo  # noqa: PLC0415 - as above
    from fader_server.services.sso_providers import SsoConfigError  # noqa: PLC0415 - as above

    try:
        load_config(settings.sso_config, settings.sso_secrets, local_login=settings.local_login)
    except SsoConfigError as exc:
        typer.echo(f"error: single sign-on: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from exc

    services, first_run = open_services(settings)
    url = f"http://{settings.host}:{settings.port}"
    if first_run is not None:
        if first_run.generated_password:
            # Printed once, to the terminal only: never to the log.
            typer.echo(
                f"Created user '{first_run.username}' with password: "
                f"{first_run.generated_password}\n"
                "Save it now; it will not be shown again."
            )
        else:
            typer.echo(f"Created user '{first_run.username}' with FADER_ADMIN_PASSWORD.")
    if settings.demo and demo.seed(services):
        typer.echo("Seeded the demo project 'demo' (development, staging, production).")
    log_in = (
        f"Log in: curl -X POST {url}/api/v1/auth/login -H 'content-type: application/json' "
        '-d \'{"username": "admin", "password": "..."}\''
        if settings.local_login
        else f"Password login is off: sign in at {url}/login or with `fader login --sso`"
    )
    typer.echo(f"Fader is listening on {url}  (API docs: {url}/docs)\n{log_in}")
    # Open SDK streams never end by themselves: give them a few seconds, then close them
    # (SDKs reconnect, to another replica if this one is going away).
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 3,
        # Idle keep-alive connections stay open longer than SDKs keep them (httpx: 5 s), so a
        # summary posted every 5 s never goes out on a connection the server is closing at
        # that moment (uvicorn's default is 5 s too: the request would die with a reset).
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        # No `Server: uvicorn` on every response: it tells a scanner what to probe for, and
        # no client needs it.
        "server_header": False,
    }
    if settings.workers == 1:
        app = create_app(settings, services)  # which configures logging: before any warning
        gc_policy.apply()
        uvicorn.run(app, http=_http_protocol(), **options)
        return
    from fader_server import logs  # noqa: PLC0415 - as above
    from fader_server.cli.serve_workers import (  # noqa: PLC0415 - as above
        run_workers,
        worker_environment,
    )

    # Each worker opens its own services; this process only supervises them.
    services.identity.token_use.close()
    services.store.close()
    logs.configure(json=settings.log_json)
    os.environ.update(worker_environment(settings))
    failure = run_workers(settings.workers, {**options, "http": _http_protocol()})
    if failure is not None:
        # The supervisor stopped because a worker could not start (a signal is no failure):
        # a process manager must see the server fail, not a clean exit it would not restart.
        typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(EXIT_FAILED)


def _check_port_free(host: str, port: int) -> None:
    """Stop (exit status 1) when `host:port` cannot be listened on, before anything is created.

    It binds a socket the way uvicorn will (same family, SO_REUSEADDR) and closes it at once;
    another process could still take the port in between, and then uvicorn's own error shows."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        reason = (
            f"port {port} is already in use"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror or str(exc)
        )
        typer.echo(
            f"error: cannot listen on {host}:{port}: {reason}. Nothing was started; choose "
            "another port with --port (or FADER_PORT).",
            err=True,
        )
        raise typer.Exit(EXIT_FAILED) from exc


KEEP_ALIVE_SECONDS = 75
"""How long an idle HTTP connection stays open (as nginx's default, and above any SDK's)."""


def _http_protocol() -> type[asyncio.Protocol] | str:
    """The protocol that lets event streams be written to directly, once checked to work with
    the installed uvicorn; uvicorn's own otherwise, with a warning. Imported here, guarded, so
    that a uvicorn whose internals moved makes streams slower, never ``fader serve`` fail."""
    try:
        from fader_server.http_protocol import serving_protocol  # noqa: PLC0415 - see above
    except ImportError as exc:
        logging.getLogger("fader.streams").warning(
            "event streams will be sent through ASGI, not written directly: %s", exc
        )
        return "auto"
    return serving_protocol()
