"""IP networks for the ``ip_in`` operator, shared by validation and evaluation.

Unleash's remoteAddress strategy (and any rule on a client's address) lists single addresses
and CIDR ranges. Host bits in a range (``10.1.2.3/8``) are accepted and ignored, as Unleash
does; a single address is a network of one.
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network | None:
    """The network `text` names (an address or a CIDR range), or ``None``."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def parse_address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A context value as an IP address, or ``None`` when it is not one.

    An IPv6 zone index (``fe80::1%eth0``) is refused: Python accepts it, but Unleash (Rust's
    ``IpAddr``) does not, and an imported remoteAddress strategy must match what Unleash does.
    """
    if value.__class__ is not str or "%" in str(value):
        return None
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None
