"""Single sign-on: which person at which OpenID provider a Fader user is, and which of their
project memberships single sign-on granted (:mod:`fader_server.services.sso`).

A user is linked by the pair (issuer, subject), the one identifier OpenID Connect promises is
stable and unique; never by a username or an e-mail address, which a provider may let people
choose. The memberships single sign-on granted are recorded apart from the memberships
themselves, with the role granted, so that synchronising groups at each login removes only what
it granted: a role an administrator gave, or changed, by hand is left alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class SsoRows(Protocol):
    def find_sso_user(self, issuer: str, subject: str) -> int | None:
        """The id of the user linked to this identity, if any."""
        ...

    def link_sso_user(self, user_id: int, issuer: str, subject: str, at: datetime) -> None:
        """Link a user to an identity. Raises :class:`~fader_server.errors.AlreadyExistsError`
        if the identity is linked already, also by a transaction that committed after this
        one's check (two first logins of one person at the same moment)."""
        ...

    def sso_grants(self, user_id: int) -> dict[int, str]:
        """project id → the role single sign-on granted this user there (what it set last)."""
        ...

    def set_sso_grant(self, project_id: int, user_id: int, role: str | None) -> None:
        """Record that single sign-on granted this membership with `role` (None: forget)."""
        ...

    def set_instance_admin(self, user_id: int, instance_admin: bool) -> None:
        """Make a user an instance administrator or not (the provider's admin group)."""
        ...
