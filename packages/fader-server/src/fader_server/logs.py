"""Structured JSON logs (structlog) with one vocabulary of field names.

Fields: ``event``, ``request_id``, ``project``, ``environment``, ``flag``, ``actor``,
``duration_ms``, ``status``, ``level``, ``timestamp``. Secrets are never passed to a logger;
as a second line of defence :func:`redact` blanks any field whose name looks like a secret,
and the logs test searches captured output for real passwords and tokens.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_FIELDS = ("password", "token", "authorization", "secret", "cookie")


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in list(event):
        if any(s in name.lower() for s in _SECRET_FIELDS):
            event[name] = "[redacted]"
    return event


def configure(stream: TextIO | None = None, *, json: bool = True) -> None:
    """Configure structlog once per process (idempotent; the last call wins)."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger() -> Any:
    return structlog.get_logger("fader")
