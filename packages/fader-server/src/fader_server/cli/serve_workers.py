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
and announcements written as rows standing in for notifications, see
:mod:`fader_server.storage.sql.sqlite_watch`).

A worker that cannot start stops the whole server (uvicorn's rule: it would fail the same way on
every restart), and then ``fader serve`` must fail too, saying why: uvicorn's supervisor only
logs it and returns as after Ctrl-C. So this module runs the supervisor itself
(:func:`run_workers`, what ``uvicorn.run`` does for workers), a worker that fails writes its
reason to a file the parent named (:data:`FAILURE_FILE`), and the parent reads it, or failing
that the workers' exit statuses, once the supervisor returns (:func:`startup_failure`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uvicorn.config import STARTUP_FAILURE

from fader_server.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

WORKER_APP = "fader_server.cli.serve_workers:worker_app"
"""The import string uvicorn's workers load (with ``factory=True``)."""
FAILURE_FILE = "FADER_WORKER_FAILURE_FILE"
"""The variable naming the file where a worker that cannot start appends why (one line); set by
:func:`run_workers` for its workers, not a setting."""
_REASON_CHARS = 300


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
    in a tight loop forever. Its reason goes to the log (with the traceback) and, as one line,
    to the parent (:data:`FAILURE_FILE`), which repeats it as its own error."""
    from fader_server.app import create_app, open_services  # noqa: PLC0415 - server imports
    from fader_server.runtime import gc_policy  # noqa: PLC0415 - as above

    try:
        settings = Settings.load()
        services, _ = open_services(settings)
        app = create_app(settings, services)
        gc_policy.apply()
        return app
    except Exception as exc:
        logging.getLogger("fader.serve").exception("a worker could not start; stopping")
        _report_failure(exc)
        raise SystemExit(STARTUP_FAILURE) from exc


def _report_failure(exc: Exception) -> None:
    """Append this worker's reason to the parent's :data:`FAILURE_FILE`, in one write (appends
    that small are not interleaved with another worker's). The exception's first line only,
    bounded: the database's messages name hosts and ports but carry no bound values, which
    every engine hides (:mod:`fader_server.storage.sql.store`)."""
    path = os.environ.get(FAILURE_FILE)
    if not path:
        return
    message = (str(exc).strip().splitlines() or [""])[0][:_REASON_CHARS]
    line = f"worker {os.getpid()} could not start ({type(exc).__name__}: {message})\n"
    with contextlib.suppress(OSError):  # the parent learns of it from the exit status anyway
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(descriptor, line.encode(errors="replace"))
        finally:
            os.close(descriptor)


def run_workers(workers: int, options: Mapping[str, Any]) -> str | None:
    """Run `workers` workers of :data:`WORKER_APP` under uvicorn's supervisor (with uvicorn's
    `options`: host, port, timeouts...) until it stops. Returns why, when it stopped because a
    worker failed to start; None when it was told to stop (SIGTERM, SIGINT).

    This is what ``uvicorn.run`` does for workers (bind the port once, then the supervisor),
    done here so that the supervisor's workers can be looked at once it returns."""
    import uvicorn  # noqa: PLC0415 - server imports, as in serve.py
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415 - as above

    config = uvicorn.Config(WORKER_APP, factory=True, workers=workers, **options)
    descriptor, name = tempfile.mkstemp(prefix="fader-workers-", suffix=".failures")
    os.close(descriptor)
    report = Path(name)
    os.environ[FAILURE_FILE] = name  # workers inherit the environment (module docstring)
    try:
        listening = config.bind_socket()
        supervisor = Multiprocess(config, sockets=[listening])
        try:
            with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run
                supervisor.run()
        finally:
            listening.close()
        # The supervisor's last workers (a failed one is not replaced); read defensively, as
        # uvicorn documents no such attribute: without it, only reported reasons are seen.
        processes = getattr(supervisor, "processes", [])
        exits = [(process.pid, process.exitcode) for process in processes]
        return startup_failure(report.read_text(errors="replace"), exits)
    finally:
        os.environ.pop(FAILURE_FILE, None)
        report.unlink(missing_ok=True)


def startup_failure(reasons: str, exits: Sequence[tuple[int | None, int | None]]) -> str | None:
    """Why the supervisor stopped, if a worker failed to start: the first reason a worker
    reported (`reasons`, :data:`FAILURE_FILE`'s lines), else which worker exited with
    uvicorn's ``STARTUP_FAILURE`` (`exits`: each worker's pid and exit status, in start order: one
    that failed before it could report, e.g. in the app's startup); None if neither (the
    supervisor was told to stop, and the workers stopped as asked)."""
    reported = [line.strip() for line in reasons.splitlines() if line.strip()]
    if reported:
        return f"{reported[0]}; the server stopped"
    for number, (pid, status) in enumerate(exits, start=1):
        if status == STARTUP_FAILURE:
            return (
                f"worker {number} of {len(exits)} (pid {pid}) exited with status {status} "
                "before it started serving (its log is above); the server stopped"
            )
    return None
