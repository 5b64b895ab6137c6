"""Use cases. Services know storage only through the Protocols of
:mod:`fader_server.storage.ports`, and nothing of HTTP, the console or the command line."""

from __future__ import annotations

from dataclasses import dataclass

from fader_server.services.access import Clock, system_clock
from fader_server.services.flags import FlagService
from fader_server.services.identity import IdentityService
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy
from fader_server.services.projects import ProjectService
from fader_server.services.reports import ReportService
from fader_server.services.rollouts.commands import RolloutService
from fader_server.services.rollouts.templates import RolloutTemplateService, WebhookService
from fader_server.services.segments import SegmentService
from fader_server.services.usage import UsageService
from fader_server.storage.ports.store import Database


@dataclass(frozen=True, slots=True)
class Services:
    """Every use case, built over one store; the API reaches them through ``app.state``."""

    store: Database
    identity: IdentityService
    projects: ProjectService
    flags: FlagService
    segments: SegmentService
    reports: ReportService
    rollouts: RolloutService
    rollout_templates: RolloutTemplateService
    webhooks: WebhookService
    usage: UsageService
    outbound: OutboundPolicy = DENY_INTERNAL
    """Where rollout gates and webhooks may connect (``FADER_OUTBOUND_ALLOW``)."""

    @classmethod
    def over(
        cls, store: Database, clock: Clock = system_clock, outbound: OutboundPolicy = DENY_INTERNAL
    ) -> Services:
        flags = FlagService(store, clock)
        return cls(
            store=store,
            identity=IdentityService(store, clock),
            projects=ProjectService(store, clock),
            flags=flags,
            segments=SegmentService(store, clock),
            reports=ReportService(store, clock),
            rollouts=RolloutService(store, clock, flags, outbound),
            rollout_templates=RolloutTemplateService(store, clock, outbound),
            webhooks=WebhookService(store, clock, outbound),
            usage=UsageService(store, clock),
            outbound=outbound,
        )
