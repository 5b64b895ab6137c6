"""One single sign-on attempt, from the redirect to the provider until its answer comes back.

Fader keeps no table of attempts in progress. An attempt is a random secret plus what it is
for (provider, redirect URI, where to go next, when it began), held by whoever began it: the
browser, in an ``HttpOnly`` cookie (the console), or ``fader login --sso`` in its memory (the
CLI), never in a URL. Everything the protocol needs is derived from it by HMAC-SHA256 keyed
with the secret over all the other fields:

- ``state``, sent through the provider and compared when the answer comes back, so an answer
  that was not asked for by this browser (login CSRF) or that arrives twice is refused;
- ``nonce``, which the provider copies into the ID token, so an ID token minted for another
  attempt cannot be replayed into this one;
- the PKCE ``code_verifier`` of console attempts (RFC 7636, S256), so a stolen authorization
  code is useless without the cookie. The CLI makes its own verifier and never sends it until
  it redeems the code, so the server never holds a secret that would finish its attempt.

Changing any field (the provider, the time it began...) changes every derived value, so a
tampered attempt fails the state check; an attempt older than :data:`FLOW_LIFETIME` is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

FLOW_LIFETIME = timedelta(minutes=10)
MAX_ENCODED = 4096
LOOPBACK_REDIRECT = re.compile(r"^http://127\.0\.0\.1:([0-9]{1,5})/callback$")
"""The one redirect URI `fader login --sso` may ask for (RFC 8252 section 7.3: the IPv4
loopback literal, any port, a fixed path)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def challenge_of(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def is_loopback_redirect(uri: str) -> bool:
    found = LOOPBACK_REDIRECT.match(uri)
    return found is not None and 1024 <= int(found.group(1)) <= 65535


@dataclass(frozen=True, slots=True)
class Flow:
    provider: str
    redirect_uri: str
    next_path: str
    issued: int
    """When it began, in seconds since the epoch."""
    secret: str

    @classmethod
    def begin(cls, provider: str, redirect_uri: str, next_path: str, now: datetime) -> Flow:
        return cls(
            provider, redirect_uri, next_path, int(now.timestamp()), secrets.token_urlsafe(32)
        )

    def _derive(self, label: str) -> str:
        message = json.dumps(
            [label, self.provider, self.redirect_uri, self.next_path, self.issued]
        ).encode()
        return _b64(hmac.new(self.secret.encode(), message, hashlib.sha256).digest())

    @property
    def state(self) -> str:
        return self._derive("state")

    @property
    def nonce(self) -> str:
        return self._derive("nonce")

    @property
    def verifier(self) -> str:
        """43 characters of the URL-safe alphabet, as RFC 7636 asks."""
        return self._derive("pkce")

    def expired(self, now: datetime) -> bool:
        age = now.timestamp() - self.issued
        return not 0 <= age <= FLOW_LIFETIME.total_seconds()

    def matches(self, state: str) -> bool:
        return hmac.compare_digest(self.state.encode(), state.encode())

    def encode(self) -> str:
        fields = [self.provider, self.redirect_uri, self.next_path, self.issued, self.secret]
        return _b64(json.dumps(fields, separators=(",", ":")).encode())

    @classmethod
    def decode(cls, text: str | None) -> Flow | None:
        """The attempt in a cookie or request; None when absent or not one."""
        if not text or len(text) > MAX_ENCODED:
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            provider, redirect_uri, next_path, issued, secret = fields
        except (ValueError, TypeError):
            return None
        if not all(isinstance(v, str) for v in (provider, redirect_uri, next_path, secret)):
            return None
        if not isinstance(issued, int) or len(secret) < 32:
            return None
        return cls(provider, redirect_uri, next_path, issued, secret)
