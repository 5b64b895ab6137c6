"""How webhook deliveries are signed, so receivers can trust them.

Signature (so a receiver can tell Fader's deliveries from forgeries and replays)::

    X-Fader-Timestamp: <unix seconds>
    X-Fader-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + raw body, keyed with the secret>

The timestamp is inside the signed content, so an old delivery cannot be replayed with a fresh
timestamp; receivers should compare signatures in constant time and reject timestamps more than
a few minutes old. ``X-Fader-Delivery`` is a unique id per delivery (the same across its
retries and redeliveries), for receivers that want to drop duplicates.

This module only signs. The bodies are made from audit entries
(:mod:`fader_server.services.webhook_messages`), and
:mod:`fader_server.runtime.webhook_delivery` posts them from the notification outbox. It stays
in this pure layer because release plans were the first thing webhooks announced, and receivers
written for them verify exactly this scheme.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Fader-Signature"
TIMESTAMP_HEADER = "X-Fader-Timestamp"
DELIVERY_HEADER = "X-Fader-Delivery"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Fader-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and what the tests check): recompute, compare in constant time."""
    try:
        expected = sign(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signature)
