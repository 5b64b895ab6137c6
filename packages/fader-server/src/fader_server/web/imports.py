"""Importing into a project from the console, and exporting the project as a bundle.

The import page takes a source document (a LaunchDarkly or Unleash export, a flagd document, or
a Fader project bundle), the environment to import into (a bundle names its own), and the
contexts to verify with: a JSON-lines file, or a number of contexts generated from the
translated rules. **Preview** is the import as a dry run
(:class:`~fader_server.services.imports.ImportService`,
:class:`~fader_server.services.project_bundle.ProjectBundleService`): what would be created,
updated or left alone, what could not be translated, and the parity table of the source
system's own answers against Fader's. **Import** then runs the same import for real.

The previewed document is not uploaded twice: the report page carries it (as compact JSON) and
the contexts in hidden fields of the import form, a ``multipart/form-data`` form like the
upload, so it costs the request body what the file did and stays under the same body cap as
the API. Those fields come back from the browser, so nothing is trusted: the import translates
and verifies them again, and the service refuses an import whose verification found
differences unless "accept the differences" is ticked, whatever the page showed.

Importing takes the editor role (and what the same direct writes need: admin in a protected
environment, a change request where the environment requires them); viewers see the page
without its forms, and a viewer's post is refused before anything is read. Exporting takes the
editor role too, as in the API (a bundle is the first half of a write).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Query, Request
from starlette.responses import JSONResponse, Response

from fader_server import strict_json
from fader_server.errors import (
    FaderServerError,
    FieldProblem,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    VersionConflictError,
)
from fader_server.migration import contexts as context_files
from fader_server.migration.model import SourceSDKMissingError
from fader_server.services import imports, project_bundle
from fader_server.services.access import Principal
from fader_server.storage.ports import JSON
from fader_server.web import frame, import_report
from fader_server.web.forms import FieldErrors, sentence
from fader_server.web.frame import ProjectView
from fader_server.web.import_report import BUNDLE, SOURCE_LABELS, SOURCES, ReportView
from fader_server.web.rendering import redirect, render
from fader_server.web.routing import page_router
from fader_server.web.session import CurrentSession, Session, Svc
from fader_server.web.uploads import CheckedUpload, UploadForm

router = page_router()

Param = Annotated[str | None, Query(max_length=200)]
_PATH = "/projects/{project}/import"
DEFAULT_GENERATE = "200"
_FIELDS = {
    "/body/source": "import-source",
    "/body/environment": "import-environment",
    "/body/document": "import-document",
    "/body/contexts": "import-contexts",
    "/body/generate_contexts": "import-generate",
}
"""Where the services' problems land on the upload form."""
_SHOWN_PROBLEMS = 10


@dataclass(frozen=True, slots=True)
class Kept:
    """What the import form carries from the preview to the import: the choices, the document
    as compact JSON and the uploaded contexts as a JSON array ('' when none were uploaded)."""

    source: str
    environment: str
    document: str
    contexts: str
    generate: str


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _require_edit(view: ProjectView) -> None:
    if not view.can_edit:
        raise PermissionDeniedError(
            f"importing into project '{view.project.key}' needs the editor role; you have "
            f"{view.role.label}. Ask a project admin."
        )


def _page(
    request: Request,
    session: Session,
    view: ProjectView,
    values: dict[str, str],
    *,
    kept: Kept | None = None,
    report: ReportView | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "imports/page.html",
        {
            "session": session,
            "view": view,
            "section": "environments",
            "title": "Import flags",
            "sources": SOURCES,
            "environments": [
                (e.key, e.name + (" (protected)" if e.protected else "")) for e in view.environments
            ],
            "values": values,
            "kept": kept,
            "report": report,
            "errors": errors,
            "max_contexts": context_files.MAX_CONTEXTS,
            "action": view.href("import"),
            "export": view.can_edit,
        },
        status=status,
    )


@router.get(_PATH)
def import_page(
    request: Request, svc: Svc, session: CurrentSession, project: str, env: Param = None
) -> Response:
    view = frame.load(svc, session, project, env)
    values = {"source": "launchdarkly", "environment": view.env.key, "generate": DEFAULT_GENERATE}
    return _page(request, session, view, values)


