"""The project dashboard: releases per team per week (a chart with its numbers), running
rollouts with their error-budget burn, post-mortems' overdue action items, stale flags (with
the number of days without evaluations that makes a flag unused, `?unused_days=`) and the most
recent changes. Definitions of "release" and "stale" are in
:mod:`fader_server.services.reports`; the burn is read from each plan's latest gate evidence
(:func:`fader_server.web.rollout_view.burn`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.rollout_logic.plan import ACTIVE, Status
from fader_server.services.access import Principal
from fader_server.services.incidents.records import ITEM_OVERDUE
from fader_server.services.reports import (
    MAX_UNUSED_DAYS,
    RELEASE_WEEKS,
    STALE_UNCHANGED_DAYS,
    UNUSED_DAYS,
)
from fader_server.services.rollouts.records import PlanStatus
from fader_server.web import charts, frame, history, rollout_charts, rollout_view
from fader_server.web.rendering import render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Svc

router = page_router()

RECENT = 8
MAX_OVERDUE = 20
MAX_RUNNING = 20
Param = Annotated[str | None, Query(max_length=200)]


def running(svc: Svc, principal: Principal, project: str) -> list[PlanStatus]:
    """Unfinished plans, oldest first. One query per status: the newest plans overall may all
    be finished, and a running plan must not drop off the panel because of them."""
    found = [
        plan
        for status in (Status.PENDING, *ACTIVE)
        for plan in svc.rollouts.list_plans(
            principal, project, limit=MAX_RUNNING, before_id=None, status=status.value
        )
    ]
    return sorted(found, key=lambda p: p.stored.id)[:MAX_RUNNING]


@router.get("/projects/{project}")
def dashboard(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    env: Param = None,
    unused_days: Param = None,
) -> Response:
    """`unused_days`: the stale report's threshold (a value it cannot take shows the default)."""
    view = frame.load(svc, session, project, env)
    days = UNUSED_DAYS
    if unused_days and unused_days.isascii() and unused_days.isdigit():
        days = min(max(int(unused_days), 1), MAX_UNUSED_DAYS)
    principal = session.principal
    report = svc.reports.releases(principal, project)
    recent = svc.projects.audit(principal, project, limit=RECENT, before_id=None)
    rollouts = []
    for plan in running(svc, principal, project):
        burn = rollout_view.burn(plan)
        bar = rollout_charts.burn_bar(burn, f"burn-{plan.stored.id}") if burn.ratio else None
        rollouts.append((plan, burn, bar))
    return render(
        request,
        "dashboard.html",
        {
            "session": session,
            "view": view,
            "section": "dashboard",
            "title": "Dashboard",
            "report": report,
            "chart": charts.releases(report) if report.teams else None,
            "summary": charts.summary(report),
            "week_labels": [charts.week_label(report, i) for i in range(len(report.weeks))],
            "weeks": RELEASE_WEEKS,
            "rollouts": rollouts,
            "rv": rollout_view,
            "stale": svc.reports.stale_flags(principal, project, unused_days=days),
            "stale_days": STALE_UNCHANGED_DAYS,
            "unused_days": days,
            "max_unused_days": MAX_UNUSED_DAYS,
            "recent": [history.entry(a, view) for a in recent],
            "overdue": svc.incidents.action_items(
                principal, project, status=ITEM_OVERDUE, limit=MAX_OVERDUE
            ),
        },
    )
