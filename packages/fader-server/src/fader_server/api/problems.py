"""Domain errors → RFC 9457 problem details (https://www.rfc-editor.org/rfc/rfc9457), in one
place.

Every error response is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and Fader's ``category``: ``retryable`` (try again later; SDKs retry only these),
``user_fixable`` (the request is wrong and `detail` says how), ``operator_fixable``
(configuration or infrastructure), ``fatal`` (a bug: nothing the caller can do). Validation
problems add ``errors``: ``[{"path": "/body/variants", "message": ...}]``. The catch-all handler
logs the exception with the request id and answers a generic 500: no stack trace reaches a
client.

The OpenAPI document says so too: :data:`API_ERRORS` is the ``responses=`` mapping every admin
router declares, each status pointing at the :class:`Problem` schema under
``application/problem+json``, and :func:`install` adds that schema to the document's components.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema
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
    errors.ChangeRequestRequiredError: (
        409,
        "change-request-required",
        "Change request required",
        "user_fixable",
    ),
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


# status → when a client gets it (the OpenAPI description of that response)
_WHEN: dict[int, str] = {
    400: "The body cannot be decoded: it is not UTF-8 JSON, or names a key twice in one object "
    "(`duplicate-key`).",
    401: "No credential, or an unknown, expired or revoked one.",
    403: "Authenticated, but the role does not allow this; SDK and client keys always get 403.",
    404: "No such entity, or one in a project you cannot see.",
    409: "The key is taken, or the entity's state does not allow the action (`invalid-state`).",
    412: "`If-Match` names a version that is no longer current: read again, reapply, retry.",
    413: "The body is larger than the server reads (`FADER_MAX_BODY_BYTES`, 1 MiB by default).",
    422: "The request does not match the schema, or would make a configuration invalid; "
    "`errors` lists the fields.",
    428: "An update came without `If-Match`.",
    429: "Too many attempts; retry after `Retry-After` seconds.",
    500: "A bug in the server; `detail` carries the request id to report.",
    503: "The database is unreachable or busy; retry later.",
}
_RETRY_AFTER = {
    "description": "seconds to wait before retrying",
    "schema": {"type": "integer", "minimum": 0},
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "the scheme to authenticate with (RFC 9110 §11.6.1)",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}
_PROBLEM_REF = "#/components/schemas/Problem"


class FieldError(BaseModel):
    """One wrong field: a JSON pointer into the request or document, and how to fix it."""

    path: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details with Fader's ``category``: the body of every error response."""

    type: str = Field(description="a URN naming the kind of problem: urn:fader:problem:<slug>")
    title: str
    status: int
    detail: str = Field(description="what went wrong and how to fix it")
    category: Literal["retryable", "user_fixable", "operator_fixable", "fatal"] = Field(
        description="SDKs retry only `retryable`"
    )
    errors: list[FieldError] | None = Field(
        default=None, description="the fields that are wrong, when the request is invalid"
    )


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A FastAPI ``responses=`` mapping that documents these statuses as problem details."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": _WHEN[status],
            "content": {_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        documented[status] = response
    return documented


# Every admin API router declares these (`APIRouter(responses=API_ERRORS)`).
API_ERRORS = responses(400, 401, 403, 404, 409, 412, 413, 422, 428, 500, 503)


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
    if exc.status_code == 400:  # FastAPI's answer to a body it cannot decode (e.g. not UTF-8)
        detail = f"{detail}: send a UTF-8 JSON body with Content-Type: application/json"
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
    return internal_error(getattr(request.state, "request_id", "unknown"))


def internal_error(request_id: str) -> JSONResponse:
    """Log the exception being handled, with the request id, and answer the generic 500."""
    get_logger().exception("unhandled_error", request_id=request_id)
    return problem(
        500,
        "internal",
        "Internal error",
        f"the server failed unexpectedly; report request id {request_id} to the operator",
        "fatal",
    )


def _with_problem_schemas(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Wrap ``app.openapi`` so the document defines the schemas `responses()` refers to.

    FastAPI registers a component only for models it renders as ``application/json``; problem
    details are ``application/problem+json``, so their schemas are added here (the extension
    point FastAPI documents: https://fastapi.tiangolo.com/how-to/extending-openapi/).
    """
    _, definitions = models_json_schema(
        [(Problem, "serialization")], ref_template="#/components/schemas/{model}"
    )

    def openapi() -> dict[str, Any]:
        document = generate()
        document.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
        return document

    return openapi


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.FaderServerError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
    app.openapi = _with_problem_schemas(app.openapi)  # type: ignore[method-assign]
