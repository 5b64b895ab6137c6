"""CSRF protection for every console form (OWASP "synchronizer token", keyed on the session).

Each session's token is a keyed hash of the session token itself: HMAC-SHA256 with the session
token (256 random bits, only ever in an ``HttpOnly`` cookie) as the key. Another site can make a
browser *send* the cookie (on top-level navigations; ``SameSite=Lax`` stops the rest) but can
never read it, so it cannot compute the form token. It needs no server secret and no storage:
every replica derives the same value, and it dies with the session. The fixed label separates it
from the SHA-256 of the token that the database stores, so a database reader learns nothing more.

The login form has no session yet; it gets a random ``fader_login`` cookie and the same keyed
hash of it in a hidden field (the "double submit cookie" pattern), which stops login CSRF
(an attacker logging a victim into the attacker's account).

Every POST handler takes its form through :func:`checked_form`; a missing or wrong token raises
:class:`CsrfError`, which the console renders as a page saying what happened and what to do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

FIELD = "csrf_token"
LOGIN_COOKIE = "fader_login"
_SESSION_LABEL = b"fader-console-csrf-v1"
_LOGIN_LABEL = b"fader-console-login-v1"


class CsrfError(Exception):
    """A POST without the form token of the current session (forged, or a stale page)."""


def _keyed(key: str, label: bytes) -> str:
    return hmac.new(key.encode(), label, hashlib.sha256).hexdigest()


def session_token(session_secret: str) -> str:
    return _keyed(session_secret, _SESSION_LABEL)


def new_login_secret() -> str:
    return secrets.token_urlsafe(32)


def login_token(login_secret: str) -> str:
    return _keyed(login_secret, _LOGIN_LABEL)


def verify(expected: str, sent: Iterable[str]) -> None:
    """Raise unless exactly one token was sent and it matches (constant-time comparison)."""
    values = list(sent)
    if len(values) != 1 or not hmac.compare_digest(values[0].encode(), expected.encode()):
        raise CsrfError("the form's security token is missing or does not match your session")
