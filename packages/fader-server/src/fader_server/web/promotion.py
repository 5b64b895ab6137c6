"""Two environments side by side, and promoting chosen flags from one to the other as one
change request (:mod:`fader_server.services.promotion`).

The page is a GET form (choose A and B) and, below it, the comparison: every flag whose
configuration differs, each differing field in words for both sides, and a checkbox per flag.
"Promote as change request" posts the checked flags with a title and a proposal; the new
request's page follows, where it is reviewed and applied like any other. Anyone who can see
the project can compare; proposing takes the editor role (the service checks it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from starlette.responses import Response

from fader_server.errors import InvalidInputError, NotFoundError, VersionConflictError
from fader_server.services.environment_compare import STATUS_TEXT, EnvironmentComparison
from fader_server.web import frame, proposal_form
from fader_server.web.forms import CheckedForm, FieldErrors, sentence
from fader_server.web.frame import Environment, ProjectView
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
_PATH = "/projects/{project}/environments/_compare"


def _pair(view: ProjectView, a: str | None, b: str | None) -> tuple[Environment, Environment]:
    """The environments to compare: those asked for, else staging (or the first that is not
    the target) against production (or the console's default environment)."""
    envs = view.environments
    target = view.environment(b) if b else frame.default_environment(envs) or view.env
    if a:
        return view.environment(a), target
    source = next((e for e in envs if e.key == "staging" and e != target), None)
    source = source or next((e for e in envs if e != target), target)
    return source, target


def _page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    a: Environment,
    b: Environment,
    *,
    everything: bool = False,
    chosen: frozenset[str] = frozenset(),
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    comparison: EnvironmentComparison | None = None
    if a.key != b.key:
        comparison = svc.environment_compare.compare(
            session.principal, view.project.key, a.key, b.key
        )
    flags = [] if comparison is None else list(comparison.flags)
    shown = flags if everything else [f for f in flags if f.promotable]
    return render(
        request,
        "environments/compare.html",
        {
            "session": session,
            "view": view,
            "section": "environments",
            "title": f"Compare {a.name} with {b.name}",
            "a": a,
            "b": b,
            "comparison": comparison,
            "shown": shown,
            "same": sum(1 for f in flags if not f.promotable),
            "everything": everything,
            "status_text": {s: t.format(a=a.name, b=b.name) for s, t in STATUS_TEXT.items()},
            "chosen": chosen,
            "values": values or {},
            "sections": proposal_form.SECTIONS,
            "errors": errors,
            "action": view.href("environments/_compare"),
        },
        status=status,
    )


@router.get(_PATH)
def compare(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    env: Param = None,
    a: Param = None,
    b: Param = None,
    all: Param = None,
) -> Response:
    view = frame.load(svc, session, project, env)
    source, target = _pair(view, a, b)
    errors = None
    if source.key == target.key:
        errors = FieldErrors()
        errors.add("compare-b", "Choose two different environments to compare.")
    return _page(request, svc, session, view, source, target, everything=bool(all), errors=errors)


@router.post(_PATH)
def promote(
    request: Request, svc: Svc, session: CurrentSession, form: CheckedForm, project: str
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    source, target = _pair(view, form.text("a") or None, form.text("b") or None)
    flags = [v for k, v in form.items if k == "flag"]
    proposal = proposal_form.read(form)
    errors = FieldErrors()
    if not flags:
        errors.add("promote-flags", "Check at least one flag to promote.")
    if not errors:
        try:
            created = svc.promotion.promote(
                session.principal,
                project,
                source.key,
                target.key,
                flags,
                proposal.title,
                proposal.sections,
            )
        except InvalidInputError as exc:
            proposal_form.add_problems(errors, exc.detail, exc.problems)
        except (NotFoundError, VersionConflictError) as exc:
            errors.add(None, sentence(exc.detail))
    if errors:
        return _page(
            request,
            svc,
            session,
            view,
            source,
            target,
            everything=form.checked("all"),
            chosen=frozenset(flags),
            values=proposal.values(),
            errors=errors,
            status=422,
        )
    request_id = created.request.id
    return redirect(
        request,
        view.href(f"change-requests/{request_id}"),
        f"Proposed change request #{request_id}: promote {len(flags)} flag(s) from "
        f"{source.name} to {target.name}.",
    )