# ------------------------------------------------------------------------------ reading
def _document(upload: UploadForm, errors: FieldErrors) -> str:
    """The uploaded source document as compact JSON ('' with an error when unusable)."""
    found = upload.files.get("document")
    if found is None:
        errors.add("import-document", "Choose the file to import.")
        return ""
    try:
        document = strict_json.decode(found.data)
    except strict_json.JsonInputError as exc:
        errors.add("import-document", f"{found.filename}: {sentence(str(exc))}")
        return ""
    except ValueError as exc:  # not JSON, or not text
        errors.add("import-document", f"{found.filename} is not a JSON document ({exc}).")
        return ""
    if not isinstance(document, dict):
        errors.add("import-document", f"{found.filename} must hold a JSON object.")
        return ""
    return _compact(document)


def _contexts(upload: UploadForm, errors: FieldErrors) -> str:
    """The uploaded contexts file as a JSON array ('' when none was given or it is unusable)."""
    found = upload.files.get("contexts")
    if found is None:
        return ""
    try:
        text = found.data.decode("utf-8")
        contexts = context_files.read_jsonl(text.splitlines(), name=found.filename)
    except UnicodeDecodeError:
        errors.add("import-contexts", f"{found.filename} is not UTF-8 text.")
        return ""
    except context_files.ContextsError as exc:
        errors.add("import-contexts", sentence(str(exc)))
        return ""
    if not contexts:
        errors.add("import-contexts", f"{found.filename} holds no contexts.")
        return ""
    return _compact(contexts)


def _generate(text: str, errors: FieldErrors) -> int | None:
    if not text:
        return None
    if not text.isdigit() or not 0 < int(text) <= context_files.MAX_CONTEXTS:
        errors.add(
            "import-generate",
            f"Enter a whole number from 1 to {context_files.MAX_CONTEXTS:,}, or leave it empty.",
        )
        return None
    return int(text)


def _choices(upload: UploadForm, view: ProjectView, errors: FieldErrors) -> tuple[str, str]:
    source = upload.form.text("source")
    if source not in SOURCE_LABELS:
        errors.add("import-source", "Choose the system the document comes from.")
    environment = upload.form.text("environment")
    if source != BUNDLE and environment not in {e.key for e in view.environments}:
        errors.add("import-environment", "Choose the environment to import into.")
    return source, environment


def _kept_from_upload(upload: UploadForm, view: ProjectView, errors: FieldErrors) -> Kept:
    source, environment = _choices(upload, view, errors)
    document = _document(upload, errors)
    contexts = _contexts(upload, errors)
    generate = upload.form.text("generate")
    _generate(generate, errors)
    return Kept(source, environment, document, contexts, generate)


def _kept_from_preview(upload: UploadForm, view: ProjectView, errors: FieldErrors) -> Kept:
    source, environment = _choices(upload, view, errors)
    form = upload.form
    return Kept(
        source, environment, form.get("document"), form.get("contexts"), form.text("generate")
    )


def _decoded(kept: Kept, errors: FieldErrors) -> tuple[Any, list[Any] | None, int | None]:
    """The kept document, contexts and count, decoded strictly: they came from a browser."""
    try:
        document = strict_json.decode(kept.document)
        contexts = strict_json.decode(kept.contexts) if kept.contexts else None
    except (ValueError, strict_json.JsonInputError):
        errors.add(None, "The previewed document did not come back intact. Upload it again.")
        return None, None, None
    if not isinstance(document, dict) or not (contexts is None or isinstance(contexts, list)):
        errors.add(None, "The previewed document did not come back intact. Upload it again.")
    return document, contexts, _generate(kept.generate, errors)


# ------------------------------------------------------------------------------ running
def _run(
    svc: Svc,
    principal: Principal,
    project: str,
    kept: Kept,
    decoded: tuple[Any, list[Any] | None, int | None],
    *,
    dry_run: bool,
    accept: bool,
    comment: str | None,
) -> JSON:
    document, contexts, generate = decoded
    if kept.source == BUNDLE:
        return svc.project_bundles.import_bundle(
            principal,
            project,
            document,
            contexts=contexts,
            generate_contexts=generate,
            accept_differences=accept,
            dry_run=dry_run,
        )
    request = imports.ImportRequest(
        source=kept.source,
        environment=kept.environment,
        document=document,
        contexts=contexts,
        generate=generate,
        accept_differences=accept,
        dry_run=dry_run,
        comment=comment,
    )
    return svc.imports.import_flags(principal, project, request)


