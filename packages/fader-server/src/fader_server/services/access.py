"""Who is calling, and what they may do: principals, roles and the one authorisation check.

Tenant isolation rule: a caller with no role in a project gets :class:`NotFoundError` for it, the
same answer as for a project that does not exist, so project keys do not leak across tenants.
A caller who can see the project but lacks the role gets :class:`PermissionDeniedError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum

from fader_server.errors import NotFoundError, PermissionDeniedError
from fader_server.storage.ports import Project
from fader_server.storage.ports.projects import ProjectAccess

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Role(IntEnum):
    """Project roles, ordered: each includes the rights of those below it."""

    VIEWER = 1
    EDITOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller of the admin API.

    `actor` is what the audit log records (``user:alice``, ``token:7``); it never contains
    a secret. SDK and client keys never become a Principal: they are refused at the door.
    """

    actor: str
    instance_admin: bool = False
    roles: Mapping[int, Role] = field(default_factory=dict)
    user_id: int | None = None
    token_id: int | None = None

    def role_in(self, project: Project) -> Role | None:
        if self.instance_admin:
            return Role.ADMIN
        return self.roles.get(project.id)


def authorize(principal: Principal, project: Project | None, key: str, needed: Role) -> Project:
    """Return the project if `principal` holds at least `needed` in it, else raise."""
    role = None if project is None else principal.role_in(project)
    if project is None or role is None:
        raise NotFoundError(f"project '{key}' does not exist or you have no access to it")
    if role < needed:
        raise PermissionDeniedError(
            f"this action needs the {needed.label} role in project '{key}'; "
            f"you have {role.label}. Ask a project admin to change your role."
        )
    return project


def require_instance_admin(principal: Principal, action: str) -> None:
    if not principal.instance_admin:
        raise PermissionDeniedError(f"only instance administrators can {action}")


def load_project(tx: ProjectAccess, principal: Principal, key: str, needed: Role) -> Project:
    """Fetch a project the caller may act on with `needed` (see :func:`authorize`); in a write
    transaction, also take the project's write lock
    (:meth:`~fader_server.storage.ports.projects.ProjectAccess.lock_project`).

    Every write to a project's flags, configurations, segments, environments and release
    plans starts here, so this one place makes them run one after another per project. That
    is what keeps the stored documents valid: a write validates against *other* resources
    (the segment a rule names, the flag a prerequisite names), and two writers that each pass
    alone, such as deleting segment ``internal`` while a rule starts using it, must not both
    commit (docs/adr/0005-project-write-lock.md). The lock comes after the authorisation check,
    so a caller without access never waits for it nor makes others wait, and before any
    validation read, which then sees everything the previous holder committed.
    """
    project = authorize(principal, tx.get_project(key), key, needed)
    if tx.writable:
        tx.lock_project(project.id)
    return project
