"""Failed-login counters shared by every replica (:mod:`fader_server.services.login_throttle`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from fader_server.storage.ports.records import ThrottleCount, ThrottleKey


class LoginCounts(Protocol):
    def read_login_counts(
        self, keys: Sequence[ThrottleKey]
    ) -> dict[ThrottleKey, ThrottleCount]: ...

    def lock_login_counts(
        self, keys: Sequence[ThrottleKey], at: datetime
    ) -> dict[ThrottleKey, ThrottleCount]:
        """Every key's counter, created empty (window starting `at`) if missing, and locked
        until the transaction ends, so concurrent logins on any replica update it in turn."""
        ...

    def save_login_counts(self, counts: Sequence[ThrottleCount], at: datetime) -> None: ...

    def clear_login_counts(self, username: str) -> None:
        """Forget the username's counters (its own and its pairs'), not its addresses'."""
        ...

    def prune_login_counts(self, idle_before: datetime, trusted_before: datetime) -> int:
        """Delete counters untouched since `idle_before`, except pairs that logged in
        successfully since `trusted_before`; how many went."""
        ...
