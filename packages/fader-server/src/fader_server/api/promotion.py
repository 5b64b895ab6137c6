"""Environment comparison and promotion (docs/promotion.md).

``GET /api/v1/projects/{p}/environments/{a}/compare/{b}`` compares every flag's configuration
in environment A with B's, flag by flag (viewer role). ``POST
/api/v1/projects/{p}/promotions`` copies chosen flags' configurations from one environment to
another as ONE change request, whose operations carry the target's current versions as their
bases; applying it later checks those bases, so a target changed in between is reported, not
overwritten.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from pydantic import Field, StringConstraints

from fader_server.api import problems
from fader_server.api.change_request_schemas import ChangeRequestOut
from fader_server.api.change_requests import request_out
from fader_server.api.schemas import Key, Strict
from fader_server.api.security import Caller, Svc
from fader_server.services.environment_compare import (
    EnvironmentComparison,
    FlagComparison,
    Status,
)
from fader_server.services.promotion import MAX_FLAGS

router = APIRouter(
    prefix="/api/v1/projects/{project}", tags=["promotion"], responses=problems.API_ERRORS
)


class FieldChangeOut(Strict):
    field: str
    label: str
    a: str = Field(description="the field in environment A, in words")
    b: str = Field(description="the field in environment B, in words")


class ConfiguredOut(Strict):
    version: int = Field(description="0: never configured there (the default is served)")
    configuration: dict[str, Any]


class FlagComparisonOut(Strict):
    flag: str
    name: str
    status: Status
    a: ConfiguredOut
    b: ConfiguredOut
    changes: list[FieldChangeOut]
    paths: list[dict[str, Any]] = Field(
        description="`{path, before, after}` from B to A: what promoting A to B changes "
        "(at most 50 per flag)"
    )


class ComparisonOut(Strict):
    a: str
    b: str
    bucketing: dict[str, str] = Field(description="each environment's bucketing")
    counts: dict[Status, int]
    flags: list[FlagComparisonOut]


def _flag_out(found: FlagComparison) -> FlagComparisonOut:
    return FlagComparisonOut(
        flag=found.flag,
        name=found.name,
        status=found.status,
        a=ConfiguredOut(version=found.a.version, configuration=found.a.data),
        b=ConfiguredOut(version=found.b.version, configuration=found.b.data),
        changes=[FieldChangeOut(field=c.field, label=c.label, a=c.a, b=c.b) for c in found.changes],
        paths=list(found.paths),
    )


def comparison_out(found: EnvironmentComparison) -> ComparisonOut:
    return ComparisonOut(
        a=found.a,
        b=found.b,
        bucketing={found.a: found.bucketing[0], found.b: found.bucketing[1]},
        counts={s: found.count(s) for s in Status},
        flags=[_flag_out(f) for f in found.flags],
    )


@router.get("/environments/{a}/compare/{b}")
def compare_environments(project: str, a: str, b: str, svc: Svc, caller: Caller) -> ComparisonOut:
    """Every flag's configuration in environment `a` against `b`: same, configured only in
    one of them, or differs (with each differing field in words)."""
    return comparison_out(svc.environment_compare.compare(caller, project, a, b))


FlagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class PromotionProposalIn(Strict):
    """The request's rationale; `change` may be left empty: the promotion then writes what it
    copies and how each flag differed."""

    problem: Annotated[str, StringConstraints(max_length=5000)]
    change: Annotated[str, StringConstraints(max_length=5000)] = ""
    alternatives: Annotated[str, StringConstraints(max_length=5000)] = ""
    rollback: Annotated[str, StringConstraints(max_length=5000)] = ""


class PromotionIn(Strict):
    from_: Key = Field(alias="from", description="the source environment, e.g. staging")
    to: Key = Field(description="the target environment, e.g. production")
    flags: list[FlagKey] = Field(min_length=1, max_length=MAX_FLAGS)
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    proposal: PromotionProposalIn


@router.post("/promotions", status_code=status.HTTP_201_CREATED)
def promote(
    project: str, body: PromotionIn, svc: Svc, caller: Caller, response: Response
) -> ChangeRequestOut:
    """Propose copying the chosen flags' configurations from `from` to `to` as one change
    request, based on `to`'s current versions (always a request, even where `to` does not
    require them: a promotion is reviewable by design; there it is approved at once). Answers
    the created change request, like `POST .../change-requests`."""
    created = svc.promotion.promote(
        caller, project, body.from_, body.to, body.flags, body.title, body.proposal.model_dump()
    )
    response.headers["Location"] = (
        f"/api/v1/projects/{project}/change-requests/{created.request.id}"
    )
    return request_out(created, response)
