"""SQL queries for single sign-on identities and the memberships it granted
(:class:`~fader_server.storage.ports.sso.SsoRows`).

A mixin of :class:`~fader_server.storage.sql.repository.SqlTransaction`; it relies on the
transaction's ``connection`` attribute.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from fader_server.errors import AlreadyExistsError
from fader_server.storage.sql.tables import sso_grants, sso_identities, users


class SsoQueries:
    connection: sa.Connection

    def find_sso_user(self, issuer: str, subject: str) -> int | None:
        c = sso_identities.c
        found = self.connection.execute(
            sa.select(c.user_id).where(c.issuer == issuer, c.subject == subject)
        ).scalar_one_or_none()
        return None if found is None else int(found)

    def link_sso_user(self, user_id: int, issuer: str, subject: str, at: datetime) -> None:
        # Two first logins of one person can race: the insert yields to the one that commits
        # first (as insert_user does) and the caller learns the identity is taken.
        sqlite = self.connection.dialect.name == "sqlite"
        insert = sqlite_dialect.insert if sqlite else postgresql.insert
        row = self.connection.execute(
            insert(sso_identities)
            .values(issuer=issuer, subject=subject, user_id=user_id, created_at=at)
            .on_conflict_do_nothing(index_elements=["issuer", "subject"])
            .returning(sso_identities.c.user_id)
        ).first()
        if row is None:
            raise AlreadyExistsError("this single sign-on identity is linked already")

    def sso_grants(self, user_id: int) -> dict[int, str]:
        c = sso_grants.c
        rows = self.connection.execute(sa.select(c.project_id, c.role).where(c.user_id == user_id))
        return {int(r.project_id): str(r.role) for r in rows}

    def set_sso_grant(self, project_id: int, user_id: int, role: str | None) -> None:
        c = sso_grants.c
        self.connection.execute(
            sa.delete(sso_grants).where(c.project_id == project_id, c.user_id == user_id)
        )
        if role is not None:
            self.connection.execute(
                sa.insert(sso_grants).values(project_id=project_id, user_id=user_id, role=role)
            )

    def set_instance_admin(self, user_id: int, instance_admin: bool) -> None:
        self.connection.execute(
            sa.update(users).where(users.c.id == user_id).values(instance_admin=instance_admin)
        )
