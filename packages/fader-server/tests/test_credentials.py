"""Password checks: right, wrong, and unknown users (which must cost the same work)."""

from __future__ import annotations

import pytest

from fader_server.services import credentials


def test_passwords_verify() -> None:
    stored = credentials.hash_password("correct horse")
    assert credentials.verify_password(stored, "correct horse")
    assert not credentials.verify_password(stored, "wrong horse")
    assert not credentials.verify_password("not-a-hash", "correct horse")


def test_an_unknown_user_costs_a_full_password_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answering unknown names without hashing would let anyone probe for usernames by timing."""
    checked: list[str] = []
    real = credentials._hasher

    class Counting:
        def hash(self, password: str) -> str:
            return real.hash(password)

        def verify(self, stored: str, password: str) -> bool:
            checked.append(stored)
            return real.verify(stored, password)

    monkeypatch.setattr(credentials, "_hasher", Counting())
    assert not credentials.verify_password(None, "anything")
    assert len(checked) == 1
    assert checked[0].startswith("$argon2id$")
    monkeypatch.undo()
    # And the decoy never matches what an attacker could send.
    assert not credentials.verify_password(None, "")
