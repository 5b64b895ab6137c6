"""One flag: its definition, its state in every environment, its rules in words, its usage
(evaluations over time as a chart with its numbers in a table, the variants served, when it was
last evaluated), and the "what does this user get" box, which evaluates a context with the
engine exactly as an SDK holding the environment's current configuration would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request
from starlette.responses import Response

from fader_engine.result import Reason, Resolution
from fader_server import strict_json
from fader_server.services.usage import CONTEXTS_NOTE, DEFAULT_PERIOD, PERIODS
from fader_server.storage.ports import JSON, Resource
from fader_server.web import frame, split_bucketing, usage_charts
from fader_server.web.clauses import describe
from fader_server.web.forms import CheckedForm, FieldErrors
from fader_server.web.frame import ProjectView
from fader_server.web.rendering import json_text, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
EXAMPLE_CONTEXT = '{\n  "targetingKey": "user-42",\n  "email": "ada@example.com"\n}'
REASONS = {
    Reason.STATIC: "The flag has no targeting here: everyone gets this variant.",
    Reason.TARGETING_MATCH: "A targeting rule matched this context.",
    Reason.SPLIT: "A percentage split placed this context in this variant.",
    Reason.DEFAULT: "No rule matched, so the default was served.",
    Reason.DISABLED: "The flag is off here (or a prerequisite is not met): the off variant "
    "was served.",
    Reason.ERROR: "The evaluation failed; the application would use its own default value.",
}


@dataclass(frozen=True, slots=True)
class RuleText:
    title: str
    conditions: list[str]
    serves: str


@dataclass(frozen=True, slots=True)
class EnvState:
    env: frame.Environment
    enabled: bool
    version: int
    last_evaluated: datetime | None = None


def serves(owner: JSON) -> str:
    if "split" in owner:
        split = owner.get("split") or {}
        parts = ", ".join(f"“{w['variant']}” {w['weight']}%" for w in split.get("weights") or [])
        hashed = split_bucketing.describe(split.get("bucketing"))
        how = f" with {hashed}" if hashed else ""
        return f"a percentage split: {parts} (bucketed by {split_bucketing.seed_words(split)}{how})"
    return f"“{owner.get('variant')}”"


def rules_in_words(config: JSON) -> list[RuleText]:
    out = []
    for index, rule in enumerate(config.get("rules") or [], start=1):
        name = f"Rule {index}" + (f" “{rule['id']}”" if rule.get("id") else "")
        conditions = [describe(c) for c in rule.get("clauses") or []] or ["everyone"]
        out.append(RuleText(name, conditions, serves(rule)))
    return out


@dataclass(frozen=True, slots=True)
class Evaluation:
    environment: str
    value: str
    variant: str | None
    reason: str
    explanation: str
    error: str | None


def evaluation(resolution: Resolution, environment: str) -> Evaluation:
    error = None
    if resolution.error_code is not None:
        error = f"{resolution.error_code}: {resolution.error_message or ''}".strip(": ")
    return Evaluation(
        environment,
        json_text(resolution.value),
        resolution.variant,
        str(resolution.reason),
        REASONS.get(resolution.reason, ""),
        error,
    )


def _page(
    request: Request,
    svc: Svc,
    session: Session,
    view: ProjectView,
    flag: Resource,
    *,
    context_text: str = EXAMPLE_CONTEXT,
    result: Evaluation | None = None,
    errors: FieldErrors | None = None,
    eval_env: str | None = None,
    period: str = DEFAULT_PERIOD,
    status: int = 200,
) -> Response:
    principal = session.principal
    states = []
    config: JSON = {}
    version = 0
    last = svc.usage.last_evaluated(principal, view.project.key, flag.key)
    for env in view.environments:
        found = svc.flags.get_config(principal, view.project.key, env.key, flag.key)
        enabled = bool(found.data.get("enabled", True))
        states.append(EnvState(env, enabled, found.version, last.get(env.key)))
        if env.key == view.env.key:
            config, version = found.data, found.version
    usage = None
    if view.env.key:
        usage = svc.usage.flag_usage(principal, view.project.key, flag.key, view.env.key, period)
    return render(
        request,
        "flags/detail.html",
        {
            "session": session,
            "view": view,
            "section": "flags",
            "title": f"{flag.data.get('name') or flag.key} ({flag.key})",
            "flag": flag,
            "data": flag.data,
            "states": states,
            "config": config,
            "config_version": version,
            "rules": rules_in_words(config),
            "default_serves": serves(config.get("default") or {}),
            "off_variant": config.get("offVariant"),
            "context_text": context_text,
            "result": result,
            "errors": errors,
            "eval_env": eval_env or view.env.key,
            "usage": usage,
            "usage_chart": usage_charts.evaluations_chart(usage) if usage else None,
            "usage_summary": usage_charts.summary(usage) if usage else "",
            "step_label": usage_charts.step_label,
            "periods": PERIODS.values(),
            "contexts_note": CONTEXTS_NOTE,
            "scheduled": svc.change_requests.scheduled_for_flag(
                principal, view.project.key, flag.key
            ),
        },
        status=status,
    )


@router.get("/projects/{project}/flags/{flag}")
def flag_detail(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    project: str,
    flag: str,
    env: Param = None,
    period: Param = None,
) -> Response:
    """`period`: the usage chart's (an unknown one shows the default)."""
    view = frame.load(svc, session, project, env)
    found = svc.flags.get(session.principal, project, flag)
    chosen = period if period in PERIODS else DEFAULT_PERIOD
    return _page(request, svc, session, view, found, period=chosen)


@router.post("/projects/{project}/flags/{flag}/evaluate")
def evaluate(
    request: Request,
    svc: Svc,
    session: CurrentSession,
    form: CheckedForm,
    project: str,
    flag: str,
) -> Response:
    view = frame.load(svc, session, project, form.text("env") or None)
    target = view.environment(form.text("eval-env") or view.env.key)
    found = svc.flags.get(session.principal, project, flag)
    text = form.get("context")
    errors = FieldErrors()
    context: Any = None
    try:
        context = strict_json.decode(text)
    except strict_json.JsonInputError as exc:
        errors.add("context", exc.problems[0].message if exc.problems else "Invalid JSON.")
    except json.JSONDecodeError as exc:
        errors.add("context", f"This is not valid JSON ({exc.msg} at line {exc.lineno}).")
    else:
        if not isinstance(context, dict):
            errors.add(
                "context",
                'The context must be a JSON object, e.g. {"targetingKey": "user-42"}.',
            )
    if errors:
        return _page(
            request,
            svc,
            session,
            view,
            found,
            context_text=text,
            errors=errors,
            eval_env=target.key,
            status=422,
        )
    resolution = svc.flags.evaluate(session.principal, project, target.key, flag, context)
    return _page(
        request,
        svc,
        session,
        view,
        found,
        context_text=text,
        result=evaluation(resolution, target.name),
        eval_env=target.key,
    )
