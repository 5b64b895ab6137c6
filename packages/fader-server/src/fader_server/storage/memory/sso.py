"""The in-memory store's single sign-on identities and grants
(:class:`~fader_server.storage.ports.sso.SsoRows`), as :mod:`fader_server.storage.sql.sso`."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from fader_server.errors import AlreadyExistsError
from fader_server.storage.memory.state import TransactionState


class SsoQueries(TransactionState):
    def find_sso_user(self, issuer: str, subject: str) -> int | None:
        return self.tables.sso_identities.get((issuer, subject))

    def link_sso_user(self, user_id: int, issuer: str, subject: str, at: datetime) -> None:
        tables = self.write()
        if (issuer, subject) in tables.sso_identities:
            raise AlreadyExistsError("this single sign-on identity is linked already")
        if user_id not in tables.users:
            raise self.conflict()
        tables.sso_identities[(issuer, subject)] = user_id

    def sso_grants(self, user_id: int) -> dict[int, str]:
        return {p: role for (p, u), role in self.tables.sso_grants.items() if u == user_id}

    def set_sso_grant(self, project_id: int, user_id: int, role: str | None) -> None:
        tables = self.write()
        if role is None:
            tables.sso_grants.pop((project_id, user_id), None)
            return
        if project_id not in tables.projects or user_id not in tables.users:
            raise self.conflict()
        tables.sso_grants[(project_id, user_id)] = role

    def set_instance_admin(self, user_id: int, instance_admin: bool) -> None:
        tables = self.write()
        found = tables.users.get(user_id)
        if found is not None:
            tables.users[user_id] = replace(found, instance_admin=instance_admin)
