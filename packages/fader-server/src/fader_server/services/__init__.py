"""Use cases. Services know storage only through the Protocols of
:mod:`fader_server.storage.ports`, and nothing of HTTP, the console or the command line."""

from __future__ import annotations

from dataclasses import dataclass

from fader_server.services.access import Clock, system_clock
from fader_server.services.change_requests.operations import Writers
from fader_server.services.change_requests.service import ChangeRequestService
from fader_server.services.environment_compare import EnvironmentCompareService
from fader_server.services.flags import FlagService
from fader_server.services.identity import IdentityService
from fader_server.services.imports import ImportService
from fader_server.services.incidents.service import IncidentService
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy
from fader_server.services.project_bundle import ProjectBundleService
from fader_server.services.projects import ProjectService
from fader_server.services.promotion import PromotionService
from fader_server.services.reports import ReportService
from fader_server.services.rollouts.commands import RolloutService
from fader_server.services.rollouts.templates import RolloutTemplateService
from fader_server.services.segments import SegmentService
from fader_server.services.usage import UsageService
from fader_server.services.webhooks import DeliveryQueue, WebhookService
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
    incidents: IncidentService
    rollout_templates: RolloutTemplateService
    webhooks: WebhookService
    deliveries: DeliveryQueue
    usage: UsageService
    change_requests: ChangeRequestService
    outbound: OutboundPolicy = DENY_INTERNAL
    """Where rollout gates and webhooks may connect (``FADER_OUTBOUND_ALLOW``)."""

    @property
    def environment_compare(self) -> EnvironmentCompareService:
        return EnvironmentCompareService(self.store)

    @property
    def promotion(self) -> PromotionService:
        """Promotion proposes through the change requests above (stateless: built on use)."""
        return PromotionService(self.store, self.change_requests)

    @property
    def project_bundles(self) -> ProjectBundleService:
        """Export and import of whole projects (stateless: built on use)."""
        return ProjectBundleService(
            self.store, self.flags.clock, self.flags, self.segments, self.outbound
        )

    @property
    def imports(self) -> ImportService:
        """Imports write through the change requests' writers (stateless: built on use)."""
        return ImportService(self.store, self.change_requests.clock, self.change_requests.writers)

    @classmethod
    def over(
        cls,
        store: Database,
        clock: Clock = system_clock,
        outbound: OutboundPolicy = DENY_INTERNAL,
        *,
        local_login: bool = True,
    ) -> Services:
        flags = FlagService(store, clock)
        segments = SegmentService(store, clock)
        rollouts = RolloutService(store, clock, flags, outbound)
        identity = IdentityService(store, clock, local_login=local_login)
        store.subscribe_accounts(identity.forget_principals)
        return cls(
            store=store,
            identity=identity,
            projects=ProjectService(store, clock),
            flags=flags,
            segments=segments,
            reports=ReportService(store, clock),
            rollouts=rollouts,
            incidents=IncidentService(store, clock),
            rollout_templates=RolloutTemplateService(store, clock, outbound),
            webhooks=WebhookService(store, clock, outbound),
            deliveries=DeliveryQueue(store),
            usage=UsageService(store, clock),
            change_requests=ChangeRequestService(store, clock, Writers(flags, segments, rollouts)),
            outbound=outbound,
        )
