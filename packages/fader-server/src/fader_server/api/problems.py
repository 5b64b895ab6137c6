"""Domain errors → RFC 9457 problem details (https://www.rfc-editor.org/rfc/rfc9457), in one
place.

Every error response is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and Fader's ``category``: ``retryable`` (try again later; SDKs retry only these),
``user_fixable`` (the request is wrong and `detail` says how), ``operator_fixable``
(configuration or infrastructure), ``fatal`` (a bug: nothing the caller can do). Validation
problems add ``errors``: ``[{"path": "/body/variants", "message": ...}]``. The catch-all handler
logs the exception with the request id and answers a generic 500: no stack trace reaches a
client.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from fader_server import errors
from fader_server.logs import get_logger

_MEDIA_TYPE = "application/problem+json"

# error class → (status, slug, title, category)
_MAPPING: dict[type[errors.FaderServerError], tuple[int, str, str, str]] = {
    errors.NotAuthenticatedError: (401, "not-authenticated", "Not authenticated", "user_fixable"),
    errors.PermissionDeniedError: (403, "forbidden", "Permission denied", "user_fixable"),
    errors.NotFoundError: (404, "not-found", "Not found", "user_fixable"),
    errors.AlreadyExistsError: (409, "already-exists", "Already exists", "user_fixable"),
    errors.InvalidStateError: (409, "invalid-state", "Invalid state", "user_fixable"),
    errors.VersionConflictError: (412, "version-conflict", "Version conflict", "user_fixable"),
    errors.PreconditionRequiredError: (
        428,
        "precondition-required",
        "If-Match required",
        "user_fixable",
    ),
    errors.NotExportableError: (409, "not-exportable", "Not exportable", "user_fixable"),
    errors.InvalidInputError: (422, "invalid", "Invalid request", "user_fixable"),
    errors.TooManyAttemptsError: (429, "too-many-attempts", "Too many attempts", "retryable"),
    errors.StorageUnavailableError: (
        503,
        "storage-unavailable",
        "Storage unavailable",
        "retryable",
    ),
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    category: str,
    problems: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:fader:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "category": category,
    }
    if problems is not None:
        body["errors"] = problems
    return JSONResponse(body, status_code=status, media_type=_MEDIA_TYPE, headers=headers)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.FaderServerError)
    status, slug, title, category = next(v for k, v in _MAPPING.items() if isinstance(exc, k))
    problems = None
    if isinstance(exc, errors.InvalidInputError):
        problems = [{"path": p.path, "message": p.message} for p in exc.problems]
    headers = {"Retry-After": "1"} if status == 503 else None
    if isinstance(exc, errors.TooManyAttemptsError):
        headers = {"Retry-After": str(exc.retry_after)}
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="fader"'}
    return problem(status, slug, title, exc.detail, category, problems, headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"path": "/" + "/".join(str(part) for part in e.get("loc", ())), "message": e["msg"]}
        for e in exc.errors()
    ]
    return problem(
        422,
        "invalid",
        "Invalid request",
        "the request does not match the API schema; fix the fields listed in `errors`",
        "user_fixable",
        problems,
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    category = "retryable" if exc.status_code >= 500 else "user_fixable"
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404:
        detail = f"no endpoint at {request.url.path}; see /docs for the API"
    return problem(
        exc.status_code,
        f"http-{exc.status_code}",
        detail,
        detail,
        category,
        headers=dict(exc.headers or {}),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "unknown")
    get_logger().exception("unhandled_error", request_id=request_id)
    return problem(
        500,
        "internal",
        "Internal error",
        f"the server failed unexpectedly; report request id {request_id} to the operator",
        "fatal",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.FaderServerError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
