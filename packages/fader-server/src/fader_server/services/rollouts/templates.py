"""Use cases for release-plan templates (stages and gates saved per project); webhooks are
:mod:`fader_server.services.webhooks`.

A template is checked like a plan's stages and gates (segments exist, percentages grow) when it
is saved, and again when a plan is created from it, since a segment may have gone since.

Gate URLs must reach a public address unless the operator allows more
(:class:`~fader_server.services.outbound_policy.OutboundPolicy`, ``FADER_OUTBOUND_ALLOW``):
checked here, at creation, and again at every request, since DNS may change in between.
"""

from __future__ import annotations

from typing import Protocol

from fader_server.errors import NotFoundError
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy
from fader_server.services.rollouts import checks
from fader_server.services.versioning import Change, audit_entity
from fader_server.storage.ports import JSON, RolloutTemplate
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.rollouts import TemplateRows
from fader_server.storage.ports.store import Store


class RolloutSettingsTx(ProjectAccess, ResourceReads, TemplateRows, AuditLog, Protocol):
    """What template use cases touch (a template's segments are checked)."""


class RolloutTemplateService:
    def __init__(
        self,
        store: Store[RolloutSettingsTx],
        clock: Clock,
        outbound: OutboundPolicy = DENY_INTERNAL,
    ) -> None:
        self.store = store
        self.clock = clock
        self.outbound = outbound

    def create(
        self,
        principal: Principal,
        project_key: str,
        key: str,
        name: str,
        data: JSON,
        comment: str | None = None,
    ) -> RolloutTemplate:
        """`data`: ``stages``, ``gates`` and an optional ``split_by``."""
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            checks.check_template(tx, project, data, self.outbound)
            template = tx.insert_template(
                project.id, key, name, data, principal.actor, self.clock()
            )
            audit_entity(
                tx,
                project,
                change,
                "create",
                "rollout_template",
                key,
                [{"path": "/", "after": {"name": name, **data}}],
            )
            return template

    def list_templates(self, principal: Principal, project_key: str) -> list[RolloutTemplate]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            return tx.list_templates(project.id)

    def get(self, principal: Principal, project_key: str, key: str) -> RolloutTemplate:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.VIEWER)
            found = tx.get_template(project.id, key)
        if found is None:
            raise NotFoundError(f"rollout template '{key}' does not exist in '{project_key}'")
        return found

    def delete(
        self, principal: Principal, project_key: str, key: str, comment: str | None = None
    ) -> None:
        """Plans created from the template keep their copy of its stages and gates."""
        change = Change(principal, self.clock, comment)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.EDITOR)
            if not tx.delete_template(project.id, key):
                raise NotFoundError(f"rollout template '{key}' does not exist in '{project_key}'")
            audit_entity(tx, project, change, "delete", "rollout_template", key, [])
