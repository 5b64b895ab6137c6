"""Structured JSON logs (structlog) with one vocabulary of field names.

Fields: ``event``, ``request_id``, ``project``, ``environment``, ``flag``, ``actor``,
``duration_ms``, ``status``, ``level``, ``timestamp``; a line about an exception adds
``exc_type`` (the class, qualified) and ``exception``: the chain of exceptions, each with its
type, message and frames (file, line, function), never the values of local variables, which
could hold anything from a password to a request body.

Secrets are never passed to a logger. As second lines of defence :func:`redact` blanks any field
whose name looks like a secret, and :func:`scrub` rewrites anything in any text of the line that
looks like a Fader token, a ``Bearer`` credential, an argon2 hash or SQL parameters, because
exception messages are written by libraries (the database engines are also built with
``hide_parameters``, so SQLAlchemy never puts bind parameters into them). The logs tests search
captured output for real passwords, tokens and hashes.

The server's standard-library loggers (``fader.*``: the delivery hub, the change listener) go
through the same processors and stream, and so do uvicorn's warnings and errors (its "Exception
in ASGI application" traceback, written after the 500 answer was sent): every line is JSON and
scrubbed, none is a plain traceback on standard error.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

_SECRET_FIELDS = ("password", "token", "authorization", "secret", "cookie")
_SECRET_TEXT = re.compile(
    r"(?P<token>fdr_(?:admin|user|srv|cli)_)[A-Za-z0-9_\-]+"
    r"|(?P<bearer>[Bb]earer\s+)[A-Za-z0-9._~+/=\-]+"
    r"|\$argon2(?:id|i|d)\$[^\s'\",)}\]]+"
    r"|\[parameters: [^\n]*"
)
_STDLIB_ROUTED = ("fader", "uvicorn.error")


_SECRET_NAME = re.compile("|".join(_SECRET_FIELDS), re.IGNORECASE)
"""Any of :data:`_SECRET_FIELDS` anywhere in a field's name: one search per field, since every
request's log line passes through :func:`redact`."""


_NAMES_REMEMBERED = 1024
"""Field names whose verdict :func:`redact` keeps (names come from the code, a small set; the
bound keeps a name made from input from growing it)."""
_secret_names: dict[str, bool] = {}


def _is_secret_name(name: str) -> bool:
    found = _secret_names.get(name)
    if found is None:
        found = _SECRET_NAME.search(name) is not None
        if len(_secret_names) < _NAMES_REMEMBERED:
            _secret_names[name] = found
    return found


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in event:  # values replaced in place: the keys do not change
        secret = _secret_names.get(name)
        if secret is None:
            secret = _is_secret_name(name)
        if secret:
            event[name] = "[redacted]"
    return event


def _may_hold_secret(text: str) -> bool:
    """Whether `text` holds a literal that every match of :data:`_SECRET_TEXT` contains: text
    without any is left alone without running the expression (most of a line's texts). Four
    ``in`` tests, not a loop: every request's log line passes here."""
    return "fdr_" in text or "earer" in text or "$argon2" in text or "[parameters: " in text


def _scrubbed_text(text: str) -> str:
    if not _may_hold_secret(text):
        return text

    def replace(match: re.Match[str]) -> str:
        kept = match.group("token") or match.group("bearer")
        if kept:
            return kept + "[redacted]"
        if match.group(0).startswith("[parameters"):
            return "[parameters: redacted]"
        return "[redacted password hash]"

    return _SECRET_TEXT.sub(replace, text)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return _scrubbed_text(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


def scrub(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Rewrite secret-looking text anywhere in the line (messages, exception texts)."""
    for name, value in event.items():  # values replaced in place: the keys do not change
        if isinstance(value, str):
            if _may_hold_secret(value):
                event[name] = _scrubbed_text(value)
        elif isinstance(value, dict | list | tuple):
            event[name] = _scrubbed(value)
    return event


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        found: BaseException | None = exc_info[1]
        return found
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def add_exc_type(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """``exc_type``: the qualified class of the exception being logged, for filtering."""
    exc = _exception_of(event.get("exc_info"))
    if exc is not None:
        kind = type(exc)
        event["exc_type"] = f"{kind.__module__}.{kind.__qualname__}"
    return event


def _tracebacks() -> structlog.processors.ExceptionRenderer:
    return structlog.processors.ExceptionRenderer(
        ExceptionDictTransformer(show_locals=False, use_rich=False)
    )


def configure(stream: TextIO | None = None, *, json: bool = True) -> None:
    """Configure structlog once per process (idempotent; the last call wins)."""
    out = stream or sys.stdout
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer()
        exceptions: list[Any] = [add_exc_type, _tracebacks()]
    else:  # plain tracebacks: the rich ones would print local variables
        renderer = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        exceptions = [add_exc_type]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        *exceptions,
        redact,
        scrub,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(out, shared, renderer)


class _Routed(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs (and replaces on the next call)."""


def _route_stdlib(stream: TextIO, shared: list[Any], renderer: Any) -> None:
    """Send the standard-library loggers of :data:`_STDLIB_ROUTED` through the same processors
    (uvicorn's keep their level: warnings and errors only, unless uvicorn is told otherwise)."""
    handler = _Routed(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    for name in _STDLIB_ROUTED:
        logger = logging.getLogger(name)
        for previous in [h for h in logger.handlers if isinstance(h, _Routed)]:
            logger.removeHandler(previous)
        logger.addHandler(handler)
    logging.getLogger("fader").setLevel(logging.INFO)


def get_logger() -> Any:
    return structlog.get_logger("fader")
