"""Use cases for release-plan templates (stages and gates saved per project) and for the
webhooks that hear about rollouts.

A template is checked like a plan's stages and gates (segments exist, percentages grow) when it
is saved, and again when a plan is created from it, since a segment may have gone since.

A webhook's secret is generated here (or given by the caller), stored as is because every
delivery is signed with it, and returned only in the answer to the creation.

Gate and webhook URLs must reach a public address unless the operator allows more
(:class:`~fader_server.services.outbound_policy.OutboundPolicy`, ``FADER_OUTBOUND_ALLOW``):
checked here, at creation, and again at every request, since DNS may change in between.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from fader_server.errors import NotFoundError
from fader_server.services.access import Clock, Principal, Role, load_project
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy
from fader_server.services.rollouts import checks
from fader_server.services.versioning import Change, audit_entity
from fader_server.storage.ports import JSON, RolloutTemplate, Webhook
from fader_server.storage.ports.audit import AuditLog
from fader_server.storage.ports.projects import ProjectAccess
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.rollouts import TemplateRows, WebhookRows
from fader_server.storage.ports.store import Store


class RolloutSettingsTx(
    ProjectAccess, ResourceReads, TemplateRows, WebhookRows, AuditLog, Protocol
):
    """What template and webhook use cases touch (a template's segments are checked)."""


SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix that tells secrets apart, not a secret


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


class WebhookService:
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
        url: str,
        description: str = "",
        secret: str | None = None,
    ) -> Webhook:
        """Register `url`; the returned webhook carries its secret (the only time it does)."""
        change = Change(principal, self.clock, None)
        # The role first (the URL check must tell nothing to someone who may not add
        # webhooks), then the URL: its host is resolved outside the write transaction.
        with self.store.read() as tx:
            load_project(tx, principal, project_key, Role.ADMIN)
        checks.check_webhook_url(url, self.outbound)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            webhook = tx.insert_webhook(
                project.id,
                url,
                description,
                secret or SECRET_PREFIX + secrets.token_urlsafe(32),
                principal.actor,
                self.clock(),
            )
            # The audit log names the webhook, never its URL (a Slack URL is a credential).
            audit_entity(tx, project, change, "create", "webhook", str(webhook.id), [])
            return webhook

    def list_webhooks(self, principal: Principal, project_key: str) -> list[Webhook]:
        with self.store.read() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            return tx.list_webhooks(project.id)

    def delete(self, principal: Principal, project_key: str, webhook_id: int) -> None:
        change = Change(principal, self.clock, None)
        with self.store.transaction() as tx:
            project = load_project(tx, principal, project_key, Role.ADMIN)
            if not tx.delete_webhook(project.id, webhook_id):
                raise NotFoundError(f"webhook {webhook_id} does not exist in '{project_key}'")
            audit_entity(tx, project, change, "delete", "webhook", str(webhook_id), [])
