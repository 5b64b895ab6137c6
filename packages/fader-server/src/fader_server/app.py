"""The one place where the server is wired: settings → SQL store → services → runtime (the
rollout scheduler and its gate reader, the webhook delivery worker, usage retention, the
delivery hub) →
FastAPI app.

Only this module and ``cli`` construct :mod:`fader_server.storage.sql`; everything else gets
its collaborators passed in (docs/architecture.md shows the layers and the import rules
``make lint`` checks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

from fastapi import FastAPI

from fader_server import logs, web
from fader_server.api import bundles as bundle_api
from fader_server.api import change_requests as change_request_api
from fader_server.api import flags, health, identity, ofrep, problems, projects, sdk, segments
from fader_server.api import imports as import_api
from fader_server.api import incidents as incident_api
from fader_server.api import promotion as promotion_api
from fader_server.api import rollouts as rollout_api
from fader_server.api import sso as sso_api
from fader_server.api import usage as usage_api
from fader_server.api import webhooks as webhook_api
from fader_server.api.body_limit import answer_in_routes
from fader_server.api.edge import FaderApp
from fader_server.api.http_metrics import HttpMetrics
from fader_server.api.sdk_fast_path import SdkFastPath
from fader_server.delivery.loop_monitor import LoopMonitor
from fader_server.delivery.service import Delivery
from fader_server.runtime.escalation import Escalation
from fader_server.runtime.gate_reader import GateReader
from fader_server.runtime.oidc import single_sign_on
from fader_server.runtime.retention import Retention
from fader_server.runtime.scheduled_changes import ScheduledChanges
from fader_server.runtime.scheduler import Scheduler
from fader_server.runtime.webhook_delivery import DeliveryWorker
from fader_server.services import Services
from fader_server.services.access import Clock, system_clock
from fader_server.services.bootstrap import FirstRun
from fader_server.services.outbound_policy import OutboundPolicy
from fader_server.settings import Settings
from fader_server.storage.sql.store import SqlStore
from fader_server.web import api_docs

if TYPE_CHECKING:
    from fader_server.delivery.flagd_sync.server import FlagSyncServer

API_DESCRIPTION = """Fader's admin API. Authenticate with `Authorization: Bearer <token>`.
Errors are RFC 9457 problem details with a `category`. Updates need `If-Match` with the
`ETag` you read (428 without, 412 when stale)."""


def open_services(
    settings: Settings, clock: Clock = system_clock
) -> tuple[Services, FirstRun | None]:
    """Connect, migrate, and create the first admin if the database is new. `clock`: what
    every use case, the scheduler and the receive time of SDK summaries read (tests move it)."""
    store = SqlStore.open(
        settings.effective_database_url,
        listen_url=settings.listen_url,
        transaction_pooler=settings.database_pooler == "transaction",
        sqlite_watch=settings.sqlite_watch_seconds if settings.workers > 1 else None,
    )
    services = Services.over(
        store,
        clock,
        OutboundPolicy.parse(settings.outbound_allow),
        local_login=settings.local_login,
    )
    first_run = services.identity.bootstrap(settings.admin_password, settings.admin_token)
    return services, first_run


async def _start_flagd_sync(settings: Settings, delivery: Delivery) -> FlagSyncServer | None:
    """flagd's gRPC flag-sync service on its own port, when one is configured, on the running
    (the HTTP server's) loop. Imported only then: its generated protobuf module claims the
    ``flagd.sync.v1`` names in the process-wide descriptor pool (see the package docstring)."""
    if settings.flagd_sync_port is None:
        return None
    from fader_server.delivery.flagd_sync.server import FlagSyncServer  # noqa: PLC0415

    server = FlagSyncServer(
        delivery, settings.flagd_sync_host or settings.host, settings.flagd_sync_port
    )
    await server.start()
    return server


def create_app(
    settings: Settings, services: Services | None = None, *, log_stream: TextIO | None = None
) -> FastAPI:
    """Build the ASGI app; `services` may be passed in (the CLI bootstraps them first)."""
    logs.configure(log_stream, json=settings.log_json)
    if services is None:
        services, _ = open_services(settings)
    delivery = Delivery.over(
        services,
        heartbeat=settings.sse_heartbeat_seconds,
        events_per_second=settings.sdk_events_per_second,
        client_events_per_second=settings.client_events_per_second,
        summary_window=settings.summary_window_seconds,
    )
    clock = services.identity.clock
    scheduler = Scheduler(
        services.store,
        services.rollouts,
        clock=lambda: clock().timestamp(),  # the services' clock: plans and ticks agree
        reader=GateReader(policy=services.outbound),
    )
    webhooks = DeliveryWorker(
        services.deliveries,
        public_url=settings.effective_public_url,
        clock=clock,
        policy=services.outbound,
    )
    escalation = Escalation(services.incidents)  # reads the services' clock, as plans do
    scheduled_changes = ScheduledChanges(services.change_requests, clock)
    retention = Retention(
        services.store,
        minutes=timedelta(days=settings.usage_minutes_days),
        hours=timedelta(days=settings.usage_hours_days),
        clock=clock,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        flagd_sync = await _start_flagd_sync(settings, delivery)  # first: it may fail to bind
        loop_monitor.start()
        if settings.rollout_tick_seconds > 0:
            scheduler.start(settings.rollout_tick_seconds)
        retention.start()
        if settings.scheduled_changes_tick_seconds > 0:
            scheduled_changes.start(settings.scheduled_changes_tick_seconds)
        webhooks.start()
        if settings.escalation_seconds > 0:
            escalation.start(settings.escalation_seconds)
        yield
        if flagd_sync is not None:
            await flagd_sync.stop()
        escalation.close()
        retention.close()
        scheduled_changes.close()
        webhooks.close()
        scheduler.close()
        services.identity.token_use.close()  # write the last "last used" times
        delivery.close()  # write the summaries still queued
        await delivery.hub.aclose()
        loop_monitor.stop()

    app = FaderApp(
        title="Fader",
        version="1",
        description=API_DESCRIPTION,
        docs_url=None,  # /docs and /redoc: web.api_docs, with assets served by Fader
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.delivery = delivery
    app.state.scheduler = scheduler
    app.state.retention = retention
    app.state.scheduled_changes = scheduled_changes
    app.state.webhooks = webhooks
    app.state.escalation = escalation
    app.state.sso = single_sign_on(
        settings.sso_config,
        settings.sso_secrets,
        services.outbound,
        services.store,
        services.identity,
        local_login=settings.local_login,
        public_url=settings.public_url,
    )
    app.state.metrics = HttpMetrics(settings.metrics_token)
    scheduler.export_metrics(app.state.metrics.registry)
    app.state.metrics.watch_streams(
        lambda: delivery.hub.streams, lambda: delivery.hub.direct_streams
    )
    app.state.metrics.watch_key_cache(lambda: delivery.keys.clears)
    loop_monitor = LoopMonitor(app.state.metrics.registry)
    app.state.loop_monitor = loop_monitor
    problems.install(app)
    for module in (projects, flags, segments, identity, sdk, ofrep, health):
        app.include_router(module.router)
    app.include_router(rollout_api.router)
    app.include_router(incident_api.router)
    app.include_router(usage_api.router)
    app.include_router(webhook_api.router)
    app.include_router(change_request_api.router)
    app.include_router(promotion_api.router)
    app.include_router(import_api.router)
    app.include_router(bundle_api.router)
    app.include_router(sso_api.router)
    web.install(app)
    api_docs.install(app)
    answer_in_routes(app)
    app.install_edge(
        metrics=app.state.metrics,
        max_body_bytes=settings.max_body_bytes,
        fast_path=SdkFastPath(delivery),
    )
    return app
