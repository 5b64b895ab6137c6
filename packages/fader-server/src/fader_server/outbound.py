"""Outbound HTTP for rollout gates and webhooks, guarded against server-side request forgery.

Editors point Prometheus and HTTP-check gates, and project admins point webhooks, at URLs the
*server* then requests. Without a guard that turns the server into a port scanner and a proxy
into its own network (``127.0.0.1``, ``169.254.169.254``, the database, the cluster). So, for
every request this module sends:

- **Policy** (:class:`OutboundPolicy`): an address is reachable when it is public (globally
  routable, not loopback, link-local, private, CGNAT, multicast, reserved or unspecified, and
  the same for IPv6, including IPv4 addresses embedded in IPv4-mapped, NAT64, 6to4 and Teredo
  addresses), or when the operator allows it with ``FADER_OUTBOUND_ALLOW`` (CIDRs and host
  names; docs/rollouts.md shows the Prometheus-on-localhost case).
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

Failures are reduced to a fixed :data:`ErrorClass`: what is stored and shown to project members
is a number or one of these words, never response text or an exception message (which could
carry what an internal service answered).
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
import socket
import ssl
import threading
import time
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Literal
from urllib.parse import urlsplit

import httpcore
import httpx

SETTING = "FADER_OUTBOUND_ALLOW"

ErrorClass = Literal[
    "timeout",  # the deadline passed (resolution, connection, TLS, headers or body)
    "refused",  # no connection: the name does not resolve, refused, reset, unreachable
    "blocked",  # every address of the host is internal and not allowed (FADER_OUTBOUND_ALLOW)
    "tls",  # TLS handshake or certificate verification failed
    "http_status",  # an HTTP status other than the one expected
    "invalid_response",  # not HTTP, not the JSON expected, or of the wrong shape
    "too_large",  # the answer is over the byte cap
    "no_sample",  # Prometheus answered, but the query returned no sample
    "too_slow",  # an HTTP check answered, slower than its max_latency_ms
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

RESOLVE_THREADS = 16
"""Name resolutions waited for at once; ``getaddrinfo`` cannot be interrupted, so each runs in
a daemon thread the caller stops waiting for at its deadline, and this bounds how many such
threads a broken resolver can pile up."""
CREATION_RESOLVE_SECONDS = 2.0
"""How long the creation-time check waits for a name (it runs inside a write transaction)."""

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_HOST_NAME = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "fader_outbound_deadline", default=None
)


class BlockedAddressError(Exception):
    """The host resolves only to addresses the policy does not allow (message: why, safe to
    show the person who entered the URL)."""


# ------------------------------------------------------------------------------------ policy
def is_public(address: Address) -> bool:
    """Whether `address` is globally routable: what the server may reach without an allowance.

    ``ipaddress``'s ``is_global`` alone is not enough (in Python 3.11 it calls multicast and
    some reserved IPv4 ranges global), so every special range is excluded explicitly; IPv6
    addresses that carry an IPv4 address for translation are judged by that IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in _LOCAL_NAT64:
            return False
        if address.sixtofour is not None and not is_public(address.sixtofour):
            return False
        if address.teredo is not None and not is_public(address.teredo[1]):
            return False
        if address.is_site_local:
            return False
    elif address in _CGNAT:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _kind(address: Address) -> str:
    """What an internal address is, in words, for a refusal message."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _kind(address.ipv4_mapped)
    for test, words in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address (cloud metadata services live there)"),
        ("is_unspecified", "the unspecified address"),
        ("is_multicast", "a multicast address"),
    ):
        if getattr(address, test):
            return words
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT) address"
    if address.is_private:
        return "a private address"
    return "not a public address"


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which hosts gates and webhooks may reach: public addresses, plus what the operator
    allows (``FADER_OUTBOUND_ALLOW``). The default instance allows nothing internal."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)
    """Exact host names, or ``*.suffix`` for every name under a domain."""

    @classmethod
    def parse(cls, entries: Iterable[str]) -> OutboundPolicy:
        """From the setting's items: CIDRs (``10.0.0.0/8``), addresses (``127.0.0.1``) and host
        names (``prometheus.internal``, ``*.svc.cluster.local``); ValueError naming a bad one."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or ":" in entry or not _HOST_NAME.match(entry):
                raise ValueError(
                    f"{SETTING}: '{raw}' is neither a CIDR, an IP address nor a host name"
                )
            hosts.add(entry)
        return cls(tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        """The operator allowed this name (whatever it resolves to)."""
        name = host.lower().rstrip(".")
        if name in self.hosts:
            return True
        return any(h.startswith("*.") and name.endswith(h[1:]) for h in self.hosts)

    def allows_address(self, address: Address) -> bool:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if mapped is not None and self.allows_address(mapped):
            return True
        if any(address.version == n.version and address in n for n in self.networks):
            return True
        return is_public(address)

    def addresses(self, host: str, port: int, deadline: float) -> list[tuple[int, str]]:
        """The addresses of `host` this policy allows, as (family, IP) to connect to.

        Raises :class:`BlockedAddressError` when the name resolves only to addresses the policy
        refuses, ``socket.gaierror`` when it does not resolve, TimeoutError at the deadline.
        A name with public and internal addresses is connected to on its public ones only."""
        resolved = _resolve(host, port, deadline)
        if self.allows_host(host):
            return resolved
        allowed = [(f, ip) for f, ip in resolved if self.allows_address(_address(ip))]
        if not allowed:
            raise BlockedAddressError(self._refusal(host, [ip for _, ip in resolved]))
        return allowed

    def check_url(self, url: str) -> str | None:
        """At creation: None when `url`'s host may be reached now, else why not (a sentence
        for the person who entered it, naming the setting). The same check runs again at
        every request, since DNS may change in between.

        For a host *name*, "does not resolve" and "resolves to an internal address" give the
        same answer, so the check tells an editor nothing about internal DNS."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not host or self.allows_host(host):
            return None
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return "the port is not a number between 0 and 65535"
        literal = _literal(host)
        deadline = time.monotonic() + CREATION_RESOLVE_SECONDS
        try:
            self.addresses(host, port, deadline)
        except BlockedAddressError as exc:
            if literal is not None:
                return f"{exc}; an operator can allow it with {SETTING}"
            return self._name_refusal(host)
        except (OSError, TimeoutError, UnicodeError):
            return self._name_refusal(host)
        return None

    def _refusal(self, host: str, ips: list[str]) -> str:
        if _literal(host) is not None and ips:
            return f"{ips[0]} is {_kind(_address(ips[0]))}"
        return f"'{host}' has no address Fader may reach"

    @staticmethod
    def _name_refusal(host: str) -> str:
        return (
            f"'{host}' does not resolve to a public address; Fader reaches internal hosts "
            f"only when an operator allows them with {SETTING}"
        )


DENY_INTERNAL = OutboundPolicy()
"""The default: public addresses only."""


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _address(ip: str) -> Address:
    return ipaddress.ip_address(ip.split("%", 1)[0])


_resolving = threading.BoundedSemaphore(RESOLVE_THREADS)


def _resolve(host: str, port: int, deadline: float) -> list[tuple[int, str]]:
    """``getaddrinfo`` with a deadline (it has no timeout of its own): (family, IP) pairs."""
    literal = _literal(host)
    if literal is not None:
        family = socket.AF_INET if literal.version == 4 else socket.AF_INET6
        return [(family, str(literal))]
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not _resolving.acquire(timeout=remaining):
        raise TimeoutError("name resolution")
    outcome: list[list[tuple[int, str]] | BaseException] = []
    finished = threading.Event()

    def run() -> None:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            outcome.append([(int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in found])
        except BaseException as exc:  # handed to the waiting caller
            outcome.append(exc)
        finally:
            _resolving.release()
            finished.set()

    threading.Thread(target=run, name="fader-resolve", daemon=True).start()
    if not finished.wait(max(0.0, deadline - time.monotonic())):
        raise TimeoutError("name resolution")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    unique: dict[tuple[int, str], None] = dict.fromkeys(result)
    return [pair for pair in unique if pair[0] in (socket.AF_INET, socket.AF_INET6)]


# --------------------------------------------------------------------------------- transport
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
