"""Outbound HTTP for rollout gates and webhooks, guarded against server-side request forgery.

Every request this module sends obeys the outbound address policy
(:class:`~fader_server.services.outbound_policy.OutboundPolicy`: public addresses, plus what
the operator allows with ``FADER_OUTBOUND_ALLOW``):

- **No rebinding window**: the name is resolved once per connection, inside the connection
  (:class:`_GuardedBackend`), and the socket connects to the very address that was checked;
  the URL's host name is still the ``Host`` header and the TLS server name. Redirects are not
  followed, environment proxies are not used, cookies are not kept (one tenant's gate must not
  send another's cookies), and connections are not reused: every request resolves and checks
  again.
- **A total deadline**: every socket operation (resolution, connect, TLS handshake, each read
  and write) gets at most the time left until the request's deadline, so a server that drips
  one byte a second, in its headers or its body, holds nothing past it.
- **A byte cap**: :func:`fetch` streams the body and stops at the cap, so a 400 MB answer
  costs at most the cap in memory. It asks for ``Accept-Encoding: identity`` and refuses a
  compressed answer (a few KiB of gzip can inflate to gigabytes).

Failures are reduced to a fixed :data:`~fader_server.services.outbound_policy.ErrorClass`
(:class:`FetchError`), never response text or an exception message.
"""

from __future__ import annotations

import contextvars
import ssl
import time
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore
import httpx

from fader_server.services.outbound_policy import BlockedAddressError, ErrorClass, OutboundPolicy

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "fader_outbound_deadline", default=None
)


def _time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    """The socket timeout for the next operation: at most what is left of the deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise expired("the request's deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the request's deadline. (A blocking
    handshake with a socket timeout is bounded in total by CPython's ssl module, which turns
    the timeout into a deadline across its retries.)"""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks, and connects to the checked address; httpcore keeps using the URL's
    host name for the ``Host`` header and the TLS server name (SNI and certificate)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = _DEADLINE.get()
        if deadline is None:
            deadline = time.monotonic() + (timeout or 10.0)
        try:
            candidates = self._policy.addresses(host, port, deadline)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("name resolution timed out") from exc
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError("the name does not resolve") from exc
        failure: Exception | None = None
        for _, ip in candidates:
            left = _time_left(timeout, httpcore.ConnectTimeout)
            try:
                stream = self._sockets.connect_tcp(ip, port, left, local_address, socket_options)
            except httpcore.ConnectTimeout:
                raise
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        raise httpcore.ConnectError("no address accepted the connection") from failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("Unix sockets are not reachable from gates or webhooks")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over :class:`_GuardedBackend`, without keep-alive or proxies.

    httpx does not take a network backend as an argument, so the connection pool it builds is
    replaced by one with the same settings and the guarded backend (``_pool`` is the attribute
    ``HTTPTransport.handle_request`` sends through; httpx is pinned in uv.lock, and
    tests/test_outbound.py fails if the guard is ever bypassed)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=0,
            http1=True,
            http2=False,
            network_backend=_GuardedBackend(policy),
        )


def client(policy: OutboundPolicy, *, user_agent: str) -> httpx.Client:
    """An httpx client for gates or webhooks: guarded, no redirects, proxies or cookies."""
    return httpx.Client(
        transport=GuardedTransport(policy),
        headers={"User-Agent": user_agent},
        follow_redirects=False,
        trust_env=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )


# ------------------------------------------------------------------------------------- fetch
@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: the status, and at most `limit` bytes of the raw body."""

    status: int
    body: bytes


class FetchError(Exception):
    """A request that produced no usable answer, reduced to its class."""

    def __init__(self, error: ErrorClass) -> None:
        super().__init__(error)
        self.error: ErrorClass = error


def fetch(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    deadline: float,
    limit: int,
    truncate: bool = False,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
) -> Answer:
    """Send one request and read at most `limit` body bytes by `deadline` (``time.monotonic``).

    With `truncate`, a longer body is cut at `limit` (an HTTP check needs the status, not the
    page); without, it is a :class:`FetchError` ``too_large``, raised as soon as the
    ``Content-Length`` or the bytes read so far pass the limit. Never raises anything else."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError("timeout")
    token = _DEADLINE.set(deadline)
    try:
        sent = {"Accept-Encoding": "identity", **(headers or {})}
        with http.stream(
            method, url, params=params, headers=sent, content=content, timeout=remaining
        ) as response:
            declared = response.headers.get("content-length", "")
            if not truncate and declared.isdigit() and int(declared) > limit:
                raise FetchError("too_large")
            if response.headers.get("content-encoding", "").lower() not in ("", "identity"):
                # asked for identity: a compressed answer could inflate far past the cap
                raise FetchError("invalid_response")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    if truncate:
                        del body[limit:]
                        break
                    raise FetchError("too_large")
                if time.monotonic() > deadline:
                    raise FetchError("timeout")
            return Answer(response.status_code, bytes(body))
    except BlockedAddressError as exc:
        raise FetchError("blocked") from exc
    except httpx.HTTPError as exc:
        raise FetchError(error_class(exc)) from exc
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError("invalid_response") from exc
    finally:
        _DEADLINE.reset(token)


def error_class(exc: BaseException) -> ErrorClass:
    """The fixed class of an httpx failure."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return "tls"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return "invalid_response"
    return "refused"
