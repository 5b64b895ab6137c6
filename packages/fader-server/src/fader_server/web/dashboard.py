"""The project dashboard: releases per team per week (a chart with its numbers), stale flags
and the most recent changes. Definitions of "release" and "stale" are in
:mod:`fader_server.services.reports`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.services.reports import RELEASE_WEEKS, STALE_UNCHANGED_DAYS
from fader_server.web import charts, frame, history
from fader_server.web.rendering import render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Svc

router = page_router()

RECENT = 8
Param = Annotated[str | None, Query(max_length=200)]


@router.get("/projects/{project}")
def dashboard(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    principal = session.principal
    report = svc.reports.releases(principal, project)
    recent = svc.projects.audit(principal, project, limit=RECENT, before_id=None)
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
            "stale": svc.reports.stale_flags(principal, project),
            "stale_days": STALE_UNCHANGED_DAYS,
            "recent": [history.entry(a, view) for a in recent],
        },
    )