def _problems(exc: InvalidInputError, errors: FieldErrors) -> None:
    """A service's refusal on the form: each problem at its field where it has one, else the
    detail and the first problems with their paths in the summary."""
    mapped = [(_field(p), p) for p in exc.problems]
    if any(field for field, _ in mapped):
        for field, problem in mapped:
            errors.add(field, sentence(problem.message))
        return
    errors.add(None, sentence(exc.detail))
    for _, problem in mapped[:_SHOWN_PROBLEMS]:
        errors.add(None, f"{problem.path}: {sentence(problem.message)}")


def _field(problem: FieldProblem) -> str | None:
    for path, field in _FIELDS.items():
        if problem.path == path or problem.path.startswith(path + "/"):
            return field
    return None


def _summary(report: ReportView) -> str:
    parts = [
        f"{row.what.lower()}: {row.created} created, {row.updated} updated, "
        f"{row.unchanged} unchanged"
        for row in report.counts
        if row.created or row.updated or row.unchanged
    ]
    return "; ".join(parts) or "nothing"


@router.post(_PATH)
def run_import(
    request: Request, svc: Svc, session: CurrentSession, upload: CheckedUpload, project: str
) -> Response:
    """``action=preview``: the uploaded document as a dry run; ``action=import``: the
    previewed document (sent back by the import form), for real."""
    form = upload.form
    view = frame.load(svc, session, project, form.text("env") or None)
    _require_edit(view)
    importing = form.text("action") == "import"
    errors = FieldErrors()
    if importing:
        kept = _kept_from_preview(upload, view, errors)
    else:
        kept = _kept_from_upload(upload, view, errors)
    values = {"source": kept.source, "environment": kept.environment, "generate": kept.generate}
    decoded = _decoded(kept, errors) if not errors else (None, None, None)
    if errors:
        return _page(request, session, view, values, errors=errors, status=422)
    report: JSON | None = None
    status = 200
    try:
        report = _run(
            svc,
            session.principal,
            project,
            kept,
            decoded,
            dry_run=not importing,
            accept=form.checked("accept-differences"),
            comment=form.text("comment") or None,
        )
    except (imports.ParityRefusedError, project_bundle.ParityRefusedError) as exc:
        report = exc.report
        if importing:
            status = 422
            errors.add(
                "accept-differences",
                "The source system and Fader answer differently for some contexts (see the "
                "parity table). Nothing was imported. Fix the differences, or tick “Accept the "
                "differences” to import anyway.",
            )
    except SourceSDKMissingError as exc:
        status = 503
        errors.add(None, sentence(str(exc)))
    except InvalidInputError as exc:
        status = 422
        _problems(exc, errors)
    except (PermissionDeniedError, NotFoundError, VersionConflictError) as exc:
        status = 403 if isinstance(exc, PermissionDeniedError) else 409
        status = 404 if isinstance(exc, NotFoundError) else status
        errors.add(None, sentence(exc.detail))
    except FaderServerError as exc:  # e.g. a change request required, a bundle refused
        status = 409
        errors.add(None, sentence(exc.detail))
    shown = None if report is None else import_report.view_of(report)
    if importing and shown is not None and not errors:
        return _imported(request, view, kept, shown)
    return _page(
        request,
        session,
        view,
        values,
        kept=kept if shown is not None else None,
        report=shown,
        errors=errors,
        status=status,
    )


def _imported(request: Request, view: ProjectView, kept: Kept, report: ReportView) -> Response:
    project = quote(view.project.key)
    if kept.source == BUNDLE:
        target = frame.url(f"/projects/{project}/flags", env=view.env.key)
        what = "the project bundle"
    else:
        target = frame.url(f"/projects/{project}/flags", env=kept.environment)
        what = f"{report.source_label} into {view.environment(kept.environment).name}"
    if not report.written:
        return redirect(
            request, target, f"Nothing was imported from {what}: it is all here already."
        )
    return redirect(request, target, f"Imported {what}: {_summary(report)}.")


# ------------------------------------------------------------------------------ export
@router.get("/projects/{project}/export")
def export_project(svc: Svc, session: CurrentSession, project: str) -> Response:
    """The project as a ``fader-bundle/v1`` file to download (editor role; audited), the
    same bundle as ``GET /api/v1/projects/{project}/export``."""
    bundle = svc.project_bundles.export(session.principal, project)
    name = f"fader-{bundle['project']['key']}-{str(bundle['exported_at'])[:10]}.json"
    return JSONResponse(bundle, headers={"Content-Disposition": f'attachment; filename="{name}"'})
