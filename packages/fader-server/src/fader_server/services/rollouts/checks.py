"""What makes a release plan (or a template) meaningful, checked against the project.

The API's models check shape (types, ranges); this module checks meaning and names the field
of each problem as a JSON pointer into the request (``/body/stages/2/percent``): the flag, the
environment and the segments exist, the control and the treatment are two different variants
of the flag, each stage has exactly one audience, percentages grow from stage to stage (a plan
only ever adds users), and threshold gates have something to compare against. Every stage's
flag configuration is then built and validated by the engine, as any configuration write is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from fader_server.errors import FieldProblem, InvalidInputError, InvalidStateError
from fader_server.rollout_logic.apply import base_problems, final_config, stage_config
from fader_server.rollout_logic.plan import JSON, Plan
from fader_server.services import documents
from fader_server.services.outbound_policy import DENY_INTERNAL, OutboundPolicy
from fader_server.storage.ports import PROJECT_SCOPE, Project, ResourceType
from fader_server.storage.ports.resources import ResourceReads
from fader_server.storage.ports.rollouts import TemplateRows

BODY = "/body"


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def stage_and_gate_problems(
    tx: ResourceReads,
    project: Project,
    stages: Sequence[JSON],
    gates: Sequence[JSON],
    outbound: OutboundPolicy = DENY_INTERNAL,
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    names: set[str] = set()
    highest: float | None = None
    for index, stage in enumerate(stages):
        at = f"{BODY}/stages/{index}"
        if stage["name"] in names:
            problems.append(FieldProblem(f"{at}/name", f"two stages are named '{stage['name']}'"))
        names.add(stage["name"])
        segment, percent = stage.get("segment"), stage.get("percent")
        if (segment is None) == (percent is None):
            problems.append(
                FieldProblem(at, "give a stage either a segment or a percent (exactly one)")
            )
        if segment is not None:
            found = tx.get_resource(project.id, ResourceType.SEGMENT, PROJECT_SCOPE, segment)
            if found is None or found.deleted:
                problems.append(
                    FieldProblem(
                        f"{at}/segment",
                        f"no segment '{segment}' in project '{project.key}'; create it first",
                    )
                )
        if percent is not None:
            if highest is not None and percent <= highest:
                problems.append(
                    FieldProblem(
                        f"{at}/percent",
                        f"percentages must increase from stage to stage: {percent:g} comes "
                        f"after {highest:g}",
                    )
                )
            highest = percent if highest is None else max(highest, percent)
    for index, gate in enumerate(gates):
        at = f"{BODY}/gates/{index}"
        kind = gate["kind"]
        if kind in ("prometheus", "http_check") and not _http_url(gate["url"]):
            problems.append(FieldProblem(f"{at}/url", "must be an http:// or https:// URL"))
        elif kind in ("prometheus", "http_check") and (refused := outbound.check_url(gate["url"])):
            problems.append(FieldProblem(f"{at}/url", refused))  # resolved now and at each read
        if kind == "prometheus":
            low, high = gate.get("min_value"), gate.get("max_value")
            if low is None and high is None:
                problems.append(FieldProblem(at, "set max_value, min_value or both"))
            elif low is not None and high is not None and low > high:
                problems.append(FieldProblem(f"{at}/min_value", "must not exceed max_value"))
    return problems


def with_template(tx: TemplateRows, project: Project, body: JSON) -> JSON:
    """The request with its template's stages, gates and split attribute filled in."""
    key = body.get("template")
    has_stages = body.get("stages") is not None
    if key is None:
        if not has_stages:
            raise InvalidInputError(
                "a release plan needs stages, or a template to take them from",
                [FieldProblem("/body/stages", "give stages, or name a template")],
            )
        return {**body, "gates": body.get("gates") or []}
    if has_stages or body.get("gates") is not None:
        raise InvalidInputError(
            "give either a template or stages and gates, not both",
            [FieldProblem("/body/template", "remove it, or remove stages and gates")],
        )
    template = tx.get_template(project.id, key)
    if template is None:
        raise InvalidInputError(
            f"no rollout template '{key}' in project '{project.key}'",
            [FieldProblem("/body/template", f"no template '{key}'; create it first")],
        )
    return {
        **body,
        "stages": template.data["stages"],
        "gates": template.data.get("gates") or [],
        "split_by": body.get("split_by") or template.data.get("split_by"),
    }


