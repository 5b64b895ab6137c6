"""Exceptions raised by the server's services.

Services speak in domain terms; :mod:`fader_server.api.problems` is the one place that turns
them into HTTP problem details (RFC 9457). The tree, with the status each maps to::

    FaderServerError                  catch to handle any domain failure at once
    ├── NotAuthenticatedError       401    no credential, or an unknown, expired or revoked one
    ├── PermissionDeniedError       403    authenticated, but the role does not allow the action
    ├── NotFoundError               404    no such entity (or one of a project you cannot see)
    ├── AlreadyExistsError          409    a key is taken
    ├── InvalidStateError           409    the entity's state does not allow the action
    │   └── ChangeRequestRequiredError 409  the environment takes changes as change requests
    ├── PreconditionRequiredError   428    a write to a versioned entity came without `If-Match`
    ├── VersionConflictError        412    `If-Match` names a version that is no longer current
    ├── InvalidInputError           422    well-formed but wrong; `.problems` lists why
    │   └── NotExportableError      409    the configuration has no equivalent in the format
    ├── TooManyAttemptsError        429    login throttled; `.retry_after` seconds to wait
    └── StorageUnavailableError     503    the database cannot be reached; retry later

Catch a specific class only where the caller can do something about it (the CLI shows the
message; the API maps everything through ``problems.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One wrong field: a JSON-pointer `path` into the request or document, and how to fix it."""

    path: str
    message: str


class FaderServerError(Exception):
    """Root of every domain error the server raises."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotAuthenticatedError(FaderServerError):
    """The request carries no valid credential."""


class PermissionDeniedError(FaderServerError):
    """The credential is valid but not allowed to perform this action."""


class NotFoundError(FaderServerError):
    """The entity does not exist, or is invisible to the caller (tenant isolation)."""


class AlreadyExistsError(FaderServerError):
    """An entity with the same key already exists."""


class InvalidStateError(FaderServerError):
    """The action does not apply to the entity as it is now (e.g. resuming a release plan that
    is not paused); the message says what state it is in."""


class ChangeRequestRequiredError(InvalidStateError):
    """The environment requires change requests: a direct write that alters what it serves is
    refused, and the message says how to propose it instead."""


class PreconditionRequiredError(FaderServerError):
    """A write needs `If-Match` so that no update is ever lost silently."""


class VersionConflictError(FaderServerError):
    """The entity changed since the caller read it."""

    def __init__(self, detail: str, current_version: int | None = None) -> None:
        super().__init__(detail)
        self.current_version = current_version


class InvalidInputError(FaderServerError):
    """The request or the configuration it would produce is invalid; see `.problems`."""

    def __init__(self, detail: str, problems: Sequence[FieldProblem] = ()) -> None:
        super().__init__(detail)
        self.problems: tuple[FieldProblem, ...] = tuple(problems)


class TooManyAttemptsError(FaderServerError):
    """Too many failed logins for a username or client address; retry after `.retry_after`."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class NotExportableError(InvalidInputError):
    """The environment uses constructs the requested format (flagd) cannot express."""


class StorageUnavailableError(FaderServerError):
    """The database is unreachable or busy beyond its timeout."""
