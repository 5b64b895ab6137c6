"""What every project page needs besides its own content: the project, the caller's role, the
environments and the current one, and the project switcher.

The role decides which controls a page shows; it never decides what is allowed. Every action
still goes through a service, which checks the same role again (a viewer who posts a form
anyway gets the service's 403).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from fader_server.errors import NotFoundError
from fader_server.services import Services
from fader_server.services.access import Role
from fader_server.services.change_requests import policy as change_policy
from fader_server.storage.ports import Project
from fader_server.web.session import Session

MAX_PROJECTS = 500
SECTIONS = (
    "dashboard",
    "flags",
    "segments",
    "rollouts",
    "incidents",
    "action-items",
    "history",
    "environments",
    "change-requests",
    "tokens",
    "webhooks",
    "members",
)


@dataclass(frozen=True, slots=True)
class Environment:
    key: str
    name: str
    protected: bool
    requires_requests: bool = False
    """Changes to what it serves are proposed as change requests (its policy says so)."""


def url(path: str, **params: str | int | list[str] | None) -> str:
    """`path` with the given query parameters (None and empty values are left out)."""
    pairs: list[tuple[str, str | int]] = []
    for name, value in params.items():
        if isinstance(value, list):
            pairs.extend((name, v) for v in value)
        elif value not in (None, ""):
            pairs.append((name, value))
    return path + ("?" + urlencode(pairs) if pairs else "")


@dataclass(frozen=True, slots=True)
class ProjectView:
    project: Project
    role: Role
    environments: tuple[Environment, ...]
    env: Environment
    projects: tuple[Project, ...]
    instance_admin: bool

    @property
    def can_edit(self) -> bool:
        return self.role >= Role.EDITOR

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.ADMIN

    def can_propose(self, env: Environment | None = None) -> bool:
        """Whether the caller may propose changes to `env` as change requests (editors)."""
        return self.can_edit and (env or self.env).requires_requests

    def can_change(self, env: Environment | None = None) -> bool:
        """Whether the caller may change configurations in `env` (protected: admins only)."""
        env = env or self.env
        return self.can_edit and (not env.protected or self.is_admin)

    def environment(self, key: str | None) -> Environment:
        for env in self.environments:
            if env.key == key:
                return env
        raise NotFoundError(f"environment '{key}' does not exist in project '{self.project.key}'")

    def href(self, section: str = "", **params: str | int | list[str] | None) -> str:
        """A link inside this project that keeps the current environment."""
        path = f"/projects/{quote(self.project.key)}" + (f"/{section}" if section else "")
        return url(path, env=self.env.key, **params)


def default_environment(environments: tuple[Environment, ...]) -> Environment | None:
    """Production (or the first protected environment) first: that is where incidents are."""
    for env in environments:
        if env.key == "production":
            return env
    protected = [e for e in environments if e.protected]
    candidates = protected or list(environments)
    return candidates[0] if candidates else None


def load(svc: Services, session: Session, project_key: str, env_key: str | None) -> ProjectView:
    principal = session.principal
    project = svc.projects.get(principal, project_key)
    role = principal.role_in(project)
    assert role is not None  # projects.get refuses callers without a role
    environments = tuple(
        Environment(
            e.key,
            str(e.data.get("name") or e.key),
            bool(e.data.get("protected")),
            change_policy.of(e.data).required,
        )
        for e in svc.projects.environments(principal, project_key)
    )
    projects = tuple(svc.projects.list_projects(principal, limit=MAX_PROJECTS, after_key=None))
    if env_key:
        env = next((e for e in environments if e.key == env_key), None)
        if env is None:
            raise NotFoundError(
                f"environment '{env_key}' does not exist in project '{project_key}'"
            )
    else:
        env = default_environment(environments) or Environment("", "(no environments)", False)
    return ProjectView(project, role, environments, env, projects, principal.instance_admin)
