"""Which delivery failures are worth retrying, and what to tell the operator when not.

The rule comes from docs/delivery-protocol.md: retry network failures, 5xx responses without a
problem body, 429 (honouring ``Retry-After``) and RFC 9457 problems whose Fader ``category`` is
``retryable``. Everything else will fail the same way next time, so the SDK stops and logs a
message that says what to check. 401/403/404 get their own wording because they are almost
always a wrong key or a wrong `base_url`. The SDK key never appears in a message.

Spec: https://www.rfc-editor.org/rfc/rfc9457 (problem details), RFC 9110 §10.2.3 (Retry-After).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed request: whether to try again, when at the earliest, and why.

    `unreachable`: no connection could be made at all (refused, no route, connect timeout), so
    the server (or everything in front of it) is down, not just this kind of request.
    `refused_request`: the server refused this request's content (a 4xx other than a key or
    `base_url` problem, e.g. 422): sending it again fails the same way, a different one may not.
    """

    retryable: bool
    message: str
    retry_after: float | None = None
    unreachable: bool = False
    refused_request: bool = False


_STOP_MESSAGES = {
    401: (
        "the server rejected the SDK key (401): pass a server-side SDK key (fdr_srv_...) of "
        "this environment to FaderClient, and check it has not been revoked"
    ),
    403: (
        "the SDK key may not read this environment (403): use a server-side SDK key "
        "(client-side keys only work for OFREP), or ask an admin to restore its access"
    ),
    404: (
        "no Fader delivery API at base_url (404): check that base_url points at the Fader "
        "server itself (e.g. http://fader.internal:8400), without a path"
    ),
}


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _problem(response: httpx.Response) -> dict[str, object] | None:
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type or not response.content:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def from_response(response: httpx.Response, *, now: Callable[[], float] = time.time) -> Failure:
    """Classify a non-success response. The body must already be read."""
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
    problem = _problem(response)
    detail = ""
    if problem is not None:
        text = problem.get("detail") or problem.get("title")
        detail = f": {text}" if isinstance(text, str) else ""
    if status in _STOP_MESSAGES:
        return Failure(False, _STOP_MESSAGES[status] + detail)
    if status == 429:
        return Failure(True, f"rate limited by the server (429){detail}", retry_after)
    refused = 400 <= status < 500
    if problem is not None and "category" in problem:
        category = problem["category"]
        if category == "retryable":
            return Failure(True, f"server problem ({status}){detail}", retry_after)
        return Failure(
            False,
            f"server reported a {category} problem ({status}){detail}; not retrying",
            refused_request=refused,
        )
    if status >= 500:
        return Failure(True, f"server error ({status})", retry_after)
    return Failure(
        False, f"unexpected response {status}{detail}; not retrying", refused_request=refused
    )


def from_exception(error: httpx.HTTPError) -> Failure:
    """Network trouble (refused, reset, timed out) is always worth another try."""
    if isinstance(error, httpx.ConnectTimeout):
        return Failure(True, "timed out connecting (ConnectTimeout)", unreachable=True)
    if isinstance(error, httpx.TimeoutException):
        return Failure(True, f"timed out ({type(error).__name__})")
    if isinstance(error, httpx.ConnectError):
        return Failure(True, f"could not connect ({error})", unreachable=True)
    return Failure(True, f"network error ({type(error).__name__}: {error})")
