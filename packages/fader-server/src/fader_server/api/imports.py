"""Importing flags from another system, or a Fader project bundle (docs/migration.md).

``POST /api/v1/projects/{project}/imports`` with ``{"source": "launchdarkly" | "unleash" |
"flagd", "environment": ..., "document": ...}`` translates the document into the environment,
verifies it when given ``contexts`` (or ``generate_contexts``) by evaluating every flag with the
source system's own SDK and with Fader, and writes it in one transaction. Answers 201 with the
import report when something was written, 200 for a dry run (or when nothing differs), and a
422 problem carrying the ``report`` when verification found differences that were not accepted
(``accept_differences``). A missing source SDK (the server's ``migrate`` extra) is a 503 the
operator fixes. ``"source": "fader"`` imports a bundle written by ``GET .../export`` (the
document is the bundle; it names its environments itself).

The handler is a plain function, so FastAPI runs it in its thread pool: the source SDKs'
evaluations never block the event loop. The body is held to the server's body limit like every
request, and the contexts to the parity check's own limits.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from fader_server.api import problems
from fader_server.api.schemas import Comment, Key, Strict
from fader_server.api.security import Caller, Svc
from fader_server.errors import FieldProblem, InvalidInputError
from fader_server.migration.contexts import MAX_CONTEXTS
from fader_server.migration.model import SourceSDKMissingError
from fader_server.services import imports, project_bundle
from fader_server.storage.ports import JSON

router = APIRouter(
    prefix="/api/v1/projects/{project}", tags=["imports"], responses=problems.API_ERRORS
)

SourceName = Literal["launchdarkly", "unleash", "flagd", "fader"]


class ImportIn(Strict):
    source: SourceName = Field(description="the system the document comes from")
    environment: Key | None = Field(
        default=None,
        description="the environment to import into (required, except for a Fader bundle, "
        "which names its environments)",
    )
    document: dict[str, Any] = Field(
        description="the source system's document: a LaunchDarkly or Unleash export, a flagd "
        "flag-definition document, or a Fader project bundle"
    )
    contexts: Annotated[list[dict[str, Any]], Field(max_length=MAX_CONTEXTS)] | None = Field(
        default=None, description="evaluation contexts to verify with (targetingKey + attributes)"
    )
    generate_contexts: Annotated[int, Field(ge=1, le=MAX_CONTEXTS)] | None = Field(
        default=None,
        description="verify with this many contexts generated from the translated rules",
    )
    accept_differences: bool = Field(
        default=False, description="write even when verification found differences"
    )
    dry_run: bool = Field(default=False, description="translate and verify; write nothing")
    comment: Comment = None


class AnswerOut(Strict):
    value: Any = Field(description="the value served (null: the caller's default)")
    variant: str | None = Field(description="the source's name for what it served")
    detail: str


class DisagreementOut(Strict):
    context: dict[str, Any]
    source: AnswerOut
    fader: AnswerOut


class FlagParityOut(Strict):
    flag: str = Field(description="the flag's key in the source")
    fader_flag: str
    contexts: int
    agreed: int
    disagreed: int
    nondeterministic: int = Field(description="contexts the source answers by chance")
    examples: list[DisagreementOut] = Field(description="the first disagreements (at most 5)")


class ParityOut(Strict):
    contexts: int
    evaluations: int
    agreed: int
    disagreed: int
    agreement: float = Field(description="share of deterministic evaluations that agreed, 0..1")
    complete: bool = Field(description="every deterministic evaluation agreed")
    flags: list[FlagParityOut]


class ImportedKeysOut(Strict):
    flags: list[str]
    segments: list[str]


class UnsupportedOut(Strict):
    construct_: str = Field(alias="construct", description="which construct, and where")
    detail: str
    flag: str | None = None
    segment: str | None = None


class ImportReportOut(Strict):
    """What an import from another system did (or, in a dry run, would do)."""

    source: Literal["launchdarkly", "unleash", "flagd"]
    environment: str
    dry_run: bool
    created: ImportedKeysOut
    updated: ImportedKeysOut
    unchanged: ImportedKeysOut
    keys: dict[str, str] = Field(description="source keys imported under another Fader key")
    unsupported: list[UnsupportedOut] = Field(
        description="constructs with no exact Fader equivalent: not imported, never approximated"
    )
    notes: list[str]
    parity: ParityOut | None = Field(description="null when the import was not verified")
    refused: bool = Field(description="verification found differences that were not accepted")
    written: bool


class BundleImportReportOut(BaseModel):
    """What importing a Fader project bundle did (``docs/backup-and-move.md`` has the fields)."""

    model_config = ConfigDict(extra="allow")
    source: Literal["fader"]
    dry_run: bool
    written: bool


def _refused(detail: str, report: JSON) -> JSONResponse:
    """The 422 problem for an import verification refused, with the report it is about."""
    body = {
        "type": "urn:fader:problem:parity-refused",
        "title": "Import refused",
        "status": 422,
        "detail": detail,
        "category": "user_fixable",
        "report": report,
    }
    return JSONResponse(body, status_code=422, media_type="application/problem+json")


def _sdk_missing(exc: SourceSDKMissingError) -> JSONResponse:
    return problems.problem(
        503, "source-sdk-missing", "Source SDK not installed", str(exc), "operator_fixable"
    )


@router.post(
    "/imports",
    status_code=status.HTTP_201_CREATED,
    response_model=ImportReportOut | BundleImportReportOut,
    responses={
        200: {
            "description": "a dry run, or an import that found nothing to change",
            "model": ImportReportOut | BundleImportReportOut,
        },
    },
)
def import_flags(
    project: str, body: ImportIn, svc: Svc, caller: Caller, response: Response
) -> ImportReportOut | BundleImportReportOut | JSONResponse:
    """Import another system's flags (or a Fader bundle) into the project, verified with the
    source system's own SDK when contexts are given; refused below 100% agreement unless
    `accept_differences`. Needs what the same direct writes need (editor; admin in a protected
    environment; a change request where the environment requires them)."""
    try:
        if body.source == "fader":
            report = svc.project_bundles.import_bundle(
                caller,
                project,
                body.document,
                contexts=body.contexts,
                generate_contexts=body.generate_contexts,
                accept_differences=body.accept_differences,
                dry_run=body.dry_run,
            )
            response.status_code = 201 if report.get("written") else 200
            return BundleImportReportOut.model_validate(report)
        if body.environment is None:
            raise InvalidInputError(
                "name the environment to import into",
                [FieldProblem("/body/environment", f"required for source '{body.source}'")],
            )
        request = imports.ImportRequest(
            source=body.source,
            environment=body.environment,
            document=body.document,
            contexts=body.contexts,
            generate=body.generate_contexts,
            accept_differences=body.accept_differences,
            dry_run=body.dry_run,
            comment=body.comment,
        )
        found = svc.imports.import_flags(caller, project, request)
    except SourceSDKMissingError as exc:
        return _sdk_missing(exc)
    except (imports.ParityRefusedError, project_bundle.ParityRefusedError) as exc:
        return _refused(exc.detail, exc.report)
    response.status_code = 201 if found["written"] else 200
    return ImportReportOut.model_validate(found)
