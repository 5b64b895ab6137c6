"""The console's routes: every handler runs inside :class:`PageRoute`, which turns failures into
pages (the JSON API keeps its problem details; a browser gets HTML with the same explanation).

- not logged in (or the session expired or was revoked) → the login page, then back here;
- a stale or forged form (CSRF) → 403 page saying what happened and what to do;
- permission denied, not found, conflicts, invalid input not handled by the form itself →
  a page with the service's message and the matching status;
- anything unexpected → a 500 page with the request id, logged with its stack trace, which
  never reaches the browser.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from fader_server import errors
from fader_server.logs import get_logger
from fader_server.web import session as sessions
from fader_server.web.csrf import CsrfError
from fader_server.web.rendering import redirect, render, secure

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# error class → (status, title); the first match wins, so subclasses come first
_PAGES: tuple[tuple[type[errors.FaderServerError], int, str], ...] = (
    (errors.PermissionDeniedError, 403, "Permission denied"),
    (errors.NotFoundError, 404, "Not found"),
    (errors.AlreadyExistsError, 409, "Already exists"),
    (errors.ChangeRequestRequiredError, 409, "Change request required"),
    (errors.VersionConflictError, 409, "Changed by someone else"),
    (errors.PreconditionRequiredError, 428, "Read it first"),
    (errors.NotExportableError, 409, "Not exportable"),
    (errors.InvalidInputError, 422, "Not valid"),
    (errors.TooManyAttemptsError, 429, "Too many attempts"),
    (errors.StorageUnavailableError, 503, "Database unavailable"),
)


def _page_for(exc: errors.FaderServerError) -> tuple[int, str]:
    for cls, status, title in _PAGES:
        if isinstance(exc, cls):
            return status, title
    return 400, "Not possible"


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    return render(
        request,
        "error.html",
        {"session": None, "view": None, "title": title, "detail": detail, "status": status},
        status=status,
    )


def _to_login(request: Request) -> Response:
    """To the login page, and back here afterwards (for a form: back to the page it was on)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = request.headers.get("referer", "/").split(request.url.netloc, 1)[-1] or "/"
    response = redirect(request, "/login?next=" + quote(sessions.safe_next(target)))
    if request.cookies.get(sessions.SESSION_COOKIE):
        # expired, revoked, or its user removed: say so, and drop the dead cookie
        sessions.flash(request, response, "Your session has ended; please log in again.")
        sessions.clear_cookie(request, response, sessions.SESSION_COOKIE)
    return response


class PageRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler: Handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except errors.NotAuthenticatedError:
                response = _to_login(request)
            except CsrfError:
                response = error_page(
                    request,
                    403,
                    "This form has expired",
                    "The form was sent without your session's security token: it was open "
                    "from before you last logged in, or another site tried to submit it. "
                    "Nothing was changed. Go back, reload the page and try again.",
                )
            except errors.FaderServerError as exc:
                status, title = _page_for(exc)
                response = error_page(request, status, title, exc.detail)
                if isinstance(exc, errors.TooManyAttemptsError):
                    response.headers["Retry-After"] = str(exc.retry_after)
            except RequestValidationError:
                response = error_page(
                    request, 400, "Bad request", "The address or form is malformed."
                )
            except HTTPException as exc:
                response = error_page(request, exc.status_code, "Request failed", str(exc.detail))
            except Exception:
                request_id = getattr(request.state, "request_id", "unknown")
                get_logger().exception("unhandled_error", request_id=request_id)
                response = error_page(
                    request,
                    500,
                    "Something went wrong",
                    f"The server failed unexpectedly. Report request id {request_id} to the "
                    "operator; nothing you did caused this.",
                )
            return secure(response)

        return handle


def page_router() -> APIRouter:
    """A router for console pages (kept out of the API's OpenAPI document)."""
    return APIRouter(route_class=PageRoute, include_in_schema=False)
