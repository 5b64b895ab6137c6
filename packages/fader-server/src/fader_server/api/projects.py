"""Projects, environments, members, project history and environment documents.

Thin handlers: parse (Pydantic) → service → render. Authorisation lives in the services.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from fader_server.api import pagination, problems
from fader_server.api.pagination import Cursor, Limit
from fader_server.api.schemas import (
    AuditOut,
    AuditPage,
    ChangeRequestPolicy,
    EnvironmentIn,
    EnvironmentOut,
    EnvironmentUpdate,
    MemberIn,
    MemberOut,
    ProjectIn,
    ProjectOut,
    ProjectPage,
    ProjectPatch,
)
from fader_server.api.security import Caller, IfMatch, Svc
from fader_server.services.change_requests import policy as change_policy
from fader_server.services.versioning import etag
from fader_server.storage.ports import AuditEntry, Project, Resource

router = APIRouter(prefix="/api/v1", tags=["projects"], responses=problems.API_ERRORS)


def project_out(project: Project) -> ProjectOut:
    return ProjectOut(key=project.key, name=project.name, created_at=project.created_at)


def environment_out(env: Resource) -> EnvironmentOut:
    return EnvironmentOut(
        key=env.key,
        name=env.data["name"],
        protected=env.data.get("protected", False),
        bucketing=env.data.get("bucketing", "v2"),
        change_requests=ChangeRequestPolicy(**change_policy.of(env.data).to_dict()),
        version=env.version,
        updated_at=env.updated_at,
    )


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        entity_type=entry.entity_type,
        entity_key=entry.entity_key,
        environment=entry.environment,
        version=entry.version,
        diff=entry.diff,
        comment=entry.comment,
    )


@router.get("/projects")
def list_projects(
    svc: Svc, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> ProjectPage:
    found = svc.projects.list_projects(caller, limit=limit, after_key=pagination.decode(cursor))
    return ProjectPage(
        items=[project_out(p) for p in found],
        next_cursor=pagination.next_cursor([p.key for p in found], limit),
    )


@router.post("/projects", status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectIn, svc: Svc, caller: Caller) -> ProjectOut:
    return project_out(svc.projects.create(caller, body.key, body.name, comment=body.comment))


@router.get("/projects/{project}")
def get_project(project: str, svc: Svc, caller: Caller) -> ProjectOut:
    return project_out(svc.projects.get(caller, project))


@router.patch("/projects/{project}")
def rename_project(project: str, body: ProjectPatch, svc: Svc, caller: Caller) -> ProjectOut:
    return project_out(svc.projects.rename(caller, project, body.name, body.comment))


@router.get("/projects/{project}/environments")
def list_environments(project: str, svc: Svc, caller: Caller) -> list[EnvironmentOut]:
    return [environment_out(e) for e in svc.projects.environments(caller, project)]


@router.post("/projects/{project}/environments", status_code=status.HTTP_201_CREATED)
def create_environment(
    project: str, body: EnvironmentIn, svc: Svc, caller: Caller, response: Response
) -> EnvironmentOut:
    data: dict[str, object] = {
        "name": body.name,
        "protected": body.protected,
        "bucketing": body.bucketing,
    }
    if body.change_requests is not None:
        data["change_requests"] = body.change_requests.model_dump()
    env = svc.projects.create_environment(caller, project, body.key, data, body.comment)
    response.headers["ETag"] = etag(env.version)
    return environment_out(env)


@router.get("/projects/{project}/environments/{environment}")
def get_environment(
    project: str, environment: str, svc: Svc, caller: Caller, response: Response
) -> EnvironmentOut:
    env = svc.projects.environment(caller, project, environment)
    response.headers["ETag"] = etag(env.version)
    return environment_out(env)


@router.put("/projects/{project}/environments/{environment}")
def update_environment(
    project: str,
    environment: str,
    body: EnvironmentUpdate,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    response: Response,
) -> EnvironmentOut:
    data: dict[str, object] = {"name": body.name, "protected": body.protected}
    if body.bucketing is not None:
        data["bucketing"] = body.bucketing
    if body.change_requests is not None:
        data["change_requests"] = body.change_requests.model_dump()
    env = svc.projects.update_environment(
        caller, project, environment, data, expected, body.comment
    )
    response.headers["ETag"] = etag(env.version)
    return environment_out(env)


@router.delete(
    "/projects/{project}/environments/{environment}", status_code=status.HTTP_204_NO_CONTENT
)
def delete_environment(
    project: str,
    environment: str,
    svc: Svc,
    caller: Caller,
    expected: IfMatch,
    comment: Annotated[str | None, Query(max_length=2000)] = None,
) -> None:
    svc.projects.update_environment(
        caller, project, environment, {}, expected, comment, deleted=True
    )


@router.get("/projects/{project}/environments/{environment}/document")
def environment_document(
    project: str, environment: str, svc: Svc, caller: Caller
) -> dict[str, Any]:
    """The environment's Fader document (docs/flag-format.md), as SDKs evaluate it."""
    return svc.projects.document(caller, project, environment)


@router.get("/projects/{project}/members")
def list_members(project: str, svc: Svc, caller: Caller) -> list[MemberOut]:
    return [
        MemberOut(username=user.username, role=role)
        for user, role in svc.projects.members(caller, project)
    ]


@router.put("/projects/{project}/members/{username}")
def set_member(project: str, username: str, body: MemberIn, svc: Svc, caller: Caller) -> MemberOut:
    svc.projects.set_member(caller, project, username, body.role, body.comment)
    return MemberOut(username=username, role=body.role)


@router.delete("/projects/{project}/members/{username}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(project: str, username: str, svc: Svc, caller: Caller) -> None:
    svc.projects.remove_member(caller, project, username, None)


@router.get("/projects/{project}/audit", tags=["history"])
def project_audit(
    project: str,
    svc: Svc,
    caller: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    entity_type: Annotated[str | None, Query(max_length=20)] = None,
    entity_key: Annotated[str | None, Query(max_length=128)] = None,
) -> AuditPage:
    """The project's append-only audit log, newest first."""
    entries = svc.projects.audit(
        caller,
        project,
        limit=limit,
        before_id=pagination.decode_int(cursor),
        entity_types=(entity_type,) if entity_type else None,
        entity_key=entity_key,
    )
    return AuditPage(
        items=[audit_out(e) for e in entries],
        next_cursor=pagination.next_cursor([str(e.id) for e in entries], limit),
    )
