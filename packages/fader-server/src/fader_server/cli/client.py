"""A small client of Fader's admin API (``/api/v1``) for the admin commands of the CLI.

It speaks HTTP and nothing else: paths, bearer authentication, ETags, cursor pagination, and
RFC 9457 problem details (https://www.rfc-editor.org/rfc/rfc9457) turned into exceptions. It
knows nothing of tables or exit codes (that is :mod:`fader_server.cli.output`), and it never
puts the token into a message, an exception or a log line. httpx is imported by the first
client rather than with this module, so that a command's ``--help`` does not pay for it.

The exceptions, and when to catch them::

    AdminApiError              catch to report any failure to reach or use the server
    ├── ServerUnreachableError no HTTP answer at all: wrong URL, server down, timeout, TLS
    └── ProblemError           the server answered with an error status; `.status`, `.title`,
                               `.detail`, `.category` and `.errors` come from the problem body
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8400"
API_PREFIX = "/api/v1"
MAX_PAGE = 500  # the server's largest accepted `limit`


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of a problem's ``errors``: a JSON-pointer `path` and how to fix it."""

    path: str
    message: str


class AdminApiError(Exception):
    """Root of every failure of an admin API call."""


class ServerUnreachableError(AdminApiError):
    """No HTTP response: the message names the URL and the transport's reason."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the Fader server at {url}: {reason}")
        self.url = url
        self.reason = reason


class ProblemError(AdminApiError):
    """An error response, read as an RFC 9457 problem (or described, if it is not one).

    `token_sent` tells a 401 caused by a missing token from one caused by a refused token,
    without carrying the token itself.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        category: str | None,
        errors: tuple[FieldError, ...] = (),
        *,
        url: str = "",
        token_sent: bool = True,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.body = body or {}  # the whole problem (an import refusal carries its report)
        self.status = status
        self.title = title
        self.detail = detail
        self.category = category
        self.errors = errors
        self.url = url
        self.token_sent = token_sent


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful response: its JSON body (None when empty) and the version its ETag names."""

    status: int
    body: Any
    version: int | None = field(default=None)


def api_path(*segments: str | int) -> str:
    """``/api/v1/a/b``, each segment percent-encoded so a key can never change the route."""
    return API_PREFIX + "".join("/" + quote(str(s), safe="") for s in segments)


def etag_version(header: str | None) -> int | None:
    """The version a strong or weak ETag (``"3"``, ``W/"3"``) names; None if it names none."""
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    return int(value) if value.isdigit() else None


def _client_version() -> str:
    try:
        return version("fader-server")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
        return "dev"


def _problem(response: httpx.Response, url: str, token_sent: bool) -> ProblemError:
    """Read an error response; a body that is not a problem (a proxy's HTML page) is described."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        errors = tuple(
            FieldError(str(e.get("path", "")), str(e.get("message", "")))
            for e in body.get("errors") or ()
            if isinstance(e, dict)
        )
        return ProblemError(
            response.status_code,
            str(body.get("title") or response.reason_phrase),
            body["detail"],
            body.get("category"),
            errors,
            url=url,
            token_sent=token_sent,
            body=body,
        )
    text = " ".join(response.text.split())[:200]
    detail = f"HTTP {response.status_code} {response.reason_phrase} from {url}"
    if text:
        detail += f": {text}"
    category = "retryable" if response.status_code >= 500 else None
    return ProblemError(
        response.status_code,
        response.reason_phrase,
        detail,
        category,
        url=url,
        token_sent=token_sent,
    )


class AdminApi:
    """One connection to one server with one token; use it as a context manager.

    `transport` is the seam for tests that need no server (``httpx.MockTransport``).
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token_sent = bool(token)
        headers = {"User-Agent": f"fader-cli/{_client_version()}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # httpx is imported by the first client, not with this module: `--help` needs no HTTP.
        import httpx  # noqa: PLC0415

        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        if_match: int | None = None,
    ) -> Reply:
        """Send one request; raise :class:`ProblemError` for any status of 400 or more."""
        import httpx  # noqa: PLC0415 - loaded by __init__ already; see there

        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
        try:
            response = self._http.request(
                method, path, json=json, params=dict(params or {}), headers=headers
            )
        except httpx.TimeoutException as exc:
            raise ServerUnreachableError(self.url, "the request timed out") from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ServerUnreachableError(self.url, reason) from exc
        if response.status_code >= 400:
            raise _problem(response, self.url, self._token_sent)
        body = response.json() if response.content else None
        return Reply(response.status_code, body, etag_version(response.headers.get("ETag")))

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Reply:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, *, if_match: int | None = None) -> Reply:
        return self.request("POST", path, json=body, if_match=if_match)

    def put(self, path: str, body: Any, *, if_match: int) -> Reply:
        return self.request("PUT", path, json=body, if_match=if_match)

    def delete(
        self, path: str, *, if_match: int | None = None, params: Mapping[str, str] | None = None
    ) -> Reply:
        return self.request("DELETE", path, if_match=if_match, params=params)

    def items(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        limit: int | None = None,
        page_size: int = MAX_PAGE,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paginated collection, following `next_cursor` until it ends or
        `limit` items have been yielded (no page asks for more than is still wanted)."""
        cursor: str | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(remaining, page_size)
            query: dict[str, str | int] = {**(params or {}), "limit": size}
            if cursor is not None:
                query["cursor"] = cursor
            page = self.get(path, query).body
            yield from page["items"]
            if remaining is not None:
                remaining -= len(page["items"])
            cursor = page.get("next_cursor")
            if cursor is None:
                return