def check_template(
    tx: ResourceReads, project: Project, data: JSON, outbound: OutboundPolicy = DENY_INTERNAL
) -> None:
    problems = stage_and_gate_problems(tx, project, data["stages"], data["gates"], outbound)
    if problems:
        raise InvalidInputError("the template is not valid; fix the fields in `errors`", problems)


def check_plan(
    tx: ResourceReads,
    project: Project,
    body: JSON,
    base: JSON | None,
    outbound: OutboundPolicy = DENY_INTERNAL,
) -> Plan:
    """The plan `body` describes, or :class:`InvalidInputError` listing every problem.

    `base` is the flag's current configuration in the environment (None when the flag or the
    environment does not exist), from which every stage's configuration is built and checked.
    """
    problems: list[FieldProblem] = []
    flag = tx.get_resource(project.id, ResourceType.FLAG, PROJECT_SCOPE, body["flag"])
    if flag is None or flag.deleted:
        problems.append(
            FieldProblem(f"{BODY}/flag", f"no flag '{body['flag']}' in project '{project.key}'")
        )
    env = tx.get_resource(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, body["environment"])
    if env is None or env.deleted:
        problems.append(
            FieldProblem(
                f"{BODY}/environment",
                f"no environment '{body['environment']}' in project '{project.key}'",
            )
        )
    if flag is not None and not flag.deleted:
        variants: dict[str, Any] = flag.data.get("variants") or {}
        for field in ("control", "treatment"):
            if body[field] not in variants:
                known = ", ".join(sorted(variants))
                problems.append(
                    FieldProblem(
                        f"{BODY}/{field}",
                        f"flag '{flag.key}' has no variant '{body[field]}' (it has: {known})",
                    )
                )
    if body["control"] == body["treatment"]:
        problems.append(
            FieldProblem(f"{BODY}/treatment", "the treatment must differ from the control")
        )
    problems.extend(stage_and_gate_problems(tx, project, body["stages"], body["gates"], outbound))
    if problems:
        raise InvalidInputError(
            "the release plan is not valid; fix the fields in `errors`", problems
        )
    plan = Plan.from_dict(body)
    if base is not None and flag is not None:
        document = documents.build(tx, project, plan.environment)
        configs = [stage_config(base, plan, i) for i in range(len(plan.stages))]
        staged = []
        for config in [*configs, final_config(base, plan)]:
            entry = documents.flag_entry(flag.data, config)
            staged.append(
                (plan.environment, {**document, "flags": {**document["flags"], plan.flag: entry}})
            )
        documents.validate(staged)
    return plan


def check_base(plan: Plan, base: JSON, *, creating: bool) -> None:
    """Refuse a plan that cannot start from the flag's configuration `base` without taking
    something from someone (:func:`fader_server.rollout_logic.apply.base_problems`).

    The flag's state (off, or already serving the treatment to everyone) is a 409: the
    request is fine, the flag is not ready for it. A split attribute that clashes with the
    flag's bucketing is the request's own field (422) when the plan is created; at start, the
    configuration changed since, so it is the flag's state again."""
    found = base_problems(base, plan)
    fields = [(f"{BODY}/{name}", message) for name, message in found if name == "split_by"]
    if fields and creating:
        raise InvalidInputError(
            "the release plan does not fit the flag's configuration; fix the fields in `errors`",
            [FieldProblem(path, message) for path, message in fields],
        )
    if found:
        raise InvalidStateError("; ".join(message for _, message in found))


def check_webhook_url(url: str, outbound: OutboundPolicy = DENY_INTERNAL) -> None:
    if not _http_url(url):
        raise InvalidInputError(
            "a webhook needs an http:// or https:// URL",
            [FieldProblem(f"{BODY}/url", "must be an http:// or https:// URL")],
        )
    refused = outbound.check_url(url)
    if refused is not None:
        raise InvalidInputError(
            "Fader sends webhooks to internal addresses only when the operator allows them "
            "(FADER_OUTBOUND_ALLOW)",
            [FieldProblem(f"{BODY}/url", refused)],
        )
