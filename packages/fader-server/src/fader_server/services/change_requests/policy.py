"""An environment's change-request policy, and the rule that makes it bite: in an environment
that requires change requests, nothing that alters what it serves is written directly.

The policy lives in the environment's data next to ``protected`` and ``bucketing``::

    "change_requests": {"required": true, "approvals": 2,
                        "approver_roles": ["admin"], "emergency_roles": ["admin"]}

It only means something for a protected environment (the effect analysis of
:mod:`~fader_server.services.protected_environments` judges protected environments only), so a
policy that requires requests is refused on an unprotected one. Without a policy, or with
``required: false``, nothing changes: protected environments keep the admin-role rule.

The emergency path: turning a flag *off* (the kill switch) stays one action for the
`emergency_roles` (admins always), recorded in the audit log as an emergency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fader_server.errors import ChangeRequestRequiredError, FieldProblem, InvalidInputError
from fader_server.services.access import Principal, Role
from fader_server.services.protected_environments import Impact, describe
from fader_server.storage.ports import JSON, PROJECT_SCOPE, Project, Resource, ResourceType
from fader_server.storage.ports.resources import ResourceReads

MAX_APPROVALS = 5
ROLE_NAMES = ("viewer", "editor", "admin")
PROPOSE_HINT = (
    "propose it as a change request: `fader change-requests propose …` or "
    "POST /api/v1/projects/{project}/change-requests"
)


@dataclass(frozen=True, slots=True)
class Policy:
    """What an environment asks of changes to what it serves."""

    required: bool = False
    approvals: int = 1
    approver_roles: tuple[str, ...] = ("admin",)
    emergency_roles: tuple[str, ...] = ("admin",)

    def to_dict(self) -> JSON:
        return {
            "required": self.required,
            "approvals": self.approvals,
            "approver_roles": list(self.approver_roles),
            "emergency_roles": list(self.emergency_roles),
        }

    def may_approve(self, role: Role | None) -> bool:
        return role is not None and role.label in self.approver_roles

    def may_use_emergency(self, role: Role | None) -> bool:
        return role is not None and (role is Role.ADMIN or role.label in self.emergency_roles)


NOT_REQUIRED = Policy()


def of(env_data: Mapping[str, Any]) -> Policy:
    """The policy stored in an environment's data (validated when it was written)."""
    raw = env_data.get("change_requests")
    if not isinstance(raw, Mapping) or not env_data.get("protected"):
        return NOT_REQUIRED
    return Policy(
        required=bool(raw.get("required")),
        approvals=int(raw.get("approvals") or 1),
        approver_roles=tuple(raw.get("approver_roles") or ("admin",)),
        emergency_roles=tuple(raw.get("emergency_roles") or ("admin",)),
    )


def parse(raw: Any, *, protected: bool) -> JSON:
    """Validate a policy as an API client or the console sends it; the stored form.
    Raises :class:`InvalidInputError` naming each wrong field."""
    problems: list[FieldProblem] = []
    path = "/body/change_requests"
    if not isinstance(raw, Mapping):
        raise InvalidInputError("the change-request policy must be an object", [])
    unknown = set(raw) - {"required", "approvals", "approver_roles", "emergency_roles"}
    problems.extend(FieldProblem(f"{path}/{k}", "unknown field") for k in sorted(unknown))
    required = raw.get("required", False)
    if not isinstance(required, bool):
        problems.append(FieldProblem(f"{path}/required", "must be true or false"))
    approvals = raw.get("approvals", 1)
    if not isinstance(approvals, int) or isinstance(approvals, bool):
        problems.append(FieldProblem(f"{path}/approvals", "must be an integer"))
    elif not 1 <= approvals <= MAX_APPROVALS:
        problems.append(FieldProblem(f"{path}/approvals", f"must be 1 to {MAX_APPROVALS}"))
    roles = {}
    for name in ("approver_roles", "emergency_roles"):
        value = raw.get(name, ["admin"])
        if (
            not isinstance(value, list)
            or not value
            or len(value) > len(ROLE_NAMES)
            or any(r not in ROLE_NAMES for r in value)
        ):
            problems.append(
                FieldProblem(f"{path}/{name}", f"a non-empty list of {', '.join(ROLE_NAMES)}")
            )
            value = ["admin"]
        roles[name] = sorted(set(value), key=ROLE_NAMES.index)
    if required is True and not protected:
        problems.append(
            FieldProblem(
                f"{path}/required",
                "only a protected environment can require change requests; protect it too",
            )
        )
    if problems:
        raise InvalidInputError("the change-request policy is invalid; fix the fields", problems)
    return Policy(
        required=bool(required),
        approvals=int(approvals),
        approver_roles=tuple(roles["approver_roles"]),
        emergency_roles=tuple(roles["emergency_roles"]),
    ).to_dict()


def environment_policies(tx: ResourceReads, project: Project) -> dict[str, Policy]:
    """Environment → its policy, for the environments that require change requests."""
    found: dict[str, Policy] = {}
    for env in tx.list_resources(project.id, ResourceType.ENVIRONMENT, PROJECT_SCOPE, limit=10_000):
        policy = of(env.data)
        if policy.required:
            found[env.key] = policy
    return found


def refuse_direct(
    project: Project, what: str, impacts: Sequence[Impact], policies: Mapping[str, Policy]
) -> None:
    """Refuse a direct write whose effect reaches an environment that requires change
    requests; the message says how to propose it instead."""
    gated = [i for i in impacts if i.environment in policies]
    if gated:
        raise ChangeRequestRequiredError(
            f"{what} changes what {describe(gated)}, and changes there need an approved "
            f"change request: {PROPOSE_HINT.format(project=project.key)}"
        )


def refuse_direct_in(
    project: Project, env: Resource, what: str, *, emergency: bool = False
) -> None:
    """Refuse `what` (a configuration write) in `env` when it requires change requests;
    `emergency` says the caller may use the kill switch there (checked by the caller)."""
    if emergency:
        return
    if of(env.data).required:
        raise ChangeRequestRequiredError(
            f"environment '{env.key}' requires change requests: {what} there changes what it "
            f"serves. {PROPOSE_HINT.format(project=project.key)[0].upper()}"
            f"{PROPOSE_HINT.format(project=project.key)[1:]}. Turning a flag off stays one "
            "action for the roles the policy allows (the emergency path)."
        )


def may_use_emergency(principal: Principal, project: Project, env: Resource) -> bool:
    """True when `env` requires change requests and the caller holds an emergency role."""
    policy = of(env.data)
    return policy.required and policy.may_use_emergency(principal.role_in(project))


def roles_text(roles: Iterable[str]) -> str:
    return " or ".join(roles)
