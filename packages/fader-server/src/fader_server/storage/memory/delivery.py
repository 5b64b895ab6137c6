"""Snapshot revisions and SDK key checks, in memory (the SQL counterpart is
:mod:`fader_server.storage.sql.delivery`; what SDKs report is :mod:`.usage_rows`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fader_server.storage.memory.state import TransactionState
from fader_server.storage.ports import (
    PROJECT_SCOPE,
    EnvironmentChange,
    Project,
    ResourceType,
    TokenKind,
)


class DeliveryQueries(TransactionState):
    # --------------------------------------------------------------- revisions
    def bump_revisions(
        self, project: Project, environments: Sequence[str], at: datetime
    ) -> list[EnvironmentChange]:
        tables = self.write()
        bumped: list[EnvironmentChange] = []
        for environment in sorted(set(environments)):
            key = (project.id, environment)
            tables.revisions[key] = tables.revisions.get(key, 0) + 1
            bumped.append(
                EnvironmentChange(project.id, project.key, environment, tables.revisions[key])
            )
        self.changes.extend(bumped)
        return bumped

    def revision(self, project_id: int, environment: str) -> int:
        return self.tables.revisions.get((project_id, environment), 0)

    # ---------------------------------------------------------------- SDK keys
    def usable_keys(self, token_ids: Sequence[int], at: datetime) -> set[int]:
        usable: set[int] = set()
        for token_id in set(token_ids):
            token = self.tables.tokens.get(token_id)
            if (
                token is None
                or token.kind not in (TokenKind.SERVER, TokenKind.CLIENT)
                or token.revoked_at is not None
                or token.project_id not in self.tables.projects
                or (token.expires_at is not None and token.expires_at <= at)
            ):
                continue
            env = next(
                (
                    row.resource
                    for row in self.tables.resources.values()
                    if row.resource.project_id == token.project_id
                    and row.resource.type is ResourceType.ENVIRONMENT
                    and row.resource.scope == PROJECT_SCOPE
                    and row.resource.key == token.environment_key
                ),
                None,
            )
            if env is not None and not env.deleted:
                usable.add(token_id)
        return usable
