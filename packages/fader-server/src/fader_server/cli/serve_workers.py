"""`fader serve --workers N`: N server processes behind one port.

uvicorn's supervisor binds the port once, then starts each worker with the ``spawn`` start
method (a fresh interpreter that inherits the listening socket and the environment, not the
parent's objects) and restarts a worker that dies. A worker therefore cannot be handed the
parent's settings or services: :func:`worker_app`, the factory each worker calls, rebuilds
:class:`~fader_server.settings.Settings` from ``FADER_*`` variables, which the parent sets
first from its effective options (:func:`worker_environment`), and opens its own services.

Everything done once per server stays in the parent, before any worker starts: migrations,
the first administrator (whose generated password is printed once, by the parent), the demo
project. A worker finds them done. Each worker is then a replica as if started on its own:
streams, caches and periodic jobs are kept consistent across workers the way they are across
replicas (PostgreSQL: ``LISTEN``/``NOTIFY`` and advisory locks; SQLite: SQLite's write lock,
and a watch of ``PRAGMA data_version`` standing in for notifications, see
:mod:`fader_server.storage.sql.sqlite_watch`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fader_server.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

WORKER_APP = "fader_server.cli.serve_workers:worker_app"
"""The import string uvicorn's workers load (with ``factory=True``)."""


def worker_environment(settings: Settings) -> dict[str, str]:
    """The ``FADER_*`` variables that make a worker's :meth:`Settings.load` see the options
    the parent was given on its command line (the rest already came from the environment,
    which workers inherit). The data directory is made absolute: a worker must open the same
    SQLite file whatever directory it considers its own."""
    environment = {
        "FADER_HOST": settings.host,
        "FADER_PORT": str(settings.port),
        "FADER_DATA_DIR": str(settings.data_dir.resolve()),
        "FADER_WORKERS": str(settings.workers),
        "FADER_DEMO": "0",  # the parent seeded it already, when asked to
    }
    if settings.database_url:
        environment["FADER_DATABASE_URL"] = settings.database_url
    return environment


def worker_app() -> FastAPI:
    """One worker's app: its own services over the database the parent prepared (the first
    run is over, so nothing is printed and nothing seeded here).

    A failure here exits with uvicorn's startup-failure status, which makes the supervisor
    stop the server: any other status makes it start the worker again at once, and a worker
    that cannot start (a setting it refuses, a database it cannot reach) would be restarted
    in a tight loop forever."""
    from uvicorn.config import STARTUP_FAILURE  # noqa: PLC0415 - server imports

    from fader_server.app import create_app, open_services  # noqa: PLC0415 - as above

    try:
        settings = Settings.load()
        services, _ = open_services(settings)
        return create_app(settings, services)
    except Exception as exc:
        logging.getLogger("fader.serve").exception("a worker could not start; stopping")
        raise SystemExit(STARTUP_FAILURE) from exc
