"""`fader serve`: run the server (uvicorn) over SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from fader_server.app import create_app, open_services
from fader_server.services import demo
from fader_server.settings import Settings


def serve_command(
    host: Annotated[str | None, typer.Option(help="address to bind [env FADER_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port [env FADER_PORT]")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="SQLite data directory [env FADER_DATA_DIR]")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="e.g. postgresql://user@host/db [env FADER_DATABASE_URL]"),
    ] = None,
    demo_data: Annotated[
        bool, typer.Option("--demo", help="seed a demo project once [env FADER_DEMO=1]")
    ] = False,
) -> None:
    """Run the Fader server: admin API on /api/v1, docs on /docs."""
    settings = Settings.load(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        demo=demo_data or None,
    )
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
    typer.echo(
        f"Fader is listening on {url}  (API docs: {url}/docs)\n"
        f"Log in: curl -X POST {url}/api/v1/auth/login -H 'content-type: application/json' "
        '-d \'{"username": "admin", "password": "..."}\''
    )
    app = create_app(settings, services)
    # Open SDK streams never end by themselves: give them a few seconds, then close them
    # (SDKs reconnect, to another replica if this one is going away).
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=3,
        # Idle keep-alive connections stay open longer than SDKs keep them (httpx: 5 s), so a
        # summary posted every 5 s never goes out on a connection the server is closing at
        # that moment (uvicorn's default is 5 s too: the request would die with a reset).
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        http=_http_protocol(),
    )


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
