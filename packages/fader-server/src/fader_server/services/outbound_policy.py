"""Where rollout gates and webhooks may connect: the outbound address policy.

Editors point Prometheus and HTTP-check gates, and project admins point webhooks, at URLs the
*server* then requests. Without a guard that turns the server into a port scanner and a proxy
into its own network (``127.0.0.1``, ``169.254.169.254``, the database, the cluster). An
address is reachable when it is public (globally routable, not loopback, link-local, private,
CGNAT, multicast, reserved or unspecified, and the same for IPv6, including IPv4 addresses
embedded in IPv4-mapped, NAT64, 6to4 and Teredo addresses), or when the operator allows it with
``FADER_OUTBOUND_ALLOW`` (CIDRs and host names; docs/rollouts.md shows the
Prometheus-on-localhost case).

The policy is checked twice: here, when a gate or a webhook is saved
(:meth:`OutboundPolicy.check_url`, so the person who entered the URL hears why it is refused),
and at every connection by :mod:`fader_server.runtime.outbound_http`, which resolves the name
once per connection and connects to the very address this policy accepted (no DNS-rebinding
window), with a total deadline and a byte cap.

Failures are reduced to a fixed :data:`ErrorClass`: what is stored and shown to project members
is a number or one of these words, never response text or an exception message (which could
carry what an internal service answered).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

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


class BlockedAddressError(Exception):
    """The host resolves only to addresses the policy does not allow (message: why, safe to
    show the person who entered the URL)."""


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
