"""Secrets: API token generation and hashing, password hashing.

Tokens are 256 bits from :mod:`secrets` behind a prefix that says what they are
(``fdr_admin_``, ``fdr_user_``, ``fdr_srv_``, ``fdr_cli_``), so a leaked token is recognisable
by secret scanners and by people. Only the SHA-256 of a token is stored: tokens have full
entropy, so a fast hash is enough and lookups stay O(1). Passwords have little entropy and get
argon2id, which is slow on purpose.
"""

from __future__ import annotations

import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fader_server.storage.ports import TokenKind

PREFIXES: dict[TokenKind, str] = {
    TokenKind.ADMIN: "fdr_admin_",
    TokenKind.USER: "fdr_user_",
    TokenKind.SERVER: "fdr_srv_",
    TokenKind.CLIENT: "fdr_cli_",
}

_hasher = PasswordHasher()


def new_token(kind: TokenKind) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _decoy() -> str:
    """A hash of a password nobody knows, made once: checked for unknown users, so a login
    for a name that does not exist takes as long as one for a name that does (no probing for
    usernames by timing)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check `password` against `password_hash`; None (an unknown user) does the same work and
    answers False."""
    try:
        return _hasher.verify(password_hash or _decoy(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
